//! `csr create`: a PKCS#10 request from a local key, its fields filled from the profile.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use openssl::pkey::{PKey, Private};

use crate::client::{exit, fail, CliResult};

use super::key::load_key;

/// `ca-cli csr create`.
#[derive(Args, Default)]
#[command(
    after_help = "Example:\n  ca-cli csr create --key amb-0042.key --cn amb-0042 --uri urn:mamori:device:ambulance:0042 --out amb-0042.csr"
)]
pub struct CsrCreate {
    /// The private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// Passphrase file for an encrypted key.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
    /// Where to write the CSR (PEM).
    #[arg(long)]
    pub out: PathBuf,
    /// Common name.
    #[arg(long)]
    pub cn: Option<String>,
    /// Organization.
    #[arg(long)]
    pub o: Option<String>,
    /// Organizational unit.
    #[arg(long)]
    pub ou: Option<String>,
    /// Country (two letters).
    #[arg(long)]
    pub c: Option<String>,
    /// Subject serialNumber (e.g. a staff id).
    #[arg(long)]
    pub serial_number: Option<String>,
    /// DNS SAN (repeatable).
    #[arg(long)]
    pub dns: Vec<String>,
    /// URI SAN (repeatable).
    #[arg(long)]
    pub uri: Vec<String>,
    /// Email SAN (repeatable).
    #[arg(long)]
    pub email: Vec<String>,
    /// IP SAN (repeatable).
    #[arg(long)]
    pub ip: Vec<String>,
    /// Prompt for whatever this profile requires that the flags did not give (needs a login).
    #[arg(long)]
    pub profile: Option<String>,
}

/// Builds a PEM CSR.
pub fn build_csr(key: &PKey<Private>, args: &CsrCreate) -> CliResult<Vec<u8>> {
    let mut name = openssl::x509::X509NameBuilder::new()?;
    for (field, value) in [
        ("C", &args.c),
        ("O", &args.o),
        ("OU", &args.ou),
        ("CN", &args.cn),
        ("serialNumber", &args.serial_number),
    ] {
        if let Some(v) = value {
            name.append_entry_by_text(field, v)
                .map_err(|_| fail(exit::ERROR, format!("invalid {field} {v:?}")))?;
        }
    }
    let mut builder = openssl::x509::X509ReqBuilder::new()?;
    builder.set_version(0)?;
    builder.set_subject_name(&name.build())?;
    builder.set_pubkey(key)?;
    let mut san = openssl::x509::extension::SubjectAlternativeName::new();
    let mut any = false;
    for d in &args.dns {
        san.dns(d);
        any = true;
    }
    for u in &args.uri {
        san.uri(u);
        any = true;
    }
    for e in &args.email {
        san.email(e);
        any = true;
    }
    for i in &args.ip {
        san.ip(i);
        any = true;
    }
    if any {
        let context = builder.x509v3_context(None);
        let ext = san.build(&context).map_err(|e| {
            fail(
                exit::ERROR,
                format!("invalid subject alternative name: {e}"),
            )
        })?;
        let mut stack = openssl::stack::Stack::new()?;
        stack.push(ext)?;
        builder.add_extensions(&stack)?;
    }
    let digest = if key.id() == openssl::pkey::Id::ED25519 {
        openssl::hash::MessageDigest::null()
    } else {
        openssl::hash::MessageDigest::sha256()
    };
    builder.sign(key, digest)?;
    Ok(builder.build().to_pem()?)
}

fn prompt(label: &str, hint: Option<&str>) -> CliResult<String> {
    use std::io::Write;
    match hint {
        Some(h) => eprint!("{label} ({h}): "),
        None => eprint!("{label}: "),
    }
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading from the terminal")?;
    Ok(line.trim().to_string())
}

/// Fills the fields `profile` requires but the flags left empty, by prompting on a terminal.
fn fill_from_profile(
    conn: &crate::client::Connection,
    profile: &str,
    args: &mut CsrCreate,
) -> CliResult<()> {
    use std::io::IsTerminal;
    let profiles: Vec<ca_api::ProfileView> = conn.get("/api/v1/profiles")?;
    let p = profiles
        .iter()
        .find(|p| p.id == profile)
        .ok_or_else(|| fail(exit::NOT_FOUND, format!("profile {profile} not found")))?;
    let mut missing = Vec::new();
    for rule in &p.subject {
        let kind = rule.kind.as_str();
        let slot = match kind {
            "CN" => &mut args.cn,
            "O" => &mut args.o,
            "OU" => &mut args.ou,
            "C" => &mut args.c,
            "serialNumber" => &mut args.serial_number,
            _ => continue,
        };
        if rule.required && slot.is_none() {
            missing.push((kind.to_string(), rule.pattern.clone(), true));
        }
    }
    for rule in &p.san {
        let kind = rule.kind.as_str();
        let empty = match kind {
            "dns" => args.dns.is_empty(),
            "uri" => args.uri.is_empty(),
            "email" => args.email.is_empty(),
            "ip" => args.ip.is_empty(),
            _ => false,
        };
        if rule.required && empty {
            let hint = rule.pattern.clone().or_else(|| {
                (!rule.allowed_domains.is_empty())
                    .then(|| format!("under {}", rule.allowed_domains.join(", ")))
            });
            missing.push((kind.to_string(), hint, false));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        let names: Vec<&str> = missing.iter().map(|(k, _, _)| k.as_str()).collect();
        return Err(fail(
            exit::USAGE,
            format!(
                "profile {profile} requires: {} (pass them as flags)",
                names.join(", ")
            ),
        ));
    }
    for (kind, hint, subject) in missing {
        let value = prompt(&kind, hint.as_deref())?;
        if value.is_empty() {
            return Err(fail(
                exit::USAGE,
                format!("{kind} is required by profile {profile}"),
            ));
        }
        match (subject, kind.as_str()) {
            (true, "CN") => args.cn = Some(value),
            (true, "O") => args.o = Some(value),
            (true, "OU") => args.ou = Some(value),
            (true, "C") => args.c = Some(value),
            (true, _) => args.serial_number = Some(value),
            (false, "dns") => args.dns.push(value),
            (false, "uri") => args.uri.push(value),
            (false, "email") => args.email.push(value),
            (false, _) => args.ip.push(value),
        }
    }
    Ok(())
}

/// Runs `csr create`.
pub fn csr_create(conn: &crate::client::Connection, mut args: CsrCreate) -> CliResult<()> {
    if let Some(profile) = args.profile.clone() {
        fill_from_profile(conn, &profile, &mut args)?;
    }
    if args.cn.is_none()
        && args.dns.is_empty()
        && args.uri.is_empty()
        && args.email.is_empty()
        && args.ip.is_empty()
    {
        return Err(fail(
            exit::USAGE,
            "give a subject (--cn ...) or at least one SAN (--dns/--uri/--email/--ip)",
        ));
    }
    let key = load_key(&args.key, args.passphrase_file.as_deref())?;
    let pem = build_csr(&key, &args)?;
    std::fs::write(&args.out, pem).with_context(|| format!("writing {}", args.out.display()))?;
    out!("wrote {}", args.out.display());
    Ok(())
}
