//! A PKCS#11 token (an HSM, or SoftHSM2) and the CA keys inside it.
//!
//! Keys are generated in the token as sensitive and non-extractable, so their private half
//! never exists outside it; signing sends the message's digest (CKM_ECDSA) and turns the
//! token's `r || s` into the DER `Ecdsa-Sig-Value` X.509 wants. Sessions are pooled: each
//! signature takes one, so several threads sign at once where the token allows it.

use std::sync::{Arc, Mutex};

use ca_core::error::SignError;
use ca_core::key::KeyAlgorithm;
use ca_core::signer::{SignatureAlgorithm, SigningKey};
use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, SECP_256_R_1, SECP_384_R_1};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use der::asn1::{BitString, ObjectIdentifier, OctetString, UintRef};
use der::{Decode, Encode, Sequence};
use sha2::Digest;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use super::uri::KeyUri;
use crate::token_config::TokenConfig;

/// Sessions kept open for signing; more are opened while all are busy, and closed on return.
const POOLED_SESSIONS: usize = 8;

/// What went wrong with the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The PKCS#11 module failed or refused.
    #[error("PKCS#11 {what}: {source}")]
    Pkcs11 {
        /// The step that failed.
        what: &'static str,
        /// The module's error.
        source: cryptoki::error::Error,
    },
    /// Something about the token or key is not as Mamori needs it.
    #[error("PKCS#11: {0}")]
    Token(String),
}

pub(super) fn step(what: &'static str) -> impl FnOnce(cryptoki::error::Error) -> TokenError {
    move |source| TokenError::Pkcs11 { what, source }
}

/// An open, signed-in token.
pub struct Token {
    label: String,
    slot: Slot,
    context: Pkcs11,
    sessions: Mutex<Vec<Session>>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("label", &self.label).finish()
    }
}

impl Token {
    /// Loads the module, finds the token labelled `config.token_label`, and signs in as its
    /// user with `pin`.
    pub fn open(config: &TokenConfig, pin: &str) -> Result<Arc<Token>, TokenError> {
        let context = Pkcs11::new(&config.module).map_err(step("loading the module"))?;
        match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::CryptokiAlreadyInitialized,
                _,
            )) => {}
            Err(e) => return Err(step("C_Initialize")(e)),
        }
        let mut found = Vec::new();
        for slot in context
            .get_slots_with_token()
            .map_err(step("listing slots"))?
        {
            if config.slot.is_some_and(|wanted| wanted != slot.id()) {
                continue;
            }
            let info = context.get_token_info(slot).map_err(step("token info"))?;
            if info.label().trim_end() == config.token_label {
                found.push(slot);
            }
        }
        let slot = match found.as_slice() {
            [slot] => *slot,
            [] => {
                return Err(TokenError::Token(format!(
                    "no token labelled {:?}{} in {}",
                    config.token_label,
                    config
                        .slot
                        .map(|s| format!(" in slot {s}"))
                        .unwrap_or_default(),
                    config.module.display()
                )))
            }
            _ => {
                return Err(TokenError::Token(format!(
                    "{} tokens are labelled {:?}; give each its own label",
                    found.len(),
                    config.token_label
                )))
            }
        };
        let session = context
            .open_rw_session(slot)
            .map_err(step("opening a session"))?;
        match session.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
            Ok(()) => {}
            Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => {}
            Err(e) => return Err(step("signing in with the PIN")(e)),
        }
        Ok(Arc::new(Token {
            label: config.token_label.clone(),
            slot,
            context,
            sessions: Mutex::new(vec![session]),
        }))
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The id of the slot it is in (for `slot` in `[pkcs11]`).
    pub fn slot_id(&self) -> u64 {
        self.slot.id()
    }

    /// Runs `f` on a pooled session (opening one when all are busy).
    pub(super) fn with_session<T>(
        &self,
        f: impl FnOnce(&Session) -> Result<T, TokenError>,
    ) -> Result<T, TokenError> {
        let pooled = self.sessions.lock().map(|mut s| s.pop()).unwrap_or(None);
        let session = match pooled {
            Some(s) => s,
            None => self
                .context
                .open_rw_session(self.slot)
                .map_err(step("opening a session"))?,
        };
        let outcome = f(&session);
        if let Ok(mut sessions) = self.sessions.lock() {
            if sessions.len() < POOLED_SESSIONS {
                sessions.push(session);
            }
        }
        outcome
    }

    /// Generates a key pair inside the token: the private key sensitive, non-extractable and
    /// for signing only, both halves labelled `label` with a fresh random `CKA_ID`.
    pub fn generate(
        self: &Arc<Self>,
        label: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<TokenKey, TokenError> {
        let curve = match algorithm {
            KeyAlgorithm::EcdsaP256 => SECP_256_R_1,
            KeyAlgorithm::EcdsaP384 => SECP_384_R_1,
            other => {
                return Err(TokenError::Token(format!(
                    "{other:?} keys cannot be made in a token"
                )))
            }
        };
        let params = curve
            .to_der()
            .map_err(|e| TokenError::Token(e.to_string()))?;
        let id = self.with_session(|s| {
            s.generate_random_vec(16)
                .map_err(step("drawing a key id from the token"))
        })?;
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(params),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Derive(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        self.with_session(|s| {
            s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
                .map_err(step("generating a key pair"))
        })?;
        self.key(&KeyUri {
            token: self.label.clone(),
            object: label.to_string(),
            id,
        })
    }

    /// The one object of `class` and `key_type` that `uri` names (its label and id).
    pub(super) fn find_key(
        &self,
        uri: &KeyUri,
        class: ObjectClass,
        key_type: KeyType,
    ) -> Result<ObjectHandle, TokenError> {
        if uri.token != self.label {
            return Err(TokenError::Token(format!(
                "the key is in token {:?}, but [pkcs11] opens {:?}",
                uri.token, self.label
            )));
        }
        let template = [
            Attribute::Class(class),
            Attribute::KeyType(key_type),
            Attribute::Id(uri.id.clone()),
            Attribute::Label(uri.object.as_bytes().to_vec()),
        ];
        self.with_session(|s| {
            let found = s.find_objects(&template).map_err(step("finding the key"))?;
            match found.as_slice() {
                [one] => Ok(*one),
                [] => Err(TokenError::Token(format!(
                    "no such key in the token: {uri}"
                ))),
                _ => Err(TokenError::Token(format!("several keys match {uri}"))),
            }
        })
    }

    /// The key `uri` names, which must be in this token and be an EC key on P-256 or P-384.
    pub fn key(self: &Arc<Self>, uri: &KeyUri) -> Result<TokenKey, TokenError> {
        let private = self.find_key(uri, ObjectClass::PRIVATE_KEY, KeyType::EC)?;
        let public = self.find_key(uri, ObjectClass::PUBLIC_KEY, KeyType::EC)?;
        let attributes = self.with_session(|s| {
            s.get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
                .map_err(step("reading the public key"))
        })?;
        let (mut params, mut point) = (None, None);
        for attribute in attributes {
            match attribute {
                Attribute::EcParams(p) => params = Some(p),
                Attribute::EcPoint(p) => point = Some(p),
                _ => {}
            }
        }
        let curve = ObjectIdentifier::from_der(&params.unwrap_or_default()).map_err(|_| {
            TokenError::Token("the key's EC parameters are not a named curve".into())
        })?;
        let (algorithm, point_len) = if curve == SECP_256_R_1 {
            (SignatureAlgorithm::EcdsaP256Sha256, 65)
        } else if curve == SECP_384_R_1 {
            (SignatureAlgorithm::EcdsaP384Sha384, 97)
        } else {
            return Err(TokenError::Token(format!(
                "the key's curve {curve} is not P-256 or P-384"
            )));
        };
        let point = point.unwrap_or_default();
        // CKA_EC_POINT is a DER OCTET STRING (PKCS#11 2.40 §2.3.3); some modules give it raw.
        let point = match OctetString::from_der(&point) {
            Ok(inner) if inner.as_bytes().len() == point_len => inner.as_bytes().to_vec(),
            _ if point.len() == point_len => point,
            _ => return Err(TokenError::Token("the key's EC point is malformed".into())),
        };
        let public_key_info = SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: ID_EC_PUBLIC_KEY,
                parameters: Some(der::Any::from(curve)),
            },
            subject_public_key: BitString::from_bytes(&point)
                .map_err(|e| TokenError::Token(e.to_string()))?,
        };
        Ok(TokenKey {
            token: self.clone(),
            handle: private,
            algorithm,
            public_key_info,
            uri: uri.clone(),
        })
    }

    /// Destroys every key object (private and public halves, EC or RSA) whose label `old`
    /// accepts; returns how many objects went.
    pub fn destroy_keys(&self, old: impl Fn(&str) -> bool) -> Result<usize, TokenError> {
        self.with_session(|s| {
            let mut objects = Vec::new();
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                objects.extend(
                    s.find_objects(&[Attribute::Class(class)])
                        .map_err(step("listing keys"))?,
                );
            }
            let mut destroyed = 0;
            for object in objects {
                let label = s
                    .get_attributes(object, &[AttributeType::Label])
                    .map_err(step("reading a key's label"))?
                    .into_iter()
                    .find_map(|a| match a {
                        Attribute::Label(l) => Some(String::from_utf8_lossy(&l).into_owned()),
                        _ => None,
                    })
                    .unwrap_or_default();
                if old(&label) {
                    s.destroy_object(object).map_err(step("destroying a key"))?;
                    destroyed += 1;
                }
            }
            Ok(destroyed)
        })
    }

    /// Whether the private key `uri` names is sensitive and has never been extractable (the
    /// token's own record, for `ca-server status` and the tests).
    pub fn never_extractable(self: &Arc<Self>, key: &TokenKey) -> Result<bool, TokenError> {
        let attributes = self.with_session(|s| {
            s.get_attributes(
                key.handle,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                ],
            )
            .map_err(step("reading the key's attributes"))
        })?;
        let mut ok = attributes.len() == 3;
        for attribute in attributes {
            ok &= match attribute {
                Attribute::Sensitive(v) | Attribute::NeverExtractable(v) => v,
                Attribute::Extractable(v) => !v,
                _ => true,
            };
        }
        Ok(ok)
    }
}

/// A CA key inside a token.
pub struct TokenKey {
    token: Arc<Token>,
    handle: ObjectHandle,
    algorithm: SignatureAlgorithm,
    public_key_info: SubjectPublicKeyInfoOwned,
    uri: KeyUri,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("uri", &self.uri.to_string())
            .finish()
    }
}

impl TokenKey {
    /// Where the key is, as stored in `cas.key_pem`.
    pub fn uri(&self) -> &KeyUri {
        &self.uri
    }
}

#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

impl SigningKey for TokenKey {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    fn public_key_info(&self) -> &SubjectPublicKeyInfoOwned {
        &self.public_key_info
    }

    fn signs_outside_process(&self) -> bool {
        true
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let digest = match self.algorithm {
            SignatureAlgorithm::EcdsaP256Sha256 => sha2::Sha256::digest(message).to_vec(),
            SignatureAlgorithm::EcdsaP384Sha384 => sha2::Sha384::digest(message).to_vec(),
            _ => return Err(SignError::Backend),
        };
        let raw = self
            .token
            .with_session(|s| {
                s.sign(&Mechanism::Ecdsa, self.handle, &digest)
                    .map_err(step("signing"))
            })
            .map_err(|e| {
                tracing::error!(error = %e, key = %self.uri, "the token did not sign");
                SignError::Backend
            })?;
        if raw.is_empty() || raw.len() % 2 != 0 {
            return Err(SignError::Backend);
        }
        let (r, s) = raw.split_at(raw.len() / 2);
        EcdsaSigValue {
            r: UintRef::new(r).map_err(|_| SignError::Backend)?,
            s: UintRef::new(s).map_err(|_| SignError::Backend)?,
        }
        .to_der()
        .map_err(|_| SignError::Backend)
    }
}
