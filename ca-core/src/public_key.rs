//! Classifying the public keys Mamori certifies, and verifying signatures made with them.
//!
//! Accepted: RSA (2048..=8192 bits, odd exponent >= 65537), ECDSA P-256 / P-384, Ed25519.
//! Everything else is refused with [`PublicKeyError`].

use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1,
    SECP_384_R_1, SHA_256_WITH_RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION,
    SHA_512_WITH_RSA_ENCRYPTION,
};
use const_oid::db::rfc8410::ID_ED_25519;
use der::asn1::UintRef;
use der::{Decode, Sequence, Tagged};
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde::{Deserialize, Serialize};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::error::PublicKeyError;

/// The smallest RSA modulus any profile may accept (a profile's `min_rsa_bits` below this is
/// refused when policies load); clients check their keys against it before asking.
pub const MIN_RSA_BITS: usize = 2048;

/// The largest RSA modulus accepted.
pub const MAX_RSA_BITS: usize = 8192;

/// A key type as named in profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum KeyType {
    /// RSA of at least the profile's `min_rsa_bits`.
    Rsa,
    /// ECDSA over P-256.
    EcdsaP256,
    /// ECDSA over P-384.
    EcdsaP384,
    /// Ed25519 (RFC 8410).
    Ed25519,
}

impl KeyType {
    /// The profile name of the key type.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

/// A classified, acceptable public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicKeyKind {
    /// RSA with the given modulus length.
    Rsa {
        /// Modulus length in bits.
        bits: usize,
    },
    /// ECDSA P-256.
    EcdsaP256,
    /// ECDSA P-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl PublicKeyKind {
    /// The profile key type.
    pub fn key_type(self) -> KeyType {
        match self {
            PublicKeyKind::Rsa { .. } => KeyType::Rsa,
            PublicKeyKind::EcdsaP256 => KeyType::EcdsaP256,
            PublicKeyKind::EcdsaP384 => KeyType::EcdsaP384,
            PublicKeyKind::Ed25519 => KeyType::Ed25519,
        }
    }
}

impl std::fmt::Display for PublicKeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublicKeyKind::Rsa { bits } => write!(f, "rsa-{bits}"),
            other => f.write_str(other.key_type().as_str()),
        }
    }
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017 §A.1.1).
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

fn bit_length(bytes: &[u8]) -> usize {
    match bytes.iter().position(|b| *b != 0) {
        Some(first) => (bytes.len() - first - 1) * 8 + (8 - bytes[first].leading_zeros() as usize),
        None => 0,
    }
}

/// Classifies a public key, refusing algorithms, curves and sizes Mamori does not certify.
pub fn classify(
    spki: &SubjectPublicKeyInfoOwned,
    min_rsa_bits: usize,
) -> Result<PublicKeyKind, PublicKeyError> {
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or(PublicKeyError::Malformed)?;
    let oid = spki.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        let rsa = RsaPublicKey::from_der(key_bytes).map_err(|_| PublicKeyError::Malformed)?;
        let bits = bit_length(rsa.modulus.as_bytes());
        if bits < min_rsa_bits {
            return Err(PublicKeyError::RsaTooSmall {
                bits,
                min: min_rsa_bits,
            });
        }
        if bits > MAX_RSA_BITS {
            return Err(PublicKeyError::RsaTooLarge { bits });
        }
        let exponent = rsa.public_exponent.as_bytes();
        let odd = exponent.last().is_some_and(|b| b & 1 == 1);
        if !odd || bit_length(exponent) < 17 {
            return Err(PublicKeyError::RsaBadExponent);
        }
        Ok(PublicKeyKind::Rsa { bits })
    } else if oid == ID_EC_PUBLIC_KEY {
        let curve =
            crate::extensions::curve_of(&spki.algorithm).ok_or(PublicKeyError::Malformed)?;
        let (kind, len) = if curve == SECP_256_R_1 {
            (PublicKeyKind::EcdsaP256, 65)
        } else if curve == SECP_384_R_1 {
            (PublicKeyKind::EcdsaP384, 97)
        } else {
            return Err(PublicKeyError::UnsupportedCurve(curve.to_string()));
        };
        if key_bytes.len() != len || key_bytes[0] != 0x04 {
            return Err(PublicKeyError::Malformed);
        }
        Ok(kind)
    } else if oid == ID_ED_25519 {
        if spki.algorithm.parameters.is_some() || key_bytes.len() != 32 {
            return Err(PublicKeyError::Malformed);
        }
        Ok(PublicKeyKind::Ed25519)
    } else {
        Err(PublicKeyError::UnsupportedAlgorithm(oid))
    }
}

/// Picks ring's verification algorithm for a signature algorithm and key kind, or `None` when
/// the pair is not one Mamori verifies.
fn verification_algorithm(
    signature_algorithm: &AlgorithmIdentifierOwned,
    kind: PublicKeyKind,
) -> Option<&'static dyn VerificationAlgorithm> {
    let oid = signature_algorithm.oid;
    let rsa_params_ok = match &signature_algorithm.parameters {
        None => true,
        Some(any) => any.tag() == der::Tag::Null,
    };
    match kind {
        PublicKeyKind::Rsa { .. } if rsa_params_ok => {
            if oid == SHA_256_WITH_RSA_ENCRYPTION {
                Some(&signature::RSA_PKCS1_2048_8192_SHA256)
            } else if oid == SHA_384_WITH_RSA_ENCRYPTION {
                Some(&signature::RSA_PKCS1_2048_8192_SHA384)
            } else if oid == SHA_512_WITH_RSA_ENCRYPTION {
                Some(&signature::RSA_PKCS1_2048_8192_SHA512)
            } else {
                None
            }
        }
        PublicKeyKind::EcdsaP256 if signature_algorithm.parameters.is_none() => {
            if oid == ECDSA_WITH_SHA_256 {
                Some(&signature::ECDSA_P256_SHA256_ASN1)
            } else if oid == ECDSA_WITH_SHA_384 {
                Some(&signature::ECDSA_P256_SHA384_ASN1)
            } else {
                None
            }
        }
        PublicKeyKind::EcdsaP384 if signature_algorithm.parameters.is_none() => {
            if oid == ECDSA_WITH_SHA_384 {
                Some(&signature::ECDSA_P384_SHA384_ASN1)
            } else if oid == ECDSA_WITH_SHA_256 {
                Some(&signature::ECDSA_P384_SHA256_ASN1)
            } else {
                None
            }
        }
        PublicKeyKind::Ed25519 if oid == ID_ED_25519 => Some(&signature::ED25519),
        _ => None,
    }
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyFailure {
    /// The signature algorithm is not one Mamori verifies for this key.
    UnsupportedAlgorithm,
    /// The signature is wrong.
    BadSignature,
}

/// Verifies `signature` over `message` with the classified key.
pub fn verify(
    spki: &SubjectPublicKeyInfoOwned,
    kind: PublicKeyKind,
    signature_algorithm: &AlgorithmIdentifierOwned,
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyFailure> {
    let algorithm = verification_algorithm(signature_algorithm, kind)
        .ok_or(VerifyFailure::UnsupportedAlgorithm)?;
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or(VerifyFailure::BadSignature)?;
    UnparsedPublicKey::new(algorithm, key_bytes)
        .verify(message, signature)
        .map_err(|_| VerifyFailure::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;

    fn spki_of(pkey: &openssl::pkey::PKey<openssl::pkey::Private>) -> SubjectPublicKeyInfoOwned {
        SubjectPublicKeyInfoOwned::from_der(&pkey.public_key_to_der().unwrap()).unwrap()
    }

    #[test]
    fn accepts_supported_keys() {
        let rsa =
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        assert_eq!(
            classify(&spki_of(&rsa), 2048).unwrap(),
            PublicKeyKind::Rsa { bits: 2048 }
        );
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let ec = openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap())
            .unwrap();
        assert_eq!(
            classify(&spki_of(&ec), 2048).unwrap(),
            PublicKeyKind::EcdsaP256
        );
        let ed = openssl::pkey::PKey::generate_ed25519().unwrap();
        assert_eq!(
            classify(&spki_of(&ed), 2048).unwrap(),
            PublicKeyKind::Ed25519
        );
    }

    #[test]
    fn rejects_rsa_1024() {
        let rsa =
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap();
        assert_eq!(
            classify(&spki_of(&rsa), 2048).unwrap_err(),
            PublicKeyError::RsaTooSmall {
                bits: 1024,
                min: 2048
            }
        );
    }

    #[test]
    fn rejects_p521_and_ed448() {
        let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SECP521R1).unwrap();
        let ec = openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap())
            .unwrap();
        assert!(matches!(
            classify(&spki_of(&ec), 2048),
            Err(PublicKeyError::UnsupportedCurve(_))
        ));
        let ed448 = openssl::pkey::PKey::generate_ed448().unwrap();
        assert!(matches!(
            classify(&spki_of(&ed448), 2048),
            Err(PublicKeyError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn rejects_small_exponent() {
        let e = openssl::bn::BigNum::from_u32(3).unwrap();
        let rsa = openssl::rsa::Rsa::generate_with_e(2048, &e).unwrap();
        let pkey = openssl::pkey::PKey::from_rsa(rsa).unwrap();
        assert_eq!(
            classify(&spki_of(&pkey), 2048).unwrap_err(),
            PublicKeyError::RsaBadExponent
        );
    }

    #[test]
    fn rejects_malformed_ec_point() {
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let ec = openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap())
            .unwrap();
        let mut spki = spki_of(&ec);
        let mut bytes = spki.subject_public_key.raw_bytes().to_vec();
        bytes.truncate(40);
        spki.subject_public_key = der::asn1::BitString::from_bytes(&bytes).unwrap();
        assert!(spki.to_der().is_ok());
        assert_eq!(
            classify(&spki, 2048).unwrap_err(),
            PublicKeyError::Malformed
        );
    }
}
