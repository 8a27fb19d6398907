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
    serialize(conn, "mamori.audit")?;
    let last: Option<(i64, String)> = audit_log::table
        .select((audit_log::seq, audit_log::hash))
        .order(audit_log::seq.desc())
        .first(conn)
        .optional()?;
    let (seq, prev) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    let entry = chain(
        &prev,
        AuditRecord {
            seq: seq as u64,
            at,
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            details: details.to_string(),
        },
    );
    diesel::insert_into(audit_log::table)
        .values(to_row(&entry))
        .execute(conn)?;
    Ok(())
}

fn to_row(entry: &ChainedRecord) -> AuditRow {
    AuditRow {
        seq: entry.record.seq as i64,
        at: entry.record.at as i64,
        actor: entry.record.actor.clone(),
        action: entry.record.action.clone(),
        target: entry.record.target.clone(),
        details: entry.record.details.clone(),
        prev_hash: entry.prev_hash.clone(),
        hash: entry.hash.clone(),
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

/// Reads the whole chain in order and verifies it; returns the number of entries.
pub fn verify(conn: &mut DbConnection) -> Result<Result<usize, ChainBreak>, diesel::result::Error> {
    let rows: Vec<AuditRow> = audit_log::table
        .order(audit_log::seq.asc())
        .select(AuditRow::as_select())
        .load(conn)?;
    let entries: Vec<ChainedRecord> = rows.into_iter().map(from_row).collect();
    Ok(verify_chain(&entries).map(|_| entries.len()))
}
