//! `request submit|list|show|approve|reject|wait`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use ca_api::{DecisionRequest, RequestView, SubmitRequest};
use ca_core::review::CsrSummary;
use clap::{Args, Subcommand};

use crate::client::{exit, fail, totp_code, url_escape, CliResult, Connection, Listed};
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
    /// Example: ca-cli request submit --profile vendor-maintenance --csr eng.csr --justification "MRI update" --work-order WO-1 --not-before "$(date -d 'tomorrow 09:00' -Iseconds)" --not-after "$(date -d 'tomorrow 17:00' -Iseconds)"
    Submit(Submit),
    /// List requests (your own; officers, admins and auditors see all).
    ///
    /// Example: ca-cli request list --status pending
    List {
        /// pending, approved, issued, rejected, expired, failed, cancelled.
        #[arg(long)]
        status: Option<String>,
        /// Profile id.
        #[arg(long)]
        profile: Option<String>,
        /// Only this user's (officers, admins and auditors).
        #[arg(long)]
        requester: Option<String>,
        /// At most this many, newest first (1-1000).
        #[arg(long, default_value = "100")]
        limit: u32,
        /// Every one that matches, page by page.
        #[arg(long)]
        all: bool,
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
pub fn submit(conn: &Connection, args: &Submit) -> CliResult<RequestView> {
    let csr = std::fs::read_to_string(&args.csr)
        .with_context(|| format!("reading CSR {}", args.csr.display()))?;
    let body = SubmitRequest {
        profile: args.profile.clone(),
        csr,
        justification: args.justification.clone(),
        work_order: args.work_order.clone(),
        not_before: args.not_before.clone(),
        not_after: args.not_after.clone(),
    };
    conn.send("POST", "/api/v1/requests", &body)
}

/// Runs a request command.
pub fn run(conn: &Connection, command: RequestCommand, json_out: bool) -> CliResult<()> {
    match command {
        RequestCommand::Submit(args) => {
            let view = submit(conn, &args)?;
            output::print(json_out, &view, COLUMNS);
            if !view.duplicates.is_empty() {
                eprintln!(
                    "note: this subject already has valid certificate(s) under {}: {} \
                     / 同じ主体の有効な証明書があります",
                    output::shown(&view.profile),
                    output::shown(&view.duplicates.join(", "))
                );
            }
        }
        RequestCommand::List {
            status,
            profile,
            requester,
            limit,
            all,
        } => {
            let mut query = vec![format!("limit={limit}")];
            for (name, value) in [
                ("status", status),
                ("profile", profile),
                ("requester", requester),
            ] {
                if let Some(v) = value {
                    query.push(format!("{name}={}", url_escape(&v)));
                }
            }
            let path = format!("/api/v1/requests?{}", query.join("&"));
            let list: Listed<RequestView> = conn.get_list(&path, all)?;
            output::print(json_out, &list.items, COLUMNS);
            list.footer();
        }
        RequestCommand::Show { id } => {
            let view: RequestView = conn.get(&format!("/api/v1/requests/{id}"))?;
            output::print(json_out, &view, COLUMNS);
            if !json_out {
                print_request_details(&view);
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
                let view: RequestView = conn.get(&format!("/api/v1/requests/{id}"))?;
                match view.status.as_str() {
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
                                output::field(view.serial.as_deref(), "?"),
                                out.display()
                            );
                        }
                        return Ok(());
                    }
                    "pending" | "approved" => {}
                    other => {
                        let why = view
                            .failure
                            .as_deref()
                            .map(|f| format!(": {}", output::shown(f)))
                            .unwrap_or_default();
                        return Err(fail(exit::REFUSED, format!("request {id} is {other}{why}")));
                    }
                }
                if Instant::now() >= deadline {
                    return Err(fail(
                        exit::UNAVAILABLE,
                        format!(
                            "request {id} is still {} after {timeout}s",
                            output::shown(&view.status)
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
    let view: RequestView = conn.send(
        "POST",
        &format!("/api/v1/requests/{}/{verdict}", args.id),
        &DecisionRequest {
            totp: code,
            comment: args.comment,
        },
    )?;
    output::print(json_out, &view, COLUMNS);
    Ok(())
}

/// Prints the decoded CSR of a request view and what a reviewer must notice in it.
fn print_csr(csr: &CsrSummary) {
    out!("subject / 主体名: {}", output::shown(&csr.subject));
    out!("SANs / 別名: {}", output::list(&csr.sans));
    out!("key / 鍵: {}", output::shown(&csr.key));
    for flag in &csr.flags {
        out!(
            "!! 要確認 / CHECK [{}] {}: {}",
            output::shown(&flag.code),
            output::shown(&flag.field),
            output::shown(&flag.detail)
        );
    }
}

/// What an approver reads below the table row: why and for what work, the window asked for,
/// the CSR decoded, duplicates, and every decision with its time.
fn print_request_details(view: &RequestView) {
    out!(
        "justification / 理由: {}",
        output::shown(&view.justification)
    );
    out!(
        "work order / 作業指示: {}",
        output::field(view.work_order.as_deref(), "-")
    );
    match (&view.not_before, &view.not_after) {
        (None, None) => out!("window / 期間: the profile's validity from issuance / 発行時から"),
        (from, until) => out!(
            "window / 期間: {} .. {}",
            from.as_deref()
                .map(output::local_time)
                .unwrap_or("-".into()),
            until
                .as_deref()
                .map(output::local_time)
                .unwrap_or("-".into())
        ),
    }
    if let Some(csr) = &view.csr {
        print_csr(csr);
    }
    if !view.duplicates.is_empty() {
        let shown: Vec<String> = view.duplicates.iter().map(|d| output::shown(d)).collect();
        out!(
            "already valid for this subject / 有効な証明書あり: {}",
            shown.join(", ")
        );
    }
    if let (Some(ca), Some(serial)) = (&view.ca, &view.serial) {
        out!(
            "certificate / 証明書: ca-cli cert show {} {}",
            output::shown(ca),
            output::shown(serial)
        );
    }
    if let Some(failure) = &view.failure {
        out!("failed / 失敗: {}", output::shown(failure));
    }
    out!(
        "decisions / 判断 ({} of {} approvals):",
        view.approvals,
        view.approvals_required
    );
    for d in &view.decisions {
        out!(
            "  {} {} at {}: {}",
            output::shown(&d.verdict),
            output::shown(&d.approver),
            output::local_time(&d.decided_at),
            output::shown(&d.comment)
        );
    }
}
