//! `pkcs12 export`: a key and its chain bundled for browsers and Windows.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::client::{exit, fail, read_secret_file, CliResult};

use super::key::{load_key, write_new_private};

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
