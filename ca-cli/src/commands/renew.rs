//! `ca-cli renew`: a certificate renews itself over mutual TLS (`POST /api/v1/renew` on the
//! enrollment listener), for cron jobs and systemd timers. A new key of the same kind is made
//! here, the CSR repeats the certificate's subject and subjectAltNames, and key and certificate
//! are replaced only once the new certificate is in hand.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use ca_api::{RenewRequest, RenewView};
use clap::Args;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::client::{exit, fail, CliResult};
use crate::output::shown;

/// `ca-cli renew`.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  ca-cli renew --cert /etc/mamori/device.pem --key /etc/mamori/device.key\n  ca-cli renew --cert gw.pem --key gw.key --within 45 --wait 600\n\nExits 0 when the certificate is not due (expires later than --within days) or was renewed;\nthe old key and certificate are kept as <file>.old."
)]
pub struct Renew {
    /// The current certificate (PEM; a chain after it is ignored). Replaced on success.
    #[arg(long)]
    pub cert: PathBuf,
    /// Its private key (PEM). Replaced by a new key on success.
    #[arg(long)]
    pub key: PathBuf,
    /// The enrollment listener (`enroll_addr`).
    #[arg(
        long,
        env = "MAMORI_ENROLL_SERVER",
        default_value = "https://127.0.0.1:8444"
    )]
    pub enroll_server: String,
    /// Renew only when the certificate expires within this many days.
    #[arg(long, default_value_t = 30)]
    pub within: u64,
    /// Seconds to wait for an approval where the profile's renewal needs one.
    #[arg(long, default_value_t = 0)]
    pub wait: u64,
    /// Keep the same key (only where the profile allows it).
    #[arg(long)]
    pub reuse_key: bool,
}

fn read_current(args: &Renew) -> CliResult<(X509, PKey<Private>)> {
    let cert_pem =
        std::fs::read(&args.cert).with_context(|| format!("reading {}", args.cert.display()))?;
    let cert = X509::from_pem(&cert_pem)
        .with_context(|| format!("{} holds no PEM certificate", args.cert.display()))?;
    let key = crate::commands::key::load_key(&args.key, None)?;
    if !cert.public_key()?.public_eq(&key) {
        return Err(fail(
            exit::ERROR,
            format!(
                "{} is not the key of {}",
                args.key.display(),
                args.cert.display()
            ),
        ));
    }
    Ok((cert, key))
}

/// A new key of the same kind as `current`.
fn same_kind(current: &PKey<Private>) -> CliResult<PKey<Private>> {
    use crate::commands::key::{generate_key, Algorithm};
    if let Ok(ec) = current.ec_key() {
        let nid = ec.group().curve_name();
        let algorithm = if nid == Some(openssl::nid::Nid::SECP384R1) {
            Algorithm::P384
        } else {
            Algorithm::P256
        };
        return generate_key(algorithm);
    }
    let bits = current.rsa().map(|r| r.size() * 8).unwrap_or(3072);
    Ok(PKey::from_rsa(openssl::rsa::Rsa::generate(
        bits.max(2048),
    )?)?)
}

/// A CSR with the certificate's subject and subjectAltNames, signed by `key`.
fn csr_like(cert: &X509, key: &PKey<Private>) -> CliResult<String> {
    let mut builder = openssl::x509::X509ReqBuilder::new()?;
    builder.set_subject_name(cert.subject_name())?;
    builder.set_pubkey(key)?;
    if let Some(names) = cert.subject_alt_names() {
        let mut san = openssl::x509::extension::SubjectAlternativeName::new();
        for name in names.iter() {
            if let Some(dns) = name.dnsname() {
                san.dns(dns);
            } else if let Some(uri) = name.uri() {
                san.uri(uri);
            } else if let Some(email) = name.email() {
                san.email(email);
            } else if let Some(ip) = name.ipaddress() {
                let text = match ip.len() {
                    4 => std::net::IpAddr::from(<[u8; 4]>::try_from(ip).unwrap_or_default()),
                    _ => std::net::IpAddr::from(<[u8; 16]>::try_from(ip).unwrap_or_default()),
                };
                san.ip(&text.to_string());
            }
        }
        let mut extensions = openssl::stack::Stack::new()?;
        extensions.push(san.build(&builder.x509v3_context(None))?)?;
        builder.add_extensions(&extensions)?;
    }
    builder.sign(key, openssl::hash::MessageDigest::sha256())?;
    Ok(String::from_utf8(builder.build().to_pem()?).context("CSR PEM")?)
}

/// Replaces `path` with `data` (mode `mode`), keeping the old file as `<path>.old`.
fn replace(path: &Path, data: &[u8], mode: u32) -> CliResult<()> {
    use std::io::Write;
    let tmp = path.with_extension("mamori-new");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(data)?;
    file.sync_all()?;
    let old = PathBuf::from(format!("{}.old", path.display()));
    std::fs::copy(path, &old).with_context(|| format!("keeping {}", old.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Runs `ca-cli renew`.
pub fn run(ca_file: Option<&Path>, args: Renew, json: bool) -> CliResult<()> {
    let (cert, current_key) = read_current(&args)?;
    let now = openssl::asn1::Asn1Time::days_from_now(0)?;
    let due = openssl::asn1::Asn1Time::days_from_now(args.within as u32)?;
    if cert.not_after() > due {
        let left = now.diff(cert.not_after())?;
        if !json {
            out!(
                "not due: {} expires in {} days (renewing within {} days) / 更新はまだ不要です",
                args.cert.display(),
                left.days,
                args.within
            );
        }
        return Ok(());
    }
    let key = if args.reuse_key {
        current_key.clone()
    } else {
        same_kind(&current_key)?
    };
    let csr = csr_like(&cert, &key)?;
    let key_pem = zeroize::Zeroizing::new(current_key.private_key_to_pem_pkcs8()?);
    let identity = reqwest::Identity::from_pkcs8_pem(&cert.to_pem()?, &key_pem)
        .context("the certificate and key as a TLS client identity")?;
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .identity(identity);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading the root certificate {}", path.display()))?;
        builder = builder
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
            .tls_built_in_root_certs(false);
    }
    let client = builder.build().context("building the HTTP client")?;
    let base = args.enroll_server.trim_end_matches('/');
    let answer = |response: reqwest::blocking::Response| -> CliResult<(u16, RenewView)> {
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        if status >= 400 {
            let detail = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_string))
                .unwrap_or(text);
            let code = match status {
                401 | 403 => exit::FORBIDDEN,
                404 => exit::NOT_FOUND,
                400..=499 => exit::REFUSED,
                _ => exit::UNAVAILABLE,
            };
            return Err(fail(
                code,
                format!("renewal refused ({status}): {}", shown(&detail)),
            ));
        }
        let view: RenewView = serde_json::from_str(&text)
            .context("the server's answer is not what this ca-cli expects")?;
        Ok((status, view))
    };
    let url = format!("{base}/api/v1/renew");
    let sent = client
        .post(&url)
        .json(&RenewRequest { csr })
        .send()
        .map_err(|e| fail(exit::UNAVAILABLE, format!("POST {url}: {e}")))?;
    let (_, mut view) = answer(sent)?;
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    while view.status == "pending" || view.status == "approved" {
        if Instant::now() >= deadline {
            return Err(fail(
                exit::UNAVAILABLE,
                format!(
                    "renewal request {} waits for approval; run again with --wait, or later \
                     (the new key was not kept) / 承認待ちです",
                    shown(&view.request)
                ),
            ));
        }
        std::thread::sleep(Duration::from_secs(5).min(deadline - Instant::now()));
        let url = format!("{base}/api/v1/renew/{}", view.request);
        let polled = client
            .get(&url)
            .send()
            .map_err(|e| fail(exit::UNAVAILABLE, format!("GET {url}: {e}")))?;
        view = answer(polled)?.1;
    }
    let pem = view.certificate_pem.clone().ok_or_else(|| {
        fail(
            exit::REFUSED,
            format!(
                "renewal request {} ended {}",
                shown(&view.request),
                shown(&view.status)
            ),
        )
    })?;
    if !args.reuse_key {
        let new_key = zeroize::Zeroizing::new(key.private_key_to_pem_pkcs8()?);
        replace(&args.key, &new_key, 0o600)?;
    }
    replace(&args.cert, pem.as_bytes(), 0o644)?;
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&view).unwrap_or_default()
        );
    } else {
        out!(
            "renewed: {} until {} / 更新しました",
            shown(view.serial.as_deref().unwrap_or("-")),
            crate::output::local_time(view.not_after.as_deref().unwrap_or("-"))
        );
    }
    Ok(())
}
