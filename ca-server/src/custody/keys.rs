//! Turning a CA's stored key reference into a signing key: an encrypted PKCS#8 key (opened
//! with the CA passphrase) or a `pkcs11:` URI (opened in the configured token), each checked
//! by a test signature before the CA is allowed to use it.

use std::sync::Arc;

use ca_core::key::{KeyAlgorithm, SoftwareKey};
use ca_core::signer::{SignatureAlgorithm, SigningKey};

use super::token::{Token, TokenError, TokenKey};
use super::token_rsa::TokenRsaKey;
use super::uri::{KeyUri, SCHEME};
use crate::token_config::TokenConfig;

/// Opens the token of a configuration once and hands out its keys.
#[derive(Debug, Default)]
pub struct Custody {
    config: Option<TokenConfig>,
    token: std::sync::OnceLock<Arc<Token>>,
}

/// Why a CA key could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    /// The token failed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The stored key names a token but no `[pkcs11]` table is configured.
    #[error(
        "the key is in a PKCS#11 token ({0}); configure [pkcs11] (module, token_label, pin_file)"
    )]
    NoToken(String),
    /// The reference or the key is unusable.
    #[error("{0}")]
    Bad(String),
}

impl Custody {
    /// Custody for `config`'s `[pkcs11]` table, if any; the token opens at first use.
    pub fn new(config: Option<TokenConfig>) -> Custody {
        Custody {
            config,
            token: std::sync::OnceLock::new(),
        }
    }

    /// Whether new CA keys go into a token.
    pub fn has_token(&self) -> bool {
        self.config.is_some()
    }

    /// The token, opened and signed in at first call.
    pub fn token(&self) -> Result<Arc<Token>, KeyLoadError> {
        if let Some(token) = self.token.get() {
            return Ok(token.clone());
        }
        let config = self
            .config
            .as_ref()
            .ok_or_else(|| KeyLoadError::NoToken("no [pkcs11] table".into()))?;
        let pin = config.pin().map_err(|e| KeyLoadError::Bad(e.to_string()))?;
        let token = Token::open(config, &pin)?;
        Ok(self.token.get_or_init(|| token).clone())
    }

    /// Opens the token with `pin` (the one k-of-n activation recovered) unless it is open.
    pub fn open_with_pin(&self, pin: &str) -> Result<(), KeyLoadError> {
        if self.token.get().is_some() {
            return Ok(());
        }
        let config = self
            .config
            .as_ref()
            .ok_or_else(|| KeyLoadError::NoToken("no [pkcs11] table".into()))?;
        let token = Token::open(config, pin)?;
        let _ = self.token.set(token);
        Ok(())
    }

    /// Generates a CA key labelled `label` in the token, checked by a test signature.
    pub fn generate(&self, label: &str, algorithm: KeyAlgorithm) -> Result<TokenKey, KeyLoadError> {
        let key = self.token()?.generate(label, algorithm)?;
        self_test(&key)?;
        Ok(key)
    }

    /// Generates an RSA key of `bits` labelled `label` in the token (the SCEP RA's), checked
    /// by a test signature.
    pub fn generate_rsa(&self, label: &str, bits: u32) -> Result<TokenRsaKey, KeyLoadError> {
        let key = self.token()?.generate_rsa(label, bits)?;
        rsa_self_test(&key)?;
        Ok(key)
    }

    /// The RSA key in the token that `stored` (a `pkcs11:` URI) names, checked by a test
    /// signature.
    pub fn load_rsa(&self, stored: &str) -> Result<TokenRsaKey, KeyLoadError> {
        let uri = KeyUri::parse(stored).map_err(|e| KeyLoadError::Bad(e.to_string()))?;
        if self.config.is_none() {
            return Err(KeyLoadError::NoToken(uri.to_string()));
        }
        let key = self.token()?.rsa_key(&uri)?;
        rsa_self_test(&key)?;
        Ok(key)
    }

    /// The signing key `stored` (a `cas.key_pem` value) refers to.
    pub fn load(
        &self,
        stored: &str,
        passphrase: &str,
    ) -> Result<Arc<dyn SigningKey>, KeyLoadError> {
        if stored.starts_with(SCHEME) {
            let uri = KeyUri::parse(stored).map_err(|e| KeyLoadError::Bad(e.to_string()))?;
            if self.config.is_none() {
                return Err(KeyLoadError::NoToken(uri.to_string()));
            }
            let key = self.token()?.key(&uri)?;
            self_test(&key)?;
            Ok(Arc::new(key))
        } else {
            let key = SoftwareKey::from_encrypted(stored.as_bytes(), passphrase.as_bytes())
                .map_err(|e| KeyLoadError::Bad(e.to_string()))?;
            Ok(Arc::new(key))
        }
    }
}

/// Signs a fixed message and verifies it against the key's public half: a token whose private
/// object does not match its public one, or that signs wrongly, is caught before any CA uses it.
pub fn self_test(key: &dyn SigningKey) -> Result<(), KeyLoadError> {
    let message = b"mamori key self-test";
    let signature = key
        .sign(message)
        .map_err(|e| KeyLoadError::Bad(format!("test signature: {e}")))?;
    let algorithm = match key.algorithm() {
        SignatureAlgorithm::EcdsaP256Sha256 => &ring::signature::ECDSA_P256_SHA256_ASN1,
        SignatureAlgorithm::EcdsaP384Sha384 => &ring::signature::ECDSA_P384_SHA384_ASN1,
        _ => return Err(KeyLoadError::Bad("unsupported key algorithm".into())),
    };
    let point = key.public_key_info().subject_public_key.raw_bytes();
    ring::signature::UnparsedPublicKey::new(algorithm, point)
        .verify(message, &signature)
        .map_err(|_| {
            KeyLoadError::Bad("the key's test signature does not verify with its public key".into())
        })
}

/// [`self_test`] for an RSA key: RSASSA-PKCS1-v1_5 with SHA-256, checked against its public
/// half.
fn rsa_self_test(key: &TokenRsaKey) -> Result<(), KeyLoadError> {
    let message = b"mamori key self-test";
    let signature = key
        .sign_sha256(message)
        .map_err(|e| KeyLoadError::Bad(format!("test signature: {e}")))?;
    let public = key.public_key_info().subject_public_key.raw_bytes();
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public)
        .verify(message, &signature)
        .map_err(|_| {
            KeyLoadError::Bad("the key's test signature does not verify with its public key".into())
        })
}
