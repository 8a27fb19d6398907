//! Appending to and reading the audit chain stored in `audit_log` (format in `ca_core::audit`).

use ca_core::audit::{chain, verify_chain, AuditRecord, ChainBreak, ChainedRecord, GENESIS};
use diesel::prelude::*;

use crate::store::models::AuditRow;
use crate::store::schema::audit_log;
use crate::store::DbConnection;

/// On PostgreSQL, waits for the transaction-scoped lock named `key`, so that instances sharing one
/// database take turns (SQLite already admits one writer at a time).
pub fn serialize(conn: &mut DbConnection, key: &str) -> QueryResult<()> {
    if let DbConnection::Postgresql(pg) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind::<diesel::sql_types::Text, _>(key)
            .execute(pg)?;
    }
    Ok(())
}

/// An audit entry not yet chained: what happened, by whom, to what.
#[derive(Debug, Clone)]
pub struct Entry {
    /// When (Unix seconds).
    pub at: u64,
    /// Who (a username, or `system`).
    pub actor: String,
    /// What, e.g. `certificate.issue`.
    pub action: String,
    /// To what, e.g. `ca/serial`.
    pub target: String,
    /// Details, as JSON.
    pub details: serde_json::Value,
}

impl Entry {
    /// An entry from borrowed parts.
    pub fn new(
        at: u64,
        actor: &str,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) -> Entry {
        Entry {
            at,
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            details,
        }
    }
}

/// Appends one entry; call inside the transaction that makes the change it records. The chain
/// has one head, so appends from concurrent transactions (and instances) take turns.
pub fn append(
    conn: &mut DbConnection,
    at: u64,
    actor: &str,
    action: &str,
    target: &str,
    details: serde_json::Value,
) -> QueryResult<()> {
    append_all(conn, vec![Entry::new(at, actor, action, target, details)])
}

/// Appends several entries in order with one read of the chain's head and one insert; call
/// inside the transaction that makes the changes they record. On PostgreSQL the chain's lock is
/// held from here to the commit, so a transaction that appends last holds it shortest.
pub fn append_all(conn: &mut DbConnection, entries: Vec<Entry>) -> QueryResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let (mut seq, mut prev) = match head(conn)? {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    let mut rows = Vec::with_capacity(entries.len());
    for entry in entries {
        let chained = chain(
            &prev,
            AuditRecord {
                seq: seq as u64,
                at: entry.at,
                actor: entry.actor,
                action: entry.action,
                target: entry.target,
                details: entry.details.to_string(),
            },
        );
        prev.clone_from(&chained.hash);
        seq += 1;
        rows.push(to_row(chained));
    }
    crate::store::insert_all!(conn, audit_log::table, &rows)
}

/// The newest entry's sequence number and hash, if any. On PostgreSQL `mamori_audit_tail()`
/// (migration 000007) takes the chain's lock and then reads, in one round trip; SQLite's
/// `BEGIN IMMEDIATE` already made this the only writer.
fn head(conn: &mut DbConnection) -> QueryResult<Option<(i64, String)>> {
    if let DbConnection::Postgresql(pg) = conn {
        #[derive(QueryableByName)]
        struct Head {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            seq: i64,
            #[diesel(sql_type = diesel::sql_types::Text)]
            hash: String,
        }
        let head =
            diesel::sql_query("SELECT seq, hash FROM mamori_audit_tail()").load::<Head>(pg)?;
        return Ok(head.into_iter().next().map(|h| (h.seq, h.hash)));
    }
    // `seq = (SELECT max(seq) ...)`, not `ORDER BY seq DESC LIMIT ?`: SQLite re-prepares a
    // statement whose LIMIT is a bound parameter each time it is bound, and this runs per batch.
    let newest = diesel::alias!(audit_log as newest);
    Ok(audit_log::table
        .filter(
            audit_log::seq.nullable().eq(newest
                .select(diesel::dsl::max(newest.field(audit_log::seq)))
                .single_value()),
        )
        .select((audit_log::seq, audit_log::hash))
        .load(conn)?
        .pop())
}

fn to_row(entry: ChainedRecord) -> AuditRow {
    AuditRow {
        seq: entry.record.seq as i64,
        at: entry.record.at as i64,
        actor: entry.record.actor,
        action: entry.record.action,
        target: entry.record.target,
        details: entry.record.details,
        prev_hash: entry.prev_hash,
        hash: entry.hash,
    }
}

/// Converts a stored row back into a chained record.
pub fn from_row(row: AuditRow) -> ChainedRecord {
    ChainedRecord {
        record: AuditRecord {
            seq: row.seq.max(0) as u64,
            at: row.at.max(0) as u64,
            actor: row.actor,
            action: row.action,
            target: row.target,
            details: row.details,
        },
        prev_hash: row.prev_hash,
        hash: row.hash,
    }
}

/// The whole chain in order.
pub fn load_chain(conn: &mut DbConnection) -> QueryResult<Vec<ChainedRecord>> {
    let rows: Vec<AuditRow> = audit_log::table
        .order(audit_log::seq.asc())
        .select(AuditRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Reads the whole chain in order and verifies it; returns the number of entries.
pub fn verify(conn: &mut DbConnection) -> Result<Result<usize, ChainBreak>, diesel::result::Error> {
    let entries = load_chain(conn)?;
    Ok(verify_chain(&entries).map(|_| entries.len()))
}
