//! The audit trail's hash chain: each entry's hash covers its fields and the previous entry's
//! hash (SHA-256), so editing, deleting or reordering any entry breaks the chain from there on.
//!
//! Fields are hashed length-prefixed (`<len>:<bytes>` per field) so no field can bleed into the
//! next. The first entry's previous hash is [`GENESIS`].

use sha2::{Digest, Sha256};

/// The previous hash of the first entry: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// Unix seconds.
    pub at: u64,
    /// Who acted (user name, or `system`).
    pub actor: String,
    /// What was done (`login.ok`, `request.approve`, `certificate.revoke`, ...).
    pub action: String,
    /// What it was done to (request id, `ca/serial`, user name).
    pub target: String,
    /// Details as JSON text; never secrets.
    pub details: String,
}

/// An entry as stored: content plus the chain links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedRecord {
    /// The content.
    pub record: AuditRecord,
    /// The previous entry's hash (hex).
    pub prev_hash: String,
    /// This entry's hash (hex).
    pub hash: String,
}

/// Where and why a chain fails to verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at entry {seq}: {reason}")]
pub struct ChainBreak {
    /// The first entry that fails.
    pub seq: u64,
    /// What is wrong.
    pub reason: &'static str,
}

/// The hash of `record` chained after `prev_hash`.
pub fn entry_hash(prev_hash: &str, record: &AuditRecord) -> String {
    let mut hasher = Sha256::new();
    let seq = record.seq.to_string();
    let at = record.at.to_string();
    for field in [
        prev_hash,
        seq.as_str(),
        at.as_str(),
        &record.actor,
        &record.action,
        &record.target,
        &record.details,
    ] {
        hasher.update(field.len().to_string().as_bytes());
        hasher.update(b":");
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Chains a new record after the entry whose hash is `prev_hash`.
pub fn chain(prev_hash: &str, record: AuditRecord) -> ChainedRecord {
    let hash = entry_hash(prev_hash, &record);
    ChainedRecord {
        record,
        prev_hash: prev_hash.to_string(),
        hash,
    }
}

/// Verifies a whole chain, in stored order, from the first entry.
pub fn verify_chain(entries: &[ChainedRecord]) -> Result<(), ChainBreak> {
    let mut prev = GENESIS.to_string();
    for (i, entry) in entries.iter().enumerate() {
        let seq = entry.record.seq;
        if seq != i as u64 + 1 {
            return Err(ChainBreak {
                seq,
                reason: "sequence gap or reordering (an entry was deleted or moved)",
            });
        }
        if entry.prev_hash != prev {
            return Err(ChainBreak {
                seq,
                reason: "previous-hash link does not match the entry before",
            });
        }
        if entry_hash(&entry.prev_hash, &entry.record) != entry.hash {
            return Err(ChainBreak {
                seq,
                reason: "content does not match its hash (the entry was edited)",
            });
        }
        prev = entry.hash.clone();
    }
    Ok(())
}

/// A signed statement that the chain's entry `seq` had hash `hash` at time `at`: what anchors
/// the chain outside the database. An auditor who keeps a checkpoint detects any later
/// truncation to before `seq` and any rewrite of entries up to `seq`, even with every hash after
/// it recomputed, because the entry at `seq` no longer has this hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The chain's head when it was signed.
    pub seq: u64,
    /// That entry's hash (hex).
    pub hash: String,
    /// When it was signed (Unix seconds).
    pub at: u64,
    /// The signature over [`checkpoint_message`] (DER, base64).
    pub signature: String,
}

/// The bytes a checkpoint's signature covers.
pub fn checkpoint_message(seq: u64, hash: &str, at: u64) -> Vec<u8> {
    format!("mamori-audit-checkpoint:v1\n{seq}\n{hash}\n{at}\n").into_bytes()
}

/// Signs a checkpoint of the entry `seq` with hash `hash` at `at`.
pub fn sign_checkpoint(
    key: &dyn crate::signer::SigningKey,
    seq: u64,
    hash: &str,
    at: u64,
) -> Result<Checkpoint, crate::error::SignError> {
    use base64::Engine;
    let signature = key.sign(&checkpoint_message(seq, hash, at))?;
    Ok(Checkpoint {
        seq,
        hash: hash.to_string(),
        at,
        signature: base64::engine::general_purpose::STANDARD.encode(signature),
    })
}

/// Whether `checkpoint`'s signature verifies under the audit key `spki` (ECDSA P-256 or P-384).
pub fn checkpoint_signed_by(
    checkpoint: &Checkpoint,
    spki: &spki::SubjectPublicKeyInfoOwned,
) -> bool {
    use base64::Engine;
    let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(&checkpoint.signature)
    else {
        return false;
    };
    let Ok(kind) = crate::public_key::classify(spki, 2048) else {
        return false;
    };
    let algorithm = match kind {
        crate::public_key::PublicKeyKind::EcdsaP256 => {
            crate::signer::SignatureAlgorithm::EcdsaP256Sha256
        }
        crate::public_key::PublicKeyKind::EcdsaP384 => {
            crate::signer::SignatureAlgorithm::EcdsaP384Sha384
        }
        _ => return false,
    };
    crate::public_key::verify(
        spki,
        kind,
        &algorithm.identifier(),
        &checkpoint_message(checkpoint.seq, &checkpoint.hash, checkpoint.at),
        &signature,
    )
    .is_ok()
}

/// Why a chain does not match the checkpoints an auditor holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointFailure {
    /// A checkpoint's signature does not verify under the audit key.
    #[error("checkpoint at entry {0} is not signed by the audit key")]
    BadSignature(u64),
    /// The chain ends before a checkpointed entry: entries were cut off.
    #[error(
        "the chain ends at entry {head}, but entry {seq} was checkpointed: entries were deleted"
    )]
    Truncated {
        /// The chain's last entry.
        head: u64,
        /// The checkpointed entry that is gone.
        seq: u64,
    },
    /// The checkpointed entry's hash differs: it or an entry before it was rewritten.
    #[error("entry {0} differs from its checkpoint: it or an earlier entry was rewritten")]
    Rewritten(u64),
}

/// Checks a chain (already verified link by link with [`verify_chain`]) against checkpoints:
/// each must verify under `spki`, its entry must exist and carry its hash. Returns how many
/// checkpoints matched.
pub fn verify_checkpoints(
    entries: &[ChainedRecord],
    checkpoints: &[Checkpoint],
    spki: &spki::SubjectPublicKeyInfoOwned,
) -> Result<usize, CheckpointFailure> {
    let head = entries.last().map(|e| e.record.seq).unwrap_or(0);
    for checkpoint in checkpoints {
        if !checkpoint_signed_by(checkpoint, spki) {
            return Err(CheckpointFailure::BadSignature(checkpoint.seq));
        }
        if checkpoint.seq > head {
            return Err(CheckpointFailure::Truncated {
                head,
                seq: checkpoint.seq,
            });
        }
        let entry = checkpoint
            .seq
            .checked_sub(1)
            .and_then(|i| entries.get(i as usize))
            .filter(|e| e.record.seq == checkpoint.seq);
        match entry {
            Some(e) if e.hash == checkpoint.hash => {}
            _ => return Err(CheckpointFailure::Rewritten(checkpoint.seq)),
        }
    }
    Ok(checkpoints.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: u64) -> Vec<ChainedRecord> {
        let mut out = Vec::new();
        let mut prev = GENESIS.to_string();
        for seq in 1..=n {
            let entry = chain(
                &prev,
                AuditRecord {
                    seq,
                    at: 1_000 + seq,
                    actor: "alice".into(),
                    action: "request.approve".into(),
                    target: format!("req-{seq}"),
                    details: "{}".into(),
                },
            );
            prev = entry.hash.clone();
            out.push(entry);
        }
        out
    }

    #[test]
    fn intact_chain_verifies() {
        assert!(verify_chain(&sample(5)).is_ok());
        assert!(verify_chain(&[]).is_ok());
    }

    #[test]
    fn finds_edit_delete_and_reorder() {
        let mut edited = sample(5);
        edited[2].record.actor = "mallory".into();
        assert_eq!(verify_chain(&edited).unwrap_err().seq, 3);

        let mut deleted = sample(5);
        deleted.remove(1);
        assert_eq!(verify_chain(&deleted).unwrap_err().seq, 3);

        let mut reordered = sample(5);
        reordered.swap(1, 2);
        assert_eq!(verify_chain(&reordered).unwrap_err().seq, 3);

        let mut truncated_tail = sample(5);
        truncated_tail.pop();
        assert!(
            verify_chain(&truncated_tail).is_ok(),
            "tail truncation needs the stored head hash"
        );
    }

    #[test]
    fn fields_cannot_bleed() {
        let a = AuditRecord {
            seq: 1,
            at: 1,
            actor: "ab".into(),
            action: "c".into(),
            target: String::new(),
            details: String::new(),
        };
        let b = AuditRecord {
            actor: "a".into(),
            action: "bc".into(),
            ..a.clone()
        };
        assert_ne!(entry_hash(GENESIS, &a), entry_hash(GENESIS, &b));
    }
}
