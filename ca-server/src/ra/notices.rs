//! What the RA tells people through the notify service: a request waiting for its approvers,
//! and a certificate revoked or held (to its owner). Queuing never fails the action that
//! caused it: an error is logged and the action stands.

use ca_core::profile::Profile;
use ca_core::time::UnixTime;

use crate::accounts::Caller;
use crate::api::{ContactRequest, ContactView, NotificationView, RequestView};
use crate::error::ServiceError;
use crate::notify::{CertificateRef, Notice};
use crate::store::audit_log;
use crate::store::models::CertificateRow;
use crate::store::notify_rows::NotifyRows;
use crate::store::request_rows::RequestRows;

use super::Authority;

impl Authority {
    /// One round of the notify service's upkeep (delivery, expiry scan, gauges); nothing on an
    /// OCSP-only instance.
    pub fn notify_tick(&self) {
        if !self.ocsp_only {
            self.notifier.tick(&self.profiles);
        }
    }

    /// Tells the profile's approvers (their contact addresses, never the requester's own), the
    /// security mailbox and the webhooks that `view` waits for approval.
    pub(crate) fn notify_waiting(&self, view: &RequestView, profile: &Profile, requester_id: &str) {
        if !self.notifier.enabled() {
            return;
        }
        let subject = view.csr.as_ref().map(|c| c.subject.as_str()).unwrap_or("");
        let notice = Notice::waiting(&view.id, profile.id(), subject, &view.requester);
        let queued = (|| -> Result<usize, ServiceError> {
            let mut conn = self.conn()?;
            let emails = self.notifier.emails_of_roles(
                &mut conn,
                &profile.approval().approver_roles,
                requester_id,
            )?;
            self.notifier.queue(&mut conn, &notice, &emails)
        })();
        if let Err(e) = queued {
            tracing::warn!(request = %view.id, error = %e, "the approvers were not notified");
        }
    }

    /// Tells `row`'s owner (its e-mail SANs, its requester), the security mailbox and the
    /// webhooks that it was revoked or put on hold at `at`.
    pub(crate) fn notify_status(&self, row: &CertificateRow, at: UnixTime) {
        if !self.notifier.enabled() {
            return;
        }
        let held = row.status == "hold";
        let reason = row.revocation_reason.as_deref().unwrap_or("");
        let cert = CertificateRef {
            ca_id: &row.ca_id,
            serial: &row.serial,
            profile_id: &row.profile_id,
            subject: &row.subject,
            not_after: UnixTime(row.not_after.max(0) as u64),
        };
        let notice = Notice::status_changed(&cert, held, reason, at);
        let queued = (|| -> Result<usize, ServiceError> {
            let mut conn = self.conn()?;
            let emails = self.notifier.owner_emails(
                &mut conn,
                &row.ca_id,
                &row.serial,
                row.request_id.as_deref(),
            )?;
            self.notifier.queue(&mut conn, &notice, &emails)
        })();
        if let Err(e) = queued {
            tracing::warn!(cert.serial = %row.serial, error = %e, "the owner was not notified");
        }
    }
}

impl Authority {
    /// `GET /api/v1/notifications`: the newest notices (admins, security officers, auditors).
    pub fn notifications(
        &self,
        caller: &Caller,
        status: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<NotificationView>, ServiceError> {
        use ca_core::role::Role;
        caller.require(&[Role::Admin, Role::SecurityOfficer, Role::Auditor])?;
        let limit = super::page_limit(limit, 100)?;
        let time = |t: i64| UnixTime(t.max(0) as u64).to_rfc3339();
        Ok(self
            .notifier
            .list(status, limit)?
            .into_iter()
            .map(|r| NotificationView {
                next_attempt_at: (r.status == "pending").then(|| time(r.next_attempt_at)),
                id: r.id,
                event: r.event,
                channel: r.channel,
                recipient: r.recipient,
                subject: r.subject,
                status: r.status,
                attempts: r.attempts.max(0) as u32,
                last_error: r.last_error,
                created_at: time(r.created_at),
                sent_at: r.sent_at.map(time),
            })
            .collect())
    }

    /// `GET /api/v1/me/contact`.
    pub fn contact(&self, caller: &Caller) -> Result<ContactView, ServiceError> {
        Ok(ContactView {
            email: self.notifier.contact(&caller.user_id)?,
        })
    }

    /// `PUT /api/v1/me/contact`: sets where the caller's notices go, with a fresh TOTP code
    /// (a stolen session alone cannot divert them); audited.
    pub fn set_contact(
        &self,
        caller: &Caller,
        body: &ContactRequest,
    ) -> Result<ContactView, ServiceError> {
        let email = body
            .email
            .as_deref()
            .map(|e| e.trim().to_ascii_lowercase())
            .filter(|e| !e.is_empty());
        if let Some(e) = &email {
            let ok = e.len() <= 254
                && !e
                    .chars()
                    .any(|c| c.is_whitespace() || ca_core::text::is_unsafe(c))
                && e.split_once('@').is_some_and(|(l, d)| {
                    !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
                });
            if !ok {
                return Err(ServiceError::Invalid(format!(
                    "{} is not an e-mail address / メールアドレスではありません",
                    ca_core::text::escape_untrusted(e, 80)
                )));
            }
        }
        let now = self.now().as_secs();
        let mut conn = self.conn()?;
        crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let user = conn.user_row(&caller.user_id)?;
            self.accounts.step_up(conn, &user, &body.totp)?;
            conn.set_contact(&caller.user_id, email.as_deref())?;
            audit_log::append(
                conn,
                now,
                &caller.username,
                "user.contact",
                &caller.username,
                serde_json::json!({"email": email}),
            )?;
            Ok(())
        })?;
        Ok(ContactView { email })
    }
}
