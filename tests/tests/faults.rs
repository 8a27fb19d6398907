//! Faults a hospital server room has, beyond the crash loop of `crash.rs`: the data disk fills
//! up. The server's data folder and SQLite database sit on a small tmpfs the test mounts (the
//! test says SKIPPED, with the reason, where the machine refuses to mount); a filler file takes
//! the last byte. Writes are refused with a 503 problem saying the disk is full and nothing is
//! half-written; OCSP and the CRL are still served; `/healthz` and `/metrics` say why; once the
//! filler is gone, issuance and revocation work again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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
        &[("MAMORI_MIN_FREE_DISK_BYTES", "1048576")],
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

    // A revocation is refused the same way, and then OCSP and the CRL, served from memory,
    // still say what the database says: valid.
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{}/revoke", before.serial),
        Some(&server.admin.token()),
        Some(json!({"reason": "key-compromise", "totp": server.admin.code()})),
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        server.query(&format!(
            "SELECT status FROM certificates WHERE serial = '{}'",
            before.serial
        )),
        "valid"
    );
    assert_eq!(
        ocsp_status(&server.public_url, &before.leaf, &before.issuer),
        "valid"
    );
    assert_eq!(server.public_get("/crl/issuing.crl").status(), 200);
    let metrics = server.public_get("/metrics").text().unwrap();
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mamori_disk_full_errors_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(errors >= 4, "{metrics}");

    // Space returns: healthy again, and issuance and revocation work.
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.public_get("/healthz").status() != 200 {
        assert!(Instant::now() < deadline, "never healthy again");
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = issue_device(&server, &enroller, "9002");
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{}/revoke", before.serial),
        Some(&server.admin.token()),
        Some(json!({"reason": "key-compromise", "totp": server.admin.code()})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ocsp_status(&server.public_url, &before.leaf, &before.issuer),
        "revoked"
    );
    assert_eq!(
        ocsp_status(&server.public_url, &after.leaf, &after.issuer),
        "valid"
    );
    // Every certificate answered 201 is stored, and the audit chain verifies.
    for serial in issued.iter().chain([&after.serial]) {
        assert_eq!(
            server.query(&format!(
                "SELECT status FROM certificates WHERE serial = '{serial}'"
            )),
            "valid"
        );
    }
    let (status, verify) = server.call(
        "GET",
        "/api/v1/audit/verify",
        Some(&server.admin.token()),
        None,
    );
    assert_eq!(status, 200, "{verify}");
    assert_eq!(verify["ok"], true, "{verify}");
    eprintln!(
        "disk full: {} issued into existing space, {refused} issuances refused, {errors} writes refused",
        issued.len()
    );
}
