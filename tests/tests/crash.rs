//! Crash safety: concurrent issuance and revocation against the real server, killed with SIGKILL
//! at varying points and restarted, again and again. Afterwards every certificate a client was
//! told about is recorded and reported correctly by the API, OCSP and the CRL; no serial appears
//! twice; the audit chain verifies; no cRLNumber ever went backwards.
//!
//! `MAMORI_CRASH_KILLS` sets the number of kills (default 20; the long run uses 200).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mamori_e2e::{
    crl_number, crl_serials, device_csr, issuing_certificate, normal_serial, ocsp_status, Backend,
    Person, Server,
};
use openssl::x509::X509;
use serde_json::{json, Value};

/// A call that may fail because the server was killed: `None` when no answer came back.
fn try_call(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let url = format!("{}{path}", server.api_url);
    let request = match method {
        "GET" => server.client.get(url),
        _ => server.client.post(url),
    }
    .bearer_auth(token)
    .timeout(Duration::from_secs(10));
    let request = match body {
        Some(b) => request.json(&b),
        None => request,
    };
    let response = request.send().ok()?;
    let status = response.status().as_u16();
    let text = response.text().ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

#[derive(Default)]
struct Outcomes {
    /// serial → request id, for every issuance the server confirmed (201 with a serial).
    issued: BTreeMap<String, String>,
    /// Revocations the server confirmed (200).
    revoked: BTreeSet<String>,
    /// Revocations sent without an answer (killed mid-call): either outcome is allowed.
    maybe_revoked: BTreeSet<String>,
}

fn current_crl(server: &Server) -> Option<Vec<u8>> {
    let response = reqwest::blocking::get(format!("{}/crl/issuing.crl", server.public_url)).ok()?;
    if response.status() != 200 {
        return None;
    }
    Some(response.bytes().ok()?.to_vec())
}

fn issue_one(server: &Server, enroller: &Person, n: usize) -> Option<(String, String)> {
    let (_key, pem) = device_csr(&format!("c{n}"));
    let (status, body) = try_call(
        server,
        "POST",
        "/api/v1/requests",
        &enroller.token(),
        Some(json!({"profile": "ambulance-terminal", "csr": pem, "justification": "crash test"})),
    )?;
    if status != 201 {
        assert!(
            status < 500,
            "issuance answered {status}: {body}\n{}",
            server.logs()
        );
        return None;
    }
    Some((
        body["serial"].as_str()?.to_string(),
        body["id"].as_str()?.to_string(),
    ))
}

fn crash_loop(backend: Backend) {
    let kills: usize = std::env::var("MAMORI_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut server = Server::start(backend, &[("MAMORI_MAINTENANCE_INTERVAL_SECS", "1")]);
    server.login(&server.admin);
    let enrollers: Vec<Person> = (0..2)
        .map(|i| server.user(&format!("enroller{i}"), &["device-enroller"]))
        .collect();
    // Each TOTP code counts once, so several officers share the revocations.
    let officers: Vec<Person> = (0..6)
        .map(|i| server.user(&format!("officer{i}"), &["security-officer"]))
        .collect();
    let auditor = server.user("auditor", &["auditor"]);
    let outcomes = Mutex::new(Outcomes::default());
    let mut highest_crl = crl_number(&current_crl(&server).unwrap());
    let counter = std::sync::atomic::AtomicUsize::new(0);
    for kill in 0..kills {
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for enroller in &enrollers {
                let (server, stop, outcomes, counter) = (&server, &stop, &outcomes, &counter);
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        if let Some((serial, id)) = issue_one(server, enroller, n) {
                            outcomes.lock().unwrap().issued.insert(serial, id);
                        } else if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        // Spread a modest load over the whole window, so the kill lands
                        // mid-issuance and the final checks stay quick.
                        std::thread::sleep(Duration::from_millis(60));
                    }
                });
            }
            let (server, stop, outcomes, officers) = (&server, &stop, &outcomes, &officers);
            scope.spawn(move || {
                let mut turn = kill;
                while !stop.load(Ordering::Relaxed) {
                    let target = {
                        let o = outcomes.lock().unwrap();
                        o.issued
                            .keys()
                            .find(|s| !o.revoked.contains(*s) && !o.maybe_revoked.contains(*s))
                            .cloned()
                    };
                    let Some(serial) = target else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    let officer = &officers[turn % officers.len()];
                    turn += 1;
                    let Some(code) = officer.try_code() else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    outcomes
                        .lock()
                        .unwrap()
                        .maybe_revoked
                        .insert(serial.clone());
                    let answer = try_call(
                        server,
                        "POST",
                        &format!("/api/v1/certificates/issuing/{serial}/revoke"),
                        &officer.token(),
                        Some(json!({"totp": code, "reason": "key-compromise"})),
                    );
                    if let Some((status, body)) = answer {
                        assert!(
                            status < 500,
                            "revocation answered {status}: {body}\n{}",
                            server.logs()
                        );
                        let mut o = outcomes.lock().unwrap();
                        o.maybe_revoked.remove(&serial);
                        if status == 200 {
                            o.revoked.insert(serial);
                        }
                    }
                }
            });
            // Kill at a different point of the load each time: 150 ms to about 1.2 s in.
            std::thread::sleep(Duration::from_millis(150 + (kill as u64 * 337) % 1050));
            server.kill();
            stop.store(true, Ordering::Relaxed);
        });
        server.restart();
        let number = crl_number(&current_crl(&server).unwrap());
        assert!(
            number >= highest_crl,
            "cRLNumber went backwards after kill {kill}: {number} < {highest_crl}"
        );
        highest_crl = number;
    }
    let outcomes = outcomes.into_inner().unwrap();
    assert!(
        outcomes.issued.len() >= kills,
        "too little load to mean anything: {} issued",
        outcomes.issued.len()
    );
    assert!(!outcomes.revoked.is_empty(), "no revocation completed");

    // Everything the clients were told is recorded; OCSP and the CRL agree with it once the
    // restarted server's upkeep has run (poll with a deadline).
    let token = auditor.token();
    let issuer = issuing_certificate(&server.public_url);
    let mut leaves = BTreeMap::new();
    let mut statuses = BTreeMap::new();
    for (serial, request) in &outcomes.issued {
        let (status, body) = try_call(
            &server,
            "GET",
            &format!("/api/v1/certificates/issuing/{serial}"),
            &token,
            None,
        )
        .unwrap();
        assert_eq!(
            status, 200,
            "certificate {serial} the client received: {body}"
        );
        let state = body["status"].as_str().unwrap().to_string();
        if outcomes.revoked.contains(serial) {
            assert_eq!(state, "revoked", "{serial}");
        } else if !outcomes.maybe_revoked.contains(serial) {
            assert_eq!(state, "valid", "{serial}");
        }
        let pem = server
            .client
            .get(format!(
                "{}/api/v1/requests/{request}/certificate",
                server.api_url
            ))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        leaves.insert(
            serial.clone(),
            X509::stack_from_pem(&pem).unwrap().remove(0),
        );
        statuses.insert(serial.clone(), state);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let crl = current_crl(&server).unwrap();
        let listed: BTreeSet<String> = crl_serials(&crl).into_iter().collect();
        let mut wrong = Vec::new();
        for (serial, state) in &statuses {
            let ocsp = ocsp_status(&server.public_url, &leaves[serial], &issuer);
            let in_crl = listed.contains(&normal_serial(serial));
            if ocsp != state || in_crl != (state == "revoked") {
                wrong.push(format!("{serial}: {state}, OCSP {ocsp}, in CRL {in_crl}"));
            }
        }
        let number = crl_number(&crl);
        assert!(number >= highest_crl, "cRLNumber went backwards");
        highest_crl = number;
        if wrong.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the restarts, OCSP or the CRL disagree: {wrong:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // No serial twice and no request issued twice, read from the database itself (the API's
    // listing stops at 1,000, and the long run issues more): every certificate row of the
    // issuing CA, whatever its status.
    let rows = server
        .query("SELECT serial, COALESCE(request_id, '') FROM certificates WHERE ca_id = 'issuing'");
    let rows: Vec<(String, String)> = rows
        .lines()
        .map(|line| {
            let (serial, request) = line.split_once('|').unwrap();
            (serial.to_string(), request.to_string())
        })
        .collect();
    let serials: BTreeSet<&String> = rows.iter().map(|(s, _)| s).collect();
    assert_eq!(serials.len(), rows.len(), "a serial appears twice");
    let mut per_request: BTreeMap<&String, usize> = BTreeMap::new();
    for (_, request) in rows.iter().filter(|(_, r)| !r.is_empty()) {
        *per_request.entry(request).or_default() += 1;
    }
    let twice: Vec<_> = per_request.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "requests issued twice: {twice:?}");
    for (serial, request) in &outcomes.issued {
        assert!(
            rows.iter().any(|(s, r)| s == serial && r == request),
            "confirmed certificate {serial} (request {request}) is not stored under its request"
        );
    }
    let (status, verify) = try_call(&server, "GET", "/api/v1/audit/verify", &token, None).unwrap();
    assert_eq!(status, 200, "{verify}");
    assert_eq!(verify["ok"], json!(true), "{verify}");
    eprintln!(
        "crash loop: {kills} kills, {} certificates confirmed, {} revocations confirmed, {} cut short, {} certificates in all",
        outcomes.issued.len(),
        outcomes.revoked.len(),
        outcomes.maybe_revoked.len(),
        rows.len()
    );
}

#[test]
fn killed_mid_load_loses_nothing_sqlite() {
    crash_loop(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn killed_mid_load_loses_nothing_postgres() {
    crash_loop(Backend::Postgres);
}
