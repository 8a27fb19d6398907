//! `ca-cli acme eab`: External Account Binding keys that let one service owner's ACME client
//! (certbot, lego) register with a profile's ACME directory for a set of names (security
//! officers, with a TOTP code).

use ca_api::{EabRequest, EabRevokeRequest, EabView};
use clap::{Args, Subcommand};

use crate::client::urlencode;
use crate::client::{totp_code, CliResult, Connection};
use crate::output::{print, shown};

/// `ca-cli acme ...`.
#[derive(Subcommand)]
pub enum AcmeCommand {
    /// External Account Binding keys.
    #[command(
        subcommand,
        after_help = "Examples:\n  ca-cli acme eab create --profile tls-server --name '*.ehr.hospital.example' --label 'EHR front ends'\n  ca-cli acme eab list --profile tls-server"
    )]
    Eab(EabCommand),
}

/// `ca-cli acme eab ...`.
#[derive(Subcommand)]
pub enum EabCommand {
    /// Mint a key for one ACME client: a profile and the names it may order (shown once).
    Create(Create),
    /// List keys: state, scope, minter, the account each registered (never the keys).
    #[command(after_help = "Example:\n  ca-cli acme eab list --profile tls-server")]
    List(List),
    /// Revoke a key; the account it registered is deactivated.
    #[command(after_help = "Example:\n  ca-cli acme eab revoke eab-0190...")]
    Revoke(Revoke),
}

/// `ca-cli acme eab create`.
#[derive(Args)]
#[command(
    after_help = "Example:\n  ca-cli acme eab create --profile tls-server --name '*.ehr.hospital.example' \\\n      --name pacs.hospital.example --label 'EHR front ends (vendor X)'\n\nThe output is the key id and the HMAC key for the client:\n  certbot register --server https://ca.hospital.example:8444/acme/tls-server/directory \\\n      --eab-kid <id> --eab-hmac-key <key>"
)]
pub struct Create {
    /// The profile whose ACME directory the client uses.
    #[arg(long)]
    pub profile: String,
    /// A DNS name or `*.domain` pattern the client may order (repeat).
    #[arg(long = "name", required = true)]
    pub names: Vec<String>,
    /// Who or what the key is for.
    #[arg(long)]
    pub label: String,
    /// Days the key may be used to register (1-90).
    #[arg(long, default_value_t = 7)]
    pub valid_days: u32,
    /// TOTP code (asked for when not given).
    #[arg(long)]
    pub totp: Option<String>,
}

/// `ca-cli acme eab list`.
#[derive(Args)]
pub struct List {
    /// Only this profile's keys.
    #[arg(long)]
    pub profile: Option<String>,
}

/// `ca-cli acme eab revoke`.
#[derive(Args)]
pub struct Revoke {
    /// The key's id (`eab-...`).
    pub id: String,
    /// TOTP code (asked for when not given).
    #[arg(long)]
    pub totp: Option<String>,
}

const COLUMNS: &[(&str, &str)] = &[
    ("id", "ID"),
    ("profile", "PROFILE"),
    ("state", "STATE"),
    ("names", "NAMES"),
    ("label", "LABEL"),
    ("created_by", "BY"),
    ("expires_at", "EXPIRES"),
    ("account", "ACCOUNT"),
];

/// Runs an acme command.
pub fn run(conn: &Connection, command: AcmeCommand, json: bool) -> CliResult<()> {
    let AcmeCommand::Eab(command) = command;
    match command {
        EabCommand::Create(args) => {
            let totp = totp_code(args.totp)?;
            let view: EabView = conn.send(
                "POST",
                "/api/v1/acme/eab",
                &EabRequest {
                    profile: args.profile,
                    names: args.names,
                    label: args.label,
                    valid_days: Some(args.valid_days),
                    totp,
                },
            )?;
            if json {
                print(true, &view, COLUMNS);
            } else {
                out!("eab-kid      {}", shown(&view.id));
                out!(
                    "eab-hmac-key {}",
                    shown(view.hmac_key.as_deref().unwrap_or_default())
                );
                out!("directory    {}", shown(&view.directory_path));
                eprintln!(
                    "External Account Binding key for {} until {} (shown once) \
                     / 外部アカウント連携キー（一度だけ表示）",
                    shown(&view.names.join(", ")),
                    crate::output::local_time(&view.expires_at)
                );
            }
            Ok(())
        }
        EabCommand::List(args) => {
            let path = match &args.profile {
                Some(p) => format!("/api/v1/acme/eab?profile={}", urlencode(p)),
                None => "/api/v1/acme/eab".to_string(),
            };
            let listed = conn.get_list::<EabView>(&path, false)?;
            print(json, &listed.items, COLUMNS);
            Ok(())
        }
        EabCommand::Revoke(args) => {
            let totp = totp_code(args.totp)?;
            let view: EabView = conn.send(
                "POST",
                &format!("/api/v1/acme/eab/{}/revoke", urlencode(&args.id)),
                &EabRevokeRequest { totp },
            )?;
            if json {
                print(true, &view, COLUMNS);
            } else {
                out!(
                    "revoked {}; account {} deactivated / 失効しました",
                    shown(&view.id),
                    shown(view.account.as_deref().unwrap_or("-"))
                );
            }
            Ok(())
        }
    }
}
