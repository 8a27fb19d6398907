//! Version 2 CRLs (RFC 5280 §5): thisUpdate, nextUpdate, cRLNumber, AKI, optional
//! issuingDistributionPoint, and entries with reasonCode (omitted for unspecified) and
//! invalidityDate.
//!
//! Entries are DER-encoded straight into one buffer, so memory stays proportional to the CRL's
//! size: a million entries is a ~40 MB CRL and roughly twice that in memory while it is built.

use const_oid::db::rfc5280::{ID_CE_INVALIDITY_DATE, ID_CE_ISSUING_DISTRIBUTION_POINT};
use der::asn1::OctetString;
use der::asn1::Uint;
use der::{Encode, Header, Tag};
use serde::{Deserialize, Serialize};
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::name::DistributionPointName;
use x509_cert::ext::pkix::{BaseCrlNumber, CrlNumber, CrlReason, FreshestCrl};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Version;

use crate::ca::CertificateAuthority;
use crate::error::CrlError;
use crate::extensions::{authority_key_identifier, extension, uri_name};
use crate::time::UnixTime;

/// Why a certificate was revoked (RFC 5280 §5.3.1), as named in the API and CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RevocationReason {
    /// No reason given; the CRL entry carries no reasonCode.
    Unspecified,
    /// The private key is known or suspected to be compromised (e.g. a lost terminal).
    KeyCompromise,
    /// The issuing CA's key is compromised.
    CaCompromise,
    /// The subject's name or affiliation changed.
    AffiliationChanged,
    /// Replaced by a new certificate.
    Superseded,
    /// No longer needed (device retired, maintenance over).
    CessationOfOperation,
    /// Temporarily suspended; can be released.
    CertificateHold,
    /// A privilege was withdrawn.
    PrivilegeWithdrawn,
    /// Delta CRLs only: a held certificate was released (RFC 5280 §5.3.1).
    RemoveFromCrl,
}

impl RevocationReason {
    /// The RFC 5280 CRLReason.
    pub fn crl_reason(self) -> CrlReason {
        match self {
            RevocationReason::Unspecified => CrlReason::Unspecified,
            RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
            RevocationReason::CaCompromise => CrlReason::CaCompromise,
            RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
            RevocationReason::Superseded => CrlReason::Superseded,
            RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
            RevocationReason::CertificateHold => CrlReason::CertificateHold,
            RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
            RevocationReason::RemoveFromCrl => CrlReason::RemoveFromCRL,
        }
    }

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key-compromise",
            RevocationReason::CaCompromise => "ca-compromise",
            RevocationReason::AffiliationChanged => "affiliation-changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation-of-operation",
            RevocationReason::CertificateHold => "certificate-hold",
            RevocationReason::PrivilegeWithdrawn => "privilege-withdrawn",
            RevocationReason::RemoveFromCrl => "remove-from-crl",
        }
    }

    /// Parses the kebab-case name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            RevocationReason::Unspecified,
            RevocationReason::KeyCompromise,
            RevocationReason::CaCompromise,
            RevocationReason::AffiliationChanged,
            RevocationReason::Superseded,
            RevocationReason::CessationOfOperation,
            RevocationReason::CertificateHold,
            RevocationReason::PrivilegeWithdrawn,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }
}

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Its serial number.
    pub serial: SerialNumber,
    /// When it was revoked.
    pub revoked_at: UnixTime,
    /// Why.
    pub reason: RevocationReason,
    /// When the key is known or suspected to have been compromised, if earlier than revocation.
    pub invalidity_date: Option<UnixTime>,
}

/// The CRL's header fields.
#[derive(Debug, Clone)]
pub struct CrlParams {
    /// thisUpdate.
    pub this_update: UnixTime,
    /// nextUpdate (required by RFC 5280 §5.1.2.5 for conforming CAs).
    pub next_update: UnixTime,
    /// cRLNumber; must only grow per CA.
    pub crl_number: u64,
    /// If set, an issuingDistributionPoint naming this URI with onlyContainsUserCerts.
    pub issuing_distribution_point: Option<String>,
    /// For a delta CRL: the cRLNumber of its base (deltaCRLIndicator, RFC 5280 §5.2.4).
    pub delta_base: Option<u64>,
    /// For a complete CRL with deltas: where the delta CRL is (freshestCRL, RFC 5280 §5.2.6).
    pub freshest_crl: Option<String>,
}

/// DER-encodes one `revokedCertificates` entry (RFC 5280 §5.1.2.6) onto `out`.
pub fn encode_entry(entry: &RevokedEntry, out: &mut Vec<u8>) -> Result<(), CrlError> {
    let mut extensions = Vec::new();
    if entry.reason != RevocationReason::Unspecified {
        extensions.push(
            extension(&entry.reason.crl_reason(), false)
                .map_err(|e| CrlError::Encode(e.to_string()))?,
        );
    }
    if let Some(date) = entry.invalidity_date {
        // invalidityDate ::= GeneralizedTime (RFC 5280 §5.3.2)
        let value = date
            .to_generalized_time()?
            .to_der()
            .and_then(OctetString::new)
            .map_err(|e| CrlError::Encode(e.to_string()))?;
        extensions.push(Extension {
            extn_id: ID_CE_INVALIDITY_DATE,
            critical: false,
            extn_value: value,
        });
    }
    RevokedCert {
        serial_number: entry.serial.clone(),
        revocation_date: entry.revoked_at.to_x509_time()?,
        crl_entry_extensions: if extensions.is_empty() {
            None
        } else {
            Some(extensions)
        },
    }
    .encode_to_vec(out)
    .map_err(|e| CrlError::Encode(e.to_string()))?;
    Ok(())
}

fn crl_extensions(
    ca: &CertificateAuthority,
    params: &CrlParams,
) -> Result<Vec<Extension>, der::Error> {
    let number = Uint::new(&params.crl_number.to_be_bytes())?;
    let mut extensions = vec![
        authority_key_identifier(ca.key_id())?,
        extension(&CrlNumber(number), false)?,
    ];
    if let Some(base) = params.delta_base {
        let base = Uint::new(&base.to_be_bytes())?;
        extensions.push(extension(&BaseCrlNumber(base), true)?);
    }
    if let Some(url) = &params.freshest_crl {
        extensions.push(extension(
            &FreshestCrl(vec![DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![uri_name(url)?])),
                reasons: None,
                crl_issuer: None,
            }]),
            false,
        )?);
    }
    if let Some(url) = &params.issuing_distribution_point {
        // x509-cert 0.2.5 gives IssuingDistributionPoint the subjectInfoAccess OID; name the
        // extension by its RFC 5280 §5.2.5 OID (2.5.29.28) instead.
        let mut idp = extension(
            &IssuingDistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![uri_name(url)?])),
                only_contains_user_certs: true,
                only_contains_ca_certs: false,
                only_some_reasons: None,
                indirect_crl: false,
                only_contains_attribute_certs: false,
            },
            true,
        )?;
        idp.extn_id = ID_CE_ISSUING_DISTRIBUTION_POINT;
        extensions.push(idp);
    }
    Ok(extensions)
}

fn push_header(out: &mut Vec<u8>, tag: Tag, len: usize) -> Result<(), CrlError> {
    Header::new(tag, len)
        .and_then(|h| h.encode_to_vec(out))
        .map(|_| ())
        .map_err(|e| CrlError::Encode(e.to_string()))
}

/// Builds and signs a DER CRL for `ca` over `entries`.
pub fn build_crl<'e>(
    ca: &CertificateAuthority,
    params: &CrlParams,
    entries: impl IntoIterator<Item = &'e RevokedEntry>,
) -> Result<Vec<u8>, CrlError> {
    let mut revoked = Vec::new();
    for entry in entries {
        encode_entry(entry, &mut revoked)?;
    }
    build_crl_encoded(
        ca,
        params,
        std::iter::once(revoked.as_slice()),
        revoked.len(),
    )
}

/// Builds and signs a DER CRL from entries already DER-encoded by [`encode_entry`] (in any
/// number of slices whose lengths add up to `total_len`). This is how a CA with a million revoked
/// certificates republishes within a second: the entries are encoded once, when revoked.
pub fn build_crl_encoded<'e>(
    ca: &CertificateAuthority,
    params: &CrlParams,
    encoded: impl IntoIterator<Item = &'e [u8]>,
    total_len: usize,
) -> Result<Vec<u8>, CrlError> {
    if params.next_update <= params.this_update {
        return Err(CrlError::Window);
    }
    let encode = |e: der::Error| CrlError::Encode(e.to_string());
    let mut fields = Vec::with_capacity(512);
    Version::V2.encode_to_vec(&mut fields).map_err(encode)?;
    ca.key()
        .algorithm()
        .identifier()
        .encode_to_vec(&mut fields)
        .map_err(encode)?;
    ca.subject().encode_to_vec(&mut fields).map_err(encode)?;
    params
        .this_update
        .to_x509_time()?
        .encode_to_vec(&mut fields)
        .map_err(encode)?;
    params
        .next_update
        .to_x509_time()?
        .encode_to_vec(&mut fields)
        .map_err(encode)?;
    let extensions = crl_extensions(ca, params).map_err(encode)?;
    let extensions_der = der::asn1::ContextSpecific {
        tag_number: der::TagNumber::N0,
        tag_mode: der::TagMode::Explicit,
        value: extensions,
    }
    .to_der()
    .map_err(encode)?;
    let revoked_block = if total_len == 0 {
        0
    } else {
        let header_len = Header::new(Tag::Sequence, total_len)
            .and_then(|h| h.encoded_len())
            .map_err(encode)?;
        usize::try_from(header_len).map_err(|_| CrlError::Encode("length".into()))? + total_len
    };
    let body_len = fields.len() + revoked_block + extensions_der.len();
    let mut tbs = Vec::with_capacity(body_len + 8);
    push_header(&mut tbs, Tag::Sequence, body_len)?;
    tbs.extend_from_slice(&fields);
    if total_len > 0 {
        push_header(&mut tbs, Tag::Sequence, total_len)?;
        let before = tbs.len();
        for chunk in encoded {
            tbs.extend_from_slice(chunk);
        }
        if tbs.len() - before != total_len {
            return Err(CrlError::Encode(
                "encoded entries do not add up to total_len".into(),
            ));
        }
    }
    tbs.extend_from_slice(&extensions_der);
    Ok(crate::issuance::sign_tbs(&tbs, ca.key())?)
}
