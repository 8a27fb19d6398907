//! Pre-signing lint: every to-be-signed certificate is decoded from the exact DER about to be
//! signed and checked against RFC 5280 and its profile, every tbsCertList is walked and checked
//! against RFC 5280 §5 (`crl`), and every tbsResponseData against RFC 6960 (`ocsp`). Any finding refuses the signature. One file per area;
//! each check is named `e_*` and cites the rule it enforces.

pub mod crl;
mod identifiers;
mod key_usage;
mod names;
pub mod ocsp;
mod structure;
mod validity;

use der::Decode;
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::TbsCertificate;

use crate::error::{LintFailure, LintFinding};
use crate::profile::Profile;
use crate::public_key::PublicKeyKind;
use crate::time::UnixTime;

/// What kind of certificate the TBS must be.
#[derive(Debug, Clone, Copy)]
pub enum Expectation<'a> {
    /// A CA certificate with the given pathLenConstraint.
    Ca {
        /// Expected pathLenConstraint.
        path_len: Option<u8>,
    },
    /// An end-entity certificate following `profile`.
    Leaf {
        /// The profile it must follow.
        profile: &'a Profile,
        /// The subject key's kind.
        key_kind: PublicKeyKind,
        /// Whether the requester chose the window (notBefore may then lie in the future).
        requested_window: bool,
    },
}

/// Everything a check needs besides the TBS itself.
#[derive(Debug, Clone)]
pub struct LintContext<'a> {
    /// The issuer's subject; `None` for a self-signed root.
    pub issuer_subject: Option<&'a Name>,
    /// The issuer's key identifier (the AKI must carry it).
    pub issuer_key_id: &'a [u8],
    /// Start of the issuer's validity (`None` for a root).
    pub issuer_not_before: Option<UnixTime>,
    /// End of the issuer's validity (`None` for a root).
    pub issuer_not_after: Option<UnixTime>,
    /// The algorithm the issuer signs with.
    pub signature_algorithm: AlgorithmIdentifierOwned,
    /// Now.
    pub now: UnixTime,
    /// Leaf or CA.
    pub expectation: Expectation<'a>,
}

pub(crate) struct Findings(Vec<LintFinding>);

impl Findings {
    pub(crate) fn fail(
        &mut self,
        check: &'static str,
        rule: &'static str,
        message: impl Into<String>,
    ) {
        self.0.push(LintFinding {
            check,
            rule,
            message: message.into(),
        });
    }
}

pub(crate) fn extensions(tbs: &TbsCertificate) -> &[Extension] {
    tbs.extensions.as_deref().unwrap_or_default()
}

pub(crate) fn find(tbs: &TbsCertificate, oid: const_oid::ObjectIdentifier) -> Option<&Extension> {
    extensions(tbs).iter().find(|e| e.extn_id == oid)
}

/// Lints the DER of a to-be-signed certificate. Returns every finding at once.
pub fn lint(tbs_der: &[u8], ctx: &LintContext<'_>) -> Result<(), LintFailure> {
    let mut findings = Findings(Vec::new());
    match TbsCertificate::from_der(tbs_der) {
        Err(e) => findings.fail(
            "e_tbs_decodes",
            "RFC 5280 §4.1",
            format!("TBS does not decode: {e}"),
        ),
        Ok(tbs) => {
            structure::check(&tbs, ctx, &mut findings);
            validity::check(&tbs, ctx, &mut findings);
            identifiers::check(&tbs, ctx, &mut findings);
            key_usage::check(&tbs, ctx, &mut findings);
            names::check(&tbs, ctx, &mut findings);
        }
    }
    if findings.0.is_empty() {
        Ok(())
    } else {
        Err(LintFailure {
            findings: findings.0,
        })
    }
}
