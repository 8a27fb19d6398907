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
    /// The reason for an RFC 5280 CRLReason (aACompromise, which Mamori never issues, as
    /// unspecified).
    pub fn from_crl_reason(reason: CrlReason) -> Self {
        match reason {
            CrlReason::KeyCompromise => RevocationReason::KeyCompromise,
            CrlReason::CaCompromise => RevocationReason::CaCompromise,
            CrlReason::AffiliationChanged => RevocationReason::AffiliationChanged,
            CrlReason::Superseded => RevocationReason::Superseded,
            CrlReason::CessationOfOperation => RevocationReason::CessationOfOperation,
            CrlReason::CertificateHold => RevocationReason::CertificateHold,
            CrlReason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
            CrlReason::RemoveFromCRL => RevocationReason::RemoveFromCrl,
            _ => RevocationReason::Unspecified,
        }
    }

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

    /// RFC 5280's name (§5.3.1), as relying parties and `openssl` write it: `keyCompromise`.
    pub fn rfc5280_name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::CaCompromise => "cACompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::CertificateHold => "certificateHold",
            RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
            RevocationReason::RemoveFromCrl => "removeFromCRL",
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
    /// If set, an issuingDistributionPoint naming this URI with onlyContainsUserCerts
    /// ([`CertificateAuthority::crl_idp_url`]); `None` for a CRL covering every certificate of
    /// its issuer (a root's).
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
/// certificates republishes within a second: the entries are encoded once, when revoked, and the
/// CRL is assembled and signed in one buffer.
pub fn build_crl_encoded<'e>(
    ca: &CertificateAuthority,
    params: &CrlParams,
    encoded: impl IntoIterator<Item = &'e [u8]>,
    total_len: usize,
) -> Result<Vec<u8>, CrlError> {
    build_crl_with(ca, params, total_len, |out: &mut Vec<u8>| {
        for chunk in encoded {
            out.extend_from_slice(chunk);
        }
        Ok::<(), CrlError>(())
    })
}

/// Builds and signs a DER CRL whose `revokedCertificates` content — exactly `total_len` octets of
/// entries encoded by [`encode_entry`] — is appended to the CRL's own buffer by `write_entries`.
/// The one allocation is the CRL itself: a caller that streams a million entries from storage
/// (counting their length in a first pass) never holds a second copy of them.
pub fn build_crl_with<E: From<CrlError>>(
    ca: &CertificateAuthority,
    params: &CrlParams,
    total_len: usize,
    write_entries: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    if params.next_update <= params.this_update {
        return Err(CrlError::Window.into());
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
        .to_x509_time()
        .map_err(CrlError::from)?
        .encode_to_vec(&mut fields)
        .map_err(encode)?;
    params
        .next_update
        .to_x509_time()
        .map_err(CrlError::from)?
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
        header_len(total_len)? + total_len
    };
    let body_len = fields.len() + revoked_block + extensions_der.len();
    // The TBS is written after room for the outer SEQUENCE header, signed where it lies, and the
    // header is slid in front: one buffer the size of the CRL, never two.
    let mut out = Vec::with_capacity(RESERVED + body_len + 8 + 128);
    out.resize(RESERVED, 0);
    push_header(&mut out, Tag::Sequence, body_len)?;
    out.extend_from_slice(&fields);
    if total_len > 0 {
        push_header(&mut out, Tag::Sequence, total_len)?;
        let before = out.len();
        write_entries(&mut out)?;
        if out.len() - before != total_len {
            return Err(CrlError::EntriesChanged {
                expected: total_len,
                written: out.len() - before,
            }
            .into());
        }
    }
    out.extend_from_slice(&extensions_der);
    // Lint before sign: the exact tbsCertList, one pass over its bytes.
    let algorithm = ca.key().algorithm().identifier();
    crate::lint::crl::lint_crl(
        &out[RESERVED..],
        &crate::lint::crl::CrlLintContext {
            issuer: ca.subject(),
            issuer_key_id: ca.key_id(),
            signature_algorithm: &algorithm,
            this_update: params.this_update,
            next_update: params.next_update,
            crl_number: params.crl_number,
            delta: params.delta_base.is_some(),
        },
    )
    .map_err(CrlError::Lint)?;
    let signature = ca.key().sign(&out[RESERVED..]).map_err(CrlError::from)?;
    let alg = ca.key().algorithm().identifier().to_der().map_err(encode)?;
    let signature = der::asn1::BitString::from_bytes(&signature)
        .and_then(|b| b.to_der())
        .map_err(encode)?;
    let total = out.len() - RESERVED + alg.len() + signature.len();
    let mut header = Vec::with_capacity(RESERVED);
    push_header(&mut header, Tag::Sequence, total)?;
    let start = RESERVED
        .checked_sub(header.len())
        .ok_or_else(|| CrlError::Encode("CRL too large".into()))?;
    out[start..RESERVED].copy_from_slice(&header);
    out.extend_from_slice(&alg);
    out.extend_from_slice(&signature);
    out.drain(..start);
    Ok(out)
}

/// Room kept in front of the TBS for the CRL's outer SEQUENCE header (at most 6 octets for any
/// CRL under 4 GiB).
const RESERVED: usize = 8;

fn header_len(len: usize) -> Result<usize, CrlError> {
    Header::new(Tag::Sequence, len)
        .and_then(|h| h.encoded_len())
        .map_err(|e| CrlError::Encode(e.to_string()))
        .and_then(|l| usize::try_from(l).map_err(|_| CrlError::Encode("length".into())))
}

/// One `revokedCertificates` entry as it lies in a CRL's DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEntry<'a> {
    /// The content octets of its serial number INTEGER (as [`SerialNumber::as_bytes`] gives).
    pub serial: &'a [u8],
    /// The whole entry, DER.
    pub der: &'a [u8],
}

/// Splits one DER TLV off `input`: (tag, content, rest).
fn tlv(input: &[u8]) -> Result<(Tag, &[u8], &[u8]), CrlError> {
    crate::tlv::split(input)
        .map(|t| (t.tag, t.content, t.rest))
        .map_err(|e| CrlError::Parse(e.0))
}

/// The `revokedCertificates` entries of a DER CRL, in order, neither decoded nor copied; each
/// yields its serial and its bytes. Only the structure is read: call it on CRLs this CA signed.
pub fn raw_entries(crl_der: &[u8]) -> Result<RawEntries<'_>, CrlError> {
    let (tag, crl, _) = tlv(crl_der)?;
    expect(tag, Tag::Sequence)?;
    let (tag, mut tbs, _) = tlv(crl)?;
    expect(tag, Tag::Sequence)?;
    for wanted in [Tag::Integer, Tag::Sequence, Tag::Sequence] {
        let (tag, _, rest) = tlv(tbs)?;
        expect(tag, wanted)?;
        tbs = rest;
    }
    let mut times = 0;
    while times < 2 && !tbs.is_empty() {
        let (tag, _, rest) = tlv(tbs)?;
        if !matches!(tag, Tag::UtcTime | Tag::GeneralizedTime) {
            break;
        }
        tbs = rest;
        times += 1;
    }
    if tbs.is_empty() {
        return Ok(RawEntries { rest: &[] });
    }
    let (tag, list, _) = tlv(tbs)?;
    Ok(RawEntries {
        rest: if tag == Tag::Sequence { list } else { &[] },
    })
}

/// Iterator over a CRL's entries, from [`raw_entries`].
#[derive(Debug, Clone)]
pub struct RawEntries<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RawEntries<'a> {
    type Item = Result<RawEntry<'a>, CrlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let list = self.rest;
        let parsed = tlv(list).and_then(|(tag, content, rest)| {
            expect(tag, Tag::Sequence)?;
            let (tag, serial, _) = tlv(content)?;
            expect(tag, Tag::Integer)?;
            Ok((serial, rest))
        });
        match parsed {
            Ok((serial, rest)) => {
                self.rest = rest;
                Some(Ok(RawEntry {
                    serial,
                    der: &list[..list.len() - rest.len()],
                }))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

fn expect(tag: Tag, wanted: Tag) -> Result<(), CrlError> {
    if tag == wanted {
        Ok(())
    } else {
        Err(CrlError::Parse(format!("expected {wanted}, found {tag}")))
    }
}

/// Builds and signs the next complete CRL from `base` (a CRL this CA signed earlier) without
/// re-encoding it: every entry of `base` whose serial is not in `replaced` is kept byte for
/// byte, and `added` is appended. `replaced` holds the serials (as [`SerialNumber::as_bytes`]
/// gives) whose status changed since `base`: released, re-revoked or expired.
pub fn build_crl_from_base(
    ca: &CertificateAuthority,
    params: &CrlParams,
    base: &[u8],
    replaced: &std::collections::HashSet<Vec<u8>>,
    added: &[RevokedEntry],
) -> Result<Vec<u8>, CrlError> {
    let mut runs: Vec<&[u8]> = Vec::new();
    let mut total = 0;
    let mut run: Option<(usize, usize)> = None;
    let origin = base.as_ptr() as usize;
    for entry in raw_entries(base)? {
        let entry = entry?;
        if replaced.contains(entry.serial) {
            if let Some((start, end)) = run.take() {
                runs.push(&base[start..end]);
            }
            continue;
        }
        let start = entry.der.as_ptr() as usize - origin;
        let end = start + entry.der.len();
        total += entry.der.len();
        run = match run {
            Some((s, e)) if e == start => Some((s, end)),
            Some((s, e)) => {
                runs.push(&base[s..e]);
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((start, end)) = run {
        runs.push(&base[start..end]);
    }
    let mut fresh = Vec::new();
    for entry in added {
        encode_entry(entry, &mut fresh)?;
    }
    total += fresh.len();
    runs.push(&fresh);
    build_crl_encoded(ca, params, runs, total)
}
