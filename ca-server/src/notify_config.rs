//! The `[notify]` configuration table: where notices go (the security team's mailbox, SMTP,
//! webhooks) and how failed deliveries are retried (read by `config`, used by `notify`).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

/// `[notify]`: without `smtp` and `webhooks` nothing is queued.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The security team's mailbox: told of every event (waiting approvals, expiries,
    /// revocations, holds).
    #[serde(default)]
    pub security_mailbox: Option<String>,
    /// E-mail over SMTP.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// JSON webhooks, HMAC-signed.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Seconds before the first retry of a failed delivery; doubled at each attempt (capped at
    /// an hour).
    #[serde(default = "default_retry_secs")]
    pub retry_secs: u64,
    /// Attempts before a notice is marked failed.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Seconds between scans for certificates crossing an expiry threshold.
    #[serde(default = "default_scan_secs")]
    pub scan_secs: u64,
}

fn default_scan_secs() -> u64 {
    60
}

fn default_retry_secs() -> u64 {
    60
}

fn default_attempts() -> u32 {
    8
}

impl NotifyConfig {
    /// `MAMORI_NOTIFY_SECURITY_MAILBOX`, `MAMORI_NOTIFY_RETRY_SECS`, `MAMORI_SMTP_*` (host,
    /// port, tls, from, username, password_file, ca_file) and one webhook from
    /// `MAMORI_WEBHOOK_URL` with `MAMORI_WEBHOOK_SECRET_FILE`.
    pub fn apply_env(
        &mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(), (String, String)> {
        let notify = self;
        if let Some(v) = env("notify_security_mailbox") {
            notify.security_mailbox = Some(v).filter(|v| !v.is_empty());
        }
        for (key, field) in [
            (
                "notify_max_attempts",
                &mut notify.max_attempts as &mut dyn SetFromText,
            ),
            ("notify_scan_secs", &mut notify.scan_secs),
        ] {
            if let Some(v) = env(key) {
                field
                    .set(&v)
                    .map_err(|()| (key.to_string(), "not a number".to_string()))?;
            }
        }
        if let Some(v) = env("notify_retry_secs") {
            notify.retry_secs = v
                .parse()
                .map_err(|_| ("notify_retry_secs".to_string(), "not a number".to_string()))?;
        }
        if let Some(host) = env("smtp_host").filter(|v| !v.is_empty()) {
            let tls = match env("smtp_tls").as_deref() {
                None | Some("starttls") => SmtpTls::Starttls,
                Some("tls") => SmtpTls::Tls,
                Some("none") => SmtpTls::None,
                Some(_) => return Err(("smtp_tls".into(), "starttls, tls or none".into())),
            };
            notify.smtp = Some(SmtpConfig {
                host,
                port: match env("smtp_port") {
                    Some(v) => v
                        .parse()
                        .map_err(|_| ("smtp_port".to_string(), "not a port".to_string()))?,
                    None => 587,
                },
                tls,
                from: env("smtp_from").unwrap_or_default(),
                username: env("smtp_username").filter(|v| !v.is_empty()),
                password_file: env("smtp_password_file").map(PathBuf::from),
                ca_file: env("smtp_ca_file").map(PathBuf::from),
            });
        }
        if let Some(url) = env("webhook_url").filter(|v| !v.is_empty()) {
            notify.webhooks.push(WebhookConfig {
                name: "webhook".into(),
                url,
                secret_file: env("webhook_secret_file")
                    .map(PathBuf::from)
                    .unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// Checks addresses, URLs and that every webhook has its secret.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let invalid = |key: &str, reason: &str| (key.to_string(), reason.to_string());
        let notify = self;
        let address = |a: &str| {
            a.len() <= 254
                && a.split_once('@').is_some_and(|(l, d)| {
                    !l.is_empty()
                        && d.contains('.')
                        && !a.chars().any(|c| c.is_whitespace() || c.is_control())
                })
        };
        if let Some(m) = &notify.security_mailbox {
            if !address(m) {
                return Err(invalid("notify.security_mailbox", "not an e-mail address"));
            }
        }
        if let Some(smtp) = &notify.smtp {
            if !address(&smtp.from) {
                return Err(invalid(
                    "notify.smtp.from",
                    "not an e-mail address (MAMORI_SMTP_FROM)",
                ));
            }
            if smtp.username.is_some() != smtp.password_file.is_some() {
                return Err(invalid(
                    "notify.smtp.password_file",
                    "give username and password_file together",
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for hook in &notify.webhooks {
            if !(hook.url.starts_with("https://") || hook.url.starts_with("http://")) {
                return Err(invalid("notify.webhooks.url", "must be an http(s) URL"));
            }
            if hook.secret_file.as_os_str().is_empty() {
                return Err(invalid(
                    "notify.webhooks.secret_file",
                    "every webhook is signed: give its secret_file (MAMORI_WEBHOOK_SECRET_FILE)",
                ));
            }
            if hook.name.is_empty() || !names.insert(hook.name.clone()) {
                return Err(invalid(
                    "notify.webhooks.name",
                    "names must be present and distinct",
                ));
            }
        }
        if notify.retry_secs == 0 || notify.max_attempts == 0 {
            return Err(invalid(
                "notify.retry_secs",
                "retry_secs and max_attempts must be positive",
            ));
        }
        Ok(())
    }
}

/// A number field set from an environment variable's text.
trait SetFromText {
    fn set(&mut self, text: &str) -> Result<(), ()>;
}

impl SetFromText for u32 {
    fn set(&mut self, text: &str) -> Result<(), ()> {
        *self = text.trim().parse().map_err(drop)?;
        Ok(())
    }
}

impl SetFromText for u64 {
    fn set(&mut self, text: &str) -> Result<(), ()> {
        *self = text.trim().parse().map_err(drop)?;
        Ok(())
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// STARTTLS, required (the default): no message goes out in clear text.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a relay on the same host.
    None,
}

/// `[notify.smtp]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// The server's host name (checked against its certificate).
    pub host: String,
    /// Its port (587 by default).
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls` (default), `tls` or `none`.
    #[serde(default)]
    pub tls: SmtpTls,
    /// The sender address.
    pub from: String,
    /// The account to authenticate as, if the server asks.
    #[serde(default)]
    pub username: Option<String>,
    /// Its password's file (first line; mode 0600 or stricter).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust for the server, e.g. the group's own root.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_smtp_port() -> u16 {
    587
}

/// `[[notify.webhooks]]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// A name for the API, logs and metrics.
    pub name: String,
    /// Where to POST (https, or http on the same host).
    pub url: String,
    /// The HMAC-SHA256 key's file (first line; mode 0600 or stricter).
    pub secret_file: PathBuf,
}

/// Why a secret file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SecretFileError(String);

/// The first line of `path`, which must be readable by its owner only.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, SecretFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| SecretFileError(format!("{}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(SecretFileError(format!(
                "{} is readable by others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            )));
        }
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| SecretFileError(format!("{}: {e}", path.display())))?,
    );
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if line.is_empty() {
        return Err(SecretFileError(format!("{} is empty", path.display())));
    }
    Ok(Zeroizing::new(line))
}
