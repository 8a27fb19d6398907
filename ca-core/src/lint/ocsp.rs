//! Pre-signing lint of OCSP responses: the exact tbsResponseData about to be signed is decoded and
//! checked against RFC 6960, RFC 9919's profile and RFC 9654's nonce rules. Any finding refuses
//! the signature.

use std::collections::HashSet;

use const_oid::db::rfc5912::{ID_SHA_1, ID_SHA_256, ID_SHA_384, ID_SHA_512};
use const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE;
use der::asn1::OctetString;
use der::Decode;
use x509_ocsp::{CertStatus, ResponderId, ResponseData, Version};

use super::Findings;
use crate::error::LintFailure;
use crate::time::UnixTime;

/// Lints the DER of a tbsResponseData signed by the key whose SHA-1 key hash is
/// `responder_key_hash`. Returns every finding at once.
pub fn lint_response_data(tbs_der: &[u8], responder_key_hash: &[u8]) -> Result<(), LintFailure> {
    let mut f = Findings(Vec::new());
    match ResponseData::from_der(tbs_der) {
        Err(e) => f.fail(
            "e_ocsp_tbs_decodes",
            "RFC 6960 §4.2.1",
            format!("tbsResponseData does not decode: {e}"),
        ),
        Ok(data) => check(&data, responder_key_hash, &mut f),
    }
    if f.0.is_empty() {
        Ok(())
    } else {
        Err(LintFailure { findings: f.0 })
    }
}

fn check(data: &ResponseData, responder_key_hash: &[u8], f: &mut Findings) {
    if data.version != Version::V1 {
        f.fail("e_ocsp_version_v1", "RFC 6960 §4.2.1", "version must be v1");
    }
    match &data.responder_id {
        ResponderId::ByKey(hash) if hash.as_bytes() == responder_key_hash => {}
        ResponderId::ByKey(_) => f.fail(
            "e_ocsp_responder_key_hash",
            "RFC 6960 §4.2.2.3",
            "responderID byKey must be the SHA-1 hash of the signing key",
        ),
        ResponderId::ByName(_) => f.fail(
            "e_ocsp_responder_by_key",
            "RFC 9919 (byKey ResponderID)",
            "Mamori's responders identify themselves by key",
        ),
    }
    if data.responses.is_empty() {
        f.fail(
            "e_ocsp_responses_present",
            "RFC 6960 §4.2.1",
            "a successful response carries at least one SingleResponse",
        );
    }
    let produced_at = UnixTime(data.produced_at.0.to_unix_duration().as_secs());
    for single in &data.responses {
        let id = &single.cert_id;
        let digest_len = match id.hash_algorithm.oid {
            oid if oid == ID_SHA_1 => Some(20),
            oid if oid == ID_SHA_256 => Some(32),
            oid if oid == ID_SHA_384 => Some(48),
            oid if oid == ID_SHA_512 => Some(64),
            _ => None,
        };
        let parameters_ok = id
            .hash_algorithm
            .parameters
            .as_ref()
            .is_none_or(|p| der::Tagged::tag(p) == der::Tag::Null);
        match digest_len {
            Some(len)
                if parameters_ok
                    && id.issuer_name_hash.as_bytes().len() == len
                    && id.issuer_key_hash.as_bytes().len() == len => {}
            _ => f.fail(
                "e_ocsp_cert_id_hash",
                "RFC 6960 §4.1.1",
                "CertID must use SHA-1, SHA-256, SHA-384 or SHA-512 with hashes of that length",
            ),
        }
        let this_update = UnixTime(single.this_update.0.to_unix_duration().as_secs());
        match &single.next_update {
            None => f.fail(
                "e_ocsp_next_update_present",
                "RFC 9919 (cacheable responses carry nextUpdate); RFC 6960 §4.2.2.1",
                "every SingleResponse carries nextUpdate",
            ),
            Some(next) if next.0.to_unix_duration().as_secs() <= this_update.as_secs() => f.fail(
                "e_ocsp_next_update_after_this_update",
                "RFC 6960 §4.2.2.1",
                "nextUpdate must be later than thisUpdate",
            ),
            Some(_) => {}
        }
        if this_update > produced_at {
            f.fail(
                "e_ocsp_this_update_not_after_produced_at",
                "RFC 6960 §4.2.2.1",
                "thisUpdate lies after producedAt",
            );
        }
        if let CertStatus::Revoked(info) = &single.cert_status {
            if info.revocation_time.0.to_unix_duration().as_secs() > this_update.as_secs() {
                f.fail(
                    "e_ocsp_revocation_time_not_after_this_update",
                    "RFC 6960 §2.2",
                    "revocationTime lies after thisUpdate",
                );
            }
        }
        if single
            .single_extensions
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            f.fail(
                "e_ocsp_no_single_extensions",
                "RFC 6960 §4.4",
                "Mamori writes no singleExtensions",
            );
        }
    }
    let mut ids = HashSet::new();
    for extension in data.response_extensions.iter().flatten() {
        if !ids.insert(extension.extn_id) {
            f.fail(
                "e_ocsp_extension_once",
                "RFC 5280 §4.2",
                format!("{} appears twice", extension.extn_id),
            );
        }
        if extension.extn_id != ID_PKIX_OCSP_NONCE {
            f.fail(
                "e_ocsp_extension_known",
                "RFC 6960 §4.4",
                format!("{} is not an extension Mamori writes", extension.extn_id),
            );
            continue;
        }
        let nonce = OctetString::from_der(extension.extn_value.as_bytes());
        let ok =
            !extension.critical && nonce.is_ok_and(|n| (1..=128).contains(&n.as_bytes().len()));
        if !ok {
            f.fail(
                "e_ocsp_nonce",
                "RFC 9654 §2.1",
                "the nonce is a non-critical OCTET STRING of 1 to 128 octets",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ca::{self, CaSpec};
    use crate::clock::SystemClock;
    use crate::crl::RevocationReason;
    use crate::error::OcspError;
    use crate::extensions::key_identifier;
    use crate::key::{KeyAlgorithm, SoftwareKey};
    use crate::name::{build_name, AttributeKind};
    use crate::ocsp::{build_compact_response, IssuerHashes, SingleStatus, Status};
    use crate::signer::SigningKey;

    fn statuses(status: Status, this_update: UnixTime, next_update: UnixTime) -> Vec<SingleStatus> {
        let key = Arc::new(
            SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &crate::random::OsRandom)
                .unwrap()
                .0,
        );
        let root = ca::create_root(
            &CaSpec {
                id: "root".into(),
                subject: build_name(&[(AttributeKind::CN, "Lint Root".into())]).unwrap(),
                validity_secs: 86_400,
                path_len: None,
                name_constraints: None,
            },
            key,
            None,
            &SystemClock,
            &crate::random::OsRandom,
        )
        .unwrap();
        let serial = x509_cert::serial_number::SerialNumber::new(&[1, 2, 3]).unwrap();
        vec![SingleStatus {
            cert_id: IssuerHashes::of(root.certificate())
                .unwrap()
                .cert_id(serial)
                .unwrap(),
            status,
            this_update,
            next_update,
        }]
    }

    fn refused(result: Result<Vec<u8>, OcspError>) -> Vec<&'static str> {
        match result {
            Err(OcspError::Lint(failure)) => failure.findings.iter().map(|f| f.check).collect(),
            other => panic!("expected a lint refusal: {other:?}"),
        }
    }

    #[test]
    fn good_responses_pass_and_bad_ones_are_refused_before_signing() {
        let (responder, _) =
            SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &crate::random::OsRandom).unwrap();
        let now = UnixTime::now();
        let good = statuses(Status::Good, now, now.plus(3600));
        let compact = build_compact_response(&responder, &good, now, Some(&[7; 16])).unwrap();
        assert!(!compact.is_empty());
        let revoked_later = statuses(
            Status::Revoked {
                revoked_at: now.plus(60),
                reason: RevocationReason::KeyCompromise,
            },
            now,
            now.plus(3600),
        );
        assert_eq!(
            refused(build_compact_response(
                &responder,
                &revoked_later,
                now,
                None
            )),
            vec!["e_ocsp_revocation_time_not_after_this_update"]
        );
        let backwards = statuses(Status::Good, now, now);
        assert_eq!(
            refused(build_compact_response(&responder, &backwards, now, None)),
            vec!["e_ocsp_next_update_after_this_update"]
        );
        let from_the_future = statuses(Status::Good, now.plus(600), now.plus(3600));
        assert_eq!(
            refused(build_compact_response(
                &responder,
                &from_the_future,
                now,
                None
            )),
            vec!["e_ocsp_this_update_not_after_produced_at"]
        );
        assert!(refused(build_compact_response(&responder, &[], now, None))
            .contains(&"e_ocsp_responses_present"));
    }

    #[test]
    fn the_responder_id_must_name_the_signing_key() {
        let (responder, _) =
            SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &crate::random::OsRandom).unwrap();
        let (other, _) =
            SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &crate::random::OsRandom).unwrap();
        let now = UnixTime::now();
        let compact = build_compact_response(
            &responder,
            &statuses(Status::Good, now, now.plus(60)),
            now,
            None,
        )
        .unwrap();
        let (tbs, _) = crate::tlv::split(&compact)
            .map(|t| (t.whole.to_vec(), ()))
            .unwrap();
        lint_response_data(&tbs, &key_identifier(responder.public_key_info())).unwrap();
        let findings = lint_response_data(&tbs, &key_identifier(other.public_key_info()))
            .unwrap_err()
            .findings;
        assert_eq!(findings[0].check, "e_ocsp_responder_key_hash");
    }
}
