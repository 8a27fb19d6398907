//! Making a SoftHSM2 token to try the PKCS#11 path without an HSM: the tests, the benchmark
//! and the runbook's dry run use it. SoftHSM2 keeps its tokens in files under a directory its
//! configuration file names; a process finds that file through `SOFTHSM2_CONF`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::token_config::TokenConfig;

/// Where Debian (and most distributions) install SoftHSM2's PKCS#11 module.
pub const MODULE_PATHS: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
];

/// A SoftHSM2 token in its own directory.
#[derive(Debug, Clone)]
pub struct SoftToken {
    /// The configuration file to put in `SOFTHSM2_CONF`.
    pub conf: PathBuf,
    /// The `[pkcs11]` table that opens the token (module, label and a 0600 PIN file).
    pub config: TokenConfig,
}

/// The installed SoftHSM2 module, or why there is none (a test prints it and skips).
pub fn module() -> Result<PathBuf, String> {
    let module = MODULE_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or("SoftHSM2 is not installed (Debian package softhsm2)")?;
    which("softhsm2-util").ok_or("softhsm2-util is not on PATH (Debian package softhsm2)")?;
    Ok(module)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.exists())
}

/// Creates an empty token labelled `label` with user PIN `pin` under `dir`.
pub fn create(dir: &Path, label: &str, pin: &str) -> Result<SoftToken, String> {
    let module = module()?;
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).map_err(|e| e.to_string())?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let output = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            pin,
            "--so-pin",
            pin,
        ])
        .output()
        .map_err(|e| format!("softhsm2-util: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let pin_file = dir.join("pin");
    std::fs::write(&pin_file, format!("{pin}\n")).map_err(|e| e.to_string())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
    }
    Ok(SoftToken {
        conf,
        config: TokenConfig {
            module,
            token_label: label.to_string(),
            slot: None,
            pin_file: Some(pin_file),
        },
    })
}
