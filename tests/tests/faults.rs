//! Faults a hospital server room has, beyond the crash loop of `crash.rs`:
//! - the data disk fills up: the server's data folder and SQLite database sit on a small tmpfs
//!   the test mounts (SKIPPED, with the reason, where the machine refuses to mount); writes are
//!   refused with a 503 problem, nothing is half-written, OCSP and the CRL are still served,
//!   `/healthz` and `/metrics` say why, and everything resumes once space returns;
//! - PostgreSQL restarts, and PostgreSQL fails over to a synchronous standby, under load from two
//!   instances and an OCSP-only responder (clusters of the test's own,
//!   [`mamori_e2e::private_postgres`]): 503s while it is away, nothing confirmed lost, nothing
//!   issued twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mamori_e2e::private_postgres::PrivatePostgres;
use mamori_e2e::*;
use serde_json::{json, Value};

/// A tmpfs of `size` mounted on a fresh folder, unmounted when dropped.
struct Tmpfs {
    dir: Option<tempfile::TempDir>,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir: Some(dir) })
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            // Lazy: the server's files may still be open while it is being killed.
            let _ = Command::new("umount").arg("-l").arg(dir.path()).status();
            let _ = dir.close();
        }
    }
}

/// Writes a file in `dir` until the filesystem refuses another byte; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in [1 << 20, 4096, 1] {
        let block = vec![0u8; chunk];
        while file.write_all(&block).and_then(|()| file.flush()).is_ok() {}
    }
    let _ = file.sync_all();
    path
}

fn free_bytes(server: &Server) -> u64 {
    let text = server.public_get("/metrics").text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("mamori_data_disk_free_bytes "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_full_data_disk_refuses_writes_cleanly_and_recovers() {
    let tmpfs = match Tmpfs::mount("24m") {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED: the disk-full test needs a tmpfs it can mount: {why}");
            return;
        }
    };
    let server = Server::start_in(
        tmpfs.path(),
        Backend::Sqlite,
        &[
            ("MAMORI_MIN_FREE_DISK_BYTES", "1048576"),
            // The upkeep republishes a CRL the disk refused within a second of room returning.
            ("MAMORI_MAINTENANCE_INTERVAL_SECS", "1"),
        ],
    );
    server.login(&server.admin);
    let enroller = server.user("enroller", &["device-enroller"]);
    let before = issue_device(&server, &enroller, "9001");
    let count = |table: &str| -> u64 {
        server
            .query(&format!("SELECT count(*) FROM {table}"))
            .trim()
            .parse()
            .unwrap()
    };

    let filler = fill(tmpfs.path());
    assert!(free_bytes(&server) < 1 << 20);
    let health = server.public_get("/healthz");
    assert_eq!(health.status(), 503);
    let body: Value = health.json().unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("bytes free"),
        "{body}"
    );

    // Issuance until the disk refuses: each answer is a certificate or a 503 saying why, never
    // a 500; a refused issuance leaves no request and no certificate behind.
    let mut refused = 0;
    let mut issued = Vec::new();
    for n in 0..40 {
        let (requests, certificates) = (count("requests"), count("certificates"));
        let (_k, pem) = device_csr(&format!("95{n:02}"));
        let (status, body) = server.call(
            "POST",
            "/api/v1/requests",
            Some(&enroller.token()),
            Some(
                json!({"profile": "ambulance-terminal", "csr": pem, "justification": "disk full"}),
            ),
        );
        match status {
            201 => issued.push(body["serial"].as_str().unwrap().to_string()),
            503 => {
                assert!(
                    body["detail"].as_str().unwrap().contains("disk is full"),
                    "{body}"
                );
                assert_eq!(
                    count("requests"),
                    requests,
                    "a refused request was stored: {}",
                    server.query("SELECT id, status, failure FROM requests")
                );
                assert_eq!(count("certificates"), certificates);
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
            other => panic!("issuance on a full disk answered {other}: {body}"),
        }
    }
    assert!(refused >= 3, "the full disk never refused an issuance");

    // A revocation on the full disk: its status change and the OCSP response that reports it
    // commit together or not at all. Refused (503): the database, OCSP and the CRL, served from
    // memory, still say valid. Done (200, when the change fitted into space SQLite already held
    // and only the CRL did not): the database and OCSP say revoked, and the CRL follows once
    // there is room. Never the one without the other.
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{}/revoke", before.serial),
        Some(&server.admin.token()),
        Some(json!({"reason": "key-compromise", "totp": server.admin.code()})),
    );
    let stored = server.query(&format!(
        "SELECT status FROM certificates WHERE serial = '{}'",
        before.serial
    ));
    let answered = ocsp_status(&server.public_url, &before.leaf, &before.issuer);
    let revoked_on_full_disk = match status {
        503 => {
            assert_eq!((stored.as_str(), answered), ("valid", "valid"));
            false
        }
        200 => {
            assert_eq!((stored.as_str(), answered), ("revoked", "revoked"));
            true
        }
        other => panic!("revocation on a full disk answered {other}: {body}"),
    };
    let crl = server.public_get("/crl/issuing.crl");
    assert_eq!(crl.status(), 200);
    if !revoked_on_full_disk {
        assert!(!crl_serials(&crl.bytes().unwrap()).contains(&normal_serial(&before.serial)));
    }
    let metrics = server.public_get("/metrics").text().unwrap();
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mamori_disk_full_errors_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(errors >= refused as u64, "{metrics}");

    // Space returns: healthy again, and issuance and revocation work.
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.public_get("/healthz").status() != 200 {
        assert!(Instant::now() < deadline, "never healthy again");
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = issue_device(&server, &enroller, "9002");
    if !revoked_on_full_disk {
        let (status, body) = server.call(
            "POST",
            &format!("/api/v1/certificates/issuing/{}/revoke", before.serial),
            Some(&server.admin.token()),
            Some(json!({"reason": "key-compromise", "totp": server.admin.code()})),
        );
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        ocsp_status(&server.public_url, &before.leaf, &before.issuer),
        "revoked"
    );
    assert_eq!(
        ocsp_status(&server.public_url, &after.leaf, &after.issuer),
        "valid"
    );
    // The CRL lists the revocation (republished by the call, or by the upkeep once there was
    // room).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !crl_serials(&server.public_get("/crl/issuing.crl").bytes().unwrap())
        .contains(&normal_serial(&before.serial))
    {
        assert!(
            Instant::now() < deadline,
            "the CRL never listed the revocation"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every certificate answered 201 is stored, and the audit chain verifies.
    for serial in issued.iter().chain([&after.serial]) {
        assert_eq!(
            server.query(&format!(
                "SELECT status FROM certificates WHERE serial = '{serial}'"
            )),
            "valid"
        );
    }
    server.assert_audit_intact(&server.admin.token());
    eprintln!(
        "disk full: {} issued into existing space, {refused} issuances refused, {errors} writes refused, the revocation {}",
        issued.len(),
        if revoked_on_full_disk { "done with OCSP (its CRL followed once there was room)" } else { "refused whole" }
    );
}

/// Whether the responder at `url` answers the OCSP request `der` with a successful response.
fn ocsp_answers(url: &str, der: &[u8]) -> bool {
    let response = reqwest::blocking::Client::new()
        .post(format!("{url}/ocsp"))
        .header("content-type", "application/ocsp-request")
        .timeout(Duration::from_secs(5))
        .body(der.to_vec())
        .send();
    let Ok(response) = response else {
        return false;
    };
    response.status() == 200
        && response
            .bytes()
            .ok()
            .and_then(|b| openssl::ocsp::OcspResponse::from_der(&b).ok())
            .is_some_and(|r| r.status() == openssl::ocsp::OcspResponseStatus::SUCCESSFUL)
}

/// The last lines of the servers' logs that say something went wrong, for a failure message.
fn tail(logs: &str) -> String {
    let wrong: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    wrong[wrong.len().saturating_sub(30)..].join("\n")
}

/// What a stretch of load around a database fault confirmed and what it was refused.
struct Load {
    /// serial → request id of every issuance answered 201.
    issued: std::collections::BTreeMap<String, String>,
    /// Every revocation answered 200.
    revoked: Vec<String>,
    /// Calls answered 503.
    refused: usize,
    /// OCSP answers from the OCSP-only responder, and its failures.
    ocsp_answered: usize,
    ocsp_failures: usize,
}

/// Runs issuance through `apis` (one device enroller each), revocation by `officers` and OCSP
/// requests to the OCSP-only responder at `responder` (for `watched`'s certificate) while
/// `fault` runs; every answer must be a success or a 503 (never a 500).
fn under_load(
    server: &Server,
    apis: &[String],
    enrollers: &[Person],
    officers: &[Person],
    responder: &str,
    watched: &Device,
    fault: impl FnOnce(),
) -> Load {
    let request = {
        let id = openssl::ocsp::OcspCertId::from_cert(
            openssl::hash::MessageDigest::sha1(),
            &watched.leaf,
            &watched.issuer,
        )
        .unwrap();
        let mut r = openssl::ocsp::OcspRequest::new().unwrap();
        r.add_id(id).unwrap();
        r.to_der().unwrap()
    };
    assert!(ocsp_answers(responder, &request));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let issued = std::sync::Mutex::new(std::collections::BTreeMap::<String, String>::new());
    let revoked = std::sync::Mutex::new(Vec::<String>::new());
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let ocsp_failures = std::sync::atomic::AtomicUsize::new(0);
    let ocsp_answered = std::sync::atomic::AtomicUsize::new(0);
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    std::thread::scope(|scope| {
        for (enroller, api) in enrollers.iter().zip(apis) {
            let (stop, issued, refused, counter) = (&stop, &issued, &refused, &counter);
            scope.spawn(move || {
                while !stop.load(relaxed) {
                    let n = counter.fetch_add(1, relaxed);
                    let (_k, pem) = device_csr(&format!("7{n:03}"));
                    let answer = server
                        .client
                        .post(format!("{api}/api/v1/requests"))
                        .bearer_auth(enroller.token())
                        .json(&json!({"profile": "ambulance-terminal", "csr": pem, "justification": "load"}))
                        .timeout(Duration::from_secs(20))
                        .send();
                    if let Ok(response) = answer {
                        let status = response.status().as_u16();
                        let body: Value = response.json().unwrap_or(Value::Null);
                        match status {
                            201 => {
                                issued.lock().unwrap().insert(
                                    body["serial"].as_str().unwrap().to_string(),
                                    body["id"].as_str().unwrap().to_string(),
                                );
                            }
                            503 => {
                                refused.fetch_add(1, relaxed);
                            }
                            other => panic!(
                                "issuance during the fault answered {other}: {body}\n{}",
                                tail(&server.logs())
                            ),
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
        let (stop, issued, revoked, refused) = (&stop, &issued, &revoked, &refused);
        scope.spawn(move || {
            let mut turn = 0;
            while !stop.load(relaxed) {
                let officer = &officers[turn % officers.len()];
                turn += 1;
                let target = {
                    let done = revoked.lock().unwrap();
                    issued
                        .lock()
                        .unwrap()
                        .keys()
                        .find(|s| !done.contains(*s))
                        .cloned()
                };
                let (Some(serial), Some(code)) = (target, officer.try_code()) else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                let answer = server
                    .client
                    .post(format!(
                        "{}/api/v1/certificates/issuing/{serial}/revoke",
                        server.api_url
                    ))
                    .bearer_auth(officer.token())
                    .json(&json!({"totp": code, "reason": "key-compromise"}))
                    .timeout(Duration::from_secs(20))
                    .send();
                if let Ok(response) = answer {
                    let status = response.status().as_u16();
                    let body: Value = response.json().unwrap_or(Value::Null);
                    match status {
                        200 => revoked.lock().unwrap().push(serial),
                        503 => {
                            refused.fetch_add(1, relaxed);
                        }
                        // A code spent by a revocation whose answer was lost is refused again.
                        401 | 403 | 409 => {}
                        other => panic!(
                            "revocation during the fault answered {other}: {body}\n{}",
                            tail(&server.logs())
                        ),
                    }
                }
            }
        });
        let (stop, ocsp_failures, ocsp_answered, request) =
            (stop, &ocsp_failures, &ocsp_answered, &request);
        scope.spawn(move || {
            while !stop.load(relaxed) {
                if ocsp_answers(responder, request) {
                    ocsp_answered.fetch_add(1, relaxed);
                } else {
                    ocsp_failures.fetch_add(1, relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        fault();
        stop.store(true, relaxed);
    });
    Load {
        issued: issued.into_inner().unwrap(),
        revoked: revoked.into_inner().unwrap(),
        refused: refused.into_inner(),
        ocsp_answered: ocsp_answered.into_inner(),
        ocsp_failures: ocsp_failures.into_inner(),
    }
}

/// After the fault: every instance at `apis` issues again without a restart of its own; every
/// issuance reported done is stored under its request, no request has two certificates, every
/// confirmed revocation is stored, the OCSP-only responder never failed, and the audit chain
/// verifies.
fn nothing_lost(server: &Server, apis: &[String], enrollers: &[Person], load: &Load) {
    for (n, api) in apis.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_k, pem) = device_csr(&format!("79{n}"));
            let status = server
                .client
                .post(format!("{api}/api/v1/requests"))
                .bearer_auth(enrollers[n].token())
                .json(
                    &json!({"profile": "ambulance-terminal", "csr": pem, "justification": "after"}),
                )
                .send()
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if status == 201 {
                break;
            }
            assert!(Instant::now() < deadline, "instance {n} never recovered");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert!(
        load.issued.len() >= 10,
        "too little load: {}",
        load.issued.len()
    );
    let rows = server.query("SELECT serial, COALESCE(request_id, ''), status FROM certificates");
    let mut per_request = std::collections::BTreeMap::<String, usize>::new();
    for line in rows.lines() {
        let parts: Vec<&str> = line.split('|').collect();
        if !parts[1].is_empty() {
            *per_request.entry(parts[1].to_string()).or_default() += 1;
        }
    }
    assert!(
        per_request.values().all(|n| *n == 1),
        "a request issued twice"
    );
    for (serial, request) in &load.issued {
        let row = rows
            .lines()
            .find(|l| l.starts_with(&format!("{serial}|")))
            .unwrap_or_else(|| panic!("confirmed {serial} is not stored"));
        assert!(row.contains(request.as_str()), "{row}");
        let status = row.rsplit('|').next().unwrap();
        let want = if load.revoked.contains(serial) {
            "revoked"
        } else {
            "valid"
        };
        // An unconfirmed revocation (its answer lost in the fault) may have happened.
        assert!(status == want || status == "revoked", "{serial}: {status}");
    }
    assert_eq!(
        load.ocsp_failures, 0,
        "the OCSP-only responder failed to answer during the fault"
    );
    server.assert_audit_intact(&server.admin.token());
}

/// Two instances on `url` with two device enrollers and two officers, a certificate to watch,
/// and an OCSP-only responder on `responder_url`.
fn two_instances(
    url: String,
    responder_url: impl FnOnce(&Server) -> String,
) -> (Server, Instance, [Person; 2], [Person; 2], Device, OcspOnly) {
    let server = Server::start(Backend::PostgresAt(url), &[]);
    let second = server.instance(&[]);
    server.login(&server.admin);
    let enrollers = [
        server.user("enroller-a", &["device-enroller"]),
        server.user("enroller-b", &["device-enroller"]),
    ];
    let officers = [
        server.user("oscar", &["security-officer"]),
        server.user("olive", &["security-officer"]),
    ];
    let watched = issue_device(&server, &enrollers[0], "7000");
    let responder = server.ocsp_only(&responder_url(&server));
    (server, second, enrollers, officers, watched, responder)
}

/// PostgreSQL restarted three times under load, with two Mamori instances and an OCSP-only
/// responder on it: calls in flight get a 503 (never a 500), both instances reconnect without a
/// restart of their own, every issuance and revocation reported done is stored exactly once,
/// and the OCSP-only responder answers from its cache throughout.
#[test]
fn postgres_restarts_under_load_lose_nothing() {
    let pg = match PrivatePostgres::start() {
        Ok(pg) => pg,
        Err(why) => {
            eprintln!("SKIPPED: the PostgreSQL restart test needs a cluster of its own: {why}");
            return;
        }
    };
    let (server, second, enrollers, officers, watched, responder) =
        two_instances(pg.url("mamori"), |s| s.database_url.clone());
    let apis = [server.api_url.clone(), second.api_url.clone()];
    let load = under_load(
        &server,
        &apis,
        &enrollers,
        &officers,
        &responder.url,
        &watched,
        || {
            // Three restarts, each after a stretch of load.
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(1500));
                pg.ctl("restart").unwrap();
            }
            std::thread::sleep(Duration::from_millis(1500));
        },
    );
    nothing_lost(&server, &apis, &enrollers, &load);
    eprintln!(
        "postgres restarts: 3 restarts, {} issuances and {} revocations confirmed, {} calls refused with 503, {} OCSP answers and 0 failures from the OCSP-only responder",
        load.issued.len(),
        load.revoked.len(),
        load.refused,
        load.ocsp_answered
    );
}

/// Failover: the primary crashes under load (`pg_ctl stop -m immediate`) and its synchronous
/// standby is promoted. Both instances name both hosts in one libpq URL with
/// `target_session_attrs=read-write`, so their new connections find the new primary by
/// themselves, and so does the OCSP-only responder, which answers from its cache meanwhile. Nothing
/// confirmed before the crash is missing on the new primary, nothing is issued twice, and the
/// audit chain carried over verifies.
#[test]
fn postgres_failover_to_a_synchronous_standby_loses_nothing() {
    let (primary, standby) = match PrivatePostgres::start()
        .and_then(|p| PrivatePostgres::synchronous_standby_of(&p).map(|s| (p, s)))
    {
        Ok(pair) => pair,
        Err(why) => {
            eprintln!("SKIPPED: the failover test needs clusters of its own: {why}");
            return;
        }
    };
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/mamori?target_session_attrs=read-write&connect_timeout=5",
        primary.port, standby.port
    );
    let (server, second, enrollers, officers, watched, responder) =
        two_instances(url, |s| s.database_url.clone());
    let apis = [server.api_url.clone(), second.api_url.clone()];
    let load = under_load(
        &server,
        &apis,
        &enrollers,
        &officers,
        &responder.url,
        &watched,
        || {
            std::thread::sleep(Duration::from_millis(2000));
            primary.crash().unwrap();
            std::thread::sleep(Duration::from_millis(500));
            standby.ctl("promote").unwrap();
            std::thread::sleep(Duration::from_millis(2500));
        },
    );
    assert_eq!(
        standby
            .query("mamori", "SELECT pg_is_in_recovery()")
            .unwrap(),
        "f",
        "the standby was not promoted"
    );
    nothing_lost(&server, &apis, &enrollers, &load);
    eprintln!(
        "postgres failover: primary crashed, standby promoted, {} issuances and {} revocations confirmed and all on the new primary, {} calls refused with 503, {} OCSP answers and 0 failures from the OCSP-only responder",
        load.issued.len(),
        load.revoked.len(),
        load.refused,
        load.ocsp_answered
    );
}
