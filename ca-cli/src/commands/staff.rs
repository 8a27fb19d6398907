//! `ca-cli staff leave`: a leaver or mover (by staff id, e-mail, account), or an HR export's
//! CSV of them: every certificate revoked and the accounts disabled, after a dry run that
//! shows what would happen. Writes a result report (CSV) when asked.

use std::path::PathBuf;

use ca_api::{LeaveReport, LeaveRequest, Leaver};
use clap::Subcommand;

use crate::client::{exit, fail, totp_code, CliResult, Connection};
use crate::output::print;

/// Leavers per request (the server's limit).
const CHUNK: usize = 1000;

/// `ca-cli staff ...`.
#[derive(Subcommand)]
pub enum StaffCommand {
    /// Revoke a leaver's certificates (staff id, e-mail) and disable their account.
    ///
    /// Example: ca-cli staff leave --csv leavers-2026-12.csv --dry-run --report dry.csv
    Leave {
        /// Staff id (the subject's serialNumber).
        staff_id: Option<String>,
        /// E-mail address on their certificates.
        #[arg(long)]
        email: Option<String>,
        /// Their account, to disable (needs the admin role too).
        #[arg(long)]
        username: Option<String>,
        /// An HR export: a CSV with a header naming staff_id, email and/or username columns.
        #[arg(long, conflicts_with_all = ["staff_id", "email", "username"])]
        csv: Option<PathBuf>,
        /// affiliation-changed (default) or cessation-of-operation.
        #[arg(long)]
        reason: Option<String>,
        /// Show what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write a result report (CSV) here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// TOTP code (asked for when not given; not needed for a dry run).
        #[arg(long)]
        totp: Option<String>,
    },
}

/// Reads the leavers of an HR export: a header row, then one leaver per row.
fn read_csv(path: &PathBuf) -> CliResult<Vec<Leaver>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(exit::ERROR, format!("{}: {e}", path.display())))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let cells = |line: &str| csv_fields(line);
    let header = cells(lines.next().unwrap_or_default());
    let column = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (id, email, user) = (column("staff_id"), column("email"), column("username"));
    if id.is_none() && email.is_none() {
        return Err(fail(
            exit::USAGE,
            format!(
                "{}: the header must name a staff_id or email column / ヘッダーに staff_id か email の列が必要です",
                path.display()
            ),
        ));
    }
    let pick = |row: &[String], i: Option<usize>| {
        i.and_then(|i| row.get(i))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    Ok(lines
        .map(|line| {
            let row = cells(line);
            Leaver {
                staff_id: pick(&row, id),
                email: pick(&row, email),
                username: pick(&row, user),
            }
        })
        .collect())
}

/// The fields of one CSV line (RFC 4180): commas inside double quotes stay in the field, and
/// a doubled quote is one quote. Fields are trimmed.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field).trim().to_string()),
            (c, _) => field.push(c),
        }
    }
    fields.push(field.trim().to_string());
    fields
}

/// One CSV cell: quoted, a leading = + - @ neutralised so a spreadsheet shows text.
pub(crate) fn csv_cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Runs `ca-cli staff ...`.
pub fn run(conn: &Connection, command: StaffCommand, json: bool) -> CliResult<()> {
    let StaffCommand::Leave {
        staff_id,
        email,
        username,
        csv,
        reason,
        dry_run,
        report,
        totp,
    } = command;
    let leavers = match &csv {
        Some(path) => read_csv(path)?,
        None => vec![Leaver {
            staff_id,
            email,
            username,
        }],
    };
    if leavers.is_empty() {
        return Err(fail(
            exit::USAGE,
            "no leavers given / 退職者が指定されていません",
        ));
    }
    let total = leavers.len();
    let mut done = 0;
    let mut all = LeaveReport {
        dry_run,
        leavers: Vec::new(),
        revoked: 0,
        disabled: 0,
    };
    for chunk in leavers.chunks(CHUNK) {
        let totp = if dry_run {
            String::new()
        } else {
            totp_code(totp.clone())?
        };
        let answer: LeaveReport = conn.send(
            "POST",
            "/api/v1/staff/leave",
            &LeaveRequest {
                leavers: chunk.to_vec(),
                reason: reason.clone(),
                dry_run,
                totp,
            },
        )?;
        for entry in &answer.leavers {
            done += 1;
            let who = entry
                .staff_id
                .as_deref()
                .or(entry.email.as_deref())
                .unwrap_or("?");
            let changed = entry
                .certificates
                .iter()
                .filter(|c| c.action == "revoked" || c.action == "would-revoke")
                .count();
            eprintln!(
                "[{done}/{total}] {}: {changed} certificate(s) {}{}{}",
                crate::output::shown(who),
                if dry_run {
                    "would be revoked"
                } else {
                    "revoked"
                },
                entry
                    .account
                    .as_deref()
                    .map(|a| format!(", account {a}"))
                    .unwrap_or_default(),
                entry
                    .error
                    .as_deref()
                    .map(|e| format!(", error: {}", crate::output::shown(e)))
                    .unwrap_or_default(),
            );
        }
        all.revoked += answer.revoked;
        all.disabled += answer.disabled;
        all.leavers.extend(answer.leavers);
    }
    if let Some(path) = report {
        let mut out = String::from(
            "staff_id,email,username,ca,serial,subject,profile,action,account,error\n",
        );
        for entry in &all.leavers {
            let base = [
                entry.staff_id.as_deref().unwrap_or(""),
                entry.email.as_deref().unwrap_or(""),
                entry.username.as_deref().unwrap_or(""),
            ];
            let tail = [
                entry.account.as_deref().unwrap_or(""),
                entry.error.as_deref().unwrap_or(""),
            ];
            let rows: Vec<[&str; 5]> = if entry.certificates.is_empty() {
                vec![["", "", "", "", ""]]
            } else {
                entry
                    .certificates
                    .iter()
                    .map(|c| {
                        [
                            c.ca.as_str(),
                            c.serial.as_str(),
                            c.subject.as_str(),
                            c.profile.as_str(),
                            c.action.as_str(),
                        ]
                    })
                    .collect()
            };
            for row in rows {
                let cells: Vec<String> = base
                    .iter()
                    .chain(row.iter())
                    .chain(tail.iter())
                    .map(|c| csv_cell(c))
                    .collect();
                out.push_str(&cells.join(","));
                out.push('\n');
            }
        }
        std::fs::write(&path, out)
            .map_err(|e| fail(exit::ERROR, format!("{}: {e}", path.display())))?;
    }
    if json {
        print(true, &all, &[]);
    } else {
        eprintln!(
            "{}: {} certificate(s), {} account(s) / {}: 証明書 {} 件、アカウント {} 件",
            if dry_run {
                "dry run, would change"
            } else {
                "done"
            },
            all.revoked,
            all.disabled,
            if dry_run {
                "確認のみ（変更なし）"
            } else {
                "完了"
            },
            all.revoked,
            all.disabled
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_keep_quoted_commas_and_quotes() {
        assert_eq!(
            csv_fields(r#"STAFF-1, "Sato, Taro" ,"say ""hi""",x"#),
            ["STAFF-1", "Sato, Taro", r#"say "hi""#, "x"]
        );
        assert_eq!(csv_cell("=cmd()"), "\"'=cmd()\"");
    }
}
