//! Where ca-core's randomness comes from: every serial, generated key, TOTP secret and key
//! encryption salt is drawn from a [`RandomSource`] the caller passes, as time comes from a
//! [`crate::clock::Clock`]. The server passes [`OsRandom`]; tests can pass a [`SeededRandom`] to
//! get the same serials and keys on every run.
//!
//! ECDSA signature nonces are not drawn from here: ring signs with its own system generator
//! (its API takes no other), so a signature never depends on a caller's source.

use std::sync::atomic::{AtomicU64, Ordering};

use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::KeyError;

/// A source of random octets.
pub trait RandomSource: Send + Sync {
    /// Fills `dest` entirely, or fails (never returns partly filled output as success).
    fn fill(&self, dest: &mut [u8]) -> Result<(), KeyError>;
}

/// The operating system's CSPRNG (`getrandom`), through ring.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), KeyError> {
        SystemRandom::new().fill(dest).map_err(|_| KeyError::Random)
    }
}

/// A deterministic stream: block *i* is SHA-256(seed ‖ i), i a 64-bit big-endian counter. The
/// same seed gives the same octets, so tests can pin serials and keys. It is as unpredictable
/// as its seed and no more: a server must never use one with a seed anybody can know.
pub struct SeededRandom {
    seed: Zeroizing<[u8; 32]>,
    counter: AtomicU64,
}

impl std::fmt::Debug for SeededRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeededRandom(..)")
    }
}

impl SeededRandom {
    /// A stream from a 32-octet seed.
    pub fn new(seed: [u8; 32]) -> Self {
        SeededRandom {
            seed: Zeroizing::new(seed),
            counter: AtomicU64::new(0),
        }
    }
}

impl RandomSource for SeededRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), KeyError> {
        for chunk in dest.chunks_mut(32) {
            let block = self.counter.fetch_add(1, Ordering::Relaxed);
            let mut hash = Sha256::new();
            hash.update(self.seed.as_slice());
            hash.update(block.to_be_bytes());
            let out = Zeroizing::new(<[u8; 32]>::from(hash.finalize()));
            chunk.copy_from_slice(&out[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_streams_repeat_and_differ_by_seed() {
        let (a, b, c) = (
            SeededRandom::new([1; 32]),
            SeededRandom::new([1; 32]),
            SeededRandom::new([2; 32]),
        );
        let (mut x, mut y, mut z) = ([0u8; 70], [0u8; 70], [0u8; 70]);
        a.fill(&mut x).unwrap();
        b.fill(&mut y).unwrap();
        c.fill(&mut z).unwrap();
        assert_eq!(x, y);
        assert_ne!(x, z);
        // The next draw continues the stream instead of repeating it.
        let mut next = [0u8; 70];
        a.fill(&mut next).unwrap();
        assert_ne!(next, x);
    }

    #[test]
    fn the_os_source_fills_every_octet() {
        let mut first = [0u8; 64];
        let mut second = [0u8; 64];
        OsRandom.fill(&mut first).unwrap();
        OsRandom.fill(&mut second).unwrap();
        assert_ne!(first, second);
    }
}
