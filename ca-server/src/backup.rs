//! `ca-server backup` and `ca-server restore`: a consistent, encrypted snapshot of everything a
//! CA needs to come back — the database (CA and responder keys inside it stay encrypted), the
//! configuration file, and the root certificate — taken while the server runs.
//!
//! Consistency comes from the database: SQLite writes the snapshot with `VACUUM INTO` (one read
//! transaction), PostgreSQL with `pg_dump` (one snapshot). The bundle is sealed with AES-256-GCM
//! under a key derived (scrypt) from the CA passphrase and a fresh salt, so a stolen backup
//! reveals nothing without the passphrase.
//!
//! After a restore nothing that may already have been published is reused: cRLNumbers never fall
//! below the current time in milliseconds (see `crl`), the restore raises every CA's
//! sequence to that floor and drops the backup's CRLs so that fresh ones are published at the next
//! start; serials carry 72 random bits (126 for CA certificates), checked unique per CA.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use base64::Engine;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use crate::bootstrap;
use crate::config::Config;
use crate::secrets::{random_bytes, DataKey};
use crate::store::schema::{crl_sequences, published_crl_chunks, published_crls, sessions, users};

/// First bytes of every backup file.
const MAGIC: &[u8] = b"MAMORI-BACKUP-1\n";
const SALT_LEN: usize = 16;

/// What a backup holds (before sealing).
#[derive(Serialize, Deserialize)]
struct Bundle {
    /// Unix seconds when it was taken.
    created_at: u64,
    /// `sqlite` or `postgres`.
    backend: String,
    /// SQLite database file, or `pg_dump --format=custom` output (base64).
    database: String,
    /// Other files by name (base64): the configuration file and `root-ca.pem`.
    files: Vec<(String, String)>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Checks the passphrase against the database before anything is written with it.
fn check_passphrase(config: &Config, passphrase: &str) -> anyhow::Result<()> {
    let pool = bootstrap::open_pool(config)?;
    let mut conn = pool.get()?;
    crate::store::settings::unlock(&mut conn, passphrase)?;
    Ok(())
}

/// Writes an encrypted snapshot to `out` (mode 0600) while the server may be running.
pub fn backup(
    config: &Config,
    config_file: Option<&Path>,
    passphrase: &str,
    out: &Path,
) -> anyhow::Result<()> {
    check_passphrase(config, passphrase)?;
    let url = config.database_url();
    let staging = tempfile::tempdir().context("creating a staging folder")?;
    let (backend, database) = if let Some(path) = url.strip_prefix("sqlite://") {
        let snapshot = staging.path().join("snapshot.db");
        let conn =
            diesel::SqliteConnection::establish(path).with_context(|| format!("opening {path}"))?;
        let mut conn = conn;
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = 10000; VACUUM INTO '{}'",
            snapshot.display().to_string().replace('\'', "''")
        ))
        .context("writing the SQLite snapshot")?;
        ("sqlite", std::fs::read(&snapshot)?)
    } else {
        let output = Command::new("pg_dump")
            .args(["--format=custom", "--no-owner", "--dbname"])
            .arg(&url)
            .output()
            .context("running pg_dump (install postgresql-client)")?;
        if !output.status.success() {
            bail!(
                "pg_dump failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        ("postgres", output.stdout)
    };
    let mut files = Vec::new();
    if let Some(path) = config_file {
        files.push((
            "config.toml".to_string(),
            b64().encode(
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            ),
        ));
    }
    let root = config.data_dir.join("root-ca.pem");
    if root.exists() {
        files.push((
            "root-ca.pem".to_string(),
            b64().encode(std::fs::read(&root)?),
        ));
    }
    let bundle = Zeroizing::new(serde_json::to_vec(&Bundle {
        created_at: ca_core::time::UnixTime::now().as_secs(),
        backend: backend.to_string(),
        database: b64().encode(&database),
        files,
    })?);
    drop(database);
    let salt = random_bytes(SALT_LEN)?;
    let sealed = DataKey::derive(passphrase, &salt)?.seal(&bundle)?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + SALT_LEN + sealed.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&salt);
    bytes.extend_from_slice(&sealed);
    let partial = out.with_extension("partial");
    bootstrap::write_private(&partial, &bytes)?;
    std::fs::rename(&partial, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// Opens a backup file with the passphrase.
fn open_bundle(file: &Path, passphrase: &str) -> anyhow::Result<Bundle> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        bail!("{} is not a Mamori backup", file.display());
    };
    if rest.len() <= SALT_LEN {
        bail!("{} is truncated", file.display());
    }
    let (salt, sealed) = rest.split_at(SALT_LEN);
    let plain = DataKey::derive(passphrase, salt)?
        .open(sealed)
        .map_err(|_| anyhow::anyhow!("wrong passphrase, or the backup was altered"))?;
    serde_json::from_slice(&plain).context("the backup's contents are damaged")
}

/// Restores a backup into the configured database (the server must be stopped), writes the
/// files it holds next to where they belong, raises every cRLNumber sequence to the current
/// time, ends every session the backup held and refuses every TOTP code up to the next step (a
/// code used after the backup was taken must not be accepted again), and records the restore in
/// the audit chain. Returns where each file went.
pub fn restore(config: &Config, passphrase: &str, file: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let bundle = open_bundle(file, passphrase)?;
    let database = Zeroizing::new(
        b64()
            .decode(&bundle.database)
            .context("the backup's database is damaged")?,
    );
    let url = config.database_url();
    match (bundle.backend.as_str(), url.strip_prefix("sqlite://")) {
        ("sqlite", Some(path)) => {
            let path = PathBuf::from(path);
            let partial = path.with_extension("restoring");
            bootstrap::write_private(&partial, &database)?;
            for suffix in ["-wal", "-shm"] {
                let side = PathBuf::from(format!("{}{suffix}", path.display()));
                if side.exists() {
                    std::fs::remove_file(&side)
                        .with_context(|| format!("removing {}", side.display()))?;
                }
            }
            std::fs::rename(&partial, &path)
                .with_context(|| format!("replacing {}", path.display()))?;
        }
        ("postgres", None) => {
            let staging = tempfile::tempdir()?;
            let dump = staging.path().join("dump");
            std::fs::write(&dump, &*database)?;
            let output = Command::new("pg_restore")
                .args([
                    "--clean",
                    "--if-exists",
                    "--no-owner",
                    "--single-transaction",
                    "--dbname",
                ])
                .arg(&url)
                .arg(&dump)
                .output()
                .context("running pg_restore (install postgresql-client)")?;
            if !output.status.success() {
                bail!(
                    "pg_restore failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
        }
        (taken, _) => bail!(
            "this backup holds a {taken} database; the configured database_url is {}",
            if url.starts_with("sqlite://") {
                "SQLite"
            } else {
                "PostgreSQL"
            }
        ),
    }
    let mut written = Vec::new();
    for (name, content) in &bundle.files {
        let target = match name.as_str() {
            "root-ca.pem" => config.data_dir.join("root-ca.pem"),
            "config.toml" => config.data_dir.join("restored-config.toml"),
            _ => continue,
        };
        bootstrap::ensure_data_dir(&config.data_dir)?;
        let bytes = b64()
            .decode(content)
            .context("a file in the backup is damaged")?;
        bootstrap::write_private(&target, &bytes)?;
        written.push(target);
    }
    let pool = bootstrap::open_pool(config)?;
    let mut conn = pool.get()?;
    crate::store::settings::unlock(&mut conn, passphrase)?;
    let now_ms = crate::store::now_ms();
    crate::store::write_transaction::<_, anyhow::Error, _>(&mut conn, |conn| {
        diesel::update(crl_sequences::table.filter(crl_sequences::last_number.lt(now_ms)))
            .set(crl_sequences::last_number.eq(now_ms))
            .execute(conn)?;
        // The CRLs in the backup are older than some already published: the next start
        // publishes fresh ones, numbered above everything before.
        diesel::delete(published_crl_chunks::table).execute(conn)?;
        diesel::delete(published_crls::table).execute(conn)?;
        // The backup's sessions and last-used TOTP steps are older than the ones in use when it
        // was restored: every session ends, and the server accepts one step of drift, so codes
        // are refused through the step after the current one (users log in again within 30 s).
        let sessions_ended = diesel::delete(sessions::table).execute(conn)?;
        let step = (now_ms.max(0) as u64 / 1000 / ca_core::totp::STEP_SECS + 1) as i64;
        diesel::update(users::table.filter(users::last_totp_step.lt(step)))
            .set(users::last_totp_step.eq(step))
            .execute(conn)?;
        crate::store::audit_log::append(
            conn,
            now_ms as u64 / 1000,
            "system",
            "backup.restore",
            &file.display().to_string(),
            json!({
                "taken_at": bundle.created_at,
                "backend": bundle.backend,
                "sessions_ended": sessions_ended,
                "totp_steps_refused_through": step,
            }),
        )?;
        Ok(())
    })?;
    Ok(written)
}
