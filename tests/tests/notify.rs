//! Notifications against real servers: an SMTP server (aiosmtpd, Debian's python3-aiosmtpd)
//! that demands STARTTLS and authentication, and an HTTP receiver that checks every webhook's
//! HMAC signature with OpenSSL. A waiting approval reaches the approver who set a contact
//! address (and the security mailbox); an expiry threshold and a revocation reach the mailbox
//! and the webhook; a webhook that first answers 503 gets the notice on a retry with the same
//! delivery id; an address the SMTP server refuses ends `failed`, visible in the API and in
//! `/metrics`; every event is sent once, whatever the number of scans and instances.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mamori_e2e::{free_port, issue_device, self_signed_tls, workspace_root, Backend, Server};
use serde_json::{json, Value};

const SECRET: &str = "webhook-secret-for-tests";

/// The SMTP server, killed on drop.
struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sink(dir: &Path, port: u16) -> Option<Sink> {
    let python = "/usr/bin/python3";
    let ok = Command::new(python)
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return None;
    }
    let (cert, key) = self_signed_tls(dir, "smtp", "localhost", "DNS:localhost");
    let mail = dir.join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let mut child = Command::new(python)
        .arg(workspace_root().join("tests/data/notify/smtp_sink.py"))
        .arg(port.to_string())
        .arg(&mail)
        .arg(&cert)
        .arg(&key)
        .args(["mamori", "smtp-password"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    Some(Sink(child))
}

/// What the webhook receiver saw: (event, delivery id, body) of each accepted POST, and how
/// many were refused (the first, with 503) or failed the signature check.
#[derive(Default)]
struct Hooked {
    accepted: Vec<(String, String, Value)>,
    refused: usize,
    bad_signature: usize,
}

fn start_receiver() -> (String, Arc<Mutex<Hooked>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/mamori", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Hooked::default()));
    let shared = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                headers.push(line.trim_end().to_string());
            }
            let header = |name: &str| {
                headers
                    .iter()
                    .find_map(|h| {
                        h.split_once(':')
                            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.trim().to_string())
                    })
                    .unwrap_or_default()
            };
            let length: usize = header("content-length").parse().unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body = String::from_utf8(body).unwrap();
            let signature = header("mamori-signature");
            let (t, v1) = signature
                .split_once(",v1=")
                .map(|(t, v)| (t.trim_start_matches("t=").to_string(), v.to_string()))
                .unwrap_or_default();
            let key = openssl::pkey::PKey::hmac(SECRET.as_bytes()).unwrap();
            let mut mac =
                openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
            let tag = mac
                .sign_oneshot_to_vec(format!("{t}.{body}").as_bytes())
                .unwrap();
            let expected: String = tag.iter().map(|b| format!("{b:02x}")).collect();
            let mut seen = shared.lock().unwrap();
            let status = if expected != v1 {
                seen.bad_signature += 1;
                "401 Unauthorized"
            } else if seen.refused == 0 {
                seen.refused += 1;
                "503 Service Unavailable"
            } else {
                seen.accepted.push((
                    header("mamori-event"),
                    header("mamori-delivery"),
                    serde_json::from_str(&body).unwrap(),
                ));
                "200 OK"
            };
            drop(seen);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, seen)
}

/// The messages the SMTP server accepted: (recipients, whole text).
fn mail(dir: &Path) -> Vec<(String, String)> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join("mail"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let rcpt = text
                .lines()
                .find_map(|l| l.strip_prefix("X-Sink-Rcpt: "))
                .unwrap_or_default()
                .to_string();
            (rcpt, text)
        })
        .collect()
}

fn wait_for(server: &Server, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; outbox:\n{}\nlogs:\n{}",
            server.query(
                "SELECT event, channel, recipient, status, attempts, last_error FROM notifications"
            ),
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn notices_reach_smtp_and_signed_webhooks_once_with_retries_and_failures_shown() {
    let work = tempfile::tempdir().unwrap();
    let smtp_port = free_port();
    let Some(_sink) = start_sink(work.path(), smtp_port) else {
        println!("skipped: python3-aiosmtpd is not installed (Debian package python3-aiosmtpd)");
        return;
    };
    let (hook_url, hooked) = start_receiver();
    let secret_file = work.path().join("hook-secret");
    let password_file = work.path().join("smtp-password");
    for (file, text) in [(&secret_file, SECRET), (&password_file, "smtp-password")] {
        std::fs::write(file, format!("{text}\n")).unwrap();
        std::fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    }
    // ambulance-terminal certificates (365 days) cross a 398-day threshold at once.
    let policies = work.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    for entry in std::fs::read_dir(workspace_root().join("policies")).unwrap() {
        let entry = entry.unwrap();
        let mut text = std::fs::read_to_string(entry.path()).unwrap();
        if entry.file_name() == "ambulance-terminal.toml" {
            text.push_str("\n[notify]\nexpiry_days = [398, 30]\n");
        }
        std::fs::write(policies.join(entry.file_name()), text).unwrap();
    }
    let port = smtp_port.to_string();
    let ca_file = work.path().join("smtp.pem");
    let env = [
        ("MAMORI_POLICIES_DIR", policies.to_str().unwrap()),
        ("MAMORI_SMTP_HOST", "localhost"),
        ("MAMORI_SMTP_PORT", port.as_str()),
        ("MAMORI_SMTP_FROM", "mamori@hospital.example"),
        ("MAMORI_SMTP_USERNAME", "mamori"),
        ("MAMORI_SMTP_PASSWORD_FILE", password_file.to_str().unwrap()),
        ("MAMORI_SMTP_CA_FILE", ca_file.to_str().unwrap()),
        (
            "MAMORI_NOTIFY_SECURITY_MAILBOX",
            "pki-team@hospital.example",
        ),
        ("MAMORI_WEBHOOK_URL", hook_url.as_str()),
        ("MAMORI_WEBHOOK_SECRET_FILE", secret_file.to_str().unwrap()),
        ("MAMORI_NOTIFY_RETRY_SECS", "1"),
        ("MAMORI_NOTIFY_SCAN_SECS", "1"),
        ("MAMORI_NOTIFY_MAX_ATTEMPTS", "2"),
    ];
    let server = Server::start(Backend::Sqlite, &env);
    server.login(&server.admin);
    let alice = server.user("alice", &["security-officer"]);
    let bob = server.user("bob", &["security-officer"]);
    let vendor = server.user("acme-vendor", &["vendor"]);
    let enroller = server.user("enroller", &["device-enroller"]);
    server.set_contact(&alice, "Alice@Hospital.example");
    server.set_contact(&bob, "bob@bounce.example");
    let (status, body) = server.call(
        "PUT",
        "/api/v1/me/contact",
        Some(&vendor.token()),
        Some(json!({"email": "not an address", "totp": vendor.code()})),
    );
    assert_eq!(status, 400, "{body}");

    // A vendor request waits for two officers: alice (and bob, whose server refuses) hear of it.
    let (_key, pem) = mamori_e2e::csr(
        &[
            (rcgen::DnType::OrganizationName, "Acme Medical"),
            (rcgen::DnType::CommonName, "acme-engineer-1"),
        ],
        vec![],
    );
    let (status, body) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&vendor.token()),
        Some(json!({"profile": "vendor-maintenance", "csr": pem, "justification": "CT firmware", "work_order": "WO-2026-1202"})),
    );
    assert_eq!(status, 201, "{body}");
    let request_id = body["id"].as_str().unwrap().to_string();

    // A device certificate crosses its 398-day threshold; another one is revoked.
    let device = issue_device(&server, &enroller, "0042");
    let revoked = issue_device(&server, &enroller, "0043");
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{}/revoke", revoked.serial),
        Some(&alice.token()),
        Some(json!({"reason": "key-compromise", "totp": alice.code()})),
    );
    assert_eq!(status, 200, "{body}");

    wait_for(&server, "the e-mails", || {
        let got = mail(work.path());
        let to = |who: &str, event: &str| {
            got.iter()
                .filter(|(r, t)| r == who && t.contains(event))
                .count()
        };
        to("alice@hospital.example", &request_id) == 1
            && to("pki-team@hospital.example", &request_id) == 1
            && to("pki-team@hospital.example", &device.serial) == 1
            && to("pki-team@hospital.example", "key-compromise") == 1
    });
    wait_for(&server, "the webhooks", || {
        let h = hooked.lock().unwrap();
        [
            "request.waiting",
            "certificate.expiring",
            "certificate.revoked",
        ]
        .iter()
        .all(|e| h.accepted.iter().any(|(event, _, _)| event == e))
    });
    // Every message went over STARTTLS, authenticated; none carries a forged header.
    for (_, text) in mail(work.path()) {
        assert!(
            text.contains("X-Sink-Tls: True") && text.contains("X-Sink-Auth: True"),
            "{text}"
        );
        assert!(!text.contains("\nBcc:"), "{text}");
        assert!(text.contains("From: mamori@hospital.example"), "{text}");
    }
    let h = hooked.lock().unwrap();
    assert_eq!(h.bad_signature, 0);
    assert_eq!(h.refused, 1, "the first POST was answered 503");
    let waiting = h
        .accepted
        .iter()
        .find(|(e, _, _)| e == "request.waiting")
        .unwrap();
    assert_eq!(waiting.2["data"]["request"]["id"], request_id.as_str());
    let expiring = h
        .accepted
        .iter()
        .find(|(e, _, b)| {
            e == "certificate.expiring"
                && b["data"]["certificate"]["serial"] == device.serial.as_str()
        })
        .unwrap();
    assert_eq!(expiring.2["data"]["within_days"], 398);
    assert_eq!(
        expiring.2["data"]["certificate"]["serial"],
        device.serial.as_str()
    );
    drop(h);

    // bob's server refuses: two attempts, then failed, with why; shown in the API and metrics.
    wait_for(&server, "bob's notice to fail", || {
        let (_, list) = server.call(
            "GET",
            "/api/v1/notifications?status=failed",
            Some(&alice.token()),
            None,
        );
        list.as_array().is_some_and(|l| !l.is_empty())
    });
    let (status, failed) = server.call(
        "GET",
        "/api/v1/notifications?status=failed",
        Some(&alice.token()),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(failed[0]["recipient"], "bob@bounce.example");
    assert_eq!(failed[0]["attempts"], 2);
    assert!(
        failed[0]["last_error"].as_str().unwrap().contains("550"),
        "{failed}"
    );
    let (status, _) = server.call("GET", "/api/v1/notifications", Some(&vendor.token()), None);
    assert_eq!(status, 403, "vendors do not read the outbox");
    wait_for(&server, "the gauges", || {
        let metrics = server.public_get("/metrics").text().unwrap();
        metrics.contains("mamori_notifications_failed 1")
            && metrics.contains(
                "mamori_certificates_expiring{profile=\"ambulance-terminal\",within_days=\"30\"} 0",
            )
    });

    // Once per event: a second instance scans too, and nothing is queued twice.
    let second = server.instance(&env);
    wait_for(&server, "the second instance's first scan", || {
        reqwest::blocking::get(format!("{}/metrics", second.public_url))
            .and_then(|r| r.text())
            .is_ok_and(|m| {
                m.contains("mamori_certificates_expiring{profile=\"ambulance-terminal\"")
            })
    });
    let expiring_rows = server
        .query(&format!(
            "SELECT count(*) FROM notifications WHERE event_key = 'certificate.expiring:issuing/{}:398'",
            device.serial
        ))
        .trim()
        .to_string();
    assert_eq!(
        expiring_rows, "2",
        "one e-mail (mailbox) and one webhook for the one valid device certificate"
    );
    let to_mailbox = mail(work.path())
        .iter()
        .filter(|(r, t)| r == "pki-team@hospital.example" && t.contains(&device.serial))
        .count();
    assert_eq!(to_mailbox, 1);

    // The CLI reads the outbox too.
    let home = work.path().join("cli");
    server.cli_login(&home, &alice);
    let listed = server.cli(&home, &["notify", "list", "--status", "sent"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains("certificate.expiring"),
        "{}",
        listed.stdout
    );
}
