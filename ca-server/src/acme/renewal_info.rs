//! ACME Renewal Information (RFC 9773): when Mamori suggests a certificate be renewed. The
//! window is the profile's renewal window, ending a third of it before expiry; a revoked
//! certificate (a mass revocation after an incident, a CA key change) gets a window already
//! past, which tells ARI clients to renew at once.

use ca_core::profile::Profile;
use serde_json::{json, Value};

use super::{AcmeError, AcmeService};
use crate::store::request_rows::RequestRows;

/// Seconds clients wait before asking again (RFC 9773 §4.3, Retry-After).
pub const RETRY_AFTER_SECS: u64 = 6 * 3600;

/// The suggested window of a certificate valid from `not_before` to `not_after` under a
/// renewal window of `window` seconds: `[not_after - window, not_after - window/3]`, and never
/// before the middle of the validity.
pub fn suggested_window(not_before: i64, not_after: i64, window: i64) -> (i64, i64) {
    let middle = not_before + (not_after - not_before) / 2;
    let start = (not_after - window).max(middle);
    let end = (not_after - window / 3).max(start + 1).min(not_after);
    (start, end.max(start))
}

impl AcmeService {
    /// The issuing CA and serial (hex) of an RFC 9773 certificate identifier:
    /// base64url(authorityKeyIdentifier) "." base64url(serial's DER content octets).
    pub fn certificate_of_cert_id(&self, id: &str) -> Result<(String, String), AcmeError> {
        let bad = || AcmeError::malformed("not an ARI certificate identifier");
        let (aki, serial) = id.split_once('.').ok_or_else(bad)?;
        let aki = ca_core::jws::b64url_decode(aki).map_err(|_| bad())?;
        let serial = ca_core::jws::b64url_decode(serial).map_err(|_| bad())?;
        if aki.is_empty() || aki.len() > 64 || serial.is_empty() || serial.len() > 21 {
            return Err(bad());
        }
        let ca = self
            .authority
            .issuers
            .certificates()
            .all()
            .iter()
            .find_map(|(ca_id, der)| {
                let cert = openssl::x509::X509::from_der(der).ok()?;
                let ski = cert.subject_key_id()?;
                (ski.as_slice() == aki.as_slice()).then(|| ca_id.clone())
            })
            .ok_or_else(|| {
                AcmeError::new(
                    "malformed",
                    404,
                    "no CA of this server has that key identifier",
                )
            })?;
        Ok((ca, hex::encode(&serial)))
    }

    /// `GET /renewal-info/{id}`: the suggested renewal window.
    pub fn renewal_info(&self, profile: &Profile, id: &str) -> Result<Value, AcmeError> {
        let (ca, serial) = self.certificate_of_cert_id(id)?;
        let row = self
            .authority
            .conn()?
            .certificate(&ca, &serial)?
            .filter(|r| r.profile_id == profile.id())
            .ok_or_else(|| AcmeError::new("malformed", 404, "no such certificate"))?;
        let now = self.authority.now().as_secs() as i64;
        let (start, end) = if row.status == "revoked" {
            (now - 2 * 3600, now - 3600)
        } else {
            suggested_window(
                row.not_before,
                row.not_after,
                profile.renewal().window_secs as i64,
            )
        };
        let mut answer = json!({
            "suggestedWindow": {
                "start": crate::api::rfc3339(start),
                "end": crate::api::rfc3339(end),
            }
        });
        if row.status == "revoked" {
            answer["explanationURL"] = json!("https://mamori.dev/acme/revoked");
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_ends_before_expiry_and_never_starts_in_the_first_half() {
        let day = 86_400;
        // 90 days with a 30-day renewal window: day 60 to day 80.
        assert_eq!(
            suggested_window(0, 90 * day, 30 * day),
            (60 * day, 80 * day)
        );
        // A 10-day certificate with a 30-day window: from the middle.
        let (start, end) = suggested_window(0, 10 * day, 30 * day);
        assert_eq!(start, 5 * day);
        assert!(end > start && end <= 10 * day);
    }
}
