//! The signing-key trait every CA key goes through.
//!
//! Issuance, CRL and OCSP code only ever see `&dyn SigningKey`, so a PKCS#11 HSM key can replace
//! the software key without touching them.

use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384};
use const_oid::ObjectIdentifier;
use der::asn1::BitString;
use der::Encode;
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
    /// Whether a signature leaves this process (an HSM): issuance then reserves the serial
    /// and TBS in the database before signing, so no signature exists that nothing recorded.
    fn signs_outside_process(&self) -> bool {
        false
    }
}

/// Signs DER-encoded TBS bytes and returns the DER certificate.
pub(crate) fn sign_tbs(tbs_der: &[u8], key: &dyn SigningKey) -> Result<Vec<u8>, SignError> {
    let signature = key.sign(tbs_der)?;
    let signature_algorithm = key.algorithm().identifier();
    let signature = BitString::from_bytes(&signature).map_err(|_| SignError::Backend)?;
    let alg = signature_algorithm
        .to_der()
        .map_err(|_| SignError::Backend)?;
    let sig = signature.to_der().map_err(|_| SignError::Backend)?;
    let body_len = tbs_der.len() + alg.len() + sig.len();
    let header = der::Header::new(der::Tag::Sequence, body_len)
        .and_then(|h| h.to_der())
        .map_err(|_| SignError::Backend)?;
    let mut out = Vec::with_capacity(header.len() + body_len);
    out.extend_from_slice(&header);
    out.extend_from_slice(tbs_der);
    out.extend_from_slice(&alg);
    out.extend_from_slice(&sig);
    Ok(out)
}
