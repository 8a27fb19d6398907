//! Decisions on requests (approve, reject, each with step-up) and the expiry of requests that
//! waited too long.

use ca_core::approval::{self, ApprovalState, Decision, PendingRequest, UserId, Verdict};
use ca_core::time::UnixTime;
use serde_json::json;

use crate::accounts::{parse_roles, roles_text, Caller};
use crate::api::*;
use crate::error::ServiceError;
use crate::store::audit_log;
use crate::store::ids::RequestId;
use crate::store::models::*;
use crate::store::request_rows::RequestRows;
use crate::store::status::RequestStatus;
use crate::store::DbConnection;

use super::Authority;

impl Authority {
    pub(super) fn decisions_of(
        &self,
        conn: &mut DbConnection,
        request_id: &str,
    ) -> Result<Vec<(DecisionRow, String)>, ServiceError> {
        Ok(conn.decisions_of(request_id)?)
    }

    fn core_decisions(rows: &[(DecisionRow, String)]) -> Vec<Decision> {
        rows.iter()
            .map(|(d, _)| Decision {
                approver: UserId(d.approver_id.clone()),
                approver_roles: parse_roles(&d.approver_roles),
                verdict: if d.verdict == "approve" {
                    Verdict::Approve
                } else {
                    Verdict::Reject
                },
                second_factor_verified: d.second_factor,
                at: UnixTime(d.decided_at.max(0) as u64),
            })
            .collect()
    }

    /// `POST /requests/{id}/approve|reject`: a fresh TOTP code in the same call; the approval
    /// rules decide; the last needed approval issues at once.
    pub fn decide(
        &self,
        caller: &Caller,
        request_id: &RequestId,
        verdict: Verdict,
        body: &DecisionRequest,
    ) -> Result<RequestView, ServiceError> {
        let request_id = request_id.as_str();
        let action = match verdict {
            Verdict::Approve => "request.approve",
            Verdict::Reject => "request.reject",
        };
        let outcome = self.decide_inner(caller, request_id, verdict, body);
        self.accounts.guarded(caller, action, request_id, outcome)
    }

    fn decide_inner(
        &self,
        caller: &Caller,
        request_id: &str,
        verdict: Verdict,
        body: &DecisionRequest,
    ) -> Result<RequestView, ServiceError> {
        if body.comment.len() > 2000 {
            return Err(ServiceError::Invalid(
                "comment must be at most 2000 characters".into(),
            ));
        }
        if verdict == Verdict::Approve {
            self.require_unlocked()?;
        }
        let mut conn = self.conn()?;
        self.expire_one(&mut conn, request_id)?;
        let now = self.now();
        let issue_now = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let row = conn
                .request(request_id)?
                .ok_or_else(|| ServiceError::NotFound(format!("request {request_id}")))?;
            let profile = self
                .profiles
                .get(&row.profile_id)
                .ok_or_else(|| ServiceError::Internal("profile vanished".into()))?;
            let rule = profile.approval();
            if !caller.has_any(&rule.approver_roles) {
                let names: Vec<&str> = rule.approver_roles.iter().map(|r| r.as_str()).collect();
                return Err(ServiceError::Forbidden(format!(
                    "approving requires one of the roles: {}",
                    names.join(", ")
                )));
            }
            if RequestStatus::of_row(&row.status)? != RequestStatus::Pending {
                return Err(ca_core::error::ApprovalError::NotPending(row.status.clone()).into());
            }
            if conn.user_disabled(&row.requester_id)? {
                return Err(ServiceError::Conflict(
                    "the requester's account is disabled: the request cannot be decided".into(),
                ));
            }
            let user = conn.user_row(&caller.user_id)?;
            self.accounts
                .check_cooling_off(&user, now.as_secs() as i64)?;
            let pending = PendingRequest {
                requester: UserId(row.requester_id.clone()),
                submitted_at: UnixTime(row.created_at.max(0) as u64),
            };
            let existing = Self::core_decisions(&self.decisions_of(conn, request_id)?);
            // Rule checks that need no code come first, so a self-approval never burns a code.
            let provisional = Decision {
                approver: UserId(caller.user_id.clone()),
                approver_roles: caller.roles.clone(),
                verdict,
                second_factor_verified: true,
                at: now,
            };
            approval::check_decision(rule, &pending, &existing, &provisional, now)?;
            self.accounts.step_up(conn, &user, &body.totp)?;
            let decision = DecisionRow {
                request_id: request_id.to_string(),
                approver_id: caller.user_id.clone(),
                approver_roles: roles_text(&caller.roles),
                verdict: if verdict == Verdict::Approve {
                    "approve".into()
                } else {
                    "reject".into()
                },
                second_factor: true,
                comment: body.comment.clone(),
                decided_at: now.as_secs() as i64,
            };
            conn.insert_decision(&decision)?;
            let action = if verdict == Verdict::Approve {
                "request.approve"
            } else {
                "request.reject"
            };
            audit_log::append(
                conn,
                now.as_secs(),
                &caller.username,
                action,
                request_id,
                json!({"comment": body.comment, "second_factor": true}),
            )?;
            let mut all = existing;
            all.push(Decision {
                second_factor_verified: true,
                ..provisional
            });
            match approval::evaluate(rule, &pending, &all, now) {
                ApprovalState::Approved => Ok(conn.move_request(
                    request_id,
                    RequestStatus::Pending,
                    RequestStatus::Approved,
                    now.as_secs() as i64,
                )?),
                ApprovalState::Rejected { .. } => {
                    conn.set_request_status(
                        request_id,
                        RequestStatus::Rejected,
                        now.as_secs() as i64,
                    )?;
                    Ok(false)
                }
                _ => Ok(false),
            }
        })?;
        let older = if issue_now {
            self.issue_approved(&mut conn, request_id, &caller.username)?
        } else {
            Vec::new()
        };
        let view = self.request_view(&mut conn, request_id);
        drop(conn);
        if !older.is_empty() {
            self.supersede(&older, request_id)?;
        }
        view
    }

    pub(super) fn expire_one(
        &self,
        conn: &mut DbConnection,
        request_id: &str,
    ) -> Result<(), ServiceError> {
        let Some(row) = conn.request(request_id)? else {
            return Ok(());
        };
        if RequestStatus::of_row(&row.status)? != RequestStatus::Pending {
            return Ok(());
        }
        let Some(profile) = self.profiles.get(&row.profile_id) else {
            return Ok(());
        };
        let now = self.now();
        if now.as_secs() as i64 > row.created_at + profile.approval().max_wait_secs as i64 {
            crate::store::write_transaction::<_, ServiceError, _>(&mut *conn, |conn| {
                let expired = conn.move_request(
                    request_id,
                    RequestStatus::Pending,
                    RequestStatus::Expired,
                    now.as_secs() as i64,
                )?;
                if expired {
                    audit_log::append(
                        conn,
                        now.as_secs(),
                        "system",
                        "request.expire",
                        request_id,
                        json!({}),
                    )?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Expires every pending request past its profile's `max_wait`.
    pub fn expire_requests(&self) -> Result<(), ServiceError> {
        let mut conn = self.conn()?;
        let pending = conn.pending_request_ids()?;
        for id in pending {
            self.expire_one(&mut conn, &id)?;
        }
        Ok(())
    }
}
