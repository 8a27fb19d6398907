//! What the OCSP service serves from memory: responses without their responder certificate,
//! keyed by (CA index, serial), with their CertID-hash variants packed beside them.

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, RwLock};

use ca_core::crl::RevocationReason;
use ca_core::ocsp::{self, CertIdHash, Status};
use ca_core::time::UnixTime;
use sha2::{Digest, Sha256};

use crate::store::models::OcspResponseRow;

/// A cached, signed response, held without its responder certificate (which lies outside the
/// signature and is the same for every response): about 300 bytes per certificate instead of
/// 900. [`CachedResponse::der`] puts the certificate back when it is served.
#[derive(Debug)]
pub struct CachedResponse {
    /// The signed part ([`ocsp::split_response`]).
    pub compact: actix_web::web::Bytes,
    /// The responder certificate field it was signed with, shared by every response of that
    /// responder key.
    pub certs: actix_web::web::Bytes,
    /// thisUpdate (Unix seconds).
    pub this_update: u64,
    /// nextUpdate (Unix seconds).
    pub next_update: u64,
    /// A tag that changes whenever the bytes change (first 8 bytes of SHA-256).
    pub etag: u64,
    /// When the row it came from was stored (Unix ms, `ocsp_responses.updated_ms`): with
    /// thisUpdate, how a poll recognises a row it already holds without reading its DER.
    pub updated_ms: i64,
    /// Metrics label index: 0 good, 1 revoked, 2 unknown.
    pub status: u8,
    /// The status it reports, so that requests signed fresh (nonce echoed) need no database.
    pub detail: Status,
    /// Signatures of the same response under other CertID hashes (SHA-256, SHA-384, SHA-512),
    /// made on the first request for each and kept until the response is replaced, packed as
    /// `[hash index][length, 2 octets][signature BIT STRING]` in one exact allocation: about 80
    /// bytes each instead of a second response ([`ocsp::assemble_variant`]).
    variants: std::sync::Mutex<Box<[u8]>>,
}

pub(super) type CacheKey = (u16, [u8; 20]);

impl CachedResponse {
    /// The entry for a response: its complete DER (for the ETag), its compact form, the shared
    /// responder certificate field, what it reports, (thisUpdate, nextUpdate) and its row's
    /// `updated_ms`.
    pub(super) fn new(
        der: &[u8],
        compact: Vec<u8>,
        certs: actix_web::web::Bytes,
        detail: Status,
        (this_update, next_update): (u64, u64),
        updated_ms: i64,
    ) -> Arc<CachedResponse> {
        Arc::new(CachedResponse {
            etag: etag_of(der),
            // An exact allocation: a freshly signed response's Vec grew when its signature was
            // appended and holds about twice its length, and `Bytes::from(Vec)` keeps all of it.
            compact: compact.into_boxed_slice().into(),
            certs,
            this_update,
            next_update,
            updated_ms,
            status: match detail {
                Status::Good => 0,
                Status::Revoked { .. } => 1,
                Status::Unknown => 2,
            },
            detail,
            variants: std::sync::Mutex::new(Box::default()),
        })
    }

    /// The kept signature under `hash`, copied out.
    pub(super) fn variant(&self, hash: CertIdHash) -> Option<Vec<u8>> {
        let held = self.variants.lock().ok()?;
        let found = packed_variants(&held)
            .find(|(h, _)| *h == hash)
            .map(|(_, signature)| signature.to_vec());
        found
    }

    /// Keeps `signature` under `hash` (once; the first one stays).
    pub(super) fn keep_variant(&self, hash: CertIdHash, signature: &[u8]) {
        let Ok(len) = u16::try_from(signature.len()) else {
            return;
        };
        let Some(index) = CertIdHash::ALL.iter().position(|h| *h == hash) else {
            return;
        };
        if let Ok(mut held) = self.variants.lock() {
            if packed_variants(&held).any(|(h, _)| h == hash) {
                return;
            }
            let mut grown = Vec::with_capacity(held.len() + 3 + signature.len());
            grown.extend_from_slice(&held);
            grown.push(index as u8);
            grown.extend_from_slice(&len.to_be_bytes());
            grown.extend_from_slice(signature);
            *held = grown.into_boxed_slice();
        }
    }

    /// The complete OCSPResponse DER, as signed.
    pub fn der(&self) -> actix_web::web::Bytes {
        ocsp::expand_response(&self.compact, &self.certs)
            .map(Into::into)
            .unwrap_or_default()
    }
}

/// Responses by (CA, serial), shared by the request handlers.
#[derive(Debug, Default)]
pub struct OcspCache {
    pub(super) map: RwLock<HashMap<CacheKey, Arc<CachedResponse>>>,
    pub(super) last_poll_ms: AtomicI64,
    /// Per CA, the last serial the upkeep's sweep for missing responses checked ("" to start
    /// over).
    pub(super) sweep: std::sync::Mutex<HashMap<String, String>>,
    /// The responder certificate fields seen, so every response shares one copy.
    pub(super) certs: std::sync::Mutex<Vec<actix_web::web::Bytes>>,
    /// The latest thisUpdate (Unix seconds) this process has signed: after the clock steps
    /// back, responses keep this time until the clock catches up.
    pub(super) signed_up_to: std::sync::atomic::AtomicU64,
}

impl OcspCache {
    /// How many responses are held.
    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn put(&self, key: CacheKey, entry: Arc<CachedResponse>) {
        if let Ok(mut map) = self.map.write() {
            map.insert(key, entry);
        }
    }

    /// Drops the responses whose nextUpdate is at or before `now`, which are never served again:
    /// those of certificates that expired (the upkeep no longer re-signs them), or of a
    /// certificate whose newer response this instance has not seen. Returns how many went.
    /// Without this the cache held every certificate ever issued for the life of the process.
    pub(super) fn evict_expired(&self, now: u64) -> usize {
        // Found under the read lock, so that answering requests waits only for the removals.
        let expired: Vec<CacheKey> = match self.map.read() {
            Ok(map) => map
                .iter()
                .filter(|(_, entry)| entry.next_update <= now)
                .map(|(key, _)| *key)
                .collect(),
            Err(_) => return 0,
        };
        if expired.is_empty() {
            return 0;
        }
        let Ok(mut map) = self.map.write() else {
            return 0;
        };
        let before = map.len();
        for key in &expired {
            // A response put since the scan (a re-signing) is current: it stays.
            if map.get(key).is_some_and(|entry| entry.next_update <= now) {
                map.remove(key);
            }
        }
        let gone = before - map.len();
        // Give back the table's memory once it is mostly empty.
        if map.capacity() > 4 * map.len().max(1024) {
            map.shrink_to_fit();
        }
        gone
    }

    pub(super) fn intern(&self, certs: Vec<u8>) -> actix_web::web::Bytes {
        let Ok(mut seen) = self.certs.lock() else {
            return certs.into();
        };
        if let Some(known) = seen.iter().find(|c| c.as_ref() == certs.as_slice()) {
            return known.clone();
        }
        let shared = actix_web::web::Bytes::from(certs);
        if seen.len() >= 16 {
            seen.remove(0);
        }
        seen.push(shared.clone());
        shared
    }
}

/// The (hash, signature) pairs of a [`CachedResponse`]'s packed variants.
pub(super) fn packed_variants(mut packed: &[u8]) -> impl Iterator<Item = (CertIdHash, &[u8])> {
    std::iter::from_fn(move || {
        let (&index, rest) = packed.split_first()?;
        let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        let signature = rest.get(2..2 + len)?;
        packed = &rest[2 + len..];
        Some((*CertIdHash::ALL.get(usize::from(index))?, signature))
    })
}

pub(super) fn serial_key(bytes: &[u8]) -> Option<[u8; 20]> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let digits = &bytes[start..];
    if digits.len() > 20 {
        return None;
    }
    let mut key = [0u8; 20];
    key[20 - digits.len()..].copy_from_slice(digits);
    Some(key)
}

/// A response this instance just signed: the row to store, and the cache entry and key made
/// from the same parts.
#[derive(Debug)]
pub(crate) struct SignedResponse {
    /// The row to store (shared with the queued write that stores it).
    pub(crate) row: Arc<OcspResponseRow>,
    pub(super) key: CacheKey,
    pub(super) entry: Arc<CachedResponse>,
}

pub(super) fn etag_of(der: &[u8]) -> u64 {
    let digest = Sha256::digest(der);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The status a single-response OCSPResponse reports, with revocation time and reason, read from
/// the compact form ([`ocsp::split_response`]), which starts with tbsResponseData: only that is
/// decoded, not the responder certificate carried in the full response.
pub(super) fn single_status(compact: &[u8]) -> Option<Status> {
    use ca_core::der::{Decode, SliceReader};
    let mut reader = SliceReader::new(compact).ok()?;
    let tbs = x509_ocsp::ResponseData::decode(&mut reader).ok()?;
    Some(match &tbs.responses.first()?.cert_status {
        x509_ocsp::CertStatus::Good(_) => Status::Good,
        x509_ocsp::CertStatus::Revoked(info) => Status::Revoked {
            revoked_at: UnixTime(info.revocation_time.0.to_unix_duration().as_secs()),
            reason: info
                .revocation_reason
                .map(RevocationReason::from_crl_reason)
                .unwrap_or(RevocationReason::Unspecified),
        },
        x509_ocsp::CertStatus::Unknown(_) => Status::Unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ca_core::ocsp::SingleStatus;

    #[test]
    fn status_is_read_from_the_compact_form() {
        use ca_core::der::asn1::OctetString;
        use ca_core::key::{KeyAlgorithm, SoftwareKey};
        let (key, _) =
            SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &ca_core::random::OsRandom).unwrap();
        let cert_id = x509_ocsp::CertId {
            hash_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
                oid: const_oid::db::rfc5912::ID_SHA_1,
                parameters: Some(ca_core::der::asn1::Null.into()),
            },
            issuer_name_hash: OctetString::new(vec![1; 20]).unwrap(),
            issuer_key_hash: OctetString::new(vec![2; 20]).unwrap(),
            serial_number: x509_cert::serial_number::SerialNumber::new(&[0x42]).unwrap(),
        };
        let revoked = Status::Revoked {
            revoked_at: UnixTime(1_700_000_000),
            reason: RevocationReason::KeyCompromise,
        };
        for status in [Status::Good, revoked, Status::Unknown] {
            let compact = ocsp::build_compact_response(
                &key,
                &[SingleStatus {
                    cert_id: cert_id.clone(),
                    status,
                    this_update: UnixTime(1_700_000_100),
                    next_update: UnixTime(1_700_086_500),
                }],
                UnixTime(1_700_000_100),
                None,
            )
            .unwrap();
            assert_eq!(single_status(&compact), Some(status));
        }
        assert_eq!(single_status(&[0x30, 0x03, 0x02, 0x01]), None);
    }

    #[test]
    fn variants_are_packed_once_per_hash() {
        let entry = CachedResponse::new(
            &[0x30, 0x00],
            vec![0x30, 0x00],
            actix_web::web::Bytes::new(),
            Status::Good,
            (1, 2),
            0,
        );
        assert_eq!(entry.variant(CertIdHash::Sha256), None);
        entry.keep_variant(CertIdHash::Sha256, &[3, 2, 0, 7]);
        entry.keep_variant(CertIdHash::Sha512, &[3, 3, 0, 8, 9]);
        entry.keep_variant(CertIdHash::Sha256, &[3, 2, 0, 1]);
        assert_eq!(entry.variant(CertIdHash::Sha256), Some(vec![3, 2, 0, 7]));
        assert_eq!(entry.variant(CertIdHash::Sha512), Some(vec![3, 3, 0, 8, 9]));
        assert_eq!(entry.variant(CertIdHash::Sha384), None);
        assert_eq!(entry.variants.lock().unwrap().len(), 3 + 4 + 3 + 5);
        assert_eq!(packed_variants(&[1, 0, 9, 1]).count(), 0, "truncated");
    }

    #[test]
    fn responses_past_their_next_update_are_evicted() {
        let cache = OcspCache::default();
        let entry = |next_update| {
            CachedResponse::new(
                &[0x30, 0x00],
                vec![0x30, 0x00],
                actix_web::web::Bytes::new(),
                Status::Good,
                (1, next_update),
                0,
            )
        };
        for serial in 0..3u8 {
            cache.put((0, [serial; 20]), entry(100 + u64::from(serial)));
        }
        assert_eq!(cache.evict_expired(99), 0);
        assert_eq!(cache.evict_expired(101), 2, "nextUpdate 100 and 101");
        assert_eq!(cache.len(), 1);
        assert!(cache.map.read().unwrap().contains_key(&(0, [2; 20])));
        assert_eq!(cache.evict_expired(200), 1);
        assert!(cache.is_empty());
    }

    #[test]
    fn serial_keys_ignore_leading_zeros() {
        assert_eq!(serial_key(&[0, 1]), serial_key(&[1]));
        assert_ne!(serial_key(&[1, 0]), serial_key(&[1]));
        assert!(serial_key(&[1; 21]).is_none());
    }
}
