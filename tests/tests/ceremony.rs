//! The offline root after its first ceremony: a second ceremony on the same vault renews the
//! root CRL (a higher cRLNumber) and the root responder's certificate, and revokes a CA
//! certificate the root issued; `ca-server ceremony-import` brings both to the online server.
//! The online server refuses to revoke the root's certificates itself, and a ceremony refuses
//! to create a second root in a vault that has one. (The relying-party matrix on a ceremony
//! root is `relying_parties.rs`'s `offline_root_from_a_ceremony`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use mamori_e2e::{artifact, ca_server_in, crl_number, crl_serials, normal_serial, Backend, Server};
use serde_json::json;

#[test]
fn a_second_ceremony_renews_the_root_crl_and_responder_and_revokes() {
    let mut server = Server::start_offline_root(Backend::Sqlite, &[]);
    let offline = server.path().join("offline");
    // The ceremony's root certificate goes to pkilint with the rest.
    artifact("ceremony-root", &offline.join("vault/root-ca.pem"));
    let first = server.public_get("/crl/root.crl").bytes().unwrap();
    let responder_serials = server.query(
        "SELECT serial FROM certificates WHERE ca_id = 'root' AND profile_id = 'ocsp-responder'",
    );
    let old_responder = responder_serials.trim().to_string();

    // The online server cannot revoke what the root issued.
    server.login(&server.officer);
    let issuing_serial = server.query(
        "SELECT serial FROM certificates WHERE ca_id = 'root' AND profile_id = 'issuing-ca'",
    );
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/root/{}/revoke", issuing_serial.trim()),
        Some(&server.officer.token()),
        Some(json!({"totp": server.officer.code(), "reason": "superseded"})),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("offline"),
        "{body}"
    );

    // A ceremony that asks for a new root in a vault that has one is refused.
    let script = offline.join("again.toml");
    let base = std::fs::read_to_string(offline.join("ceremony.toml")).unwrap();
    std::fs::write(&script, &base).unwrap();
    let pass = offline.join("vault-passphrase");
    let refused = std::process::Command::new(mamori_e2e::binary("ca-server"))
        .args([
            "ceremony",
            "--script",
            script.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("already holds a root"),
        "{refused:?}"
    );

    // The renewal: the same responder request signed again, the old responder certificate
    // revoked as superseded, a new CRL.
    let header = base.split("[root]").next().unwrap();
    std::fs::write(
        &script,
        format!(
            "{header}[[sign_responder]]\ncsr = \"requests/root-ocsp.csr\"\nvalidity_days = 400\n\
             [[revoke]]\nserial = \"{old_responder}\"\nreason = \"superseded\"\n[crl]\nvalidity_days = 180\n"
        ),
    )
    .unwrap();
    let said = ca_server_in(
        server.path(),
        &server.database_url,
        &server.public_url,
        &[
            "ceremony",
            "--script",
            script.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    assert!(said.contains("transcript"), "{said}");
    let said = ca_server_in(
        server.path(),
        &server.database_url,
        &server.public_url,
        &["ceremony-import", offline.join("out").to_str().unwrap()],
    );
    assert!(
        said.contains("imported root CRL") && said.contains("root OCSP responder certificate"),
        "{said}"
    );
    // Importing the same output again changes nothing.
    let said = ca_server_in(
        server.path(),
        &server.database_url,
        &server.public_url,
        &["ceremony-import", offline.join("out").to_str().unwrap()],
    );
    assert!(said.contains("nothing newer"), "{said}");

    server.restart();
    let second = server.public_get("/crl/root.crl").bytes().unwrap();
    assert!(crl_number(&second) > crl_number(&first));
    assert!(crl_serials(&second).contains(&normal_serial(&old_responder)));
    // The online responder answers for the root's certificates from the same facts.
    assert_eq!(
        server
            .query(&format!("SELECT status FROM certificates WHERE ca_id = 'root' AND serial = '{old_responder}'"))
            .trim(),
        "revoked"
    );
    let responders = server.query(
        "SELECT count(*) FROM certificates WHERE ca_id = 'root' AND profile_id = 'ocsp-responder'",
    );
    assert_eq!(responders.trim(), "2");
    let log = std::fs::read_to_string(offline.join("vault/transcripts.log")).unwrap();
    assert_eq!(
        log.matches("Mamori offline root ceremony").count(),
        2,
        "{log}"
    );
    assert!(
        log.contains("revoked ") && log.contains("superseded"),
        "{log}"
    );
}

/// A ceremony whose root key lives in a PKCS#11 token (SoftHSM2) instead of an encrypted file:
/// the vault keeps only the key's URI, and a second ceremony opens the key in the token again
/// and issues a newer CRL that openssl verifies under the root.
#[test]
fn a_ceremony_keeps_the_root_key_in_a_token() {
    if let Err(why) = ca_server::custody::softhsm::module() {
        println!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let token = ca_server::custody::softhsm::create(dir.path(), "mamori-root", "2468").unwrap();
    let script = dir.path().join("ceremony.toml");
    std::fs::write(
        &script,
        format!(
            "vault = \"vault\"\nout = \"out\"\npublic_url = \"http://pki.hospital.example\"\n\
             policies_dir = \"{}\"\n\
             [pkcs11]\nmodule = \"{}\"\ntoken_label = \"mamori-root\"\npin_file = \"{}\"\n\
             [root]\norganization = \"Mamori Hospital Group\"\ncountry = \"JP\"\n\
             name = \"Mamori Token Root\"\nvalidity_days = 3650\n[crl]\nvalidity_days = 30\n",
            mamori_e2e::workspace_root().join("policies").display(),
            token.config.module.display(),
            token.config.pin_file.as_ref().unwrap().display()
        ),
    )
    .unwrap();
    let ceremony = || {
        let out = std::process::Command::new(mamori_e2e::binary("ca-server"))
            .args(["ceremony", "--script", script.to_str().unwrap()])
            .env("SOFTHSM2_CONF", &token.conf)
            // No vault passphrase: the token's PIN protects the root's key.
            .env_remove("MAMORI_CA_PASSPHRASE")
            .env_remove("MAMORI_CA_PASSPHRASE_FILE")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        std::fs::read(dir.path().join("out/root.crl")).unwrap()
    };
    let first = ceremony();
    let vault = dir.path().join("vault");
    assert!(!vault.join("root-key.pem").exists());
    let uri = std::fs::read_to_string(vault.join("root-key.uri")).unwrap();
    assert!(
        uri.starts_with("pkcs11:token=mamori-root;object=mamori-root;id="),
        "{uri}"
    );
    // The second ceremony reuses the root in the token.
    let text = std::fs::read_to_string(&script).unwrap();
    std::fs::write(
        &script,
        text.split("[root]").next().unwrap().to_string() + "[crl]\nvalidity_days = 30\n",
    )
    .unwrap();
    let second = ceremony();
    assert!(crl_number(&second) > crl_number(&first));
    let crl_path = dir.path().join("second.crl");
    std::fs::write(&crl_path, &second).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-in"])
        .arg(&crl_path)
        .arg("-CAfile")
        .arg(vault.join("root-ca.pem"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verify OK"),
        "{out:?}"
    );
}
