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
