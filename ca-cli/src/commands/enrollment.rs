//! `ca-cli enrollment-code`: one-time codes for devices that enroll themselves through SCEP
//! (the challenge password) or EST (the HTTP Basic password).

use ca_api::{ChallengeRequest, ChallengeView};
use clap::{Args, Subcommand};

use crate::client::urlencode;
use crate::client::{CliResult, Connection};
use crate::output::{print, shown};

/// `ca-cli enrollment-code ...`.
#[derive(Subcommand)]
pub enum EnrollmentCommand {
    /// Mint a one-time code for one device under a profile (device enrollers).
    Create(Create),
    /// List codes: state, minter, the request each was used for (never the codes).
    #[command(after_help = "Example:\n  ca-cli enrollment-code list --profile mdm-tablet")]
    List(List),
    /// End an unused code now.
    #[command(after_help = "Example:\n  ca-cli enrollment-code revoke chl-0190...")]
    Revoke(Revoke),
}

/// `ca-cli enrollment-code create`.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  ca-cli enrollment-code create --profile mdm-tablet --cn-pattern 'ward3-ipad-[0-9]+'\n  ca-cli enrollment-code create --profile network-gateway --cn-pattern gw1.ward3.hospital.example --valid-minutes 30"
)]
pub struct Create {
    /// The profile the device enrolls under.
    #[arg(long)]
    pub profile: String,
    /// Regular expression the whole CN must match.
    #[arg(long)]
    pub cn_pattern: Option<String>,
    /// Regular expression every subjectAltName (`dns:...`, `uri:...`) must match.
    #[arg(long)]
    pub san_pattern: Option<String>,
    /// Minutes the code stays valid (1-1440).
    #[arg(long, default_value_t = 60)]
    pub valid_minutes: u32,
}

/// `ca-cli enrollment-code list`.
#[derive(Args)]
pub struct List {
    /// Only this profile's codes.
    #[arg(long)]
    pub profile: Option<String>,
}

/// `ca-cli enrollment-code revoke`.
#[derive(Args)]
pub struct Revoke {
    /// The code's id (`chl-...`).
    pub id: String,
}

const COLUMNS: &[(&str, &str)] = &[
    ("id", "ID"),
    ("profile", "PROFILE"),
    ("state", "STATE"),
    ("cn_pattern", "CN"),
    ("created_by", "BY"),
    ("expires_at", "EXPIRES"),
    ("request_id", "REQUEST"),
];

/// Runs an enrollment-code command.
pub fn run(conn: &Connection, command: EnrollmentCommand, json: bool) -> CliResult<()> {
    match command {
        EnrollmentCommand::Create(args) => {
            let view: ChallengeView = conn.send(
                "POST",
                "/api/v1/enrollment-codes",
                &ChallengeRequest {
                    profile: args.profile,
                    cn_pattern: args.cn_pattern,
                    san_pattern: args.san_pattern,
                    valid_minutes: Some(args.valid_minutes),
                },
            )?;
            if json {
                print(true, &view, COLUMNS);
            } else {
                out!("{}", shown(view.code.as_deref().unwrap_or_default()));
                eprintln!(
                    "one-time code {} for profile {} until {} (shown once) / 一回限りの登録コード",
                    shown(&view.id),
                    shown(&view.profile),
                    crate::output::local_time(&view.expires_at)
                );
            }
            Ok(())
        }
        EnrollmentCommand::List(args) => {
            let path = match &args.profile {
                Some(p) => format!("/api/v1/enrollment-codes?profile={}", urlencode(p)),
                None => "/api/v1/enrollment-codes".to_string(),
            };
            let listed = conn.get_list::<ChallengeView>(&path, false)?;
            print(json, &listed.items, COLUMNS);
            Ok(())
        }
        EnrollmentCommand::Revoke(args) => {
            conn.call(
                "POST",
                &format!("/api/v1/enrollment-codes/{}/revoke", urlencode(&args.id)),
                None,
                true,
            )?;
            if !json {
                out!("revoked {} / 失効しました", shown(&args.id));
            }
            Ok(())
        }
    }
}
