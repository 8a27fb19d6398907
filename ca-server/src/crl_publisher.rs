//! CRL publication: complete CRLs (on schedule, and on every revocation unless delta CRLs are
//! on) and delta CRLs (RFC 5280 §5.2.4; on every revocation when enabled), sharing one cRLNumber
//! sequence per CA that only grows. Both are kept in memory for the public listener and
//! re-read when another instance publishes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use ca_core::crl::{build_crl, CrlParams, RevocationReason, RevokedEntry};
use ca_core::serial::parse_serial_hex;
use ca_core::time::UnixTime;
use diesel::prelude::*;
use serde_json::json;

use crate::audit_log;
use crate::authority::Authority;
use crate::error::ServiceError;
use crate::store::models::*;
use crate::store::schema::*;
use crate::store::DbConnection;

/// A published CRL as served.
#[derive(Debug)]
pub struct PublishedCrl {
    /// DER.
    pub der: Vec<u8>,
    /// cRLNumber.
    pub number: i64,
    /// thisUpdate (Unix seconds).
    pub this_update: i64,
    /// nextUpdate (Unix seconds).
    pub next_update: i64,
}

/// Published CRLs by file name (`issuing`, `issuing-delta`, `root`).
#[derive(Debug, Default)]
pub struct CrlCache {
    map: RwLock<HashMap<String, Arc<PublishedCrl>>>,
}

type Revoked = (
    String,
    Option<i64>,
    i64,
    Option<String>,
    Option<i64>,
    String,
    i64,
);

/// Unexpired certificates of `ca_id` on hold or revoked; with `since_ms`, every one whose status
/// changed since then (releases included, for removeFromCRL).
fn revoked_rows(
    conn: &mut DbConnection,
    ca_id: &str,
    since_ms: Option<i64>,
    now: i64,
) -> QueryResult<Vec<Revoked>> {
    let query = certificates::table
        .select((
            certificates::serial,
            certificates::revoked_at,
            certificates::created_at,
            certificates::revocation_reason,
            certificates::invalidity_date,
            certificates::status,
            certificates::status_changed_ms,
        ))
        .filter(certificates::ca_id.eq(ca_id.to_string()))
        .filter(certificates::not_after.gt(now))
        .into_boxed();
    let query = match since_ms {
        None => query.filter(certificates::status.eq_any(["revoked", "hold"])),
        Some(ms) => query
            .filter(certificates::status_changed_ms.ge(ms))
            .filter(certificates::status.eq_any(["revoked", "hold", "valid"])),
    };
    query.load(conn)
}

fn entry(row: &Revoked) -> Option<RevokedEntry> {
    let (serial, revoked_at, created_at, reason, invalidity, status, changed_ms) = row;
    let serial = parse_serial_hex(serial)?;
    if status == "valid" {
        return Some(RevokedEntry {
            serial,
            revoked_at: UnixTime((*changed_ms / 1000).max(0) as u64),
            reason: RevocationReason::RemoveFromCrl,
            invalidity_date: None,
        });
    }
    Some(RevokedEntry {
        serial,
        revoked_at: UnixTime(revoked_at.unwrap_or(*created_at).max(0) as u64),
        reason: reason
            .as_deref()
            .and_then(RevocationReason::parse)
            .unwrap_or(RevocationReason::Unspecified),
        invalidity_date: invalidity.map(|d| UnixTime(d.max(0) as u64)),
    })
}

impl Authority {
    fn remember(&self, name: &str, crl: PublishedCrl) {
        if let Ok(mut map) = self.crl_cache.map.write() {
            map.insert(name.to_string(), Arc::new(crl));
        }
    }

    /// Reserves the next cRLNumber for `ca_id` (complete and delta CRLs share the sequence).
    fn next_number(
        conn: &mut DbConnection,
        ca_id: &str,
    ) -> Result<(Option<CrlRow>, i64), ServiceError> {
        let current: Option<CrlRow> = crls::table
            .find(ca_id)
            .select(CrlRow::as_select())
            .first(conn)
            .optional()?;
        let last = current
            .as_ref()
            .map(|c| c.last_number.max(c.crl_number))
            .unwrap_or(0);
        Ok((current, last + 1))
    }

    /// Builds, signs and stores the next complete CRL for `ca_id`, in one transaction.
    pub fn publish_crl(&self, ca_id: &str, actor: &str) -> Result<(), ServiceError> {
        let ca = self
            .cas
            .get(ca_id)
            .ok_or_else(|| ServiceError::NotFound(format!("CA {ca_id}")))?;
        let mut conn = self.conn()?;
        let now = self.now();
        let published = conn.transaction::<_, ServiceError, _>(|conn| {
            let (current, number) = Self::next_number(conn, ca_id)?;
            let rows = revoked_rows(conn, ca_id, None, now.as_secs() as i64)?;
            let entries: Vec<RevokedEntry> = rows.iter().filter_map(entry).collect();
            drop(rows);
            let params = CrlParams {
                this_update: now,
                next_update: now.plus(self.config.crl_validity_secs),
                crl_number: number as u64,
                issuing_distribution_point: ca.crl_url(),
                delta_base: None,
                freshest_crl: ca.delta_crl_url(),
            };
            let der = build_crl(ca, &params, &entries)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            let row = CrlRow {
                ca_id: ca_id.to_string(),
                crl_number: number,
                this_update: now.as_secs() as i64,
                next_update: params.next_update.as_secs() as i64,
                der,
                last_number: number,
            };
            match current {
                Some(previous) => {
                    let n = diesel::update(
                        crls::table
                            .find(ca_id)
                            .filter(crls::last_number.eq(previous.last_number))
                            .filter(crls::crl_number.eq(previous.crl_number)),
                    )
                    .set((
                        crls::crl_number.eq(number),
                        crls::last_number.eq(number),
                        crls::this_update.eq(row.this_update),
                        crls::next_update.eq(row.next_update),
                        crls::der.eq(&row.der),
                    ))
                    .execute(conn)?;
                    if n != 1 {
                        return Err(ServiceError::Conflict(
                            "a concurrent CRL publication won; retry".into(),
                        ));
                    }
                }
                None => {
                    diesel::insert_into(crls::table)
                        .values(&row)
                        .execute(conn)?;
                }
            }
            audit_log::append(
                conn,
                now.as_secs(),
                actor,
                "crl.publish",
                ca_id,
                json!({"crl_number": number, "entries": entries.len()}),
            )?;
            Ok(PublishedCrl {
                der: row.der,
                number,
                this_update: row.this_update,
                next_update: row.next_update,
            })
        })?;
        self.remember(ca_id, published);
        Ok(())
    }

    /// Builds, signs and stores a delta CRL for `ca_id` over every status change since its
    /// complete CRL (revocations and holds; releases as removeFromCRL).
    pub fn publish_delta_crl(&self, ca_id: &str, actor: &str) -> Result<(), ServiceError> {
        let ca = self
            .cas
            .get(ca_id)
            .ok_or_else(|| ServiceError::NotFound(format!("CA {ca_id}")))?;
        let mut conn = self.conn()?;
        let now = self.now();
        let published = conn.transaction::<_, ServiceError, _>(|conn| {
            let (current, number) = Self::next_number(conn, ca_id)?;
            let Some(base) = current else {
                return Err(ServiceError::Conflict(
                    "no complete CRL to base a delta on".into(),
                ));
            };
            let since_ms = base.this_update * 1000;
            let rows = revoked_rows(conn, ca_id, Some(since_ms), now.as_secs() as i64)?;
            let entries: Vec<RevokedEntry> = rows.iter().filter_map(entry).collect();
            let next_update = now
                .plus(self.config.delta_crl_validity_secs)
                .min(UnixTime(base.next_update.max(0) as u64));
            let params = CrlParams {
                this_update: now,
                next_update: if next_update > now {
                    next_update
                } else {
                    now.plus(60)
                },
                crl_number: number as u64,
                issuing_distribution_point: ca.crl_url(),
                delta_base: Some(base.crl_number as u64),
                freshest_crl: None,
            };
            let der = build_crl(ca, &params, &entries)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            let n = diesel::update(
                crls::table
                    .find(ca_id)
                    .filter(crls::last_number.eq(base.last_number)),
            )
            .set(crls::last_number.eq(number))
            .execute(conn)?;
            if n != 1 {
                return Err(ServiceError::Conflict(
                    "a concurrent CRL publication won; retry".into(),
                ));
            }
            let row = DeltaCrlRow {
                ca_id: ca_id.to_string(),
                crl_number: number,
                base_number: base.crl_number,
                this_update: now.as_secs() as i64,
                next_update: params.next_update.as_secs() as i64,
                der,
            };
            diesel::delete(delta_crls::table.find(ca_id)).execute(conn)?;
            diesel::insert_into(delta_crls::table)
                .values(&row)
                .execute(conn)?;
            audit_log::append(
                conn,
                now.as_secs(),
                actor,
                "crl.publish_delta",
                ca_id,
                json!({"crl_number": number, "base": base.crl_number, "entries": entries.len()}),
            )?;
            Ok(PublishedCrl {
                der: row.der,
                number,
                this_update: row.this_update,
                next_update: row.next_update,
            })
        })?;
        self.remember(&format!("{ca_id}-delta"), published);
        Ok(())
    }

    /// Republishes the delta CRL when it is missing, older than the complete CRL, or past half
    /// its validity.
    pub(crate) fn refresh_delta_crl(&self, ca_id: &str) -> Result<(), ServiceError> {
        let mut conn = self.conn()?;
        let base: Option<i64> = crls::table
            .find(ca_id)
            .select(crls::crl_number)
            .first(&mut conn)
            .optional()?;
        let delta: Option<DeltaCrlRow> = delta_crls::table
            .find(ca_id)
            .select(DeltaCrlRow::as_select())
            .first(&mut conn)
            .optional()?;
        let now = self.now().as_secs() as i64;
        let stale = match (base, delta) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(b), Some(d)) => {
                d.base_number != b || now >= d.this_update + (d.next_update - d.this_update) / 2
            }
        };
        if stale {
            self.publish_delta_crl(ca_id, "system")?;
        }
        Ok(())
    }

    /// A published CRL by file name (`issuing`, `issuing-delta`, `root`), from memory.
    pub fn crl_file(&self, name: &str) -> Result<Arc<PublishedCrl>, ServiceError> {
        if let Some(hit) = self
            .crl_cache
            .map
            .read()
            .ok()
            .and_then(|m| m.get(name).cloned())
        {
            return Ok(hit);
        }
        let loaded = self.load_crl(name)?;
        self.remember(name, loaded);
        self.crl_cache
            .map
            .read()
            .ok()
            .and_then(|m| m.get(name).cloned())
            .ok_or_else(|| ServiceError::NotFound(format!("CRL {name}")))
    }

    fn load_crl(&self, name: &str) -> Result<PublishedCrl, ServiceError> {
        let mut conn = self.conn()?;
        if let Some(ca) = name.strip_suffix("-delta") {
            let row: DeltaCrlRow = delta_crls::table
                .find(ca)
                .select(DeltaCrlRow::as_select())
                .first(&mut conn)
                .optional()?
                .ok_or_else(|| ServiceError::NotFound(format!("delta CRL for {ca}")))?;
            return Ok(PublishedCrl {
                der: row.der,
                number: row.crl_number,
                this_update: row.this_update,
                next_update: row.next_update,
            });
        }
        let row: CrlRow = crls::table
            .find(name)
            .select(CrlRow::as_select())
            .first(&mut conn)
            .optional()?
            .ok_or_else(|| ServiceError::NotFound(format!("CRL for {name}")))?;
        Ok(PublishedCrl {
            der: row.der,
            number: row.crl_number,
            this_update: row.this_update,
            next_update: row.next_update,
        })
    }

    /// The current complete CRL of `ca_id`.
    pub fn crl(&self, ca_id: &str) -> Result<Arc<PublishedCrl>, ServiceError> {
        self.crl_file(ca_id)
    }

    /// Re-reads CRLs another instance published (their numbers moved on in the database).
    pub fn poll_crls(&self) -> Result<(), ServiceError> {
        let mut conn = self.conn()?;
        let full: Vec<(String, i64)> = crls::table
            .select((crls::ca_id, crls::crl_number))
            .load(&mut conn)?;
        let delta: Vec<(String, i64)> = delta_crls::table
            .select((delta_crls::ca_id, delta_crls::crl_number))
            .load(&mut conn)?;
        drop(conn);
        let names = full
            .into_iter()
            .chain(delta.into_iter().map(|(ca, n)| (format!("{ca}-delta"), n)));
        for (name, number) in names {
            let cached = self
                .crl_cache
                .map
                .read()
                .ok()
                .and_then(|m| m.get(&name).map(|c| c.number));
            if cached != Some(number) {
                let loaded = self.load_crl(&name)?;
                self.remember(&name, loaded);
            }
        }
        Ok(())
    }
}
