//! A second certificate for the same subject is never silent: the API names the valid ones
//! already there, and the profile decides (`duplicates = "allow" | "refuse" | "supersede"`);
//! `ca-cli device import` re-runs import only what is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;

use mamori_e2e::{device_csr, workspace_root, Backend, Server};
use serde_json::{json, Value};

/// The shipped policies with `duplicates = <policy>` on the ambulance-terminal profile.
fn policies(dir: &Path, policy: &str) -> String {
    let out = dir.join(format!("policies-{policy}"));
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(workspace_root().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.file_name().unwrap() == "ambulance-terminal.toml" {
            text = text.replace(
                "extended_key_usage = [\"client-auth\"]\n",
                &format!("extended_key_usage = [\"client-auth\"]\nduplicates = \"{policy}\"\n"),
            );
            assert!(text.contains("duplicates ="));
        }
        std::fs::write(out.join(path.file_name().unwrap()), text).unwrap();
    }
    out.display().to_string()
}

fn submit(server: &Server, token: &str, id: &str) -> (u16, Value) {
    let (_key, pem) = device_csr(id);
    server.call(
        "POST",
        "/api/v1/requests",
        Some(token),
        Some(json!({"profile": "ambulance-terminal", "csr": pem, "justification": "terminal"})),
    )
}

fn status_of(server: &Server, serial: &str) -> String {
    server.query(&format!(
        "SELECT status || ':' || coalesce(revocation_reason, '') FROM certificates WHERE serial = '{serial}'"
    ))
}

#[test]
fn each_duplicate_policy_does_what_it_says() {
    let scratch = tempfile::tempdir().unwrap();
    // allow (the default): issued, and the earlier certificate is named.
    let server = Server::start(Backend::Sqlite, &[]);
    let enroller = server.user("amb-it", &["device-enroller"]);
    let (status, first) = submit(&server, &enroller.token(), "0007");
    assert_eq!(status, 201, "{first}");
    assert!(first.get("duplicates").is_none(), "{first}");
    let (status, second) = submit(&server, &enroller.token(), "0007");
    assert_eq!(status, 201, "{second}");
    let named = format!("issuing/{}", first["serial"].as_str().unwrap());
    assert_eq!(second["duplicates"], json!([named]), "{second}");
    assert_eq!(
        status_of(&server, first["serial"].as_str().unwrap()),
        "valid:"
    );
    drop(server);

    // refuse: the second request is a 409 naming the certificate to revoke first.
    let server = Server::start(
        Backend::Sqlite,
        &[("MAMORI_POLICIES_DIR", &policies(scratch.path(), "refuse"))],
    );
    let enroller = server.user("amb-it", &["device-enroller"]);
    let (status, first) = submit(&server, &enroller.token(), "0007");
    assert_eq!(status, 201, "{first}");
    let (status, refused) = submit(&server, &enroller.token(), "0007");
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains(first["serial"].as_str().unwrap()),
        "{refused}"
    );
    let (status, other) = submit(&server, &enroller.token(), "0008");
    assert_eq!(status, 201, "another device is not a duplicate: {other}");
    drop(server);

    // supersede: the new one is issued, then the old one is revoked as superseded, in the
    // CRL and audited.
    let server = Server::start(
        Backend::Sqlite,
        &[(
            "MAMORI_POLICIES_DIR",
            &policies(scratch.path(), "supersede"),
        )],
    );
    let enroller = server.user("amb-it", &["device-enroller"]);
    let (_, first) = submit(&server, &enroller.token(), "0007");
    let (status, second) = submit(&server, &enroller.token(), "0007");
    assert_eq!(status, 201, "{second}");
    let old = first["serial"].as_str().unwrap();
    assert_eq!(status_of(&server, old), "revoked:superseded");
    assert_eq!(
        status_of(&server, second["serial"].as_str().unwrap()),
        "valid:"
    );
    let crl = server.public_get("/crl/issuing.crl").bytes().unwrap();
    let crl = openssl::x509::X509Crl::from_der(&crl).unwrap();
    let listed: Vec<String> = crl
        .get_revoked()
        .unwrap()
        .iter()
        .map(|r| {
            r.serial_number()
                .to_bn()
                .unwrap()
                .to_hex_str()
                .unwrap()
                .to_lowercase()
        })
        .collect();
    assert!(
        listed.contains(&old.trim_start_matches('0').to_string()),
        "{listed:?}"
    );
    let audited = server.query(&format!(
        "SELECT count(*) FROM audit_log WHERE action = 'certificate.supersede' AND target = 'issuing/{old}'"
    ));
    assert_eq!(audited, "1");
}

#[test]
fn device_import_re_runs_import_only_what_is_missing() {
    let server = Server::start(Backend::Sqlite, &[]);
    let enroller = server.user("amb-it", &["device-enroller"]);
    let home = server.dir.path().join("cli-import");
    server.cli_login(&home, &enroller);
    let csv = server.dir.path().join("fleet.csv");
    std::fs::write(&csv, "id\n0001\n0002\n0001\n").unwrap();
    let keys = server.dir.path().join("keys-1");
    let run = server.cli(
        &home,
        &[
            "--json",
            "device",
            "import",
            csv.to_str().unwrap(),
            "--keys-dir",
            keys.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 6, "the repeated id fails its row: {run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["issued"], 2, "{report}");
    assert_eq!(report["failures"][0]["line"], 4, "{report}");
    assert!(
        report["failures"][0]["error"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{report}"
    );
    // Again into a new folder: nothing new is issued.
    std::fs::write(&csv, "id\n0001\n0002\n0003\n").unwrap();
    let keys = server.dir.path().join("keys-2");
    let run = server.cli(
        &home,
        &[
            "--json",
            "device",
            "import",
            csv.to_str().unwrap(),
            "--keys-dir",
            keys.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (report["issued"].clone(), report["skipped"].clone()),
        (json!(1), json!(2)),
        "{report}"
    );
    let valid = server.query(
        "SELECT count(*) FROM certificates WHERE profile_id = 'ambulance-terminal' AND status = 'valid'",
    );
    assert_eq!(valid, "3");
    // --reissue issues again and reports the older certificate.
    std::fs::write(&csv, "id\n0001\n").unwrap();
    let keys = server.dir.path().join("keys-3");
    let run = server.cli(
        &home,
        &[
            "--json",
            "device",
            "import",
            csv.to_str().unwrap(),
            "--keys-dir",
            keys.to_str().unwrap(),
            "--reissue",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["issued"], 1, "{report}");
    assert_eq!(report["duplicates"][0]["id"], "0001", "{report}");
}
