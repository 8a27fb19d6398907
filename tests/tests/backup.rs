//! Backups: `ca-server backup` while the server runs, then issuance and revocation, then a crash
//! and `ca-server restore`. The restored CA knows what it knew at the backup, refuses a wrong
//! passphrase or an altered file, publishes cRLNumbers above any it published before (even those
//! published after the backup), and carries on issuing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use mamori_e2e::{crl_number, device_csr, Backend, Person, Server};
use serde_json::{json, Value};

fn issue(server: &Server, enroller: &Person, id: &str) -> String {
    let (_key, pem) = device_csr(id);
    let (status, body) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&enroller.token()),
        Some(json!({"profile": "ambulance-terminal", "csr": pem, "justification": "backup test"})),
    );
    assert_eq!(status, 201, "{body}");
    body["serial"].as_str().unwrap().to_string()
}

fn published_crl_number(server: &Server) -> u128 {
    crl_number(&server.public_get("/crl/issuing.crl").bytes().unwrap())
}

fn status_of(server: &Server, token: &str, serial: &str) -> (u16, Value) {
    server.call(
        "GET",
        &format!("/api/v1/certificates/issuing/{serial}"),
        Some(token),
        None,
    )
}

fn backup_and_restore(backend: Backend) {
    let mut server = Server::start(backend, &[]);
    server.login(&server.admin);
    let enroller = server.user("enroller", &["device-enroller"]);
    let officer = server.user("oscar", &["security-officer"]);
    let auditor = server.user("auditor", &["auditor"]);
    let kept = issue(&server, &enroller, "kept");

    let file = server.path().join("mamori.bak");
    let out = server.ca_server(&["backup", "--out", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sealed = std::fs::read(&file).unwrap();
    assert!(sealed.starts_with(b"MAMORI-BACKUP-1\n"));
    for plain in [&b"SQLite format 3"[..], b"BEGIN", b"PGDMP", b"amb-kept"] {
        assert!(
            !sealed.windows(plain.len()).any(|w| w == plain),
            "the backup shows plaintext"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // After the backup: a new certificate, a revocation, and CRLs published.
    let lost = issue(&server, &enroller, "after");
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{kept}/revoke"),
        Some(&officer.token()),
        Some(json!({"totp": officer.code(), "reason": "superseded"})),
    );
    assert_eq!(status, 200, "{body}");
    let published_after_backup = published_crl_number(&server);

    server.kill();
    // A wrong passphrase and an altered file are refused, leaving the database alone.
    let wrong = server.path().join("wrong-pass");
    std::fs::write(&wrong, "not the passphrase\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = server.ca_server(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--passphrase-file",
        wrong.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    let mut altered = sealed.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 1;
    let altered_file = server.path().join("altered.bak");
    std::fs::write(&altered_file, &altered).unwrap();
    let out = server.ca_server(&["restore", "--from", altered_file.to_str().unwrap()]);
    assert!(!out.status.success());

    let before_restore = ca_core::time::UnixTime::now().as_secs() / 30;
    let out = server.ca_server(&["restore", "--from", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.restart();

    // The restore ended every session and refuses TOTP codes through the step after it: a code
    // used between the backup and the restore cannot be replayed. Everyone logs in again.
    let (status, _) = server.call("GET", "/api/v1/me", Some(&auditor.token()), None);
    assert_eq!(
        status, 401,
        "a session from the backup outlived the restore"
    );
    assert_eq!(server.query("SELECT count(*) FROM sessions"), "0");
    let refused_through: u64 = server
        .query("SELECT min(last_totp_step) FROM users")
        .trim()
        .parse()
        .unwrap();
    assert!(refused_through > before_restore, "{refused_through}");
    let (status, _) = server.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "auditor", "password": auditor.password, "totp": auditor.stale_code(0)})),
    );
    assert_eq!(status, 401, "a code of the restore's step is refused");
    for person in [&server.admin, &enroller, &officer, &auditor] {
        person.skip_codes_through(refused_through);
        server.login(person);
    }

    // What the backup held is back; what came after is not.
    let token = auditor.token();
    let (status, body) = status_of(&server, &token, &kept);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], json!("valid"), "as it was at the backup");
    let (status, _) = status_of(&server, &token, &lost);
    assert_eq!(status, 404);
    // cRLNumbers continue above everything published before, including after the backup.
    assert!(
        published_crl_number(&server) > published_after_backup,
        "a restored CA must not reuse a published cRLNumber"
    );
    // It carries on: revoke again, issue anew; serials stay unique; the audit chain verifies
    // and records the restore.
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{kept}/revoke"),
        Some(&officer.token()),
        Some(json!({"totp": officer.code(), "reason": "superseded"})),
    );
    assert_eq!(status, 200, "{body}");
    let next = issue(&server, &enroller, "next");
    assert_ne!(next, lost);
    assert_eq!(
        server.query("SELECT count(*) - count(DISTINCT serial) FROM certificates"),
        "0"
    );
    let (status, verify) = server.call("GET", "/api/v1/audit/verify", Some(&token), None);
    assert_eq!(status, 200);
    assert_eq!(verify["ok"], json!(true), "{verify}");
    assert_eq!(
        server.query("SELECT count(*) FROM audit_log WHERE action = 'backup.restore'"),
        "1"
    );
}

#[test]
fn backup_while_running_then_restore_sqlite() {
    backup_and_restore(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn backup_while_running_then_restore_postgres() {
    backup_and_restore(Backend::Postgres);
}
