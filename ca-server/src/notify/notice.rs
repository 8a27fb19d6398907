//! What a notice says: its event, a key that makes it once-only, an e-mail subject and text in
//! Japanese and English, and the JSON a webhook receives. User text (subjects, names, reasons)
//! is escaped onto one line, so it can neither inject e-mail headers nor forge lines of the
//! message.

use ca_core::time::UnixTime;
use serde_json::{json, Value};

/// A notice to send.
#[derive(Debug, Clone)]
pub struct Notice {
    /// `certificate.expiring`, `request.waiting`, `certificate.revoked`, `certificate.held`,
    /// `break_glass.issued`, `break_glass.overdue`, `break_glass.misuse`.
    pub event: &'static str,
    /// Unique per event: the same key is sent once to each recipient, whichever instance
    /// queues it.
    pub key: String,
    /// The e-mail subject.
    pub subject: String,
    /// The e-mail text (Japanese, then English).
    pub text: String,
    /// The webhook body's `data`.
    pub data: Value,
}

/// One line of at most 200 characters of `text`, its control and bidirectional characters
/// written as `\u{XXXX}` (`ca_core::text::escape_untrusted`).
pub fn one_line(text: &str) -> String {
    ca_core::text::escape_untrusted(text, 200)
}

/// A certificate a notice is about.
#[derive(Debug, Clone)]
pub struct CertificateRef<'a> {
    /// Issuing CA.
    pub ca_id: &'a str,
    /// Serial (hex).
    pub serial: &'a str,
    /// Profile.
    pub profile_id: &'a str,
    /// Subject text.
    pub subject: &'a str,
    /// notAfter.
    pub not_after: UnixTime,
}

impl CertificateRef<'_> {
    fn json(&self) -> Value {
        json!({
            "ca": self.ca_id,
            "serial": self.serial,
            "profile": self.profile_id,
            "subject": self.subject,
            "not_after": self.not_after.to_rfc3339(),
        })
    }
}

impl Notice {
    /// `cert` ends within `days` days (one of its profile's `expiry_days`).
    pub fn expiring(cert: &CertificateRef<'_>, days: u32) -> Notice {
        let subject = one_line(cert.subject);
        Notice {
            event: "certificate.expiring",
            key: format!("certificate.expiring:{}/{}:{days}", cert.ca_id, cert.serial),
            subject: format!(
                "[Mamori] 証明書の期限が {days} 日以内です / Certificate expires within {days} days: {subject}"
            ),
            text: format!(
                "証明書の有効期限が {days} 日以内に切れます。更新してください。\n\
                 A certificate expires within {days} days. Renew it.\n\n\
                 subject: {subject}\nprofile: {}\nCA / serial: {} / {}\nnotAfter: {}\n",
                cert.profile_id,
                cert.ca_id,
                cert.serial,
                cert.not_after.to_rfc3339()
            ),
            data: json!({"certificate": cert.json(), "within_days": days}),
        }
    }

    /// `cert` was revoked (`reason`) or put on hold (`reason` `certificate-hold`).
    pub fn status_changed(
        cert: &CertificateRef<'_>,
        held: bool,
        reason: &str,
        at: UnixTime,
    ) -> Notice {
        let subject = one_line(cert.subject);
        let reason = one_line(reason);
        let (event, ja, en) = if held {
            ("certificate.held", "一時停止されました", "was put on hold")
        } else {
            ("certificate.revoked", "失効しました", "was revoked")
        };
        Notice {
            event,
            key: format!("{event}:{}/{}:{}", cert.ca_id, cert.serial, at.as_secs()),
            subject: format!("[Mamori] 証明書が{ja} / Certificate {en}: {subject}"),
            text: format!(
                "証明書が{ja}（理由: {reason}）。\nA certificate {en} (reason: {reason}).\n\n\
                 subject: {subject}\nprofile: {}\nCA / serial: {} / {}\nat: {}\n",
                cert.profile_id,
                cert.ca_id,
                cert.serial,
                at.to_rfc3339()
            ),
            data: json!({"certificate": cert.json(), "reason": reason, "at": at.to_rfc3339()}),
        }
    }

    /// Request `request_id` of `profile_id` for `subject`, by `requester`, waits for approval.
    pub fn waiting(request_id: &str, profile_id: &str, subject: &str, requester: &str) -> Notice {
        let subject = one_line(subject);
        let requester = one_line(requester);
        Notice {
            event: "request.waiting",
            key: format!("request.waiting:{request_id}"),
            subject: format!(
                "[Mamori] 承認待ちの申請があります / A request waits for approval: {subject}"
            ),
            text: format!(
                "承認待ちの申請があります。内容を確認して承認または却下してください。\n\
                 A request waits for your approval. Review it, then approve or reject it.\n\n\
                 request: {request_id}\nprofile: {profile_id}\nsubject: {subject}\nrequester: {requester}\n\
                 ca-cli request show {request_id}\n"
            ),
            data: json!({"request": {"id": request_id, "profile": profile_id, "subject": subject, "requester": requester}}),
        }
    }

    /// A break-glass issuance `request_id` of `profile_id` for `subject` by `officer`:
    /// `event` is `break_glass.issued` (review it), `break_glass.overdue` (not reviewed in
    /// time) or `break_glass.misuse` (a reviewer found it misused; revoked).
    pub fn break_glass(
        event: &'static str,
        request_id: &str,
        profile_id: &str,
        subject: &str,
        officer: &str,
        emergency: &str,
        due: UnixTime,
    ) -> Notice {
        let (subject, officer, emergency) =
            (one_line(subject), one_line(officer), one_line(emergency));
        let (ja, en) = match event {
            "break_glass.overdue" => (
                "緊急発行が期限までにレビューされていません",
                "An emergency issuance was not reviewed in time",
            ),
            "break_glass.misuse" => (
                "緊急発行が不正と判断され失効されました",
                "An emergency issuance was judged misused and revoked",
            ),
            _ => (
                "緊急発行（ブレークグラス）が行われました。レビューしてください",
                "A break-glass certificate was issued: review it",
            ),
        };
        Notice {
            event,
            key: format!("{event}:{request_id}"),
            subject: format!("[Mamori] {ja} / {en}: {subject}"),
            text: format!(
                "{ja}。\n{en}.\n\nrequest: {request_id}\nprofile: {profile_id}\nsubject: {subject}\n\
                 officer: {officer}\nemergency: {emergency}\nreview by: {}\n\
                 ca-cli break-glass review {request_id} --confirm | --misuse --comment ...\n",
                due.to_rfc3339()
            ),
            data: json!({"request": {"id": request_id, "profile": profile_id, "subject": subject},
                "officer": officer, "emergency": emergency, "review_due": due.to_rfc3339()}),
        }
    }

    /// The JSON a webhook receives: the event, the delivery's id, when, and the data.
    pub fn webhook_body(&self, at: UnixTime) -> String {
        json!({
            "event": self.event,
            "key": self.key,
            "at": at.to_rfc3339(),
            "data": self.data,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_cannot_add_lines_or_headers() {
        let cert = CertificateRef {
            ca_id: "issuing",
            serial: "01",
            profile_id: "staff",
            subject: "CN=evil\r\nBcc: all@hospital.example\u{202e}",
            not_after: UnixTime(2_000_000_000),
        };
        let notice = Notice::expiring(&cert, 7);
        assert!(!notice.subject.contains('\n') && !notice.subject.contains('\r'));
        assert!(!notice.subject.contains('\u{202e}'));
        assert!(!notice.text.contains("\nBcc:"));
        assert_eq!(notice.key, "certificate.expiring:issuing/01:7");
        let body: Value = serde_json::from_str(&notice.webhook_body(UnixTime(1))).unwrap();
        assert_eq!(body["event"], "certificate.expiring");
        assert_eq!(body["data"]["within_days"], 7);
    }
}
