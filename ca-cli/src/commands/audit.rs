//! `audit list|export|verify|checkpoints|checkpoint` (auditors).
//!
//! `verify --checkpoints FILE` checks the chain here, not on the server: it reads every entry
//! through the API, recomputes each hash (`ca_core::audit`), and holds the chain to the signed
//! checkpoints in FILE — an auditor's own copy of `/audit/checkpoints`, kept where the
//! database's administrator cannot reach it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::client::{exit, fail, CliResult, Connection};
use crate::client::{url_escape, Listed};
use crate::output;
use ca_api::{AuditVerifyView, AuditView, CheckpointFile};
use ca_core::audit::Checkpoint;

/// Audit commands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// List entries.
    ///
    /// Example: ca-cli audit list --action certificate.revoke
    List {
        /// Oldest first, from the entry after this sequence number (default: newest first).
        #[arg(long)]
        after: Option<u64>,
        /// At most this many (1-1000).
        #[arg(long, default_value = "100")]
        limit: u32,
        /// Only this action (login.failed, request.approve, certificate.revoke, ...).
        #[arg(long)]
        action: Option<String>,
        /// Only this actor's (a user name, "system").
        #[arg(long)]
        actor: Option<String>,
        /// Only on this target (a user, a request id, `<ca>/<serial>`).
        #[arg(long)]
        target: Option<String>,
        /// Only at or after this time (RFC 3339, e.g. 2026-12-01T09:00:00+09:00).
        #[arg(long)]
        since: Option<String>,
        /// Only at or before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Every one that matches, page by page.
        #[arg(long)]
        all: bool,
    },
    /// Export every entry as JSON Lines.
    ///
    /// Example: ca-cli audit export --out audit-2026-11.jsonl
    Export {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify the hash chain (exit 6 when broken): on the server, or here against the signed
    /// checkpoints you kept, which detects a cut tail or a rewritten entry up to the newest one.
    ///
    /// Example: ca-cli audit verify --checkpoints audit-checkpoints-2026-12.json
    Verify {
        /// A checkpoints file saved earlier (`ca-cli audit checkpoints --out`): verify here,
        /// against it.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
    },
    /// Save the audit key and the signed checkpoints the server publishes, to keep offline.
    ///
    /// Example: ca-cli audit checkpoints --out audit-checkpoints-2026-12.json
    Checkpoints {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a checkpoint of the chain's head now (auditor, admin, security officer).
    ///
    /// Example: ca-cli audit checkpoint
    Checkpoint,
}

/// Every entry, read through the API a page at a time.
fn all_entries(conn: &Connection) -> CliResult<Vec<AuditView>> {
    let mut after = 0u64;
    let mut all = Vec::new();
    loop {
        let page: Vec<AuditView> = conn.get(&format!("/api/v1/audit?after={after}&limit=1000"))?;
        if page.is_empty() {
            return Ok(all);
        }
        for entry in page {
            after = entry.seq;
            all.push(entry);
        }
    }
}

/// The server's published checkpoints file (`GET <public>/audit/checkpoints`).
fn fetch_checkpoints(conn: &Connection, public_url: &str) -> CliResult<String> {
    let url = format!("{}/audit/checkpoints", public_url.trim_end_matches('/'));
    let response = conn
        .http()?
        .get(&url)
        .send()
        .map_err(|e| fail(exit::UNAVAILABLE, format!("GET {url}: {e}")))?;
    if !response.status().is_success() {
        return Err(fail(
            exit::UNAVAILABLE,
            format!("GET {url}: {}", response.status()),
        ));
    }
    response
        .text()
        .map_err(|e| fail(exit::UNAVAILABLE, e.to_string()))
}

/// Verifies `entries` here against the checkpoints file `file`: every hash recomputed, every
/// link checked, every checkpoint's signature and entry. Returns (entries, checkpoints).
fn verify_here(entries: &[AuditView], file: &str) -> Result<(usize, usize), String> {
    use ca_core::audit::{verify_chain, verify_checkpoints, AuditRecord, ChainedRecord};
    let parsed: CheckpointFile =
        serde_json::from_str(file).map_err(|e| format!("checkpoints file: {e}"))?;
    let spki = parse_public_key(&parsed.audit_key).ok_or("checkpoints file: no audit_key")?;
    let chain: Vec<ChainedRecord> = entries
        .iter()
        .map(|e| ChainedRecord {
            record: AuditRecord {
                seq: e.seq,
                at: e.at_unix,
                actor: e.actor.clone(),
                action: e.action.clone(),
                target: e.target.clone(),
                details: e.details.to_string(),
            },
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
        })
        .collect();
    verify_chain(&chain).map_err(|b| b.to_string())?;
    let matched =
        verify_checkpoints(&chain, &parsed.checkpoints, &spki).map_err(|f| f.to_string())?;
    Ok((chain.len(), matched))
}

fn parse_public_key(pem: &str) -> Option<ca_core::spki::SubjectPublicKeyInfoOwned> {
    use ca_core::der::Decode;
    let (label, der) = ca_core::der::pem::decode_vec(pem.trim().as_bytes()).ok()?;
    (label == "PUBLIC KEY")
        .then(|| ca_core::spki::SubjectPublicKeyInfoOwned::from_der(&der).ok())
        .flatten()
}

/// Runs an audit command.
pub fn run(
    conn: &Connection,
    public_url: &str,
    command: AuditCommand,
    json_out: bool,
) -> CliResult<()> {
    match command {
        AuditCommand::List {
            after,
            limit,
            action,
            actor,
            target,
            since,
            until,
            all,
        } => {
            let mut query = vec![format!("limit={limit}")];
            if let Some(a) = after {
                query.push(format!("after={a}"));
            }
            for (name, value) in [
                ("action", action),
                ("actor", actor),
                ("target", target),
                ("since", since),
                ("until", until),
            ] {
                if let Some(v) = value {
                    query.push(format!("{name}={}", url_escape(&v)));
                }
            }
            let path = format!("/api/v1/audit?{}", query.join("&"));
            let entries: Listed<AuditView> = conn.get_list(&path, all)?;
            output::print(
                json_out,
                &entries.items,
                &[
                    ("seq", "SEQ"),
                    ("at", "AT"),
                    ("actor", "ACTOR"),
                    ("action", "ACTION"),
                    ("target", "TARGET"),
                ],
            );
            entries.footer();
        }
        AuditCommand::Export { out } => {
            let mut file = std::fs::File::create(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            let entries = all_entries(conn)?;
            let count = entries.len();
            for entry in &entries {
                writeln!(file, "{}", serde_json::to_string(entry)?)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            // The checkpoints go with every export, so the export can be verified later.
            let checkpoints_path = PathBuf::from(format!("{}.checkpoints.json", out.display()));
            std::fs::write(&checkpoints_path, fetch_checkpoints(conn, public_url)?)
                .with_context(|| format!("writing {}", checkpoints_path.display()))?;
            out!(
                "exported {count} entries to {} and the signed checkpoints to {}",
                out.display(),
                checkpoints_path.display()
            );
        }
        AuditCommand::Checkpoints { out } => {
            let text = fetch_checkpoints(conn, public_url)?;
            let parsed: CheckpointFile = serde_json::from_str(&text)
                .map_err(|e| fail(exit::UNAVAILABLE, format!("the server's checkpoints: {e}")))?;
            std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
            out!(
                "saved {} checkpoints (newest at entry {}) and the audit key to {}",
                parsed.checkpoints.len(),
                parsed
                    .checkpoints
                    .last()
                    .map(|c| c.seq.to_string())
                    .unwrap_or("-".into()),
                out.display()
            );
        }
        AuditCommand::Checkpoint => {
            let checkpoint: Checkpoint = conn.post("/api/v1/audit/checkpoints")?;
            output::print(
                json_out,
                &checkpoint,
                &[("seq", "ENTRY"), ("hash", "HASH"), ("at", "SIGNED AT")],
            );
        }
        AuditCommand::Verify {
            checkpoints: Some(path),
        } => {
            let file = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let entries = all_entries(conn)?;
            match verify_here(&entries, &file) {
                Ok((count, matched)) => {
                    if json_out {
                        output::print(
                            true,
                            &AuditVerifyView {
                                ok: true,
                                entries: count,
                                broken_at: None,
                                reason: None,
                                checkpoints: matched,
                            },
                            &[],
                        );
                    } else {
                        out!(
                            "audit chain intact: {count} entries, {matched} signed checkpoints from {} match",
                            path.display()
                        );
                    }
                }
                Err(reason) => return Err(fail(exit::REFUSED, reason)),
            }
        }
        AuditCommand::Verify { checkpoints: None } => {
            let result: AuditVerifyView = conn.get("/api/v1/audit/verify")?;
            if json_out {
                output::print(true, &result, &[]);
            }
            if result.ok {
                if !json_out {
                    out!(
                        "audit chain intact: {} entries, {} signed checkpoints stored with it match",
                        result.entries, result.checkpoints
                    );
                }
            } else {
                return Err(fail(
                    exit::REFUSED,
                    format!(
                        "audit chain broken at entry {}: {}",
                        result
                            .broken_at
                            .map(|seq| seq.to_string())
                            .unwrap_or("?".into()),
                        output::shown(result.reason.as_deref().unwrap_or("?"))
                    ),
                ));
            }
        }
    }
    Ok(())
}
