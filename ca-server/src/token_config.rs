//! The `[pkcs11]` configuration table: which module, which token, and where its PIN comes from
//! (read by `config`, used by `custody`).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

/// Where the token is and how to sign in to it. With this table present, `ca-server init`
/// generates the issuing CA's key inside the token, and every start opens it there.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The vendor's PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label (`softhsm2-util --init-token --label ...`, or the HSM's partition).
    pub token_label: String,
    /// The slot id, where the token's label alone is not enough (the token must still carry
    /// `token_label`); otherwise every slot is searched for the label.
    #[serde(default)]
    pub slot: Option<u64>,
    /// The user PIN's file (first line; mode 0600 or stricter). Without it the PIN is read from
    /// `MAMORI_PKCS11_PIN`.
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
}

/// Why the token's PIN could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the PKCS#11 PIN: {0}")]
pub struct PinError(String);

impl TokenConfig {
    /// The user PIN, from `pin_file` or `MAMORI_PKCS11_PIN`.
    pub fn pin(&self) -> Result<Zeroizing<String>, PinError> {
        match &self.pin_file {
            Some(path) => read_pin_file(path),
            None => std::env::var("MAMORI_PKCS11_PIN")
                .map(Zeroizing::new)
                .map_err(|_| PinError("set pin_file in [pkcs11] or MAMORI_PKCS11_PIN".to_string())),
        }
    }
}

fn read_pin_file(path: &Path) -> Result<Zeroizing<String>, PinError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| PinError(format!("{}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(PinError(format!(
                "{} can be read by group or others (mode {:04o}): chmod 600 {}",
                path.display(),
                mode & 0o7777,
                path.display()
            )));
        }
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| PinError(format!("{}: {e}", path.display())))?,
    );
    let pin = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if pin.is_empty() {
        return Err(PinError(format!("{} is empty", path.display())));
    }
    Ok(Zeroizing::new(pin.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_pin_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        std::fs::write(&path, "1234\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let config = TokenConfig {
            module: "/nonexistent.so".into(),
            token_label: "t".into(),
            slot: None,
            pin_file: Some(path.clone()),
        };
        assert!(config.pin().unwrap_err().to_string().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(config.pin().unwrap().as_str(), "1234");
    }
}
