//! Several `ca-server` instances on one PostgreSQL database (a hospital group's machines in
//! front of one cluster): two instances issuing and revoking in parallel hand out unique serials,
//! keep one strictly increasing cRLNumber per CA, and give the same OCSP answers and CRL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mamori_e2e::{
    crl_number, device_csr, issuing_certificate, ocsp_status, Backend, Person, Server,
};
use openssl::x509::X509;
use serde_json::{json, Value};

fn post(client: &reqwest::blocking::Client, url: String, token: &str, body: Value) -> (u16, Value) {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn published_crl_number(public_url: &str) -> u128 {
    crl_number(
        &reqwest::blocking::get(format!("{public_url}/crl/issuing.crl"))
            .unwrap()
            .bytes()
            .unwrap(),
    )
}

const OFFICERS: usize = 7;

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn two_instances_on_one_postgres_database_agree() {
    let env = [("MAMORI_MAINTENANCE_INTERVAL_SECS", "1")];
    let first = Server::start(Backend::Postgres, &env);
    let second = first.instance(&[]);
    first.login(&first.admin);
    let enroller = first.user("enroller", &["device-enroller"]);
    let officers: Vec<Person> = (0..OFFICERS)
        .map(|i| first.user(&format!("officer{i}"), &["security-officer"]))
        .collect();
    let apis = [first.api_url.clone(), second.api_url.clone()];
    let issued: Mutex<BTreeMap<String, (String, usize)>> = Mutex::new(BTreeMap::new());
    // Issue in parallel through both instances.
    std::thread::scope(|scope| {
        for (worker, api) in apis.iter().chain(apis.iter()).enumerate() {
            let (first, enroller, issued) = (&first, &enroller, &issued);
            scope.spawn(move || {
                for i in 0..15 {
                    let (_key, pem) = device_csr(&format!("w{worker}-{i}"));
                    let (status, body) = post(
                        &first.client,
                        format!("{api}/api/v1/requests"),
                        &enroller.token(),
                        json!({"profile": "ambulance-terminal", "csr": pem, "justification": "two instances"}),
                    );
                    assert_eq!(status, 201, "{body}\n{}", first.logs());
                    issued.lock().unwrap().insert(
                        body["serial"].as_str().unwrap().to_string(),
                        (body["id"].as_str().unwrap().to_string(), worker % 2),
                    );
                }
            });
        }
    });
    let issued = issued.into_inner().unwrap();
    assert_eq!(issued.len(), 60, "every issuance got its own serial");
    // Revoke every third certificate, officers spread over both instances at once.
    let targets: Vec<String> = issued.keys().step_by(3).cloned().collect();
    std::thread::scope(|scope| {
        for (n, officer) in officers.iter().enumerate() {
            let (first, apis, targets) = (&first, &apis, &targets);
            scope.spawn(move || {
                for serial in targets.iter().skip(n).step_by(OFFICERS) {
                    let api = &apis[n % 2];
                    let (status, body) = post(
                        &first.client,
                        format!("{api}/api/v1/certificates/issuing/{serial}/revoke"),
                        &officer.token(),
                        json!({"totp": officer.code(), "reason": "superseded"}),
                    );
                    assert_eq!(status, 200, "{body}\n{}", first.logs());
                }
            });
        }
    });

    // Unique serials, and one strictly increasing cRLNumber sequence for the issuing CA.
    assert_eq!(
        first.query("SELECT count(*) - count(DISTINCT serial) FROM certificates"),
        "0"
    );
    let numbers: Vec<u64> = first
        .query(
            "SELECT details FROM audit_log WHERE target = 'issuing' \
             AND action IN ('crl.publish', 'crl.publish_delta') ORDER BY seq",
        )
        .lines()
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["crl_number"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(numbers.len() > targets.len(), "{numbers:?}");
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "cRLNumbers in publication order: {numbers:?}"
    );

    // Both instances answer the same for every certificate, and serve the same CRL.
    let issuer = issuing_certificate(&first.public_url);
    let mut leaves = BTreeMap::new();
    for (serial, (request, _)) in &issued {
        let pem = first
            .client
            .get(format!(
                "{}/api/v1/requests/{request}/certificate",
                first.api_url
            ))
            .bearer_auth(enroller.token())
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        leaves.insert(
            serial.clone(),
            X509::stack_from_pem(&pem).unwrap().remove(0),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut differences = Vec::new();
        for (serial, leaf) in &leaves {
            let want = if targets.contains(serial) {
                "revoked"
            } else {
                "valid"
            };
            let a = ocsp_status(&first.public_url, leaf, &issuer);
            let b = ocsp_status(&second.public_url, leaf, &issuer);
            if a != want || b != want {
                differences.push(format!("{serial}: want {want}, first {a}, second {b}"));
            }
        }
        let (na, nb) = (
            published_crl_number(&first.public_url),
            published_crl_number(&second.public_url),
        );
        if na != nb {
            differences.push(format!("CRL numbers {na} and {nb}"));
        }
        if differences.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the instances disagree: {differences:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Both wrote to one audit chain; it verifies.
    first.assert_audit_intact(&first.admin.token());

    // A logout on one instance ends the session on the other too, which trusts a session it
    // confirmed in the database for at most a second.
    let me = |api: &str| {
        first
            .client
            .get(format!("{api}/api/v1/me"))
            .bearer_auth(enroller.token())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(me(&second.api_url), 200);
    let (status, _) = first.call("POST", "/api/v1/logout", Some(&enroller.token()), None);
    assert_eq!(status, 204);
    assert_eq!(me(&first.api_url), 401);
    let deadline = Instant::now() + Duration::from_secs(10);
    while me(&second.api_url) != 401 {
        assert!(
            Instant::now() < deadline,
            "the second instance still accepts a session ended on the first"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
