//! Signing, storing and caching the pre-signed (SHA-1 CertID) responses.

use std::sync::Arc;

use ca_core::ocsp::{self, SingleStatus, Status};
use ca_core::serial::parse_serial_hex;

use super::cache::{serial_key, single_status, CachedResponse, SignedResponse};
use super::OcspService;
use crate::error::ServiceError;
use crate::store::models::OcspResponseRow;
use crate::store::schema::*;
use crate::store::DbConnection;
use diesel::prelude::*;

impl OcspService {
    pub(super) fn cache_insert(&self, row: &OcspResponseRow) {
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
    pub(super) fn presign_all(
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
