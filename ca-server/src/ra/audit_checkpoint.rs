//! Anchoring the audit chain outside the database: signed checkpoints of its head.
//!
//! The chain's hashes alone let anyone with write access to the database cut its tail, or
//! rewrite an entry and recompute every hash after it, unnoticed. A checkpoint is the head's
//! sequence number and hash signed by the audit key — an ECDSA key generated at the first start,
//! stored encrypted under the CA passphrase like the CA keys (so a database administrator
//! without the passphrase cannot sign one). Checkpoints are made every `audit_checkpoint_secs`
//! when the chain has grown, and on demand (`POST /api/v1/audit/checkpoints`), and published on
//! the public listener at `/audit/checkpoints` with the audit key, so auditors can keep copies
//! where the database administrator cannot reach them. `ca-cli audit verify --checkpoints FILE`
//! then detects truncation and any rewrite up to the latest checkpoint in the file.

use ca_core::audit::{sign_checkpoint, Checkpoint};
use ca_core::key::{KeyAlgorithm, SoftwareKey};
use ca_core::signer::SigningKey;

use crate::error::ServiceError;
use crate::ra::Authority;
use crate::store::request_rows::{AuditRows, CheckpointRow};
use crate::store::DbConnection;

/// Checkpoints `/audit/checkpoints` lists (the newest).
const PUBLISHED: i64 = 1000;

/// The encrypted audit key's setting.
const KEY_SETTING: &str = "audit_key_pem";
/// The audit key's public half (SPKI PEM), readable without the passphrase.
const PUBLIC_SETTING: &str = "audit_key_spki";

pub use crate::api::CheckpointFile;

/// Loads the audit key, creating and storing it (encrypted under `passphrase`) the first time.
pub fn load_or_create_key(
    conn: &mut DbConnection,
    passphrase: &str,
    random: &dyn ca_core::random::RandomSource,
) -> Result<SoftwareKey, ServiceError> {
    let internal = |e: String| ServiceError::Internal(format!("audit key: {e}"));
    if let Some(pem) =
        crate::store::settings::setting(conn, KEY_SETTING).map_err(|e| internal(e.to_string()))?
    {
        return SoftwareKey::from_encrypted(pem.as_bytes(), passphrase.as_bytes())
            .map_err(|e| internal(e.to_string()));
    }
    let (key, pkcs8) = SoftwareKey::generate(KeyAlgorithm::EcdsaP256, random)
        .map_err(|e| internal(e.to_string()))?;
    let encrypted = ca_core::key::encrypt_pkcs8(&pkcs8, passphrase.as_bytes(), random)
        .map_err(|e| internal(e.to_string()))?;
    let public = spki_pem(&key)?;
    crate::store::write_transaction::<_, ServiceError, _>(conn, |conn| {
        // Another instance may have created it meanwhile: the first one stays.
        if crate::store::settings::setting(conn, KEY_SETTING)
            .map_err(|e| internal(e.to_string()))?
            .is_none()
        {
            crate::store::settings::put_setting(conn, KEY_SETTING, &encrypted)?;
            crate::store::settings::put_setting(conn, PUBLIC_SETTING, &public)?;
        }
        Ok(())
    })?;
    let pem = crate::store::settings::setting(conn, KEY_SETTING)
        .map_err(|e| internal(e.to_string()))?
        .ok_or_else(|| internal("vanished".into()))?;
    SoftwareKey::from_encrypted(pem.as_bytes(), passphrase.as_bytes())
        .map_err(|e| internal(e.to_string()))
}

fn spki_pem(key: &SoftwareKey) -> Result<String, ServiceError> {
    use ca_core::der::Encode;
    let der = key
        .public_key_info()
        .to_der()
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    ca_core::der::pem::encode_string("PUBLIC KEY", ca_core::der::pem::LineEnding::LF, &der)
        .map_err(|e| ServiceError::Internal(e.to_string()))
}

/// Parses the audit key's SPKI PEM (as in a [`CheckpointFile`]).
pub fn parse_audit_key(pem: &str) -> Option<ca_core::spki::SubjectPublicKeyInfoOwned> {
    use ca_core::der::Decode;
    let (label, der) = ca_core::der::pem::decode_vec(pem.trim().as_bytes()).ok()?;
    if label != "PUBLIC KEY" {
        return None;
    }
    ca_core::spki::SubjectPublicKeyInfoOwned::from_der(&der).ok()
}

impl Authority {
    /// Signs a checkpoint of the chain's head if it moved past the last checkpoint, and
    /// `force` or the last one is at least `audit_checkpoint_secs` old. Returns the newest
    /// checkpoint (`None` for an empty chain or an instance without the audit key).
    pub fn checkpoint_audit(&self, force: bool) -> Result<Option<Checkpoint>, ServiceError> {
        let Some(key) = self.audit_key.as_ref() else {
            return Ok(None);
        };
        let now = self.now().as_secs();
        let mut conn = self.conn()?;
        let head = conn.audit_head()?;
        let last = latest(&mut conn)?;
        let Some((seq, hash)) = head else {
            return Ok(None);
        };
        let due = match &last {
            None => true,
            Some(c) => {
                c.seq < seq as u64 && (force || now >= c.at + self.config.audit_checkpoint_secs)
            }
        };
        if !due {
            return Ok(last);
        }
        let checkpoint = sign_checkpoint(key, seq as u64, &hash, now)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let inserted = conn.insert_checkpoint(&(
            seq,
            checkpoint.hash.clone(),
            now as i64,
            checkpoint.signature.clone(),
        ));
        match inserted {
            Ok(_) => Ok(Some(checkpoint)),
            // Another instance checkpointed the same head first.
            Err(_) => latest(&mut conn),
        }
    }

    /// The stored checkpoints checked against the chain: how many matched, or why one does not
    /// (a checkpoint whose entry is gone or differs). Part of the server's own verify; an
    /// auditor's copy is what survives someone deleting checkpoints from the database too.
    pub(crate) fn verify_stored_checkpoints(
        &self,
        conn: &mut DbConnection,
        chain: &[ca_core::audit::ChainedRecord],
    ) -> Result<Result<usize, ca_core::audit::CheckpointFailure>, ServiceError> {
        let public = crate::store::settings::setting(conn, PUBLIC_SETTING)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let Some(spki) = public.as_deref().and_then(parse_audit_key) else {
            return Ok(Ok(0));
        };
        let rows = conn.checkpoints()?;
        let checkpoints: Vec<Checkpoint> = rows.into_iter().map(checkpoint_of).collect();
        Ok(ca_core::audit::verify_checkpoints(
            chain,
            &checkpoints,
            &spki,
        ))
    }
}

fn checkpoint_of((seq, hash, at, signature): CheckpointRow) -> Checkpoint {
    Checkpoint {
        seq: seq.max(0) as u64,
        hash,
        at: at.max(0) as u64,
        signature,
    }
}

fn latest(conn: &mut DbConnection) -> Result<Option<Checkpoint>, ServiceError> {
    Ok(conn
        .newest_checkpoints(1)?
        .into_iter()
        .next()
        .map(checkpoint_of))
}

/// The audit key and the newest checkpoints, oldest first (`/audit/checkpoints`, exports).
pub fn published(conn: &mut DbConnection) -> Result<CheckpointFile, ServiceError> {
    let audit_key = crate::store::settings::setting(conn, PUBLIC_SETTING)
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .ok_or_else(|| ServiceError::NotFound("audit key".into()))?;
    let mut rows = conn.newest_checkpoints(PUBLISHED)?;
    rows.reverse();
    Ok(CheckpointFile {
        audit_key,
        checkpoints: rows.into_iter().map(checkpoint_of).collect(),
    })
}
