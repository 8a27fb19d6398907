//! A CA key that is not there yet: the CA is assembled at start with the public half from its
//! certificate, and the private key is put in when k custodians have activated the server.
//! Until then every signature is refused (the RA refuses earlier, with 503 "locked").

use std::sync::{Arc, OnceLock};

use ca_core::error::SignError;
use ca_core::signer::{SignatureAlgorithm, SigningKey};
use const_oid::db::rfc5912::{SECP_256_R_1, SECP_384_R_1};
use x509_cert::spki::SubjectPublicKeyInfoOwned;

/// A CA key slot that starts empty and is filled once.
pub struct GatedKey {
    algorithm: SignatureAlgorithm,
    public_key_info: SubjectPublicKeyInfoOwned,
    key: OnceLock<Arc<dyn SigningKey>>,
}

impl GatedKey {
    /// An empty slot for the key of the CA certificate whose public key is `spki`.
    pub fn new(spki: SubjectPublicKeyInfoOwned) -> Result<GatedKey, String> {
        let curve: const_oid::ObjectIdentifier = spki
            .algorithm
            .parameters
            .as_ref()
            .ok_or("the CA's public key names no curve")?
            .decode_as()
            .map_err(|e| format!("the CA's public key: {e}"))?;
        let algorithm = if curve == SECP_256_R_1 {
            SignatureAlgorithm::EcdsaP256Sha256
        } else if curve == SECP_384_R_1 {
            SignatureAlgorithm::EcdsaP384Sha384
        } else {
            return Err(format!("the CA's curve {curve} is not P-256 or P-384"));
        };
        Ok(GatedKey {
            algorithm,
            public_key_info: spki,
            key: OnceLock::new(),
        })
    }

    /// Puts the private key in; refuses one whose public half differs.
    pub fn fill(&self, key: Arc<dyn SigningKey>) -> Result<(), String> {
        if key.public_key_info() != &self.public_key_info {
            return Err("the opened key is not the CA certificate's key".into());
        }
        let _ = self.key.set(key);
        Ok(())
    }

    /// Whether the key is in.
    pub fn is_open(&self) -> bool {
        self.key.get().is_some()
    }
}

impl SigningKey for GatedKey {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    fn public_key_info(&self) -> &SubjectPublicKeyInfoOwned {
        &self.public_key_info
    }

    fn signs_outside_process(&self) -> bool {
        self.key.get().is_some_and(|k| k.signs_outside_process())
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        self.key.get().ok_or(SignError::Backend)?.sign(message)
    }
}
