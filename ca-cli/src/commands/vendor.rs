//! `ca-cli vendor export --month YYYY-MM`: every vendor certificate of a month (Japan time)
//! with who asked, the work order, the window and the approvers, as a table, JSON or a CSV
//! for the access-log review.

use std::path::PathBuf;

use ca_api::VendorCertificateView;
use clap::Subcommand;

use crate::client::{exit, fail, CliResult, Connection};
use crate::output::print;

/// `ca-cli vendor ...`.
#[derive(Subcommand)]
pub enum VendorCommand {
    /// The month's vendor certificates (auditors, security officers, admins).
    ///
    /// Example: ca-cli vendor export --month 2026-11 --out vendors-2026-11.csv
    Export {
        /// The month, YYYY-MM (Japan time).
        #[arg(long)]
        month: String,
        /// Write a CSV here instead of printing a table.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

const COLUMNS: &[(&str, &str)] = &[
    ("issued_at", "ISSUED"),
    ("organization", "ORGANIZATION"),
    ("requester", "REQUESTER"),
    ("work_order", "WORK ORDER"),
    ("not_before", "FROM"),
    ("not_after", "TO"),
    ("status", "STATUS"),
    ("approvers", "APPROVERS"),
    ("serial", "SERIAL"),
];

/// Runs `ca-cli vendor ...`.
pub fn run(conn: &Connection, command: VendorCommand, json: bool) -> CliResult<()> {
    let VendorCommand::Export { month, out } = command;
    if !month.chars().all(|c| c.is_ascii_digit() || c == '-') {
        return Err(fail(
            exit::USAGE,
            "--month is YYYY-MM / --month は YYYY-MM の形です",
        ));
    }
    let list: Vec<VendorCertificateView> =
        conn.get(&format!("/api/v1/vendor-certificates?month={month}"))?;
    match out {
        None => print(json, &list, COLUMNS),
        Some(path) => {
            let mut csv = String::from(
                "issued_at,organization,requester,work_order,justification,subject,not_before,not_after,status,revoked_at,approvers,ca,serial,profile\n",
            );
            for v in &list {
                let cells = [
                    v.issued_at.as_str(),
                    v.organization.as_deref().unwrap_or(""),
                    &v.requester,
                    v.work_order.as_deref().unwrap_or(""),
                    &v.justification,
                    &v.subject,
                    &v.not_before,
                    &v.not_after,
                    &v.status,
                    v.revoked_at.as_deref().unwrap_or(""),
                    &v.approvers.join(" "),
                    &v.ca,
                    &v.serial,
                    &v.profile,
                ];
                let line: Vec<String> = cells.iter().map(|c| super::staff::csv_cell(c)).collect();
                csv.push_str(&line.join(","));
                csv.push('\n');
            }
            std::fs::write(&path, csv)
                .map_err(|e| fail(exit::ERROR, format!("{}: {e}", path.display())))?;
            eprintln!(
                "{} vendor certificate(s) of {month} written to {} / {month} の保守用証明書 {} 件",
                list.len(),
                path.display(),
                list.len()
            );
        }
    }
    Ok(())
}
