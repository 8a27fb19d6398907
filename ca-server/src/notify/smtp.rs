//! E-mail over SMTP (lettre): STARTTLS required by default, the server's certificate checked
//! against the system's roots and `ca_file`, password authentication when configured.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::notify_config::{read_secret_file, SmtpConfig, SmtpTls};

/// A configured SMTP sender.
pub struct Mailer {
    transport: SmtpTransport,
    from: lettre::message::Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    /// The sender `config` describes; its password and CA file are read now.
    pub fn new(config: &SmtpConfig) -> Result<Mailer, String> {
        let mut tls = TlsParameters::builder(config.host.clone());
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls.build().map_err(|e| format!("SMTP TLS: {e}"))?;
        let mut builder = SmtpTransport::builder_dangerous(&config.host)
            .port(config.port)
            .timeout(Some(Duration::from_secs(20)))
            .tls(match config.tls {
                SmtpTls::Starttls => Tls::Required(tls),
                SmtpTls::Tls => Tls::Wrapper(tls),
                SmtpTls::None => Tls::None,
            });
        if let (Some(user), Some(file)) = (&config.username, &config.password_file) {
            let password = read_secret_file(file).map_err(|e| e.to_string())?;
            builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from: config
                .from
                .parse()
                .map_err(|e| format!("notify.smtp.from: {e}"))?,
        })
    }

    /// Sends `text` with `subject` to `to`.
    pub fn send(&self, to: &str, subject: &str, text: &str) -> Result<(), String> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.parse().map_err(|e| format!("recipient: {e}"))?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text.to_string())
            .map_err(|e| format!("building the message: {e}"))?;
        self.transport
            .send(&message)
            .map(drop)
            .map_err(|e| format!("SMTP: {e}"))
    }
}
