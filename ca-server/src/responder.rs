//! The OCSP responder (RFC 6960, RFC 9919) for every CA, the root included: the delegated
//! responder certificates Mamori issues and renews itself (one per CA, each issued by that CA),
//! pre-signed responses for every unexpired certificate (stored in `ocsp_responses` under their
//! SHA-1 CertID and cached in memory), re-signed at once on revoke, hold and release and refreshed
//! at half their validity. A SHA-256, SHA-384 or SHA-512 CertID is answered from the same cached
//! response, re-signed once under that CertID and kept with it. Fresh signing only where a
//! request needs it (a nonce when `ocsp_nonce = "echo"`, several CertIDs, or an unusual CertID
//! encoding).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use ca_core::crl::RevocationReason;
use ca_core::csr::VerifiedCsr;
use ca_core::issuance::{IssuanceOptions, PreparedIssuance};
use ca_core::key::SoftwareKey;
use ca_core::ocsp::{self, CertIdHash, SingleStatus, Status};
use ca_core::profile::Profile;
use ca_core::serial::{parse_serial_hex, serial_hex};
use ca_core::time::UnixTime;
use diesel::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::audit_log;
use crate::authority::{Authority, Responder};
use crate::error::ServiceError;
use crate::store::models::*;
use crate::store::schema::*;
use crate::store::DbConnection;

/// Stored OCSP responses read per query while the cache catches up with the database.
const POLL_PAGE: i64 = 5_000;
/// Responses the upkeep signs and then stores in one transaction.
const REFRESH_BATCH: usize = 256;
/// The most responses of one kind one upkeep re-signs (stale ones in all, outdated ones per
/// CA); the rest wait for the next upkeep.
const REFRESH_LIMIT: i64 = 20_000;
/// Certificates of each CA the upkeep checks for a missing response per run (see
/// `missing_responses`); also the most it signs for them per CA and run.
const SWEEP_CHUNK: i64 = 20_000;

/// Whether requests with a nonce get a freshly signed response echoing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NonceMode {
    /// Default: answer from the pre-signed cache without a nonce (RFC 9919, like RFC 5019 before it, permits it).
    /// Signing per request would let anyone spend the responder's CPU at will, and the
    /// responders relying parties use (Windows, Java, VPN gateways) do not send nonces.
    #[default]
    Ignore,
    /// Sign a fresh response echoing the nonce (RFC 9654).
    Echo,
}

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

type CacheKey = (u16, [u8; 20]);

impl CachedResponse {
    /// The entry for a response: its complete DER (for the ETag), its compact form, the shared
    /// responder certificate field, what it reports, (thisUpdate, nextUpdate) and its row's
    /// `updated_ms`.
    fn new(
        der: &[u8],
        compact: Vec<u8>,
        certs: actix_web::web::Bytes,
        detail: Status,
        (this_update, next_update): (u64, u64),
        updated_ms: i64,
    ) -> Arc<CachedResponse> {
        Arc::new(CachedResponse {
            etag: etag_of(der),
            compact: compact.into(),
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
    fn variant(&self, hash: CertIdHash) -> Option<Vec<u8>> {
        let held = self.variants.lock().ok()?;
        let found = packed_variants(&held)
            .find(|(h, _)| *h == hash)
            .map(|(_, signature)| signature.to_vec());
        found
    }

    /// Keeps `signature` under `hash` (once; the first one stays).
    fn keep_variant(&self, hash: CertIdHash, signature: &[u8]) {
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
    map: RwLock<HashMap<CacheKey, Arc<CachedResponse>>>,
    last_poll_ms: AtomicI64,
    /// Per CA, the last serial the upkeep's sweep for missing responses checked ("" to start
    /// over).
    sweep: std::sync::Mutex<HashMap<String, String>>,
    /// The responder certificate fields seen, so every response shares one copy.
    certs: std::sync::Mutex<Vec<actix_web::web::Bytes>>,
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

    fn put(&self, key: CacheKey, entry: Arc<CachedResponse>) {
        if let Ok(mut map) = self.map.write() {
            map.insert(key, entry);
        }
    }

    fn intern(&self, certs: Vec<u8>) -> actix_web::web::Bytes {
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
fn packed_variants(mut packed: &[u8]) -> impl Iterator<Item = (CertIdHash, &[u8])> {
    std::iter::from_fn(move || {
        let (&index, rest) = packed.split_first()?;
        let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        let signature = rest.get(2..2 + len)?;
        packed = &rest[2 + len..];
        Some((*CertIdHash::ALL.get(usize::from(index))?, signature))
    })
}

fn serial_key(bytes: &[u8]) -> Option<[u8; 20]> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let digits = &bytes[start..];
    if digits.len() > 20 {
        return None;
    }
    let mut key = [0u8; 20];
    key[20 - digits.len()..].copy_from_slice(digits);
    Some(key)
}

/// What the OCSP endpoint sends back.
#[derive(Debug)]
pub struct OcspAnswer {
    /// The OCSPResponse DER.
    pub der: actix_web::web::Bytes,
    /// For cacheable (pre-signed) answers: thisUpdate, nextUpdate and the ETag value.
    pub cache: Option<(u64, u64, u64)>,
}

/// Milliseconds since the epoch (change stamps shared between instances).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A response this instance just signed: the row to store, and the cache entry and key made
/// from the same parts.
#[derive(Debug)]
pub(crate) struct SignedResponse {
    /// The row to store (shared with the queued write that stores it).
    pub(crate) row: Arc<OcspResponseRow>,
    key: CacheKey,
    entry: Arc<CachedResponse>,
}

fn etag_of(der: &[u8]) -> u64 {
    let digest = Sha256::digest(der);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

impl Authority {
    fn ca_index(&self, ca_id: &str) -> Option<u16> {
        self.issuer_hashes
            .iter()
            .position(|(id, _)| id == ca_id)
            .map(|i| i as u16)
    }

    /// The current status of one certificate, from the database.
    pub(crate) fn status_of(
        &self,
        conn: &mut DbConnection,
        ca_id: &str,
        serial: &str,
    ) -> Result<Status, ServiceError> {
        let row: Option<(String, Option<i64>, Option<String>)> = certificates::table
            .find((ca_id, serial))
            .select((
                certificates::status,
                certificates::revoked_at,
                certificates::revocation_reason,
            ))
            .first(conn)
            .optional()?;
        Ok(match row {
            Some((s, _, _)) if s == "valid" => Status::Good,
            Some((s, at, reason)) if s == "revoked" || s == "hold" => Status::Revoked {
                revoked_at: UnixTime(at.unwrap_or(0).max(0) as u64),
                reason: reason
                    .as_deref()
                    .and_then(RevocationReason::parse)
                    .unwrap_or(RevocationReason::Unspecified),
            },
            _ => Status::Unknown,
        })
    }

    fn cache_insert(&self, row: &OcspResponseRow) {
        let (ca_id, serial, der) = (&row.ca_id, &row.serial, &row.der);
        let (this_update, next_update) =
            (row.this_update.max(0) as u64, row.next_update.max(0) as u64);
        let (Some(index), Some(key)) = (
            self.ca_index(ca_id),
            parse_serial_hex(serial).and_then(|s| serial_key(s.as_bytes())),
        ) else {
            return;
        };
        let Ok((compact, certs)) = ocsp::split_response(der) else {
            return;
        };
        let Some(detail) = single_status(&compact) else {
            return;
        };
        let entry = CachedResponse::new(
            der,
            compact,
            self.ocsp_cache.intern(certs),
            detail,
            (this_update, next_update),
            row.updated_ms,
        );
        self.ocsp_cache.put((index, key), entry);
    }

    /// Signs, stores and caches the canonical (SHA-1 CertID) response for one certificate.
    pub(crate) fn presign(
        &self,
        conn: &mut DbConnection,
        ca_id: &str,
        serial: &str,
    ) -> Result<Option<Arc<CachedResponse>>, ServiceError> {
        let pair = (ca_id.to_string(), serial.to_string());
        Ok(self.presign_all(conn, &[&pair])?.pop().flatten())
    }

    /// Signs the canonical responses for several certificates, stores them in one transaction
    /// (one commit for the lot, not one per response), then caches them. Certificates whose
    /// status is unknown or whose CA this instance does not answer for are skipped.
    fn presign_all(
        &self,
        conn: &mut DbConnection,
        certificates: &[&(String, String)],
    ) -> Result<Vec<Option<Arc<CachedResponse>>>, ServiceError> {
        let mut signed = Vec::with_capacity(certificates.len());
        for (ca_id, serial) in certificates {
            let status = self.status_of(conn, ca_id, serial)?;
            if status == Status::Unknown {
                continue;
            }
            if let Some(response) = self.sign_response(ca_id, serial, status)? {
                signed.push(response);
            }
        }
        if !signed.is_empty() {
            crate::store::write_transaction::<_, ServiceError, _>(&mut *conn, |conn| {
                signed
                    .iter()
                    .try_for_each(|response| store_response(conn, &response.row))
            })?;
        }
        Ok(signed
            .iter()
            .map(|response| Some(self.cache_signed(response)))
            .collect())
    }

    /// Signs the canonical (SHA-1 CertID) response reporting `status` for one certificate, as
    /// the row to store ([`store_response`]) and the cache entry made from the same parts, put
    /// into the cache once the row is durable ([`Authority::cache_signed`]) without decoding
    /// what was just encoded. `None` for a CA this instance does not answer for.
    pub(crate) fn sign_response(
        &self,
        ca_id: &str,
        serial: &str,
        status: Status,
    ) -> Result<Option<SignedResponse>, ServiceError> {
        let Some((index, hashes)) = self
            .issuer_hashes
            .iter()
            .enumerate()
            .find(|(_, (id, _))| id == ca_id)
            .map(|(i, (_, h))| (i as u16, h))
        else {
            return Ok(None);
        };
        let Some((serial_number, key)) =
            parse_serial_hex(serial).and_then(|s| serial_key(s.as_bytes()).map(|key| (s, key)))
        else {
            return Ok(None);
        };
        let responder = self.responder(ca_id)?;
        let now = self.now();
        let next = now.plus(self.config.ocsp_validity_secs);
        let cert_id = hashes
            .cert_id(serial_number)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let compact = ocsp::build_compact_response(
            &responder.key,
            &[SingleStatus {
                cert_id,
                status,
                this_update: now,
                next_update: next,
            }],
            now,
            None,
        )
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let der = ocsp::expand_response(&compact, &responder.certs_field)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let updated_ms = now_ms();
        let entry = CachedResponse::new(
            &der,
            compact,
            responder.certs_field.clone(),
            status,
            (now.as_secs(), next.as_secs()),
            updated_ms,
        );
        Ok(Some(SignedResponse {
            row: Arc::new(OcspResponseRow {
                ca_id: ca_id.to_string(),
                serial: serial.to_string(),
                der,
                this_update: now.as_secs() as i64,
                next_update: next.as_secs() as i64,
                updated_ms,
                origin: self.origin,
            }),
            key: (index, key),
            entry,
        }))
    }

    /// Puts a response this instance signed into the cache (after the transaction that stored
    /// its row committed) and returns the entry.
    pub(crate) fn cache_signed(&self, signed: &SignedResponse) -> Arc<CachedResponse> {
        self.ocsp_cache.put(signed.key, signed.entry.clone());
        signed.entry.clone()
    }

    /// Answers from the in-memory cache alone, without the database or a blocking thread: one
    /// canonical SHA-1 CertID, no nonce to echo, a current response. `None` when the request
    /// needs more (the caller then goes through [`Authority::ocsp`]).
    ///
    /// A nonce to echo is signed here too (about 30 µs on the calling worker, cheaper than the
    /// hop to a blocking thread) when every status it asks for is held in memory.
    pub fn ocsp_cached(&self, request_der: &[u8]) -> Option<OcspAnswer> {
        let parsed = ocsp::parse_request(request_der).ok()?;
        if parsed.nonce.is_some() && self.config.ocsp_nonce == NonceMode::Echo {
            let (hash, id) = parsed.cert_ids.first()?;
            let (ca_id, _) = self
                .issuer_hashes
                .iter()
                .find(|(_, h)| h.matches(*hash, id))?;
            let all_same_issuer = parsed.cert_ids.iter().all(|(hash, id)| {
                self.issuer_hashes
                    .iter()
                    .find(|(_, h)| h.matches(*hash, id))
                    .is_some_and(|(c, _)| c == ca_id)
            });
            if !all_same_issuer {
                return None;
            }
            let der = self.ocsp_fresh(ca_id, &parsed, true, true).ok()??;
            return Some(OcspAnswer {
                der: der.into(),
                cache: None,
            });
        }
        if parsed.cert_ids.len() != 1 {
            return None;
        }
        let (hash, id) = &parsed.cert_ids[0];
        let index = self
            .issuer_hashes
            .iter()
            .position(|(_, h)| h.matches(*hash, id))?;
        let canonical = self.issuer_hashes[index]
            .1
            .cert_id_with(*hash, id.serial_number.clone())
            .ok()?;
        if canonical != *id {
            return None;
        }
        let key = serial_key(id.serial_number.as_bytes())?;
        let entry = self
            .ocsp_cache
            .map
            .read()
            .ok()?
            .get(&(index as u16, key))
            .cloned()?;
        if entry.next_update <= self.now().as_secs() {
            return None;
        }
        let answer = self.answer_from(index, &entry, *hash, id)?;
        self.metrics
            .ocsp(["good", "revoked", "unknown"][entry.status as usize % 3]);
        Some(answer)
    }

    /// The answer to CertID `id` (hash `hash`, canonical encoding) from `entry`, the pre-signed
    /// SHA-1 response for the same certificate of CA `index`: the response itself for SHA-1;
    /// for another hash the same response under that CertID, signed on the first request and
    /// kept with the entry. `None` when the responder key that signed `entry` is no longer the
    /// current one (the caller then signs afresh).
    fn answer_from(
        &self,
        index: usize,
        entry: &CachedResponse,
        hash: CertIdHash,
        id: &x509_ocsp::CertId,
    ) -> Option<OcspAnswer> {
        if hash == CertIdHash::Sha1 {
            return Some(OcspAnswer {
                der: entry.der(),
                cache: Some((entry.this_update, entry.next_update, entry.etag)),
            });
        }
        let signature = match entry.variant(hash) {
            Some(signature) => signature,
            None => {
                let responder = self.responder(&self.issuer_hashes.get(index)?.0).ok()?;
                if responder.certs_field != entry.certs {
                    return None;
                }
                let signature = ocsp::sign_variant(&responder.key, &entry.compact, id).ok()?;
                entry.keep_variant(hash, &signature);
                signature
            }
        };
        let compact = ocsp::assemble_variant(&entry.compact, id, &signature).ok()?;
        let der = ocsp::expand_response(&compact, &entry.certs).ok()?;
        Some(OcspAnswer {
            der: der.into(),
            cache: Some((
                entry.this_update,
                entry.next_update,
                entry.etag ^ (hash.digest_len() as u64),
            )),
        })
    }

    fn cached(&self, ca_id: &str, serial: &str) -> Option<Arc<CachedResponse>> {
        let index = self.ca_index(ca_id)?;
        let key = serial_key(parse_serial_hex(serial)?.as_bytes())?;
        self.ocsp_cache.map.read().ok()?.get(&(index, key)).cloned()
    }

    fn responder(&self, ca_id: &str) -> Result<Arc<Responder>, ServiceError> {
        self.responders
            .read()
            .ok()
            .and_then(|m| m.get(ca_id).cloned())
            .ok_or_else(|| ServiceError::Internal(format!("no OCSP responder for {ca_id}")))
    }

    /// Live, unexpired certificates without a stored response, found by a sweep that checks
    /// [`SWEEP_CHUNK`] certificates of each CA per call in serial order and resumes after the
    /// last one at the next call (wrapping at the end). Issuance pre-signs at once, so this is
    /// the safety net (a failed pre-signature, rows added by other means); a sweep keeps each
    /// upkeep's cost bounded where a query over the whole table read every certificate of a
    /// large CA at every maintenance interval.
    fn missing_responses(
        &self,
        conn: &mut DbConnection,
        now: i64,
    ) -> Result<Vec<(String, String)>, ServiceError> {
        let mut missing = Vec::new();
        for (ca_id, _) in &self.issuer_hashes {
            let after = self
                .ocsp_cache
                .sweep
                .lock()
                .ok()
                .and_then(|cursors| cursors.get(ca_id).cloned())
                .unwrap_or_default();
            let chunk: Vec<(String, String, i64)> = certificates::table
                .filter(certificates::ca_id.eq(ca_id))
                .filter(certificates::serial.gt(&after))
                .order(certificates::serial.asc())
                .select((
                    certificates::serial,
                    certificates::status,
                    certificates::not_after,
                ))
                .limit(SWEEP_CHUNK)
                .load(conn)?;
            let next = match chunk.last() {
                Some((last, _, _)) if chunk.len() as i64 == SWEEP_CHUNK => last.clone(),
                _ => String::new(),
            };
            if let Some((last, _, _)) = chunk.last() {
                let present: std::collections::HashSet<String> = ocsp_responses::table
                    .filter(ocsp_responses::ca_id.eq(ca_id))
                    .filter(ocsp_responses::serial.gt(&after))
                    .filter(ocsp_responses::serial.le(last))
                    .select(ocsp_responses::serial)
                    .load::<String>(conn)?
                    .into_iter()
                    .collect();
                missing.extend(
                    chunk
                        .into_iter()
                        .filter(|(serial, status, not_after)| {
                            matches!(status.as_str(), "valid" | "revoked" | "hold")
                                && *not_after > now
                                && !present.contains(serial)
                        })
                        .map(|(serial, _, _)| (ca_id.clone(), serial)),
                );
            }
            if let Ok(mut cursors) = self.ocsp_cache.sweep.lock() {
                cursors.insert(ca_id.clone(), next);
            }
        }
        Ok(missing)
    }

    /// Pre-signs every unexpired certificate that has no response yet, whose response is past
    /// half its validity, or whose status changed after its response was signed (a revocation
    /// whose re-signing was cut short, e.g. by a crash). Returns how many were signed.
    pub fn refresh_responses(&self) -> Result<usize, ServiceError> {
        let mut conn = self.conn()?;
        let now = self.now().as_secs() as i64;
        let half = (self.config.ocsp_validity_secs / 2) as i64;
        let missing = self.missing_responses(&mut conn, now)?;
        let stale: Vec<(String, String)> = ocsp_responses::table
            .filter(ocsp_responses::this_update.le(now - half))
            .select((ocsp_responses::ca_id, ocsp_responses::serial))
            .limit(REFRESH_LIMIT)
            .load(&mut conn)?;
        // A status change whose response predates it. Only changes of the last half validity
        // (and a minute) need looking at: a response older than a change made before that is
        // past half its validity, so `stale` above already re-signs it.
        let changed_since_ms = (now - half - 60) * 1000;
        let mut outdated: Vec<(String, String)> = Vec::new();
        for (ca_id, _) in &self.issuer_hashes {
            outdated.extend(
                certificates::table
                    .inner_join(
                        ocsp_responses::table.on(ocsp_responses::ca_id
                            .eq(certificates::ca_id)
                            .and(ocsp_responses::serial.eq(certificates::serial))),
                    )
                    .filter(certificates::ca_id.eq(ca_id))
                    .filter(certificates::status_changed_ms.gt(changed_since_ms))
                    .filter(certificates::status_changed_ms.gt(ocsp_responses::updated_ms))
                    .select((certificates::ca_id, certificates::serial))
                    .limit(REFRESH_LIMIT)
                    .load::<(String, String)>(&mut conn)?,
            );
        }
        let due: Vec<&(String, String)> = missing
            .iter()
            .chain(stale.iter())
            .chain(outdated.iter())
            .filter(|(ca, _)| self.ca_index(ca).is_some())
            .collect();
        let mut signed = 0;
        // One commit per batch, not per response: a responder starting with 20,000 responses to
        // sign waits for 79 flushes instead of 20,000.
        for batch in due.chunks(REFRESH_BATCH) {
            signed += self.presign_all(&mut conn, batch)?.len();
        }
        diesel::delete(ocsp_responses::table.filter(ocsp_responses::next_update.lt(now - 86_400)))
            .execute(&mut conn)?;
        Ok(signed)
    }

    /// Loads responses other instances (or this one) stored since the last poll into the cache.
    /// While the database is unreachable the cache keeps answering until each nextUpdate.
    ///
    /// Each poll looks back 5 s (a row becomes visible at its commit, after its `updated_ms`), so
    /// while this instance issues it sees its own new rows about five times. It first reads only
    /// each row's key and times, and reads the DER only of rows the cache does not hold: at a few
    /// thousand issuances per second the full rows were ~20 MB per poll.
    pub fn poll_responses(&self) -> Result<usize, ServiceError> {
        let since = self.ocsp_cache.last_poll_ms.load(Ordering::Relaxed) - 5_000;
        let started = now_ms();
        let mut conn = self.conn()?;
        let mut count = 0;
        // Keyset pages in (updated_ms, ca_id, serial) order, so that a first poll over a million
        // stored responses holds one page of rows at a time, never all of them.
        let mut after: Option<(i64, String, String)> = None;
        loop {
            // Rows this process stored are cached already (see `Authority::origin`).
            let mut query = ocsp_responses::table
                .filter(ocsp_responses::updated_ms.gt(since))
                .filter(ocsp_responses::origin.ne(self.origin))
                .into_boxed();
            if let Some((ms, ca, serial)) = after.take() {
                query = query.filter(
                    ocsp_responses::updated_ms
                        .gt(ms)
                        .or(ocsp_responses::updated_ms.eq(ms).and(
                            ocsp_responses::ca_id
                                .gt(ca.clone())
                                .or(ocsp_responses::ca_id
                                    .eq(ca)
                                    .and(ocsp_responses::serial.gt(serial))),
                        )),
                );
            }
            let keys: Vec<(i64, String, String, i64)> = query
                .order((
                    ocsp_responses::updated_ms.asc(),
                    ocsp_responses::ca_id.asc(),
                    ocsp_responses::serial.asc(),
                ))
                .limit(POLL_PAGE)
                .select((
                    ocsp_responses::updated_ms,
                    ocsp_responses::ca_id,
                    ocsp_responses::serial,
                    ocsp_responses::this_update,
                ))
                .load(&mut conn)?;
            count += keys.len();
            self.metrics
                .ocsp_poll_rows
                .fetch_add(keys.len() as u64, Ordering::Relaxed);
            let full = keys.len() as i64 == POLL_PAGE;
            let mut wanted: HashMap<String, Vec<String>> = HashMap::new();
            for (updated_ms, ca_id, serial, this_update) in &keys {
                let held = self.cached(ca_id, serial).is_some_and(|current| {
                    current.updated_ms == *updated_ms
                        && current.this_update == (*this_update).max(0) as u64
                });
                if !held {
                    wanted
                        .entry(ca_id.clone())
                        .or_default()
                        .push(serial.clone());
                }
            }
            for (ca_id, serials) in wanted {
                for chunk in serials.chunks(500) {
                    let rows: Vec<OcspResponseRow> = ocsp_responses::table
                        .filter(ocsp_responses::ca_id.eq(&ca_id))
                        .filter(ocsp_responses::serial.eq_any(chunk))
                        .select(OcspResponseRow::as_select())
                        .load(&mut conn)?;
                    self.metrics
                        .ocsp_poll_loaded
                        .fetch_add(rows.len() as u64, Ordering::Relaxed);
                    for row in rows {
                        self.take_polled(&row);
                    }
                }
            }
            if let Some(last) = keys.into_iter().last() {
                after = Some((last.0, last.1, last.2));
            }
            if !full {
                break;
            }
        }
        self.ocsp_cache
            .last_poll_ms
            .store(started, Ordering::Relaxed);
        self.metrics.ocsp_polls.fetch_add(1, Ordering::Relaxed);
        Ok(count)
    }

    /// Caches a polled row unless the cache holds a newer response or this very one.
    fn take_polled(&self, row: &OcspResponseRow) {
        if let Some(current) = self.cached(&row.ca_id, &row.serial) {
            // Newer than the row, or the row itself (this instance stored and cached it, or an
            // earlier poll's overlap loaded it): nothing to decode.
            if current.this_update > row.this_update.max(0) as u64
                || ocsp::response_signature(&row.der)
                    .is_ok_and(|signature| current.compact.ends_with(signature))
            {
                return;
            }
        }
        self.cache_insert(row);
    }

    /// Answers a DER OCSP request. Malformed → malformedRequest; a foreign issuer →
    /// unauthorized. One SHA-1 CertID without a nonce to echo is answered from the cache.
    pub fn ocsp(&self, request_der: &[u8]) -> OcspAnswer {
        use x509_ocsp::OcspResponseStatus;
        let error = |status| OcspAnswer {
            der: ocsp::error_response(status).into(),
            cache: None,
        };
        let parsed = match ocsp::parse_request(request_der) {
            Ok(p) => p,
            Err(e) => {
                self.metrics.ocsp("malformed");
                return error(ocsp::status_for(&e));
            }
        };
        let mut ca_id: Option<&str> = None;
        for (hash, id) in &parsed.cert_ids {
            let found = self
                .issuer_hashes
                .iter()
                .find(|(_, h)| h.matches(*hash, id))
                .map(|(ca, _)| ca.as_str());
            match (found, ca_id) {
                (None, _) => {
                    self.metrics.ocsp("unauthorized");
                    return error(OcspResponseStatus::Unauthorized);
                }
                (Some(f), Some(c)) if f != c => {
                    self.metrics.ocsp("unauthorized");
                    return error(OcspResponseStatus::Unauthorized);
                }
                (Some(f), _) => ca_id = Some(f),
            }
        }
        let Some(ca_id) = ca_id else {
            return error(OcspResponseStatus::MalformedRequest);
        };
        let echo = parsed.nonce.is_some() && self.config.ocsp_nonce == NonceMode::Echo;
        if !echo && parsed.cert_ids.len() == 1 {
            let (hash, id) = &parsed.cert_ids[0];
            let index = self.ca_index(ca_id).map(usize::from);
            let canonical = index
                .and_then(|i| {
                    self.issuer_hashes[i]
                        .1
                        .cert_id_with(*hash, id.serial_number.clone())
                        .ok()
                })
                .is_some_and(|c| c == *id);
            if let (true, Some(index)) = (canonical, index) {
                let serial = serial_hex(&id.serial_number);
                let now = self.now().as_secs();
                let hit = self.cached(ca_id, &serial).filter(|c| c.next_update > now);
                let entry = match hit {
                    Some(e) => Some(e),
                    None => self.conn().ok().and_then(|mut conn| {
                        self.presign(&mut conn, ca_id, &serial).ok().flatten()
                    }),
                };
                if let Some(answer) = entry.and_then(|e| {
                    let answer = self.answer_from(index, &e, *hash, id)?;
                    self.metrics
                        .ocsp(["good", "revoked", "unknown"][e.status as usize % 3]);
                    Some(answer)
                }) {
                    return answer;
                }
            }
        }
        match self
            .ocsp_fresh(ca_id, &parsed, echo, false)
            .and_then(|der| der.ok_or_else(|| ServiceError::Internal("no status".into())))
        {
            Ok(der) => OcspAnswer {
                der: der.into(),
                cache: None,
            },
            Err(e) => {
                tracing::error!(error = %e, "OCSP answer failed");
                self.metrics.ocsp("internal");
                error(OcspResponseStatus::TryLater)
            }
        }
    }

    fn responder_from_row(&self, row: &ResponderRow) -> Result<Responder, ServiceError> {
        let key = SoftwareKey::from_encrypted(row.key_pem.as_bytes(), self.passphrase.as_bytes())
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let certificate =
            <x509_cert::Certificate as ca_core::der::Decode>::from_der(&row.certificate_der)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let certs_field =
            ocsp::certs_field(&certificate).map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(Responder {
            key,
            certs_field: self.ocsp_cache.intern(certs_field),
            not_after: UnixTime(row.not_after.max(0) as u64),
        })
    }

    pub(crate) fn ensure_responder(&self, ca_id: &str) -> Result<(), ServiceError> {
        let now = self.now();
        let window = self
            .profiles
            .get("ocsp-responder")
            .map(|p| p.renewal().window_secs)
            .unwrap_or(3 * 86_400);
        if let Ok(map) = self.responders.read() {
            if map
                .get(ca_id)
                .is_some_and(|r| r.not_after.as_secs() > now.as_secs() + window)
            {
                return Ok(());
            }
        }
        let mut conn = self.conn()?;
        let stored: Option<ResponderRow> = ocsp_responders::table
            .find(ca_id)
            .select(ResponderRow::as_select())
            .first(&mut conn)
            .optional()?;
        let responder = match stored {
            Some(row) if row.not_after as u64 > now.as_secs() + window => self.responder_from_row(&row)?,
            // An OCSP-only instance holds no CA key: it keeps the current responder until the CA
            // instance renews it (within the renewal window).
            Some(row) if self.ocsp_only && row.not_after as u64 > now.as_secs() => self.responder_from_row(&row)?,
            _ if self.ocsp_only => {
                return Err(ServiceError::Internal(format!(
                    "no current OCSP responder certificate for {ca_id} in the database; start a CA instance first"
                )))
            }
            _ => {
                let profile = self.profiles.get("ocsp-responder").ok_or_else(|| {
                    ServiceError::Internal("the ocsp-responder profile is missing".into())
                })?;
                self.issue_responder(&mut conn, ca_id, profile)?
            }
        };
        if let Ok(mut map) = self.responders.write() {
            map.insert(ca_id.to_string(), Arc::new(responder));
        }
        Ok(())
    }

    fn issue_responder(
        &self,
        conn: &mut DbConnection,
        ca_id: &str,
        profile: &Profile,
    ) -> Result<Responder, ServiceError> {
        let ca = self
            .cas
            .get(ca_id)
            .ok_or_else(|| ServiceError::NotFound(format!("CA {ca_id}")))?;
        let internal = |e: String| ServiceError::Internal(e);
        let (key, pkcs8) = SoftwareKey::generate(ca_core::key::KeyAlgorithm::EcdsaP256)
            .map_err(|e| internal(e.to_string()))?;
        let key_pem = ca_core::key::encrypt_pkcs8(&pkcs8, self.passphrase.as_bytes())
            .map_err(|e| internal(e.to_string()))?;
        let subject = ca_core::name::build_name(&[
            (
                ca_core::name::AttributeKind::O,
                self.config.hierarchy.organization.clone(),
            ),
            (
                ca_core::name::AttributeKind::CN,
                format!("Mamori OCSP Responder ({ca_id})"),
            ),
        ])
        .map_err(internal)?;
        let csr_der = ca_core::csr::build_csr(&subject, vec![], &key)?;
        let csr = VerifiedCsr::parse(&csr_der, 2048)?;
        // One profile for every CA's responder: under the root it is the root that signs.
        let profile = &profile.for_issuer(ca_id);
        let prepared =
            PreparedIssuance::prepare(ca, profile, &csr, &IssuanceOptions::default(), &self.clock)?;
        let now = self.now().as_secs() as i64;
        let (issued, serial) =
            crate::signing::reserve_and_sign(conn, ca, prepared, profile.id(), None, now)?;
        crate::store::write_transaction::<_, ServiceError, _>(&mut *conn, |conn| {
            crate::signing::mark_issued(conn, ca_id, &serial, &issued.der)?;
            diesel::delete(ocsp_responders::table.find(ca_id)).execute(conn)?;
            diesel::insert_into(ocsp_responders::table)
                .values(ResponderRow {
                    ca_id: ca_id.to_string(),
                    certificate_der: issued.der.clone(),
                    key_pem,
                    not_after: issued.not_after.as_secs() as i64,
                })
                .execute(conn)?;
            audit_log::append(
                conn,
                now as u64,
                "system",
                "certificate.issue",
                &format!("{ca_id}/{serial}"),
                json!({"profile": profile.id(), "purpose": "OCSP responder"}),
            )?;
            Ok(())
        })?;
        let certificate = <x509_cert::Certificate as ca_core::der::Decode>::from_der(&issued.der)
            .map_err(|e| internal(e.to_string()))?;
        let certs_field = ocsp::certs_field(&certificate).map_err(|e| internal(e.to_string()))?;
        Ok(Responder {
            key,
            certs_field: self.ocsp_cache.intern(certs_field),
            not_after: issued.not_after,
        })
    }

    /// Signs a fresh response for every CertID in `parsed` (nonce echoed when `nonce`). With
    /// `memory_only`, `None` when a status is not held in memory (the database is not asked).
    fn ocsp_fresh(
        &self,
        ca_id: &str,
        parsed: &ocsp::ParsedRequest,
        nonce: bool,
        memory_only: bool,
    ) -> Result<Option<Vec<u8>>, ServiceError> {
        let responder = self
            .responders
            .read()
            .ok()
            .and_then(|m| m.get(ca_id).cloned())
            .ok_or_else(|| ServiceError::Internal(format!("no OCSP responder for {ca_id}")))?;
        let mut conn = None;
        let now = self.now();
        let mut statuses = Vec::with_capacity(parsed.cert_ids.len());
        for (_, id) in &parsed.cert_ids {
            let serial = serial_hex(&id.serial_number);
            // A current pre-signed response knows the status; the database only when none does.
            let known = self
                .cached(ca_id, &serial)
                .filter(|c| c.next_update > now.as_secs())
                .map(|c| c.detail);
            let status = match known {
                Some(status) => status,
                None if memory_only => return Ok(None),
                None => {
                    if conn.is_none() {
                        conn = Some(self.conn()?);
                    }
                    match conn.as_mut() {
                        Some(c) => self.status_of(c, ca_id, &serial)?,
                        None => Status::Unknown,
                    }
                }
            };
            statuses.push(SingleStatus {
                cert_id: id.clone(),
                status,
                this_update: now,
                next_update: now.plus(self.config.ocsp_validity_secs),
            });
        }
        // Signed without the responder certificate, which is then added as the bytes encoded
        // once per responder: re-encoding the certificate for every request cost more than
        // building the rest of the response.
        for single in &statuses {
            self.metrics.ocsp(match single.status {
                Status::Good => "good",
                Status::Revoked { .. } => "revoked",
                Status::Unknown => "unknown",
            });
        }
        let compact = ocsp::build_compact_response(
            &responder.key,
            &statuses,
            now,
            if nonce { parsed.nonce.as_deref() } else { None },
        )
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
        ocsp::expand_response(&compact, &responder.certs_field)
            .map(Some)
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }
}

/// Stores (replaces) a pre-signed response, inside the caller's transaction.
pub(crate) fn store_response(
    conn: &mut DbConnection,
    row: &OcspResponseRow,
) -> Result<(), ServiceError> {
    diesel::delete(ocsp_responses::table.find((&row.ca_id, &row.serial))).execute(conn)?;
    insert_response(conn, row)
}

/// Stores the first response of a certificate that has none (one statement fewer than
/// [`store_response`]; fails if it has one).
pub(crate) fn insert_response(
    conn: &mut DbConnection,
    row: &OcspResponseRow,
) -> Result<(), ServiceError> {
    diesel::insert_into(ocsp_responses::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The status a single-response OCSPResponse reports, with revocation time and reason, read from
/// the compact form ([`ocsp::split_response`]), which starts with tbsResponseData: only that is
/// decoded, not the responder certificate carried in the full response.
fn single_status(compact: &[u8]) -> Option<Status> {
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

    #[test]
    fn status_is_read_from_the_compact_form() {
        use ca_core::der::asn1::OctetString;
        use ca_core::key::{KeyAlgorithm, SoftwareKey};
        let (key, _) = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
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
    fn serial_keys_ignore_leading_zeros() {
        assert_eq!(serial_key(&[0, 1]), serial_key(&[1]));
        assert_ne!(serial_key(&[1, 0]), serial_key(&[1]));
        assert!(serial_key(&[1; 21]).is_none());
    }
}
