//! Signing, storing and caching the pre-signed (SHA-1 CertID) responses.

use std::sync::Arc;

use ca_core::ocsp::{self, SingleStatus, Status};
use ca_core::serial::parse_serial_hex;

use super::cache::{serial_key, single_status, CachedResponse, SignedResponse};
use super::OcspService;
use crate::error::ServiceError;
use crate::store::models::OcspResponseRow;
use crate::store::ocsp_rows::OcspRows;
use crate::store::DbConnection;

impl OcspService {
    pub(super) fn cache_insert(&self, row: &OcspResponseRow) {
        let (ca_id, serial, der) = (&row.ca_id, &row.serial, &row.der);
        let (this_update, next_update) =
            (row.this_update.max(0) as u64, row.next_update.max(0) as u64);
        if next_update <= self.now().as_secs() {
            // Never served (e.g. an expired certificate's last response, read at start).
            return;
        }
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
    pub(super) fn presign_all(
        &self,
        conn: &mut DbConnection,
        certificates: &[&(String, String)],
    ) -> Result<Vec<Option<Arc<CachedResponse>>>, ServiceError> {
        let mut signed = Vec::with_capacity(certificates.len());
        // Statuses are read after this instant: a status change stamped later was not seen, and
        // its own re-signing stores the response that reports it.
        let read_ms = crate::store::now_ms();
        for (ca_id, serial) in certificates {
            let status = self.status_of(conn, ca_id, serial)?;
            if status == Status::Unknown {
                continue;
            }
            if let Some(response) = self.sign_response(ca_id, serial, status)? {
                signed.push(response);
            }
        }
        let stored = if signed.is_empty() {
            Vec::new()
        } else {
            crate::store::write_transaction::<_, ServiceError, _>(&mut *conn, |conn| {
                signed
                    .iter()
                    .map(|response| store_if_current(conn, &response.row, read_ms))
                    .collect::<Result<Vec<bool>, _>>()
            })?
        };
        Ok(signed
            .iter()
            .zip(stored)
            .map(|(response, stored)| stored.then(|| self.cache_signed(response)))
            .collect())
    }

    /// Signs and stores, inside the caller's transaction, the canonical response of a
    /// certificate whose status that transaction just changed (stamped `changed_ms`): the change
    /// and the response that reports it commit together or not at all, so a write refused half
    /// way (a full disk, a lost database) never leaves a revocation that OCSP does not report.
    /// The caller caches it once the transaction has committed ([`OcspService::cache_signed`]).
    pub(crate) fn sign_in_transaction(
        &self,
        conn: &mut DbConnection,
        ca_id: &str,
        serial: &str,
        changed_ms: i64,
    ) -> Result<Option<SignedResponse>, ServiceError> {
        let status = self.status_of(conn, ca_id, serial)?;
        if status == Status::Unknown {
            return Ok(None);
        }
        let Some(signed) = self.sign_response(ca_id, serial, status)? else {
            return Ok(None);
        };
        Ok(store_if_current(conn, &signed.row, changed_ms)?.then_some(signed))
    }

    /// Signs the canonical (SHA-1 CertID) response reporting `status` for one certificate, as
    /// the row to store ([`store_if_current`]) and the cache entry made from the same parts, put
    /// into the cache once the row is durable ([`OcspService::cache_signed`]) without decoding
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
        let floor = self
            .cached(ca_id, serial)
            .map_or(0, |current| current.this_update);
        let now = self.signing_time(floor);
        let next = now.plus(self.config.ocsp_validity_secs);
        let cert_id = hashes
            .cert_id(serial_number)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let compact = ocsp::build_compact_response(
            &*responder.key,
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
        let updated_ms = crate::store::now_ms();
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
}

/// Stores (replaces) a pre-signed response inside the caller's transaction, unless the
/// certificate's status changed after `read_ms`, when the status it reports was read: then it is
/// dropped (the change's own re-signing stores the current one). The certificate's row is locked
/// first (a no-op UPDATE; SQLite's write transaction is exclusive anyway), so two instances
/// re-signing one certificate take turns instead of both inserting — on PostgreSQL that failed
/// with a duplicate key — and a response read before a revocation can never replace the
/// revocation's. Returns whether it was stored.
pub(crate) fn store_if_current(
    conn: &mut DbConnection,
    row: &OcspResponseRow,
    read_ms: i64,
) -> Result<bool, ServiceError> {
    Ok(conn.store_response_if_current(row, read_ms)?)
}

/// Stores the first response of a certificate that has none (one statement fewer than
/// [`store_if_current`]; fails if it has one).
pub(crate) fn insert_response(
    conn: &mut DbConnection,
    row: &OcspResponseRow,
) -> Result<(), ServiceError> {
    Ok(OcspRows::insert_response(conn, row)?)
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    use super::*;
    use crate::store::schema::*;

    #[test]
    fn a_response_read_before_a_status_change_is_not_stored_and_rewrites_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("o.db").display());
        let pool = crate::store::open(&url, 2).unwrap();
        let mut conn = pool.get().unwrap();
        conn.batch_execute(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO certificates (ca_id, serial, profile_id, subject, tbs_der, not_before,
               not_after, status, created_at, status_changed_ms)
             VALUES ('issuing', '0a', 'p', 'CN=x', x'', 0, 1, 'revoked', 0, 2000);",
        )
        .unwrap();
        let row = |updated_ms| OcspResponseRow {
            ca_id: "issuing".into(),
            serial: "0a".into(),
            der: vec![1],
            this_update: 0,
            next_update: 1,
            updated_ms,
            origin: 1,
        };
        // Read at 1,000 ms, before the revocation stamped at 2,000 ms: dropped.
        assert!(!store_if_current(&mut conn, &row(1000), 1000).unwrap());
        // Read after it: stored, and stored again over itself without a duplicate key.
        assert!(store_if_current(&mut conn, &row(3000), 3000).unwrap());
        assert!(store_if_current(&mut conn, &row(4000), 4000).unwrap());
        let kept: i64 = ocsp_responses::table
            .find(("issuing", "0a"))
            .select(ocsp_responses::updated_ms)
            .first(&mut conn)
            .unwrap();
        assert_eq!(kept, 4000);
    }
}
