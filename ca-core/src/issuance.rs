//! Issuing end-entity certificates: prepare (profile policy, build, lint) → sign once.
//!
//! [`PreparedIssuance::prepare`] turns a verified CSR and a profile into the exact DER of a
//! to-be-signed certificate and lints it; nothing from the CSR but its key, its checked subject
//! values and its checked SANs reaches the certificate. The caller stores the serial and the TBS,
//! then calls [`PreparedIssuance::sign`], which consumes the preparation: it can be signed at most
//! once.

use der::Encode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;
use x509_cert::{TbsCertificate, Version};

use crate::ca::CertificateAuthority;
use crate::clock::Clock;
use crate::csr::VerifiedCsr;
use crate::error::{CsrError, IssueError, SignError};
use crate::extensions::{
    authority_info_access, authority_key_identifier, crl_distribution_points, extension,
    key_identifier, ocsp_no_check, subject_key_identifier,
};
use crate::lint::{self, Expectation, LintContext};
use crate::name::build_name;
use crate::profile::Profile;
use crate::random::RandomSource;
use crate::serial::time_ordered_serial;
use crate::signer::sign_tbs;
use crate::time::UnixTime;
use crate::time::BACKDATE_SECS;

/// What a requester asks for beyond the CSR.
#[derive(Debug, Clone, Default)]
pub struct IssuanceOptions {
    /// A requested validity window (notBefore, notAfter), e.g. a vendor's maintenance window.
    /// Only profiles with `validity.requested_window = true` accept one.
    pub window: Option<(UnixTime, UnixTime)>,
}

/// A certificate built and linted, waiting for its one signature.
#[derive(Debug)]
pub struct PreparedIssuance {
    ca_id: String,
    profile_id: String,
    serial: SerialNumber,
    tbs_der: Vec<u8>,
    not_before: UnixTime,
    not_after: UnixTime,
    subject: String,
    names: String,
}

/// A signed certificate.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// The certificate's DER.
    pub der: Vec<u8>,
    /// Its serial number.
    pub serial: SerialNumber,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
    /// The subject in RFC 4514 form (may be empty).
    pub subject: String,
    /// The profile it was issued under.
    pub profile_id: String,
    /// The CA that signed it.
    pub ca_id: String,
}

impl IssuedCertificate {
    /// PEM of the certificate alone.
    pub fn pem(&self) -> String {
        crate::ca::pem(&self.der)
    }
}

fn validity(
    ca: &CertificateAuthority,
    profile: &Profile,
    options: &IssuanceOptions,
    now: UnixTime,
) -> Result<(UnixTime, UnixTime), IssueError> {
    let earliest = now.minus(BACKDATE_SECS).max(ca.not_before());
    match options.window {
        Some((start, end)) => {
            if !profile.allows_requested_window() {
                return Err(IssueError::Validity(format!(
                    "profile {} does not accept a requested validity window",
                    profile.id()
                )));
            }
            if end <= start {
                return Err(IssueError::Validity(
                    "the window must end after it starts".into(),
                ));
            }
            if end <= now {
                return Err(IssueError::Validity("the window has already ended".into()));
            }
            if end.as_secs() - start.as_secs() > profile.max_validity_secs() {
                return Err(IssueError::Validity(format!(
                    "the window is longer than the profile's maximum of {}s",
                    profile.max_validity_secs()
                )));
            }
            if end > ca.not_after() {
                return Err(IssueError::OutlivesIssuer {
                    not_after: end.to_string(),
                    issuer_not_after: ca.not_after().to_string(),
                });
            }
            Ok((start.max(earliest), end))
        }
        None => {
            let end = now
                .plus(profile.default_validity_secs())
                .min(ca.not_after());
            if end <= earliest {
                return Err(IssueError::OutlivesIssuer {
                    not_after: end.to_string(),
                    issuer_not_after: ca.not_after().to_string(),
                });
            }
            Ok((earliest, end))
        }
    }
}

fn leaf_extensions(
    ca: &CertificateAuthority,
    profile: &Profile,
    csr: &VerifiedCsr,
    sans: Vec<GeneralName>,
    subject_empty: bool,
    serial: &SerialNumber,
) -> Result<Vec<Extension>, der::Error> {
    let key_type = csr.key_kind().key_type();
    let usage = profile
        .key_usage()
        .iter()
        .filter(|u| u.fits(key_type))
        .fold(KeyUsage(Default::default()).0, |acc, u| acc | u.flag());
    let mut extensions = vec![
        extension(
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
            true,
        )?,
        extension(&KeyUsage(usage), true)?,
    ];
    if !profile.extended_key_usage().is_empty() {
        extensions.push(extension(
            &ExtendedKeyUsage(
                profile
                    .extended_key_usage()
                    .iter()
                    .map(|e| e.oid())
                    .collect(),
            ),
            false,
        )?);
    }
    if !sans.is_empty() {
        extensions.push(extension(&SubjectAltName(sans), subject_empty)?);
    }
    extensions.push(subject_key_identifier(&key_identifier(csr.public_key()))?);
    extensions.push(authority_key_identifier(ca.key_id())?);
    if profile.revocation_info() {
        let partition = ca.crl_partition_of(serial);
        if let Some(url) = ca.crl_url_for(partition) {
            extensions.push(crl_distribution_points(&url)?);
        }
        if let Some(url) = ca.delta_crl_url_for(partition) {
            extensions.push(crate::extensions::freshest_crl(&url)?);
        }
    }
    let ocsp = if profile.revocation_info() {
        ca.ocsp_url()
    } else {
        None
    };
    if let Some(aia) = authority_info_access(ocsp.as_deref(), ca.ca_issuers_url().as_deref())? {
        extensions.push(aia);
    }
    if profile.ocsp_no_check() {
        extensions.push(ocsp_no_check()?);
    }
    if profile.no_revocation_available() {
        // RFC 9608 §2: and no CRL DP, Freshest CRL or OCSP pointer (revocation_info is off).
        extensions.push(crate::extensions::no_rev_avail()?);
    }
    if let Some((_, content)) = profile.policy_oid() {
        extensions.push(crate::extensions::certificate_policies(content)?);
    }
    Ok(extensions)
}

impl PreparedIssuance {
    /// Applies `profile` to `csr`, builds the to-be-signed certificate and lints it.
    pub fn prepare(
        ca: &CertificateAuthority,
        profile: &Profile,
        csr: &VerifiedCsr,
        options: &IssuanceOptions,
        clock: &dyn Clock,
        random: &dyn RandomSource,
    ) -> Result<Self, IssueError> {
        if profile.issuing_ca() != ca.id() {
            return Err(IssueError::WrongIssuer {
                profile: profile.id().to_string(),
                expected: profile.issuing_ca().to_string(),
                actual: ca.id().to_string(),
            });
        }
        let key_kind = csr.key_kind();
        if let crate::public_key::PublicKeyKind::Rsa { bits } = key_kind {
            if bits < profile.min_rsa_bits() {
                return Err(
                    CsrError::PublicKey(crate::error::PublicKeyError::RsaTooSmall {
                        bits,
                        min: profile.min_rsa_bits(),
                    })
                    .into(),
                );
            }
        }
        if !profile.key_types().contains(&key_kind.key_type()) {
            return Err(CsrError::KeyTypeNotAllowed {
                key: key_kind.to_string(),
                profile: profile.id().to_string(),
            }
            .into());
        }
        let attributes = profile.check_subject(csr.subject())?;
        let sans = profile.check_sans(csr.requested_sans())?;
        let subject = build_name(&attributes).map_err(IssueError::Encode)?;
        if subject.is_empty() && sans.is_empty() {
            return Err(CsrError::SubjectAttributeMissing {
                attribute: "subject or subjectAltName".into(),
            }
            .into());
        }
        let now = clock.now();
        let (not_before, not_after) = validity(ca, profile, options, now)?;
        let serial = time_ordered_serial(clock.now_ms(), random).map_err(|_| SignError::Backend)?;
        let encode = |e: der::Error| IssueError::Encode(e.to_string());
        let names = sans
            .iter()
            .map(|name| {
                let (field, value) = crate::name::general_name_text(name);
                format!("{field}:{value}")
            })
            .collect::<Vec<_>>()
            .join(" ");
        let extensions =
            leaf_extensions(ca, profile, csr, sans, subject.is_empty(), &serial).map_err(encode)?;
        let tbs = TbsCertificate {
            version: Version::V3,
            serial_number: serial.clone(),
            signature: ca.key().algorithm().identifier(),
            issuer: ca.subject().clone(),
            validity: Validity {
                not_before: not_before.to_x509_time()?,
                not_after: not_after.to_x509_time()?,
            },
            subject_public_key_info: csr.public_key().clone(),
            subject: subject.clone(),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: Some(extensions),
        };
        let tbs_der = tbs.to_der().map_err(encode)?;
        lint::lint(
            &tbs_der,
            &LintContext {
                issuer_subject: Some(ca.subject()),
                issuer_key_id: ca.key_id(),
                issuer_not_before: Some(ca.not_before()),
                issuer_not_after: Some(ca.not_after()),
                signature_algorithm: ca.key().algorithm().identifier(),
                now,
                expectation: Expectation::Leaf {
                    profile,
                    key_kind,
                    requested_window: options.window.is_some(),
                },
            },
        )?;
        Ok(PreparedIssuance {
            ca_id: ca.id().to_string(),
            profile_id: profile.id().to_string(),
            serial,
            tbs_der,
            not_before,
            not_after,
            subject: subject.to_string(),
            names,
        })
    }

    /// The serial number (store it before signing).
    pub fn serial(&self) -> &SerialNumber {
        &self.serial
    }
    /// The exact bytes that will be signed (store them before signing).
    pub fn tbs_der(&self) -> &[u8] {
        &self.tbs_der
    }
    /// Start of validity.
    pub fn not_before(&self) -> UnixTime {
        self.not_before
    }
    /// End of validity.
    pub fn not_after(&self) -> UnixTime {
        self.not_after
    }
    /// The subject in RFC 4514 form.
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// The subjectAltNames, `type:value` separated by spaces (`dns:gw.example ip:10.0.0.1`), as
    /// the certificate list searches them.
    pub fn names(&self) -> &str {
        &self.names
    }

    /// Signs the prepared certificate with `ca`'s key. Consumes the preparation, so it can be
    /// signed at most once; refuses a CA other than the one it was prepared for. The result is
    /// not decoded again: the lint decoded the TBS, and [`sign_tbs`] frames it with the DER
    /// encoder's own algorithm identifier and signature BIT STRING.
    pub fn sign(self, ca: &CertificateAuthority) -> Result<IssuedCertificate, IssueError> {
        if ca.id() != self.ca_id {
            return Err(IssueError::WrongIssuer {
                profile: self.profile_id,
                expected: self.ca_id,
                actual: ca.id().to_string(),
            });
        }
        let der = sign_tbs(&self.tbs_der, ca.key())?;
        Ok(IssuedCertificate {
            der,
            serial: self.serial,
            not_before: self.not_before,
            not_after: self.not_after,
            subject: self.subject,
            profile_id: self.profile_id,
            ca_id: self.ca_id,
        })
    }
}
