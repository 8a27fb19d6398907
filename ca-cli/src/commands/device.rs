//! `device import fleet.csv`: registers many ambulance terminals at once. Each row is
//! `id[,csr-path]`: with a CSR path that CSR is submitted; without, a P-256 key and CSR are
//! generated into `--keys-dir`. One bad row never stops the rest; a summary lists failures.

use std::path::{Path, PathBuf};

use anyhow::Context;
use std::collections::{HashMap, HashSet};

use ca_api::{CertificateView, RequestView};
use clap::Args;
use serde::Serialize;

use crate::client::{exit, fail, url_escape, CliResult, Connection};
use crate::commands::csr::{build_csr, CsrCreate};
use crate::commands::key::{generate_key, key_pem, write_new_private, Algorithm};
use crate::commands::request::{submit, Submit};
use crate::output;

/// `ca-cli device import`.
#[derive(Args)]
#[command(
    after_help = "CSV: one device per line, `id` or `id,csr-path` (a header line `id,csr` is skipped).\n\nExample:\n  ca-cli device import fleet.csv --keys-dir fleet-keys"
)]
pub struct Import {
    /// The CSV file.
    pub csv: PathBuf,
    /// Folder for generated keys, CSRs and issued certificates.
    #[arg(long)]
    pub keys_dir: Option<PathBuf>,
    /// Profile.
    #[arg(long, default_value = "ambulance-terminal")]
    pub profile: String,
    /// Justification recorded with every request.
    #[arg(long, default_value = "bulk device enrolment")]
    pub justification: String,
    /// Issue again for devices that already have a valid certificate under the profile
    /// (without it they are skipped, so a re-run imports only what is missing).
    #[arg(long)]
    pub reissue: bool,
}

/// What `device import --json` prints.
#[derive(Serialize)]
struct ImportSummary {
    rows: usize,
    issued: usize,
    pending: usize,
    /// Devices skipped because they already have a valid certificate (no `--reissue`).
    skipped: usize,
    failed: usize,
    failures: Vec<RowFailure>,
    /// Devices issued while an older valid certificate of theirs exists (`--reissue`, or a
    /// CSR with another subject): the server names those certificates.
    duplicates: Vec<RowDuplicate>,
}

/// A device issued alongside older valid certificates of the same subject.
#[derive(Serialize)]
struct RowDuplicate {
    line: usize,
    id: String,
    existing: Vec<String>,
}

/// A row that failed, and why.
#[derive(Serialize)]
struct RowFailure {
    line: usize,
    id: String,
    error: String,
}

fn valid_id(id: &str) -> bool {
    (1..=40).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn import_row(
    conn: &Connection,
    args: &Import,
    base: &Path,
    id: &str,
    csr_path: Option<&str>,
) -> CliResult<RequestView> {
    if !valid_id(id) {
        return Err(fail(
            exit::REFUSED,
            format!("device id {id:?} must be 1-40 lower-case letters, digits or '-'"),
        ));
    }
    let csr_file = match csr_path {
        Some(p) => base.join(p),
        None => {
            let dir = args
                .keys_dir
                .as_ref()
                .ok_or_else(|| fail(exit::USAGE, "rows without a CSR need --keys-dir"))?;
            let key = generate_key(Algorithm::P256)?;
            let key_file = dir.join(format!("{id}.key"));
            write_new_private(&key_file, &key_pem(&key, None)?)?;
            let csr_file = dir.join(format!("{id}.csr"));
            let spec = CsrCreate {
                key: key_file,
                out: csr_file.clone(),
                cn: Some(format!("amb-{id}")),
                uri: vec![format!("urn:mamori:device:ambulance:{id}")],
                ..CsrCreate::default()
            };
            std::fs::write(&csr_file, build_csr(&key, &spec)?)
                .with_context(|| format!("writing {}", csr_file.display()))?;
            csr_file
        }
    };
    let view = submit(
        conn,
        &Submit {
            profile: args.profile.clone(),
            csr: csr_file,
            justification: args.justification.clone(),
            work_order: None,
            not_before: None,
            not_after: None,
        },
    )?;
    if let (Some(dir), "issued") = (&args.keys_dir, view.status.as_str()) {
        let request_id = &view.id;
        let pem = conn
            .call(
                "GET",
                &format!("/api/v1/requests/{request_id}/certificate"),
                None,
                true,
            )?
            .text()
            .map_err(|e| fail(exit::UNAVAILABLE, e.to_string()))?;
        let out = dir.join(format!("{id}.pem"));
        // Never over an earlier run's certificate: a second file for the same device would
        // leave the older one in use unnoticed.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&out)
            .with_context(|| format!("creating {} (it must not exist yet)", out.display()))?;
        std::io::Write::write_all(&mut file, pem.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(view)
}

/// Runs `device import`.
pub fn import(conn: &Connection, args: Import, json_out: bool) -> CliResult<()> {
    let text = std::fs::read_to_string(&args.csv)
        .with_context(|| format!("reading {}", args.csv.display()))?;
    if let Some(dir) = &args.keys_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    conn.session()?;
    let base = args.csv.parent().map(Path::to_path_buf).unwrap_or_default();
    let rows: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .filter(|(i, l)| !(*i == 1 && l.to_ascii_lowercase().starts_with("id")))
        .collect();
    if rows.is_empty() {
        return Err(fail(
            exit::USAGE,
            format!(
                "{} has no device rows (one device id per line, optionally `id,csr`)",
                args.csv.display()
            ),
        ));
    }
    // The devices that already hold a valid certificate under the profile, by CN.
    let existing: HashSet<String> = if args.reissue {
        HashSet::new()
    } else {
        let path = format!(
            "/api/v1/certificates?profile={}&status=valid&limit=1000",
            url_escape(&args.profile)
        );
        conn.get_list::<CertificateView>(&path, true)?
            .items
            .iter()
            .filter_map(|c| {
                c.subject
                    .split(',')
                    .find_map(|rdn| rdn.trim().strip_prefix("CN=").map(str::to_string))
            })
            .collect()
    };
    let bar = indicatif::ProgressBar::new(rows.len() as u64);
    use std::io::IsTerminal;
    if json_out || !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} devices, {per_sec}, {eta} left, {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_message("0 failed");
    let mut issued = 0usize;
    let mut pending = 0usize;
    let mut skipped = 0usize;
    let mut failures = Vec::new();
    let mut duplicates = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (line, row) in &rows {
        let mut fields = row.split(',').map(str::trim);
        let id = fields.next().unwrap_or_default();
        let csr = fields.next().filter(|s| !s.is_empty());
        let fail_row = |error: String| RowFailure {
            line: *line,
            id: id.to_string(),
            error,
        };
        if let Some(first) = first_line.get(id) {
            failures.push(fail_row(format!(
                "device {id} is on line {first} already; each device once per file"
            )));
        } else if csr.is_none() && existing.contains(&format!("amb-{id}")) {
            first_line.insert(id.to_string(), *line);
            skipped += 1;
        } else {
            first_line.insert(id.to_string(), *line);
            match import_row(conn, &args, &base, id, csr) {
                Ok(view) => {
                    if view.status == "issued" {
                        issued += 1;
                    } else {
                        pending += 1;
                    }
                    if !view.duplicates.is_empty() {
                        duplicates.push(RowDuplicate {
                            line: *line,
                            id: id.to_string(),
                            existing: view.duplicates.clone(),
                        });
                    }
                }
                Err(e) => failures.push(fail_row(format!("{:#}", e.error))),
            }
        }
        bar.set_message(format!("{} failed", failures.len()));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let summary = ImportSummary {
        rows: rows.len(),
        issued,
        pending,
        skipped,
        failed: failures.len(),
        failures,
        duplicates,
    };
    let failures = &summary.failures;
    if json_out {
        output::print(true, &summary, &[]);
    } else {
        out!(
            "{} rows: {issued} issued, {pending} pending approval, {skipped} skipped (valid certificate already; --reissue to issue again), {} failed",
            rows.len(),
            failures.len()
        );
        for d in &summary.duplicates {
            out!(
                "  line {}: {} also has valid certificate(s) {}",
                d.line,
                output::shown(&d.id),
                output::shown(&d.existing.join(", "))
            );
        }
        for f in failures {
            out!(
                "  line {}: {}: {}",
                f.line,
                output::shown(&f.id),
                output::shown(&f.error)
            );
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(fail(
            exit::REFUSED,
            format!("{} of {} rows failed", failures.len(), rows.len()),
        ))
    }
}
