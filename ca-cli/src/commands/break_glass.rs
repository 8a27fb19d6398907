//! `ca-cli break-glass issue|list|show|review`: emergency issuance by one security officer,
//! and its review by two others.

use std::path::PathBuf;

use ca_api::{BreakGlassRequest, BreakGlassReviewRequest, BreakGlassView, RequestView};
use clap::Subcommand;

use crate::client::{exit, fail, totp_code, CliResult, Connection};
use crate::output::print;

/// `ca-cli break-glass ...`.
#[derive(Subcommand)]
pub enum BreakGlassCommand {
    /// Issue alone, at once, in an emergency (security officers; a profile whose
    /// [break_glass] allows it). Every officer is told; two others must review it.
    ///
    /// Example: ca-cli break-glass issue --profile staff --csr dr-sato.csr --emergency 'ER night shift: card reader failed' --out dr-sato.pem
    Issue {
        /// Profile id.
        #[arg(long)]
        profile: String,
        /// CSR file (PEM).
        #[arg(long)]
        csr: PathBuf,
        /// What the emergency is (10-2000 characters).
        #[arg(long)]
        emergency: String,
        /// Fresh TOTP code (prompted when omitted).
        #[arg(long)]
        totp: Option<String>,
        /// Write the certificate chain (PEM) here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Break-glass issuances, newest first.
    ///
    /// Example: ca-cli break-glass list --status awaiting-review
    List {
        /// awaiting-review, confirmed, misuse, overdue or revoked-unreviewed.
        #[arg(long)]
        status: Option<String>,
    },
    /// One issuance with its reviews.
    ///
    /// Example: ca-cli break-glass show 0190f3a2...
    Show {
        /// The request id.
        id: String,
    },
    /// Review another officer's issuance: --confirm, or --misuse (revokes it at once).
    ///
    /// Example: ca-cli break-glass review 0190f3a2... --confirm --comment 'ER lead confirmed'
    Review {
        /// The request id.
        id: String,
        /// The emergency was real.
        #[arg(long, conflicts_with = "misuse", required_unless_present = "misuse")]
        confirm: bool,
        /// It was not: revoke the certificate now.
        #[arg(long)]
        misuse: bool,
        /// Why (required with --misuse).
        #[arg(long, default_value = "")]
        comment: String,
        /// Fresh TOTP code (prompted when omitted).
        #[arg(long)]
        totp: Option<String>,
    },
}

const COLUMNS: &[(&str, &str)] = &[
    ("id", "ID"),
    ("profile", "PROFILE"),
    ("officer", "OFFICER"),
    ("status", "STATUS"),
    ("review_due", "REVIEW BY"),
    ("serial", "SERIAL"),
    ("emergency", "EMERGENCY"),
];

/// Runs `ca-cli break-glass ...`.
pub fn run(conn: &Connection, command: BreakGlassCommand, json: bool) -> CliResult<()> {
    match command {
        BreakGlassCommand::Issue {
            profile,
            csr,
            emergency,
            totp,
            out,
        } => {
            let csr = std::fs::read_to_string(&csr)
                .map_err(|e| fail(exit::ERROR, format!("{}: {e}", csr.display())))?;
            let totp = totp_code(totp)?;
            let view: RequestView = conn.send(
                "POST",
                "/api/v1/break-glass",
                &BreakGlassRequest {
                    profile,
                    csr,
                    emergency,
                    totp,
                },
            )?;
            if let Some(out) = out {
                let chain = conn
                    .call(
                        "GET",
                        &format!("/api/v1/requests/{}/certificate", view.id),
                        None,
                        true,
                    )?
                    .text()
                    .map_err(|e| fail(exit::UNAVAILABLE, e.to_string()))?;
                std::fs::write(&out, chain)
                    .map_err(|e| fail(exit::ERROR, format!("{}: {e}", out.display())))?;
            }
            print(
                json,
                &view,
                &[("id", "ID"), ("status", "STATUS"), ("serial", "SERIAL")],
            );
            eprintln!(
                "break-glass: every officer has been told; two others must review it \
                 / 緊急発行しました。他の担当者 2 名によるレビューが必要です"
            );
        }
        BreakGlassCommand::List { status } => {
            let path = match status {
                Some(s) if s.chars().all(|c| c.is_ascii_lowercase() || c == '-') => {
                    format!("/api/v1/break-glass?status={s}")
                }
                Some(_) => return Err(fail(exit::USAGE, "--status: a status word")),
                None => "/api/v1/break-glass".into(),
            };
            let list: Vec<BreakGlassView> = conn.get(&path)?;
            print(json, &list, COLUMNS);
        }
        BreakGlassCommand::Show { id } => {
            let view: BreakGlassView = conn.get(&format!("/api/v1/break-glass/{id}"))?;
            print(json, &view, COLUMNS);
        }
        BreakGlassCommand::Review {
            id,
            confirm: _,
            misuse,
            comment,
            totp,
        } => {
            let totp = totp_code(totp)?;
            let view: BreakGlassView = conn.send(
                "POST",
                &format!("/api/v1/break-glass/{id}/review"),
                &BreakGlassReviewRequest {
                    verdict: if misuse { "misuse" } else { "confirm" }.into(),
                    comment,
                    totp,
                },
            )?;
            print(json, &view, COLUMNS);
        }
    }
    Ok(())
}
