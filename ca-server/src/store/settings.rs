//! The `settings` table: the KDF salt and key check, the audit key, the API certificate; and
//! unlocking the data key with the CA passphrase against them.

use anyhow::Context;
use diesel::prelude::*;

use super::models::SettingRow;
use super::schema::*;
use super::DbConnection;
use crate::secrets::{DataKey, DerivedKeys};

/// One stored setting.
pub fn setting(conn: &mut DbConnection, name: &str) -> anyhow::Result<Option<String>> {
    Ok(settings::table
        .find(name)
        .select(settings::value)
        .first(conn)
        .optional()?)
}

/// Stores a new setting (fails if it exists).
pub fn put_setting(conn: &mut DbConnection, name: &str, value: &str) -> QueryResult<usize> {
    diesel::insert_into(settings::table)
        .values(SettingRow {
            name: name.into(),
            value: value.into(),
        })
        .execute(conn)
}

/// Derives the data key from the passphrase and proves the passphrase right against the stored
/// check value, so a wrong passphrase is reported as such.
pub fn unlock(conn: &mut DbConnection, passphrase: &str) -> anyhow::Result<DataKey> {
    Ok(unlock_with_responder_key(conn, passphrase)?.0)
}

/// As [`unlock`], with the key that seals the OCSP responders' private keys
/// ([`DataKey::derive_with_responder_key`]).
pub fn unlock_with_responder_key(
    conn: &mut DbConnection,
    passphrase: &str,
) -> anyhow::Result<(DataKey, DataKey)> {
    let salt = setting(conn, "kdf_salt")?
        .context("this database is not initialized: run `ca-server init` first")?;
    let salt = hex::decode(salt).context("damaged kdf_salt setting")?;
    let (data_key, responder_key) = DataKey::derive_with_responder_key(passphrase, &salt)?;
    let check = hex::decode(setting(conn, "key_check")?.unwrap_or_default()).unwrap_or_default();
    data_key.open(&check).context("wrong CA passphrase")?;
    Ok((data_key, responder_key))
}

/// Every key the passphrase unlocks ([`DataKey::derive_keys`]), after checking the passphrase.
pub fn unlock_keys(conn: &mut DbConnection, passphrase: &str) -> anyhow::Result<DerivedKeys> {
    let salt = setting(conn, "kdf_salt")?
        .context("this database is not initialized: run `ca-server init` first")?;
    let salt = hex::decode(salt).context("damaged kdf_salt setting")?;
    let keys = DataKey::derive_keys(passphrase, &salt)?;
    let check = hex::decode(setting(conn, "key_check")?.unwrap_or_default()).unwrap_or_default();
    keys.data.open(&check).context("wrong CA passphrase")?;
    Ok(keys)
}
