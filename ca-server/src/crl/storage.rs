//! Storing CRLs (in chunks) and their cRLNumbers, and reading the rows a CRL lists.

use diesel::prelude::*;

use ca_core::crl::{RevocationReason, RevokedEntry};
use ca_core::serial::parse_serial_hex;
use ca_core::time::UnixTime;

use super::PublishedCrl;
use crate::error::ServiceError;
use crate::store::audit_log;
use crate::store::models::PublishedCrlRow;
use crate::store::schema::*;
use crate::store::status::CertificateStatus;
use crate::store::DbConnection;

/// How far before a CRL's thisUpdate the next one looks for status changes, so that a change
/// whose transaction committed just after the previous CRL read the database is never missed.
pub(super) const SLACK_MS: i64 = 60_000;

/// Rows read per batch while a complete CRL is rebuilt.
pub(super) const BATCH: i64 = 50_000;

/// The largest piece of a CRL's DER stored in one row: the database drivers copy a value whole
/// while binding or reading it, so pieces keep that copy small next to a CRL of 50 MB.
const CHUNK: usize = 1 << 20;

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = certificates)]
pub(super) struct Revoked {
    pub(super) serial: String,
    pub(super) revoked_at: Option<i64>,
    pub(super) created_at: i64,
    #[diesel(column_name = revocation_reason)]
    pub(super) reason: Option<String>,
    pub(super) invalidity_date: Option<i64>,
    pub(super) status: String,
    pub(super) not_after: i64,
    #[diesel(column_name = status_changed_ms)]
    pub(super) changed_ms: i64,
}

/// Certificates of one CRL scope.
pub(super) fn scope_query<'a>(
    ca_id: &str,
    partition: Option<u32>,
) -> certificates::BoxedQuery<'a, <DbConnection as diesel::Connection>::Backend> {
    let query = certificates::table
        .filter(certificates::ca_id.eq(ca_id.to_string()))
        .into_boxed();
    match partition {
        None => query.filter(certificates::crl_partition.is_null()),
        Some(k) => query.filter(certificates::crl_partition.eq(k as i32)),
    }
}

/// Every certificate of the scope whose status changed at or after `since_ms` (releases and
/// expiries included: they leave the CRL).
pub(super) fn changes_since(
    conn: &mut DbConnection,
    ca_id: &str,
    partition: Option<u32>,
    since_ms: i64,
) -> QueryResult<Vec<Revoked>> {
    scope_query(ca_id, partition)
        .filter(certificates::status_changed_ms.ge(since_ms))
        .filter(certificates::status.eq_any([
            CertificateStatus::Revoked.as_str(),
            CertificateStatus::Hold.as_str(),
            CertificateStatus::Valid.as_str(),
        ]))
        .select(Revoked::as_select())
        .load(conn)
}

impl Revoked {
    /// The CRL entry for this row at `now`: revoked or held and unexpired.
    pub(super) fn entry(&self, now: i64) -> Option<RevokedEntry> {
        if !CertificateStatus::parse(&self.status).is_some_and(CertificateStatus::is_revoked)
            || self.not_after <= now
        {
            return None;
        }
        Some(RevokedEntry {
            serial: parse_serial_hex(&self.serial)?,
            revoked_at: UnixTime(self.revoked_at.unwrap_or(self.created_at).max(0) as u64),
            reason: self
                .reason
                .as_deref()
                .and_then(RevocationReason::parse)
                .unwrap_or(RevocationReason::Unspecified),
            invalidity_date: self.invalidity_date.map(|d| UnixTime(d.max(0) as u64)),
        })
    }

    /// The delta CRL entry: as [`Revoked::entry`], or removeFromCRL for a release.
    pub(super) fn delta_entry(&self, now: i64) -> Option<RevokedEntry> {
        if CertificateStatus::parse(&self.status) == Some(CertificateStatus::Valid) {
            return Some(RevokedEntry {
                serial: parse_serial_hex(&self.serial)?,
                revoked_at: UnixTime((self.changed_ms / 1000).max(0) as u64),
                reason: RevocationReason::RemoveFromCrl,
                invalidity_date: None,
            });
        }
        self.entry(now)
    }
}

/// Reserves the next cRLNumber of `ca_id`: one more than the last, and never less than the
/// current time in milliseconds, so that numbers keep growing even after a restore from a backup
/// older than the last CRL published (the approach of Let's Encrypt's Boulder). The row stays
/// locked until the transaction ends, so publications of one CA are serialised across instances.
pub(super) fn next_number(
    conn: &mut DbConnection,
    ca_id: &str,
    now_ms: i64,
) -> Result<i64, ServiceError> {
    audit_log::serialize(conn, &format!("mamori.crl.{ca_id}"))?;
    let last: Option<i64> = crl_sequences::table
        .find(ca_id)
        .select(crl_sequences::last_number)
        .first(conn)
        .optional()?;
    match last {
        None => {
            diesel::insert_into(crl_sequences::table)
                .values((
                    crl_sequences::ca_id.eq(ca_id),
                    crl_sequences::last_number.eq(now_ms),
                ))
                .execute(conn)
                .map_err(|_| {
                    ServiceError::Conflict("a concurrent CRL publication won; retry".into())
                })?;
            Ok(now_ms)
        }
        Some(last) => {
            let next = (last + 1).max(now_ms);
            let n = diesel::update(
                crl_sequences::table
                    .find(ca_id)
                    .filter(crl_sequences::last_number.eq(last)),
            )
            .set(crl_sequences::last_number.eq(next))
            .execute(conn)?;
            if n != 1 {
                return Err(ServiceError::Conflict(
                    "a concurrent CRL publication won; retry".into(),
                ));
            }
            Ok(next)
        }
    }
}

/// A published CRL's header: everything stored but its DER.
#[derive(Debug, Clone, Copy, Queryable, Selectable)]
#[diesel(table_name = published_crls)]
pub(super) struct Header {
    #[diesel(column_name = crl_number)]
    pub(super) number: i64,
    pub(super) this_update: i64,
    pub(super) next_update: i64,
    /// For a delta CRL: its base's cRLNumber (deltaCRLIndicator).
    pub(super) base_number: Option<i64>,
    pub(super) delta_base_number: Option<i64>,
    pub(super) delta_base_this_update: Option<i64>,
}

impl Header {
    /// For a complete CRL: the (cRLNumber, thisUpdate) of the complete CRL its deltas are based
    /// on — its own for a scheduled rebuild and for rows stored before the base was recorded.
    pub(super) fn delta_base(&self) -> (i64, i64) {
        match (self.delta_base_number, self.delta_base_this_update) {
            (Some(number), Some(this)) => (number, this),
            _ => (self.number, self.this_update),
        }
    }
}

/// The stored header of a published CRL (everything but its DER).
pub(super) fn published_header(conn: &mut DbConnection, name: &str) -> QueryResult<Option<Header>> {
    published_crls::table
        .find(name)
        .select(Header::as_select())
        .first(conn)
        .optional()
}

/// Replaces the published CRL `row.name` with `row` and its DER, stored in chunks.
pub(super) fn store(conn: &mut DbConnection, row: &PublishedCrlRow, der: &[u8]) -> QueryResult<()> {
    diesel::delete(published_crl_chunks::table.filter(published_crl_chunks::name.eq(&row.name)))
        .execute(conn)?;
    diesel::delete(published_crls::table.find(&row.name)).execute(conn)?;
    diesel::insert_into(published_crls::table)
        .values(row)
        .execute(conn)?;
    for (seq, chunk) in der.chunks(CHUNK).enumerate() {
        diesel::insert_into(published_crl_chunks::table)
            .values((
                published_crl_chunks::name.eq(&row.name),
                published_crl_chunks::seq.eq(seq as i32),
                published_crl_chunks::der.eq(chunk),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Reads the published CRL `name` (header and DER, one chunk at a time into one buffer of the
/// CRL's size).
pub(super) fn load(
    conn: &mut DbConnection,
    name: &str,
) -> Result<Option<PublishedCrl>, ServiceError> {
    let Some(row) = published_crls::table
        .find(name)
        .select(PublishedCrlRow::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let len = usize::try_from(row.der_len)
        .map_err(|_| ServiceError::Internal(format!("CRL {name}: negative length")))?;
    let mut der = Vec::with_capacity(len);
    let mut seq = 0i32;
    while der.len() < len {
        let chunk: Vec<u8> = published_crl_chunks::table
            .find((name, seq))
            .select(published_crl_chunks::der)
            .first(conn)
            .optional()?
            .ok_or_else(|| ServiceError::Internal(format!("CRL {name}: chunk {seq} missing")))?;
        der.extend_from_slice(&chunk);
        seq += 1;
    }
    if der.len() != len {
        return Err(ServiceError::Internal(format!(
            "CRL {name}: {} bytes stored, {len} expected",
            der.len()
        )));
    }
    Ok(Some(PublishedCrl::new(&row, der)))
}

/// How a complete CRL is built.
pub(super) enum Rebuild {
    /// From every row of the scope.
    Full,
    /// From the previous CRL plus the status changes since.
    FromBase,
}
