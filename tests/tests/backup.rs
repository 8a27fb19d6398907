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
    server.assert_audit_intact(&token);
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

/// A restore drill under load: `ca-server backup` runs while two enrollers issue and an officer
/// revokes; the backup is restored on "another machine" (a fresh data folder and database).
/// Every certificate confirmed before the backup started answers there by OCSP and CRL as it
/// did on the original when the backup started; every one confirmed after it finished is
/// unknown there; the restored CA's new serials and cRLNumbers collide with nothing the
/// original published.
#[test]
fn restore_drill_under_load() {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    let server = Server::start(Backend::Sqlite, &[]);
    server.login(&server.admin);
    let enrollers = [
        server.user("enroller-a", &["device-enroller"]),
        server.user("enroller-b", &["device-enroller"]),
    ];
    let officer = server.user("oscar", &["security-officer"]);
    // serial → (leaf, confirmed at); revocations confirmed, with when.
    let issued: Mutex<BTreeMap<String, (openssl::x509::X509, Instant)>> = Mutex::default();
    let revoked: Mutex<BTreeMap<String, Instant>> = Mutex::default();
    let issuer = mamori_e2e::issuing_certificate(&server.public_url);
    let stop = AtomicBool::new(false);
    let file = server.path().join("drill.bak");
    let (started, finished) = std::thread::scope(|scope| {
        for (k, enroller) in enrollers.iter().enumerate() {
            let (stop, issued, server) = (&stop, &issued, &server);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let d = mamori_e2e::issue_device(server, enroller, &format!("d{k}-{n}"));
                    issued
                        .lock()
                        .unwrap()
                        .insert(d.serial, (d.leaf, Instant::now()));
                    // A modest, steady load keeps the checks afterwards short.
                    std::thread::sleep(Duration::from_millis(40));
                }
            });
        }
        let (stop, issued, revoked, server, officer) =
            (&stop, &issued, &revoked, &server, &officer);
        scope.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let target = issued
                    .lock()
                    .unwrap()
                    .keys()
                    .find(|s| !revoked.lock().unwrap().contains_key(*s))
                    .cloned();
                let (Some(serial), Some(code)) = (target, officer.try_code()) else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                let (status, body) = server.call(
                    "POST",
                    &format!("/api/v1/certificates/issuing/{serial}/revoke"),
                    Some(&officer.token()),
                    Some(json!({"totp": code, "reason": "key-compromise"})),
                );
                assert_eq!(status, 200, "{body}");
                revoked.lock().unwrap().insert(serial, Instant::now());
            }
        });
        // Load first, then the backup in the middle of it, then more load.
        std::thread::sleep(Duration::from_millis(1000));
        let started = Instant::now();
        let out = server.ca_server(&["backup", "--out", file.to_str().unwrap()]);
        let finished = Instant::now();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(1000));
        stop.store(true, Ordering::Relaxed);
        (started, finished)
    });
    let issued = issued.into_inner().unwrap();
    let revoked = revoked.into_inner().unwrap();
    let before: Vec<_> = issued.iter().filter(|(_, (_, t))| *t < started).collect();
    let after: Vec<_> = issued.iter().filter(|(_, (_, t))| *t > finished).collect();
    assert!(
        before.len() >= 5 && after.len() >= 5,
        "{} / {}",
        before.len(),
        after.len()
    );
    let original_crl = published_crl_number(&server);

    let restored = server.restore_elsewhere(&file);
    let url = &restored.instance.public_url;
    let crl = reqwest::blocking::get(format!("{url}/crl/issuing.crl"))
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec();
    let listed: std::collections::BTreeSet<String> =
        mamori_e2e::crl_serials(&crl).into_iter().collect();
    assert!(
        crl_number(&crl) > original_crl,
        "a cRLNumber the original used"
    );
    let mut checked = 0;
    for (serial, (leaf, _)) in &before {
        // Revoked before the backup started: revoked there; not yet revoked when it finished:
        // valid there. In between, either (the backup's snapshot decides).
        let status = mamori_e2e::ocsp_status(url, leaf, &issuer);
        let in_crl = listed.contains(&mamori_e2e::normal_serial(serial));
        match revoked.get(*serial) {
            Some(t) if *t < started => assert!(status == "revoked" && in_crl, "{serial}"),
            Some(t) if *t < finished => assert_eq!(status == "revoked", in_crl, "{serial}"),
            _ => assert!(status == "valid" && !in_crl, "{serial}: {status}"),
        }
        checked += 1;
    }
    for (serial, (leaf, _)) in &after {
        assert_eq!(
            mamori_e2e::ocsp_status(url, leaf, &issuer),
            "unknown",
            "{serial}"
        );
    }
    // The restored CA issues on: its serials are new, also against what the original issued
    // after the backup.
    let api = &restored.instance.api_url;
    let enroller = &enrollers[0];
    let refused_through: u64 = server
        .client
        .get(format!("{url}/healthz"))
        .send()
        .map(|_| ca_core::time::UnixTime::now().as_secs() / 30 + 1)
        .unwrap();
    enroller.skip_codes_through(refused_through);
    let (status, login) = {
        let r = server
            .client
            .post(format!("{api}/api/v1/login"))
            .json(&json!({"username": enroller.username, "password": enroller.password, "totp": enroller.code()}))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().unwrap();
    let mut fresh = Vec::new();
    for n in 0..5 {
        let (_k, pem) = device_csr(&format!("r-{n}"));
        let r = server
            .client
            .post(format!("{api}/api/v1/requests"))
            .bearer_auth(token)
            .json(&json!({"profile": "ambulance-terminal", "csr": pem, "justification": "after restore"}))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        fresh.push(
            r.json::<Value>().unwrap()["serial"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for serial in &fresh {
        assert!(
            !issued.contains_key(serial),
            "{serial} collides with the original"
        );
    }
    eprintln!(
        "restore drill: {} certificates issued around the backup ({} before it, {} after it), {} revoked, {checked} checked by OCSP and CRL on the restored CA, 5 new serials without collision",
        issued.len(),
        before.len(),
        after.len(),
        revoked.len()
    );
}
