//! Answering OCSP requests: from the cache on the calling worker when it can, otherwise signed
//! fresh (nonce echoed, several CertIDs, an unusual CertID encoding).

use ca_core::ocsp::{self, CertIdHash, SingleStatus, Status};
use ca_core::serial::serial_hex;

use super::cache::{serial_key, CachedResponse};
use super::OcspService;
use crate::config::NonceMode;
use crate::error::ServiceError;

/// What the OCSP endpoint sends back.
#[derive(Debug)]
pub struct OcspAnswer {
    /// The OCSPResponse DER.
    pub der: actix_web::web::Bytes,
    /// For cacheable (pre-signed) answers: thisUpdate, nextUpdate and the ETag value.
    pub cache: Option<(u64, u64, u64)>,
}

impl OcspService {
    /// Answers from the in-memory cache alone, without the database or a blocking thread: one
    /// canonical SHA-1 CertID, no nonce to echo, a current response. `None` when the request
    /// needs more (the caller then goes through [`OcspService::ocsp`]).
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
                let signature = ocsp::sign_variant(&*responder.key, &entry.compact, id).ok()?;
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
        let now = self.signing_time(0);
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
            &*responder.key,
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
