//! A bounded memory of signatures already verified, keyed by the SHA-256 of the exact signed
//! object (for example a whole CSR). Verifying an ECDSA signature costs far more than hashing the
//! object, and a device enroller re-issuing known terminals sends the same CSR again and again.
//!
//! Only objects whose signature verified are remembered, and the key covers every byte (the
//! signed data, the algorithm and the signature), so a remembered entry answers exactly the
//! question "did these bytes verify before"; anything changed is a different key and is
//! verified afresh. The memory is bounded: two generations of at most `capacity / 2` entries
//! each; when the newer fills, the older is dropped, so entries seen recently stay.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

/// The key of one signed object: SHA-256 of its bytes.
pub type MemoKey = [u8; 32];

/// Signatures verified before (see the module documentation). Safe to share between threads.
#[derive(Debug)]
pub struct SignatureMemo {
    generation: usize,
    sets: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    newer: HashSet<MemoKey>,
    older: HashSet<MemoKey>,
}

impl SignatureMemo {
    /// A memo that holds at most `capacity` entries (at least 2).
    pub fn new(capacity: usize) -> SignatureMemo {
        SignatureMemo {
            generation: (capacity / 2).max(1),
            sets: Mutex::default(),
        }
    }

    /// The key of `signed`, the exact bytes of a signed object.
    pub fn key_of(signed: &[u8]) -> MemoKey {
        Sha256::digest(signed).into()
    }

    /// Whether an object with this key verified before (and is still remembered).
    pub fn contains(&self, key: &MemoKey) -> bool {
        let sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        sets.newer.contains(key) || sets.older.contains(key)
    }

    /// Remembers that the object with this key verified.
    pub fn insert(&self, key: MemoKey) {
        let mut sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        if sets.newer.len() >= self.generation {
            sets.older = std::mem::take(&mut sets.newer);
        }
        sets.newer.insert(key);
    }

    /// How many entries are remembered.
    pub fn len(&self) -> usize {
        let sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        sets.newer.len() + sets.older.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_recent_entries_within_its_bound() {
        let memo = SignatureMemo::new(4);
        let keys: Vec<MemoKey> = (0u8..10).map(|i| SignatureMemo::key_of(&[i])).collect();
        for key in &keys {
            memo.insert(*key);
            assert!(memo.contains(key));
            assert!(memo.len() <= 4);
        }
        assert!(memo.contains(&keys[9]) && memo.contains(&keys[8]));
        assert!(!memo.contains(&keys[0]), "the oldest entries are dropped");
        assert!(!memo.contains(&SignatureMemo::key_of(b"never seen")));
    }
}
