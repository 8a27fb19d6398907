//! JSON webhooks: each POST carries `Mamori-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">` under the hook's secret, so the receiver can check it came from Mamori and is
//! fresh; `Mamori-Event` and `Mamori-Delivery` name the event and the delivery (a retry keeps
//! the delivery id, so a receiver can drop a repeat).

use std::time::Duration;

use zeroize::Zeroizing;

use crate::notify_config::{read_secret_file, WebhookConfig};

/// A configured webhook.
pub struct Hook {
    /// Its name.
    pub name: String,
    url: String,
    secret: Zeroizing<String>,
    client: reqwest::blocking::Client,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook").field("name", &self.name).finish()
    }
}

/// The `Mamori-Signature` value for `body` sent at `t` under `secret`.
pub fn signature(secret: &[u8], t: u64, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, format!("{t}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

impl Hook {
    /// The webhook `config` describes; its secret is read now.
    pub fn new(config: &WebhookConfig) -> Result<Hook, String> {
        let secret = read_secret_file(&config.secret_file).map_err(|e| e.to_string())?;
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Hook {
            name: config.name.clone(),
            url: config.url.clone(),
            secret: Zeroizing::new(secret.to_string()),
            client,
        })
    }

    /// POSTs `body` as delivery `delivery` of `event` at `t`; an error says why (status or
    /// connection), never the URL or the secret.
    pub fn post(&self, event: &str, delivery: &str, t: u64, body: &str) -> Result<(), String> {
        let response = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Mamori-Event", event)
            .header("Mamori-Delivery", delivery)
            .header(
                "Mamori-Signature",
                signature(self.secret.as_bytes(), t, body),
            )
            .body(body.to_string())
            .send()
            .map_err(|e| {
                if e.is_timeout() {
                    "timed out".to_string()
                } else if e.is_connect() {
                    "could not connect".to_string()
                } else {
                    "request failed".to_string()
                }
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered HTTP {}", response.status().as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        // Checked against OpenSSL's HMAC, an implementation other than the one that signs.
        let sig = signature(b"Jefe", 1_700_000_000, "{\"event\":\"x\"}");
        let key = openssl::pkey::PKey::hmac(b"Jefe").unwrap();
        let mut mac =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
        let tag = mac
            .sign_oneshot_to_vec(b"1700000000.{\"event\":\"x\"}")
            .unwrap();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sig, format!("t=1700000000,v1={hex}"));
        assert_ne!(signature(b"Jefe", 1, "x"), signature(b"Jefe", 2, "x"));
    }
}
