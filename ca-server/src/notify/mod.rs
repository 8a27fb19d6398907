//! Notifications: notices of waiting approvals, expiries, revocations and holds, sent by e-mail
//! (SMTP) and JSON webhooks (HMAC-signed) through an outbox in the database.
//!
//! A notice is queued as one row per channel and recipient, keyed by its event: every instance
//! may queue the same event, and the unique key keeps one. Delivery claims due rows for a lease,
//! sends without holding a database connection, and records the outcome: sent, retried with
//! doubling backoff, or failed after `max_attempts` (visible in `GET /api/v1/notifications`
//! and `/metrics`). A crash between sending and recording sends that notice again once its
//! lease ends: at least once, never lost.

pub mod notice;
pub mod smtp;
pub mod webhook;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ca_core::clock::Clock;
use ca_core::profile::Profile;
use ca_core::role::Role;
use ca_core::time::UnixTime;

use crate::error::ServiceError;
use crate::metrics::{Metrics, NoticeGauges};
use crate::notify_config::NotifyConfig;
use crate::store::checkout::{checkout, Held};
use crate::store::models::NotificationRow;
use crate::store::notify_rows::{Delivery, NotifyRows};
use crate::store::{DbConnection, DbPool};

pub use notice::{CertificateRef, Notice};

/// Seconds a claimed notice is reserved for the instance sending it.
const LEASE_SECS: i64 = 120;
/// Notices sent per delivery round.
const BATCH: i64 = 50;
/// Seconds between refreshes of the outbox and expiry gauges.
const GAUGE_SECS: u64 = 15;
/// The longest backoff between attempts.
const MAX_BACKOFF_SECS: u64 = 3600;
/// The `within_days` windows of `mamori_certificates_expiring`.
const EXPIRING_WINDOWS: [u32; 3] = [1, 7, 30];

/// The notification service.
pub struct Notifier {
    config: NotifyConfig,
    pool: DbPool,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    mailer: Option<smtp::Mailer>,
    hooks: Vec<webhook::Hook>,
    /// Expiry notices this instance has queued (so a scan does not ask the database again),
    /// with their certificate's notAfter: a scan forgets those whose certificate has expired,
    /// which no scan finds again, so the set holds what is expiring, not all that ever did.
    queued: Mutex<HashMap<String, i64>>,
    scanned_at: AtomicU64,
    counted_at: AtomicU64,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("smtp", &self.mailer.is_some())
            .field("webhooks", &self.hooks.len())
            .finish()
    }
}

impl Notifier {
    /// The service for `config`: SMTP password and webhook secrets are read now, so a missing
    /// or unsafe file stops the start with its name.
    pub fn new(
        config: &NotifyConfig,
        pool: DbPool,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Result<Notifier, ServiceError> {
        let bad = |e: String| ServiceError::Internal(format!("[notify]: {e}"));
        let mailer = config
            .smtp
            .as_ref()
            .map(smtp::Mailer::new)
            .transpose()
            .map_err(bad)?;
        let hooks = config
            .webhooks
            .iter()
            .map(webhook::Hook::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        Ok(Notifier {
            config: config.clone(),
            pool,
            clock,
            metrics,
            mailer,
            hooks,
            queued: Mutex::new(HashMap::new()),
            scanned_at: AtomicU64::new(0),
            counted_at: AtomicU64::new(0),
        })
    }

    /// Whether any channel is configured (without one nothing is queued).
    pub fn enabled(&self) -> bool {
        self.mailer.is_some() || !self.hooks.is_empty()
    }

    fn conn(&self) -> Result<Held, ServiceError> {
        Ok(checkout(&self.pool)?)
    }

    fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// Queues `notice` to `emails` and the security mailbox (by e-mail, when SMTP is set) and
    /// to every webhook; returns how many rows were new.
    pub fn queue(
        &self,
        conn: &mut DbConnection,
        notice: &Notice,
        emails: &[String],
    ) -> Result<usize, ServiceError> {
        if !self.enabled() {
            return Ok(0);
        }
        let now = self.now();
        let mut targets: Vec<(String, String, String)> = Vec::new();
        if self.mailer.is_some() {
            let mut seen = HashSet::new();
            for email in emails.iter().chain(self.config.security_mailbox.iter()) {
                let email = email.trim().to_ascii_lowercase();
                if !email.is_empty() && seen.insert(email.clone()) {
                    targets.push(("email".into(), email, notice.text.clone()));
                }
            }
        }
        for hook in &self.hooks {
            targets.push((
                format!("webhook:{}", hook.name),
                hook.name.clone(),
                notice.webhook_body(now),
            ));
        }
        let mut added = 0;
        for (channel, recipient, body) in targets {
            let row = NotificationRow {
                id: crate::store::ids::new_id("ntf")?,
                event_key: notice.key.clone(),
                event: notice.event.to_string(),
                channel,
                recipient,
                subject: notice.subject.clone(),
                body,
                status: "pending".into(),
                attempts: 0,
                next_attempt_at: now.as_secs() as i64,
                claimed_until: 0,
                last_error: None,
                created_at: now.as_secs() as i64,
                sent_at: None,
            };
            if conn.insert_notice(&row)? {
                added += 1;
            }
        }
        Ok(added)
    }

    /// The addresses a certificate's notices go to: its e-mail SANs and its requester's
    /// contact address.
    pub fn owner_emails(
        &self,
        conn: &mut DbConnection,
        ca_id: &str,
        serial: &str,
        request_id: Option<&str>,
    ) -> Result<Vec<String>, ServiceError> {
        let mut emails: Vec<String> = conn
            .certificate_names(ca_id, serial)?
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|n| n.strip_prefix("email:"))
            .map(str::to_string)
            .collect();
        if let Some(request_id) = request_id {
            if let Some(requester) = conn.requester_of(request_id)? {
                emails.extend(conn.contact(&requester)?);
            }
        }
        Ok(emails)
    }

    /// The contact addresses of enabled accounts holding one of `roles`, except `except`.
    pub fn emails_of_roles(
        &self,
        conn: &mut DbConnection,
        roles: &[Role],
        except: &str,
    ) -> Result<Vec<String>, ServiceError> {
        Ok(conn
            .contacts()?
            .into_iter()
            .filter(|(id, held, _)| {
                id != except
                    && crate::accounts::parse_roles(held)
                        .iter()
                        .any(|r| roles.contains(r))
            })
            .map(|(_, _, email)| email)
            .collect())
    }

    /// One round of upkeep: deliver what is due; every `scan_secs` queue expiry notices; every
    /// 15 s refresh the gauges. Errors are logged, not returned: notices never stop the CA.
    pub fn tick(&self, profiles: &BTreeMap<String, Profile>) {
        let now = self.now().as_secs();
        if self.enabled() && now >= self.scanned_at.load(Ordering::Relaxed) + self.config.scan_secs
        {
            self.scanned_at.store(now, Ordering::Relaxed);
            if let Err(e) = self.scan_expiring(profiles) {
                tracing::warn!(error = %e, "expiry notices: scan failed");
            }
        }
        if self.enabled() {
            if let Err(e) = self.deliver_due() {
                tracing::warn!(error = %e, "notifications: delivery round failed");
            }
        }
        if now >= self.counted_at.load(Ordering::Relaxed) + GAUGE_SECS {
            self.counted_at.store(now, Ordering::Relaxed);
            if let Err(e) = self.refresh_gauges(profiles) {
                tracing::warn!(error = %e, "notifications: gauges not refreshed");
            }
        }
    }

    /// Queues an expiry notice for each valid certificate that has crossed one of its
    /// profile's `expiry_days` thresholds (the tightest one crossed; each once). Returns how
    /// many notices were new.
    pub fn scan_expiring(
        &self,
        profiles: &BTreeMap<String, Profile>,
    ) -> Result<usize, ServiceError> {
        let watched: Vec<&Profile> = profiles
            .values()
            .filter(|p| !p.expiry_days().is_empty())
            .collect();
        let Some(horizon) = watched.iter().filter_map(|p| p.expiry_days().first()).max() else {
            return Ok(0);
        };
        let ids: Vec<String> = watched.iter().map(|p| p.id().to_string()).collect();
        let now = self.now().as_secs() as i64;
        if let Ok(mut q) = self.queued.lock() {
            forget_expired(&mut q, now);
        }
        let rows = {
            let mut conn = self.conn()?;
            conn.expiring(&ids, now, now + i64::from(*horizon) * 86_400, 5000)?
        };
        let mut added = 0;
        for row in rows {
            let Some(profile) = profiles.get(&row.profile_id) else {
                continue;
            };
            let left = row.not_after - now;
            let Some(days) = profile
                .expiry_days()
                .iter()
                .filter(|d| i64::from(**d) * 86_400 >= left)
                .min()
            else {
                continue;
            };
            let cert = CertificateRef {
                ca_id: &row.ca_id,
                serial: &row.serial,
                profile_id: &row.profile_id,
                subject: &row.subject,
                not_after: UnixTime(row.not_after.max(0) as u64),
            };
            let notice = Notice::expiring(&cert, *days);
            if self
                .queued
                .lock()
                .is_ok_and(|q| q.contains_key(&notice.key))
            {
                continue;
            }
            let mut conn = self.conn()?;
            let emails = self.owner_emails(
                &mut conn,
                &row.ca_id,
                &row.serial,
                row.request_id.as_deref(),
            )?;
            added += self.queue(&mut conn, &notice, &emails)?;
            if let Ok(mut q) = self.queued.lock() {
                q.insert(notice.key, row.not_after);
            }
        }
        Ok(added)
    }

    /// Sends the notices that are due; returns how many were sent.
    pub fn deliver_due(&self) -> Result<usize, ServiceError> {
        let now = self.now().as_secs() as i64;
        let claimed = {
            let mut conn = self.conn()?;
            conn.claim_due(now, now + LEASE_SECS, BATCH)?
        };
        let mut sent = 0;
        for row in claimed {
            let attempt = self.send(&row);
            let outcome = match attempt {
                Ok(()) => {
                    sent += 1;
                    self.metrics.notices_sent.fetch_add(1, Ordering::Relaxed);
                    Delivery::Sent(self.now().as_secs() as i64)
                }
                Err(error) => {
                    self.metrics.notice_failures.fetch_add(1, Ordering::Relaxed);
                    let attempts = row.attempts.max(0) as u32 + 1;
                    tracing::warn!(channel = %row.channel, event = %row.event, attempts, error = %error, "a notice was not delivered");
                    if attempts >= self.config.max_attempts {
                        Delivery::Failed(error)
                    } else {
                        let backoff = self
                            .config
                            .retry_secs
                            .saturating_mul(1 << (attempts - 1).min(20))
                            .min(MAX_BACKOFF_SECS);
                        Delivery::Retry {
                            next: self.now().as_secs() as i64 + backoff as i64,
                            error,
                        }
                    }
                }
            };
            let mut conn = self.conn()?;
            conn.finish_notice(&row.id, &outcome)?;
        }
        Ok(sent)
    }

    fn send(&self, row: &NotificationRow) -> Result<(), String> {
        if row.channel == "email" {
            let mailer = self.mailer.as_ref().ok_or("SMTP is no longer configured")?;
            return mailer.send(&row.recipient, &row.subject, &row.body);
        }
        let name = row.channel.strip_prefix("webhook:").unwrap_or_default();
        let hook = self
            .hooks
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| format!("webhook {name} is no longer configured"))?;
        hook.post(&row.event, &row.id, self.now().as_secs(), &row.body)
    }

    /// Refreshes the outbox and expiry gauges of `/metrics` (every profile in every window,
    /// zeros included, so that an alert rule sees the series).
    pub fn refresh_gauges(&self, profiles: &BTreeMap<String, Profile>) -> Result<(), ServiceError> {
        let now = self.now().as_secs() as i64;
        let mut conn = self.conn()?;
        let (pending, failed) = conn.notice_counts()?;
        let mut expiring = Vec::new();
        for days in EXPIRING_WINDOWS {
            let counts: BTreeMap<String, i64> = conn
                .expiring_counts(now, now + i64::from(days) * 86_400)?
                .into_iter()
                .collect();
            for id in profiles.keys() {
                expiring.push((id.clone(), days, counts.get(id).copied().unwrap_or(0)));
            }
        }
        expiring.sort();
        if let Ok(mut gauges) = self.metrics.notices.lock() {
            *gauges = NoticeGauges {
                pending,
                failed,
                expiring,
            };
        }
        Ok(())
    }

    /// The newest notices (`status`: pending, sent, failed), for the API.
    pub fn list(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<NotificationRow>, ServiceError> {
        if let Some(s) = status {
            if !["pending", "sent", "failed"].contains(&s) {
                return Err(ServiceError::Invalid(
                    "status must be pending, sent or failed".into(),
                ));
            }
        }
        let mut conn = self.conn()?;
        Ok(conn.notices(status, limit)?)
    }

    /// Sets (or with `None` clears) where `user_id`'s notices go.
    pub fn set_contact(&self, user_id: &str, email: Option<&str>) -> Result<(), ServiceError> {
        let mut conn = self.conn()?;
        Ok(conn.set_contact(user_id, email)?)
    }

    /// Where `user_id`'s notices go.
    pub fn contact(&self, user_id: &str) -> Result<Option<String>, ServiceError> {
        let mut conn = self.conn()?;
        Ok(conn.contact(user_id)?)
    }
}

/// Forgets the queued expiry notices of certificates that expired by `now`: no scan finds
/// them again, and a server running for years would otherwise hold one key per certificate
/// that ever expired.
fn forget_expired(queued: &mut HashMap<String, i64>, now: i64) {
    queued.retain(|_, not_after| *not_after > now);
    if queued.capacity() > 4 * queued.len().max(64) {
        queued.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_notices_of_expired_certificates_are_forgotten() {
        let mut queued: HashMap<String, i64> = (0..1000)
            .map(|i| (format!("certificate.expiring:issuing/{i:04x}:30"), 100 + i))
            .collect();
        forget_expired(&mut queued, 99);
        assert_eq!(queued.len(), 1000);
        forget_expired(&mut queued, 1000);
        assert_eq!(queued.len(), 99, "notAfter 1001..=1099 are still expiring");
        assert!(queued.contains_key("certificate.expiring:issuing/0385:30"));
        assert!(!queued.contains_key("certificate.expiring:issuing/0384:30"));
        assert!(queued.capacity() < 1000, "the table shrank");
        forget_expired(&mut queued, 1100);
        assert!(queued.is_empty());
    }
}
