//! The issuing CA's key in a PKCS#11 token (SoftHSM2): `ca-server dev` with a `[pkcs11]`
//! configuration makes the key inside the token, stores only its URI, and issues, revokes,
//! publishes CRLs and answers OCSP with it, across a restart; a wrong PIN stops the start with
//! a clear message. Skips with a printed reason where SoftHSM2 is not installed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use ca_server::custody::softhsm;
use mamori_e2e::{
    artifact, crl_serials, have, issue_device, normal_serial, ocsp_status, Backend, Server,
};
use openssl::x509::X509;
use serde_json::json;

fn verify(server: &Server, leaf: &X509, name: &str) {
    let dir = server.path();
    let leaf_path = dir.join(format!("{name}.pem"));
    std::fs::write(&leaf_path, leaf.to_pem().unwrap()).unwrap();
    let chain = dir.join("issuing-chain.pem");
    std::fs::write(
        &chain,
        reqwest::blocking::get(format!("{}/ca/issuing.pem", server.public_url))
            .unwrap()
            .bytes()
            .unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dir.join("root-ca.pem"))
        .arg("-untrusted")
        .arg(&chain)
        .arg(&leaf_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    artifact(name, &leaf_path);
}

fn run(backend: Backend) {
    if let Err(why) = softhsm::module() {
        println!("skipped: {why}");
        return;
    }
    let hsm_dir = tempfile::tempdir().unwrap();
    let token = softhsm::create(hsm_dir.path(), "mamori-e2e", "8642").unwrap();
    let module = token.config.module.display().to_string();
    let pin_file = token.config.pin_file.clone().unwrap();
    let env = [
        ("SOFTHSM2_CONF", token.conf.to_str().unwrap()),
        ("MAMORI_PKCS11_MODULE", module.as_str()),
        ("MAMORI_PKCS11_TOKEN_LABEL", "mamori-e2e"),
        ("MAMORI_PKCS11_PIN_FILE", pin_file.to_str().unwrap()),
    ];
    let name = backend_name(&backend);
    let mut server = Server::start(backend, &env);

    // Only the key's URI is in the database; the key itself is a non-extractable token object.
    let stored = server.query("SELECT key_pem FROM cas WHERE id = 'issuing'");
    assert!(
        stored.starts_with("pkcs11:token=mamori-e2e;object=mamori-issuing-"),
        "{stored}"
    );
    assert!(!server
        .query("SELECT key_pem FROM cas WHERE id = 'root'")
        .starts_with("pkcs11:"));
    // The delegated OCSP responders' keys are made in the token too.
    let responders = server.query("SELECT key_pem FROM ocsp_responders ORDER BY ca_id");
    assert_eq!(responders.lines().count(), 2, "{responders}");
    assert!(
        responders
            .lines()
            .all(|k| k.starts_with("pkcs11:token=mamori-e2e;object=mamori-ocsp-")),
        "{responders}"
    );
    if have("pkcs11-tool") {
        let out = std::process::Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", &token.conf)
            .args([
                "--module",
                &module,
                "--token-label",
                "mamori-e2e",
                "--pin",
                "8642",
            ])
            .args(["--list-objects", "--type", "privkey"])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            listing.contains("never extractable") && listing.contains("sensitive"),
            "pkcs11-tool --list-objects:\n{listing}"
        );
    } else {
        println!("pkcs11-tool (Debian package opensc) is missing: the token's own listing is not checked");
    }

    // Issue, verify the chain, revoke: OCSP and the CRL, both signed in the token, agree.
    server.login(&server.admin);
    let enroller = server.user("enroller", &["device-enroller"]);
    let d = issue_device(&server, &enroller, "hsm-1");
    let (leaf, issuer, serial) = (d.leaf, d.issuer, d.serial);
    verify(&server, &leaf, &format!("hsm-{name}"));
    assert_eq!(ocsp_status(&server.public_url, &leaf, &issuer), "valid");
    server.login(&server.officer);
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{serial}/revoke"),
        Some(&server.officer.token()),
        Some(json!({"totp": server.officer.code(), "reason": "superseded"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(ocsp_status(&server.public_url, &leaf, &issuer), "revoked");
    // openssl checks the token-signed response and the responder's certificate.
    let leaf_path = server.path().join(format!("hsm-{name}.pem"));
    let respout = server.path().join("ocsp.der");
    let out = std::process::Command::new("openssl")
        .args([
            "ocsp",
            "-no_nonce",
            "-url",
            &format!("{}/ocsp", server.public_url),
        ])
        .arg("-issuer")
        .arg(server.path().join("issuing-chain.pem"))
        .arg("-cert")
        .arg(&leaf_path)
        .arg("-CAfile")
        .arg(server.path().join("root-ca.pem"))
        .arg("-respout")
        .arg(&respout)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Response verify OK") && said.contains(": revoked"),
        "{said}"
    );
    artifact_file(&format!("ocsp-hsm-{name}.der"), &respout);
    let crl = server.public_get("/crl/issuing.crl").bytes().unwrap();
    assert!(crl_serials(&crl).contains(&normal_serial(&serial)));
    let crl_path = server.path().join("issuing.crl");
    std::fs::write(&crl_path, &crl).unwrap();
    artifact_file(&format!("crl-hsm-{name}.der"), &crl_path);
    let out = std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-in"])
        .arg(&crl_path)
        .arg("-CAfile")
        .arg(server.path().join("issuing-chain.pem"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verify OK"),
        "{out:?}"
    );

    // A restart opens the key in the token again.
    server.restart();
    let d = issue_device(&server, &enroller, "hsm-2");
    let (leaf, issuer) = (d.leaf, d.issuer);
    assert_eq!(ocsp_status(&server.public_url, &leaf, &issuer), "valid");

    // A wrong PIN stops `ca-server serve` with a message that names it.
    server.kill();
    let wrong = hsm_dir.path().join("wrong-pin");
    std::fs::write(&wrong, "1111\n").unwrap();
    std::fs::set_permissions(&wrong, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = std::process::Command::new(mamori_e2e::binary("ca-server"))
        .arg("serve")
        .env("SOFTHSM2_CONF", &token.conf)
        .env("MAMORI_PKCS11_MODULE", &module)
        .env("MAMORI_PKCS11_TOKEN_LABEL", "mamori-e2e")
        .env("MAMORI_PKCS11_PIN_FILE", &wrong)
        .env("MAMORI_DATA_DIR", server.path())
        .env("MAMORI_DATABASE_URL", &server.database_url)
        .env(
            "MAMORI_POLICIES_DIR",
            mamori_e2e::workspace_root().join("policies"),
        )
        .env(
            "MAMORI_CA_PASSPHRASE_FILE",
            server.path().join("dev-passphrase"),
        )
        .env("MAMORI_HTTP_ADDR", "127.0.0.1:0")
        .env("MAMORI_API_ADDR", "127.0.0.1:0")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("PIN") && stderr.contains("issuing"),
        "{stderr}"
    );
}

/// Keeps a DER CRL or OCSP response for pkilint in CI, beside the certificates.
fn artifact_file(file: &str, from: &std::path::Path) {
    let dir = std::env::var_os("MAMORI_ARTIFACTS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| mamori_e2e::workspace_root().join("target/pki-artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(from, dir.join(file)).unwrap();
}

fn backend_name(backend: &Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres | Backend::PostgresAt(_) => "postgres",
    }
}

#[test]
fn the_issuing_key_in_softhsm_signs_certificates_crls_and_ocsp_sqlite() {
    run(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn the_issuing_key_in_softhsm_signs_certificates_crls_and_ocsp_postgres() {
    run(Backend::Postgres);
}

/// The token's PIN under a k-of-n quorum: after `ca-server quorum split` with `[pkcs11]` the
/// PIN is sealed under the activation secret and its file can go; the server starts locked
/// without it (its token keys wait too) and opens the token when two custodians activate it.
#[test]
fn a_token_pin_sealed_under_the_quorum_opens_only_at_activation() {
    if let Err(why) = softhsm::module() {
        println!("skipped: {why}");
        return;
    }
    let hsm_dir = tempfile::tempdir().unwrap();
    let token = softhsm::create(hsm_dir.path(), "mamori-quorum", "97531").unwrap();
    let module = token.config.module.display().to_string();
    let pin_file = token.config.pin_file.clone().unwrap();
    let env = [
        ("SOFTHSM2_CONF", token.conf.to_str().unwrap()),
        ("MAMORI_PKCS11_MODULE", module.as_str()),
        ("MAMORI_PKCS11_TOKEN_LABEL", "mamori-quorum"),
        ("MAMORI_PKCS11_PIN_FILE", pin_file.to_str().unwrap()),
    ];
    let mut server = Server::start(Backend::Sqlite, &env);
    server.login(&server.admin);
    let enroller = server.user("enroller", &["device-enroller"]);
    let alice = server.user("alice", &["security-officer"]);
    let bob = server.user("bob", &["security-officer"]);
    let secrets = tempfile::tempdir().unwrap();
    let pass = |name: &str| {
        let path = secrets.path().join(name);
        std::fs::write(&path, format!("{name}'s long share passphrase\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        path.display().to_string()
    };
    let (alice_pass, bob_pass) = (pass("alice"), pass("bob"));
    let out = secrets.path().join("shares");
    let split = std::process::Command::new(mamori_e2e::binary("ca-server"))
        .args(["quorum", "split", "--threshold", "2"])
        .args(["--custodian", &format!("alice={alice_pass}")])
        .args(["--custodian", &format!("bob={bob_pass}")])
        .args(["--out", out.to_str().unwrap()])
        .envs(env)
        .env("MAMORI_DATA_DIR", server.path())
        .env("MAMORI_DATABASE_URL", &server.database_url)
        .env(
            "MAMORI_POLICIES_DIR",
            mamori_e2e::workspace_root().join("policies"),
        )
        .env(
            "MAMORI_CA_PASSPHRASE_FILE",
            server.path().join("dev-passphrase"),
        )
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&split.stdout);
    assert!(
        split.status.success() && said.contains("PIN is sealed"),
        "{split:?}"
    );
    // The PIN file goes; the server starts locked without it.
    std::fs::remove_file(&pin_file).unwrap();
    server.restart();
    let (_k, csr) = mamori_e2e::device_csr("pin-locked");
    let (status, body) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&enroller.token()),
        Some(json!({"profile": "ambulance-terminal", "csr": csr, "justification": "pin"})),
    );
    assert_eq!(status, 503, "{body}");
    let shares: Vec<std::path::PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let share = |name: &str| {
        shares
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
    };
    for (person, pass) in [(&alice, &alice_pass), (&bob, &bob_pass)] {
        let home = secrets.path().join(format!("home-{}", person.username));
        server.cli_login(&home, person);
        let code = person.code();
        let run = server.cli(
            &home,
            &[
                "activate",
                "--share-file",
                &share(&person.username),
                "--share-passphrase-file",
                pass,
                "--totp",
                &code,
            ],
        );
        assert_eq!(run.code, 0, "{run:?}\n{}", server.logs());
    }
    // Opened with the sealed PIN, the token signs again: issuance, and OCSP from its responder.
    let device = issue_device(&server, &enroller, "pin-unlocked");
    assert_eq!(
        ocsp_status(&server.public_url, &device.leaf, &device.issuer),
        "valid"
    );
}
