//! Break-glass issuance (MHLW guideline 6.0: emergency access prepared, and not misused in
//! normal times): a security officer issues alone, with a fresh TOTP code and a stated
//! emergency, a short-lived certificate under a profile whose `[break_glass]` allows it. Every
//! officer is told at once; `reviews` other officers must confirm it before `review_within`
//! ends. A `misuse` verdict revokes it at once; one left unreviewed raises an alert and, where
//! the profile says so, is revoked by upkeep. Every step is audited.

use std::sync::Arc;

use ca_core::crl::RevocationReason;
use ca_core::csr::VerifiedCsr;
use ca_core::role::Role;
use ca_core::time::UnixTime;
use serde_json::json;

use crate::accounts::Caller;
use crate::api::{
    BreakGlassRequest, BreakGlassReviewRequest, BreakGlassReviewView, BreakGlassView,
};
use crate::error::ServiceError;
use crate::notify::Notice;
use crate::store::audit_log;
use crate::store::break_glass_rows::BreakGlassRows;
use crate::store::models::{BreakGlassReviewRow, BreakGlassRow, RequestRow};
use crate::store::request_rows::RequestRows;
use crate::store::DbConnection;

use super::submit::{Requester, Submission, Submitted};
use super::Authority;

impl Authority {
    /// `POST /api/v1/break-glass`: checks the officer, the profile, the emergency, the CSR and
    /// the TOTP code, then issues without approvals; the break-glass record, its audit entry
    /// and the officers' notices are stored with the request, in its transaction.
    pub fn break_glass_issue(
        &self,
        caller: &Caller,
        body: BreakGlassRequest,
    ) -> Result<Submitted, ServiceError> {
        caller.require(&[Role::SecurityOfficer])?;
        self.require_unlocked()?;
        let profile = self
            .profiles
            .get(&body.profile)
            .ok_or_else(|| ServiceError::NotFound(format!("profile {}", body.profile)))?;
        let (Some(rule), Some(variant)) = (profile.break_glass(), profile.for_break_glass()) else {
            return Err(ServiceError::Forbidden(format!(
                "profile {} does not allow break-glass issuance ([break_glass] allowed = true) \
                 / このプロファイルでは緊急発行できません",
                profile.id()
            )));
        };
        let emergency = body.emergency.trim().to_string();
        if emergency.chars().count() < 10 || emergency.len() > 2000 {
            return Err(ServiceError::Invalid(
                "emergency must say what happened in 10-2000 characters / 緊急の理由を 10〜2000 文字で記入してください".into(),
            ));
        }
        let csr = VerifiedCsr::parse_remembering(
            body.csr.as_bytes(),
            variant.min_rsa_bits(),
            &self.csr_signatures,
        )?;
        // The second factor, before anything is stored.
        {
            let mut conn = self.conn()?;
            let now = self.now().as_secs() as i64;
            crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
                let user = conn.user_row(&caller.user_id)?;
                // Like an approval: not from an account made or reset within the cooling-off.
                self.accounts.check_cooling_off(&user, now)?;
                self.accounts.step_up(conn, &user, &body.totp)
            })?;
        }
        let subject = csr.subject().to_string();
        let record = {
            let (officer_id, officer) = (caller.user_id.clone(), caller.username.clone());
            let (profile_id, emergency) = (profile.id().to_string(), emergency.clone());
            let rule = rule.clone();
            let notifier = self.notifier.clone();
            Arc::new(
                move |conn: &mut DbConnection,
                      request_id: &str,
                      now: i64|
                      -> Result<(), ServiceError> {
                    if conn.break_glass(request_id)?.is_some() {
                        return Ok(()); // the group commit's retry
                    }
                    let due = now + rule.review_secs as i64;
                    conn.insert_break_glass(&BreakGlassRow {
                        request_id: request_id.to_string(),
                        profile_id: profile_id.clone(),
                        officer_id: officer_id.clone(),
                        emergency: emergency.clone(),
                        issued_at: now,
                        review_due: due,
                        reviews_needed: rule.reviews as i32,
                        revoke_unreviewed: rule.revoke_unreviewed,
                        status: "awaiting-review".into(),
                        closed_at: None,
                    })?;
                    audit_log::append(
                        conn,
                        now as u64,
                        &officer,
                        "certificate.break_glass",
                        request_id,
                        json!({"profile": profile_id, "emergency": emergency, "review_due": due}),
                    )?;
                    let notice = Notice::break_glass(
                        "break_glass.issued",
                        request_id,
                        &profile_id,
                        &subject,
                        &officer,
                        &emergency,
                        UnixTime(due.max(0) as u64),
                    );
                    let emails =
                        notifier.emails_of_roles(conn, &[Role::SecurityOfficer], &officer_id)?;
                    notifier.queue(conn, &notice, &emails)?;
                    Ok(())
                },
            )
        };
        let requester = Requester {
            user_id: caller.user_id.clone(),
            username: caller.username.clone(),
            actor: caller.username.clone(),
        };
        self.submit_checked(
            &requester,
            &variant,
            &csr,
            Submission {
                justification: format!("BREAK-GLASS: {emergency}"),
                work_order: None,
                window: None,
                on_store: Some(record),
                approved: true,
                duplicates: profile.duplicates(),
            },
        )
    }

    /// `GET /api/v1/break-glass`: the newest issuances (officers, admins, auditors).
    pub fn break_glass_list(
        &self,
        caller: &Caller,
        status: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<BreakGlassView>, ServiceError> {
        caller.require(&[Role::SecurityOfficer, Role::Admin, Role::Auditor])?;
        let limit = super::page_limit(limit, 100)?;
        let mut conn = self.conn()?;
        let rows = conn.break_glass_list(status, limit)?;
        rows.into_iter()
            .map(|row| self.break_glass_view(&mut conn, row))
            .collect()
    }

    /// `GET /api/v1/break-glass/{id}`.
    pub fn break_glass_get(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<BreakGlassView, ServiceError> {
        caller.require(&[Role::SecurityOfficer, Role::Admin, Role::Auditor])?;
        let mut conn = self.conn()?;
        let row = conn
            .break_glass(id)?
            .ok_or_else(|| ServiceError::NotFound(format!("break-glass issuance {id}")))?;
        self.break_glass_view(&mut conn, row)
    }

    fn break_glass_view(
        &self,
        conn: &mut DbConnection,
        row: BreakGlassRow,
    ) -> Result<BreakGlassView, ServiceError> {
        let time = |t: i64| UnixTime(t.max(0) as u64).to_rfc3339();
        let request = conn.request(&row.request_id)?;
        let reviews = conn
            .break_glass_reviews(&row.request_id)?
            .into_iter()
            .map(|r| {
                Ok(BreakGlassReviewView {
                    reviewer: conn.user_row(&r.reviewer_id)?.username,
                    verdict: r.verdict,
                    comment: r.comment,
                    at: time(r.reviewed_at),
                })
            })
            .collect::<Result<Vec<_>, ServiceError>>()?;
        Ok(BreakGlassView {
            officer: conn.user_row(&row.officer_id)?.username,
            id: row.request_id,
            profile: row.profile_id,
            emergency: row.emergency,
            issued_at: time(row.issued_at),
            review_due: time(row.review_due),
            status: row.status,
            reviews_needed: row.reviews_needed.max(0) as u32,
            reviews,
            ca: request.as_ref().and_then(|r| r.ca_id.clone()),
            serial: request.and_then(|r| r.certificate_serial),
        })
    }

    /// `POST /api/v1/break-glass/{id}/review`: another officer's verdict with a fresh TOTP
    /// code. The issuing officer cannot review their own; each officer reviews once. `misuse`
    /// revokes the certificate (privilegeWithdrawn) and tells every officer; enough
    /// confirmations close it.
    pub fn break_glass_review(
        &self,
        caller: &Caller,
        id: &str,
        body: &BreakGlassReviewRequest,
    ) -> Result<BreakGlassView, ServiceError> {
        let outcome = self.break_glass_review_inner(caller, id, body);
        self.accounts
            .guarded(caller, "break_glass.review", id, outcome)
    }

    fn break_glass_review_inner(
        &self,
        caller: &Caller,
        id: &str,
        body: &BreakGlassReviewRequest,
    ) -> Result<BreakGlassView, ServiceError> {
        caller.require(&[Role::SecurityOfficer])?;
        let misuse = match body.verdict.as_str() {
            "confirm" => false,
            "misuse" => true,
            _ => return Err(ServiceError::Invalid("verdict is confirm or misuse".into())),
        };
        let comment = body.comment.trim();
        if comment.len() > 2000 || (misuse && comment.is_empty()) {
            return Err(ServiceError::Invalid(
                "comment: at most 2000 characters, and required with misuse".into(),
            ));
        }
        let now = self.now().as_secs() as i64;
        let mut conn = self.conn()?;
        let row = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let row = conn
                .break_glass(id)?
                .ok_or_else(|| ServiceError::NotFound(format!("break-glass issuance {id}")))?;
            if row.officer_id == caller.user_id {
                return Err(ServiceError::Approval(
                    ca_core::error::ApprovalError::SelfApproval,
                ));
            }
            if !["awaiting-review", "overdue"].contains(&row.status.as_str()) {
                return Err(ServiceError::Conflict(format!(
                    "this issuance is already closed ({})",
                    row.status
                )));
            }
            if conn
                .break_glass_reviews(id)?
                .iter()
                .any(|r| r.reviewer_id == caller.user_id)
            {
                return Err(ServiceError::Conflict(
                    "you have already reviewed this issuance".into(),
                ));
            }
            let user = conn.user_row(&caller.user_id)?;
            self.accounts.check_cooling_off(&user, now)?;
            self.accounts.step_up(conn, &user, &body.totp)?;
            let fresh = conn.insert_break_glass_review(&BreakGlassReviewRow {
                request_id: id.to_string(),
                reviewer_id: caller.user_id.clone(),
                verdict: body.verdict.clone(),
                comment: comment.to_string(),
                reviewed_at: now,
            })?;
            if !fresh {
                return Err(ServiceError::Conflict(
                    "you have already reviewed this issuance".into(),
                ));
            }
            let confirmations = conn
                .break_glass_reviews(id)?
                .iter()
                .filter(|r| r.verdict == "confirm")
                .count();
            let status = if misuse {
                "misuse"
            } else if confirmations >= row.reviews_needed.max(0) as usize {
                "confirmed"
            } else {
                row.status.as_str()
            };
            if status != row.status {
                conn.set_break_glass_status(id, status, Some(now).filter(|_| status != "overdue"))?;
            }
            audit_log::append(
                conn,
                now as u64,
                &caller.username,
                "break_glass.review",
                id,
                json!({"verdict": body.verdict, "comment": comment, "status": status}),
            )?;
            Ok(row.clone())
        })?;
        drop(conn);
        if misuse {
            self.close_break_glass(&row, "break_glass.misuse", &caller.username)?;
        }
        self.break_glass_get(caller, id)
    }

    /// Revokes `row`'s certificate (privilegeWithdrawn) and tells every officer `event`.
    fn close_break_glass(
        &self,
        row: &BreakGlassRow,
        event: &'static str,
        actor: &str,
    ) -> Result<(), ServiceError> {
        let request = self.conn()?.request(&row.request_id)?.ok_or_else(|| {
            ServiceError::Internal(format!("request {} vanished", row.request_id))
        })?;
        if let (Some(ca), Some(serial)) = (&request.ca_id, &request.certificate_serial) {
            if self.require_unlocked().is_ok() {
                self.revoke_for_protocol(
                    ca,
                    serial,
                    RevocationReason::PrivilegeWithdrawn,
                    actor,
                    json!({"break_glass": row.request_id, "event": event}),
                )?;
            }
        }
        self.notify_break_glass(row, event);
        Ok(())
    }

    fn notify_break_glass(&self, row: &BreakGlassRow, event: &'static str) {
        let queued = (|| -> Result<usize, ServiceError> {
            let mut conn = self.conn()?;
            let officer = conn.user_row(&row.officer_id)?.username;
            // The certificate's subject, so that the alert says whose certificate it was.
            let subject = match conn.request(&row.request_id)? {
                Some(RequestRow {
                    ca_id: Some(ca),
                    certificate_serial: Some(serial),
                    ..
                }) => conn
                    .certificate(&ca, &serial)?
                    .map(|c| c.subject)
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let notice = Notice::break_glass(
                event,
                &row.request_id,
                &row.profile_id,
                &subject,
                &officer,
                &row.emergency,
                UnixTime(row.review_due.max(0) as u64),
            );
            let emails = self
                .notifier
                .emails_of_roles(&mut conn, &[Role::SecurityOfficer], "")?;
            self.notifier.queue(&mut conn, &notice, &emails)
        })();
        if let Err(e) = queued {
            tracing::warn!(request = %row.request_id, error = %e, "officers not notified of a break-glass event");
        }
    }

    /// Upkeep: each issuance past its review deadline without enough confirmations is marked
    /// `overdue` and every officer alerted; where its profile says `revoke_unreviewed`, its
    /// certificate is revoked (`revoked-unreviewed`). Also refreshes the open-issuance gauge.
    pub(crate) fn break_glass_upkeep(&self) -> Result<(), ServiceError> {
        let now = self.now().as_secs() as i64;
        let overdue = self.conn()?.break_glass_overdue(now)?;
        for row in overdue {
            let status = if row.revoke_unreviewed && self.require_unlocked().is_ok() {
                "revoked-unreviewed"
            } else {
                "overdue"
            };
            {
                let mut conn = self.conn()?;
                crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
                    conn.set_break_glass_status(
                        &row.request_id,
                        status,
                        Some(now).filter(|_| status != "overdue"),
                    )?;
                    audit_log::append(
                        conn,
                        now as u64,
                        "system",
                        "break_glass.overdue",
                        &row.request_id,
                        json!({"status": status}),
                    )?;
                    Ok(())
                })?;
            }
            if status == "revoked-unreviewed" {
                self.close_break_glass(&row, "break_glass.overdue", "system")?;
            } else {
                self.notify_break_glass(&row, "break_glass.overdue");
            }
        }
        let open = self.conn()?.break_glass_open()?;
        self.metrics
            .break_glass_open
            .store(open.max(0) as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}
