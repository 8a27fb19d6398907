//! Hospital life around certificates (issue 25): vendors' one-day certificates that need no
//! revocation (noRevAvail, RFC 9608), checked by openssl and refused revocation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use mamori_e2e::{artifact, csr, rfc3339, Backend, Server};
use openssl::x509::X509;
use rcgen::DnType::{CommonName, OrganizationName};
use serde_json::json;

/// A vendor-day certificate: two officers approve a window of a day or less; the certificate
/// carries noRevAvail and no CRL or OCSP pointer (openssl's reading), verifies under the root,
/// and is never revoked or held (409, saying what to do instead). A longer window is refused.
#[test]
fn vendor_day_certificates_carry_no_rev_avail_and_are_never_revoked() {
    let server = Server::start(Backend::Sqlite, &[]);
    server.login(&server.admin);
    let alice = server.user("alice", &["security-officer"]);
    let bob = server.user("bob", &["security-officer"]);
    let vendor = server.user("acme-vendor", &["vendor"]);
    let now = ca_core::time::UnixTime::now().as_secs();
    let (_key, pem) = csr(
        &[
            (OrganizationName, "Acme Medical"),
            (CommonName, "acme-engineer-1"),
        ],
        vec![],
    );
    let submit = |hours: u64| {
        server.call(
            "POST",
            "/api/v1/requests",
            Some(&vendor.token()),
            Some(
                json!({"profile": "vendor-day", "csr": pem, "justification": "CT firmware",
                "work_order": "WO-2026-1202", "not_before": rfc3339(now),
                "not_after": rfc3339(now + hours * 3600)}),
            ),
        )
    };
    let (status, body) = submit(30);
    assert_eq!(
        status, 422,
        "a 30-hour window is longer than the profile allows: {body}"
    );
    let (status, body) = submit(10);
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    for officer in [&alice, &bob] {
        let (status, body) = server.call(
            "POST",
            &format!("/api/v1/requests/{id}/approve"),
            Some(&officer.token()),
            Some(json!({"totp": officer.code(), "comment": "work order checked"})),
        );
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = server.call(
        "GET",
        &format!("/api/v1/requests/{id}"),
        Some(&alice.token()),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "issued", "{body}");
    let serial = body["serial"].as_str().unwrap().to_string();
    let chain = server
        .client
        .get(format!(
            "{}/api/v1/requests/{id}/certificate",
            server.api_url
        ))
        .bearer_auth(vendor.token())
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let chain = X509::stack_from_pem(&chain).unwrap();
    let leaf_path = server.path().join("vendor-day.pem");
    std::fs::write(&leaf_path, chain[0].to_pem().unwrap()).unwrap();
    let untrusted = server.path().join("vendor-day-chain.pem");
    std::fs::write(&untrusted, chain[1].to_pem().unwrap()).unwrap();
    artifact("vendor-day", &leaf_path);

    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&leaf_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("No Revocation Available"), "{text}");
    assert!(!text.contains("CRL Distribution"), "{text}");
    assert!(!text.contains("OCSP - URI"), "{text}");
    assert!(text.contains("CA Issuers - URI"), "{text}");
    let root = server.path().join("root-ca.pem");
    let out = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&root)
        .arg("-untrusted")
        .arg(&untrusted)
        .arg(&leaf_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    for (action, body) in [
        (
            "revoke",
            json!({"reason": "key-compromise", "totp": alice.code()}),
        ),
        ("hold", json!({"totp": bob.code()})),
    ] {
        let (status, body) = server.call(
            "POST",
            &format!("/api/v1/certificates/issuing/{serial}/{action}"),
            Some(&if action == "hold" {
                bob.token()
            } else {
                alice.token()
            }),
            Some(body),
        );
        assert_eq!(status, 409, "{action}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("noRevAvail"),
            "{body}"
        );
    }
    assert_eq!(
        server
            .query(&format!(
                "SELECT status FROM certificates WHERE serial = '{serial}'"
            ))
            .trim(),
        "valid"
    );
}
