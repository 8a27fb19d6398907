//! `ca-server user add|reset`: accounts made on the server itself, with the CA passphrase — the
//! first admins after `ca-server init`, and the way back in when no admin is left to ask or
//! approve through the API. Whoever holds the CA passphrase and the host can sign anything with
//! the CA key already, so this path adds no power; it is audited as `ca-server (local)`. The
//! account's holder still sets their own password and TOTP secret with the whole enrolment code
//! printed here (`ca-cli enrol`).

use anyhow::{bail, Context};
use ca_core::clock::{Clock, SystemClock};
use serde_json::json;

use super::policy::AccountPolicy;
use super::{parse_role_list, roles_text};
use crate::accounts::enrolment;
use crate::config::Config;
use crate::store::account_rows::AccountRows;
use crate::store::audit_log;
use crate::store::directory_rows::DirectoryRows;
use crate::store::models::DirectoryAccountRow;
use crate::store::settings::unlock;

/// The audit actor of local account commands.
const ACTOR: &str = "ca-server (local)";

/// What a local command hands back: the whole enrolment code and until when it works.
#[derive(Debug)]
pub struct LocalEnrolment {
    /// Both halves, `XXXXX-XXXXX-XXXXX-XXXXX`.
    pub code: String,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
}

fn whole_code() -> anyhow::Result<(String, String)> {
    let (first, second) = (enrolment::new_half()?, enrolment::new_half()?);
    let stored = enrolment::stored_hash(&enrolment::half_hash(&first), &second);
    Ok((format!("{first}-{second}"), stored))
}

/// Creates an account waiting for enrolment; with `directory`, one whose password the
/// directory of `[directory]` checks.
pub fn add_user_locally(
    config: &Config,
    passphrase: &str,
    username: &str,
    roles: &[String],
    registered: (Option<String>, Option<String>),
    directory: bool,
) -> anyhow::Result<LocalEnrolment> {
    crate::accounts::credentials::check_username(username).map_err(anyhow::Error::msg)?;
    let roles = parse_role_list(roles).map_err(|e| anyhow::anyhow!("{e}"))?;
    if roles.is_empty() {
        bail!("a user needs at least one role");
    }
    if directory && config.directory.is_none() {
        bail!("directory accounts need [directory] in the configuration");
    }
    let policy = AccountPolicy::load(&config.policies_dir)?;
    let pool = crate::store::open(&config.database_url(), 2)?;
    let mut conn = pool.get()?;
    let data_key = unlock(&mut conn, passphrase)?;
    let now = SystemClock.now().as_secs() as i64;
    let (code, stored) = whole_code()?;
    let expires_at = now + policy.enrolment_validity_secs as i64;
    let row = enrolment::enrolling_user_row(
        &data_key,
        &ca_core::random::OsRandom,
        username,
        &roles,
        registered,
        now,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::store::write_transaction::<_, anyhow::Error, _>(&mut conn, |conn| {
        if conn.user_by_name(username)?.is_some() {
            bail!("user {username} already exists");
        }
        conn.insert_user(&row)?;
        if directory {
            conn.insert_directory_account(&DirectoryAccountRow {
                user_id: row.id.clone(),
                dn: None,
                roles: None,
                checked_at: 0,
            })?;
        }
        enrolment::start_enrolment(conn, &row.id, &stored, expires_at)?;
        audit_log::append(
            conn,
            now as u64,
            ACTOR,
            "user.create",
            username,
            json!({"local": true, "roles": roles_text(&roles), "organization": row.organization, "email_domain": row.email_domain, "directory": directory}),
        )?;
        Ok(())
    })?;
    Ok(LocalEnrolment { code, expires_at })
}

/// Puts an existing account into enrolment (new password and TOTP secret by its holder).
pub fn reset_user_locally(
    config: &Config,
    passphrase: &str,
    username: &str,
) -> anyhow::Result<LocalEnrolment> {
    let policy = AccountPolicy::load(&config.policies_dir)?;
    let pool = crate::store::open(&config.database_url(), 2)?;
    let mut conn = pool.get()?;
    unlock(&mut conn, passphrase)?;
    let now = SystemClock.now().as_secs() as i64;
    let (code, stored) = whole_code()?;
    let expires_at = now + policy.enrolment_validity_secs as i64;
    crate::store::write_transaction::<_, anyhow::Error, _>(&mut conn, |conn| {
        let id = conn
            .user_by_name(username)?
            .with_context(|| format!("no user {username}"))?
            .id;
        enrolment::start_enrolment(conn, &id, &stored, expires_at)?;
        audit_log::append(
            conn,
            now as u64,
            ACTOR,
            "user.reset",
            username,
            json!({"local": true}),
        )?;
        Ok(())
    })?;
    Ok(LocalEnrolment { code, expires_at })
}
