//! Leavers and movers: every certificate carrying a person's staff id or e-mail address is
//! revoked (affiliationChanged, or cessationOfOperation) and their account disabled, for one
//! person or an HR export's worth in one call with one TOTP code; a dry run reports the same
//! without changing anything. noRevAvail certificates are reported, not revoked.

use ca_core::crl::RevocationReason;
use ca_core::role::Role;
use serde_json::json;

use crate::accounts::Caller;
use crate::api::{LeaveAction, LeaveReport, LeaveRequest, Leaver, LeaverReport};
use crate::error::ServiceError;
use crate::store::audit_log;
use crate::store::models::CertificateRow;
use crate::store::notify_rows::NotifyRows;
use crate::store::request_rows::{CertificateQuery, RequestRows};
use crate::store::status::CertificateStatus;

use super::Authority;

/// Leavers per call (an HR export is split by `ca-cli staff leave --csv`).
const MAX_LEAVERS: usize = 1000;

impl Authority {
    /// `POST /api/v1/staff/leave`: security officers (and admins too, to disable accounts).
    pub fn staff_leave(
        &self,
        caller: &Caller,
        body: &LeaveRequest,
    ) -> Result<LeaveReport, ServiceError> {
        caller.require(&[Role::SecurityOfficer])?;
        if body.leavers.is_empty() || body.leavers.len() > MAX_LEAVERS {
            return Err(ServiceError::Invalid(format!(
                "give 1-{MAX_LEAVERS} leavers per call"
            )));
        }
        if body.leavers.iter().any(|l| l.username.is_some()) && !caller.roles.contains(&Role::Admin)
        {
            return Err(ServiceError::Forbidden(
                "disabling accounts needs the admin role as well; leave out username, or ask an admin who is also a security officer".into(),
            ));
        }
        let reason = match body.reason.as_deref().unwrap_or("affiliation-changed") {
            "affiliation-changed" => RevocationReason::AffiliationChanged,
            "cessation-of-operation" => RevocationReason::CessationOfOperation,
            other => {
                return Err(ServiceError::Invalid(format!(
                    "reason is affiliation-changed or cessation-of-operation (got {})",
                    ca_core::text::escape_untrusted(other, 40)
                )))
            }
        };
        for l in &body.leavers {
            let bad = |t: &Option<String>| {
                t.as_deref()
                    .is_some_and(|t| t.trim().is_empty() || t.len() > 254)
            };
            if (l.staff_id.is_none() && l.email.is_none()) || bad(&l.staff_id) || bad(&l.email) {
                return Err(ServiceError::Invalid(
                    "each leaver needs a staff_id or an email (non-empty, at most 254 characters)"
                        .into(),
                ));
            }
        }
        if !body.dry_run {
            self.require_unlocked()?;
            let mut conn = self.conn()?;
            crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
                let user = conn.user_row(&caller.user_id)?;
                self.accounts.step_up(conn, &user, &body.totp)
            })?;
        }
        let mut report = LeaveReport {
            dry_run: body.dry_run,
            leavers: Vec::with_capacity(body.leavers.len()),
            revoked: 0,
            disabled: 0,
        };
        for leaver in &body.leavers {
            let one = self.one_leaver(caller, leaver, reason, body.dry_run);
            let entry = match one {
                Ok(entry) => entry,
                Err(e) => LeaverReport {
                    staff_id: leaver.staff_id.clone(),
                    email: leaver.email.clone(),
                    username: leaver.username.clone(),
                    certificates: Vec::new(),
                    account: None,
                    error: Some(e.to_string()),
                },
            };
            report.revoked += entry
                .certificates
                .iter()
                .filter(|c| c.action == "revoked" || c.action == "would-revoke")
                .count() as u32;
            report.disabled += u32::from(matches!(
                entry.account.as_deref(),
                Some("disabled" | "would-disable")
            ));
            report.leavers.push(entry);
        }
        if !body.dry_run {
            let mut conn = self.conn()?;
            audit_log::append(
                &mut conn,
                self.now().as_secs(),
                &caller.username,
                "staff.leave",
                &format!("{} leavers", body.leavers.len()),
                json!({"reason": reason.as_str(), "revoked": report.revoked, "disabled": report.disabled}),
            )?;
        }
        Ok(report)
    }

    fn leaver_certificates(&self, leaver: &Leaver) -> Result<Vec<CertificateRow>, ServiceError> {
        let mut found: Vec<CertificateRow> = Vec::new();
        let email = leaver
            .email
            .as_deref()
            .map(|e| format!("email:{}", e.trim()));
        let queries = [
            leaver.staff_id.as_deref().map(|id| CertificateQuery {
                staff_id: Some(id.trim()),
                ..Default::default()
            }),
            email.as_deref().map(|san| CertificateQuery {
                san: Some(san),
                ..Default::default()
            }),
        ];
        let mut conn = self.conn()?;
        for query in queries.into_iter().flatten() {
            let mut query = query;
            loop {
                let (rows, _) = conn.certificate_page(&query, 1000)?;
                let last = rows
                    .last()
                    .map(|r| (r.created_at, r.ca_id.clone(), r.serial.clone()));
                for row in rows {
                    // The SAN filter is a substring: keep exact addresses only.
                    let exact = match &email {
                        Some(e) if query.san.is_some() => conn
                            .certificate_names(&row.ca_id, &row.serial)?
                            .unwrap_or_default()
                            .split_whitespace()
                            .any(|n| n.eq_ignore_ascii_case(e)),
                        _ => true,
                    };
                    if exact
                        && !found
                            .iter()
                            .any(|f| f.ca_id == row.ca_id && f.serial == row.serial)
                    {
                        found.push(row);
                    }
                }
                match last {
                    Some(after) => query.after = Some(after),
                    None => break,
                }
            }
        }
        Ok(found)
    }

    fn one_leaver(
        &self,
        caller: &Caller,
        leaver: &Leaver,
        reason: RevocationReason,
        dry_run: bool,
    ) -> Result<LeaverReport, ServiceError> {
        let mut certificates = Vec::new();
        for row in self.leaver_certificates(leaver)? {
            let status = CertificateStatus::of_row(&row.status)?;
            let action = if status == CertificateStatus::Reserved {
                continue;
            } else if status == CertificateStatus::Revoked {
                "already-revoked"
            } else if row
                .der
                .as_deref()
                .is_some_and(ca_core::extensions::declares_no_rev_avail)
            {
                "skipped-no-rev-avail"
            } else if dry_run {
                "would-revoke"
            } else {
                self.revoke_for_protocol(
                    &row.ca_id,
                    &row.serial,
                    reason,
                    &caller.username,
                    json!({"leaver": {"staff_id": leaver.staff_id, "email": leaver.email}}),
                )?;
                "revoked"
            };
            certificates.push(LeaveAction {
                ca: row.ca_id.clone(),
                serial: row.serial.clone(),
                subject: row.subject.clone(),
                profile: row.profile_id.clone(),
                action: action.into(),
            });
        }
        let account = match leaver.username.as_deref() {
            None => None,
            Some(name) => {
                let existing = {
                    let mut conn = self.conn()?;
                    self.accounts.user_by_name(&mut conn, name)?
                };
                Some(
                    match existing {
                        None => "not-found",
                        Some(u) if u.disabled => "already-disabled",
                        Some(_) if dry_run => "would-disable",
                        Some(_) => {
                            self.accounts
                                .disable_checked(caller, name, None, "leaver")?;
                            "disabled"
                        }
                    }
                    .to_string(),
                )
            }
        };
        Ok(LeaverReport {
            staff_id: leaver.staff_id.clone(),
            email: leaver.email.clone(),
            username: leaver.username.clone(),
            certificates,
            account,
            error: None,
        })
    }
}
