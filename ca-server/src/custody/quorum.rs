//! k-of-n activation: the CA keys are encrypted under a random activation secret that nobody
//! holds whole; `ca-server quorum split` deals it to named custodians as sealed share files,
//! `ca-server serve` starts locked, and the server unlocks in memory when k distinct
//! custodians have each given their share (`ca-cli activate`). `ca-server quorum reshare`
//! deals a new secret to a new set of custodians from k current shares, re-encrypting the same
//! CA keys, so that the old shares open nothing.
//!
//! The CA passphrase keeps opening what it opened before (accounts' TOTP secrets, sessions,
//! OCSP responder keys, the audit key): a locked server signs people in and answers OCSP, but
//! holds no CA key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use ca_core::quorum::{self, SealedShare, Share};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use super::gate::GatedKey;
use crate::store::audit_log;
use crate::store::models::CaRow;
use crate::store::schema::{cas, settings, users};
use crate::store::settings::{put_setting, setting};
use crate::store::DbConnection;

/// The `settings` row holding the quorum.
pub const SETTING: &str = "quorum";

/// The `settings` row holding the PKCS#11 token's PIN sealed under the activation secret.
pub const PIN_SETTING: &str = "quorum_pkcs11_pin";

const PIN_LABEL: &[u8] = b"mamori quorum token pin v1";

/// The token PIN sealed under the quorum, if `split` sealed one.
pub fn sealed_pin(conn: &mut DbConnection) -> anyhow::Result<Option<String>> {
    setting(conn, PIN_SETTING)
}

fn seal_pin(secret: &[u8], pin: &str) -> anyhow::Result<String> {
    Ok(crate::secrets::DataKey::from_secret(secret, PIN_LABEL)?.seal_text(pin.as_bytes())?)
}

fn open_pin(secret: &[u8], sealed: &str) -> anyhow::Result<Zeroizing<String>> {
    let pin = crate::secrets::DataKey::from_secret(secret, PIN_LABEL)?
        .open_text(sealed)
        .context("the sealed token PIN is damaged")??;
    Ok(Zeroizing::new(
        String::from_utf8(pin.to_vec()).context("the token PIN")?,
    ))
}

/// The stored quorum: who holds which share of which set, how many open, and a commitment to
/// the secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Quorum {
    /// k.
    pub threshold: u8,
    /// The current share set.
    pub set: String,
    /// Custodian user names by share index.
    pub custodians: BTreeMap<u8, String>,
    /// [`quorum::commitment`] of the secret.
    pub commitment: String,
}

/// The stored quorum, if the CA keys are under one.
pub fn load(conn: &mut DbConnection) -> anyhow::Result<Option<Quorum>> {
    match setting(conn, SETTING)? {
        Some(text) => Ok(Some(
            serde_json::from_str(&text).context("the stored quorum")?,
        )),
        None => Ok(None),
    }
}

/// A custodian and the passphrase their share file is sealed to.
pub struct Custodian {
    /// User name (an existing account: activation signs in with TOTP).
    pub name: String,
    /// The passphrase that seals their share.
    pub passphrase: Zeroizing<String>,
}

/// Deals `secret` to `custodians` (k = `threshold`) as sealed share files in `out`; returns the
/// quorum to store and the files written.
fn deal(
    secret: &[u8],
    threshold: usize,
    custodians: &[Custodian],
    out: &Path,
) -> anyhow::Result<(Quorum, Vec<PathBuf>)> {
    let mut names = std::collections::BTreeSet::new();
    for c in custodians {
        if !names.insert(c.name.as_str()) {
            bail!(
                "custodian {} is named twice: each person holds one share",
                c.name
            );
        }
    }
    let shares = quorum::split(secret, threshold, custodians.len())?;
    let set = hex::encode(crate::secrets::random_bytes(8)?);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = Vec::new();
    let mut map = BTreeMap::new();
    for (share, custodian) in shares.iter().zip(custodians) {
        let sealed = SealedShare::seal(
            share,
            &set,
            &custodian.name,
            threshold as u8,
            &custodian.passphrase,
        )?;
        let path = out.join(format!("share-{}-{set}.json", custodian.name));
        write_private(&path, &serde_json::to_string_pretty(&sealed)?)?;
        files.push(path);
        map.insert(share.index, custodian.name.clone());
    }
    Ok((
        Quorum {
            threshold: threshold as u8,
            set,
            custodians: map,
            commitment: quorum::commitment(secret),
        },
        files,
    ))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Re-encrypts every software CA key from `old` to `new` passphrase in one transaction, with
/// the quorum row and its audit entry; token keys (`pkcs11:`) are left as they are.
#[allow(clippy::too_many_arguments)]
fn rekey(
    conn: &mut DbConnection,
    old: &str,
    new: &str,
    stored: &Quorum,
    sealed_pin: Option<String>,
    action: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    let rows: Vec<CaRow> = cas::table.select(CaRow::as_select()).load(conn)?;
    let mut rewritten = Vec::new();
    for row in &rows {
        if row.key_pem.starts_with(super::uri::SCHEME)
            || row.key_pem == super::offline_root::OFFLINE
        {
            continue;
        }
        let pkcs8 = ca_core::key::decrypt_pkcs8(row.key_pem.as_bytes(), old.as_bytes())
            .with_context(|| format!("opening the key of CA {}", row.id))?;
        let pem = ca_core::key::encrypt_pkcs8(&pkcs8, new.as_bytes(), &ca_core::random::OsRandom)?;
        rewritten.push((row.id.clone(), pem));
    }
    let now = ca_core::clock::Clock::now(&ca_core::clock::SystemClock).as_secs();
    crate::store::write_transaction::<_, anyhow::Error, _>(conn, |conn| {
        for (id, pem) in &rewritten {
            diesel::update(cas::table.find(id))
                .set(cas::key_pem.eq(pem))
                .execute(conn)?;
        }
        diesel::delete(settings::table.filter(settings::name.eq_any([SETTING, PIN_SETTING])))
            .execute(conn)?;
        put_setting(conn, SETTING, &serde_json::to_string(stored)?)?;
        if let Some(pin) = &sealed_pin {
            put_setting(conn, PIN_SETTING, pin)?;
        }
        audit_log::append(
            conn,
            now,
            "ca-server (local)",
            action,
            SETTING,
            detail.clone(),
        )?;
        Ok(())
    })
}

fn check_custodians(conn: &mut DbConnection, custodians: &[Custodian]) -> anyhow::Result<()> {
    for c in custodians {
        let found: i64 = users::table
            .filter(users::username.eq(&c.name))
            .count()
            .get_result(conn)?;
        if found == 0 {
            bail!(
                "custodian {} has no account: create it first (ca-server user add / ca-cli user add); \
                 activation signs the custodian in with TOTP",
                c.name
            );
        }
    }
    Ok(())
}

/// `ca-server quorum split`: puts the CA keys, now under the CA passphrase, under a new
/// activation secret dealt k-of-n to `custodians`; with a `token`, its PIN is sealed under the
/// secret too (the server then opens the token only at activation). Refuses when a quorum
/// exists (reshare).
pub fn split(
    conn: &mut DbConnection,
    passphrase: &str,
    threshold: usize,
    custodians: &[Custodian],
    out: &Path,
    token: Option<&crate::token_config::TokenConfig>,
) -> anyhow::Result<Vec<PathBuf>> {
    if load(conn)?.is_some() {
        bail!("the CA keys are already under a quorum; use ca-server quorum reshare");
    }
    crate::store::settings::unlock(conn, passphrase)?;
    check_custodians(conn, custodians)?;
    let secret = Zeroizing::new(crate::secrets::random_bytes(quorum::SECRET_LEN)?);
    let (stored, files) = deal(&secret, threshold, custodians, out)?;
    let sealed_pin = match token {
        Some(token) => Some(seal_pin(&secret, &token.pin()?)?),
        None => None,
    };
    rekey(
        conn,
        passphrase,
        &quorum::key_passphrase(&secret),
        &stored,
        sealed_pin,
        "quorum.split",
        json!({"threshold": threshold, "custodians": stored.custodians, "set": stored.set}),
    )?;
    Ok(files)
}

/// Opens share files with their custodians' passphrases and recovers the current secret,
/// checked against the stored commitment.
pub fn recover(
    stored: &Quorum,
    shares: &[(SealedShare, Zeroizing<String>)],
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut opened: Vec<Share> = Vec::new();
    for (sealed, passphrase) in shares {
        check_share(stored, sealed)?;
        opened.push(sealed.open(passphrase)?);
    }
    let secret = quorum::combine(&opened, stored.threshold as usize)?;
    if !quorum::matches(&secret, &stored.commitment) {
        bail!("the shares do not recover this server's activation secret");
    }
    Ok(secret)
}

/// Refuses a share of another set, or one whose index is not its custodian's.
pub fn check_share(stored: &Quorum, sealed: &SealedShare) -> anyhow::Result<()> {
    if sealed.set != stored.set {
        bail!(
            "share set {} is not the current one ({}): it was replaced by a reshare",
            sealed.set,
            stored.set
        );
    }
    if stored.custodians.get(&sealed.index) != Some(&sealed.custodian) {
        bail!(
            "share {} does not belong to {}",
            sealed.index,
            sealed.custodian
        );
    }
    Ok(())
}

/// `ca-server quorum reshare`: from k current shares, deals a new secret to `custodians` and
/// re-encrypts the same CA keys under it; the old shares open nothing afterwards.
pub fn reshare(
    conn: &mut DbConnection,
    passphrase: &str,
    shares: &[(SealedShare, Zeroizing<String>)],
    threshold: usize,
    custodians: &[Custodian],
    out: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    crate::store::settings::unlock(conn, passphrase)?;
    let stored = load(conn)?.context("the CA keys are not under a quorum; use split")?;
    let old = recover(&stored, shares)?;
    check_custodians(conn, custodians)?;
    let secret = Zeroizing::new(crate::secrets::random_bytes(quorum::SECRET_LEN)?);
    let (next, files) = deal(&secret, threshold, custodians, out)?;
    let sealed_pin = match sealed_pin(conn)? {
        Some(sealed) => Some(seal_pin(&secret, &open_pin(&old, &sealed)?)?),
        None => None,
    };
    rekey(
        conn,
        &quorum::key_passphrase(&old),
        &quorum::key_passphrase(&secret),
        &next,
        sealed_pin,
        "quorum.reshare",
        json!({"threshold": threshold, "custodians": next.custodians, "set": next.set, "replaced_set": stored.set}),
    )?;
    Ok(files)
}

/// A locked server's state: the empty key slots, and the shares given so far (in memory
/// only; a restart starts over).
pub struct Activation {
    quorum: Quorum,
    gates: Vec<(String, String, Arc<GatedKey>)>,
    given: Mutex<BTreeMap<u8, Share>>,
    custody: Arc<super::keys::Custody>,
    sealed_pin: Option<String>,
}

/// Where an activation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Distinct shares given.
    pub given: usize,
    /// Shares needed.
    pub threshold: usize,
    /// Whether the CA keys are open.
    pub unlocked: bool,
}

impl Activation {
    /// The state of a server whose CAs wait for `quorum`: (CA id, stored key, slot) each; the
    /// token (`custody`) opens with `sealed_pin` once the secret is recovered.
    pub fn new(
        quorum: Quorum,
        gates: Vec<(String, String, Arc<GatedKey>)>,
        custody: Arc<super::keys::Custody>,
        sealed_pin: Option<String>,
    ) -> Activation {
        Activation {
            quorum,
            gates,
            given: Mutex::new(BTreeMap::new()),
            custody,
            sealed_pin,
        }
    }

    /// The stored quorum.
    pub fn quorum(&self) -> &Quorum {
        &self.quorum
    }

    /// Whether every CA key is open.
    pub fn unlocked(&self) -> bool {
        self.gates.iter().all(|(_, _, g)| g.is_open())
    }

    /// Where it stands.
    pub fn progress(&self) -> Progress {
        let given = self.given.lock().map(|g| g.len()).unwrap_or(0);
        Progress {
            given: if self.unlocked() {
                self.quorum.threshold as usize
            } else {
                given
            },
            threshold: self.quorum.threshold as usize,
            unlocked: self.unlocked(),
        }
    }

    /// Takes `custodian`'s share (already checked to be theirs and of this set); with k
    /// distinct shares, recovers the secret, checks it and opens every CA key. A share given
    /// again counts once. Returns whether this share was new.
    pub fn give(&self, custodian: &str, share: Share) -> anyhow::Result<bool> {
        if self.quorum.custodians.get(&share.index).map(String::as_str) != Some(custodian) {
            bail!("share {} does not belong to {custodian}", share.index);
        }
        let mut given = self
            .given
            .lock()
            .map_err(|_| anyhow::anyhow!("activation state poisoned"))?;
        if self.unlocked() || given.contains_key(&share.index) {
            return Ok(false);
        }
        given.insert(share.index, share);
        if given.len() < self.quorum.threshold as usize {
            return Ok(true);
        }
        let shares: Vec<Share> = std::mem::take(&mut *given).into_values().collect();
        let secret = quorum::combine(&shares, self.quorum.threshold as usize)?;
        if !quorum::matches(&secret, &self.quorum.commitment) {
            bail!("the shares given do not recover the activation secret; give them again");
        }
        let passphrase = quorum::key_passphrase(&secret);
        if let Some(sealed) = &self.sealed_pin {
            self.custody
                .open_with_pin(&open_pin(&secret, sealed)?)
                .context("opening the PKCS#11 token with the PIN the quorum sealed")?;
        }
        for (id, stored, gate) in &self.gates {
            let key = self
                .custody
                .load(stored, &passphrase)
                .with_context(|| format!("opening the key of CA {id}"))?;
            gate.fill(key).map_err(anyhow::Error::msg)?;
        }
        Ok(true)
    }
}

/// Reads a custodian's share passphrase: from `file` (first line, mode 0600), or typed at a
/// prompt naming the custodian, twice when `confirm`.
pub fn custodian_passphrase(
    name: &str,
    file: Option<&Path>,
    confirm: bool,
) -> anyhow::Result<Zeroizing<String>> {
    let passphrase = match file {
        Some(path) => crate::secrets::read_passphrase(
            &crate::secrets::PassphraseSource::File(path.into()),
            false,
        )
        .with_context(|| format!("{name}'s share passphrase"))?,
        None => {
            let first = Zeroizing::new(rpassword::prompt_password(format!(
                "{name}: share passphrase / 分割鍵のパスフレーズ: "
            ))?);
            if confirm {
                let second = Zeroizing::new(rpassword::prompt_password(format!(
                    "{name}: repeat / 再入力: "
                ))?);
                if first != second {
                    bail!("{name}: the two passphrases differ");
                }
            }
            first
        }
    };
    if passphrase.chars().count() < 12 {
        bail!("{name}: a share passphrase needs at least 12 characters");
    }
    Ok(passphrase)
}

/// Parses `name` or `name=passphrase-file` (a `--custodian` argument) and reads the passphrase.
pub fn parse_custodian(arg: &str) -> anyhow::Result<Custodian> {
    let (name, file) = match arg.split_once('=') {
        Some((name, file)) => (name, Some(Path::new(file))),
        None => (arg, None),
    };
    if name.is_empty() {
        bail!("--custodian needs a user name (name or name=passphrase-file)");
    }
    Ok(Custodian {
        name: name.to_string(),
        passphrase: custodian_passphrase(name, file, true)?,
    })
}

/// Parses every `--custodian` argument (see [`parse_custodian`]).
pub fn parse_custodians(args: &[String]) -> anyhow::Result<Vec<Custodian>> {
    args.iter().map(|c| parse_custodian(c)).collect()
}

/// Parses `share-file` or `share-file=passphrase-file` (a `--share` argument): the sealed
/// share and its custodian's passphrase.
pub fn parse_share(arg: &str) -> anyhow::Result<(SealedShare, Zeroizing<String>)> {
    let (share, file) = match arg.split_once('=') {
        Some((share, file)) => (share, Some(Path::new(file))),
        None => (arg, None),
    };
    let text = std::fs::read_to_string(share).with_context(|| format!("reading {share}"))?;
    let sealed: SealedShare =
        serde_json::from_str(&text).with_context(|| format!("{share} is not a share file"))?;
    let passphrase = custodian_passphrase(&sealed.custodian, file, false)?;
    Ok((sealed, passphrase))
}
