//! The real `ca-server` end to end over HTTPS and HTTP, on SQLite and (when
//! MAMORI_TEST_POSTGRES_URL is set) PostgreSQL: the multi-factor workflow for every kind of
//! requester, revocation seen by OCSP (checked with OpenSSL) and the CRL, hold and release, MFA
//! edge cases, the audit chain, and a role × route matrix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use mamori_e2e::{csr, rfc3339, Backend, Person, Server};
use openssl::ocsp::{
    OcspCertId, OcspCertStatus, OcspFlag, OcspRequest, OcspResponse, OcspRevokedStatus,
};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509Crl, X509};
use rcgen::DnType::*;
use serde_json::{json, Value};

fn uri(s: &str) -> rcgen::SanType {
    rcgen::SanType::URI(s.try_into().unwrap())
}
fn email(s: &str) -> rcgen::SanType {
    rcgen::SanType::Rfc822Name(s.try_into().unwrap())
}

struct Cast {
    alice: Person,
    bob: Person,
    carol: Person,
    vendor: Person,
    enroller: Person,
    staffer: Person,
    auditor: Person,
}

fn cast(server: &Server) -> Cast {
    server.login(&server.admin);
    Cast {
        alice: server.user("alice", &["security-officer"]),
        bob: server.user("bob", &["security-officer"]),
        carol: server.user("carol", &["security-officer"]),
        vendor: server.user("acme-vendor", &["vendor"]),
        enroller: server.user("enroller", &["device-enroller"]),
        staffer: server.user("hr-desk", &["staff-requester"]),
        auditor: server.user("auditor", &["auditor"]),
    }
}

fn chain_of(server: &Server, request_id: &str, token: &str) -> Vec<X509> {
    let response = server
        .client
        .get(format!(
            "{}/api/v1/requests/{request_id}/certificate",
            server.api_url
        ))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    X509::stack_from_pem(&response.bytes().unwrap()).unwrap()
}

fn ocsp_status(
    server: &Server,
    leaf: &X509,
    issuer: &X509,
    get: bool,
) -> (OcspCertStatus, OcspRevokedStatus) {
    let root = X509::from_pem(server.root_pem.as_bytes()).unwrap();
    let id = || OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), leaf, issuer).unwrap();
    let mut request = OcspRequest::new().unwrap();
    request.add_id(id()).unwrap();
    let der = request.to_der().unwrap();
    let response = if get {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let encoded: String = b64
            .chars()
            .map(|c| match c {
                '+' => "%2B".into(),
                '/' => "%2F".into(),
                '=' => "%3D".into(),
                c => c.to_string(),
            })
            .collect();
        reqwest::blocking::get(format!("{}/ocsp/{encoded}", server.public_url)).unwrap()
    } else {
        reqwest::blocking::Client::new()
            .post(format!("{}/ocsp", server.public_url))
            .header("content-type", "application/ocsp-request")
            .body(der)
            .send()
            .unwrap()
    };
    assert_eq!(
        response.headers()["content-type"],
        "application/ocsp-response"
    );
    let response = OcspResponse::from_der(&response.bytes().unwrap()).unwrap();
    assert_eq!(
        response.status(),
        openssl::ocsp::OcspResponseStatus::SUCCESSFUL
    );
    let basic = response.basic().unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(root).unwrap();
    let mut untrusted = Stack::new().unwrap();
    untrusted.push(issuer.clone()).unwrap();
    basic
        .verify(&untrusted, &store.build(), OcspFlag::empty())
        .expect("OCSP signature verifies");
    let status = basic.find_status(&id()).unwrap();
    status.check_validity(300, None).unwrap();
    (status.status, status.reason)
}

fn crl_serials(server: &Server) -> Vec<String> {
    let der = server.public_get("/crl/issuing.crl").bytes().unwrap();
    let crl = X509Crl::from_der(&der).unwrap();
    let chain = X509::stack_from_pem(
        server
            .public_get("/ca/issuing.pem")
            .bytes()
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    assert!(
        crl.verify(&chain[0].public_key().unwrap()).unwrap(),
        "CRL signature"
    );
    crl.get_revoked()
        .map(|r| {
            r.iter()
                .map(|e| {
                    e.serial_number()
                        .to_bn()
                        .unwrap()
                        .to_hex_str()
                        .unwrap()
                        .to_lowercase()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn verify_chain(server: &Server, chain: &[X509]) {
    let mut store = X509StoreBuilder::new().unwrap();
    store
        .add_cert(X509::from_pem(server.root_pem.as_bytes()).unwrap())
        .unwrap();
    let store = store.build();
    let mut untrusted = Stack::new().unwrap();
    for c in &chain[1..] {
        untrusted.push(c.clone()).unwrap();
    }
    let mut ctx = openssl::x509::X509StoreContext::new().unwrap();
    let ok = ctx
        .init(&store, &chain[0], &untrusted, |c| c.verify_cert())
        .unwrap();
    assert!(ok, "chain verifies");
}

fn workflow(backend: Backend) {
    let server = Server::start(backend, &[]);
    let c = cast(&server);
    let now = ca_core::time::UnixTime::now().as_secs();

    // --- vendor maintenance: two officers with TOTP ---
    let (_key, vendor_csr) = csr(
        &[
            (OrganizationName, "Acme Medical"),
            (CommonName, "acme-engineer-1"),
        ],
        vec![],
    );
    let submit = json!({"profile": "vendor-maintenance", "csr": vendor_csr, "justification": "MRI firmware update", "work_order": "WO-2026-1123", "not_before": rfc3339(now), "not_after": rfc3339(now + 4 * 3600)});
    let (status, body) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&c.vendor.token()),
        Some(submit.clone()),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "pending");
    let id = body["id"].as_str().unwrap().to_string();
    // The vendor cannot approve (wrong role), and officers cannot submit vendor requests.
    let (status, _) = server.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&c.vendor.token()),
        Some(json!({"totp": "111111"})),
    );
    assert_eq!(status, 403);
    let (status, _) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&c.alice.token()),
        Some(submit.clone()),
    );
    assert_eq!(status, 403);
    // A wrong code is refused and nothing is recorded.
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&c.alice.token()),
        Some(json!({"totp": "000000", "comment": "ok"})),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["type"],
        "https://mamori.dev/problems/invalid-second-factor"
    );
    // A replayed code is refused.
    let code = c.alice.code();
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&c.alice.token()),
        Some(json!({"totp": code, "comment": "firmware checked"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["approvals"], 1);
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&c.bob.token()),
        Some(json!({"totp": code})),
    );
    assert!(status == 403 || status == 409, "{body}");
    // Double approval by the same officer does not count.
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&c.alice.token()),
        Some(json!({"totp": "111111"})),
    );
    assert_eq!(status, 409, "{body}");
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&c.bob.token()),
        Some(json!({"totp": c.bob.code(), "comment": "approved"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "issued", "{body}");
    let serial = body["serial"].as_str().unwrap().to_string();
    let chain = chain_of(&server, &id, &c.vendor.token());
    assert_eq!(chain.len(), 3);
    verify_chain(&server, &chain);
    let lifetime = chain[0].not_before().diff(chain[0].not_after()).unwrap();
    assert!(
        lifetime.days == 0 && lifetime.secs <= 4 * 3600 + 60,
        "{lifetime:?}"
    );
    assert_eq!(
        ocsp_status(&server, &chain[0], &chain[1], false).0,
        OcspCertStatus::GOOD
    );
    assert_eq!(
        ocsp_status(&server, &chain[0], &chain[1], true).0,
        OcspCertStatus::GOOD
    );

    // --- revoke: OCSP and CRL see it at once ---
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{serial}/revoke"),
        Some(&c.vendor.token()),
        Some(json!({"reason": "key-compromise", "totp": "111111"})),
    );
    assert_eq!(status, 403, "vendors cannot revoke: {body}");
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{serial}/revoke"),
        Some(&c.alice.token()),
        Some(
            json!({"reason": "key-compromise", "totp": c.alice.code(), "comment": "laptop stolen"}),
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "revoked");
    let (st, reason) = ocsp_status(&server, &chain[0], &chain[1], false);
    assert_eq!(st, OcspCertStatus::REVOKED);
    assert_eq!(reason, OcspRevokedStatus::KEY_COMPROMISE);
    assert!(crl_serials(&server).contains(&serial.trim_start_matches('0').to_string()));
    let (status, _) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{serial}/revoke"),
        Some(&c.alice.token()),
        Some(json!({"reason": "superseded", "totp": "111111"})),
    );
    assert_eq!(status, 409);

    // --- ambulance terminal: zero approvals, issued at once; hold and release ---
    let (_k, amb_csr) = csr(
        &[(CommonName, "amb-0042")],
        vec![uri("urn:mamori:device:ambulance:0042")],
    );
    let (status, body) = server.call("POST", "/api/v1/requests", Some(&c.enroller.token()), Some(json!({"profile": "ambulance-terminal", "csr": amb_csr, "justification": "new terminal"})));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "issued");
    let amb_serial = body["serial"].as_str().unwrap().to_string();
    let amb_request = body["id"].as_str().unwrap().to_string();
    // Issued without approvals in one commit: the request, the certificate (whose row keeps no
    // second copy of its TBS), its first OCSP response and both audit entries.
    let stored = server.query(&format!(
        "SELECT r.status, c.status, length(c.tbs_der), \
         CASE WHEN length(c.der) > 0 THEN 'der' ELSE 'none' END, \
         (SELECT count(*) FROM ocsp_responses o WHERE o.ca_id = c.ca_id AND o.serial = c.serial), \
         (SELECT count(*) FROM audit_log a WHERE a.action = 'request.submit' AND a.target = r.id), \
         (SELECT count(*) FROM audit_log a WHERE a.action = 'certificate.issue' \
            AND a.target = 'issuing/' || c.serial) \
         FROM requests r JOIN certificates c ON c.request_id = r.id WHERE r.id = '{amb_request}'"
    ));
    assert_eq!(stored.trim(), "issued|valid|0|der|1|1|1");
    let amb_chain = chain_of(&server, &amb_request, &c.enroller.token());
    verify_chain(&server, &amb_chain);
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{amb_serial}/hold"),
        Some(&c.carol.token()),
        Some(json!({"totp": c.carol.code(), "comment": "terminal missing"})),
    );
    assert_eq!(status, 200, "{body}");
    let (st, reason) = ocsp_status(&server, &amb_chain[0], &amb_chain[1], false);
    assert_eq!(
        (st, reason),
        (
            OcspCertStatus::REVOKED,
            OcspRevokedStatus::STATUS_CERTIFICATE_HOLD
        )
    );
    assert!(crl_serials(&server).contains(&amb_serial.trim_start_matches('0').to_string()));
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{amb_serial}/release"),
        Some(&c.carol.token()),
        Some(json!({"totp": c.carol.code(), "comment": "found"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ocsp_status(&server, &amb_chain[0], &amb_chain[1], true).0,
        OcspCertStatus::GOOD
    );
    assert!(!crl_serials(&server).contains(&amb_serial.trim_start_matches('0').to_string()));

    // --- staff: one officer; rejection path too ---
    let (_k, staff_csr) = csr(
        &[
            (CommonName, "Hanako Yamada"),
            (CustomDnType(vec![2, 5, 4, 5]), "STAFF-001"),
        ],
        vec![email("hanako@hospital.example")],
    );
    let (status, body) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&c.staffer.token()),
        Some(json!({"profile": "staff", "csr": staff_csr, "justification": "new nurse"})),
    );
    assert_eq!(status, 201, "{body}");
    let staff_id = body["id"].as_str().unwrap().to_string();
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/requests/{staff_id}/approve"),
        Some(&server.admin.token()),
        Some(json!({"totp": server.admin.code()})),
    );
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("issued")),
        "{body}"
    );
    verify_chain(&server, &chain_of(&server, &staff_id, &c.staffer.token()));
    let (_k, staff_csr2) = csr(
        &[
            (CommonName, "Taro Sato"),
            (CustomDnType(vec![2, 5, 4, 5]), "STAFF-002"),
        ],
        vec![email("taro@hospital.example")],
    );
    let (_, body) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&c.staffer.token()),
        Some(json!({"profile": "staff", "csr": staff_csr2, "justification": "x"})),
    );
    let rejected = body["id"].as_str().unwrap().to_string();
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/requests/{rejected}/reject"),
        Some(&server.admin.token()),
        Some(json!({"totp": server.admin.code(), "comment": "unknown person"})),
    );
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("rejected")),
        "{body}"
    );
    let (status, _) = server.call(
        "GET",
        &format!("/api/v1/requests/{rejected}/certificate"),
        Some(&c.staffer.token()),
        None,
    );
    assert_eq!(status, 409);

    // --- self-approval: an officer's own tls-server request ---
    let (_k, tls_csr) = csr(
        &[(CommonName, "pacs.hospital.example")],
        vec![rcgen::SanType::DnsName(
            "pacs.hospital.example".try_into().unwrap(),
        )],
    );
    let (status, body) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&c.bob.token()),
        Some(json!({"profile": "tls-server", "csr": tls_csr, "justification": "PACS web UI"})),
    );
    assert_eq!(status, 201, "{body}");
    let tls_id = body["id"].as_str().unwrap().to_string();
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/requests/{tls_id}/approve"),
        Some(&c.bob.token()),
        Some(json!({"totp": "111111"})),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "https://mamori.dev/problems/self-approval");
    let (_, body) = server.call(
        "GET",
        &format!("/api/v1/requests/{tls_id}"),
        Some(&c.bob.token()),
        None,
    );
    assert_eq!(
        (body["status"].as_str(), body["approvals"].as_u64()),
        (Some("pending"), Some(0))
    );

    // --- bad CSRs and bodies get problem details ---
    let (status, body) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&c.enroller.token()),
        Some(json!({"profile": "ambulance-terminal", "csr": "not a csr", "justification": "x"})),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "https://mamori.dev/problems/csr-rejected");
    let (_k, bad_cn) = csr(
        &[(CommonName, "laptop")],
        vec![uri("urn:mamori:device:ambulance:1")],
    );
    let (status, body) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&c.enroller.token()),
        Some(json!({"profile": "ambulance-terminal", "csr": bad_cn, "justification": "x"})),
    );
    assert_eq!(status, 422);
    assert!(body["detail"].as_str().unwrap().contains("CN"), "{body}");
    let (status, body) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&c.enroller.token()),
        Some(json!({"profile": "ambulance-terminal", "colour": "red"})),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "https://mamori.dev/problems/invalid-json");

    // --- visibility: requesters see only their own ---
    let (status, list) = server.call("GET", "/api/v1/requests", Some(&c.vendor.token()), None);
    assert_eq!(status, 200);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["requester"] == "acme-vendor"));
    let (status, _) = server.call(
        "GET",
        &format!("/api/v1/requests/{staff_id}"),
        Some(&c.vendor.token()),
        None,
    );
    assert_eq!(status, 404);
    let (_, all) = server.call("GET", "/api/v1/requests", Some(&c.auditor.token()), None);
    assert!(all.as_array().unwrap().len() >= 4);

    // --- metrics and CA certificates on the public listener ---
    let metrics = server.public_get("/metrics").text().unwrap();
    assert!(
        metrics.contains("mamori_certificates_issued_total"),
        "{metrics}"
    );
    assert!(metrics.contains("mamori_ocsp_requests_total{status=\"revoked\"}"));
    // Issuances went through the group-commit writer: at least one commit, each carrying jobs.
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing: {metrics}"))
            .parse()
            .unwrap()
    };
    let (commits, jobs) = (
        counter("mamori_db_group_commits_total"),
        counter("mamori_db_group_commit_jobs_total"),
    );
    assert!(
        commits >= 1 && jobs >= commits,
        "{commits} commits, {jobs} jobs"
    );
    // No issuance here fails inside the writer, so no batch had to be re-run with savepoints.
    assert_eq!(counter("mamori_db_group_commit_retries_total"), 0);
    let der = server.public_get("/ca/issuing.crt").bytes().unwrap();
    assert_eq!(X509::from_der(&der).unwrap(), chain[1]);
    let crl = server.public_get("/crl/issuing.crl");
    let etag = crl.headers()["etag"].to_str().unwrap().to_string();
    assert!(crl.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let again = reqwest::blocking::Client::new()
        .get(format!("{}/crl/issuing.crl", server.public_url))
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);

    // --- session activity is recorded in steps (a thirtieth of the 30 min idle timeout) ---
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let auditor_sessions = "user_id = (SELECT id FROM users WHERE username = 'auditor')";
    let last_seen = || -> i64 {
        server
            .query(&format!(
                "SELECT max(last_seen) FROM sessions WHERE {auditor_sessions}"
            ))
            .trim()
            .parse()
            .unwrap()
    };
    server.sql(&format!(
        "UPDATE sessions SET last_seen = {} WHERE {auditor_sessions}",
        now - 30
    ));
    let (status, _) = server.call("GET", "/api/v1/me", Some(&c.auditor.token()), None);
    assert_eq!(status, 200);
    assert_eq!(last_seen(), now - 30, "recorded again within a step");
    server.sql(&format!(
        "UPDATE sessions SET last_seen = {} WHERE {auditor_sessions}",
        now - 120
    ));
    // The server trusts a session it read less than a second ago, so the edit is seen by a call
    // within the next second.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = server.call("GET", "/api/v1/me", Some(&c.auditor.token()), None);
        assert_eq!(status, 200);
        if last_seen() >= now {
            break;
        }
        assert!(Instant::now() < deadline, "not recorded after a step");
        std::thread::sleep(Duration::from_millis(100));
    }

    // --- audit: verifies, then a direct edit is found ---
    let (status, body) = server.call(
        "GET",
        "/api/v1/audit/verify",
        Some(&c.auditor.token()),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true, "{body}");
    let (_, entries) = server.call(
        "GET",
        "/api/v1/audit?limit=1000",
        Some(&c.auditor.token()),
        None,
    );
    let actions: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "ca.init",
        "profile.load",
        "login.ok",
        "user.create",
        "request.submit",
        "request.approve",
        "request.reject",
        "certificate.issue",
        "certificate.revoke",
        "certificate.hold",
        "certificate.release",
        "crl.publish",
    ] {
        assert!(
            actions.contains(&expected),
            "audit lacks {expected}: {actions:?}"
        );
    }
    let (status, _) = server.call("GET", "/api/v1/audit", Some(&c.vendor.token()), None);
    assert_eq!(status, 403);
    server.sql("UPDATE audit_log SET actor = 'mallory' WHERE seq = 5");
    let (_, body) = server.call(
        "GET",
        "/api/v1/audit/verify",
        Some(&c.auditor.token()),
        None,
    );
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["broken_at"], 5);
}

#[test]
fn workflow_sqlite() {
    workflow(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn workflow_postgres() {
    workflow(Backend::Postgres);
}

fn mfa_edges(backend: Backend) {
    let server = Server::start(
        backend,
        &[
            ("MAMORI_LOCKOUT_THRESHOLD", "3"),
            ("MAMORI_SESSION_IDLE_SECS", "3"),
            ("MAMORI_SESSION_ABSOLUTE_SECS", "3"),
        ],
    );
    server.login(&server.admin);
    let carol = server.user("carol", &["security-officer"]);
    // Forged and logged-out tokens.
    let (status, body) = server.call(
        "GET",
        "/api/v1/me",
        Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        None,
    );
    assert_eq!(status, 401, "{body}");
    let (status, _) = server.call("POST", "/api/v1/logout", Some(&carol.token()), None);
    assert_eq!(status, 204);
    let (status, _) = server.call("GET", "/api/v1/me", Some(&carol.token()), None);
    assert_eq!(status, 401);
    // Wrong code, then wrong password: same answer.
    let (s1, b1) = server.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "carol", "password": carol.password, "totp": "123456"})),
    );
    let (s2, b2) = server.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "carol", "password": "wrong password!", "totp": carol.code()})),
    );
    let (s3, b3) = server.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "nobody", "password": "wrong password!", "totp": "123456"})),
    );
    assert_eq!((s1, s2, s3), (401, 401, 401));
    assert_eq!(b1, b2);
    assert_eq!(b2, b3);
    // The third failure locked the account: even correct credentials fail now.
    let (status, _) = server.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "carol", "password": "wrong password 2", "totp": carol.code()})),
    );
    assert_eq!(status, 401);
    let (status, _) = server.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "carol", "password": carol.password, "totp": carol.code()})),
    );
    assert_eq!(status, 401, "locked account must not log in");
    // Session expiry (idle and absolute) is tested on the accounts service with an injected
    // clock that the test moves (`ca-server/src/accounts/sessions.rs`), not by sleeping here.
    server.login(&server.admin);
    let (status, _) = server.call("GET", "/api/v1/me", Some(&server.admin.token()), None);
    assert_eq!(status, 200);
}

/// Disabling a user, and applying a role change or a credential reset, ends their sessions
/// before the call answers, although the server trusts a session it confirmed less than a second
/// ago without reading it again. A change waiting for approval leaves them alone.
#[test]
fn changes_to_a_user_end_their_sessions_at_once() {
    let server = Server::start(Backend::Sqlite, &[]);
    server.login(&server.admin);
    server.login(&server.officer);
    let admin = &server.admin;
    for (name, method, change, body) in [
        ("dave", "POST", "disable", json!({})),
        (
            "erin",
            "PUT",
            "roles",
            json!({"roles": ["security-officer"]}),
        ),
        ("finn", "POST", "reset", json!({})),
    ] {
        let person = server.user(name, &["auditor"]);
        let token = person.token();
        for _ in 0..2 {
            let (status, body) = server.call("GET", "/api/v1/me", Some(&token), None);
            assert_eq!(status, 200, "{body}");
        }
        let mut body = body;
        body["totp"] = json!(admin.code());
        let path = format!("/api/v1/users/{name}/{change}");
        let (status, answer) = server.call(method, &path, Some(&admin.token()), Some(body));
        assert!((200..300).contains(&status), "{path}: {status} {answer}");
        if status == 202 {
            let (status, _) = server.call("GET", "/api/v1/me", Some(&token), None);
            assert_eq!(
                status, 200,
                "{name}'s session ended before the change was approved"
            );
            let approve = format!(
                "/api/v1/account-changes/{}/approve",
                answer["id"].as_str().unwrap()
            );
            let (status, applied) = server.call(
                "POST",
                &approve,
                Some(&server.officer.token()),
                Some(json!({"totp": server.officer.code()})),
            );
            assert_eq!(status, 200, "{applied}");
            assert_eq!(applied["status"], "applied", "{applied}");
        }
        let (status, _) = server.call("GET", "/api/v1/me", Some(&token), None);
        assert_eq!(status, 401, "{name}'s session outlived {path}");
    }
}

#[test]
fn mfa_edges_sqlite() {
    mfa_edges(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn mfa_edges_postgres() {
    mfa_edges(Backend::Postgres);
}

/// Every route × every role: forbidden calls are refused (401/403/404), never served.
fn role_matrix(backend: Backend) {
    let server = Server::start(backend, &[]);
    let c = cast(&server);
    let (_k, amb_csr) = csr(
        &[(CommonName, "amb-7")],
        vec![uri("urn:mamori:device:ambulance:7")],
    );
    let (_, body) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&c.enroller.token()),
        Some(json!({"profile": "ambulance-terminal", "csr": amb_csr, "justification": "x"})),
    );
    let request_id = body["id"].as_str().unwrap().to_string();
    let serial = body["serial"].as_str().unwrap().to_string();
    let people: Vec<(&str, &Person)> = vec![
        ("security-officer", &c.alice),
        ("vendor", &c.vendor),
        ("device-enroller", &c.enroller),
        ("staff-requester", &c.staffer),
        ("auditor", &c.auditor),
    ];
    // (method, path, body, roles allowed). Bodies carry a code where the route needs one.
    type Case = (
        &'static str,
        String,
        Option<fn(&Person) -> Value>,
        &'static [&'static str],
    );
    let cases: Vec<Case> = vec![
        ("GET", "/api/v1/users".into(), None, &["auditor"]),
        // Account changes: only admins ask (none in this cast); refused before any code is
        // checked, so a fixed code burns nothing.
        (
            "POST",
            "/api/v1/users".into(),
            Some(|_| json!({"username": "zed", "roles": ["auditor"], "totp": "000000"})),
            &[],
        ),
        (
            "PUT",
            "/api/v1/users/bob/roles".into(),
            Some(|_| json!({"roles": ["admin"], "totp": "000000"})),
            &[],
        ),
        (
            "POST",
            "/api/v1/users/bob/disable".into(),
            Some(|_| json!({"totp": "000000"})),
            &[],
        ),
        (
            "POST",
            "/api/v1/users/bob/reset".into(),
            Some(|_| json!({"totp": "000000"})),
            &[],
        ),
        (
            "POST",
            "/api/v1/users/bob/enable".into(),
            Some(|_| json!({"totp": "000000"})),
            &[],
        ),
        (
            "GET",
            "/api/v1/account-changes".into(),
            None,
            &["security-officer", "auditor"],
        ),
        ("GET", "/api/v1/audit".into(), None, &["auditor"]),
        ("GET", "/api/v1/audit/verify".into(), None, &["auditor"]),
        (
            "POST",
            format!("/api/v1/certificates/issuing/{serial}/hold"),
            Some(|p| json!({"totp": p.code()})),
            &["security-officer"],
        ),
        (
            "GET",
            format!("/api/v1/requests/{request_id}"),
            None,
            &["security-officer", "device-enroller", "auditor"],
        ),
        (
            "GET",
            format!("/api/v1/certificates/issuing/{serial}"),
            None,
            &["security-officer", "device-enroller", "auditor"],
        ),
    ];
    for (method, path, body, allowed) in &cases {
        for (role, person) in &people {
            let (status, response) =
                server.call(method, path, Some(&person.token()), body.map(|f| f(person)));
            if allowed.contains(role) {
                assert!(
                    (200..300).contains(&status),
                    "{role} {method} {path}: {status} {response}"
                );
            } else {
                assert!(
                    [403, 404].contains(&status),
                    "{role} {method} {path} must be refused: {status} {response}"
                );
                if status == 403 {
                    assert_eq!(response["status"], 403);
                }
            }
            let (status, _) = server.call(method, path, None, body.map(|f| f(person)));
            assert_eq!(status, 401, "anonymous {method} {path}");
        }
    }
    // Nobody changes their own roles, not even an admin.
    let (status, _) = server.call(
        "PUT",
        "/api/v1/users/admin/roles",
        Some(&server.admin.token()),
        Some(json!({"roles": ["auditor", "admin"], "totp": "000000"})),
    );
    assert_eq!(status, 403);
    // Every route in the table is registered (anonymous calls get 401, not 404).
    let (status, doc) = server.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(status, 200);
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{username}", "bob")
                .replace("{id}", &request_id)
                .replace("{ca}", "issuing")
                .replace("{serial}", &serial);
            let (status, body) =
                server.call(&method.to_uppercase(), &concrete, None, Some(json!({})));
            assert_ne!(status, 404, "{method} {path} is not routed: {body}");
        }
    }
}

#[test]
fn role_matrix_sqlite() {
    role_matrix(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn role_matrix_postgres() {
    role_matrix(Backend::Postgres);
}

#[test]
fn api_refuses_clients_without_a_certificate_when_configured() {
    let server = Server::start(
        Backend::Sqlite,
        &[("MAMORI_API_REQUIRE_CLIENT_CERT", "true")],
    );
    let result = server
        .client
        .get(format!("{}/api/v1/openapi.json", server.api_url))
        .send();
    assert!(
        result.is_err(),
        "the TLS handshake must fail without a client certificate: {result:?}"
    );
    // The public listener stays open to relying parties.
    assert_eq!(server.public_get("/ca/issuing.crt").status().as_u16(), 200);
}
