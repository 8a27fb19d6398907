//! The offline root's ceremony (`ca-server ceremony --script ceremony.toml`), run on a machine
//! that is never on the network: it creates the root (key in an encrypted file or a token) once,
//! signs the online side's issuing-CA and root-OCSP-responder requests, revokes CA certificates
//! the script names, issues the root's CRL, and writes what the online server imports plus a
//! transcript with the SHA-256 of every input and output. Re-run with the same vault for each
//! root CRL renewal or responder renewal; cRLNumbers only grow (kept in the vault's state).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use ca_core::ca::{self, CaSpec, CertificateAuthority, NameConstraintSpec};
use ca_core::clock::{Clock, SystemClock};
use ca_core::crl::{CrlParams, RevocationReason, RevokedEntry};
use ca_core::csr::VerifiedCsr;
use ca_core::issuance::{IssuanceOptions, PreparedIssuance};
use ca_core::key::{KeyAlgorithm, SoftwareKey};
use ca_core::name::{build_name, AttributeKind};
use ca_core::random::OsRandom;
use ca_core::serial::{parse_serial_hex, serial_hex};
use ca_core::signer::SigningKey;
use ca_core::time::UnixTime;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::gate::GatedKey;
use super::keys::Custody;
use crate::token_config::TokenConfig;

/// The root's CA id, as the online server names it.
pub const ROOT_ID: &str = "root";

/// A ceremony script.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// The vault: the root's key (or its token URI), certificate and state. Relative paths are
    /// from the script's folder.
    pub vault: PathBuf,
    /// Where the files for the online server go.
    pub out: PathBuf,
    /// The online server's `public_url` (CRL, OCSP and caIssuers URLs in what the root signs).
    pub public_url: String,
    /// The policies folder (for the `ocsp-responder` profile).
    #[serde(default = "default_policies")]
    pub policies_dir: PathBuf,
    /// Create the root (refused when the vault already has one).
    pub root: Option<RootSpec>,
    /// Keep the root's key in this PKCS#11 token instead of an encrypted file.
    pub pkcs11: Option<TokenConfig>,
    /// Issuing-CA requests to sign.
    #[serde(default)]
    pub sign_ca: Vec<SignCa>,
    /// Root OCSP responder requests to sign.
    #[serde(default)]
    pub sign_responder: Vec<SignResponder>,
    /// CA certificates to revoke.
    #[serde(default)]
    pub revoke: Vec<Revoke>,
    /// The root CRL.
    #[serde(default)]
    pub crl: CrlSpec,
}

fn default_policies() -> PathBuf {
    PathBuf::from("policies")
}

/// The root to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootSpec {
    /// O.
    pub organization: String,
    /// C.
    pub country: String,
    /// CN.
    pub name: String,
    /// `ecdsa-p256` or `ecdsa-p384`.
    #[serde(default)]
    pub key_algorithm: KeyAlgorithm,
    /// Validity in days.
    pub validity_days: u64,
}

/// An issuing CA's request (`ca-server init --issuing-csr`) to sign.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignCa {
    /// The CSR file.
    pub csr: PathBuf,
    /// Validity in days (within the root's).
    pub validity_days: u64,
    /// Permitted DNS name constraints.
    #[serde(default)]
    pub permitted_dns: Vec<String>,
    /// Permitted e-mail domain constraints.
    #[serde(default)]
    pub permitted_email: Vec<String>,
}

/// The root's delegated OCSP responder request to sign.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignResponder {
    /// The CSR file.
    pub csr: PathBuf,
    /// Validity in days (the online server answers for the root's certificates until then).
    pub validity_days: u64,
}

/// A CA certificate to revoke.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    /// Its serial (hex).
    pub serial: String,
    /// RFC 5280 reason name, e.g. `keyCompromise`, `cACompromise`, `superseded`.
    pub reason: String,
}

/// The root CRL.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlSpec {
    /// nextUpdate, days after the ceremony.
    pub validity_days: u64,
}

impl Default for CrlSpec {
    fn default() -> Self {
        CrlSpec { validity_days: 180 }
    }
}

/// What the vault remembers between ceremonies.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    crl_number: u64,
    issued: Vec<Issued>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Issued {
    serial: String,
    subject: String,
    kind: String,
    not_after: u64,
    revoked_at: Option<u64>,
    reason: Option<String>,
}

/// The transcript of one ceremony: every step with the hashes of what it read and wrote.
struct Transcript {
    lines: Vec<String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Transcript {
    fn step(&mut self, what: &str) {
        self.lines.push(format!("- {what}"));
    }
    fn file(&mut self, role: &str, path: &Path, bytes: &[u8]) {
        self.lines.push(format!(
            "  {role}: {} sha256={}",
            path.display(),
            sha256_hex(bytes)
        ));
    }
}

fn write_file(path: &Path, bytes: &[u8], private: bool) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(if private { 0o600 } else { 0o644 });
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

fn read_pem_or_der(path: &Path, label: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.starts_with(b"-----BEGIN") {
        let text = String::from_utf8(bytes).context("PEM is not UTF-8")?;
        let (found, der) = der::pem::decode_vec(text.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if found != label {
            bail!("{}: a {found}, not a {label}", path.display());
        }
        Ok(der)
    } else {
        Ok(bytes)
    }
}

/// Whether the ceremony `script_path` keeps the root's key in a token (its `[pkcs11]` table):
/// then it needs the token's PIN, not a vault passphrase.
pub fn uses_token(script_path: &Path) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(script_path)
        .with_context(|| format!("reading {}", script_path.display()))?;
    let script: Script = toml::from_str(&text)
        .with_context(|| format!("{} is not a ceremony script", script_path.display()))?;
    Ok(script.pkcs11.is_some())
}

/// Runs the ceremony `script_path` with the root's `passphrase` (unused when the root's key is
/// in a token); returns the transcript's path.
pub fn run(script_path: &Path, passphrase: &str) -> anyhow::Result<PathBuf> {
    let text =
        std::fs::read(script_path).with_context(|| format!("reading {}", script_path.display()))?;
    let script: Script = toml::from_str(std::str::from_utf8(&text)?)
        .with_context(|| format!("{} is not a ceremony script", script_path.display()))?;
    let base = script_path.parent().unwrap_or(Path::new("."));
    let at = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let (vault, out) = (at(&script.vault), at(&script.out));
    std::fs::create_dir_all(&vault)?;
    std::fs::create_dir_all(&out)?;
    let now = SystemClock.now();
    let mut t = Transcript { lines: Vec::new() };
    t.lines.push(format!(
        "Mamori offline root ceremony, {}",
        now.to_rfc3339()
    ));
    t.file("script", script_path, &text);

    let custody = Custody::new(script.pkcs11.clone());
    let root_pem_path = vault.join("root-ca.pem");
    let root = if root_pem_path.exists() {
        if script.root.is_some() {
            bail!("the vault already holds a root; remove [root] from the script to use it");
        }
        let pem = std::fs::read(&root_pem_path)?;
        let der = read_pem_or_der(&root_pem_path, "CERTIFICATE")?;
        let key_ref = match std::fs::read_to_string(vault.join("root-key.uri")) {
            Ok(uri) => uri.trim().to_string(),
            Err(_) => std::fs::read_to_string(vault.join("root-key.pem"))
                .context("the vault has no root-key.pem or root-key.uri")?,
        };
        let key = custody
            .load(&key_ref, passphrase)
            .context("opening the root's key (the vault's passphrase, or the token)")?;
        t.step("opened the root");
        t.file("root certificate", &root_pem_path, &pem);
        CertificateAuthority::new(ROOT_ID, &der, key, Some(script.public_url.clone()))?
    } else {
        let spec = script
            .root
            .as_ref()
            .context("the vault holds no root: add a [root] table to create one")?;
        let key: Arc<dyn SigningKey> = if custody.has_token() {
            let key = custody.generate("mamori-root", spec.key_algorithm)?;
            let uri = key.uri().to_string();
            write_file(&vault.join("root-key.uri"), uri.as_bytes(), false)?;
            t.step(&format!("generated the root's key in the token: {uri}"));
            Arc::new(key)
        } else {
            let (key, pem) = SoftwareKey::generate_encrypted(
                spec.key_algorithm,
                passphrase.as_bytes(),
                &OsRandom,
            )?;
            write_file(&vault.join("root-key.pem"), pem.as_bytes(), true)?;
            t.step("generated the root's key (PKCS#8, encrypted under the vault passphrase)");
            t.file(
                "root key (encrypted)",
                &vault.join("root-key.pem"),
                pem.as_bytes(),
            );
            Arc::new(key)
        };
        let subject = build_name(&[
            (AttributeKind::C, spec.country.clone()),
            (AttributeKind::O, spec.organization.clone()),
            (AttributeKind::CN, spec.name.clone()),
        ])
        .map_err(anyhow::Error::msg)?;
        let root = ca::create_root(
            &CaSpec {
                id: ROOT_ID.into(),
                subject,
                validity_secs: spec.validity_days * 86_400,
                path_len: Some(1),
                name_constraints: None,
            },
            key,
            Some(script.public_url.clone()),
            &SystemClock,
            &OsRandom,
        )?;
        write_file(&root_pem_path, root.certificate_pem().as_bytes(), false)?;
        t.step("created the root certificate");
        t.file(
            "root certificate",
            &root_pem_path,
            root.certificate_pem().as_bytes(),
        );
        root
    };
    t.lines.push(format!(
        "  root: {} sha256-fingerprint={}",
        root.subject(),
        sha256_hex(root.certificate_der())
    ));
    let state_path = vault.join("state.json");
    let mut state: State = match std::fs::read(&state_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).context("the vault's state.json")?,
        Err(_) => State::default(),
    };

    for (n, request) in script.sign_ca.iter().enumerate() {
        let csr_path = at(&request.csr);
        let csr_der = read_pem_or_der(&csr_path, "CERTIFICATE REQUEST")?;
        let csr = VerifiedCsr::parse(&csr_der, 2048).context("the issuing CA's request")?;
        t.step(&format!("signed issuing CA request {}", n + 1));
        t.file("request", &csr_path, &csr_der);
        let constraints = (!request.permitted_dns.is_empty()
            || !request.permitted_email.is_empty())
        .then(|| NameConstraintSpec {
            permitted_dns: request.permitted_dns.clone(),
            permitted_email: request.permitted_email.clone(),
        });
        let public_only =
            Arc::new(GatedKey::new(csr.public_key().clone()).map_err(anyhow::Error::msg)?);
        let issued = ca::create_issuing(
            &CaSpec {
                id: "issuing".into(),
                subject: csr.subject().clone(),
                validity_secs: request.validity_days * 86_400,
                path_len: Some(0),
                name_constraints: constraints,
            },
            public_only,
            &root,
            Some(script.public_url.clone()),
            &SystemClock,
            &OsRandom,
        )?;
        let path = out.join(format!("issuing-{}.pem", n + 1));
        write_file(&path, issued.certificate_pem().as_bytes(), false)?;
        t.file(
            "issuing CA certificate",
            &path,
            issued.certificate_pem().as_bytes(),
        );
        let tbs = &issued.certificate().tbs_certificate;
        state.issued.push(Issued {
            serial: serial_hex(&tbs.serial_number),
            subject: tbs.subject.to_string(),
            kind: "issuing-ca".into(),
            not_after: issued.not_after().as_secs(),
            revoked_at: None,
            reason: None,
        });
    }

    for (n, request) in script.sign_responder.iter().enumerate() {
        let csr_path = at(&request.csr);
        let csr_der = read_pem_or_der(&csr_path, "CERTIFICATE REQUEST")?;
        let csr = VerifiedCsr::parse(&csr_der, 2048).context("the responder's request")?;
        let profile = responder_profile(&at(&script.policies_dir), request.validity_days)?;
        let prepared = PreparedIssuance::prepare(
            &root,
            &profile,
            &csr,
            &IssuanceOptions::default(),
            &SystemClock,
            &OsRandom,
        )?;
        let issued = prepared.sign(&root)?;
        let pem = ca::pem(&issued.der);
        let path = out.join(format!("root-ocsp-{}.pem", n + 1));
        write_file(&path, pem.as_bytes(), false)?;
        t.step(&format!("signed root OCSP responder request {}", n + 1));
        t.file("request", &csr_path, &csr_der);
        t.file("responder certificate", &path, pem.as_bytes());
        state.issued.push(Issued {
            serial: serial_hex(&issued.serial),
            subject: issued.subject.clone(),
            kind: "ocsp-responder".into(),
            not_after: issued.not_after.as_secs(),
            revoked_at: None,
            reason: None,
        });
    }

    for revoke in &script.revoke {
        let reason = RevocationReason::parse(&revoke.reason)
            .with_context(|| format!("unknown revocation reason {:?}", revoke.reason))?;
        let wanted = revoke.serial.trim_start_matches('0').to_ascii_lowercase();
        let entry = state
            .issued
            .iter_mut()
            .find(|i| i.serial.trim_start_matches('0').to_ascii_lowercase() == wanted)
            .with_context(|| format!("the root never issued serial {}", revoke.serial))?;
        if entry.revoked_at.is_none() {
            entry.revoked_at = Some(now.as_secs());
            entry.reason = Some(reason.as_str().to_string());
            t.step(&format!(
                "revoked {} ({}) for {}",
                entry.serial,
                entry.subject,
                reason.as_str()
            ));
        }
    }

    // The root CRL: every revoked certificate the root issued, a cRLNumber above every earlier
    // one (and never below the time in milliseconds, like the online CAs').
    let number = (state.crl_number + 1).max(now.as_secs() * 1000);
    let mut entries = Vec::new();
    for issued in state.issued.iter().filter(|i| i.revoked_at.is_some()) {
        entries.push(RevokedEntry {
            serial: parse_serial_hex(&issued.serial).context("a serial in state.json")?,
            revoked_at: UnixTime(issued.revoked_at.unwrap_or_default()),
            reason: issued
                .reason
                .as_deref()
                .and_then(RevocationReason::parse)
                .unwrap_or(RevocationReason::Unspecified),
            invalidity_date: None,
        });
    }
    let crl = ca_core::crl::build_crl(
        &root,
        &CrlParams {
            this_update: now,
            next_update: now.plus(script.crl.validity_days * 86_400),
            crl_number: number,
            issuing_distribution_point: None,
            delta_base: None,
            freshest_crl: None,
        },
        &entries,
    )?;
    state.crl_number = number;
    let crl_path = out.join("root.crl");
    write_file(&crl_path, &crl, false)?;
    t.step(&format!(
        "issued the root CRL: cRLNumber {number}, {} revoked, nextUpdate {}",
        entries.len(),
        now.plus(script.crl.validity_days * 86_400).to_rfc3339()
    ));
    t.file("root CRL", &crl_path, &crl);
    let root_out = out.join("root-ca.pem");
    write_file(&root_out, root.certificate_pem().as_bytes(), false)?;
    t.file(
        "root certificate (copy)",
        &root_out,
        root.certificate_pem().as_bytes(),
    );
    let state_json = serde_json::to_vec_pretty(&state)?;
    write_file(&state_path, &state_json, false)?;
    t.file("vault state", &state_path, &state_json);

    let transcript = t.lines.join("\n") + "\n";
    let name = format!("transcript-{}.txt", now.as_secs());
    let path = out.join(&name);
    write_file(&path, transcript.as_bytes(), false)?;
    let mut log = std::fs::read(vault.join("transcripts.log")).unwrap_or_default();
    log.extend_from_slice(transcript.as_bytes());
    write_file(&vault.join("transcripts.log"), &log, false)?;
    Ok(path)
}

/// The `ocsp-responder` profile for the root, with the validity the ceremony asks for (an
/// offline root's responder cannot be renewed every few days).
fn responder_profile(policies: &Path, days: u64) -> anyhow::Result<ca_core::profile::Profile> {
    let path = policies.join("ocsp-responder.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut value: toml::Value = toml::from_str(&text)?;
    let validity = value
        .get_mut("validity")
        .and_then(|v| v.as_table_mut())
        .context("the ocsp-responder profile has no [validity]")?;
    validity.insert("default".into(), toml::Value::String(format!("{days}d")));
    validity.insert("max".into(), toml::Value::String(format!("{days}d")));
    let text = toml::to_string(&value)?;
    Ok(
        ca_core::profile::Profile::from_toml(&path.display().to_string(), &text)?
            .for_issuer(ROOT_ID),
    )
}
