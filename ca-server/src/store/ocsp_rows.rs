//! The rows the OCSP service reads and writes: stored responses, responder certificates and the
//! certificate statuses it reports. The OCSP service reaches the database only through
//! [`OcspRows`]; the queries live here.

use std::collections::HashSet;

use diesel::prelude::*;

use super::models::{OcspResponseRow, ResponderRow};
use super::schema::*;
use super::status::CertificateStatus;
use super::DbConnection;

/// A certificate's status as stored: what OCSP reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStatus {
    /// Valid, revoked, hold (or reserved: not yet issued).
    pub status: Option<CertificateStatus>,
    /// When revoked or held (Unix seconds).
    pub revoked_at: Option<i64>,
    /// The revocation reason's name.
    pub reason: Option<String>,
}

/// The key of a stored response in poll order: (updated_ms, CA, serial).
pub type PollKey = (i64, String, String);

/// What the OCSP service asks of the database.
pub trait OcspRows {
    /// One certificate's status, or `None` for a serial the CA never issued.
    fn certificate_status(
        &mut self,
        ca_id: &str,
        serial: &str,
    ) -> QueryResult<Option<StoredStatus>>;

    /// Stores `row` over the certificate's previous response unless the certificate's status
    /// changed after `read_ms`, when the status the response reports was read: then it is
    /// dropped (the change's own re-signing stores the current one). The certificate's row is
    /// locked first (a no-op UPDATE; SQLite's write transaction is exclusive anyway), so two
    /// instances re-signing one certificate take turns instead of both inserting — on
    /// PostgreSQL that failed with a duplicate key — and a response read before a revocation can
    /// never replace the revocation's. Returns whether it was stored.
    fn store_response_if_current(
        &mut self,
        row: &OcspResponseRow,
        read_ms: i64,
    ) -> QueryResult<bool>;

    /// Stores the first response of a certificate that has none (one statement fewer than
    /// [`OcspRows::store_response_if_current`]; fails if it has one).
    fn insert_response(&mut self, row: &OcspResponseRow) -> QueryResult<()>;

    /// Up to `limit` certificates of `ca_id` after serial `after`, in serial order:
    /// (serial, status, not_after).
    fn certificates_after(
        &mut self,
        ca_id: &str,
        after: &str,
        limit: i64,
    ) -> QueryResult<Vec<(String, String, i64)>>;

    /// The serials of `ca_id` in (`after`, `last`] that have a stored response.
    fn serials_with_responses(
        &mut self,
        ca_id: &str,
        after: &str,
        last: &str,
    ) -> QueryResult<HashSet<String>>;

    /// Up to `limit` responses signed at or before `signed_by` (Unix seconds) of certificates
    /// still valid at `unexpired_at`.
    fn responses_signed_by(
        &mut self,
        signed_by: i64,
        unexpired_at: i64,
        limit: i64,
    ) -> QueryResult<Vec<(String, String)>>;

    /// Up to `limit` certificates of `ca_id` whose status changed after `changed_since_ms` and
    /// after their stored response was written.
    fn changed_since_their_response(
        &mut self,
        ca_id: &str,
        changed_since_ms: i64,
        limit: i64,
    ) -> QueryResult<Vec<(String, String)>>;

    /// Deletes responses whose nextUpdate is before `before`.
    fn delete_responses_expired_before(&mut self, before: i64) -> QueryResult<usize>;

    /// One page of the poll: keys and thisUpdate of responses written after `since_ms` by
    /// other processes than `origin`, after `after` in (updated_ms, CA, serial) order.
    fn poll_page(
        &mut self,
        since_ms: i64,
        origin: i64,
        after: Option<PollKey>,
        limit: i64,
    ) -> QueryResult<Vec<(i64, String, String, i64)>>;

    /// The stored responses of these serials of `ca_id`.
    fn responses(&mut self, ca_id: &str, serials: &[String]) -> QueryResult<Vec<OcspResponseRow>>;

    /// Every CA's responder row.
    fn responders(&mut self) -> QueryResult<Vec<ResponderRow>>;

    /// `ca_id`'s responder row.
    fn responder(&mut self, ca_id: &str) -> QueryResult<Option<ResponderRow>>;

    /// Replaces a responder's key text if it is still `old` (a concurrent reseal wins once).
    fn reseal_responder(&mut self, ca_id: &str, old: &str, new: String) -> QueryResult<usize>;

    /// Replaces `row.ca_id`'s responder with `row`.
    fn replace_responder(&mut self, row: ResponderRow) -> QueryResult<()>;
}

impl OcspRows for DbConnection {
    fn certificate_status(
        &mut self,
        ca_id: &str,
        serial: &str,
    ) -> QueryResult<Option<StoredStatus>> {
        let row: Option<(String, Option<i64>, Option<String>)> = certificates::table
            .find((ca_id, serial))
            .select((
                certificates::status,
                certificates::revoked_at,
                certificates::revocation_reason,
            ))
            .first(self)
            .optional()?;
        Ok(row.map(|(status, revoked_at, reason)| StoredStatus {
            status: CertificateStatus::parse(&status),
            revoked_at,
            reason,
        }))
    }

    fn store_response_if_current(
        &mut self,
        row: &OcspResponseRow,
        read_ms: i64,
    ) -> QueryResult<bool> {
        let certificate = certificates::table.find((&row.ca_id, &row.serial));
        diesel::update(certificate)
            .set(certificates::status_changed_ms.eq(certificates::status_changed_ms))
            .execute(self)?;
        let changed_ms: Option<i64> = certificate
            .select(certificates::status_changed_ms)
            .first(self)
            .optional()?;
        if changed_ms.is_some_and(|changed| changed > read_ms) {
            return Ok(false);
        }
        diesel::delete(ocsp_responses::table.find((&row.ca_id, &row.serial))).execute(self)?;
        self.insert_response(row)?;
        Ok(true)
    }

    fn insert_response(&mut self, row: &OcspResponseRow) -> QueryResult<()> {
        diesel::insert_into(ocsp_responses::table)
            .values(row)
            .execute(self)?;
        Ok(())
    }

    fn certificates_after(
        &mut self,
        ca_id: &str,
        after: &str,
        limit: i64,
    ) -> QueryResult<Vec<(String, String, i64)>> {
        certificates::table
            .filter(certificates::ca_id.eq(ca_id))
            .filter(certificates::serial.gt(after))
            .order(certificates::serial.asc())
            .select((
                certificates::serial,
                certificates::status,
                certificates::not_after,
            ))
            .limit(limit)
            .load(self)
    }

    fn serials_with_responses(
        &mut self,
        ca_id: &str,
        after: &str,
        last: &str,
    ) -> QueryResult<HashSet<String>> {
        Ok(ocsp_responses::table
            .filter(ocsp_responses::ca_id.eq(ca_id))
            .filter(ocsp_responses::serial.gt(after))
            .filter(ocsp_responses::serial.le(last))
            .select(ocsp_responses::serial)
            .load::<String>(self)?
            .into_iter()
            .collect())
    }

    fn responses_signed_by(
        &mut self,
        signed_by: i64,
        unexpired_at: i64,
        limit: i64,
    ) -> QueryResult<Vec<(String, String)>> {
        ocsp_responses::table
            .inner_join(
                certificates::table.on(certificates::ca_id
                    .eq(ocsp_responses::ca_id)
                    .and(certificates::serial.eq(ocsp_responses::serial))),
            )
            .filter(ocsp_responses::this_update.le(signed_by))
            .filter(certificates::not_after.gt(unexpired_at))
            .select((ocsp_responses::ca_id, ocsp_responses::serial))
            .limit(limit)
            .load(self)
    }

    fn changed_since_their_response(
        &mut self,
        ca_id: &str,
        changed_since_ms: i64,
        limit: i64,
    ) -> QueryResult<Vec<(String, String)>> {
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
            .limit(limit)
            .load(self)
    }

    fn delete_responses_expired_before(&mut self, before: i64) -> QueryResult<usize> {
        diesel::delete(ocsp_responses::table.filter(ocsp_responses::next_update.lt(before)))
            .execute(self)
    }

    fn poll_page(
        &mut self,
        since_ms: i64,
        origin: i64,
        after: Option<PollKey>,
        limit: i64,
    ) -> QueryResult<Vec<(i64, String, String, i64)>> {
        let mut query = ocsp_responses::table
            .filter(ocsp_responses::updated_ms.gt(since_ms))
            .filter(ocsp_responses::origin.ne(origin))
            .into_boxed();
        if let Some((ms, ca, serial)) = after {
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
        query
            .order((
                ocsp_responses::updated_ms.asc(),
                ocsp_responses::ca_id.asc(),
                ocsp_responses::serial.asc(),
            ))
            .limit(limit)
            .select((
                ocsp_responses::updated_ms,
                ocsp_responses::ca_id,
                ocsp_responses::serial,
                ocsp_responses::this_update,
            ))
            .load(self)
    }

    fn responses(&mut self, ca_id: &str, serials: &[String]) -> QueryResult<Vec<OcspResponseRow>> {
        ocsp_responses::table
            .filter(ocsp_responses::ca_id.eq(ca_id))
            .filter(ocsp_responses::serial.eq_any(serials))
            .select(OcspResponseRow::as_select())
            .load(self)
    }

    fn responders(&mut self) -> QueryResult<Vec<ResponderRow>> {
        ocsp_responders::table
            .select(ResponderRow::as_select())
            .load(self)
    }

    fn responder(&mut self, ca_id: &str) -> QueryResult<Option<ResponderRow>> {
        ocsp_responders::table
            .find(ca_id)
            .select(ResponderRow::as_select())
            .first(self)
            .optional()
    }

    fn reseal_responder(&mut self, ca_id: &str, old: &str, new: String) -> QueryResult<usize> {
        diesel::update(
            ocsp_responders::table
                .find(ca_id)
                .filter(ocsp_responders::key_pem.eq(old)),
        )
        .set(ocsp_responders::key_pem.eq(new))
        .execute(self)
    }

    fn replace_responder(&mut self, row: ResponderRow) -> QueryResult<()> {
        diesel::delete(ocsp_responders::table.find(&row.ca_id)).execute(self)?;
        diesel::insert_into(ocsp_responders::table)
            .values(row)
            .execute(self)?;
        Ok(())
    }
}
