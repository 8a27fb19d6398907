//! The SCEP RA's RSA key, wherever it is: a software key sealed in the database (opened by
//! OpenSSL), or a key inside the PKCS#11 token. Both sign CertReps and open the envelopes
//! clients encrypt to the RA certificate; a token key opens them through its parts
//! (`ca_core::scep::envelope`): the content key decrypted in the token, the content with it.

use ca_core::scep::envelope::{self, ContentCipher};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::symm::Cipher;
use openssl::x509::X509;

use crate::custody::token_rsa::TokenRsaKey;

/// An RA key.
pub enum RaKey {
    /// A software RSA key (sealed at rest in `scep_ras`).
    Software(PKey<Private>),
    /// An RSA key inside the token (its URI in `scep_ras`).
    Token(TokenRsaKey),
}

impl RaKey {
    /// An RSASSA-PKCS1-v1_5 SHA-256 signature over `message`.
    pub fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            RaKey::Software(key) => {
                let mut signer =
                    openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), key)
                        .map_err(|e| e.to_string())?;
                signer
                    .sign_oneshot_to_vec(message)
                    .map_err(|e| e.to_string())
            }
            RaKey::Token(key) => key.sign_sha256(message).map_err(|e| e.to_string()),
        }
    }

    /// The public half as a DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> Result<Vec<u8>, String> {
        match self {
            RaKey::Software(key) => key.public_key_to_der().map_err(|e| e.to_string()),
            RaKey::Token(key) => {
                der::Encode::to_der(key.public_key_info()).map_err(|e| e.to_string())
            }
        }
    }

    /// The content of `envelope` (an EnvelopedData) when it is encrypted to `certificate`,
    /// this key's certificate (`der` is its DER).
    pub fn open(&self, envelope: &[u8], certificate: &X509, der: &[u8]) -> Option<Vec<u8>> {
        let p7 = Pkcs7::from_der(envelope).ok()?;
        match self {
            RaKey::Software(key) => p7.decrypt(key, certificate, Pkcs7Flags::BINARY).ok(),
            RaKey::Token(key) => {
                // OpenSSL reads the BER some clients write and writes it back as DER.
                let parts = envelope::key_transport(&p7.to_der().ok()?, der).ok()?;
                // A content key that does not decrypt is replaced by a random one, so that a
                // bad RSA padding fails exactly like a bad content padding (no oracle).
                let content_key = key
                    .decrypt(&parts.encrypted_key)
                    .ok()
                    .filter(|k| k.len() == parts.cipher.key_len())
                    .or_else(|| {
                        let mut random = zeroize::Zeroizing::new(vec![0; parts.cipher.key_len()]);
                        openssl::rand::rand_bytes(&mut random).ok()?;
                        Some(random)
                    })?;
                openssl::symm::decrypt(
                    cipher(parts.cipher),
                    &content_key,
                    Some(&parts.iv),
                    &parts.ciphertext,
                )
                .ok()
            }
        }
    }
}

fn cipher(cipher: ContentCipher) -> Cipher {
    match cipher {
        ContentCipher::Aes128Cbc => Cipher::aes_128_cbc(),
        ContentCipher::Aes192Cbc => Cipher::aes_192_cbc(),
        ContentCipher::Aes256Cbc => Cipher::aes_256_cbc(),
        ContentCipher::DesEde3Cbc => Cipher::des_ede3_cbc(),
        ContentCipher::DesCbc => Cipher::des_cbc(),
    }
}

/// A PKCS#10 request for `key` with `subject` (DER Name), signed sha256WithRSAEncryption:
/// what the RA asks its CA to certify.
pub fn csr(subject: &[u8], key: &RaKey) -> Result<Vec<u8>, String> {
    use der::{Decode, Encode};
    use x509_cert::request::{CertReq, CertReqInfo, Version};
    let e = |e: der::Error| e.to_string();
    let info = CertReqInfo {
        version: Version::V1,
        subject: x509_cert::name::Name::from_der(subject).map_err(e)?,
        public_key: x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(&key.public_key_der()?)
            .map_err(e)?,
        attributes: Default::default(),
    };
    let signature = key.sign_sha256(&info.to_der().map_err(e)?)?;
    CertReq {
        info,
        algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        signature: der::asn1::BitString::from_bytes(&signature).map_err(e)?,
    }
    .to_der()
    .map_err(e)
}
