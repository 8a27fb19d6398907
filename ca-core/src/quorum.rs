//! k-of-n custody of the secret that opens the CA keys: Shamir's scheme over GF(256) (the
//! `blahaj` crate) splits a random activation secret into one share per named custodian, and
//! each share is sealed to its custodian's own passphrase (scrypt, then AES-256-GCM) in a
//! share file that names its set, custodian, index and threshold, all bound into the seal.
//!
//! Shares carry no integrity of their own: the caller checks a recovered secret against a
//! commitment it kept ([`commitment`]), so a wrong or mixed set is refused, not used.

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hmac;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The share-file format name.
pub const FORMAT: &str = "mamori-share-v1";

/// The length of activation secrets.
pub const SECRET_LEN: usize = 32;

/// What went wrong with shares.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuorumError {
    /// Threshold and count out of range (2 <= k <= n <= 255).
    #[error("a quorum needs 2 <= threshold <= custodians <= 255 (got {threshold} of {count})")]
    Shape {
        /// k.
        threshold: usize,
        /// n.
        count: usize,
    },
    /// Fewer distinct shares than the threshold.
    #[error("{have} distinct shares of the {need} needed")]
    TooFew {
        /// Distinct shares given.
        have: usize,
        /// The threshold.
        need: usize,
    },
    /// The share file is not one, or its passphrase is wrong.
    #[error("the share file cannot be opened: {0}")]
    Open(String),
    /// The random generator failed.
    #[error("the random number generator failed")]
    Random,
}

/// One custodian's share, sealed to their passphrase: the content of a share file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SealedShare {
    /// Always [`FORMAT`].
    pub format: String,
    /// The share set (a new one at every split and reshare).
    pub set: String,
    /// The custodian's user name.
    pub custodian: String,
    /// The share's x coordinate (1-255).
    pub index: u8,
    /// How many shares open the secret.
    pub threshold: u8,
    /// scrypt salt (base64).
    pub salt: String,
    /// AES-GCM nonce (base64).
    pub nonce: String,
    /// The sealed share value (base64).
    pub sealed: String,
}

/// A share once opened: its index and value (zeroized on drop).
pub struct Share {
    /// The x coordinate.
    pub index: u8,
    /// The y values.
    pub value: Zeroizing<Vec<u8>>,
}

/// Splits `secret` into `count` shares any `threshold` of which recover it; share i has index
/// i (1-based).
pub fn split(secret: &[u8], threshold: usize, count: usize) -> Result<Vec<Share>, QuorumError> {
    if threshold < 2 || threshold > count || count > 255 {
        return Err(QuorumError::Shape { threshold, count });
    }
    let dealer = blahaj::Sharks(threshold as u8).dealer(secret);
    Ok(dealer
        .take(count)
        .map(|share| {
            let bytes = Zeroizing::new(Vec::from(&share));
            Share {
                index: bytes[0],
                value: Zeroizing::new(bytes[1..].to_vec()),
            }
        })
        .collect())
}

/// Recovers the secret from at least `threshold` shares; a share given twice (same index)
/// counts once.
pub fn combine(shares: &[Share], threshold: usize) -> Result<Zeroizing<Vec<u8>>, QuorumError> {
    let mut distinct: Vec<blahaj::Share> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for share in shares {
        if share.index == 0 || !seen.insert(share.index) {
            continue;
        }
        let mut bytes = Zeroizing::new(vec![share.index]);
        bytes.extend_from_slice(&share.value);
        distinct.push(
            blahaj::Share::try_from(bytes.as_slice())
                .map_err(|e| QuorumError::Open(e.to_string()))?,
        );
    }
    if distinct.len() < threshold {
        return Err(QuorumError::TooFew {
            have: distinct.len(),
            need: threshold,
        });
    }
    blahaj::Sharks(threshold as u8)
        .recover(&distinct)
        .map(Zeroizing::new)
        .map_err(|e| QuorumError::Open(e.to_string()))
}

/// A commitment to an activation secret, kept beside the encrypted keys so that a recovered
/// secret is checked before use (HMAC-SHA256 of a fixed label under the secret, hex).
pub fn commitment(secret: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hex::encode(hmac::sign(&key, b"mamori quorum commitment v1").as_ref())
}

/// Whether `secret` matches `commitment`, compared in constant time.
pub fn matches(secret: &[u8], commitment: &str) -> bool {
    let Ok(expected) = hex::decode(commitment) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, b"mamori quorum commitment v1", &expected).is_ok()
}

/// The passphrase string that encrypts CA keys (PKCS#8) under an activation secret.
pub fn key_passphrase(secret: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(format!("mamori-quorum:{}", hex::encode(secret)))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn seal_key(passphrase: &str, salt: &[u8]) -> Result<LessSafeKey, QuorumError> {
    let mut key = Zeroizing::new([0u8; 32]);
    let params = scrypt::Params::new(15, 8, 1, 32).map_err(|e| QuorumError::Open(e.to_string()))?;
    scrypt::scrypt(passphrase.as_bytes(), salt, &params, key.as_mut())
        .map_err(|e| QuorumError::Open(e.to_string()))?;
    let unbound = UnboundKey::new(&AES_256_GCM, key.as_ref()).map_err(|_| QuorumError::Random)?;
    Ok(LessSafeKey::new(unbound))
}

fn aad(set: &str, custodian: &str, index: u8, threshold: u8) -> Vec<u8> {
    format!("{FORMAT}|{set}|{custodian}|{index}|{threshold}").into_bytes()
}

impl SealedShare {
    /// Seals `share` of set `set` to `custodian`'s `passphrase`.
    pub fn seal(
        share: &Share,
        set: &str,
        custodian: &str,
        threshold: u8,
        passphrase: &str,
    ) -> Result<SealedShare, QuorumError> {
        let rng = ring::rand::SystemRandom::new();
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 12];
        ring::rand::SecureRandom::fill(&rng, &mut salt).map_err(|_| QuorumError::Random)?;
        ring::rand::SecureRandom::fill(&rng, &mut nonce).map_err(|_| QuorumError::Random)?;
        let key = seal_key(passphrase, &salt)?;
        let mut sealed = share.value.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(set, custodian, share.index, threshold)),
            &mut sealed,
        )
        .map_err(|_| QuorumError::Random)?;
        Ok(SealedShare {
            format: FORMAT.into(),
            set: set.into(),
            custodian: custodian.into(),
            index: share.index,
            threshold,
            salt: b64().encode(salt),
            nonce: b64().encode(nonce),
            sealed: b64().encode(sealed),
        })
    }

    /// Opens the share with its custodian's passphrase.
    pub fn open(&self, passphrase: &str) -> Result<Share, QuorumError> {
        if self.format != FORMAT {
            return Err(QuorumError::Open(format!(
                "format {:?} is not {FORMAT}",
                self.format
            )));
        }
        let bad = |what: &str| QuorumError::Open(format!("{what} is not base64"));
        let salt = b64().decode(&self.salt).map_err(|_| bad("salt"))?;
        let nonce: [u8; 12] = b64()
            .decode(&self.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| bad("nonce"))?;
        let mut sealed = Zeroizing::new(b64().decode(&self.sealed).map_err(|_| bad("sealed"))?);
        let key = seal_key(passphrase, &salt)?;
        let value = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(&self.set, &self.custodian, self.index, self.threshold)),
                sealed.as_mut_slice(),
            )
            .map_err(|_| QuorumError::Open("wrong passphrase, or the file was altered".into()))?;
        Ok(Share {
            index: self.index,
            value: Zeroizing::new(value.to_vec()),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn k_shares_recover_the_secret_fewer_or_repeated_do_not() {
        let secret = [7u8; SECRET_LEN];
        let shares = split(&secret, 3, 5).unwrap();
        assert_eq!(
            shares.iter().map(|s| s.index).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        // Any three of five.
        for picks in [[0, 1, 2], [0, 2, 4], [1, 3, 4]] {
            let chosen: Vec<Share> = picks
                .iter()
                .map(|&i| Share {
                    index: shares[i].index,
                    value: shares[i].value.clone(),
                })
                .collect();
            assert_eq!(combine(&chosen, 3).unwrap().as_slice(), &secret);
        }
        // Two, or two with one of them twice, are too few.
        let again = |i: usize| Share {
            index: shares[i].index,
            value: shares[i].value.clone(),
        };
        assert_eq!(
            combine(&[again(0), again(1), again(1)], 3).err(),
            Some(QuorumError::TooFew { have: 2, need: 3 })
        );
        // A wrong recovery does not match the commitment.
        let c = commitment(&secret);
        assert!(matches(&secret, &c));
        assert!(!matches(&[8u8; SECRET_LEN], &c));
        assert!(split(&secret, 1, 3).is_err() && split(&secret, 4, 3).is_err());
    }

    #[test]
    fn a_sealed_share_opens_only_with_its_passphrase_and_unaltered() {
        let shares = split(&[1u8; SECRET_LEN], 2, 2).unwrap();
        let sealed = SealedShare::seal(&shares[0], "set1", "alice", 2, "alice's words").unwrap();
        assert_eq!(sealed.open("alice's words").unwrap().value, shares[0].value);
        assert!(sealed.open("wrong").is_err());
        let mut moved = sealed.clone();
        moved.custodian = "mallory".into();
        assert!(
            moved.open("alice's words").is_err(),
            "the custodian is bound into the seal"
        );
        let mut reindexed = sealed;
        reindexed.index = 2;
        assert!(reindexed.open("alice's words").is_err());
    }
}
