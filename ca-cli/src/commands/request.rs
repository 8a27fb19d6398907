//! `request submit|list|show|approve|reject|wait`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::{exit, fail, totp_code, CliResult, Connection};
use crate::output;

const COLUMNS: &[(&str, &str)] = &[
    ("id", "ID"),
    ("profile", "PROFILE"),
    ("requester", "REQUESTER"),
    ("status", "STATUS"),
    ("approvals", "APPROVALS"),
    ("approvals_required", "NEEDED"),
    ("serial", "SERIAL"),
    ("created_at", "CREATED"),
];

/// Request commands.
#[derive(Subcommand)]
pub enum RequestCommand {
    /// Submit a CSR under a profile.
    ///
    /// Example: ca-cli request submit --profile vendor-maintenance --csr eng.csr --justification "MRI update" --work-order WO-1 --not-before 2026-11-24T09:00:00+09:00 --not-after 2026-11-24T17:00:00+09:00
    Submit(Submit),
    /// List requests (your own; officers, admins and auditors see all).
    ///
    /// Example: ca-cli request list --status pending
    List {
        /// pending, approved, issued, rejected, expired, failed.
        #[arg(long)]
        status: Option<String>,
        /// Profile id.
        #[arg(long)]
        profile: Option<String>,
    },
    /// Show one request with its decisions.
    ///
    /// Example: ca-cli request show req-0123abcd
    Show {
        /// Request id.
        id: String,
    },
    /// Approve with a fresh TOTP code.
    ///
    /// Example: ca-cli request approve req-0123abcd --comment "work order checked"
    Approve(Decide),
    /// Reject with a fresh TOTP code.
    ///
    /// Example: ca-cli request reject req-0123abcd --comment "unknown vendor"
    Reject(Decide),
    /// Wait until issued (saving the certificate chain) or refused.
    ///
    /// Example: ca-cli request wait req-0123abcd --out eng-chain.pem --timeout 3600
    Wait {
        /// Request id.
        id: String,
        /// Where to save the certificate and chain (PEM).
        #[arg(long)]
        out: PathBuf,
        /// Give up after this many seconds (exit code 7).
        #[arg(long, default_value = "600")]
        timeout: u64,
        /// Seconds between polls.
        #[arg(long, default_value = "5")]
        interval: u64,
    },
}

/// `request submit` arguments.
#[derive(Args)]
pub struct Submit {
    /// Profile id.
    #[arg(long)]
    pub profile: String,
    /// CSR file (PEM).
    #[arg(long)]
    pub csr: PathBuf,
    /// Why the certificate is needed.
    #[arg(long)]
    pub justification: String,
    /// Work-order reference (vendor maintenance).
    #[arg(long)]
    pub work_order: Option<String>,
    /// Maintenance window start (RFC 3339).
    #[arg(long)]
    pub not_before: Option<String>,
    /// Maintenance window end (RFC 3339).
    #[arg(long)]
    pub not_after: Option<String>,
}

/// `request approve|reject` arguments.
#[derive(Args)]
pub struct Decide {
    /// Request id.
    pub id: String,
    /// Fresh TOTP code (prompted when omitted).
    #[arg(long)]
    pub totp: Option<String>,
    /// Comment for the audit trail.
    #[arg(long, default_value = "")]
    pub comment: String,
}

/// Submits a request; returns the server's view.
pub fn submit(conn: &Connection, args: &Submit) -> CliResult<Value> {
    let csr = std::fs::read_to_string(&args.csr)
        .with_context(|| format!("reading CSR {}", args.csr.display()))?;
    let body = json!({
        "profile": args.profile,
        "csr": csr,
        "justification": args.justification,
        "work_order": args.work_order,
        "not_before": args.not_before,
        "not_after": args.not_after,
    });
    conn.json("POST", "/api/v1/requests", Some(&body))
}

/// Runs a request command.
pub fn run(conn: &Connection, command: RequestCommand, json_out: bool) -> CliResult<()> {
    match command {
        RequestCommand::Submit(args) => {
            let view = submit(conn, &args)?;
            output::print(json_out, &view, COLUMNS);
        }
        RequestCommand::List { status, profile } => {
            let mut query = Vec::new();
            if let Some(s) = status {
                query.push(format!("status={s}"));
            }
            if let Some(p) = profile {
                query.push(format!("profile={p}"));
            }
            let path = format!(
                "/api/v1/requests{}{}",
                if query.is_empty() { "" } else { "?" },
                query.join("&")
            );
            output::print(json_out, &conn.json("GET", &path, None)?, COLUMNS);
        }
        RequestCommand::Show { id } => {
            let view = conn.json("GET", &format!("/api/v1/requests/{id}"), None)?;
            output::print(json_out, &view, COLUMNS);
            if !json_out {
                print_csr(&view["csr"]);
                for d in view["decisions"].as_array().into_iter().flatten() {
                    out!(
                        "  {} {} {} {}",
                        output::field(&d["decided_at"], ""),
                        output::field(&d["approver"], ""),
                        output::field(&d["verdict"], ""),
                        output::field(&d["comment"], "")
                    );
                }
            }
        }
        RequestCommand::Approve(args) => decide(conn, "approve", args, json_out)?,
        RequestCommand::Reject(args) => decide(conn, "reject", args, json_out)?,
        RequestCommand::Wait {
            id,
            out,
            timeout,
            interval,
        } => {
            let deadline = Instant::now() + Duration::from_secs(timeout);
            loop {
                let view = conn.json("GET", &format!("/api/v1/requests/{id}"), None)?;
                match view["status"].as_str().unwrap_or("") {
                    "issued" => {
                        let response = conn.call(
                            "GET",
                            &format!("/api/v1/requests/{id}/certificate"),
                            None,
                            true,
                        )?;
                        let pem = response
                            .text()
                            .map_err(|e| fail(exit::UNAVAILABLE, e.to_string()))?;
                        std::fs::write(&out, &pem)
                            .with_context(|| format!("writing {}", out.display()))?;
                        if json_out {
                            output::print(true, &view, &[]);
                        } else {
                            out!(
                                "issued: serial {} saved to {}",
                                output::field(&view["serial"], "?"),
                                out.display()
                            );
                        }
                        return Ok(());
                    }
                    "pending" | "approved" => {}
                    other => {
                        let why = view["failure"]
                            .as_str()
                            .map(|f| format!(": {f}"))
                            .unwrap_or_default();
                        return Err(fail(exit::REFUSED, format!("request {id} is {other}{why}")));
                    }
                }
                if Instant::now() >= deadline {
                    return Err(fail(
                        exit::UNAVAILABLE,
                        format!(
                            "request {id} is still {} after {timeout}s",
                            view["status"].as_str().unwrap_or("?")
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_secs(interval.max(1)).min(
                    deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(50),
                ));
            }
        }
    }
    Ok(())
}

fn decide(conn: &Connection, verdict: &str, args: Decide, json_out: bool) -> CliResult<()> {
    let code = totp_code(args.totp)?;
    let view = conn.json(
        "POST",
        &format!("/api/v1/requests/{}/{verdict}", args.id),
        Some(&json!({"totp": code, "comment": args.comment})),
    )?;
    output::print(json_out, &view, COLUMNS);
    Ok(())
}

/// Prints the decoded CSR of a request view and what a reviewer must notice in it.
fn print_csr(csr: &Value) {
    if csr.is_null() {
        return;
    }
    out!("subject / 主体名: {}", output::field(&csr["subject"], "-"));
    let sans: Vec<String> = csr["sans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| output::field(s, ""))
        .collect();
    out!(
        "SANs / 別名: {}",
        if sans.is_empty() {
            "-".to_string()
        } else {
            sans.join(", ")
        }
    );
    out!("key / 鍵: {}", output::field(&csr["key"], "-"));
    for flag in csr["flags"].as_array().into_iter().flatten() {
        out!(
            "!! 要確認 / CHECK [{}] {}: {}",
            output::field(&flag["code"], ""),
            output::field(&flag["field"], ""),
            output::field(&flag["detail"], "")
        );
    }
}
