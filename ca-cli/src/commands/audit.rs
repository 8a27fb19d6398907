//! `audit list|export|verify` (auditors).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::client::{exit, fail, CliResult, Connection};
use crate::output;

/// Audit commands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// List entries.
    ///
    /// Example: ca-cli audit list --action certificate.revoke
    List {
        /// Entries after this sequence number.
        #[arg(long, default_value = "0")]
        after: u64,
        /// At most this many.
        #[arg(long, default_value = "100")]
        limit: u32,
        /// Only this action (login.failed, request.approve, certificate.revoke, ...).
        #[arg(long)]
        action: Option<String>,
    },
    /// Export every entry as JSON Lines.
    ///
    /// Example: ca-cli audit export --out audit-2026-11.jsonl
    Export {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify the hash chain on the server (exit 6 when broken).
    ///
    /// Example: ca-cli audit verify
    Verify,
}

/// Runs an audit command.
pub fn run(conn: &Connection, command: AuditCommand, json_out: bool) -> CliResult<()> {
    match command {
        AuditCommand::List {
            after,
            limit,
            action,
        } => {
            let mut path = format!("/api/v1/audit?after={after}&limit={limit}");
            if let Some(a) = action {
                path.push_str(&format!("&action={a}"));
            }
            output::print(
                json_out,
                &conn.json("GET", &path, None)?,
                &[
                    ("seq", "SEQ"),
                    ("at", "AT"),
                    ("actor", "ACTOR"),
                    ("action", "ACTION"),
                    ("target", "TARGET"),
                ],
            );
        }
        AuditCommand::Export { out } => {
            let mut file = std::fs::File::create(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            let mut after = 0u64;
            let mut count = 0usize;
            loop {
                let page = conn.json(
                    "GET",
                    &format!("/api/v1/audit?after={after}&limit=1000"),
                    None,
                )?;
                let entries = page.as_array().cloned().unwrap_or_default();
                if entries.is_empty() {
                    break;
                }
                for entry in &entries {
                    writeln!(file, "{}", serde_json::to_string(entry)?)
                        .with_context(|| format!("writing {}", out.display()))?;
                    after = entry["seq"].as_u64().unwrap_or(after);
                    count += 1;
                }
            }
            println!("exported {count} entries to {}", out.display());
        }
        AuditCommand::Verify => {
            let result = conn.json("GET", "/api/v1/audit/verify", None)?;
            if json_out {
                output::print(true, &result, &[]);
            }
            if result["ok"].as_bool() == Some(true) {
                if !json_out {
                    println!("audit chain intact: {} entries", result["entries"]);
                }
            } else {
                return Err(fail(
                    exit::REFUSED,
                    format!(
                        "audit chain broken at entry {}: {}",
                        result["broken_at"],
                        result["reason"].as_str().unwrap_or("?")
                    ),
                ));
            }
        }
    }
    Ok(())
}
