//! Audit queries: the entries, and the chain checked against the stored checkpoints.

use ca_core::role::Role;

use crate::accounts::Caller;
use crate::api::*;
use crate::error::ServiceError;
use crate::store::audit_log;
use crate::store::request_rows::AuditRows;

use super::Authority;

impl Authority {
    /// `GET /audit` (auditor, admin): entries after `after`, at most `limit`.
    pub fn audit(
        &self,
        caller: &Caller,
        after: u64,
        limit: u32,
        action: Option<&str>,
    ) -> Result<Vec<AuditView>, ServiceError> {
        caller.require(&[Role::Auditor, Role::Admin])?;
        let mut conn = self.conn()?;
        let rows = conn.audit_entries(
            after.min(i64::MAX as u64) as i64,
            i64::from(limit.clamp(1, 1000)),
            action,
        )?;
        Ok(rows
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
            .collect())
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
