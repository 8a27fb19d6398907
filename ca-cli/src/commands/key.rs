//! Local key work, so a private key never leaves the machine that uses it: `key generate`,
//! `csr create`, `pkcs12 export`. All through OpenSSL.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use openssl::pkey::{PKey, Private};

use crate::client::{exit, fail, read_secret_file, CliResult};

/// Key algorithms `key generate` makes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Algorithm {
    /// ECDSA P-256 (default).
    P256,
    /// ECDSA P-384.
    P384,
    /// RSA 3072.
    Rsa3072,
}

/// `ca-cli key generate`.
#[derive(Args)]
#[command(after_help = "Example:\n  ca-cli key generate --out engineer.key")]
pub struct Generate {
    /// Where to write the PKCS#8 PEM key (mode 0600).
    #[arg(long)]
    pub out: PathBuf,
    /// Algorithm.
    #[arg(long, value_enum, default_value = "p256")]
    pub algorithm: Algorithm,
    /// Encrypt the key with the passphrase in this file (AES-256-CBC, PKCS#8).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

/// Writes a file readable by its owner only, refusing to overwrite.
pub fn write_new_private(path: &Path, data: &[u8]) -> CliResult<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    file.write_all(data)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Generates a key pair.
pub fn generate_key(algorithm: Algorithm) -> CliResult<PKey<Private>> {
    Ok(match algorithm {
        Algorithm::P256 | Algorithm::P384 => {
            let nid = if matches!(algorithm, Algorithm::P256) {
                openssl::nid::Nid::X9_62_PRIME256V1
            } else {
                openssl::nid::Nid::SECP384R1
            };
            let group = openssl::ec::EcGroup::from_curve_name(nid)?;
            PKey::from_ec_key(openssl::ec::EcKey::generate(&group)?)?
        }
        Algorithm::Rsa3072 => PKey::from_rsa(openssl::rsa::Rsa::generate(3072)?)?,
    })
}

/// PKCS#8 PEM, encrypted when a passphrase is given.
pub fn key_pem(key: &PKey<Private>, passphrase: Option<&str>) -> CliResult<Vec<u8>> {
    Ok(match passphrase {
        Some(p) => key.private_key_to_pem_pkcs8_passphrase(
            openssl::symm::Cipher::aes_256_cbc(),
            p.as_bytes(),
        )?,
        None => key.private_key_to_pem_pkcs8()?,
    })
}

/// Runs `key generate`.
pub fn generate(args: Generate) -> CliResult<()> {
    let passphrase = args
        .passphrase_file
        .as_deref()
        .map(read_secret_file)
        .transpose()?;
    let key = generate_key(args.algorithm)?;
    write_new_private(
        &args.out,
        &key_pem(&key, passphrase.as_deref().map(|s| s.as_str()))?,
    )?;
    out!("wrote {}", args.out.display());
    Ok(())
}

/// Loads a PEM private key, decrypting it with the passphrase file when given.
pub fn load_key(path: &Path, passphrase_file: Option<&Path>) -> CliResult<PKey<Private>> {
    let pem = zeroize::Zeroizing::new(
        std::fs::read(path).with_context(|| format!("reading key {}", path.display()))?,
    );
    let key = match passphrase_file {
        Some(p) => {
            let pass = read_secret_file(p)?;
            PKey::private_key_from_pem_passphrase(&pem, pass.as_bytes())
        }
        None => PKey::private_key_from_pem(&pem),
    };
    let key = key.map_err(|_| {
        fail(
            exit::ERROR,
            format!(
                "reading key {}: not a PEM private key, or wrong passphrase",
                path.display()
            ),
        )
    })?;
    check_key_type(&key).map_err(|why| {
        fail(
            exit::ERROR,
            format!("reading key {}: {why}", path.display()),
        )
    })?;
    Ok(key)
}

/// Mamori accepts RSA of at least 2048 bits, ECDSA P-256 and P-384, and Ed25519; refusing other
/// keys here saves a round trip to a server that would refuse the CSR.
fn check_key_type(key: &PKey<Private>) -> Result<(), String> {
    use openssl::nid::Nid;
    use openssl::pkey::Id;
    match key.id() {
        Id::RSA if key.bits() >= 2048 => Ok(()),
        Id::RSA => Err(format!(
            "RSA keys need at least 2048 bits (this one has {})",
            key.bits()
        )),
        Id::ED25519 => Ok(()),
        Id::EC => {
            let curve = key.ec_key().ok().and_then(|k| k.group().curve_name());
            match curve {
                Some(Nid::X9_62_PRIME256V1) | Some(Nid::SECP384R1) => Ok(()),
                other => Err(format!(
                    "EC keys must be on P-256 or P-384 (this one is on {})",
                    other
                        .and_then(|n| n.short_name().ok())
                        .unwrap_or("an unnamed curve")
                )),
            }
        }
        _ => Err("use an RSA (2048 bits or more), ECDSA P-256/P-384 or Ed25519 key".into()),
    }
}

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
    let profiles = conn.json("GET", "/api/v1/profiles", None)?;
    let p = profiles
        .as_array()
        .and_then(|list| list.iter().find(|p| p["id"] == profile))
        .ok_or_else(|| fail(exit::NOT_FOUND, format!("profile {profile} not found")))?;
    let mut missing = Vec::new();
    for rule in p["subject"].as_array().into_iter().flatten() {
        let kind = rule["type"].as_str().unwrap_or_default();
        let slot = match kind {
            "CN" => &mut args.cn,
            "O" => &mut args.o,
            "OU" => &mut args.ou,
            "C" => &mut args.c,
            "serialNumber" => &mut args.serial_number,
            _ => continue,
        };
        if rule["required"] == true && slot.is_none() {
            missing.push((
                kind.to_string(),
                rule["pattern"].as_str().map(str::to_string),
                true,
            ));
        }
    }
    for rule in p["san"].as_array().into_iter().flatten() {
        let kind = rule["type"].as_str().unwrap_or_default();
        let empty = match kind {
            "dns" => args.dns.is_empty(),
            "uri" => args.uri.is_empty(),
            "email" => args.email.is_empty(),
            "ip" => args.ip.is_empty(),
            _ => false,
        };
        if rule["required"] == true && empty {
            let hint = rule["pattern"].as_str().map(str::to_string).or_else(|| {
                rule["allowed_domains"].as_array().map(|d| {
                    format!(
                        "under {}",
                        d.iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
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

/// `ca-cli pkcs12 export`.
#[derive(Args)]
#[command(
    after_help = "Example:\n  ca-cli pkcs12 export --key hanako.key --cert hanako-chain.pem --out hanako.p12 --export-passphrase-file p12-pass"
)]
pub struct Pkcs12Export {
    /// The private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// Passphrase file for an encrypted key.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
    /// The certificate followed by its chain (PEM), as `request wait` saves it.
    #[arg(long)]
    pub cert: PathBuf,
    /// Passphrase file protecting the .p12.
    #[arg(long)]
    pub export_passphrase_file: PathBuf,
    /// Friendly name shown by browsers and Windows.
    #[arg(long, default_value = "Mamori")]
    pub name: String,
    /// Where to write the PKCS#12 file (mode 0600).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `pkcs12 export` (AES-256 + SHA-256 MAC, as current Windows and browsers accept).
pub fn pkcs12_export(args: Pkcs12Export) -> CliResult<()> {
    let key = load_key(&args.key, args.passphrase_file.as_deref())?;
    let pem =
        std::fs::read(&args.cert).with_context(|| format!("reading {}", args.cert.display()))?;
    let mut certs = openssl::x509::X509::stack_from_pem(&pem)
        .with_context(|| format!("parsing {}", args.cert.display()))?
        .into_iter();
    let leaf = certs.next().ok_or_else(|| {
        fail(
            exit::ERROR,
            format!("{} holds no certificate", args.cert.display()),
        )
    })?;
    if !leaf.public_key()?.public_eq(&key) {
        return Err(fail(
            exit::ERROR,
            "the certificate does not belong to this key",
        ));
    }
    let mut chain = openssl::stack::Stack::new()?;
    for c in certs {
        chain.push(c)?;
    }
    let pass = read_secret_file(&args.export_passphrase_file)?;
    let mut builder = openssl::pkcs12::Pkcs12::builder();
    builder.name(&args.name).pkey(&key).cert(&leaf).ca(chain);
    builder
        .key_algorithm(openssl::nid::Nid::AES_256_CBC)
        .cert_algorithm(openssl::nid::Nid::AES_256_CBC)
        .mac_md(openssl::hash::MessageDigest::sha256());
    let p12 = builder.build2(&pass)?;
    write_new_private(&args.out, &p12.to_der()?)?;
    out!("wrote {}", args.out.display());
    Ok(())
}
