//! Keeping the cache current: the upkeep's sweep for missing, stale and outdated responses, and
//! the poll that loads what other instances stored.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::OcspService;
use crate::error::ServiceError;
use crate::store::models::*;
use crate::store::ocsp_rows::OcspRows;
use crate::store::status::CertificateStatus;
use crate::store::DbConnection;
use ca_core::ocsp;

/// Stored OCSP responses read per query while the cache catches up with the database.
const POLL_PAGE: i64 = 5_000;
/// Responses the upkeep signs and then stores in one transaction.
const REFRESH_BATCH: usize = 256;
/// The most responses of one kind one upkeep re-signs (stale ones in all, outdated ones per
/// CA); the rest wait for the next upkeep.
const REFRESH_LIMIT: i64 = 20_000;

impl OcspService {
    /// Live, unexpired certificates without a stored response, found by a sweep that checks
    /// `ocsp_sweep_chunk` certificates of each CA per call in serial order and resumes after the
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
        let sweep_chunk = i64::from(self.config.ocsp_sweep_chunk);
        for (ca_id, _) in &self.issuer_hashes {
            let after = self
                .ocsp_cache
                .sweep
                .lock()
                .ok()
                .and_then(|cursors| cursors.get(ca_id).cloned())
                .unwrap_or_default();
            let chunk = conn.certificates_after(ca_id, &after, sweep_chunk)?;
            let next = match chunk.last() {
                Some((last, _, _)) if chunk.len() as i64 == sweep_chunk => last.clone(),
                _ => String::new(),
            };
            if let Some((last, _, _)) = chunk.last() {
                let present = conn.serials_with_responses(ca_id, &after, last)?;
                missing.extend(
                    chunk
                        .into_iter()
                        .filter(|(serial, status, not_after)| {
                            CertificateStatus::parse(status)
                                .is_some_and(|s| s != CertificateStatus::Reserved)
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
    ///
    /// A certificate's response stops being re-signed once the certificate has expired (as
    /// its CRL entry goes): the last one is served until its nextUpdate, then dropped from
    /// memory here (before the database is asked, so also while it is unreachable) and from
    /// the database a day later.
    pub fn refresh_responses(&self) -> Result<usize, ServiceError> {
        let evicted = self.ocsp_cache.evict_expired(self.now().as_secs());
        self.metrics
            .ocsp_evicted
            .fetch_add(evicted as u64, Ordering::Relaxed);
        let mut conn = self.conn()?;
        let now = self.now().as_secs() as i64;
        let half = (self.config.ocsp_validity_secs / 2) as i64;
        let missing = self.missing_responses(&mut conn, now)?;
        let stale = conn.responses_signed_by(now - half, now, REFRESH_LIMIT)?;
        // A status change whose response predates it. Only changes of the last half validity
        // (and a minute) need looking at: a response older than a change made before that is
        // past half its validity, so `stale` above already re-signs it.
        let changed_since_ms = (now - half - 60) * 1000;
        let mut outdated: Vec<(String, String)> = Vec::new();
        for (ca_id, _) in &self.issuer_hashes {
            outdated.extend(conn.changed_since_their_response(
                ca_id,
                changed_since_ms,
                REFRESH_LIMIT,
            )?);
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
        conn.delete_responses_expired_before(now - 86_400)?;
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
        let started = crate::store::now_ms();
        let mut conn = self.conn()?;
        let mut count = 0;
        // Keyset pages in (updated_ms, ca_id, serial) order, so that a first poll over a million
        // stored responses holds one page of rows at a time, never all of them.
        let mut after: Option<(i64, String, String)> = None;
        loop {
            // Rows this process stored are cached already (see `OcspService::origin`).
            let keys = conn.poll_page(since, self.origin, after.take(), POLL_PAGE)?;
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
                    let rows = conn.responses(&ca_id, chunk)?;
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
}
