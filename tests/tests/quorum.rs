//! k-of-n activation: after `ca-server quorum split` the server starts locked (issuance and
//! revocation answer 503 "locked", OCSP and the CRL keep being served); custodians give their
//! shares with `ca-cli activate`: one share (k-1) does not unlock, the same share twice counts
//! once, another custodian's share and a wrong code are refused, k distinct shares unlock. A
//! reshare to a new set unlocks with the new shares and refuses the old ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};

use mamori_e2e::{device_csr, issue_device, ocsp_status, Backend, Person, Server};
use serde_json::{json, Value};

fn secret_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path.display().to_string()
}

fn submit(server: &Server, enroller: &Person, id: &str) -> (u16, Value) {
    let (_k, pem) = device_csr(id);
    server.call(
        "POST",
        "/api/v1/requests",
        Some(&enroller.token()),
        Some(json!({"profile": "ambulance-terminal", "csr": pem, "justification": "quorum"})),
    )
}

fn shares_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("share-")
        })
        .collect();
    files.sort();
    files
}

fn share_of(files: &[PathBuf], name: &str) -> String {
    files
        .iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&format!("share-{name}-"))
        })
        .unwrap()
        .display()
        .to_string()
}

/// `ca-server <command>` (`reshare`, or its long form `quorum reshare`; k = 2) from `shares`
/// (file, passphrase file) to `custodians` (name, passphrase file), new share files in `out`.
fn quorum_reshare(
    server: &Server,
    command: &[&str],
    shares: &[(String, &String)],
    custodians: &[(&str, &String)],
    out: &Path,
) -> std::process::Output {
    let mut args: Vec<String> = command.iter().map(|c| c.to_string()).collect();
    args.extend(["--threshold".into(), "2".into()]);
    for (file, pass) in shares {
        args.extend(["--share".into(), format!("{file}={pass}")]);
    }
    for (name, pass) in custodians {
        args.extend(["--custodian".into(), format!("{name}={pass}")]);
    }
    args.extend(["--out".into(), out.display().to_string()]);
    server.ca_server(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `ca-cli activate` as `person` (logged in at `home`) with `share`.
fn activate(
    server: &Server,
    home: &Path,
    person: &Person,
    share: &str,
    pass: &str,
) -> mamori_e2e::CliRun {
    let code = person.code();
    server.cli(
        home,
        &[
            "--json",
            "activate",
            "--share-file",
            share,
            "--share-passphrase-file",
            pass,
            "--totp",
            &code,
        ],
    )
}

#[test]
fn k_of_n_custodians_unlock_a_locked_server_and_a_reshare_retires_the_old_shares() {
    let mut server = Server::start(Backend::Sqlite, &[]);
    server.login(&server.admin);
    let enroller = server.user("enroller", &["device-enroller"]);
    let people: Vec<Person> = ["alice", "bob", "carol", "dave"]
        .iter()
        .map(|n| server.user(n, &["security-officer"]))
        .collect();
    let (alice, bob, carol, dave) = (&people[0], &people[1], &people[2], &people[3]);
    // A certificate from before the split: OCSP keeps answering for it while locked.
    let before = issue_device(&server, &enroller, "q-before");

    let secrets = tempfile::tempdir().unwrap();
    let pass: Vec<String> = ["alice", "bob", "carol", "dave"]
        .iter()
        .map(|n| secret_file(secrets.path(), n, &format!("{n}'s long share passphrase")))
        .collect();
    let out = secrets.path().join("set1");
    let split = server.ca_server(&[
        "quorum",
        "split",
        "--threshold",
        "2",
        "--custodian",
        &format!("alice={}", pass[0]),
        "--custodian",
        &format!("bob={}", pass[1]),
        "--custodian",
        &format!("carol={}", pass[2]),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(split.status.success(), "{split:?}");
    let set1 = shares_in(&out);
    assert_eq!(set1.len(), 3);
    for file in &set1 {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(file).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    // The CA keys are no longer under the CA passphrase alone.
    assert!(server.query("SELECT count(*) FROM audit_log WHERE action = 'quorum.split'") == "1");

    // Restarted, the server is locked: no issuance, no revocation; OCSP and the CRL still served.
    server.restart();
    let (status, body) = submit(&server, &enroller, "q-locked");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "https://mamori.dev/problems/unavailable");
    assert!(
        body["detail"].as_str().unwrap().contains("locked"),
        "{body}"
    );
    // (The dev officer tries the revocation: each custodian's TOTP codes are kept for below.)
    server.login(&server.officer);
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{}/revoke", before.serial),
        Some(&server.officer.token()),
        Some(json!({"totp": server.officer.code(), "reason": "superseded"})),
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        ocsp_status(&server.public_url, &before.leaf, &before.issuer),
        "valid"
    );
    assert_eq!(server.public_get("/crl/issuing.crl").status().as_u16(), 200);
    let metrics = server.public_get("/metrics").text().unwrap();
    assert!(metrics.contains("mamori_ca_locked 1"), "{metrics}");

    // One share of two does not unlock; given twice it counts once.
    let homes = tempfile::tempdir().unwrap();
    let home = |server: &Server, p: &Person| {
        let h = homes.path().join(&p.username);
        if !h.exists() {
            server.cli_login(&h, p);
        }
        h
    };
    let run = activate(
        &server,
        &home(&server, alice),
        alice,
        &share_of(&set1, "alice"),
        &pass[0],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("\"locked\": true") && run.stdout.contains("\"shares_given\": 1"),
        "{run:?}"
    );
    let run = activate(
        &server,
        &home(&server, alice),
        alice,
        &share_of(&set1, "alice"),
        &pass[0],
    );
    assert!(
        run.stdout.contains("\"shares_given\": 1"),
        "a share given twice counts once: {run:?}"
    );
    // Bob cannot give Carol's share (he may have her file and passphrase; it is still hers).
    let run = activate(
        &server,
        &home(&server, bob),
        bob,
        &share_of(&set1, "carol"),
        &pass[2],
    );
    assert_eq!(run.code, 4, "{run:?}");
    // A wrong share passphrase never reaches the server; a wrong TOTP code is refused there.
    let run = server.cli(
        &home(&server, bob),
        &[
            "activate",
            "--share-file",
            &share_of(&set1, "bob"),
            "--share-passphrase-file",
            &pass[0],
            "--totp",
            "000000",
        ],
    );
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("passphrase"), "{run:?}");
    let run = server.cli(
        &home(&server, bob),
        &[
            "activate",
            "--share-file",
            &share_of(&set1, "bob"),
            "--share-passphrase-file",
            &pass[1],
            "--totp",
            &bob.stale_code(20),
        ],
    );
    assert_eq!(run.code, 4, "{run:?}");
    let (status, _) = submit(&server, &enroller, "q-still-locked");
    assert_eq!(status, 503);
    // The second distinct custodian unlocks.
    let run = activate(
        &server,
        &home(&server, bob),
        bob,
        &share_of(&set1, "bob"),
        &pass[1],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("\"locked\": false"), "{run:?}");
    let (status, body) = submit(&server, &enroller, "q-unlocked");
    assert_eq!(status, 201, "{body}");
    let metrics = server.public_get("/metrics").text().unwrap();
    assert!(metrics.contains("mamori_ca_locked 0"), "{metrics}");
    assert_eq!(
        server.query(
            "SELECT count(*) FROM audit_log WHERE action IN ('quorum.share', 'quorum.unlock')"
        ),
        "4",
        "alice twice, bob, unlock"
    );

    // Carol leaves, Dave joins: a reshare from two current shares.
    let out2 = secrets.path().join("set2");
    let reshare = quorum_reshare(
        &server,
        &["reshare"],
        &[
            (share_of(&set1, "alice"), &pass[0]),
            (share_of(&set1, "carol"), &pass[2]),
        ],
        &[("alice", &pass[0]), ("bob", &pass[1]), ("dave", &pass[3])],
        &out2,
    );
    assert!(reshare.status.success(), "{reshare:?}");
    let set2 = shares_in(&out2);
    server.restart();
    let (status, _) = submit(&server, &enroller, "q-relocked");
    assert_eq!(status, 503);
    // An old share is refused; the new ones unlock.
    let run = activate(
        &server,
        &home(&server, bob),
        bob,
        &share_of(&set1, "bob"),
        &pass[1],
    );
    assert_eq!(run.code, 6, "{run:?}");
    assert!(run.stderr.contains("reshare"), "{run:?}");
    let run = activate(
        &server,
        &home(&server, alice),
        alice,
        &share_of(&set2, "alice"),
        &pass[0],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = activate(
        &server,
        &home(&server, dave),
        dave,
        &share_of(&set2, "dave"),
        &pass[3],
    );
    assert!(run.stdout.contains("\"locked\": false"), "{run:?}");
    let (status, body) = submit(&server, &enroller, "q-after-reshare");
    assert_eq!(status, 201, "{body}");
    // The old set cannot even be recombined offline into the new secret: a reshare from it fails.
    let again = quorum_reshare(
        &server,
        &["quorum", "reshare"],
        &[
            (share_of(&set1, "alice"), &pass[0]),
            (share_of(&set1, "bob"), &pass[1]),
        ],
        &[("alice", &pass[0]), ("bob", &pass[1])],
        &secrets.path().join("set3"),
    );
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not the current one"),
        "{again:?}"
    );
    let _ = carol;
}
