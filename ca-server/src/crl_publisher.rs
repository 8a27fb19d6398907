//! CRL publication for every scope of every CA — the whole CA, or one shard when partitioned
//! CRLs are on — as complete CRLs and, when enabled, delta CRLs (RFC 5280 §5.2.4). All of a CA's
//! CRLs share one cRLNumber sequence that only grows.
//!
//! A revocation republishes its scope from the previous CRL's DER (entries kept byte for byte,
//! changed serials replaced), so a CA with a million revoked certificates publishes in well under
//! a second; the scheduled complete rebuild reads rows from the database in batches, twice (to
//! measure, then to write into the CRL's own buffer), so memory holds the CRL and one batch.
//! CRLs are stored in 1 MiB chunks, kept in memory for the public listener and re-read when
//! another instance publishes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use actix_web::web::Bytes;
use ca_core::ca::CertificateAuthority;
use ca_core::crl::{
    build_crl_from_base, build_crl_with, encode_entry, CrlParams, RevocationReason, RevokedEntry,
};
use ca_core::serial::parse_serial_hex;
use ca_core::time::UnixTime;
use diesel::prelude::*;
use serde_json::json;

use crate::audit_log;
use crate::authority::Authority;
use crate::error::ServiceError;
use crate::store::models::PublishedCrlRow;
use crate::store::schema::*;
use crate::store::DbConnection;

/// How far before a CRL's thisUpdate the next one looks for status changes, so that a change
/// whose transaction committed just after the previous CRL read the database is never missed.
const SLACK_MS: i64 = 60_000;

/// Rows read per batch while a complete CRL is rebuilt.
const BATCH: i64 = 50_000;

/// The largest piece of a CRL's DER stored in one row: the database drivers copy a value whole
/// while binding or reading it, so pieces keep that copy small next to a CRL of 50 MB.
const CHUNK: usize = 1 << 20;

/// How often a publication that lost a race with another instance is retried.
const RETRIES: usize = 5;

/// A published CRL as served.
#[derive(Debug)]
pub struct PublishedCrl {
    /// DER, shared with every response that serves it.
    pub der: Bytes,
    /// cRLNumber.
    pub number: i64,
    /// thisUpdate (Unix seconds).
    pub this_update: i64,
    /// nextUpdate (Unix seconds).
    pub next_update: i64,
}

impl PublishedCrl {
    fn new(row: &PublishedCrlRow, der: Vec<u8>) -> Self {
        PublishedCrl {
            der: Bytes::from(der),
            number: row.crl_number,
            this_update: row.this_update,
            next_update: row.next_update,
        }
    }
}

/// Published CRLs by file name (`issuing`, `issuing-p3`, `issuing-delta`, `root`, ...).
#[derive(Debug, Default)]
pub struct CrlCache {
    map: RwLock<HashMap<String, Arc<PublishedCrl>>>,
    /// This instance's publications between start and caching their CRL (see [`Publishing`]).
    publishing: AtomicUsize,
}

/// Marks a publication in progress from before its transaction until its CRL is cached. A CRL is
/// visible to the poll from its commit, and on SQLite the committing connection may then spend a
/// while checkpointing the CRL's pages into the database file before the publisher caches it: a
/// poll in that window loaded a second copy of the CRL from the database (49 MB for a million
/// entries, which took the server past 200 MB). The poll leaves such a CRL to its publisher.
struct Publishing<'a>(&'a AtomicUsize);

impl<'a> Publishing<'a> {
    fn start(count: &'a AtomicUsize) -> Publishing<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Publishing(count)
    }
}

impl Drop for Publishing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One status change or revoked certificate, as read for a CRL.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = certificates)]
struct Revoked {
    serial: String,
    revoked_at: Option<i64>,
    created_at: i64,
    #[diesel(column_name = revocation_reason)]
    reason: Option<String>,
    invalidity_date: Option<i64>,
    status: String,
    not_after: i64,
    #[diesel(column_name = status_changed_ms)]
    changed_ms: i64,
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

/// Every certificate of the scope whose status changed at or after `since_ms` (releases and
/// expiries included: they leave the CRL).
fn changes_since(
    conn: &mut DbConnection,
    ca_id: &str,
    partition: Option<u32>,
    since_ms: i64,
) -> QueryResult<Vec<Revoked>> {
    scope_query(ca_id, partition)
        .filter(certificates::status_changed_ms.ge(since_ms))
        .filter(certificates::status.eq_any(["revoked", "hold", "valid"]))
        .select(Revoked::as_select())
        .load(conn)
}

impl Revoked {
    /// The CRL entry for this row at `now`: revoked or held and unexpired.
    fn entry(&self, now: i64) -> Option<RevokedEntry> {
        if !matches!(self.status.as_str(), "revoked" | "hold") || self.not_after <= now {
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
    fn delta_entry(&self, now: i64) -> Option<RevokedEntry> {
        if self.status == "valid" {
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
fn next_number(conn: &mut DbConnection, ca_id: &str, now_ms: i64) -> Result<i64, ServiceError> {
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
struct Header {
    #[diesel(column_name = crl_number)]
    number: i64,
    this_update: i64,
    next_update: i64,
    /// For a delta CRL: its base's cRLNumber (deltaCRLIndicator).
    base_number: Option<i64>,
    delta_base_number: Option<i64>,
    delta_base_this_update: Option<i64>,
}

impl Header {
    /// For a complete CRL: the (cRLNumber, thisUpdate) of the complete CRL its deltas are based
    /// on — its own for a scheduled rebuild and for rows stored before the base was recorded.
    fn delta_base(&self) -> (i64, i64) {
        match (self.delta_base_number, self.delta_base_this_update) {
            (Some(number), Some(this)) => (number, this),
            _ => (self.number, self.this_update),
        }
    }
}

/// The stored header of a published CRL (everything but its DER).
fn published_header(conn: &mut DbConnection, name: &str) -> QueryResult<Option<Header>> {
    published_crls::table
        .find(name)
        .select(Header::as_select())
        .first(conn)
        .optional()
}

/// Replaces the published CRL `row.name` with `row` and its DER, stored in chunks.
fn store(conn: &mut DbConnection, row: &PublishedCrlRow, der: &[u8]) -> QueryResult<()> {
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
fn load(conn: &mut DbConnection, name: &str) -> Result<Option<PublishedCrl>, ServiceError> {
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
enum Rebuild {
    /// From every row of the scope.
    Full,
    /// From the previous CRL plus the status changes since.
    FromBase,
}

impl Authority {
    fn remember(&self, name: &str, crl: PublishedCrl) {
        if let Ok(mut map) = self.crl_cache.map.write() {
            map.insert(name.to_string(), Arc::new(crl));
        }
    }

    fn cached_crl(&self, name: &str) -> Option<Arc<PublishedCrl>> {
        self.crl_cache
            .map
            .read()
            .ok()
            .and_then(|m| m.get(name).cloned())
    }

    fn ca(&self, ca_id: &str) -> Result<&CertificateAuthority, ServiceError> {
        self.cas
            .get(ca_id)
            .ok_or_else(|| ServiceError::NotFound(format!("CA {ca_id}")))
    }

    /// The CRL scopes of `ca_id`: the whole CA, every configured shard, and any shard that
    /// certificates issued under an earlier setting still name.
    pub(crate) fn crl_scopes(&self, ca_id: &str) -> Result<Vec<Option<u32>>, ServiceError> {
        let ca = self.ca(ca_id)?;
        let mut scopes: Vec<Option<u32>> = vec![None];
        scopes.extend((1..=ca.crl_partitions()).map(Some));
        let mut conn = self.conn()?;
        let used: Vec<Option<i32>> = certificates::table
            .filter(certificates::ca_id.eq(ca_id))
            .filter(certificates::crl_partition.is_not_null())
            .select(certificates::crl_partition)
            .distinct()
            .load(&mut conn)?;
        for k in used.into_iter().flatten() {
            let k = Some(k.max(0) as u32);
            if !scopes.contains(&k) {
                scopes.push(k);
            }
        }
        Ok(scopes)
    }

    /// Rebuilds, signs and stores the complete CRL of one scope from every row (the scheduled
    /// publication, and the first one).
    pub fn publish_crl(
        &self,
        ca_id: &str,
        partition: Option<u32>,
        actor: &str,
    ) -> Result<(), ServiceError> {
        self.retry(|| self.publish_complete(ca_id, partition, actor, Rebuild::Full))
    }

    /// Publishes what changed in one scope since its last CRL: the next complete CRL, built
    /// from the previous one, and when deltas are on a delta CRL too. The complete CRL is
    /// republished even with deltas: a relying party that reads complete CRLs only (Java's
    /// default checker, `openssl verify -crl_check`, nginx `ssl_crl`, many VPN gateways) would
    /// otherwise accept a revoked certificate until the complete CRL's scheduled republication,
    /// up to `crl_validity_secs` later. It costs what a revocation without deltas costs (a
    /// million entries in under a second, `bench/RESULTS.md`).
    pub fn publish_change(
        &self,
        ca_id: &str,
        partition: Option<u32>,
        actor: &str,
    ) -> Result<(), ServiceError> {
        self.retry(|| self.publish_complete(ca_id, partition, actor, Rebuild::FromBase))?;
        if self.ca(ca_id)?.delta_crls() {
            self.retry(|| self.publish_delta(ca_id, partition, actor))?;
        }
        Ok(())
    }

    /// The nextUpdate distance of `ca`'s complete CRLs: long for the root, whose CRL covers CA
    /// certificates and which revokes rarely.
    fn crl_validity(&self, ca: &CertificateAuthority) -> u64 {
        if ca.is_root() {
            self.config.root_crl_validity_secs
        } else {
            self.config.crl_validity_secs
        }
    }

    fn retry(
        &self,
        mut publish: impl FnMut() -> Result<(), ServiceError>,
    ) -> Result<(), ServiceError> {
        let mut attempt = 0;
        loop {
            match publish() {
                Err(ServiceError::Conflict(_)) if attempt + 1 < RETRIES => attempt += 1,
                other => return other,
            }
        }
    }

    fn publish_complete(
        &self,
        ca_id: &str,
        partition: Option<u32>,
        actor: &str,
        how: Rebuild,
    ) -> Result<(), ServiceError> {
        let ca = self.ca(ca_id)?;
        let name = ca.crl_name(partition, false);
        let _publishing = Publishing::start(&self.crl_cache.publishing);
        let mut conn = self.conn()?;
        let now = self.now();
        let now_secs = now.as_secs() as i64;
        let published = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let number = next_number(conn, ca_id, crate::responder::now_ms())?;
            let params = CrlParams {
                this_update: now,
                next_update: now.plus(self.crl_validity(ca)),
                crl_number: number as u64,
                issuing_distribution_point: ca.crl_idp_url(partition),
                delta_base: None,
                freshest_crl: ca.delta_crl_url_for(partition),
            };
            let header = match how {
                Rebuild::Full => None,
                Rebuild::FromBase => published_header(conn, &name)?,
            };
            let base = match &header {
                Some(header) => Some(self.current_crl(conn, &name, header)?),
                None => None,
            };
            // Deltas stay based on the last scheduled rebuild's CRL, which relying parties
            // that use deltas hold; a republication from a base carries that base on.
            let delta_base = header.map(|h| h.delta_base()).unwrap_or((number, now_secs));
            let (der, detail) = match base {
                Some(base) => {
                    let changes =
                        changes_since(conn, ca_id, partition, base.this_update * 1000 - SLACK_MS)?;
                    let replaced: HashSet<Vec<u8>> = changes
                        .iter()
                        .filter_map(|c| parse_serial_hex(&c.serial))
                        .map(|s| s.as_bytes().to_vec())
                        .collect();
                    let added: Vec<RevokedEntry> =
                        changes.iter().filter_map(|c| c.entry(now_secs)).collect();
                    let der = build_crl_from_base(ca, &params, &base.der, &replaced, &added)?;
                    (
                        der,
                        json!({"crl_number": number, "scope": name, "base": base.number, "changed": changes.len()}),
                    )
                }
                None => {
                    let (der, count) = self.build_scope(conn, ca, &params, partition, now_secs)?;
                    (
                        der,
                        json!({"crl_number": number, "scope": name, "entries": count}),
                    )
                }
            };
            let row = PublishedCrlRow {
                name: name.clone(),
                ca_id: ca_id.to_string(),
                crl_partition: partition.map(|k| k as i32),
                base_number: None,
                crl_number: number,
                this_update: now_secs,
                next_update: params.next_update.as_secs() as i64,
                der_len: der.len() as i64,
                delta_base_number: Some(delta_base.0),
                delta_base_this_update: Some(delta_base.1),
            };
            store(conn, &row, &der)?;
            audit_log::append(conn, now.as_secs(), actor, "crl.publish", ca_id, detail)?;
            Ok(PublishedCrl::new(&row, der))
        })?;
        self.remember(&name, published);
        Ok(())
    }

    /// The scope's current complete CRL, whose stored header is `header`: from memory when it
    /// is the one the database holds, otherwise from the database.
    fn current_crl(
        &self,
        conn: &mut DbConnection,
        name: &str,
        header: &Header,
    ) -> Result<Arc<PublishedCrl>, ServiceError> {
        if let Some(hit) = self.cached_crl(name).filter(|c| c.number == header.number) {
            return Ok(hit);
        }
        load(conn, name)?
            .map(Arc::new)
            .ok_or_else(|| ServiceError::Conflict(format!("CRL {name} vanished; retry")))
    }

    /// Calls `each` with every revoked or held, unexpired certificate of a scope in serial order,
    /// reading the rows in batches so that memory never holds more than one batch.
    fn for_each_revoked(
        &self,
        conn: &mut DbConnection,
        ca_id: &str,
        partition: Option<u32>,
        now: i64,
        mut each: impl FnMut(&RevokedEntry) -> Result<(), ServiceError>,
    ) -> Result<(), ServiceError> {
        let mut after = String::new();
        loop {
            let rows: Vec<Revoked> = scope_query(ca_id, partition)
                .filter(certificates::status.eq_any(["revoked", "hold"]))
                .filter(certificates::serial.gt(after.clone()))
                .filter(certificates::not_after.gt(now))
                .order(certificates::serial.asc())
                .limit(BATCH)
                .select(Revoked::as_select())
                .load(conn)?;
            for row in &rows {
                if let Some(entry) = row.entry(now) {
                    each(&entry)?;
                }
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == BATCH => after = last.serial.clone(),
                _ => return Ok(()),
            }
        }
    }

    /// Builds and signs the complete CRL of a scope from every row, in two passes over the rows
    /// (inside the caller's transaction): the first measures the encoded entries, the second
    /// writes them straight into the CRL's buffer. Memory holds the CRL and one batch of rows.
    fn build_scope(
        &self,
        conn: &mut DbConnection,
        ca: &CertificateAuthority,
        params: &CrlParams,
        partition: Option<u32>,
        now: i64,
    ) -> Result<(Vec<u8>, usize), ServiceError> {
        let ca_id = ca.id();
        let mut scratch = Vec::with_capacity(128);
        let (mut total, mut count) = (0usize, 0usize);
        self.for_each_revoked(conn, ca_id, partition, now, |entry| {
            scratch.clear();
            encode_entry(entry, &mut scratch)?;
            total += scratch.len();
            count += 1;
            Ok(())
        })?;
        let der = build_crl_with(ca, params, total, |out: &mut Vec<u8>| {
            self.for_each_revoked(conn, ca_id, partition, now, |entry| {
                encode_entry(entry, out)?;
                Ok(())
            })
        })?;
        Ok((der, count))
    }

    /// Builds, signs and stores the delta CRL of one scope over every status change since its
    /// base — the complete CRL of the scope's last scheduled rebuild — (revocations and holds;
    /// releases as removeFromCRL). It combines with that complete CRL and with every one
    /// republished since (RFC 5280 §5.2.4: a complete CRL numbered at least the base).
    fn publish_delta(
        &self,
        ca_id: &str,
        partition: Option<u32>,
        actor: &str,
    ) -> Result<(), ServiceError> {
        let ca = self.ca(ca_id)?;
        let base_name = ca.crl_name(partition, false);
        let name = ca.crl_name(partition, true);
        let _publishing = Publishing::start(&self.crl_cache.publishing);
        let mut conn = self.conn()?;
        let now = self.now();
        let now_secs = now.as_secs() as i64;
        let published = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let number = next_number(conn, ca_id, crate::responder::now_ms())?;
            let Some(complete) = published_header(conn, &base_name)? else {
                return Err(ServiceError::Conflict(
                    "no complete CRL to base a delta on".into(),
                ));
            };
            let (base_number, base_this) = complete.delta_base();
            let base_next = complete.next_update;
            let rows = changes_since(conn, ca_id, partition, base_this * 1000 - SLACK_MS)?;
            let entries: Vec<RevokedEntry> = rows
                .iter()
                .filter_map(|r| r.delta_entry(now_secs))
                .collect();
            let next_update = now
                .plus(self.config.delta_crl_validity_secs)
                .min(UnixTime(base_next.max(0) as u64));
            let params = CrlParams {
                this_update: now,
                next_update: if next_update > now {
                    next_update
                } else {
                    now.plus(60)
                },
                crl_number: number as u64,
                issuing_distribution_point: ca.crl_idp_url(partition),
                delta_base: Some(base_number as u64),
                freshest_crl: None,
            };
            let der = ca_core::crl::build_crl(ca, &params, &entries)?;
            let row = PublishedCrlRow {
                name: name.clone(),
                ca_id: ca_id.to_string(),
                crl_partition: partition.map(|k| k as i32),
                base_number: Some(base_number),
                crl_number: number,
                this_update: now_secs,
                next_update: params.next_update.as_secs() as i64,
                der_len: der.len() as i64,
                delta_base_number: None,
                delta_base_this_update: None,
            };
            store(conn, &row, &der)?;
            audit_log::append(
                conn,
                now.as_secs(),
                actor,
                "crl.publish_delta",
                ca_id,
                json!({"crl_number": number, "scope": name, "base": base_number, "entries": entries.len()}),
            )?;
            Ok(PublishedCrl::new(&row, der))
        })?;
        self.remember(&name, published);
        Ok(())
    }

    /// The scheduled work for one CA: for every scope, a complete CRL rebuilt from the rows when
    /// it is missing or its delta base (the last rebuild) is past half its validity; the next
    /// one when a status change is not yet published (a revocation whose publication was cut
    /// short, e.g. by a crash); and when deltas are on, a fresh delta when the current one is
    /// missing, past half its validity or older than its complete CRL.
    pub(crate) fn maintain_crls(&self, ca_id: &str) -> Result<(), ServiceError> {
        let deltas = self.ca(ca_id)?.delta_crls();
        for partition in self.crl_scopes(ca_id)? {
            let ca = self.ca(ca_id)?;
            let name = ca.crl_name(partition, false);
            let mut conn = self.conn()?;
            let now = self.now().as_secs() as i64;
            let complete = published_header(&mut conn, &name)?;
            let stale = match complete {
                None => true,
                Some(h) => {
                    let since = if deltas {
                        h.delta_base().1
                    } else {
                        h.this_update
                    };
                    now >= since + (h.next_update - h.this_update) / 2
                }
            };
            if stale {
                drop(conn);
                self.publish_crl(ca_id, partition, "system")?;
                if deltas {
                    self.retry(|| self.publish_delta(ca_id, partition, "system"))?;
                }
                continue;
            }
            let covered_ms = complete.map(|h| h.this_update * 1000).unwrap_or(0);
            let unpublished = scope_query(ca_id, partition)
                .filter(certificates::status_changed_ms.gt(covered_ms))
                .select(certificates::serial)
                .first::<String>(&mut conn)
                .optional()?
                .is_some();
            let delta_stale = deltas
                && match (
                    complete,
                    published_header(&mut conn, &ca.crl_name(partition, true))?,
                ) {
                    (Some(c), Some(d)) => {
                        d.base_number != Some(c.delta_base().0)
                            || d.this_update < c.this_update
                            || now >= d.this_update + (d.next_update - d.this_update) / 2
                    }
                    _ => true,
                };
            drop(conn);
            if unpublished {
                self.publish_change(ca_id, partition, "system")?;
            } else if delta_stale {
                self.retry(|| self.publish_delta(ca_id, partition, "system"))?;
            }
        }
        Ok(())
    }

    /// A published CRL by file name (`issuing`, `issuing-p3`, `issuing-delta`, `root`), from
    /// memory.
    pub fn crl_file(&self, name: &str) -> Result<Arc<PublishedCrl>, ServiceError> {
        if let Some(hit) = self.cached_crl(name) {
            return Ok(hit);
        }
        let loaded = self.load_crl(name)?;
        self.remember(name, loaded);
        self.cached_crl(name)
            .ok_or_else(|| ServiceError::NotFound(format!("CRL {name}")))
    }

    fn load_crl(&self, name: &str) -> Result<PublishedCrl, ServiceError> {
        let mut conn = self.conn()?;
        load(&mut conn, name)?.ok_or_else(|| ServiceError::NotFound(format!("CRL {name}")))
    }

    /// The current complete, unpartitioned CRL of `ca_id`.
    pub fn crl(&self, ca_id: &str) -> Result<Arc<PublishedCrl>, ServiceError> {
        self.crl_file(ca_id)
    }

    /// Re-reads CRLs another instance published (their numbers moved on in the database).
    pub fn poll_crls(&self) -> Result<(), ServiceError> {
        let mut conn = self.conn()?;
        let published: Vec<(String, i64)> = published_crls::table
            .select((published_crls::name, published_crls::crl_number))
            .load(&mut conn)?;
        drop(conn);
        for (name, number) in published {
            // The mark is read before the cache: a publication of this instance that committed
            // before the numbers were read is either still marked (its publisher caches it) or
            // already cached.
            if self.crl_cache.publishing.load(Ordering::SeqCst) > 0
                || self.cached_crl(&name).map(|c| c.number) == Some(number)
            {
                continue;
            }
            let loaded = self.load_crl(&name)?;
            self.remember(&name, loaded);
        }
        Ok(())
    }
}
