//! `cert list|show|download|revoke|hold|release`.

use std::path::PathBuf;

use anyhow::Context;
use ca_api::{CertificateView, RevokeRequest, StepUpRequest};
use clap::Subcommand;

use crate::client::{exit, fail, totp_code, url_escape, CliResult, Connection, Listed};
use crate::output;

const COLUMNS: &[(&str, &str)] = &[
    ("ca", "CA"),
    ("serial", "SERIAL"),
    ("profile", "PROFILE"),
    ("status", "STATUS"),
    ("subject", "SUBJECT"),
    ("not_after", "NOT AFTER"),
    ("revocation_reason", "REASON"),
];

/// Certificate commands.
#[derive(Subcommand)]
pub enum CertCommand {
    /// List certificates.
    ///
    /// Example: ca-cli cert list --profile ambulance-terminal --expiring-within-days 30
    List {
        /// Profile id.
        #[arg(long)]
        profile: Option<String>,
        /// valid, revoked or hold.
        #[arg(long)]
        status: Option<String>,
        /// Only those expiring within this many days.
        #[arg(long)]
        expiring_within_days: Option<u64>,
        /// Only those whose subject contains this (a name, a staff number, a device id).
        #[arg(long)]
        subject: Option<String>,
        /// Only those with a subjectAltName containing this (a host name, an IP address, an
        /// e-mail address, a device URI; any case).
        #[arg(long)]
        san: Option<String>,
        /// Only the staff certificates of this staff number (the subject's serialNumber,
        /// exactly, any case).
        #[arg(long)]
        staff_id: Option<String>,
        /// Only those whose serial starts with these hex digits.
        #[arg(long)]
        serial: Option<String>,
        /// Only those this user asked for.
        #[arg(long)]
        requester: Option<String>,
        /// At most this many, newest first (1-1000).
        #[arg(long, default_value = "100")]
        limit: u32,
        /// Every one that matches, page by page.
        #[arg(long)]
        all: bool,
    },
    /// Show one certificate.
    ///
    /// Example: ca-cli cert show issuing 4f1c...
    Show {
        /// CA id.
        ca: String,
        /// Serial (hex).
        serial: String,
    },
    /// Download a certificate (PEM, or DER with --der).
    ///
    /// Example: ca-cli cert download issuing 4f1c... --out amb.pem
    Download {
        /// CA id.
        ca: String,
        /// Serial (hex).
        serial: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// DER instead of PEM.
        #[arg(long)]
        der: bool,
    },
    /// Revoke with a reason and a fresh TOTP code (security officers).
    ///
    /// Example: ca-cli cert revoke issuing 4f1c... --reason key-compromise --comment "terminal lost"
    Revoke {
        /// CA id.
        ca: String,
        /// Serial (hex).
        serial: String,
        /// key-compromise, cessation-of-operation, superseded, affiliation-changed, privilege-withdrawn, ca-compromise, unspecified.
        #[arg(long)]
        reason: String,
        /// When the key was compromised (RFC 3339).
        #[arg(long)]
        invalidity_date: Option<String>,
        /// Fresh TOTP code (prompted when omitted).
        #[arg(long)]
        totp: Option<String>,
        /// Comment for the audit trail.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Put on hold (certificateHold).
    ///
    /// Example: ca-cli cert hold issuing 4f1c... --comment "terminal missing"
    Hold {
        /// CA id.
        ca: String,
        /// Serial (hex).
        serial: String,
        /// Fresh TOTP code.
        #[arg(long)]
        totp: Option<String>,
        /// Comment.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Release from hold.
    ///
    /// Example: ca-cli cert release issuing 4f1c... --comment "terminal found"
    Release {
        /// CA id.
        ca: String,
        /// Serial (hex).
        serial: String,
        /// Fresh TOTP code.
        #[arg(long)]
        totp: Option<String>,
        /// Comment.
        #[arg(long, default_value = "")]
        comment: String,
    },
}

fn check_id(value: &str, what: &str) -> CliResult<()> {
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(fail(exit::USAGE, format!("invalid {what} {value:?}")));
    }
    Ok(())
}

/// Runs a certificate command.
pub fn run(conn: &Connection, command: CertCommand, json_out: bool) -> CliResult<()> {
    match command {
        CertCommand::List {
            profile,
            status,
            expiring_within_days,
            subject,
            san,
            staff_id,
            serial,
            requester,
            limit,
            all,
        } => {
            let mut query = vec![format!("limit={limit}")];
            let text = [
                ("profile", profile),
                ("status", status),
                ("subject", subject),
                ("san", san),
                ("staff_id", staff_id),
                ("serial", serial),
                ("requester", requester),
            ];
            for (name, value) in text {
                if let Some(v) = value {
                    query.push(format!("{name}={}", url_escape(&v)));
                }
            }
            if let Some(d) = expiring_within_days {
                query.push(format!("expiring_within_days={d}"));
            }
            let path = format!("/api/v1/certificates?{}", query.join("&"));
            let list: Listed<CertificateView> = conn.get_list(&path, all)?;
            output::print(json_out, &list.items, COLUMNS);
            list.footer();
        }
        CertCommand::Show { ca, serial } => {
            check_id(&ca, "CA")?;
            check_id(&serial, "serial")?;
            let view: CertificateView = conn.get(&format!("/api/v1/certificates/{ca}/{serial}"))?;
            output::print(json_out, &view, COLUMNS);
            if !json_out {
                print_details(conn, &view);
            }
        }
        CertCommand::Download {
            ca,
            serial,
            out,
            der,
        } => {
            check_id(&ca, "CA")?;
            check_id(&serial, "serial")?;
            let format = if der { "der" } else { "pem" };
            let response = conn.call(
                "GET",
                &format!("/api/v1/certificates/{ca}/{serial}?format={format}"),
                None,
                true,
            )?;
            let bytes = response
                .bytes()
                .map_err(|e| fail(exit::UNAVAILABLE, e.to_string()))?;
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            out!("wrote {}", out.display());
        }
        CertCommand::Revoke {
            ca,
            serial,
            reason,
            invalidity_date,
            totp,
            comment,
        } => {
            check_id(&ca, "CA")?;
            check_id(&serial, "serial")?;
            let code = totp_code(totp)?;
            let body = RevokeRequest {
                reason,
                invalidity_date,
                totp: code,
                comment,
            };
            let view: CertificateView = conn.send(
                "POST",
                &format!("/api/v1/certificates/{ca}/{serial}/revoke"),
                &body,
            )?;
            output::print(json_out, &view, COLUMNS);
        }
        CertCommand::Hold {
            ca,
            serial,
            totp,
            comment,
        } => step(conn, "hold", &ca, &serial, totp, comment, json_out)?,
        CertCommand::Release {
            ca,
            serial,
            totp,
            comment,
        } => step(conn, "release", &ca, &serial, totp, comment, json_out)?,
    }
    Ok(())
}

fn step(
    conn: &Connection,
    action: &str,
    ca: &str,
    serial: &str,
    totp: Option<String>,
    comment: String,
    json_out: bool,
) -> CliResult<()> {
    check_id(ca, "CA")?;
    check_id(serial, "serial")?;
    let code = totp_code(totp)?;
    let view: CertificateView = conn.send(
        "POST",
        &format!("/api/v1/certificates/{ca}/{serial}/{action}"),
        &StepUpRequest {
            totp: code,
            comment,
        },
    )?;
    output::print(json_out, &view, COLUMNS);
    Ok(())
}

/// What `cert show` adds under the table: validity, names, key, and who asked and approved.
fn print_details(conn: &Connection, view: &CertificateView) {
    out!(
        "validity / 有効期間: {} .. {}",
        output::local_time(&view.not_before),
        output::local_time(&view.not_after)
    );
    out!("SANs / 別名: {}", output::list(&view.sans));
    out!("key / 鍵: {}", output::field(view.key.as_deref(), "-"));
    let Some(id) = &view.request_id else {
        return;
    };
    // The request shows who asked and who approved; a caller who may not see it sees the id.
    match conn.get::<ca_api::RequestView>(&format!("/api/v1/requests/{id}")) {
        Ok(request) => {
            out!(
                "request / 申請: {} by {}, {}{}",
                output::shown(&request.id),
                output::shown(&request.requester),
                output::shown(&request.justification),
                request
                    .work_order
                    .as_deref()
                    .map(|w| format!(" (work order {})", output::shown(w)))
                    .unwrap_or_default()
            );
            for d in &request.decisions {
                out!(
                    "  {} {} at {}: {}",
                    output::shown(&d.verdict),
                    output::shown(&d.approver),
                    output::local_time(&d.decided_at),
                    output::shown(&d.comment)
                );
            }
        }
        Err(_) => out!("request / 申請: {}", output::shown(id)),
    }
}
