//! `ca-cli notify list` (the notification outbox: what was sent, what waits, what failed and
//! why) and `ca-cli contact` (where your own notices go).

use ca_api::{ContactRequest, ContactView, NotificationView};
use clap::{Args, Subcommand};

use crate::client::{exit, fail, totp_code, CliResult, Connection};
use crate::output::print;

/// `ca-cli notify ...`.
#[derive(Subcommand)]
pub enum NotifyCommand {
    /// The newest notices (admins, security officers, auditors).
    ///
    /// Example: ca-cli notify list --status failed
    List {
        /// pending, sent or failed.
        #[arg(long)]
        status: Option<String>,
        /// How many (1-1000, default 100).
        #[arg(long)]
        limit: Option<u32>,
    },
}

const COLUMNS: &[(&str, &str)] = &[
    ("created_at", "QUEUED"),
    ("event", "EVENT"),
    ("channel", "CHANNEL"),
    ("recipient", "TO"),
    ("status", "STATUS"),
    ("attempts", "TRIES"),
    ("last_error", "LAST ERROR"),
];

/// Runs `ca-cli notify ...`.
pub fn run(conn: &Connection, command: NotifyCommand, json: bool) -> CliResult<()> {
    match command {
        NotifyCommand::List { status, limit } => {
            let mut path = String::from("/api/v1/notifications?");
            if let Some(s) = status {
                if !["pending", "sent", "failed"].contains(&s.as_str()) {
                    return Err(fail(
                        exit::USAGE,
                        "--status is pending, sent or failed / --status には pending, sent, failed のいずれかを指定します",
                    ));
                }
                path.push_str(&format!("status={s}&"));
            }
            if let Some(l) = limit {
                path.push_str(&format!("limit={l}"));
            }
            let list: Vec<NotificationView> = conn.get(path.trim_end_matches(['&', '?']))?;
            print(json, &list, COLUMNS);
        }
    }
    Ok(())
}

/// `ca-cli contact`.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  ca-cli contact --email hanako.yamada@hospital.example\n  ca-cli contact --clear\n  ca-cli contact"
)]
pub struct Contact {
    /// Send your notices (approvals waiting for you, your certificates' expiry and revocation)
    /// to this address.
    #[arg(long, conflicts_with = "clear")]
    pub email: Option<String>,
    /// Stop sending you notices by e-mail.
    #[arg(long)]
    pub clear: bool,
    /// TOTP code (asked for when not given).
    #[arg(long)]
    pub totp: Option<String>,
}

/// Runs `ca-cli contact`.
pub fn contact(conn: &Connection, args: Contact, json: bool) -> CliResult<()> {
    let view: ContactView = if args.email.is_some() || args.clear {
        let totp = totp_code(args.totp)?;
        conn.send(
            "PUT",
            "/api/v1/me/contact",
            &ContactRequest {
                email: args.email,
                totp,
            },
        )?
    } else {
        conn.get("/api/v1/me/contact")?
    };
    print(json, &view, &[("email", "EMAIL")]);
    Ok(())
}
