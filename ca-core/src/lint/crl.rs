//! Pre-signing lint of CRLs: the exact tbsCertList about to be signed is walked (entries are not
//! decoded into structures, so a million-entry CRL is linted in one pass over its bytes) and
//! checked against RFC 5280 §5. Any finding refuses the signature.

use std::collections::HashSet;

use const_oid::db::rfc5280::{
    ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_CRL_NUMBER, ID_CE_CRL_REASONS, ID_CE_DELTA_CRL_INDICATOR,
    ID_CE_FRESHEST_CRL, ID_CE_INVALIDITY_DATE, ID_CE_ISSUING_DISTRIBUTION_POINT,
};
use der::{Decode, Encode, Tag, TagNumber};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::AuthorityKeyIdentifier;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::time::Time;

use super::Findings;
use crate::error::{LintFailure, LintFinding};
use crate::time::UnixTime;
use crate::tlv;

/// What the CRL must say, from the CA and the publication's parameters.
#[derive(Debug, Clone)]
pub struct CrlLintContext<'a> {
    /// The issuing CA's subject (the CRL's issuer).
    pub issuer: &'a Name,
    /// The CA's key identifier (the AKI must carry it).
    pub issuer_key_id: &'a [u8],
    /// The algorithm the CA signs with.
    pub signature_algorithm: &'a AlgorithmIdentifierOwned,
    /// thisUpdate.
    pub this_update: UnixTime,
    /// nextUpdate.
    pub next_update: UnixTime,
    /// cRLNumber.
    pub crl_number: u64,
    /// A delta CRL (deltaCRLIndicator required, removeFromCRL allowed).
    pub delta: bool,
}

/// Lints the DER of a tbsCertList. Returns every finding at once.
pub fn lint_crl(tbs_der: &[u8], ctx: &CrlLintContext<'_>) -> Result<(), LintFailure> {
    let mut findings = Findings(Vec::new());
    if let Err(e) = walk(tbs_der, ctx, &mut findings) {
        findings.fail("e_crl_tbs_decodes", "RFC 5280 §5.1", e);
    }
    if findings.0.is_empty() {
        Ok(())
    } else {
        Err(LintFailure {
            findings: findings.0,
        })
    }
}

fn split(input: &[u8]) -> Result<tlv::Tlv<'_>, String> {
    tlv::split(input).map_err(|e| e.to_string())
}

fn walk(tbs_der: &[u8], ctx: &CrlLintContext<'_>, f: &mut Findings) -> Result<(), String> {
    let tbs = split(tbs_der)?;
    if tbs.tag != Tag::Sequence || !tbs.rest.is_empty() {
        return Err("tbsCertList is not one SEQUENCE".into());
    }
    let mut rest = tbs.content;
    let version = split(rest)?;
    if version.tag != Tag::Integer || version.content != [1] {
        f.fail(
            "e_crl_version_v2",
            "RFC 5280 §5.1.2.1",
            "version must be v2 (CRLs with extensions)",
        );
    }
    rest = if version.tag == Tag::Integer {
        version.rest
    } else {
        rest
    };
    let algorithm = split(rest)?;
    let expected = ctx
        .signature_algorithm
        .to_der()
        .map_err(|e| e.to_string())?;
    if algorithm.whole != expected.as_slice() {
        f.fail(
            "e_crl_signature_algorithm_matches",
            "RFC 5280 §5.1.2.2",
            "the signature field must name the algorithm the CA signs with",
        );
    }
    let issuer = split(algorithm.rest)?;
    let expected = ctx.issuer.to_der().map_err(|e| e.to_string())?;
    if issuer.whole != expected.as_slice() || ctx.issuer.0.is_empty() {
        f.fail(
            "e_crl_issuer_is_ca",
            "RFC 5280 §5.1.2.3",
            "the issuer must be the CA's non-empty subject, byte for byte",
        );
    }
    let this_update = split(issuer.rest)?;
    let next_update = split(this_update.rest)?;
    check_time(
        this_update.whole,
        ctx.this_update,
        "thisUpdate",
        "§5.1.2.4",
        f,
    )?;
    if !matches!(next_update.tag, Tag::UtcTime | Tag::GeneralizedTime) {
        f.fail(
            "e_crl_next_update_present",
            "RFC 5280 §5.1.2.5",
            "conforming CAs include nextUpdate",
        );
        return Ok(());
    }
    check_time(
        next_update.whole,
        ctx.next_update,
        "nextUpdate",
        "§5.1.2.5",
        f,
    )?;
    if ctx.next_update <= ctx.this_update {
        f.fail(
            "e_crl_next_update_after_this_update",
            "RFC 5280 §5.1.2.5",
            "nextUpdate must be later than thisUpdate",
        );
    }
    let mut rest = next_update.rest;
    if let Ok(list) = split(rest) {
        if list.tag == Tag::Sequence {
            entries(list.content, ctx, f)?;
            rest = list.rest;
        }
    }
    let extensions = split(rest)?;
    if extensions.tag
        != (Tag::ContextSpecific {
            constructed: true,
            number: TagNumber::N0,
        })
        || !extensions.rest.is_empty()
    {
        return Err("crlExtensions must end the tbsCertList".into());
    }
    let list: Vec<Extension> = Vec::from_der(extensions.content).map_err(|e| e.to_string())?;
    crl_extensions(&list, ctx, f);
    Ok(())
}

fn check_time(
    der: &[u8],
    expected: UnixTime,
    field: &str,
    section: &'static str,
    f: &mut Findings,
) -> Result<(), String> {
    let time = Time::from_der(der).map_err(|e| format!("{field}: {e}"))?;
    if UnixTime::from_x509_time(&time) != expected {
        f.fail(
            "e_crl_times_as_published",
            "RFC 5280 §5.1.2.4-5",
            format!("{field} is not the publication's"),
        );
    }
    // UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §5.1.2.4, §5.1.2.5).
    let utc_era = expected.as_secs() < 2_524_608_000;
    if matches!(time, Time::UtcTime(_)) != utc_era {
        f.fail(
            "e_crl_time_encoding",
            if section == "§5.1.2.4" {
                "RFC 5280 §5.1.2.4"
            } else {
                "RFC 5280 §5.1.2.5"
            },
            format!("{field} must be UTCTime through 2049 and GeneralizedTime after"),
        );
    }
    Ok(())
}

/// Every entry: a positive serial of at most 20 octets listed once, a revocation date, and
/// entry extensions RFC 5280 §5.3 allows.
fn entries(mut list: &[u8], ctx: &CrlLintContext<'_>, f: &mut Findings) -> Result<(), String> {
    if list.is_empty() {
        f.fail(
            "e_crl_revoked_list_absent_when_empty",
            "RFC 5280 §5.1.2.6",
            "an empty revokedCertificates list must be left out",
        );
        return Ok(());
    }
    let mut seen: HashSet<&[u8]> = HashSet::new();
    let mut bad_serials = 0usize;
    let mut duplicates = 0usize;
    let mut bad_extensions: Vec<String> = Vec::new();
    while !list.is_empty() {
        let entry = split(list)?;
        list = entry.rest;
        if entry.tag != Tag::Sequence {
            return Err("a revokedCertificates entry is not a SEQUENCE".into());
        }
        let serial = split(entry.content)?;
        let positive = serial.tag == Tag::Integer
            && !serial.content.is_empty()
            && serial.content[0] & 0x80 == 0
            && serial.content.iter().any(|b| *b != 0);
        let digits = match serial.content {
            [0, rest @ ..] => rest.len(),
            all => all.len(),
        };
        if !positive || digits > 20 {
            bad_serials += 1;
        }
        if !seen.insert(serial.content) {
            duplicates += 1;
        }
        let date = split(serial.rest)?;
        if !matches!(date.tag, Tag::UtcTime | Tag::GeneralizedTime) {
            return Err("a revocationDate is not a Time".into());
        }
        if !date.rest.is_empty() && bad_extensions.len() < 3 {
            if let Some(problem) = entry_extensions(date.rest, ctx)? {
                bad_extensions.push(problem);
            }
        }
    }
    if bad_serials > 0 {
        f.fail(
            "e_crl_serial_positive_20_octets",
            "RFC 5280 §5.1.2.6, §4.1.2.2",
            format!("{bad_serials} entries have a serial that is not a positive integer of at most 20 octets"),
        );
    }
    if duplicates > 0 {
        f.fail(
            "e_crl_serial_listed_once",
            "RFC 5280 §5.1.2.6",
            format!("{duplicates} serials are listed more than once"),
        );
    }
    for problem in bad_extensions {
        f.0.push(LintFinding {
            check: "e_crl_entry_extensions",
            rule: "RFC 5280 §5.3",
            message: problem,
        });
    }
    Ok(())
}

/// The problem with one entry's extensions, if any: only reasonCode (never unspecified, and
/// removeFromCRL only in a delta CRL) and invalidityDate, each once and non-critical.
fn entry_extensions(der: &[u8], ctx: &CrlLintContext<'_>) -> Result<Option<String>, String> {
    let list: Vec<Extension> = Vec::from_der(der).map_err(|e| e.to_string())?;
    let mut ids = HashSet::new();
    for extension in &list {
        if !ids.insert(extension.extn_id) {
            return Ok(Some(format!(
                "{} appears twice in an entry",
                extension.extn_id
            )));
        }
        if extension.critical {
            return Ok(Some(format!(
                "entry extension {} is critical",
                extension.extn_id
            )));
        }
        if extension.extn_id == ID_CE_CRL_REASONS {
            match extension.extn_value.as_bytes() {
                // ENUMERATED 0: unspecified is expressed by leaving reasonCode out.
                [0x0a, 0x01, 0] => {
                    return Ok(Some("reasonCode unspecified must be left out".into()))
                }
                [0x0a, 0x01, 8] if !ctx.delta => {
                    return Ok(Some("removeFromCRL belongs in delta CRLs only".into()))
                }
                [0x0a, 0x01, 7] => return Ok(Some("reasonCode 7 is not assigned".into())),
                [0x0a, 0x01, r] if *r <= 10 => {}
                _ => return Ok(Some("reasonCode is not a CRLReason".into())),
            }
        } else if extension.extn_id == ID_CE_INVALIDITY_DATE {
            if extension.extn_value.as_bytes().first() != Some(&0x18) {
                return Ok(Some("invalidityDate must be a GeneralizedTime".into()));
            }
        } else {
            return Ok(Some(format!(
                "entry extension {} is not one Mamori writes",
                extension.extn_id
            )));
        }
    }
    Ok(None)
}

/// The CRL's own extensions: AKI with the CA's key id and cRLNumber, both non-critical;
/// deltaCRLIndicator (critical) exactly on a delta CRL; issuingDistributionPoint critical;
/// freshestCRL only on a complete CRL; each once; nothing else critical.
fn crl_extensions(list: &[Extension], ctx: &CrlLintContext<'_>, f: &mut Findings) {
    let mut ids = HashSet::new();
    for extension in list {
        if !ids.insert(extension.extn_id) {
            f.fail(
                "e_crl_extension_once",
                "RFC 5280 §4.2",
                format!("{} appears twice", extension.extn_id),
            );
        }
    }
    let find = |oid| list.iter().find(|e| e.extn_id == oid);
    match find(ID_CE_AUTHORITY_KEY_IDENTIFIER) {
        Some(aki) if !aki.critical => {
            let id = AuthorityKeyIdentifier::from_der(aki.extn_value.as_bytes())
                .ok()
                .and_then(|a| a.key_identifier);
            if id.as_ref().map(|i| i.as_bytes()) != Some(ctx.issuer_key_id) {
                f.fail(
                    "e_crl_aki_matches_issuer",
                    "RFC 5280 §5.2.1",
                    "the AKI must carry the CA's key identifier",
                );
            }
        }
        _ => f.fail(
            "e_crl_aki_present",
            "RFC 5280 §5.2.1",
            "conforming CRLs carry a non-critical authorityKeyIdentifier",
        ),
    }
    match find(ID_CE_CRL_NUMBER) {
        Some(number) if !number.critical => {
            let value = der::asn1::Uint::from_der(number.extn_value.as_bytes()).ok();
            let expected = der::asn1::Uint::new(&ctx.crl_number.to_be_bytes()).ok();
            if value.is_none() || value != expected || number.extn_value.as_bytes().len() > 22 {
                f.fail(
                    "e_crl_number_as_published",
                    "RFC 5280 §5.2.3",
                    "cRLNumber must be the publication's number, at most 20 octets",
                );
            }
        }
        _ => f.fail(
            "e_crl_number_present",
            "RFC 5280 §5.2.3",
            "conforming CRLs carry a non-critical cRLNumber",
        ),
    }
    match (find(ID_CE_DELTA_CRL_INDICATOR), ctx.delta) {
        (Some(d), true) if d.critical => {}
        (None, false) => {}
        _ => f.fail(
            "e_crl_delta_indicator",
            "RFC 5280 §5.2.4",
            "a delta CRL, and only a delta CRL, carries a critical deltaCRLIndicator",
        ),
    }
    if find(ID_CE_ISSUING_DISTRIBUTION_POINT).is_some_and(|e| !e.critical) {
        f.fail(
            "e_crl_idp_critical",
            "RFC 5280 §5.2.5",
            "issuingDistributionPoint is critical",
        );
    }
    if let Some(freshest) = find(ID_CE_FRESHEST_CRL) {
        if freshest.critical || ctx.delta {
            f.fail(
                "e_crl_freshest_on_complete_crls",
                "RFC 5280 §5.2.6",
                "freshestCRL is non-critical and never on a delta CRL",
            );
        }
    }
    let known = [
        ID_CE_AUTHORITY_KEY_IDENTIFIER,
        ID_CE_CRL_NUMBER,
        ID_CE_DELTA_CRL_INDICATOR,
        ID_CE_ISSUING_DISTRIBUTION_POINT,
        ID_CE_FRESHEST_CRL,
    ];
    for extension in list {
        if !known.contains(&extension.extn_id) {
            f.fail(
                "e_crl_extension_known",
                "RFC 5280 §5.2",
                format!("{} is not an extension Mamori writes", extension.extn_id),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use der::Decode;
    use x509_cert::crl::CertificateList;

    use super::*;
    use crate::ca::{self, CaSpec, CertificateAuthority};
    use crate::clock::SystemClock;
    use crate::crl::{build_crl, CrlParams, RevocationReason, RevokedEntry};
    use crate::error::CrlError;
    use crate::key::{KeyAlgorithm, SoftwareKey};
    use crate::name::{build_name, AttributeKind};

    fn root() -> CertificateAuthority {
        ca::create_root(
            &CaSpec {
                id: "root".into(),
                subject: build_name(&[(AttributeKind::CN, "Lint Root".into())]).unwrap(),
                validity_secs: 86_400 * 365,
                path_len: None,
                name_constraints: None,
            },
            Arc::new(SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap().0),
            None,
            &SystemClock,
        )
        .unwrap()
    }

    fn params(now: UnixTime) -> CrlParams {
        CrlParams {
            this_update: now,
            next_update: now.plus(3600),
            crl_number: 7,
            issuing_distribution_point: None,
            delta_base: None,
            freshest_crl: None,
        }
    }

    fn entry(serial: &[u8], reason: RevocationReason) -> RevokedEntry {
        RevokedEntry {
            serial: x509_cert::serial_number::SerialNumber::new(serial).unwrap(),
            revoked_at: UnixTime::now().minus(60),
            reason,
            invalidity_date: None,
        }
    }

    fn tbs_of(crl: &[u8]) -> Vec<u8> {
        CertificateList::from_der(crl)
            .unwrap()
            .tbs_cert_list
            .to_der()
            .unwrap()
    }

    #[test]
    fn a_good_crl_passes_and_a_listed_twice_serial_is_refused() {
        let ca = root();
        let now = UnixTime::now();
        let good = [
            entry(&[1, 2, 3], RevocationReason::KeyCompromise),
            entry(&[4, 5, 6], RevocationReason::Unspecified),
        ];
        let crl = build_crl(&ca, &params(now), &good).unwrap();
        assert!(CertificateList::from_der(&crl).is_ok());
        let twice = [good[0].clone(), good[1].clone(), good[0].clone()];
        match build_crl(&ca, &params(now), &twice) {
            Err(CrlError::Lint(failure)) => {
                assert!(failure
                    .findings
                    .iter()
                    .any(|f| f.check == "e_crl_serial_listed_once"));
            }
            other => panic!("a serial listed twice must be refused: {other:?}"),
        }
        // An empty CRL leaves revokedCertificates out and passes.
        build_crl(&ca, &params(now), &[]).unwrap();
    }

    #[test]
    fn a_tbs_that_is_not_what_was_published_is_refused() {
        let ca = root();
        let now = UnixTime::now();
        let crl = build_crl(
            &ca,
            &params(now),
            &[entry(&[9], RevocationReason::CessationOfOperation)],
        )
        .unwrap();
        let tbs = tbs_of(&crl);
        let algorithm = ca.key().algorithm().identifier();
        let context = CrlLintContext {
            issuer: ca.subject(),
            issuer_key_id: ca.key_id(),
            signature_algorithm: &algorithm,
            this_update: now,
            next_update: now.plus(3600),
            crl_number: 7,
            delta: false,
        };
        lint_crl(&tbs, &context).unwrap();
        let checks = |context: &CrlLintContext<'_>| -> Vec<&'static str> {
            lint_crl(&tbs, context)
                .unwrap_err()
                .findings
                .iter()
                .map(|f| f.check)
                .collect()
        };
        assert_eq!(
            checks(&CrlLintContext {
                crl_number: 8,
                ..context.clone()
            }),
            vec!["e_crl_number_as_published"]
        );
        assert_eq!(
            checks(&CrlLintContext {
                delta: true,
                ..context.clone()
            }),
            vec!["e_crl_delta_indicator"]
        );
        assert_eq!(
            checks(&CrlLintContext {
                issuer_key_id: b"another key",
                ..context.clone()
            }),
            vec!["e_crl_aki_matches_issuer"]
        );
        let other = build_name(&[(AttributeKind::CN, "Someone Else".into())]).unwrap();
        assert_eq!(
            checks(&CrlLintContext {
                issuer: &other,
                ..context.clone()
            }),
            vec!["e_crl_issuer_is_ca"]
        );
        assert!(lint_crl(&tbs[..tbs.len() - 3], &context).is_err());
    }
}
