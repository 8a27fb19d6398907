//! Prometheus metrics: issued and revoked certificates, OCSP requests by status, login failures,
//! and request latency per listener. Plain atomics; rendered as text on `GET /metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 10],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, labels: &str, out: &mut String) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            out.push_str(&format!(
                "{name}_bucket{{{labels},le=\"{bound}\"}} {}\n",
                self.buckets[i].load(Ordering::Relaxed)
            ));
        }
        let count = self.count.load(Ordering::Relaxed);
        out.push_str(&format!("{name}_bucket{{{labels},le=\"+Inf\"}} {count}\n"));
        out.push_str(&format!(
            "{name}_sum{{{labels}}} {}\n",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        out.push_str(&format!("{name}_count{{{labels}}} {count}\n"));
    }
}

/// Every counter the service keeps.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Certificates issued.
    pub issued: AtomicU64,
    /// Certificates revoked (including holds).
    pub revoked: AtomicU64,
    /// Failed logins.
    pub login_failures: AtomicU64,
    /// OCSP answers: good, revoked, unknown, malformed, unauthorized, internal.
    pub ocsp: [AtomicU64; 6],
    /// Polls of the stored OCSP responses that completed.
    pub ocsp_polls: AtomicU64,
    /// Stored OCSP responses the cache's polls saw, other than this process's own (each poll
    /// looks back 5 s, so a new row is seen several times).
    pub ocsp_poll_rows: AtomicU64,
    /// Of those, responses read in full because the cache did not hold them (stored by another
    /// instance, or at start).
    pub ocsp_poll_loaded: AtomicU64,
    /// OCSP responses dropped from memory past their nextUpdate (certificates that expired).
    pub ocsp_evicted: AtomicU64,
    /// Polls of the shared database (OCSP responses and CRLs) that failed, e.g. while the
    /// database is unreachable and the instance answers from its cache: worth an alert.
    pub poll_failures: AtomicU64,
    /// Wrong step-up codes.
    pub step_up_failures: AtomicU64,
    /// Refused security actions (self-approval, duplicate decision, forbidden role, locked
    /// step-up, wrong code) by problem type, in the order of [`REFUSAL_LABELS`].
    pub refusals: [AtomicU64; 6],
    /// Whether the CA keys wait for k-of-n activation (`mamori_ca_locked`).
    pub locked: std::sync::atomic::AtomicBool,
    /// Notices: what the outbox holds and the certificates ending soon (`notify`).
    pub notices: std::sync::Mutex<NoticeGauges>,
    /// Break-glass issuances waiting for (or past) their review.
    pub break_glass_open: AtomicU64,
    /// Notices delivered.
    pub notices_sent: AtomicU64,
    /// Delivery attempts that failed (each retry counts).
    pub notice_failures: AtomicU64,
    /// Latency of the public listener.
    pub public_latency: Histogram,
    /// Latency of the API listener.
    pub api_latency: Histogram,
}

/// The outbox and expiry figures the notify service refreshes at each upkeep.
#[derive(Debug, Default, Clone)]
pub struct NoticeGauges {
    /// Notices waiting to be sent (or retried).
    pub pending: i64,
    /// Notices given up on after their last attempt.
    pub failed: i64,
    /// (profile, within_days, valid certificates ending within that many days).
    pub expiring: Vec<(String, u32, i64)>,
}

/// OCSP outcome labels, in the order of [`Metrics::ocsp`].
pub const OCSP_LABELS: [&str; 6] = [
    "good",
    "revoked",
    "unknown",
    "malformed",
    "unauthorized",
    "internal",
];

/// Refusal labels, in the order of [`Metrics::refusals`].
pub const REFUSAL_LABELS: [&str; 6] = [
    "invalid-second-factor",
    "step-up-locked",
    "self-approval",
    "forbidden",
    "approval-refused",
    "enrolment",
];

impl Metrics {
    fn render_notices(&self, out: &mut String) {
        let gauges = self.notices.lock().map(|g| g.clone()).unwrap_or_default();
        out.push_str(&format!(
            "# HELP mamori_notifications_pending Notices waiting to be sent or retried.\n# TYPE mamori_notifications_pending gauge\nmamori_notifications_pending {}\n\
             # HELP mamori_notifications_failed Notices given up on (GET /api/v1/notifications?status=failed).\n# TYPE mamori_notifications_failed gauge\nmamori_notifications_failed {}\n\
             # HELP mamori_notifications_sent_total Notices delivered by this instance.\n# TYPE mamori_notifications_sent_total counter\nmamori_notifications_sent_total {}\n\
             # HELP mamori_notification_failures_total Delivery attempts that failed on this instance.\n# TYPE mamori_notification_failures_total counter\nmamori_notification_failures_total {}\n",
            gauges.pending,
            gauges.failed,
            self.notices_sent.load(Ordering::Relaxed),
            self.notice_failures.load(Ordering::Relaxed),
        ));
        out.push_str(&format!(
            "# HELP mamori_break_glass_unreviewed Break-glass issuances waiting for their review or past its deadline.\n# TYPE mamori_break_glass_unreviewed gauge\nmamori_break_glass_unreviewed {}\n",
            self.break_glass_open.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP mamori_certificates_expiring Valid certificates ending within within_days days, by profile.\n# TYPE mamori_certificates_expiring gauge\n");
        for (profile, days, count) in &gauges.expiring {
            let profile = profile.replace(['\\', '"', '\n'], "_");
            out.push_str(&format!(
                "mamori_certificates_expiring{{profile=\"{profile}\",within_days=\"{days}\"}} {count}\n"
            ));
        }
    }

    /// Counts a refused security action by its problem type.
    pub fn refusal(&self, label: &str) {
        if let Some(i) = REFUSAL_LABELS.iter().position(|l| *l == label) {
            self.refusals[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an OCSP outcome by label.
    pub fn ocsp(&self, label: &str) {
        if let Some(i) = OCSP_LABELS.iter().position(|l| *l == label) {
            self.ocsp[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "# HELP mamori_ca_locked 1 while the CA keys wait for k-of-n activation (ca-cli activate).\n# TYPE mamori_ca_locked gauge\nmamori_ca_locked {}\n",
            u8::from(self.locked.load(Ordering::Relaxed))
        ));
        self.render_notices(&mut out);
        out.push_str("# HELP mamori_certificates_issued_total Certificates issued.\n# TYPE mamori_certificates_issued_total counter\n");
        out.push_str(&format!(
            "mamori_certificates_issued_total {}\n",
            self.issued.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP mamori_certificates_revoked_total Certificates revoked or put on hold.\n# TYPE mamori_certificates_revoked_total counter\n");
        out.push_str(&format!(
            "mamori_certificates_revoked_total {}\n",
            self.revoked.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP mamori_login_failures_total Failed logins.\n# TYPE mamori_login_failures_total counter\n");
        out.push_str(&format!(
            "mamori_login_failures_total {}\n",
            self.login_failures.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP mamori_step_up_failures_total Wrong step-up codes (approve, reject, revoke, hold, release).\n# TYPE mamori_step_up_failures_total counter\n");
        out.push_str(&format!(
            "mamori_step_up_failures_total {}\n",
            self.step_up_failures.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP mamori_security_refusals_total Refused security actions by problem type.\n# TYPE mamori_security_refusals_total counter\n");
        for (i, label) in REFUSAL_LABELS.iter().enumerate() {
            out.push_str(&format!(
                "mamori_security_refusals_total{{type=\"{label}\"}} {}\n",
                self.refusals[i].load(Ordering::Relaxed)
            ));
        }
        out.push_str("# HELP mamori_ocsp_requests_total OCSP answers by status.\n# TYPE mamori_ocsp_requests_total counter\n");
        for (i, label) in OCSP_LABELS.iter().enumerate() {
            out.push_str(&format!(
                "mamori_ocsp_requests_total{{status=\"{label}\"}} {}\n",
                self.ocsp[i].load(Ordering::Relaxed)
            ));
        }
        out.push_str("# HELP mamori_ocsp_polls_total Completed polls of the stored OCSP responses.\n# TYPE mamori_ocsp_polls_total counter\n");
        out.push_str(&format!(
            "mamori_ocsp_polls_total {}\n",
            self.ocsp_polls.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP mamori_ocsp_poll_rows_total Stored OCSP responses, other than this process's own, the cache's polls saw.\n# TYPE mamori_ocsp_poll_rows_total counter\n");
        out.push_str(&format!(
            "mamori_ocsp_poll_rows_total {}\n",
            self.ocsp_poll_rows.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP mamori_ocsp_poll_loaded_total Polled OCSP responses read in full because the cache did not hold them.\n# TYPE mamori_ocsp_poll_loaded_total counter\n");
        out.push_str(&format!(
            "mamori_ocsp_poll_loaded_total {}\n",
            self.ocsp_poll_loaded.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP mamori_ocsp_evicted_total OCSP responses dropped from memory past their nextUpdate, once their certificate expired.\n# TYPE mamori_ocsp_evicted_total counter\n");
        out.push_str(&format!(
            "mamori_ocsp_evicted_total {}\n",
            self.ocsp_evicted.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP mamori_db_poll_failures_total Polls of the database for new OCSP responses and CRLs that failed (answering from the cache meanwhile).\n# TYPE mamori_db_poll_failures_total counter\n");
        out.push_str(&format!(
            "mamori_db_poll_failures_total {}\n",
            self.poll_failures.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP mamori_http_request_duration_seconds Request latency.\n# TYPE mamori_http_request_duration_seconds histogram\n");
        self.public_latency.render(
            "mamori_http_request_duration_seconds",
            "listener=\"public\"",
            &mut out,
        );
        self.api_latency.render(
            "mamori_http_request_duration_seconds",
            "listener=\"api\"",
            &mut out,
        );
        out
    }
}
