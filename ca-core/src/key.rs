//! Software CA keys: generation, PKCS#8 encryption at rest, and signing through ring.
//!
//! At rest a private key exists only as a PKCS#8 `EncryptedPrivateKeyInfo` (PBES2, scrypt,
//! AES-256-CBC; RFC 8018 and RFC 7914). Decrypted bytes live in zeroizing buffers and are dropped as
//! soon as ring has loaded the key.

use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, SECP_256_R_1, SECP_384_R_1};
use der::asn1::BitString;
use der::{Any, Decode};
use pkcs8::{EncryptedPrivateKeyInfo, PrivateKeyInfo};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING,
};
use serde::{Deserialize, Serialize};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use zeroize::Zeroizing;

use crate::error::{KeyError, SignError};
use crate::random::RandomSource;
use crate::signer::{SignatureAlgorithm, SigningKey};

/// The shortest passphrase accepted to encrypt a CA key.
pub const MIN_PASSPHRASE_LEN: usize = 12;

/// Key algorithms Mamori generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA over NIST P-256: the default.
    #[default]
    EcdsaP256,
    /// ECDSA over NIST P-384.
    EcdsaP384,
}

impl KeyAlgorithm {
    fn signing(self) -> &'static ring::signature::EcdsaSigningAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &ECDSA_P256_SHA256_ASN1_SIGNING,
            KeyAlgorithm::EcdsaP384 => &ECDSA_P384_SHA384_ASN1_SIGNING,
        }
    }

    fn curve(self) -> const_oid::ObjectIdentifier {
        match self {
            KeyAlgorithm::EcdsaP256 => SECP_256_R_1,
            KeyAlgorithm::EcdsaP384 => SECP_384_R_1,
        }
    }

    fn signature_algorithm(self) -> SignatureAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => SignatureAlgorithm::EcdsaP256Sha256,
            KeyAlgorithm::EcdsaP384 => SignatureAlgorithm::EcdsaP384Sha384,
        }
    }

    /// The name used in configuration (`ecdsa-p256`, `ecdsa-p384`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
        }
    }
}

/// An ECDSA private key held in memory and signing through ring.
pub struct SoftwareKey {
    algorithm: KeyAlgorithm,
    pair: EcdsaKeyPair,
    public_key_info: SubjectPublicKeyInfoOwned,
    rng: SystemRandom,
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SoftwareKey {
    /// Generates a new key from `random`; returns it with its unencrypted PKCS#8 DER (zeroized
    /// on drop). The private scalar is drawn by rejection: octets of the curve's length until
    /// they are a scalar in [1, n-1] (FIPS 186-5 A.2.2), which the first draw is but with
    /// probability 2^-32 (P-256) or 2^-190 (P-384).
    pub fn generate(
        algorithm: KeyAlgorithm,
        random: &dyn RandomSource,
    ) -> Result<(Self, Zeroizing<Vec<u8>>), KeyError> {
        let pkcs8 = generate_pkcs8(algorithm, random)?;
        let key = Self::from_pkcs8_der(&pkcs8)?;
        Ok((key, pkcs8))
    }

    /// Generates a new key and returns it with its encrypted PKCS#8 PEM.
    pub fn generate_encrypted(
        algorithm: KeyAlgorithm,
        passphrase: &[u8],
        random: &dyn RandomSource,
    ) -> Result<(Self, String), KeyError> {
        let (key, pkcs8) = Self::generate(algorithm, random)?;
        let pem = encrypt_pkcs8(&pkcs8, passphrase, random)?;
        Ok((key, pem))
    }

    /// Loads an unencrypted PKCS#8 DER EC key (P-256 or P-384).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = PrivateKeyInfo::try_from(der).map_err(|e| KeyError::Rejected(e.to_string()))?;
        if info.algorithm.oid != ID_EC_PUBLIC_KEY {
            return Err(KeyError::Unsupported(info.algorithm.oid));
        }
        let curve = info
            .algorithm
            .parameters_oid()
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        let algorithm = if curve == SECP_256_R_1 {
            KeyAlgorithm::EcdsaP256
        } else if curve == SECP_384_R_1 {
            KeyAlgorithm::EcdsaP384
        } else {
            return Err(KeyError::Unsupported(curve));
        };
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(algorithm.signing(), der, &rng)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        let public_key_info = SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: ID_EC_PUBLIC_KEY,
                parameters: Some(Any::from(algorithm.curve())),
            },
            subject_public_key: BitString::from_bytes(pair.public_key().as_ref())
                .map_err(|e| KeyError::Rejected(e.to_string()))?,
        };
        Ok(Self {
            algorithm,
            pair,
            public_key_info,
            rng,
        })
    }

    /// Decrypts an `ENCRYPTED PRIVATE KEY` (PEM or DER) and loads it.
    pub fn from_encrypted(encrypted: &[u8], passphrase: &[u8]) -> Result<Self, KeyError> {
        let der = decrypt_pkcs8(encrypted, passphrase)?;
        Self::from_pkcs8_der(&der)
    }

    /// The key's algorithm.
    pub fn key_algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }
}

impl SigningKey for SoftwareKey {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm.signature_algorithm()
    }

    fn public_key_info(&self) -> &SubjectPublicKeyInfoOwned {
        &self.public_key_info
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        self.pair
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| SignError::Backend)
    }
}

/// scrypt cost: N = 2^14, r = 8 (16 MiB). OpenSSL refuses scrypt above its 32 MiB default memory
/// limit, and operators must be able to open a key with `openssl pkey` (backup, HSM migration).
pub const SCRYPT_LOG_N: u8 = 14;

/// The PKCS#8 DER of a fresh private key (with its public key, as ring requires).
fn generate_pkcs8(
    algorithm: KeyAlgorithm,
    random: &dyn RandomSource,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    use pkcs8::EncodePrivateKey;
    let length = match algorithm {
        KeyAlgorithm::EcdsaP256 => 32,
        KeyAlgorithm::EcdsaP384 => 48,
    };
    for _ in 0..8 {
        let mut scalar = Zeroizing::new(vec![0u8; length]);
        random.fill(&mut scalar)?;
        let document = match algorithm {
            KeyAlgorithm::EcdsaP256 => match p256::SecretKey::from_slice(&scalar) {
                Ok(secret) => secret.to_pkcs8_der(),
                Err(_) => continue,
            },
            KeyAlgorithm::EcdsaP384 => match p384::SecretKey::from_slice(&scalar) {
                Ok(secret) => secret.to_pkcs8_der(),
                Err(_) => continue,
            },
        }
        .map_err(|e| KeyError::Rejected(e.to_string()))?;
        return Ok(Zeroizing::new(document.as_bytes().to_vec()));
    }
    // Eight draws outside [1, n-1] in a row: the source is broken, not unlucky.
    Err(KeyError::Random)
}

/// Encrypts PKCS#8 DER under `passphrase` (PBES2: scrypt N=2^14 r=8 p=1, AES-256-CBC) and returns
/// the `ENCRYPTED PRIVATE KEY` PEM.
pub fn encrypt_pkcs8(
    pkcs8_der: &[u8],
    passphrase: &[u8],
    random: &dyn RandomSource,
) -> Result<String, KeyError> {
    if passphrase.len() < MIN_PASSPHRASE_LEN {
        return Err(KeyError::WeakPassphrase {
            min: MIN_PASSPHRASE_LEN,
        });
    }
    let info =
        PrivateKeyInfo::try_from(pkcs8_der).map_err(|e| KeyError::Rejected(e.to_string()))?;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    random.fill(&mut salt)?;
    random.fill(&mut iv)?;
    let scrypt = pkcs8::pkcs5::scrypt::Params::new(SCRYPT_LOG_N, 8, 1, 32)
        .map_err(|e| KeyError::Encrypt(e.to_string()))?;
    let params = pkcs8::pkcs5::pbes2::Parameters::scrypt_aes256cbc(scrypt, &salt, &iv)
        .map_err(|e| KeyError::Encrypt(e.to_string()))?;
    let document = info
        .encrypt_with_params(params, passphrase)
        .map_err(|e| KeyError::Encrypt(e.to_string()))?;
    document
        .to_pem("ENCRYPTED PRIVATE KEY", der::pem::LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| KeyError::Encrypt(e.to_string()))
}

/// Decrypts an `ENCRYPTED PRIVATE KEY` (PEM or DER; PBES2 with scrypt or PBKDF2) into zeroizing
/// PKCS#8 DER.
pub fn decrypt_pkcs8(encrypted: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let der = match std::str::from_utf8(encrypted) {
        Ok(text) if text.trim_start().starts_with("-----BEGIN") => {
            let (label, der) = der::pem::decode_vec(text.trim().as_bytes())
                .map_err(|e| KeyError::Rejected(e.to_string()))?;
            if label != "ENCRYPTED PRIVATE KEY" {
                return Err(KeyError::Rejected(format!(
                    "expected an ENCRYPTED PRIVATE KEY PEM block, found {label}"
                )));
            }
            der
        }
        _ => encrypted.to_vec(),
    };
    let info =
        EncryptedPrivateKeyInfo::from_der(&der).map_err(|e| KeyError::Rejected(e.to_string()))?;
    let secret = info.decrypt(passphrase).map_err(|_| KeyError::Decrypt)?;
    Ok(Zeroizing::new(secret.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1};

    const PASS: &[u8] = b"correct horse battery staple";

    #[test]
    fn generated_keys_sign_and_verify() {
        for (alg, verify) in [
            (KeyAlgorithm::EcdsaP256, &ECDSA_P256_SHA256_ASN1),
            (KeyAlgorithm::EcdsaP384, &ECDSA_P384_SHA384_ASN1),
        ] {
            let (key, _) = SoftwareKey::generate(alg, &crate::random::OsRandom).unwrap();
            let signature = key.sign(b"message").unwrap();
            let public = key.public_key_info().subject_public_key.raw_bytes();
            UnparsedPublicKey::new(verify, public)
                .verify(b"message", &signature)
                .unwrap();
        }
    }

    #[test]
    fn encrypted_key_round_trips() {
        let (key, pem) = SoftwareKey::generate_encrypted(
            KeyAlgorithm::EcdsaP256,
            PASS,
            &crate::random::OsRandom,
        )
        .unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let loaded = SoftwareKey::from_encrypted(pem.as_bytes(), PASS).unwrap();
        assert_eq!(loaded.public_key_info(), key.public_key_info());
    }

    #[test]
    fn rejects_wrong_passphrase() {
        let (_, pem) = SoftwareKey::generate_encrypted(
            KeyAlgorithm::EcdsaP384,
            PASS,
            &crate::random::OsRandom,
        )
        .unwrap();
        let err = SoftwareKey::from_encrypted(pem.as_bytes(), b"wrong passphrase!!").unwrap_err();
        assert!(matches!(err, KeyError::Decrypt));
    }

    #[test]
    fn rejects_short_passphrase() {
        let err = SoftwareKey::generate_encrypted(
            KeyAlgorithm::EcdsaP256,
            b"short",
            &crate::random::OsRandom,
        )
        .unwrap_err();
        assert!(matches!(err, KeyError::WeakPassphrase { .. }));
    }

    #[test]
    fn openssl_reads_the_encrypted_key() {
        let (key, pem) = SoftwareKey::generate_encrypted(
            KeyAlgorithm::EcdsaP256,
            PASS,
            &crate::random::OsRandom,
        )
        .unwrap();
        let pkey =
            openssl::pkey::PKey::private_key_from_pem_passphrase(pem.as_bytes(), PASS).unwrap();
        let ec = pkey.ec_key().unwrap();
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        let point = ec
            .public_key()
            .to_bytes(
                ec.group(),
                openssl::ec::PointConversionForm::UNCOMPRESSED,
                &mut ctx,
            )
            .unwrap();
        assert_eq!(
            point,
            key.public_key_info()
                .subject_public_key
                .raw_bytes()
                .to_vec()
        );
    }
}
