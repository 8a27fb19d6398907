//! Secrets at rest: the CA passphrase (from a file, the environment or a prompt; never an
//! argument), the data key derived from it (scrypt) that encrypts TOTP secrets with AES-256-GCM,
//! and the check value that tells a wrong passphrase from a damaged database.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Where the passphrase comes from.
#[derive(Debug, Clone)]
pub enum PassphraseSource {
    /// A file holding it (first line).
    File(std::path::PathBuf),
    /// The `MAMORI_CA_PASSPHRASE` environment variable.
    Env,
    /// An interactive prompt.
    Prompt,
}

/// Errors with secrets.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Reading the passphrase failed.
    #[error("reading the CA passphrase: {0}")]
    Read(String),
    /// The passphrase is too short.
    #[error("the CA passphrase must be at least {0} characters")]
    Short(usize),
    /// Decryption failed: wrong passphrase or damaged data.
    #[error("cannot decrypt: wrong CA passphrase or damaged data")]
    Decrypt,
    /// The random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// Reads the passphrase from its source.
pub fn read_passphrase(
    source: &PassphraseSource,
    confirm: bool,
) -> Result<Zeroizing<String>, SecretError> {
    let pass = match source {
        PassphraseSource::File(path) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path)
                    .map_err(|e| SecretError::Read(format!("{}: {e}", path.display())))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(SecretError::Read(format!(
                        "{} can be read by group or others (mode {:04o}); the CA passphrase file \
                         must be the owner's alone: chmod 600 {}",
                        path.display(),
                        mode & 0o7777,
                        path.display()
                    )));
                }
            }
            let text = Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| SecretError::Read(format!("{}: {e}", path.display())))?,
            );
            Zeroizing::new(text.lines().next().unwrap_or_default().to_string())
        }
        PassphraseSource::Env => Zeroizing::new(
            std::env::var("MAMORI_CA_PASSPHRASE")
                .map_err(|_| SecretError::Read("MAMORI_CA_PASSPHRASE is not set".into()))?,
        ),
        PassphraseSource::Prompt => {
            let first = Zeroizing::new(
                rpassword::prompt_password("CA passphrase: ")
                    .map_err(|e| SecretError::Read(e.to_string()))?,
            );
            if confirm {
                let second = Zeroizing::new(
                    rpassword::prompt_password("Repeat CA passphrase: ")
                        .map_err(|e| SecretError::Read(e.to_string()))?,
                );
                if *first != *second {
                    return Err(SecretError::Read("the passphrases differ".into()));
                }
            }
            first
        }
    };
    if pass.chars().count() < ca_core::key::MIN_PASSPHRASE_LEN {
        return Err(SecretError::Short(ca_core::key::MIN_PASSPHRASE_LEN));
    }
    Ok(pass)
}

/// Random bytes from the system CSPRNG.
pub fn random_bytes(len: usize) -> Result<Vec<u8>, SecretError> {
    let mut out = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| SecretError::Random)?;
    Ok(out)
}

/// The symmetric key that encrypts TOTP secrets and other small values at rest.
pub struct DataKey(LessSafeKey);

/// The prefix of [`DataKey::seal_text`]'s output.
pub const SEALED_TEXT: &str = "sealed-v1:";

/// The keys derived from the CA passphrase, each for one holder.
pub struct DerivedKeys {
    /// Seals TOTP secrets (accounts) and checks the passphrase.
    pub data: DataKey,
    /// Seals the OCSP responders' keys (ocsp).
    pub responder: DataKey,
    /// Seals the SCEP RA keys (scep).
    pub enrollment: DataKey,
    /// Seals ACME External Account Binding keys (acme).
    pub acme: DataKey,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// Derives the key from the passphrase and a stored salt (scrypt N=2^15, r=8, p=1).
    pub fn derive(passphrase: &str, salt: &[u8]) -> Result<Self, SecretError> {
        Ok(Self::derive_with_responder_key(passphrase, salt)?.0)
    }

    /// The data key and, derived from the same scrypt output with HKDF-SHA256, the key that
    /// seals the OCSP responders' private keys: a responder instance holds that one instead of
    /// the CA passphrase (which would open the CA keys too).
    pub fn derive_with_responder_key(
        passphrase: &str,
        salt: &[u8],
    ) -> Result<(Self, Self), SecretError> {
        let keys = Self::derive_keys(passphrase, salt)?;
        Ok((keys.data, keys.responder))
    }

    /// Every key derived from the passphrase: one scrypt run, then HKDF-SHA256 per holder.
    pub fn derive_keys(passphrase: &str, salt: &[u8]) -> Result<DerivedKeys, SecretError> {
        let mut key = Zeroizing::new([0u8; 32]);
        let scrypt_params = scrypt_params()?;
        scrypt_derive(passphrase.as_bytes(), salt, &scrypt_params, key.as_mut())?;
        let data = UnboundKey::new(&AES_256_GCM, key.as_ref()).map_err(|_| SecretError::Random)?;
        let prk = ring::hkdf::Prk::new_less_safe(ring::hkdf::HKDF_SHA256, key.as_ref());
        let expand = |label: &[u8]| -> Result<DataKey, SecretError> {
            let unbound: UnboundKey = prk
                .expand(&[label], &AES_256_GCM)
                .map_err(|_| SecretError::Random)?
                .into();
            Ok(DataKey(LessSafeKey::new(unbound)))
        };
        Ok(DerivedKeys {
            data: DataKey(LessSafeKey::new(data)),
            responder: expand(b"mamori ocsp responder keys v1")?,
            enrollment: expand(b"mamori scep ra keys v1")?,
            acme: expand(b"mamori acme eab keys v1")?,
        })
    }

    /// A key from a high-entropy secret rather than a passphrase: HKDF-SHA256 of `secret` with
    /// `label` (the k-of-n activation secret seals the PKCS#11 token's PIN with it).
    pub fn from_secret(secret: &[u8], label: &[u8]) -> Result<DataKey, SecretError> {
        let prk = ring::hkdf::Prk::new_less_safe(ring::hkdf::HKDF_SHA256, secret);
        let unbound: UnboundKey = prk
            .expand(&[label], &AES_256_GCM)
            .map_err(|_| SecretError::Random)?
            .into();
        Ok(DataKey(LessSafeKey::new(unbound)))
    }

    /// Encrypts: random 96-bit nonce followed by ciphertext and tag.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        let nonce_bytes = random_bytes(NONCE_LEN)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&nonce_bytes);
        let mut buffer = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut buffer,
            )
            .map_err(|_| SecretError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        Ok(out)
    }

    /// Seals `plaintext` as text for a database column: `sealed-v1:` and base64 of
    /// [`DataKey::seal`] (the responders' and the SCEP RA's keys).
    pub fn seal_text(&self, plaintext: &[u8]) -> Result<String, SecretError> {
        use base64::Engine;
        Ok(format!(
            "{SEALED_TEXT}{}",
            base64::engine::general_purpose::STANDARD.encode(self.seal(plaintext)?)
        ))
    }

    /// Opens what [`DataKey::seal_text`] produced; `None` when it is not sealed text.
    pub fn open_text(&self, text: &str) -> Option<Result<Zeroizing<Vec<u8>>, SecretError>> {
        use base64::Engine;
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(text.strip_prefix(SEALED_TEXT)?)
            .ok()?;
        Some(self.open(&sealed))
    }

    /// Decrypts what [`DataKey::seal`] produced.
    pub fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(SecretError::Decrypt);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[..NONCE_LEN]);
        let mut buffer = Zeroizing::new(sealed[NONCE_LEN..].to_vec());
        let len = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut buffer,
            )
            .map_err(|_| SecretError::Decrypt)?
            .len();
        buffer.truncate(len);
        Ok(buffer)
    }
}

fn scrypt_params() -> Result<ScryptParams, SecretError> {
    ScryptParams::new(15, 8, 1, 32).map_err(|_| SecretError::Random)
}

type ScryptParams = scrypt::Params;

fn scrypt_derive(
    password: &[u8],
    salt: &[u8],
    params: &ScryptParams,
    out: &mut [u8],
) -> Result<(), SecretError> {
    scrypt::scrypt(password, salt, params, out).map_err(|_| SecretError::Random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_wrong_key_fails() {
        let salt = random_bytes(16).unwrap();
        let key = DataKey::derive("correct horse battery", &salt).unwrap();
        let sealed = key.seal(b"totp secret").unwrap();
        assert_eq!(key.open(&sealed).unwrap().as_slice(), b"totp secret");
        let other = DataKey::derive("wrong horse battery!!", &salt).unwrap();
        assert!(matches!(other.open(&sealed), Err(SecretError::Decrypt)));
        assert!(matches!(key.open(&sealed[..10]), Err(SecretError::Decrypt)));
    }
}
