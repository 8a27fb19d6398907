//! The `ca-cli` binary without a server: help with exit codes, usage errors, local key work.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

fn cli(home: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ca-cli"));
    cmd.arg("--config-dir")
        .arg(home)
        .env_remove("MAMORI_SERVER");
    cmd
}

#[test]
fn help_documents_exit_codes() {
    let home = tempfile::tempdir().unwrap();
    let out = cli(home.path()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Exit codes:") && text.contains("7  server unreachable"),
        "{text}"
    );
}

#[test]
fn usage_errors_and_missing_login() {
    let home = tempfile::tempdir().unwrap();
    assert_eq!(
        cli(home.path())
            .arg("no-such-command")
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
    let out = cli(home.path()).arg("whoami").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn local_keys_and_csrs_are_readable_by_openssl() {
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("k.pem");
    let csr = home.path().join("r.csr");
    let out = cli(home.path())
        .args(["key", "generate", "--algorithm", "p384", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Never overwrites a key.
    let again = cli(home.path())
        .args(["key", "generate", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let out = cli(home.path())
        .args(["csr", "create", "--key"])
        .arg(&key)
        .args([
            "--cn",
            "amb-1",
            "--uri",
            "urn:mamori:device:ambulance:1",
            "--out",
        ])
        .arg(&csr)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = Command::new("openssl")
        .args(["req", "-verify", "-noout", "-text", "-in"])
        .arg(&csr)
        .output()
        .unwrap();
    assert!(check.status.success());
    assert!(String::from_utf8_lossy(&check.stdout).contains("URI:urn:mamori:device:ambulance:1"));
    // A garbage key file is one clear error.
    std::fs::write(home.path().join("bad.pem"), "not a key").unwrap();
    let out = cli(home.path())
        .args(["csr", "create", "--key"])
        .arg(home.path().join("bad.pem"))
        .args(["--cn", "x", "--out"])
        .arg(home.path().join("x.csr"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.pem"));
}

/// A public listener that does not answer is named with the cause, not "error sending request".
#[test]
fn an_unreachable_public_listener_says_what_failed() {
    let home = tempfile::tempdir().unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let out = cli(home.path())
        .args(["--public-url", &url, "crl", "fetch"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains(&format!("GET {url}/crl/")), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(stderr.contains("public listener"), "{stderr}");
}
