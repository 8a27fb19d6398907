//! Custody of CA keys outside the database: keys generated and kept inside a PKCS#11 token
//! (an HSM, or SoftHSM2 in tests), used through ca-core's [`ca_core::signer::SigningKey`].
//!
//! A CA whose key is in a token stores an RFC 7512 `pkcs11:` URI in `cas.key_pem` instead of
//! an encrypted PKCS#8 key; [`keys::load`] turns either into a signing key.

pub mod ceremony;
pub mod gate;
pub mod keys;
pub mod offline_root;
pub mod quorum;
pub mod softhsm;
pub mod token;
pub mod token_rsa;
pub mod uri;
