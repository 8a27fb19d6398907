//! RSA keys inside the token, for the SCEP RA: SCEP clients encrypt their requests to the RA
//! certificate with RSA key transport and verify its replies' RSA signatures, so the RA key is
//! RSA and both decrypts (CKM_RSA_PKCS) and signs (CKM_SHA256_RSA_PKCS). Like the CA keys it
//! is generated inside the token, sensitive and non-extractable.

use std::sync::Arc;

use const_oid::db::rfc5912::RSA_ENCRYPTION;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use der::asn1::{BitString, UintRef};
use der::{Encode, Sequence};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use zeroize::Zeroizing;

use super::token::{step, Token, TokenError};
use super::uri::KeyUri;

/// RSAPublicKey (RFC 8017 §A.1.1).
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// An RSA key pair inside the token.
pub struct TokenRsaKey {
    token: Arc<Token>,
    handle: ObjectHandle,
    public_key_info: SubjectPublicKeyInfoOwned,
    uri: KeyUri,
}

impl std::fmt::Debug for TokenRsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRsaKey")
            .field("uri", &self.uri.to_string())
            .finish()
    }
}

impl Token {
    /// Generates an RSA key pair of `bits` inside the token for decryption and signing: the
    /// private key sensitive and non-extractable, both halves labelled `label` with a fresh
    /// random `CKA_ID`.
    pub fn generate_rsa(
        self: &Arc<Self>,
        label: &str,
        bits: u32,
    ) -> Result<TokenRsaKey, TokenError> {
        let id = self.with_session(|s| {
            s.generate_random_vec(16)
                .map_err(step("drawing a key id from the token"))
        })?;
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(true),
            Attribute::ModulusBits(u64::from(bits).into()),
            Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(true),
            Attribute::Derive(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        self.with_session(|s| {
            s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
                .map_err(step("generating an RSA key pair"))
        })?;
        self.rsa_key(&KeyUri {
            token: self.label().to_string(),
            object: label.to_string(),
            id,
        })
    }

    /// The RSA key `uri` names, which must be in this token.
    pub fn rsa_key(self: &Arc<Self>, uri: &KeyUri) -> Result<TokenRsaKey, TokenError> {
        let private = self.find_key(uri, ObjectClass::PRIVATE_KEY, KeyType::RSA)?;
        let public = self.find_key(uri, ObjectClass::PUBLIC_KEY, KeyType::RSA)?;
        let attributes = self.with_session(|s| {
            s.get_attributes(
                public,
                &[AttributeType::Modulus, AttributeType::PublicExponent],
            )
            .map_err(step("reading the public key"))
        })?;
        let (mut modulus, mut exponent) = (Vec::new(), Vec::new());
        for attribute in attributes {
            match attribute {
                Attribute::Modulus(m) => modulus = m,
                Attribute::PublicExponent(e) => exponent = e,
                _ => {}
            }
        }
        let bad = |e: der::Error| TokenError::Token(format!("the key's RSA public key: {e}"));
        let public_key = RsaPublicKey {
            modulus: UintRef::new(&modulus).map_err(bad)?,
            public_exponent: UintRef::new(&exponent).map_err(bad)?,
        }
        .to_der()
        .map_err(bad)?;
        let public_key_info = SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: RSA_ENCRYPTION,
                parameters: Some(der::asn1::Null.into()),
            },
            subject_public_key: BitString::from_bytes(&public_key).map_err(bad)?,
        };
        Ok(TokenRsaKey {
            token: self.clone(),
            handle: private,
            public_key_info,
            uri: uri.clone(),
        })
    }
}

impl TokenRsaKey {
    /// Where the key is (stored in place of a sealed key).
    pub fn uri(&self) -> &KeyUri {
        &self.uri
    }

    /// The public half.
    pub fn public_key_info(&self) -> &SubjectPublicKeyInfoOwned {
        &self.public_key_info
    }

    /// An RSASSA-PKCS1-v1_5 signature with SHA-256 over `message` (the token hashes).
    pub fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, TokenError> {
        self.token.with_session(|s| {
            s.sign(&Mechanism::Sha256RsaPkcs, self.handle, message)
                .map_err(step("signing"))
        })
    }

    /// RSAES-PKCS1-v1_5 decryption of `ciphertext` (a CMS recipient's encrypted key). An
    /// error says nothing more than that it failed; the caller must not tell padding errors
    /// apart from others (Bleichenbacher).
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        self.token
            .with_session(|s| {
                s.decrypt(&Mechanism::RsaPkcs, self.handle, ciphertext)
                    .map_err(step("decrypting"))
            })
            .map(Zeroizing::new)
    }
}
