//! Revocation at scale, end to end: pre-signed OCSP responses served from the cache with
//! RFC 9919 caching headers, re-signed at once on hold/release/revoke and refreshed before they go
//! stale; the nonce setting both ways; several certificates in one request; and an OCSP-only
//! instance answering from the shared database, then from its cache with the database cut off.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use ca_core::der::{Decode, Encode};
use mamori_e2e::{
    crl_number, crl_serials, issue_device, normal_serial, Backend, Device, Link, Server,
};
use openssl::ocsp::{OcspCertId, OcspCertStatus, OcspFlag, OcspRequest, OcspResponse};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use serde_json::json;

fn request_der(devices: &[&X509], issuer: &X509, nonce: Option<&[u8]>) -> Vec<u8> {
    let mut request = OcspRequest::new().unwrap();
    for leaf in devices {
        request
            .add_id(
                OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), leaf, issuer).unwrap(),
            )
            .unwrap();
    }
    let der = request.to_der().unwrap();
    let Some(nonce) = nonce else { return der };
    let mut parsed = ca_core::x509_ocsp::OcspRequest::from_der(&der).unwrap();
    let value = ca_core::der::asn1::OctetString::new(nonce.to_vec())
        .unwrap()
        .to_der()
        .unwrap();
    parsed.tbs_request.request_extensions = Some(vec![ca_core::x509_cert::ext::Extension {
        extn_id: const_oid_nonce(),
        critical: false,
        extn_value: ca_core::der::asn1::OctetString::new(value).unwrap(),
    }]);
    parsed.to_der().unwrap()
}

fn const_oid_nonce() -> ca_core::der::asn1::ObjectIdentifier {
    ca_core::der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2")
}

fn get(base: &str, der: &[u8], etag: Option<&str>) -> reqwest::blocking::Response {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let encoded: String = b64
        .chars()
        .map(|c| match c {
            '+' => "%2B".into(),
            '/' => "%2F".into(),
            '=' => "%3D".into(),
            c => c.to_string(),
        })
        .collect();
    let mut request = reqwest::blocking::Client::new().get(format!("{base}/ocsp/{encoded}"));
    if let Some(tag) = etag {
        request = request.header("if-none-match", tag);
    }
    request.send().unwrap()
}

fn post(base: &str, der: &[u8]) -> Vec<u8> {
    reqwest::blocking::Client::new()
        .post(format!("{base}/ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(der.to_vec())
        .send()
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec()
}

/// Verifies a response with OpenSSL and returns each device's status, in order.
fn statuses(
    server: &Server,
    response: &[u8],
    devices: &[&X509],
    issuer: &X509,
) -> Vec<OcspCertStatus> {
    let response = OcspResponse::from_der(response).unwrap();
    assert_eq!(
        response.status(),
        openssl::ocsp::OcspResponseStatus::SUCCESSFUL
    );
    let basic = response.basic().unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store
        .add_cert(X509::from_pem(server.root_pem.as_bytes()).unwrap())
        .unwrap();
    let mut untrusted = Stack::new().unwrap();
    untrusted.push(issuer.clone()).unwrap();
    basic
        .verify(&untrusted, &store.build(), OcspFlag::empty())
        .expect("signature");
    devices
        .iter()
        .map(|leaf| {
            let id =
                OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), leaf, issuer).unwrap();
            let status = basic.find_status(&id).unwrap();
            status.check_validity(5, None).unwrap();
            status.status
        })
        .collect()
}

fn basic(response: &[u8]) -> ca_core::x509_ocsp::BasicOcspResponse {
    let outer = ca_core::x509_ocsp::OcspResponse::from_der(response).unwrap();
    ca_core::x509_ocsp::BasicOcspResponse::from_der(
        outer.response_bytes.unwrap().response.as_bytes(),
    )
    .unwrap()
}

fn this_update(response: &[u8]) -> u64 {
    basic(response).tbs_response_data.responses[0]
        .this_update
        .0
        .to_unix_duration()
        .as_secs()
}

#[test]
fn presigned_cache_headers_resign_and_refresh() {
    let server = Server::start(
        Backend::Sqlite,
        &[
            ("MAMORI_OCSP_VALIDITY_SECS", "16"),
            ("MAMORI_MAINTENANCE_INTERVAL_SECS", "1"),
        ],
    );
    server.login(&server.admin);
    let enroller = server.user("enroller", &["device-enroller"]);
    let d = issue_device(&server, &enroller, "100");
    let request = request_der(&[&d.leaf], &d.issuer, None);

    // GET: RFC 9919 headers; a second GET and a POST return the very same pre-signed bytes.
    let first = get(&server.public_url, &request, None);
    assert_eq!(first.status().as_u16(), 200);
    let headers = first.headers().clone();
    let cache_control = headers["cache-control"].to_str().unwrap();
    assert!(
        cache_control.contains("public")
            && cache_control.contains("no-transform")
            && cache_control.contains("must-revalidate")
            && cache_control.contains("max-age="),
        "{cache_control}"
    );
    for h in ["last-modified", "expires", "etag"] {
        assert!(headers.contains_key(h), "missing {h}");
    }
    let etag = headers["etag"].to_str().unwrap().to_string();
    let body = first.bytes().unwrap().to_vec();
    assert_eq!(
        statuses(&server, &body, &[&d.leaf], &d.issuer),
        vec![OcspCertStatus::GOOD]
    );
    // Anything under /ocsp but POST /ocsp and GET /ocsp/{request}: 405 with a problem body.
    let plain = reqwest::blocking::Client::new();
    for (method, path) in [
        ("PUT", "/ocsp/MAo="),
        ("GET", "/ocsp"),
        ("POST", "/ocsp/MAo="),
    ] {
        let refused = plain
            .request(
                method.parse().unwrap(),
                format!("{}{path}", server.public_url),
            )
            .send()
            .unwrap();
        assert_eq!(refused.status().as_u16(), 405, "{method} {path}");
        assert_eq!(
            refused.headers()["content-type"].to_str().unwrap(),
            "application/problem+json"
        );
    }
    let again = get(&server.public_url, &request, None);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(
        again.bytes().unwrap().to_vec(),
        body,
        "served from the cache, not re-signed"
    );
    assert_eq!(post(&server.public_url, &request), body);
    let not_modified = get(&server.public_url, &request, Some(&etag));
    assert_eq!(not_modified.status().as_u16(), 304);

    // Hold, release, revoke: each re-signs at once.
    let officer = server.user("oscar", &["security-officer"]);
    let mut tags = vec![etag.clone()];
    for (action, body, expected) in [
        (
            "hold",
            json!({"totp": officer.code()}),
            OcspCertStatus::REVOKED,
        ),
        (
            "release",
            json!({"totp": officer.code()}),
            OcspCertStatus::GOOD,
        ),
        (
            "revoke",
            json!({"totp": officer.code(), "reason": "cessation-of-operation"}),
            OcspCertStatus::REVOKED,
        ),
    ] {
        let (status, answer) = server.call(
            "POST",
            &format!("/api/v1/certificates/issuing/{}/{action}", d.serial),
            Some(&officer.token()),
            Some(body),
        );
        assert_eq!(status, 200, "{action}: {answer}");
        let response = get(&server.public_url, &request, None);
        let tag = response.headers()["etag"].to_str().unwrap().to_string();
        assert!(!tags.contains(&tag), "{action}: a new response");
        tags.push(tag);
        assert_eq!(
            statuses(&server, &response.bytes().unwrap(), &[&d.leaf], &d.issuer),
            vec![expected],
            "{action}"
        );
    }

    // Refresh before staleness: with a 16 s validity, upkeep re-signs at 8 s, before nextUpdate.
    let d2 = issue_device(&server, &enroller, "101");
    let request2 = request_der(&[&d2.leaf], &d2.issuer, None);
    let original = get(&server.public_url, &request2, None)
        .bytes()
        .unwrap()
        .to_vec();
    let original_this = this_update(&original);
    let original_next = basic(&original).tbs_response_data.responses[0]
        .next_update
        .unwrap()
        .0
        .to_unix_duration()
        .as_secs();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = ca_core::time::UnixTime::now().as_secs();
        let current = get(&server.public_url, &request2, None)
            .bytes()
            .unwrap()
            .to_vec();
        if this_update(&current) > original_this {
            assert!(
                now < original_next,
                "refreshed only after the old response went stale"
            );
            assert_eq!(
                statuses(&server, &current, &[&d2.leaf], &d2.issuer),
                vec![OcspCertStatus::GOOD]
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the response was never refreshed"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn nonce_setting_both_ways_and_multi_certificate_requests() {
    for mode in ["ignore", "echo"] {
        let server = Server::start(Backend::Sqlite, &[("MAMORI_OCSP_NONCE", mode)]);
        server.login(&server.admin);
        let enroller = server.user("enroller", &["device-enroller"]);
        let a = issue_device(&server, &enroller, "200");
        let b = issue_device(&server, &enroller, "201");
        let nonce = [9u8; 32];
        let with_nonce = request_der(&[&a.leaf], &a.issuer, Some(&nonce));
        let plain = request_der(&[&a.leaf], &a.issuer, None);
        let cached = post(&server.public_url, &plain);
        let answered = post(&server.public_url, &with_nonce);
        assert_eq!(
            statuses(&server, &answered, &[&a.leaf], &a.issuer),
            vec![OcspCertStatus::GOOD]
        );
        match mode {
            "ignore" => {
                assert!(
                    basic(&answered).nonce().is_none(),
                    "no nonce in the cached answer"
                );
                assert_eq!(answered, cached, "the pre-signed response");
            }
            _ => {
                assert_eq!(
                    basic(&answered).nonce().unwrap().0.as_bytes(),
                    &nonce,
                    "nonce echoed"
                );
                assert_ne!(
                    post(&server.public_url, &with_nonce),
                    answered,
                    "signed fresh each time"
                );
            }
        }
        // Several certificates, one of them unknown, in one request and one response.
        let mut unknown = openssl::x509::X509Builder::new().unwrap();
        unknown
            .set_serial_number(
                &openssl::bn::BigNum::from_u32(42)
                    .unwrap()
                    .to_asn1_integer()
                    .unwrap(),
            )
            .unwrap();
        unknown.set_issuer_name(a.issuer.subject_name()).unwrap();
        let unknown = unknown.build();
        let multi = request_der(&[&a.leaf, &b.leaf, &unknown], &a.issuer, None);
        let response = post(&server.public_url, &multi);
        assert_eq!(basic(&response).tbs_response_data.responses.len(), 3);
        assert_eq!(
            statuses(&server, &response, &[&a.leaf, &b.leaf, &unknown], &a.issuer),
            vec![
                OcspCertStatus::GOOD,
                OcspCertStatus::GOOD,
                OcspCertStatus::UNKNOWN
            ]
        );
    }
}

/// A counter from a listener's `/metrics`.
fn counter(public_url: &str, name: &str) -> u64 {
    let text = reqwest::blocking::get(format!("{public_url}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing: {text}"))
        .parse()
        .unwrap()
}

fn ocsp_only(backend: Backend) {
    let server = Server::start(backend.clone(), &[]);
    server.login(&server.admin);
    let enroller = server.user("enroller", &["device-enroller"]);
    let officer = server.user("oscar", &["security-officer"]);
    let (seen_before, loaded_before) = (
        counter(&server.public_url, "mamori_ocsp_poll_rows_total"),
        counter(&server.public_url, "mamori_ocsp_poll_loaded_total"),
    );
    let good = issue_device(&server, &enroller, "300");
    let lost = issue_device(&server, &enroller, "301");
    // Behind a link we can cut (PostgreSQL); SQLite shares the file directly.
    let link;
    let url = if let Some(rest) = server.database_url.strip_prefix("postgres://") {
        let (userinfo, hostpath) = rest.split_once('@').unwrap();
        let (host, path) = hostpath.split_once('/').unwrap();
        link = Some(Link::to(host));
        format!(
            "postgres://{userinfo}@{}/{path}",
            link.as_ref().unwrap().addr
        )
    } else {
        link = None;
        server.database_url.clone()
    };
    let responder = server.ocsp_only(&url);
    let req_good = request_der(&[&good.leaf], &good.issuer, None);
    let req_lost = request_der(&[&lost.leaf], &lost.issuer, None);
    assert_eq!(
        statuses(
            &server,
            &post(&responder.url, &req_good),
            &[&good.leaf],
            &good.issuer
        ),
        vec![OcspCertStatus::GOOD]
    );
    // No API on an OCSP-only instance.
    let api = reqwest::blocking::get(format!("{}/api/v1/me", responder.url)).unwrap();
    assert_eq!(api.status().as_u16(), 404);
    // A revocation on the CA instance shows on the OCSP-only instance (it polls the database).
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{}/revoke", lost.serial),
        Some(&officer.token()),
        Some(json!({"reason": "key-compromise", "totp": officer.code()})),
    );
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while statuses(
        &server,
        &post(&responder.url, &req_lost),
        &[&lost.leaf],
        &lost.issuer,
    ) != vec![OcspCertStatus::REVOKED]
    {
        assert!(
            Instant::now() < deadline,
            "the OCSP-only instance never saw the revocation"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The responder read those responses in full from the database; the CA instance's polls
    // skip the rows it stored itself (two issuances, one revocation): it cached them as it
    // stored them, so it neither reads their keys nor loads them.
    assert!(counter(&responder.url, "mamori_ocsp_poll_loaded_total") >= 3);
    let polls = counter(&server.public_url, "mamori_ocsp_polls_total");
    wait_until(20, "two more polls of the CA instance", || {
        counter(&server.public_url, "mamori_ocsp_polls_total") >= polls + 2
    });
    assert_eq!(
        counter(&server.public_url, "mamori_ocsp_poll_rows_total"),
        seen_before
    );
    assert_eq!(
        counter(&server.public_url, "mamori_ocsp_poll_loaded_total"),
        loaded_before
    );
    // Database gone: the cache keeps answering, the same bytes as before.
    if let Some(link) = &link {
        let before = post(&responder.url, &req_good);
        let failures = counter(&responder.url, "mamori_db_poll_failures_total");
        link.cut();
        wait_until(
            30,
            "the responder's polls to fail with the link cut",
            || counter(&responder.url, "mamori_db_poll_failures_total") > failures,
        );
        let after = post(&responder.url, &req_good);
        assert_eq!(after, before);
        assert_eq!(
            statuses(
                &server,
                &post(&responder.url, &req_lost),
                &[&lost.leaf],
                &lost.issuer
            ),
            vec![OcspCertStatus::REVOKED]
        );
        let health = reqwest::blocking::get(format!("{}/healthz", responder.url)).unwrap();
        assert_eq!(health.status().as_u16(), 200);
    }
}

#[test]
fn ocsp_only_instance_sqlite() {
    ocsp_only(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn ocsp_only_instance_survives_database_outage_postgres() {
    ocsp_only(Backend::Postgres);
}

#[test]
fn delta_crls_carry_revocations_between_complete_crls() {
    let server = Server::start(Backend::Sqlite, &[("MAMORI_DELTA_CRLS", "true")]);
    server.login(&server.admin);
    let enroller = server.user("enroller", &["device-enroller"]);
    let officer = server.user("oscar", &["security-officer"]);
    let held = issue_device(&server, &enroller, "400");
    let lost = issue_device(&server, &enroller, "401");
    let text = String::from_utf8(held.leaf.to_text().unwrap()).unwrap();
    assert!(
        text.contains("Freshest CRL") && text.contains("/crl/issuing-delta.crl"),
        "{text}"
    );
    let full_before = server
        .public_get("/crl/issuing.crl")
        .bytes()
        .unwrap()
        .to_vec();
    for (device, action, body) in [
        (&held, "hold", json!({"totp": officer.code()})),
        (
            &lost,
            "revoke",
            json!({"totp": officer.code(), "reason": "key-compromise"}),
        ),
    ] {
        let (status, answer) = server.call(
            "POST",
            &format!("/api/v1/certificates/issuing/{}/{action}", device.serial),
            Some(&officer.token()),
            Some(body),
        );
        assert_eq!(status, 200, "{answer}");
    }
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let pem = |der: &[u8]| {
        openssl::x509::X509Crl::from_der(der)
            .unwrap()
            .to_pem()
            .unwrap()
    };
    let full = server
        .public_get("/crl/issuing.crl")
        .bytes()
        .unwrap()
        .to_vec();
    // The complete CRL is republished too, so a client that ignores deltas sees both changes.
    assert_ne!(
        full, full_before,
        "the complete CRL is republished on revocation"
    );
    let listed = crl_serials(&full);
    assert!(
        listed.contains(&normal_serial(&held.serial))
            && listed.contains(&normal_serial(&lost.serial)),
        "{listed:?}"
    );
    // A client holding the complete CRL of the last scheduled rebuild (the delta's base) uses the
    // delta; with the newer complete CRL the delta combines too.
    let verify_with = |base: &[u8], leaf: &X509, delta: &[u8]| {
        let crls = write("crls.pem", &[pem(base), pem(delta)].concat());
        let root = write("root.pem", server.root_pem.as_bytes());
        let issuing = write("issuing.pem", &held.issuer.to_pem().unwrap());
        let leaf = write("leaf.pem", &leaf.to_pem().unwrap());
        let out = std::process::Command::new("openssl")
            .args([
                "verify",
                "-crl_check",
                "-extended_crl",
                "-use_deltas",
                "-CAfile",
            ])
            .arg(root)
            .arg("-untrusted")
            .arg(issuing)
            .arg("-CRLfile")
            .arg(crls)
            .arg(leaf)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let verify = |leaf: &X509, delta: &[u8]| verify_with(&full_before, leaf, delta);
    let delta = server
        .public_get("/crl/issuing-delta.crl")
        .bytes()
        .unwrap()
        .to_vec();
    let delta_text = {
        let p = write("delta.der", &delta);
        String::from_utf8(
            std::process::Command::new("openssl")
                .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
                .arg(p)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
    };
    assert!(
        delta_text.contains("Delta CRL Indicator: critical"),
        "{delta_text}"
    );
    let (ok, out) = verify(&lost.leaf, &delta);
    assert!(!ok && out.contains("revoked"), "{out}");
    let (ok, out) = verify(&held.leaf, &delta);
    assert!(!ok && out.contains("revoked"), "{out}");
    let (ok, out) = verify_with(&full, &lost.leaf, &delta);
    assert!(!ok && out.contains("revoked"), "{out}");
    // Its base is the scheduled complete CRL, not the republished one.
    let indicator = &delta_text[delta_text.find("Delta CRL Indicator").unwrap()..];
    assert!(
        indicator[..indicator.len().min(120)].contains(&crl_number(&full_before).to_string()),
        "{delta_text}"
    );
    // Release from hold: the next delta carries removeFromCRL and the terminal verifies again.
    let (status, answer) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{}/release", held.serial),
        Some(&officer.token()),
        Some(json!({"totp": officer.code()})),
    );
    assert_eq!(status, 200, "{answer}");
    let delta2 = server
        .public_get("/crl/issuing-delta.crl")
        .bytes()
        .unwrap()
        .to_vec();
    let (ok, out) = verify(&held.leaf, &delta2);
    assert!(ok, "released: {out}");
    assert!(!verify(&lost.leaf, &delta2).0);
    // One cRLNumber sequence: each delta numbers after the complete CRL and the one before.
    let number = |der: &[u8]| -> u64 {
        let crl = ca_core::x509_cert::crl::CertificateList::from_der(der).unwrap();
        let ext = crl
            .tbs_cert_list
            .crl_extensions
            .unwrap()
            .into_iter()
            .find(|e| e.extn_id == ca_core::der::asn1::ObjectIdentifier::new_unwrap("2.5.29.20"))
            .unwrap();
        let n = ca_core::der::asn1::Uint::from_der(ext.extn_value.as_bytes()).unwrap();
        n.as_bytes()
            .iter()
            .fold(0u64, |acc, b| acc * 256 + u64::from(*b))
    };
    assert!(number(&full_before) < number(&full) && number(&full) < number(&delta));
    assert!(number(&delta) < number(&delta2));
}

fn partitioned(backend: Backend) {
    let server = Server::start(backend, &[("MAMORI_CRL_PARTITIONS", "3")]);
    server.login(&server.admin);
    let enroller = server.user("enroller", &["device-enroller"]);
    let officer = server.user("oscar", &["security-officer"]);
    let shard_of = |device: &Device| -> u32 {
        let text = String::from_utf8(device.leaf.to_text().unwrap()).unwrap();
        let at = text.find("/crl/issuing-p").expect("the CDP names a shard");
        text[at + "/crl/issuing-p".len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    // Enough terminals that one shard holds two and another shard holds one.
    let mut devices: Vec<(Device, u32)> = Vec::new();
    for i in 0..30 {
        let device = issue_device(&server, &enroller, &format!("50{i}"));
        let shard = shard_of(&device);
        assert!((1..=3).contains(&shard));
        devices.push((device, shard));
        let first = devices[0].1;
        if devices.iter().filter(|(_, s)| *s == first).count() >= 2
            && devices.iter().any(|(_, s)| *s != first)
        {
            break;
        }
    }
    let first = devices[0].1;
    let same: Vec<&Device> = devices
        .iter()
        .filter(|(_, s)| *s == first)
        .map(|(d, _)| d)
        .collect();
    let (other, other_shard) = devices.iter().find(|(_, s)| *s != first).unwrap();
    let (a, b) = (same[0], same[1]);
    let shard_url = format!("/crl/issuing-p{first}.crl");
    let fetch = |path: &str| -> Vec<u8> {
        let response = server.public_get(path);
        assert_eq!(response.status(), 200, "{path}");
        response.bytes().unwrap().to_vec()
    };
    let issuer_key = a.issuer.public_key().unwrap();
    let before = fetch(&shard_url);
    assert!(crl_serials(&before).is_empty());
    let act = |device: &Device, action: &str, body: serde_json::Value| {
        let (status, answer) = server.call(
            "POST",
            &format!("/api/v1/certificates/issuing/{}/{action}", device.serial),
            Some(&officer.token()),
            Some(body),
        );
        assert_eq!(status, 200, "{answer}");
    };
    act(
        a,
        "revoke",
        json!({"totp": officer.code(), "reason": "key-compromise"}),
    );
    act(b, "hold", json!({"totp": officer.code()}));
    let after = fetch(&shard_url);
    let crl = openssl::x509::X509Crl::from_der(&after).unwrap();
    assert!(crl.verify(&issuer_key).unwrap());
    assert!(crl_number(&after) > crl_number(&before));
    let mut listed = crl_serials(&after);
    listed.sort();
    let mut expected = vec![normal_serial(&a.serial), normal_serial(&b.serial)];
    expected.sort();
    assert_eq!(listed, expected);
    let text = {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shard.der");
        std::fs::write(&p, &after).unwrap();
        String::from_utf8(
            std::process::Command::new("openssl")
                .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
                .arg(p)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
    };
    assert!(
        text.contains("Issuing Distribution Point: critical"),
        "{text}"
    );
    assert!(text.contains(&format!("issuing-p{first}.crl")), "{text}");
    assert!(text.contains("Key Compromise") && text.contains("Certificate Hold"));
    // openssl: the revoked terminal fails with its shard's CRL, a terminal of another shard is
    // outside this CRL's scope and passes with its own (empty) shard CRL.
    let dir = tempfile::tempdir().unwrap();
    let verify = |leaf: &X509, crl: &[u8]| {
        let write = |name: &str, data: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, data).unwrap();
            p
        };
        let crl = write(
            "crl.pem",
            &openssl::x509::X509Crl::from_der(crl)
                .unwrap()
                .to_pem()
                .unwrap(),
        );
        let root = write("root.pem", server.root_pem.as_bytes());
        let issuing = write("issuing.pem", &a.issuer.to_pem().unwrap());
        let leaf = write("leaf.pem", &leaf.to_pem().unwrap());
        let out = std::process::Command::new("openssl")
            .args(["verify", "-crl_check", "-CAfile"])
            .arg(root)
            .arg("-untrusted")
            .arg(issuing)
            .arg("-CRLfile")
            .arg(crl)
            .arg(leaf)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = verify(&a.leaf, &after);
    assert!(!ok && out.contains("revoked"), "{out}");
    let other_crl = fetch(&format!("/crl/issuing-p{other_shard}.crl"));
    assert!(crl_serials(&other_crl).is_empty());
    let (ok, out) = verify(&other.leaf, &other_crl);
    assert!(ok, "{out}");
    // Release B: its shard's next CRL, built from the last one, drops it and keeps A.
    act(b, "release", json!({"totp": officer.code()}));
    let released = fetch(&shard_url);
    assert_eq!(crl_serials(&released), vec![normal_serial(&a.serial)]);
    assert!(crl_number(&released) > crl_number(&after));
    let (ok, out) = verify(&b.leaf, &released);
    assert!(ok, "{out}");
    // The unpartitioned CRL still exists for certificates issued before partitioning.
    assert!(crl_serials(&fetch("/crl/issuing.crl")).is_empty());
}

#[test]
fn partitioned_crls_scope_revocations_to_their_shard() {
    partitioned(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn partitioned_crls_scope_revocations_to_their_shard_postgres() {
    partitioned(Backend::Postgres);
}

/// A CRL larger than one stored chunk (1 MiB): 30,000 revoked rows put straight into the database,
/// one revocation through the API publishes a CRL of 30,001 entries built from the previous one,
/// the database holds it in several chunks, it is served whole (in slices) and verifies with
/// openssl, and an OCSP-only instance (no CA key: it reads the CRL back chunk by chunk) serves the
/// same bytes.
fn large_crl(backend: Backend) {
    let server = Server::start(backend, &[]);
    server.login(&server.admin);
    let enroller = server.user("enroller", &["device-enroller"]);
    let officer = server.user("oscar", &["security-officer"]);
    let device = issue_device(&server, &enroller, "7001");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now_ms = now * 1000;
    let rows = 30_000;
    let (serial, numbers, blob) = if server.database_url.starts_with("sqlite://") {
        (
            "'7e' || printf('%030x', i)",
            format!("(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) SELECT i FROM n) AS s"),
            "x'00'",
        )
    } else {
        (
            "'7e' || lpad(to_hex(i), 30, '0')",
            format!("generate_series(1, {rows}) AS s(i)"),
            "'\\x00'::bytea",
        )
    };
    server.sql(&format!(
        "INSERT INTO certificates (ca_id, serial, request_id, profile_id, subject, tbs_der, der, \
         not_before, not_after, status, revoked_at, revocation_reason, invalidity_date, created_at, \
         status_changed_ms, crl_partition) \
         SELECT 'issuing', {serial}, NULL, 'ambulance-terminal', 'CN=synthetic', {blob}, NULL, \
         {nb}, {na}, 'revoked', {now}, 'key-compromise', NULL, {nb}, {now_ms}, NULL FROM {numbers}",
        nb = now - 86400,
        na = now + 86400 * 30,
    ));
    let (status, answer) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{}/revoke", device.serial),
        Some(&officer.token()),
        Some(json!({"totp": officer.code(), "reason": "key-compromise"})),
    );
    assert_eq!(status, 200, "{answer}");
    let fetch = |base: &str| -> Vec<u8> {
        let response = reqwest::blocking::get(format!("{base}/crl/issuing.crl")).unwrap();
        assert_eq!(response.status(), 200);
        let length: usize = response.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = response.bytes().unwrap().to_vec();
        assert_eq!(body.len(), length);
        body
    };
    let check = |der: &[u8]| {
        let crl = openssl::x509::X509Crl::from_der(der).unwrap();
        assert!(crl.verify(&device.issuer.public_key().unwrap()).unwrap());
        let listed = crl_serials(der);
        assert_eq!(listed.len(), rows + 1);
        assert!(listed.contains(&normal_serial(&device.serial)));
    };
    let served = fetch(&server.public_url);
    assert!(served.len() > 1 << 20, "{} bytes", served.len());
    check(&served);
    let chunks: usize = server
        .query("SELECT count(*) FROM published_crl_chunks WHERE name = 'issuing'")
        .parse()
        .unwrap();
    assert!(chunks >= 2, "{chunks} chunks");
    let stored: usize = server
        .query("SELECT der_len FROM published_crls WHERE name = 'issuing'")
        .parse()
        .unwrap();
    assert_eq!(stored, served.len());
    server.kill();
    let number: u128 = server
        .query("SELECT crl_number FROM published_crls WHERE name = 'issuing'")
        .parse()
        .unwrap();
    let responder = server.ocsp_only(&server.database_url);
    let read_back = fetch(&responder.url);
    assert_eq!(crl_number(&read_back), number);
    check(&read_back);
    if number == crl_number(&served) {
        assert!(
            read_back == served,
            "the chunks reassemble the CRL byte for byte"
        );
    }
}

#[test]
fn large_crl_is_stored_in_chunks_and_served_whole() {
    large_crl(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn large_crl_is_stored_in_chunks_and_served_whole_postgres() {
    large_crl(Backend::Postgres);
}

/// Polls `done` every 250 ms until it holds, failing with `what` after `seconds`.
fn wait_until(seconds: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn upkeep_signs_missing_and_outdated_responses_in_bounded_sweeps() {
    let server = Server::start(
        Backend::Sqlite,
        &[
            ("MAMORI_MAINTENANCE_INTERVAL_SECS", "1"),
            ("MAMORI_OCSP_SWEEP_CHUNK", "500"),
        ],
    );
    server.login(&server.admin);
    let enroller = server.user("enroller", &["device-enroller"]);
    let changed = issue_device(&server, &enroller, "8001");
    let deleted = issue_device(&server, &enroller, "8002");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // More rows without a response than one sweep checks (500 per CA and upkeep here, 20,000 by
    // default): the later upkeeps must resume where each one stopped. Small chunks keep the
    // signing work small on a loaded CI machine (20,500 rows once took over 180 s there).
    let rows = 1_300;
    server.sql(&format!(
        "INSERT INTO certificates (ca_id, serial, request_id, profile_id, subject, tbs_der, der, \
         not_before, not_after, status, revoked_at, revocation_reason, invalidity_date, created_at, \
         status_changed_ms, crl_partition) \
         SELECT 'issuing', '7e' || printf('%030x', i), NULL, 'ambulance-terminal', 'CN=synthetic', \
         x'', NULL, {nb}, {na}, 'valid', NULL, NULL, NULL, {nb}, 0, NULL FROM \
         (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
         SELECT i FROM n)",
        nb = now - 86400,
        na = now + 86400 * 30,
    ));
    let signed = || -> usize {
        server
            .query("SELECT count(*) FROM ocsp_responses WHERE serial LIKE '7e%'")
            .trim()
            .parse()
            .unwrap()
    };
    wait_until(180, "the sweep never covered every certificate", || {
        signed() == rows
    });

    // A response deleted behind the server's back is signed again when the sweep comes round.
    server.sql(&format!(
        "DELETE FROM ocsp_responses WHERE serial = '{}'",
        deleted.serial
    ));
    wait_until(60, "a missing response was never signed again", || {
        server
            .query(&format!(
                "SELECT count(*) FROM ocsp_responses WHERE serial = '{}'",
                deleted.serial
            ))
            .trim()
            == "1"
    });

    // A status change whose re-signing never happened (written straight to the database) is
    // caught by the upkeep: the served response turns to revoked.
    server.sql(&format!(
        "UPDATE certificates SET status = 'revoked', revoked_at = {now}, \
         revocation_reason = 'key-compromise', status_changed_ms = {changed_ms} \
         WHERE serial = '{serial}'",
        changed_ms = (now + 1) * 1000,
        serial = changed.serial
    ));
    let request = request_der(&[&changed.leaf], &changed.issuer, None);
    wait_until(60, "an outdated response was never re-signed", || {
        statuses(
            &server,
            &post(&server.public_url, &request),
            &[&changed.leaf],
            &changed.issuer,
        ) == vec![OcspCertStatus::REVOKED]
    });
}
