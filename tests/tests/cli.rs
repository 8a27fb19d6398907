//! The real `ca-cli` against the real `ca-server`: vendor maintenance from key to revocation,
//! staff with a PKCS#12 bundle opened by `openssl pkcs12`, and a bulk import of 50 devices with
//! one bad row.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use mamori_e2e::{rfc3339, Backend, Server};

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

fn vendor_maintenance(backend: Backend) {
    let server = Server::start(backend, &[]);
    server.login(&server.admin);
    let alice = server.user("alice", &["security-officer"]);
    let bob = server.user("bob", &["security-officer"]);
    let vendor = server.user("acme", &["vendor"]);
    let work = tempfile::tempdir().unwrap();
    let (vh, ah, bh) = (
        work.path().join("vendor"),
        work.path().join("alice"),
        work.path().join("bob"),
    );

    // Not logged in yet: exit 3 with one clear line.
    let run = server.cli(&vh, &["whoami"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("not logged in") && run.stderr.lines().count() == 1,
        "{run:?}"
    );

    server.cli_login(&vh, &vendor);
    server.cli_login(&ah, &alice);
    server.cli_login(&bh, &bob);
    let key = work.path().join("eng.key");
    let csr = work.path().join("eng.csr");
    let chain = work.path().join("eng-chain.pem");
    assert_eq!(
        server.cli(&vh, &["key", "generate", "--out", s(&key)]).code,
        0
    );
    let run = server.cli(
        &vh,
        &[
            "csr",
            "create",
            "--key",
            s(&key),
            "--o",
            "Acme Medical",
            "--cn",
            "acme-engineer-1",
            "--out",
            s(&csr),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let now = ca_core::time::UnixTime::now().as_secs();
    let run = server.cli(
        &vh,
        &[
            "--json",
            "request",
            "submit",
            "--profile",
            "vendor-maintenance",
            "--csr",
            s(&csr),
            "--justification",
            "CT firmware",
            "--work-order",
            "WO-77",
            "--not-before",
            &rfc3339(now),
            "--not-after",
            &rfc3339(now + 8 * 3600),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let id = run.json()["id"].as_str().unwrap().to_string();
    // The vendor cannot approve their own request.
    let run = server.cli(&vh, &["request", "approve", &id, "--totp", "123456"]);
    assert_eq!(run.code, 4, "{run:?}");
    let run = server.cli(
        &ah,
        &[
            "request",
            "approve",
            &id,
            "--totp",
            &alice.code(),
            "--comment",
            "WO-77 checked",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    // A wait that times out says so (exit 7) while one approval is missing.
    let run = server.cli(
        &vh,
        &[
            "request",
            "wait",
            &id,
            "--out",
            s(&chain),
            "--timeout",
            "1",
            "--interval",
            "1",
        ],
    );
    assert_eq!(run.code, 7, "{run:?}");
    let run = server.cli(&bh, &["request", "approve", &id, "--totp", &bob.code()]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = server.cli(
        &vh,
        &[
            "--json",
            "request",
            "wait",
            &id,
            "--out",
            s(&chain),
            "--timeout",
            "60",
            "--interval",
            "1",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let serial = run.json()["serial"].as_str().unwrap().to_string();
    let run = server.cli(&vh, &["--json", "ocsp", "check", s(&chain)]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["status"], "good");
    // cert show: validity, key, and who asked and who approved, with times.
    let run = server.cli(&ah, &["cert", "show", "issuing", &serial]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("key / 鍵: ECDSA P-256"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("validity / 有効期間: "),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stdout.matches("\n  approve ").count(),
        2,
        "both approvers: {}",
        run.stdout
    );
    let run = server.cli(
        &ah,
        &[
            "cert",
            "revoke",
            "issuing",
            &serial,
            "--reason",
            "key-compromise",
            "--totp",
            &alice.code(),
            "--comment",
            "laptop lost",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = server.cli(&vh, &["--json", "ocsp", "check", s(&chain)]);
    assert_eq!(run.code, 8, "revoked has its own exit code: {run:?}");
    let status = run.json();
    assert_eq!(status["status"], "revoked", "{status}");
    assert_eq!(status["reason"], "keyCompromise", "{status}");
    let at = status["revoked_at"].as_str().unwrap();
    assert!(at.ends_with('Z') && at.contains('T'), "RFC 3339: {at}");
    let run = server.cli(&vh, &["--json", "crl", "fetch", "--list"]);
    assert_eq!(run.code, 0, "{run:?}");
    let crl = run.json();
    assert!(
        crl["revoked"]
            .as_array()
            .unwrap()
            .iter()
            .any(
                |e| e["serial"].as_str().unwrap() == serial.trim_start_matches('0')
                    && e["reason"] == "keyCompromise"
            ),
        "{crl}"
    );
    // Human output is a table.
    let run = server.cli(&ah, &["cert", "list", "--status", "revoked"]);
    assert!(
        run.stdout.starts_with("CA") && run.stdout.contains(&serial),
        "{run:?}"
    );
    // Bad input: a missing CSR file is one line and exit 1; logout ends the session.
    let run = server.cli(
        &vh,
        &[
            "request",
            "submit",
            "--profile",
            "vendor-maintenance",
            "--csr",
            "/nonexistent.csr",
            "--justification",
            "x",
        ],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("/nonexistent.csr") && run.stderr.lines().count() == 1,
        "{run:?}"
    );
    assert_eq!(server.cli(&vh, &["logout"]).code, 0);
    assert_eq!(server.cli(&vh, &["whoami"]).code, 3);
}

#[test]
fn vendor_maintenance_cli_sqlite() {
    vendor_maintenance(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn vendor_maintenance_cli_postgres() {
    vendor_maintenance(Backend::Postgres);
}

#[test]
fn staff_pkcs12_export_opens_in_openssl() {
    let server = Server::start(Backend::Sqlite, &[]);
    server.login(&server.admin);
    let staffer = server.user("hr-desk", &["staff-requester"]);
    let work = tempfile::tempdir().unwrap();
    let (sh, ah) = (work.path().join("staff"), work.path().join("admin"));
    server.cli_login(&sh, &staffer);
    server.cli_login(&ah, &server.admin);
    let key = work.path().join("hanako.key");
    let pass = work.path().join("key-pass");
    std::fs::write(&pass, "a key passphrase\n").unwrap();
    let csr = work.path().join("hanako.csr");
    let chain = work.path().join("hanako.pem");
    let p12 = work.path().join("hanako.p12");
    assert_eq!(
        server
            .cli(
                &sh,
                &[
                    "key",
                    "generate",
                    "--algorithm",
                    "rsa3072",
                    "--passphrase-file",
                    s(&pass),
                    "--out",
                    s(&key)
                ]
            )
            .code,
        0
    );
    let run = server.cli(
        &sh,
        &[
            "csr",
            "create",
            "--key",
            s(&key),
            "--passphrase-file",
            s(&pass),
            "--cn",
            "Hanako Yamada",
            "--serial-number",
            "STAFF-042",
            "--email",
            "hanako@hospital.example",
            "--out",
            s(&csr),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = server.cli(
        &sh,
        &[
            "--json",
            "request",
            "submit",
            "--profile",
            "staff",
            "--csr",
            s(&csr),
            "--justification",
            "new nurse",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let id = run.json()["id"].as_str().unwrap().to_string();
    let run = server.cli(
        &ah,
        &["request", "approve", &id, "--totp", &server.admin.code()],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        server
            .cli(
                &sh,
                &[
                    "request",
                    "wait",
                    &id,
                    "--out",
                    s(&chain),
                    "--timeout",
                    "30",
                    "--interval",
                    "1"
                ]
            )
            .code,
        0
    );
    let export_pass = work.path().join("p12-pass");
    std::fs::write(&export_pass, "export passphrase\n").unwrap();
    let run = server.cli(
        &sh,
        &[
            "pkcs12",
            "export",
            "--key",
            s(&key),
            "--passphrase-file",
            s(&pass),
            "--cert",
            s(&chain),
            "--export-passphrase-file",
            s(&export_pass),
            "--name",
            "Hanako Yamada",
            "--out",
            s(&p12),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let out = std::process::Command::new("openssl")
        .args([
            "pkcs12",
            "-in",
            s(&p12),
            "-passin",
            &format!("file:{}", s(&export_pass)),
            "-nokeys",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Hanako Yamada") && text.matches("BEGIN CERTIFICATE").count() == 3,
        "{text}"
    );
    let wrong = std::process::Command::new("openssl")
        .args(["pkcs12", "-in", s(&p12), "-passin", "pass:wrong", "-noout"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
}

#[test]
fn bulk_import_of_fifty_devices_with_one_bad_row() {
    let server = Server::start(Backend::Sqlite, &[]);
    server.login(&server.admin);
    let enroller = server.user("enroller", &["device-enroller"]);
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("enroller");
    server.cli_login(&home, &enroller);
    let mut csv = String::from("id,csr\n");
    for i in 0..49 {
        csv.push_str(&format!("{:04}\n", i + 1));
    }
    csv.push_str("BAD ID!\n");
    let fleet = work.path().join("fleet.csv");
    std::fs::write(&fleet, csv).unwrap();
    let keys = work.path().join("keys");
    let run = server.cli(
        &home,
        &[
            "--json",
            "device",
            "import",
            s(&fleet),
            "--keys-dir",
            s(&keys),
        ],
    );
    assert_eq!(run.code, 6, "{run:?}");
    let summary = run.json();
    assert_eq!(summary["rows"], 50, "{summary}");
    assert_eq!(summary["issued"], 49, "{summary}");
    assert_eq!(summary["failed"], 1, "{summary}");
    assert_eq!(summary["failures"][0]["line"], 51);
    assert!(keys.join("0049.pem").exists() && keys.join("0049.key").exists());
    let run = server.cli(
        &home,
        &["--json", "cert", "list", "--profile", "ambulance-terminal"],
    );
    assert_eq!(run.json().as_array().unwrap().len(), 49);
    // `ca-cli cert list | head`: the reader is gone before the table is written; the CLI ends
    // quietly instead of panicking on the broken pipe.
    for args in [&["cert", "list"][..], &["--json", "cert", "list"][..]] {
        let run = server.cli_into_closed_pipe(&home, args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
    }
}

/// Account creation through the real CLI under four eyes: an admin asks (`user add`), another
/// person approves (`user changes`, `user approve`), each prints one half of the enrolment code,
/// and the new user enrols with both (`ca-cli enrol`), choosing a password neither knows and
/// getting a TOTP secret neither saw; later `ca-cli passwd` replaces the password.
#[test]
fn accounts_are_made_by_two_people_and_enrolled_by_their_holder() {
    let server = Server::start(Backend::Sqlite, &[]);
    let work = tempfile::tempdir().unwrap();
    let (admin_home, officer_home, user_home) = (
        work.path().join("admin"),
        work.path().join("officer"),
        work.path().join("carol"),
    );
    server.cli_login(&admin_home, &server.admin);
    server.cli_login(&officer_home, &server.officer);
    let run = server.cli(
        &admin_home,
        &[
            "user",
            "add",
            "carol",
            "--roles",
            "auditor",
            "--totp",
            &server.admin.code(),
            "--comment",
            "new auditor",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("ca-cli user approve"), "{}", run.stdout);
    let first = run
        .stdout
        .lines()
        .find_map(|l| l.split("(shown once): ").nth(1))
        .unwrap_or_else(|| panic!("no half in {}", run.stdout))
        .trim()
        .to_string();
    let run = server.cli(
        &officer_home,
        &["--json", "user", "changes", "--status", "pending"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let pending = run.json();
    let change = &pending.as_array().unwrap()[0];
    assert_eq!(change["target"], "carol");
    assert_eq!(change["requester"], "admin");
    assert!(change.get("enrolment_code_part").is_none(), "{change}");
    let id = change["id"].as_str().unwrap().to_string();
    // The admin cannot approve it, through the CLI either.
    let run = server.cli(&admin_home, &["user", "approve", &id, "--totp", "000000"]);
    assert_eq!(run.code, 4, "{run:?}");
    let run = server.cli(
        &officer_home,
        &[
            "--json",
            "user",
            "approve",
            &id,
            "--totp",
            &server.officer.code(),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let applied = run.json();
    assert_eq!(applied["status"], "applied");
    let second = applied["enrolment_code_part"].as_str().unwrap().to_string();
    let own = work.path().join("own.txt");
    std::fs::write(&own, "carol chose this one herself\n").unwrap();
    let run = server.cli(
        &user_home,
        &[
            "--json",
            "enrol",
            "--username",
            "carol",
            "--code",
            &format!("{first} {second}"),
            "--password-file",
            s(&own),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let secret = mamori_e2e::totp_secret_of(&run.json());
    // The code works once.
    let run = server.cli(
        &user_home,
        &[
            "enrol",
            "--username",
            "carol",
            "--code",
            &format!("{first}-{second}"),
            "--password-file",
            s(&own),
        ],
    );
    assert_eq!(run.code, 3, "{run:?}");
    let now = ca_core::time::UnixTime::now().as_secs();
    let login = |password: &std::path::Path, step: u64| {
        server.cli(
            &user_home,
            &[
                "login",
                "--username",
                "carol",
                "--password-file",
                s(password),
                "--totp",
                &secret.code_at_step(step),
            ],
        )
    };
    let run = login(&own, now / 30);
    assert_eq!(run.code, 0, "{run:?}");
    let run = server.cli(&user_home, &["audit", "list", "--action", "user.create"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("carol"), "{}", run.stdout);
    let newer = work.path().join("newer.txt");
    std::fs::write(&newer, "carol changed her mind\n").unwrap();
    let run = server.cli(
        &user_home,
        &[
            "passwd",
            "--current-password-file",
            s(&own),
            "--new-password-file",
            s(&newer),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = login(&own, now / 30 + 1);
    assert_eq!(run.code, 3, "the old password is gone: {run:?}");
    let run = login(&newer, now / 30 + 1);
    assert_eq!(run.code, 0, "{run:?}");
}
