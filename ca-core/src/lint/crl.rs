//! Pre-signing lint of CRLs: the exact tbsCertList about to be signed is walked (entries are not
//! decoded into structures, so a million-entry CRL is linted in one pass over its bytes) and
//! checked against RFC 5280 §5. Any finding refuses the signature.

use std::collections::HashSet;

use const_oid::db::rfc5280::{
    ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_CRL_NUMBER, ID_CE_DELTA_CRL_INDICATOR,
    ID_CE_FRESHEST_CRL, ID_CE_ISSUING_DISTRIBUTION_POINT,
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

/// One DER TLV off the front of `input`, read by hand: (tag octet, content, rest). The entry
/// walk runs a million times for a large CRL, where the `der` reader's per-call cost was most of
/// the lint's time.
fn quick_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let len = rest[..octets]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[octets..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A 64-bit fingerprint of a serial's octets (FxHash's mixing step over 8-octet words).
fn fingerprint(serial: &[u8]) -> u64 {
    let mut hash = serial.len() as u64;
    for chunk in serial.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    hash
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
/// 2.5.29.21 (reasonCode) and 2.5.29.24 (invalidityDate), as encoded.
const REASON_CODE: &[u8] = &[0x55, 0x1d, 0x15];
const INVALIDITY_DATE: &[u8] = &[0x55, 0x1d, 0x18];

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
    let whole = list;
    let malformed = || "a revokedCertificates entry is malformed".to_string();
    // Serials listed twice are found by sorting 8-octet fingerprints (8 MB for a million
    // entries, where a set of the serials took several times that and most of the lint's time);
    // fingerprints that collide are checked against the serials themselves afterwards.
    let mut fingerprints: Vec<u64> = Vec::with_capacity(list.len() / 30);
    let mut bad_serials = 0usize;
    let mut duplicates = 0usize;
    let mut bad_extensions: Vec<String> = Vec::new();
    while !list.is_empty() {
        let (tag, entry, rest) = quick_tlv(list).ok_or_else(malformed)?;
        list = rest;
        if tag != SEQUENCE {
            return Err(malformed());
        }
        let (tag, serial, rest) = quick_tlv(entry).ok_or_else(malformed)?;
        let positive = tag == INTEGER
            && !serial.is_empty()
            && serial[0] & 0x80 == 0
            && serial.iter().any(|b| *b != 0);
        let digits = match serial {
            [0, rest @ ..] => rest.len(),
            all => all.len(),
        };
        if !positive || digits > 20 {
            bad_serials += 1;
        }
        fingerprints.push(fingerprint(serial));
        let (tag, _, extensions) = quick_tlv(rest).ok_or_else(malformed)?;
        if tag != UTC_TIME && tag != GENERALIZED_TIME {
            return Err("a revocationDate is not a Time".into());
        }
        if !extensions.is_empty() && bad_extensions.len() < 3 {
            if let Some(problem) = entry_extensions(extensions, ctx) {
                bad_extensions.push(problem);
            }
        }
    }
    fingerprints.sort_unstable();
    let collided: HashSet<u64> = fingerprints
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    if !collided.is_empty() {
        let mut seen: HashSet<&[u8]> = HashSet::new();
        let mut list = whole;
        while let Some((_, entry, rest)) = quick_tlv(list) {
            list = rest;
            if let Some((_, serial, _)) = quick_tlv(entry) {
                if collided.contains(&fingerprint(serial)) && !seen.insert(serial) {
                    duplicates += 1;
                }
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

/// The problem with one entry's extensions (`crlEntryExtensions`, tag and all), if any: only
/// reasonCode (never unspecified, and removeFromCRL only in a delta CRL) and invalidityDate, each
/// once and non-critical.
fn entry_extensions(der: &[u8], ctx: &CrlLintContext<'_>) -> Option<String> {
    let Some((SEQUENCE, mut list, [])) = quick_tlv(der) else {
        return Some("crlEntryExtensions is malformed".into());
    };
    let (mut reason, mut invalidity) = (false, false);
    while !list.is_empty() {
        let Some((SEQUENCE, extension, rest)) = quick_tlv(list) else {
            return Some("an entry extension is malformed".into());
        };
        list = rest;
        let Some((OID, oid, rest)) = quick_tlv(extension) else {
            return Some("an entry extension has no OID".into());
        };
        let value = match quick_tlv(rest) {
            Some((BOOLEAN, _, _)) => {
                return Some("entry extensions are non-critical (RFC 5280 §5.3)".into())
            }
            Some((OCTET_STRING, value, [])) => value,
            _ => return Some("an entry extension's value is malformed".into()),
        };
        if oid == REASON_CODE {
            if std::mem::replace(&mut reason, true) {
                return Some("reasonCode appears twice in an entry".into());
            }
            match value {
                // ENUMERATED 0: unspecified is expressed by leaving reasonCode out.
                [0x0a, 0x01, 0] => return Some("reasonCode unspecified must be left out".into()),
                [0x0a, 0x01, 8] if !ctx.delta => {
                    return Some("removeFromCRL belongs in delta CRLs only".into())
                }
                [0x0a, 0x01, 7] => return Some("reasonCode 7 is not assigned".into()),
                [0x0a, 0x01, r] if *r <= 10 => {}
                _ => return Some("reasonCode is not a CRLReason".into()),
            }
        } else if oid == INVALIDITY_DATE {
            if std::mem::replace(&mut invalidity, true) {
                return Some("invalidityDate appears twice in an entry".into());
            }
            if value.first() != Some(&GENERALIZED_TIME) {
                return Some("invalidityDate must be a GeneralizedTime".into());
            }
        } else {
            return Some("an entry extension Mamori does not write".into());
        }
    }
    None
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
            Arc::new(
                SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &crate::random::OsRandom)
                    .unwrap()
                    .0,
            ),
            None,
            &SystemClock,
            &crate::random::OsRandom,
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

    #[test]
    fn entry_extensions_are_read_by_hand() {
        let algorithm = AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
            parameters: None,
        };
        let name = build_name(&[(AttributeKind::CN, "x".into())]).unwrap();
        let ctx = |delta| CrlLintContext {
            issuer: &name,
            issuer_key_id: b"",
            signature_algorithm: &algorithm,
            this_update: UnixTime(0),
            next_update: UnixTime(1),
            crl_number: 1,
            delta,
        };
        // crlEntryExtensions holding one reasonCode with the given ENUMERATED value, optionally
        // marked critical.
        let reason = |code: u8, critical: bool| -> Vec<u8> {
            let mut extension = vec![0x06, 0x03, 0x55, 0x1d, 0x15];
            if critical {
                extension.extend_from_slice(&[0x01, 0x01, 0xff]);
            }
            extension.extend_from_slice(&[0x04, 0x03, 0x0a, 0x01, code]);
            let mut one = vec![0x30, extension.len() as u8];
            one.extend_from_slice(&extension);
            let mut all = vec![0x30, one.len() as u8];
            all.extend_from_slice(&one);
            all
        };
        assert_eq!(entry_extensions(&reason(1, false), &ctx(false)), None);
        assert!(entry_extensions(&reason(0, false), &ctx(false))
            .unwrap()
            .contains("unspecified"));
        assert!(entry_extensions(&reason(1, true), &ctx(false))
            .unwrap()
            .contains("non-critical"));
        assert!(entry_extensions(&reason(8, false), &ctx(false))
            .unwrap()
            .contains("delta"));
        assert_eq!(entry_extensions(&reason(8, false), &ctx(true)), None);
        assert!(entry_extensions(&reason(7, false), &ctx(false)).is_some());
        assert!(entry_extensions(&[0x30, 0x05, 0x30], &ctx(false)).is_some());
        // Lengths in long form and truncated input.
        assert_eq!(
            quick_tlv(&[0x04, 0x81, 0x02, 1, 2, 9]),
            Some((0x04, &[1u8, 2][..], &[9u8][..]))
        );
        assert_eq!(quick_tlv(&[0x04, 0x82, 0x01]), None);
        assert_eq!(quick_tlv(&[0x04, 0x05, 1, 2]), None);
    }
}
