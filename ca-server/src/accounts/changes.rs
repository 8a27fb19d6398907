//! Account administration under four eyes. Creating a user, changing roles, resetting a
//! password and TOTP secret, and re-enabling an account are asked for by an admin with a fresh
//! TOTP code and applied only when `policies/accounts.toml`'s approvers have approved, each with
//! their own fresh code — the same N-of-M shape as certificate requests. Nobody approves a change
//! they asked for or a change to their own account; an account inside the cooling-off period
//! cannot approve. A created or reset account gets no password or TOTP secret from anyone: its
//! holder enrols with a one-time code whose halves go to the requester and the final approver
//! ([`crate::enrolment`]). Disabling stays immediate (it only takes power away) but needs the
//! admin's step-up. Refusals are audited and counted like every other security refusal.

use ca_core::approval::Verdict;
use ca_core::error::ApprovalError;
use ca_core::role::Role;
use serde_json::json;

use super::{parse_role_list, parse_roles, roles_text, Accounts, Caller};
use crate::accounts::credentials as auth;
use crate::accounts::enrolment;
use crate::api::rfc3339;
use crate::api::*;
use crate::error::ServiceError;
use crate::store::account_rows::AccountRows;
use crate::store::audit_log;
use crate::store::directory_rows::DirectoryRows;
use crate::store::ids::new_id;
use crate::store::models::*;
use crate::store::DbConnection;

/// What an account change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new account (enrols its own credentials).
    Create,
    /// A new set of roles.
    Roles,
    /// New password and TOTP secret, by enrolment.
    Reset,
    /// A disabled account enabled again.
    Enable,
}

impl ChangeKind {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Roles => "roles",
            ChangeKind::Reset => "reset",
            ChangeKind::Enable => "enable",
        }
    }

    fn parse(text: &str) -> Option<ChangeKind> {
        [
            ChangeKind::Create,
            ChangeKind::Roles,
            ChangeKind::Reset,
            ChangeKind::Enable,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }

    /// Whether applying it starts an enrolment (so the code has halves).
    fn enrols(self) -> bool {
        matches!(self, ChangeKind::Create | ChangeKind::Reset)
    }
}

/// What a change sets, besides its kind and account.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Payload {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    current_roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email_domain: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    directory: bool,
}

impl Accounts {
    /// `POST /users` (admin, step-up): asks for a new account.
    pub fn request_create_user(
        &self,
        caller: &Caller,
        request: CreateUserRequest,
    ) -> Result<AccountChangeView, ServiceError> {
        let outcome = (|| {
            auth::check_username(&request.username).map_err(ServiceError::Invalid)?;
            let roles = parse_role_list(&request.roles)?;
            if roles.is_empty() {
                return Err(ServiceError::Invalid(
                    "a user needs at least one role".into(),
                ));
            }
            let (organization, email_domain) = crate::accounts::registered_fields((
                request.organization.clone(),
                request.email_domain.clone(),
            ))?;
            if request.directory && self.directory.is_none() {
                return Err(ServiceError::Invalid(
                    "directory accounts need [directory] in the server's configuration".into(),
                ));
            }
            let payload = Payload {
                roles: roles.iter().map(|r| r.to_string()).collect(),
                organization,
                email_domain,
                directory: request.directory,
                ..Payload::default()
            };
            self.request_change(
                caller,
                ChangeKind::Create,
                &request.username,
                payload,
                &request.totp,
                &request.comment,
            )
        })();
        self.guarded(caller, "account.request", &request.username, outcome)
    }

    /// `PUT /users/{name}/roles` (admin, step-up, never one's own): asks for new roles.
    pub fn request_set_roles(
        &self,
        caller: &Caller,
        username: &str,
        request: SetRolesRequest,
    ) -> Result<AccountChangeView, ServiceError> {
        let outcome = (|| {
            let roles = parse_role_list(&request.roles)?;
            if roles.is_empty() {
                return Err(ServiceError::Invalid(
                    "a user needs at least one role".into(),
                ));
            }
            let payload = Payload {
                roles: roles.iter().map(|r| r.to_string()).collect(),
                ..Payload::default()
            };
            self.request_change(
                caller,
                ChangeKind::Roles,
                username,
                payload,
                &request.totp,
                &request.comment,
            )
        })();
        self.guarded(caller, "account.request", username, outcome)
    }

    /// `POST /users/{name}/reset` and `/enable` (admin, step-up, never oneself).
    pub fn request_reset_or_enable(
        &self,
        caller: &Caller,
        username: &str,
        kind: ChangeKind,
        body: &StepUpRequest,
    ) -> Result<AccountChangeView, ServiceError> {
        let outcome = self.request_change(
            caller,
            kind,
            username,
            Payload::default(),
            &body.totp,
            &body.comment,
        );
        self.guarded(caller, "account.request", username, outcome)
    }

    fn request_change(
        &self,
        caller: &Caller,
        kind: ChangeKind,
        target: &str,
        mut payload: Payload,
        totp: &str,
        comment: &str,
    ) -> Result<AccountChangeView, ServiceError> {
        caller.require(&[Role::Admin])?;
        if target == caller.username {
            return Err(ServiceError::Forbidden(
                "nobody asks for changes to their own account: another admin asks, and someone else approves".into(),
            ));
        }
        let now = self.now().as_secs() as i64;
        let half = if kind.enrols() {
            Some(enrolment::new_half()?)
        } else {
            None
        };
        let policy = &self.account_policy;
        let mut conn = self.conn()?;
        let row = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let me = conn.user(&caller.user_id)?;
            self.step_up(conn, &me, totp)?;
            let existing = self.user_by_name(conn, target)?;
            match (kind, &existing) {
                (ChangeKind::Create, Some(_)) => {
                    return Err(ServiceError::Conflict(format!(
                        "user {target} already exists"
                    )))
                }
                (ChangeKind::Create, None) => {}
                (_, None) => return Err(ServiceError::NotFound(format!("user {target}"))),
                (ChangeKind::Enable, Some(user)) if !user.disabled => {
                    return Err(ServiceError::Conflict(format!(
                        "user {target} is not disabled"
                    )))
                }
                (_, Some(user)) => {
                    payload.current_roles = parse_roles(&user.roles)
                        .iter()
                        .map(|r| r.to_string())
                        .collect();
                }
            }
            let open = conn.open_changes_for(target, now)?;
            if open > 0 {
                return Err(ServiceError::Conflict(format!(
                    "a change to {target} is already waiting for approval"
                )));
            }
            let row = AccountChangeRow {
                id: new_id("ac")?,
                kind: kind.as_str().into(),
                target: target.into(),
                payload: serde_json::to_string(&payload)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?,
                requester_id: caller.user_id.clone(),
                requester: caller.username.clone(),
                status: "pending".into(),
                approvals_required: policy.approvals as i32,
                requester_half_hash: half.as_deref().map(enrolment::half_hash),
                comment: comment.into(),
                created_at: now,
                expires_at: now + policy.max_wait_secs as i64,
                updated_at: now,
            };
            conn.insert_account_change(&row)?;
            audit_log::append(
                conn,
                now as u64,
                &caller.username,
                "account.request",
                &row.id,
                json!({"kind": row.kind, "target": target, "change": payload, "comment": comment}),
            )?;
            Ok(row)
        })?;
        let mut view = self.change_view(&mut conn, &row)?;
        view.enrolment_code_part = half;
        Ok(view)
    }

    /// `GET /account-changes` (admin, security officer, auditor).
    pub fn list_account_changes(
        &self,
        caller: &Caller,
        query: &AccountChangeQuery,
    ) -> Result<Vec<AccountChangeView>, ServiceError> {
        caller.require(&[Role::Admin, Role::SecurityOfficer, Role::Auditor])?;
        let mut conn = self.conn()?;
        let rows = conn.newest_account_changes(1000)?;
        let mut views = Vec::new();
        for row in &rows {
            let view = self.change_view(&mut conn, row)?;
            if query.status.as_deref().is_none_or(|s| s == view.status) {
                views.push(view);
            }
        }
        Ok(views)
    }

    /// `GET /account-changes/{id}` (admin, security officer, auditor).
    pub fn get_account_change(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<AccountChangeView, ServiceError> {
        caller.require(&[Role::Admin, Role::SecurityOfficer, Role::Auditor])?;
        let mut conn = self.conn()?;
        let row = Self::change_row(&mut conn, id)?;
        self.change_view(&mut conn, &row)
    }

    /// `POST /account-changes/{id}/approve|reject` (the policy's approver roles, step-up).
    /// The approval that completes the change applies it in the same transaction; for a create
    /// or reset its answer carries the approver's half of the enrolment code.
    pub fn decide_account_change(
        &self,
        caller: &Caller,
        id: &str,
        verdict: Verdict,
        body: &StepUpRequest,
    ) -> Result<AccountChangeView, ServiceError> {
        let action = match verdict {
            Verdict::Approve => "account.approve",
            Verdict::Reject => "account.reject",
        };
        let outcome = self.decide_change_inner(caller, id, verdict, body);
        // Applied role changes, resets and enables end or change sessions.
        self.sessions.invalidate();
        self.guarded(caller, action, id, outcome)
    }

    fn decide_change_inner(
        &self,
        caller: &Caller,
        id: &str,
        verdict: Verdict,
        body: &StepUpRequest,
    ) -> Result<AccountChangeView, ServiceError> {
        let policy = &self.account_policy;
        if !caller.has_any(&policy.approver_roles) {
            return Err(ServiceError::Approval(ApprovalError::RoleNotAllowed(
                roles_text(&policy.approver_roles),
            )));
        }
        let now = self.now().as_secs() as i64;
        let mut conn = self.conn()?;
        let (row, half) =
            crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
                // Decisions on one change take turns (the no-op UPDATE locks the row on
                // PostgreSQL), so two last approvals cannot both apply it.
                conn.lock_account_change(id)?;
                let mut row = Self::change_row(conn, id)?;
                if row.status != "pending" {
                    return Err(ApprovalError::NotPending(row.status.clone()).into());
                }
                if row.expires_at <= now {
                    return Err(ApprovalError::NotPending("expired".into()).into());
                }
                // Checks that need no code come first, so a refused decision never burns a code.
                if row.requester_id == caller.user_id {
                    return Err(ApprovalError::SelfApproval.into());
                }
                if row.target == caller.username {
                    return Err(ServiceError::Forbidden(
                        "nobody decides on a change to their own account".into(),
                    ));
                }
                if conn.has_decided_on_change(id, &caller.user_id)? {
                    return Err(ApprovalError::AlreadyDecided.into());
                }
                let me = conn.user(&caller.user_id)?;
                self.check_cooling_off(&me, now)?;
                self.step_up(conn, &me, &body.totp)?;
                let verdict_text = match verdict {
                    Verdict::Approve => "approve",
                    Verdict::Reject => "reject",
                };
                conn.insert_account_change_decision(&AccountChangeDecisionRow {
                    change_id: id.into(),
                    approver_id: caller.user_id.clone(),
                    approver: caller.username.clone(),
                    verdict: verdict_text.into(),
                    comment: body.comment.clone(),
                    decided_at: now,
                })?;
                audit_log::append(
                    conn,
                    now as u64,
                    &caller.username,
                    &format!("account.{verdict_text}"),
                    id,
                    json!({"kind": row.kind, "target": row.target, "comment": body.comment}),
                )?;
                let approvals = conn.change_approvals(id)?;
                let status = match verdict {
                    Verdict::Reject => "rejected",
                    Verdict::Approve if approvals >= row.approvals_required as i64 => "applied",
                    Verdict::Approve => "pending",
                };
                let half = if status == "applied" {
                    self.apply(conn, &row, caller, now)?
                } else {
                    None
                };
                conn.set_account_change_status(id, status, now)?;
                row.status = status.into();
                Ok((row, half))
            })?;
        let mut view = self.change_view(&mut conn, &row)?;
        view.enrolment_code_part = half;
        Ok(view)
    }

    /// Refuses approvals from an account created or given new credentials within
    /// `approval_cooling_off_secs` (certificate requests and account changes alike).
    pub(crate) fn check_cooling_off(&self, user: &UserRow, now: i64) -> Result<(), ServiceError> {
        let cooling_off = self.config.approval_cooling_off_secs as i64;
        if user.credentials_set_at + cooling_off > now {
            return Err(ServiceError::Forbidden(format!(
                "this account was created or its credentials reset less than {cooling_off} s ago \
                 (approval_cooling_off_secs); it can decide from {}",
                rfc3339(user.credentials_set_at + cooling_off)
            )));
        }
        Ok(())
    }

    /// Applies an approved change inside the deciding transaction; the approver's half of the
    /// enrolment code for a create or reset.
    fn apply(
        &self,
        conn: &mut DbConnection,
        row: &AccountChangeRow,
        approver: &Caller,
        now: i64,
    ) -> Result<Option<String>, ServiceError> {
        let kind = ChangeKind::parse(&row.kind)
            .ok_or_else(|| ServiceError::Internal(format!("unknown change kind {}", row.kind)))?;
        let payload: Payload = serde_json::from_str(&row.payload)
            .map_err(|e| ServiceError::Internal(format!("change payload: {e}")))?;
        let half = if kind.enrols() {
            Some(enrolment::new_half()?)
        } else {
            None
        };
        let stored = match (&half, &row.requester_half_hash) {
            (Some(half), Some(first)) => Some(enrolment::stored_hash(first, half)),
            _ => None,
        };
        let enrolment_expires = now + self.account_policy.enrolment_validity_secs as i64;
        let user = self.user_by_name(conn, &row.target)?;
        match (kind, user) {
            (ChangeKind::Create, Some(_)) => {
                return Err(ServiceError::Conflict(format!(
                    "user {} was created meanwhile",
                    row.target
                )))
            }
            (ChangeKind::Create, None) => {
                let roles = parse_role_list(&payload.roles)?;
                let user = enrolment::enrolling_user_row(
                    &self.data_key,
                    &*self.random,
                    &row.target,
                    &roles,
                    (payload.organization.clone(), payload.email_domain.clone()),
                    now,
                )?;
                conn.insert_user(&user)?;
                if payload.directory {
                    conn.insert_directory_account(&DirectoryAccountRow {
                        user_id: user.id.clone(),
                        dn: None,
                        roles: None,
                        checked_at: 0,
                    })?;
                }
                enrolment::start_enrolment(
                    conn,
                    &user.id,
                    stored.as_deref().unwrap_or_default(),
                    enrolment_expires,
                )?;
            }
            (_, None) => return Err(ServiceError::NotFound(format!("user {}", row.target))),
            (ChangeKind::Roles, Some(user)) => {
                let roles = parse_role_list(&payload.roles)?;
                conn.set_roles(&user.id, &roles_text(&roles))?;
                conn.delete_sessions_of(&user.id)?;
            }
            (ChangeKind::Reset, Some(user)) => {
                enrolment::start_enrolment(
                    conn,
                    &user.id,
                    stored.as_deref().unwrap_or_default(),
                    enrolment_expires,
                )?;
            }
            (ChangeKind::Enable, Some(user)) => {
                conn.set_disabled(&user.id, false)?;
            }
        }
        audit_log::append(
            conn,
            now as u64,
            &approver.username,
            &format!("user.{}", kind.as_str()),
            &row.target,
            json!({"change": row.id, "requested_by": row.requester, "set": payload}),
        )?;
        Ok(half)
    }

    fn change_row(conn: &mut DbConnection, id: &str) -> Result<AccountChangeRow, ServiceError> {
        conn.account_change(id)?
            .ok_or_else(|| ServiceError::NotFound(format!("account change {id}")))
    }

    fn change_view(
        &self,
        conn: &mut DbConnection,
        row: &AccountChangeRow,
    ) -> Result<AccountChangeView, ServiceError> {
        let payload: Payload = serde_json::from_str(&row.payload).unwrap_or_default();
        let decisions = conn.account_change_decisions(&row.id)?;
        let status = if row.status == "pending" && row.expires_at <= self.now().as_secs() as i64 {
            "expired".to_string()
        } else {
            row.status.clone()
        };
        Ok(AccountChangeView {
            id: row.id.clone(),
            kind: row.kind.clone(),
            target: row.target.clone(),
            roles: payload.roles,
            current_roles: payload.current_roles,
            organization: payload.organization,
            email_domain: payload.email_domain,
            directory: payload.directory,
            requester: row.requester.clone(),
            status,
            approvals_required: row.approvals_required.max(0) as u32,
            decisions: decisions
                .into_iter()
                .map(|d| AccountChangeDecisionView {
                    approver: d.approver,
                    verdict: d.verdict,
                    comment: d.comment,
                    decided_at: rfc3339(d.decided_at),
                })
                .collect(),
            comment: row.comment.clone(),
            created_at: rfc3339(row.created_at),
            expires_at: rfc3339(row.expires_at),
            enrolment_code_part: None,
        })
    }
}
