//! The signing-key trait every CA key goes through.
//!
//! Issuance, CRL and OCSP code only ever see `&dyn SigningKey`, so a PKCS#11 HSM key can replace
//! the software key without touching them.

use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384};
use const_oid::ObjectIdentifier;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::error::SignError;

/// The signature algorithms Mamori's CA keys sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// ecdsa-with-SHA256 over P-256 (RFC 5758 §3.2).
    EcdsaP256Sha256,
    /// ecdsa-with-SHA384 over P-384 (RFC 5758 §3.2).
    EcdsaP384Sha384,
}

impl SignatureAlgorithm {
    /// The algorithm's OID.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            SignatureAlgorithm::EcdsaP256Sha256 => ECDSA_WITH_SHA_256,
            SignatureAlgorithm::EcdsaP384Sha384 => ECDSA_WITH_SHA_384,
        }
    }

    /// The AlgorithmIdentifier; for ECDSA the parameters are absent (RFC 5758 §3.2).
    pub fn identifier(self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters: None,
        }
    }
}

/// A private key that signs on behalf of a CA or an OCSP responder.
pub trait SigningKey: Send + Sync {
    /// The algorithm the signatures are made with.
    fn algorithm(&self) -> SignatureAlgorithm;
    /// The matching public key.
    fn public_key_info(&self) -> &SubjectPublicKeyInfoOwned;
    /// Signs `message`, returning the DER-encoded signature value (for ECDSA, `Ecdsa-Sig-Value`).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
}
