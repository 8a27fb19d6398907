//! The rows CRL publication reads and writes: the revoked and held certificates of a scope,
//! cRLNumber sequences, and published CRLs stored in chunks. The CRL service reaches the
//! database only through [`CrlRows`]; the queries live here.

use diesel::prelude::*;

use ca_core::crl::{RevocationReason, RevokedEntry};
use ca_core::serial::parse_serial_hex;
use ca_core::time::UnixTime;

use super::audit_log;
use super::models::PublishedCrlRow;
use super::schema::*;
use super::status::CertificateStatus;
use super::DbConnection;

/// Rows read per batch while a complete CRL is rebuilt.
pub const BATCH: i64 = 50_000;

/// The largest piece of a CRL's DER stored in one row: the database drivers copy a value whole
/// while binding or reading it, so pieces keep that copy small next to a CRL of 50 MB.
const CHUNK: usize = 1 << 20;

/// Why [`CrlRows::next_number`] or [`CrlRows::load_crl`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CrlRowError {
    /// The database refused.
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    /// Another instance took the number first; the publication should be retried.
    #[error("a concurrent CRL publication won; retry")]
    Raced,
    /// The stored chunks do not add up to the stored length.
    #[error("CRL {0}: {1}")]
    Damaged(String, String),
}

/// A certificate as a CRL lists it.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = certificates)]
pub struct Revoked {
    /// Serial (hex).
    pub serial: String,
    /// When revoked or held.
    pub revoked_at: Option<i64>,
    /// When issued (the revocation time of rows from before `revoked_at` was kept).
    pub created_at: i64,
    /// The revocation reason's name.
    #[diesel(column_name = revocation_reason)]
    pub reason: Option<String>,
    /// The invalidity date, if one was given.
    pub invalidity_date: Option<i64>,
    /// The stored status word.
    pub status: String,
    /// End of validity (expired certificates leave the CRL).
    pub not_after: i64,
    /// When the status last changed (ms).
    #[diesel(column_name = status_changed_ms)]
    pub changed_ms: i64,
}

impl Revoked {
    /// The CRL entry for this row at `now`: revoked or held and unexpired.
    pub fn entry(&self, now: i64) -> Option<RevokedEntry> {
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
    pub fn delta_entry(&self, now: i64) -> Option<RevokedEntry> {
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

/// A published CRL's header: everything stored but its DER.
#[derive(Debug, Clone, Copy, Queryable, Selectable)]
#[diesel(table_name = published_crls)]
pub struct Header {
    /// cRLNumber.
    #[diesel(column_name = crl_number)]
    pub number: i64,
    /// thisUpdate (Unix seconds).
    pub this_update: i64,
    /// nextUpdate (Unix seconds).
    pub next_update: i64,
    /// For a delta CRL: its base's cRLNumber (deltaCRLIndicator).
    pub base_number: Option<i64>,
    /// For a complete CRL: the cRLNumber of the complete CRL its deltas are based on.
    pub delta_base_number: Option<i64>,
    /// For a complete CRL: that base's thisUpdate.
    pub delta_base_this_update: Option<i64>,
}

impl Header {
    /// For a complete CRL: the (cRLNumber, thisUpdate) of the complete CRL its deltas are based
    /// on — its own for a scheduled rebuild and for rows stored before the base was recorded.
    pub fn delta_base(&self) -> (i64, i64) {
        match (self.delta_base_number, self.delta_base_this_update) {
            (Some(number), Some(this)) => (number, this),
            _ => (self.number, self.this_update),
        }
    }
}

/// What CRL publication asks of the database.
pub trait CrlRows {
    /// The CRL shards (`crl_partition`) that certificates of `ca_id` name.
    fn partitions_in_use(&mut self, ca_id: &str) -> QueryResult<Vec<Option<i32>>>;

    /// Every certificate of the scope whose status changed at or after `since_ms` (releases and
    /// expiries included: they leave the CRL).
    fn changes_since(
        &mut self,
        ca_id: &str,
        partition: Option<u32>,
        since_ms: i64,
    ) -> QueryResult<Vec<Revoked>>;

    /// Up to [`BATCH`] revoked or held certificates of the scope unexpired at `now`, after
    /// serial `after` in serial order.
    fn revoked_after(
        &mut self,
        ca_id: &str,
        partition: Option<u32>,
        after: &str,
        now: i64,
    ) -> QueryResult<Vec<Revoked>>;

    /// Whether a certificate of the scope changed status after `covered_ms`.
    fn changed_after(
        &mut self,
        ca_id: &str,
        partition: Option<u32>,
        covered_ms: i64,
    ) -> QueryResult<bool>;

    /// Reserves the next cRLNumber of `ca_id`: one more than the last, and never less than
    /// `now_ms`, so that numbers keep growing even after a restore from a backup older than the
    /// last CRL published (the approach of Let's Encrypt's Boulder). The row stays locked until
    /// the transaction ends, so publications of one CA are serialised across instances.
    fn next_number(&mut self, ca_id: &str, now_ms: i64) -> Result<i64, CrlRowError>;

    /// The stored header of a published CRL (everything but its DER).
    fn published_header(&mut self, name: &str) -> QueryResult<Option<Header>>;

    /// Every published CRL's name and number.
    fn published_numbers(&mut self) -> QueryResult<Vec<(String, i64)>>;

    /// Replaces the published CRL `row.name` with `row` and its DER, stored in chunks.
    fn store_crl(&mut self, row: &PublishedCrlRow, der: &[u8]) -> QueryResult<()>;

    /// Reads the published CRL `name`: its row and DER (read one chunk at a time into one
    /// buffer of the CRL's size).
    fn load_crl(&mut self, name: &str) -> Result<Option<(PublishedCrlRow, Vec<u8>)>, CrlRowError>;
}

/// Certificates of one CRL scope.
fn scope_query<'a>(
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

impl CrlRows for DbConnection {
    fn partitions_in_use(&mut self, ca_id: &str) -> QueryResult<Vec<Option<i32>>> {
        certificates::table
            .filter(certificates::ca_id.eq(ca_id))
            .filter(certificates::crl_partition.is_not_null())
            .select(certificates::crl_partition)
            .distinct()
            .load(self)
    }

    fn changes_since(
        &mut self,
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
            .load(self)
    }

    fn revoked_after(
        &mut self,
        ca_id: &str,
        partition: Option<u32>,
        after: &str,
        now: i64,
    ) -> QueryResult<Vec<Revoked>> {
        scope_query(ca_id, partition)
            .filter(certificates::status.eq_any([
                CertificateStatus::Revoked.as_str(),
                CertificateStatus::Hold.as_str(),
            ]))
            .filter(certificates::serial.gt(after.to_string()))
            .filter(certificates::not_after.gt(now))
            .order(certificates::serial.asc())
            .limit(BATCH)
            .select(Revoked::as_select())
            .load(self)
    }

    fn changed_after(
        &mut self,
        ca_id: &str,
        partition: Option<u32>,
        covered_ms: i64,
    ) -> QueryResult<bool> {
        Ok(scope_query(ca_id, partition)
            .filter(certificates::status_changed_ms.gt(covered_ms))
            .select(certificates::serial)
            .first::<String>(self)
            .optional()?
            .is_some())
    }

    fn next_number(&mut self, ca_id: &str, now_ms: i64) -> Result<i64, CrlRowError> {
        audit_log::serialize(self, &format!("mamori.crl.{ca_id}"))?;
        let last: Option<i64> = crl_sequences::table
            .find(ca_id)
            .select(crl_sequences::last_number)
            .first(self)
            .optional()?;
        match last {
            None => {
                diesel::insert_into(crl_sequences::table)
                    .values((
                        crl_sequences::ca_id.eq(ca_id),
                        crl_sequences::last_number.eq(now_ms),
                    ))
                    .execute(self)
                    .map_err(|_| CrlRowError::Raced)?;
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
                .execute(self)?;
                if n != 1 {
                    return Err(CrlRowError::Raced);
                }
                Ok(next)
            }
        }
    }

    fn published_header(&mut self, name: &str) -> QueryResult<Option<Header>> {
        published_crls::table
            .find(name)
            .select(Header::as_select())
            .first(self)
            .optional()
    }

    fn published_numbers(&mut self) -> QueryResult<Vec<(String, i64)>> {
        published_crls::table
            .select((published_crls::name, published_crls::crl_number))
            .load(self)
    }

    fn store_crl(&mut self, row: &PublishedCrlRow, der: &[u8]) -> QueryResult<()> {
        diesel::delete(
            published_crl_chunks::table.filter(published_crl_chunks::name.eq(&row.name)),
        )
        .execute(self)?;
        diesel::delete(published_crls::table.find(&row.name)).execute(self)?;
        diesel::insert_into(published_crls::table)
            .values(row)
            .execute(self)?;
        for (seq, chunk) in der.chunks(CHUNK).enumerate() {
            diesel::insert_into(published_crl_chunks::table)
                .values((
                    published_crl_chunks::name.eq(&row.name),
                    published_crl_chunks::seq.eq(seq as i32),
                    published_crl_chunks::der.eq(chunk),
                ))
                .execute(self)?;
        }
        Ok(())
    }

    fn load_crl(&mut self, name: &str) -> Result<Option<(PublishedCrlRow, Vec<u8>)>, CrlRowError> {
        let damaged = |why: String| CrlRowError::Damaged(name.to_string(), why);
        let Some(row) = published_crls::table
            .find(name)
            .select(PublishedCrlRow::as_select())
            .first(self)
            .optional()?
        else {
            return Ok(None);
        };
        let len = usize::try_from(row.der_len).map_err(|_| damaged("negative length".into()))?;
        let mut der = Vec::with_capacity(len);
        let mut seq = 0i32;
        while der.len() < len {
            let chunk: Vec<u8> = published_crl_chunks::table
                .find((name, seq))
                .select(published_crl_chunks::der)
                .first(self)
                .optional()?
                .ok_or_else(|| damaged(format!("chunk {seq} missing")))?;
            der.extend_from_slice(&chunk);
            seq += 1;
        }
        if der.len() != len {
            return Err(damaged(format!(
                "{} bytes stored, {len} expected",
                der.len()
            )));
        }
        Ok(Some((row, der)))
    }
}
