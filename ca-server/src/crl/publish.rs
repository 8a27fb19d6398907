//! Building, signing and storing CRLs: complete ones (rebuilt from every row, or from the
//! previous CRL and the changes since), delta ones, and the upkeep that republishes them.

use std::collections::HashSet;
use std::sync::Arc;

use ca_core::ca::CertificateAuthority;
use ca_core::crl::{build_crl_from_base, build_crl_with, encode_entry, CrlParams, RevokedEntry};
use ca_core::serial::parse_serial_hex;
use ca_core::time::UnixTime;
use serde_json::json;

use super::storage::*;
use super::{PublishedCrl, Publisher, Publishing};
use crate::error::ServiceError;
use crate::store::audit_log;
use crate::store::crl_rows::{CrlRows, Header, BATCH};
use crate::store::models::PublishedCrlRow;
use crate::store::DbConnection;

/// How often a publication that lost a race with another instance is retried.
const RETRIES: usize = 5;

impl Publisher<'_> {
    /// The CRL scopes of `ca_id`: the whole CA, every configured shard, and any shard that
    /// certificates issued under an earlier setting still name.
    pub(crate) fn crl_scopes(&self, ca_id: &str) -> Result<Vec<Option<u32>>, ServiceError> {
        let ca = self.ca(ca_id)?;
        let mut scopes: Vec<Option<u32>> = vec![None];
        scopes.extend((1..=ca.crl_partitions()).map(Some));
        let mut conn = self.conn()?;
        let used = conn.partitions_in_use(ca_id)?;
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
        let clock = self.now();
        let published = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let number = conn.next_number(ca_id, crate::store::now_ms())?;
            let previous = conn.published_header(&name)?;
            let now = not_before_previous(clock, previous.as_ref());
            let now_secs = now.as_secs() as i64;
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
                Rebuild::FromBase => previous,
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
                        conn.changes_since(ca_id, partition, base.this_update * 1000 - SLACK_MS)?;
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
            conn.store_crl(&row, &der)?;
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
            let rows = conn.revoked_after(ca_id, partition, &after, now)?;
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
        let clock = self.now();
        let published = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let number = conn.next_number(ca_id, crate::store::now_ms())?;
            let Some(complete) = conn.published_header(&base_name)? else {
                return Err(ServiceError::Conflict(
                    "no complete CRL to base a delta on".into(),
                ));
            };
            let now = not_before_previous(
                not_before_previous(clock, conn.published_header(&name)?.as_ref()),
                Some(&complete),
            );
            let now_secs = now.as_secs() as i64;
            let (base_number, base_this) = complete.delta_base();
            let base_next = complete.next_update;
            let rows = conn.changes_since(ca_id, partition, base_this * 1000 - SLACK_MS)?;
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
            conn.store_crl(&row, &der)?;
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
            let complete = conn.published_header(&name)?;
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
            let unpublished = conn.changed_after(ca_id, partition, covered_ms)?;
            let delta_stale = deltas
                && match (
                    complete,
                    conn.published_header(&ca.crl_name(partition, true))?,
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
}

/// The thisUpdate of a CRL published now: the clock's time, but never before the thisUpdate of
/// the CRL it replaces (`previous`). A clock stepped back (an NTP correction, a wrong manual
/// setting) would otherwise publish a newer CRL that looks older than the one relying parties
/// hold, which some of them keep instead.
fn not_before_previous(now: UnixTime, previous: Option<&Header>) -> UnixTime {
    match previous {
        Some(p) if p.this_update > now.as_secs() as i64 => UnixTime(p.this_update.max(0) as u64),
        _ => now,
    }
}
