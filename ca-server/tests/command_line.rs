//! The `ca-server` binary's own command line: help, and clear errors for bad configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

fn server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ca-server"))
}

#[test]
fn help_lists_every_command() {
    let out = server().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["init", "serve", "migrate", "dev", "ocsp"] {
        assert!(text.contains(command), "{command} missing from {text}");
    }
}

#[test]
fn bad_configuration_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mamori.toml");
    std::fs::write(&config, "http_addr = \"everywhere\"\n").unwrap();
    let out = server()
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("ca-server: config key http_addr"), "{err}");
    let out = server()
        .args(["migrate", "--config", "/nonexistent/mamori.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/mamori.toml"));
    let out = server()
        .arg("migrate")
        .env("MAMORI_DATABASE_URL", "mysql://nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("database_url"));
}

#[test]
fn serve_refuses_an_uninitialized_database_and_a_wrong_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let env = |cmd: &mut Command| {
        cmd.env("MAMORI_DATA_DIR", dir.path()).env(
            "MAMORI_POLICIES_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../policies"),
        );
    };
    // A passphrase file others can read is refused, with what to do about it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut open = server();
    env(&mut open);
    let out = open
        .args(["init", "--passphrase-file"])
        .arg(&pass)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("group or others (mode 0644)") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut serve = server();
    env(&mut serve);
    let out = serve
        .args(["serve", "--passphrase-file"])
        .arg(&pass)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not initialized"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut init = server();
    env(&mut init);
    let out = init
        .args(["init", "--passphrase-file"])
        .arg(&pass)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut again = server();
    env(&mut again);
    let out = again
        .args(["init", "--passphrase-file"])
        .arg(&pass)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "init twice must refuse");
    // The database and its WAL files are the owner's alone.
    for name in ["mamori.db", "mamori.db-wal", "mamori.db-shm"] {
        let path = dir.path().join(name);
        if path.exists() {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
        }
    }
    assert!(dir.path().join("mamori.db").exists());
    std::fs::write(&pass, "a wrong passphrase entirely\n").unwrap();
    let mut wrong = server();
    env(&mut wrong);
    let out = wrong
        .args(["serve", "--passphrase-file"])
        .arg(&pass)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong CA passphrase"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&pass, "short\n").unwrap();
    let mut short = server();
    env(&mut short);
    let out = short
        .args(["serve", "--passphrase-file"])
        .arg(&pass)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 12"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
