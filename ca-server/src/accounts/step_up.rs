//! Step-up: the fresh TOTP code that approve, reject, revoke, hold and release ask for, limited
//! so that a stolen session cannot guess it (20,000 wrong codes at ~900/s used to go unnoticed),
//! and the audit of every refused security action.
//!
//! Wrong codes count per account and per session: at `step_up_max_failures` in a row the
//! account's step-up is locked until another security officer or an admin lifts it (with their
//! own step-up); at `step_up_session_failures` the session is ended. A right code clears the
//! account's count. Every wrong code and every refusal (locked step-up, self-approval, a second
//! decision, a role that may not act) is an audit entry written in a transaction of its own —
//! the refused one rolls back — and counted in `/metrics`.

use ca_core::role::Role;
use diesel::prelude::*;
use serde_json::json;

use super::{Accounts, Caller};
use crate::api::{StepUpRequest, UserView};
use crate::error::ServiceError;
use crate::store::account_rows::AccountRows;
use crate::store::audit_log;
use crate::store::models::UserRow;
use crate::store::DbConnection;

/// Clears an account's step-up lock and login lockout, with their counts (`user unlock` through
/// the API, and `ca-server unlock` on the server). Returns the rows changed (0: no such user).
pub(crate) fn lift_locks(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    conn.lift_locks(user_id)
}

impl Accounts {
    /// Checks `code` as `user`'s step-up inside the caller's write transaction: refused while
    /// the account's step-up is locked; a right code (once per TOTP step) clears the count of
    /// wrong ones.
    pub(crate) fn step_up(
        &self,
        conn: &mut DbConnection,
        user: &UserRow,
        code: &str,
    ) -> Result<(), ServiceError> {
        if user.step_up_locked_at.is_some() {
            return Err(ServiceError::StepUpLocked);
        }
        if !self.consume_totp(conn, user, code)? {
            return Err(ServiceError::InvalidSecondFactor);
        }
        if user.step_up_failures != 0 {
            conn.clear_step_up_failures(&user.id)?;
        }
        Ok(())
    }

    /// Passes on the outcome of security action `action` on `target`; a refusal is recorded
    /// first, outside the refused transaction: a wrong code counts against the account and the
    /// session (`stepup.failed`), any other refusal is a `security.refused` entry.
    pub(crate) fn guarded<T>(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        outcome: Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let Err(error) = &outcome else {
            return outcome;
        };
        let Some(kind) = error.refusal_kind() else {
            return outcome;
        };
        self.metrics.refusal(kind);
        let recorded = if matches!(error, ServiceError::InvalidSecondFactor) {
            self.count_step_up_failure(caller, action, target)
        } else {
            self.record_refusal(caller, action, target, kind, &error.to_string())
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, action, "recording a refused security action failed");
        }
        outcome
    }

    fn count_step_up_failure(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
    ) -> Result<(), ServiceError> {
        let now = self.now().as_secs();
        let mut conn = self.conn()?;
        let session_ended =
            crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
                // One UPDATE adds one, whatever runs at the same time; then the count is read.
                let (failures, locked_at) = conn.count_step_up_failure(&caller.user_id)?;
                let lock_now = locked_at.is_none()
                    && failures.max(0) as u32 >= self.config.step_up_max_failures;
                if lock_now {
                    conn.lock_step_up(&caller.user_id, now as i64)?;
                }
                let in_session = conn.count_session_step_up_failure(&caller.session)?;
                let end_session = in_session
                    .is_some_and(|n| n.max(0) as u32 >= self.config.step_up_session_failures);
                if end_session {
                    conn.delete_session(&caller.session)?;
                }
                audit_log::append(
                    conn,
                    now,
                    &caller.username,
                    "stepup.failed",
                    target,
                    json!({
                        "action": action,
                        "failures": failures,
                        "step_up_locked": lock_now || locked_at.is_some(),
                        "session_ended": end_session,
                    }),
                )?;
                Ok(end_session)
            })?;
        self.metrics
            .step_up_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if session_ended {
            self.sessions.invalidate();
        }
        Ok(())
    }

    fn record_refusal(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        kind: &str,
        detail: &str,
    ) -> Result<(), ServiceError> {
        let now = self.now().as_secs();
        let mut conn = self.conn()?;
        crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            audit_log::append(
                conn,
                now,
                &caller.username,
                "security.refused",
                target,
                json!({"action": action, "type": kind, "detail": detail}),
            )?;
            Ok(())
        })
    }

    /// `POST /users/{name}/unlock`: another security officer or an admin, with their own
    /// step-up, lifts a step-up lock and a login lockout.
    pub fn unlock_user(
        &self,
        caller: &Caller,
        username: &str,
        body: &StepUpRequest,
    ) -> Result<UserView, ServiceError> {
        let outcome = self.unlock_user_inner(caller, username, body);
        self.guarded(caller, "user.unlock", username, outcome)
    }

    fn unlock_user_inner(
        &self,
        caller: &Caller,
        username: &str,
        body: &StepUpRequest,
    ) -> Result<UserView, ServiceError> {
        caller.require(&[Role::Admin, Role::SecurityOfficer])?;
        if username == caller.username {
            return Err(ServiceError::Forbidden(
                "nobody lifts their own lock: ask another security officer or an admin".into(),
            ));
        }
        let now = self.now().as_secs();
        let mut conn = self.conn()?;
        crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let me = conn.user(&caller.user_id)?;
            self.step_up(conn, &me, &body.totp)?;
            let mut user = self
                .user_by_name(conn, username)?
                .ok_or_else(|| ServiceError::NotFound(format!("user {username}")))?;
            lift_locks(conn, &user.id)?;
            audit_log::append(
                conn,
                now,
                &caller.username,
                "user.unlock",
                username,
                json!({"step_up_locked_at": user.step_up_locked_at, "locked_until": user.locked_until, "comment": body.comment}),
            )?;
            user.step_up_locked_at = None;
            user.locked_until = None;
            Ok(Self::user_view(&user))
        })
    }
}
