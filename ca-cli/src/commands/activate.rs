//! `ca-cli activate`: a custodian gives their share of the CA's activation secret. The share
//! file is opened here, with the custodian's own passphrase, so that the passphrase never
//! leaves this machine; the opened share goes to the server over TLS with a fresh TOTP code.

use base64::Engine;
use ca_api::{ActivateRequest, ActivationView};
use ca_core::quorum::SealedShare;
use clap::Args;
use zeroize::Zeroizing;

use crate::client::{exit, fail, totp_code, CliResult, Connection};
use crate::output::print;

/// `ca-cli activate`.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  ca-cli activate --share-file /media/usb/share-alice-3f9c.json\n  ca-cli activate --status"
)]
pub struct Activate {
    /// Your share file (from ca-server quorum split or reshare).
    #[arg(long, required_unless_present = "status")]
    pub share_file: Option<std::path::PathBuf>,
    /// Read the share's passphrase from this file (first line) instead of a prompt.
    #[arg(long)]
    pub share_passphrase_file: Option<std::path::PathBuf>,
    /// TOTP code (asked for when not given).
    #[arg(long)]
    pub totp: Option<String>,
    /// Only show where activation stands.
    #[arg(long)]
    pub status: bool,
}

const COLUMNS: &[(&str, &str)] = &[
    ("locked", "LOCKED"),
    ("shares_given", "GIVEN"),
    ("threshold", "NEEDED"),
    ("set", "SET"),
];

/// Runs `ca-cli activate`.
pub fn run(conn: &Connection, args: Activate, json: bool) -> CliResult<()> {
    let view: ActivationView = match (&args.share_file, args.status) {
        (Some(file), false) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| fail(exit::ERROR, format!("{}: {e}", file.display())))?;
            let sealed: SealedShare = serde_json::from_str(&text).map_err(|e| {
                fail(
                    exit::ERROR,
                    format!("{} is not a share file: {e}", file.display()),
                )
            })?;
            let passphrase = match &args.share_passphrase_file {
                Some(path) => Zeroizing::new(
                    std::fs::read_to_string(path)
                        .map_err(|e| fail(exit::ERROR, format!("{}: {e}", path.display())))?
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                ),
                None => Zeroizing::new(
                    rpassword::prompt_password(format!(
                        "share passphrase of {} / 分割鍵のパスフレーズ: ",
                        sealed.custodian
                    ))
                    .map_err(|e| fail(exit::ERROR, e.to_string()))?,
                ),
            };
            let share = sealed
                .open(&passphrase)
                .map_err(|e| fail(exit::ERROR, e.to_string()))?;
            let totp = totp_code(args.totp)?;
            conn.send(
                "POST",
                "/api/v1/activate",
                &ActivateRequest {
                    set: sealed.set.clone(),
                    index: share.index,
                    value: base64::engine::general_purpose::STANDARD.encode(share.value.as_slice()),
                    totp,
                },
            )?
        }
        _ => conn.get("/api/v1/activate")?,
    };
    if json {
        print(true, &view, COLUMNS);
    } else if view.locked {
        eprintln!(
            "locked: {} of {} shares given / ロック中: {} / {} 人が分割鍵を提出済み",
            view.shares_given, view.threshold, view.shares_given, view.threshold
        );
    } else {
        eprintln!("unlocked: the CA keys are open / ロック解除: CA 鍵が使用可能です");
    }
    Ok(())
}
