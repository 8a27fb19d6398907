//! Audit queries: the entries, and the chain checked against the stored checkpoints.

use ca_core::role::Role;

use crate::accounts::Caller;
use crate::api::*;
use crate::error::ServiceError;
use crate::store::audit_log;
use crate::store::request_rows::{AuditQuery, AuditRows};

use super::{page_limit, Page};

use super::Authority;

impl Authority {
    /// `GET /audit` (auditor, admin): a page of entries, newest first, or oldest first after
    /// `after` (exports and verification read the chain in order that way).
    pub fn audit(
        &self,
        caller: &Caller,
        query: &AuditListQuery,
    ) -> Result<Page<AuditView>, ServiceError> {
        caller.require(&[Role::Auditor, Role::Admin])?;
        let limit = page_limit(query.limit.or(Some(100)), 100)?;
        let oldest_first = match query.order.as_deref() {
            None => query.after.is_some(),
            Some("asc") => true,
            Some("desc") => false,
            Some(other) => {
                return Err(ServiceError::Invalid(format!(
                    "order must be asc or desc (got {other:?})"
                )))
            }
        };
        let time = |text: &Option<String>, name: &str| -> Result<Option<i64>, ServiceError> {
            text.as_deref()
                .map(|t| {
                    parse_rfc3339(t).map(|s| s as i64).ok_or_else(|| {
                        ServiceError::Invalid(format!(
                            "{name} is not RFC 3339 (2026-12-01T09:00:00+09:00)"
                        ))
                    })
                })
                .transpose()
        };
        let cursor =
            match &query.cursor {
                None => None,
                Some(c) => Some(c.parse::<i64>().map_err(|_| {
                    ServiceError::Invalid("cursor is not one this server gave".into())
                })?),
            };
        let from_seq = cursor.or(query.after.map(|a| a.min(i64::MAX as u64) as i64));
        let mut conn = self.conn()?;
        let (rows, total) = conn.audit_page(
            &AuditQuery {
                action: query.action.as_deref(),
                actor: query.actor.as_deref(),
                target: query.target.as_deref(),
                since: time(&query.since, "since")?,
                until: time(&query.until, "until")?,
                oldest_first,
                from_seq,
            },
            limit,
        )?;
        let next = (rows.len() as i64 == limit)
            .then(|| rows.last().map(|r| r.seq.to_string()))
            .flatten();
        let items = rows
            .into_iter()
            .map(|r| AuditView {
                seq: r.seq as u64,
                at: rfc3339(r.at),
                actor: r.actor,
                action: r.action,
                target: r.target,
                details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
                prev_hash: r.prev_hash,
                hash: r.hash,
                at_unix: r.at.max(0) as u64,
            })
            .collect();
        Ok(Page { items, total, next })
    }

    /// `GET /audit/verify` (auditor, admin).
    pub fn audit_verify(&self, caller: &Caller) -> Result<AuditVerifyView, ServiceError> {
        caller.require(&[Role::Auditor, Role::Admin])?;
        let mut conn = self.conn()?;
        let chain = audit_log::load_chain(&mut conn)?;
        if let Err(b) = ca_core::audit::verify_chain(&chain) {
            return Ok(AuditVerifyView {
                ok: false,
                entries: 0,
                broken_at: Some(b.seq),
                reason: Some(b.reason.to_string()),
                checkpoints: 0,
            });
        }
        Ok(match self.verify_stored_checkpoints(&mut conn, &chain)? {
            Ok(matched) => AuditVerifyView {
                ok: true,
                entries: chain.len(),
                broken_at: None,
                reason: None,
                checkpoints: matched,
            },
            Err(failure) => AuditVerifyView {
                ok: false,
                entries: chain.len(),
                broken_at: Some(match failure {
                    ca_core::audit::CheckpointFailure::BadSignature(s)
                    | ca_core::audit::CheckpointFailure::Rewritten(s)
                    | ca_core::audit::CheckpointFailure::Truncated { seq: s, .. } => s,
                }),
                reason: Some(failure.to_string()),
                checkpoints: 0,
            },
        })
    }
}
