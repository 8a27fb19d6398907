//! Lists never cut off silently: every list is a page with the total and a link to the next,
//! newest first, with search filters, through the API and the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashSet;

use mamori_e2e::{Backend, Server};
use serde_json::Value;

/// GET `path` as `token`: status, body, `X-Total-Count`, and the `Link` rel="next" target.
fn page(server: &Server, path: &str, token: &str) -> (u16, Value, Option<u64>, Option<String>) {
    let response = server
        .client
        .get(format!("{}{path}", server.api_url))
        .bearer_auth(token)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    let total = response
        .headers()
        .get("x-total-count")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let next = response.headers().get("link").map(|v| {
        let text = v.to_str().unwrap();
        assert!(text.ends_with("; rel=\"next\""), "{text}");
        text.trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_string()
    });
    (status, response.json().unwrap_or(Value::Null), total, next)
}

fn lists(backend: Backend) {
    let server = Server::start(backend, &[]);
    server.login(&server.officer);
    let token = server.officer.token();
    // 1,205 ambulance terminals, issued a second apart (rows as issuance stores them, without
    // the DER: the list shows the stored fields).
    let columns = "ca_id, serial, profile_id, subject, tbs_der, not_before, not_after, status, created_at, status_changed_ms";
    if server.database_url.starts_with("sqlite") {
        server.sql(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1205) \
             INSERT INTO certificates ({columns}) SELECT 'issuing', printf('41%014x', i), \
             'ambulance-terminal', printf('CN=amb-%04d', i), x'', 0, 4102444800, 'valid', \
             1700000000 + i, 0 FROM n"
        ));
    } else {
        server.sql(&format!(
            "INSERT INTO certificates ({columns}) SELECT 'issuing', '41' || lpad(to_hex(i), 14, '0'), \
             'ambulance-terminal', 'CN=amb-' || lpad(i::text, 4, '0'), ''::bytea, 0, 4102444800, \
             'valid', 1700000000 + i, 0 FROM generate_series(1, 1205) AS i"
        ));
    }

    // The default page is the newest 1,000, and says there are more.
    let (status, body, total, next) = page(
        &server,
        "/api/v1/certificates?profile=ambulance-terminal",
        &token,
    );
    assert_eq!(status, 200, "{body}");
    let first = body.as_array().unwrap().clone();
    assert_eq!(first.len(), 1000);
    assert_eq!(total, Some(1205));
    assert_eq!(first[0]["subject"], "CN=amb-1205", "newest first");
    let next = next.expect("a next link past 1,000 rows");
    assert!(next.contains("profile=ambulance-terminal"), "{next}");
    let (status, body, total, last) = page(&server, &next, &token);
    assert_eq!(status, 200, "{body}");
    assert_eq!(total, Some(1205));
    assert_eq!(last, None, "the second page is the last");
    let second = body.as_array().unwrap().clone();
    assert_eq!(second.len(), 205);
    assert_eq!(second[204]["subject"], "CN=amb-0001");
    let serials: HashSet<&str> = first
        .iter()
        .chain(second.iter())
        .map(|c| c["serial"].as_str().unwrap())
        .collect();
    assert_eq!(serials.len(), 1205, "every row once, none twice");

    // Small pages walk the same list.
    let mut path = Some("/api/v1/certificates?profile=ambulance-terminal&limit=400".to_string());
    let mut walked = 0;
    while let Some(p) = path.take() {
        let (status, body, _, next) = page(&server, &p, &token);
        assert_eq!(status, 200, "{body}");
        walked += body.as_array().unwrap().len();
        path = next;
    }
    assert_eq!(walked, 1205);

    // Search: any case of a subject's text, a serial's first digits.
    let (_, body, total, _) = page(&server, "/api/v1/certificates?subject=AMB-0042", &token);
    assert_eq!(total, Some(1), "{body}");
    assert_eq!(body[0]["subject"], "CN=amb-0042");
    let (_, body, total, _) = page(
        &server,
        "/api/v1/certificates?serial=410000000000004",
        &token,
    );
    assert_eq!(total, Some(16), "serials 0x40-0x4f: {body}");
    // Bad paging input is a 400 problem, not a 500 or an empty list.
    for bad in ["limit=0", "limit=1001", "cursor=nonsense", "serial=xyz"] {
        let (status, body, _, _) = page(&server, &format!("/api/v1/certificates?{bad}"), &token);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["detail"].is_string(), "{body}");
    }

    // The audit trail: newest first by default, oldest first from `after`, filtered by actor.
    server.login(&server.admin);
    let audit_token = server.admin.token();
    let (status, body, total, next) = page(&server, "/api/v1/audit?limit=2", &audit_token);
    assert_eq!(status, 200, "{body}");
    let newest = body.as_array().unwrap();
    assert!(newest[0]["seq"].as_u64() > newest[1]["seq"].as_u64());
    assert!(total.unwrap() > 2);
    let (_, body, _, _) = page(&server, &next.unwrap(), &audit_token);
    assert!(body[0]["seq"].as_u64() < newest[1]["seq"].as_u64());
    let (_, body, _, _) = page(&server, "/api/v1/audit?after=0&limit=2", &audit_token);
    assert_eq!(body[0]["seq"], 1);
    let (_, body, total, _) = page(
        &server,
        "/api/v1/audit?actor=system&action=ca.init",
        &audit_token,
    );
    assert_eq!(total, Some(1), "{body}");
    let (status, _, _, _) = page(&server, "/api/v1/audit?since=yesterday", &audit_token);
    assert_eq!(status, 400);

    // The CLI says when a list is cut, and --all gets every row.
    let home = server.dir.path().join("cli-lists");
    server.cli_login(&home, &server.officer);
    let run = server.cli(
        &home,
        &[
            "cert",
            "list",
            "--profile",
            "ambulance-terminal",
            "--limit",
            "5",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("amb-1205") && !run.stdout.contains("amb-1200"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("showing 5 of 1205"), "{}", run.stderr);
    let run = server.cli(
        &home,
        &[
            "--json",
            "cert",
            "list",
            "--profile",
            "ambulance-terminal",
            "--all",
            "--limit",
            "500",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1205);
    assert!(!run.stderr.contains("showing"), "{}", run.stderr);
}

/// `san` finds certificates by a subjectAltName (any case), also those stored before the names
/// table existed once the server restarts; `staff_id` matches the subject's serialNumber exactly.
fn san_and_staff_id(backend: Backend) {
    let mut server = Server::start(backend, &[]);
    let enroller = server.user("amb-it", &["device-enroller"]);
    let mut serials = Vec::new();
    for id in ["0042", "00421", "7"] {
        let (_key, pem) = mamori_e2e::device_csr(id);
        let (status, body) = server.call(
            "POST",
            "/api/v1/requests",
            Some(&enroller.token()),
            Some(serde_json::json!({"profile": "ambulance-terminal", "csr": pem, "justification": "fleet"})),
        );
        assert_eq!(status, 201, "{body}");
        serials.push(body["serial"].as_str().unwrap().to_string());
    }
    server.login(&server.officer);
    let token = server.officer.token();
    let found = |server: &Server, token: &str, query: &str| -> Vec<String> {
        let (status, body, total, _) =
            page(server, &format!("/api/v1/certificates?{query}"), token);
        assert_eq!(status, 200, "{query}: {body}");
        let serials: Vec<String> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["serial"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(total, Some(serials.len() as u64), "{query}");
        serials
    };
    let mut both = vec![serials[1].clone(), serials[0].clone()];
    assert_eq!(
        found(&server, &token, "san=AMBULANCE%3A0042"),
        both,
        "contains, any case, newest first"
    );
    assert_eq!(
        found(&server, &token, "san=ambulance%3A00421"),
        vec![serials[1].clone()]
    );
    assert_eq!(
        found(&server, &token, "san=urn%3Amamori%3Adevice%3Aambulance%3A7"),
        vec![serials[2].clone()]
    );
    assert!(found(&server, &token, "san=gw.hospital.example").is_empty());
    // The subject is not a SAN: amb-0042 is only in the CN.
    assert!(found(&server, &token, "san=amb-0042").is_empty());

    // Rows from before the names table: filled from the DER at the next start.
    server.sql("DELETE FROM certificate_names");
    server.sql("DELETE FROM settings WHERE name = 'certificate_names_filled'");
    assert!(found(&server, &token, "san=ambulance%3A0042").is_empty());
    server.restart();
    server.login(&server.officer);
    let token = server.officer.token();
    both.sort();
    let mut again = found(&server, &token, "san=ambulance%3A0042");
    again.sort();
    assert_eq!(again, both);

    // Staff numbers: exactly, not as a prefix, any case.
    let columns = "ca_id, serial, profile_id, subject, tbs_der, not_before, not_after, status, created_at, status_changed_ms";
    for (serial, subject) in [
        (
            "51000000000000000001",
            "CN=Sato Hanako,serialNumber=EMP-0042",
        ),
        (
            "51000000000000000002",
            "CN=Sato Jiro,serialNumber=EMP-00421",
        ),
        (
            "51000000000000000003",
            "serialNumber=EMP-0042+CN=Sato Hanako,O=Hospital",
        ),
    ] {
        let empty = if server.database_url.starts_with("sqlite") {
            "x''"
        } else {
            "''::bytea"
        };
        server.sql(&format!(
            "INSERT INTO certificates ({columns}) VALUES ('issuing', '{serial}', 'staff', '{subject}', {empty}, 0, 4102444800, 'valid', 1700000000, 0)"
        ));
    }
    let mut staff = found(&server, &token, "staff_id=emp-0042");
    staff.sort();
    assert_eq!(staff, vec!["51000000000000000001", "51000000000000000003"]);
    assert_eq!(
        found(&server, &token, "staff_id=EMP-00421"),
        vec!["51000000000000000002"]
    );
    assert!(found(&server, &token, "staff_id=EMP-004").is_empty());
    // Through the CLI too.
    let home = tempfile::tempdir().unwrap();
    server.cli_login(home.path(), &server.officer);
    let run = server.cli(
        home.path(),
        &["--json", "cert", "list", "--san", "Ambulance:7"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json().as_array().unwrap().len(), 1, "{run:?}");
    let run = server.cli(
        home.path(),
        &["--json", "cert", "list", "--staff-id", "EMP-0042"],
    );
    assert_eq!(run.json().as_array().unwrap().len(), 2, "{run:?}");
}

#[test]
fn certificates_by_san_and_staff_id_sqlite() {
    san_and_staff_id(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn certificates_by_san_and_staff_id_postgres() {
    san_and_staff_id(Backend::Postgres);
}

#[test]
fn lists_page_past_a_thousand_rows_sqlite() {
    lists(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn lists_page_past_a_thousand_rows_postgres() {
    lists(Backend::Postgres);
}
