//! Hostile input: every case of the corpus in `tests/data/bad/` (listed in its MANIFEST.tsv, with
//! a line on what each is) is sent to the endpoint or CLI command it targets. Each must get a 4xx
//! problem-details answer (OCSP endpoints: an OCSP error response, as RFC 6960 §2.3 requires, or a
//! 4xx problem) or one clear CLI error; the server never answers 5xx and never dies; and the
//! database holds the same certificates, requests, decisions, users and CRLs afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

use mamori_e2e::{workspace_root, Backend, Server};
use serde_json::{json, Value};

struct Case {
    file: PathBuf,
    target: String,
    what: String,
}

fn corpus() -> Vec<Case> {
    let dir = workspace_root().join("tests/data/bad");
    std::fs::read_to_string(dir.join("MANIFEST.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.splitn(3, '\t');
            let file = dir.join(parts.next().unwrap());
            Case {
                file,
                target: parts.next().unwrap().to_string(),
                what: parts.next().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

/// What the server holds that hostile input must not change. (Failed logins are audited and
/// counted against the account: those tables may grow.)
fn snapshot(server: &Server) -> String {
    server.query(
        "SELECT (SELECT count(*) FROM certificates), (SELECT count(*) FROM requests), \
         (SELECT count(*) FROM decisions), (SELECT count(*) FROM users), \
         (SELECT count(*) FROM users WHERE roles LIKE '%admin%'), \
         (SELECT count(*) FROM certificates WHERE status <> 'valid'), \
         (SELECT max(crl_number) FROM published_crls), \
         (SELECT count(*) FROM acme_accounts), (SELECT count(*) FROM acme_orders), \
         (SELECT count(*) FROM acme_eab_keys)",
    )
}

fn encode_path(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// A refused SCEP message: a 4xx problem (nothing trustworthy to reply to), or a CertRep the
/// RA signed whose pkiStatus is FAILURE.
fn assert_scep_refusal(case: &Case, answer: &Answer) {
    if answer.status == 200 {
        assert_eq!(
            answer.content_type,
            "application/x-pki-message",
            "{} ({})",
            case.file.display(),
            case.what
        );
        let (status, fail) = mamori_e2e::scep_status(&answer.body)
            .unwrap_or_else(|| panic!("{}: a 200 that is no CertRep", case.what));
        assert_eq!(
            status, "2",
            "{}: pkiStatus {status}, failInfo {fail:?}",
            case.what
        );
        assert!(fail.is_some(), "{}: a failure without failInfo", case.what);
    } else {
        assert_problem(case, answer);
    }
}

struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

fn send(request: reqwest::blocking::RequestBuilder) -> Answer {
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Answer {
        status,
        content_type,
        body: response.bytes().unwrap().to_vec(),
    }
}

fn assert_problem(case: &Case, answer: &Answer) {
    assert!(
        (400..500).contains(&answer.status),
        "{} ({}): status {} {}",
        case.file.display(),
        case.what,
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    assert!(
        answer.content_type.starts_with("application/problem+json"),
        "{} ({}): content type {:?}",
        case.file.display(),
        case.what,
        answer.content_type
    );
    let problem: Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(
        problem["type"].is_string() && problem["status"] == json!(answer.status),
        "{}: {problem}",
        case.what
    );
}

/// OCSP answers malformed input with an OCSP error response (HTTP 200) or a 4xx problem.
fn assert_ocsp_refusal(case: &Case, answer: &Answer) {
    if answer.status == 200 {
        assert_eq!(
            answer.content_type, "application/ocsp-response",
            "{}",
            case.what
        );
        let response = openssl::ocsp::OcspResponse::from_der(&answer.body).unwrap();
        assert_ne!(
            response.status(),
            openssl::ocsp::OcspResponseStatus::SUCCESSFUL,
            "{} ({}) was answered as if valid",
            case.file.display(),
            case.what
        );
    } else {
        assert_problem(case, answer);
    }
}

fn hostile(backend: Backend) {
    let (enroll_port, scep_port) = (mamori_e2e::free_port(), mamori_e2e::free_port());
    let (enroll_addr, scep_addr) = (
        format!("127.0.0.1:{enroll_port}"),
        format!("127.0.0.1:{scep_port}"),
    );
    let server = Server::start(
        backend,
        &[
            ("MAMORI_LOGIN_ATTEMPTS_PER_MINUTE", "1000"),
            ("MAMORI_ENROLL_ADDR", &enroll_addr),
            ("MAMORI_SCEP_HTTP_ADDR", &scep_addr),
        ],
    );
    let enroll_url = format!("https://localhost:{enroll_port}");
    let scep_url = format!("http://127.0.0.1:{scep_port}");
    server.login(&server.admin);
    let enroller = server.user("enroller", &["device-enroller"]);
    let officer = server.user("oscar", &["security-officer"]);
    let other = server.user("other", &["device-enroller"]);
    let leaver = server.user("leaver", &["auditor"]);
    let (status, _) = server.call("POST", "/api/v1/logout", Some(&leaver.token()), None);
    assert_eq!(status, 204);
    // One request of the enroller's, for the other user's token to reach for.
    let (_key, pem) = mamori_e2e::csr(
        &[(rcgen::DnType::CommonName, "amb-own")],
        vec![rcgen::SanType::URI(
            "urn:mamori:device:ambulance:own".try_into().unwrap(),
        )],
    );
    let (status, own) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&enroller.token()),
        Some(json!({"profile": "ambulance-terminal", "csr": pem, "justification": "own"})),
    );
    assert_eq!(status, 201, "{own}");
    let own_request = own["id"].as_str().unwrap().to_string();
    let cli_home = server.path().join("cli-enroller");
    server.cli_login(&cli_home, &enroller);
    let before = snapshot(&server);

    let token_of = |who: &str| -> Option<String> {
        match who {
            "enroller" => Some(enroller.token()),
            "officer" => Some(officer.token()),
            "admin" => Some(server.admin.token()),
            _ => None,
        }
    };
    let cases = corpus();
    assert!(cases.len() >= 150, "the corpus holds {} cases", cases.len());
    for case in &cases {
        let data = std::fs::read(&case.file).unwrap();
        let text = String::from_utf8_lossy(&data).to_string();
        let target = case.target.as_str();
        if let Some(args) = target.strip_prefix("cli:") {
            let file = case.file.to_str().unwrap();
            let keys = server.path().join(format!(
                "keys-{}",
                case.file.file_name().unwrap().to_string_lossy()
            ));
            let args: Vec<String> = args
                .split(' ')
                .map(|a| {
                    a.replace("{}.keys", keys.to_str().unwrap())
                        .replace("{}", file)
                })
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let home = if args[0] == "login" {
                server.path().join("cli-login")
            } else {
                cli_home.clone()
            };
            let run = server.cli(&home, &args);
            assert!(
                run.code != 0,
                "{} ({}): ca-cli succeeded: {run:?}",
                case.file.display(),
                case.what
            );
            assert!(
                !run.stderr.contains("panicked") && !run.stderr.contains("stack backtrace"),
                "{}: {run:?}",
                case.what
            );
            let lines = run.stderr.trim().lines().count();
            assert!(
                (1..=3).contains(&lines),
                "{} ({}): want one clear error, got {lines} lines: {}",
                case.file.display(),
                case.what,
                run.stderr
            );
        } else if target == "ocsp-post" || target.starts_with("ocsp-post-as:") {
            let ctype = target
                .strip_prefix("ocsp-post-as:")
                .unwrap_or("application/ocsp-request");
            let answer = send(
                reqwest::blocking::Client::new()
                    .post(format!("{}/ocsp", server.public_url))
                    .header("content-type", ctype)
                    .body(data.clone()),
            );
            assert_ocsp_refusal(case, &answer);
        } else if target == "ocsp-get" || target == "ocsp-get-raw" {
            let path = if target == "ocsp-get" {
                encode_path(&data)
            } else {
                text.clone()
            };
            let answer = send(
                reqwest::blocking::Client::new().get(format!("{}/ocsp/{path}", server.public_url)),
            );
            assert_ocsp_refusal(case, &answer);
        } else if target == "submit-csr" {
            let answer = send(
                server
                    .client
                    .post(format!("{}/api/v1/requests", server.api_url))
                    .bearer_auth(enroller.token())
                    .json(&json!({"profile": "ambulance-terminal", "csr": text, "justification": "corpus"})),
            );
            assert_problem(case, &answer);
        } else if let Some(rest) = target
            .strip_prefix("api:")
            .map(|r| ("application/json", r))
            .or_else(|| {
                target.strip_prefix("api-as:").and_then(|r| {
                    let (ctype, rest) = r.split_once(':')?;
                    Some((ctype, rest))
                })
            })
        {
            let (ctype, spec) = rest;
            let mut parts = spec.splitn(3, ':');
            let method = parts.next().unwrap();
            let (path, who) = (parts.next().unwrap(), parts.next().unwrap());
            let url = format!("{}{path}", server.api_url);
            let mut request = match method {
                "PUT" => server.client.put(url),
                _ => server.client.post(url),
            }
            .header("content-type", ctype)
            .body(data.clone());
            if let Some(token) = token_of(who) {
                request = request.bearer_auth(token);
            }
            assert_problem(case, &send(request));
        } else if let Some(who) = target.strip_prefix("api-path:") {
            let mut request =
                server
                    .client
                    .get(format!("{}/api/v1/{}", server.api_url, text.trim()));
            if let Some(token) = token_of(who) {
                request = request.bearer_auth(token);
            }
            assert_problem(case, &send(request));
        } else if target == "token" {
            let (path, token) = match text.as_str() {
                "{logged-out}" => ("/api/v1/me".to_string(), leaver.token()),
                "{other-user}" => (format!("/api/v1/requests/{own_request}"), other.token()),
                t => ("/api/v1/me".to_string(), t.to_string()),
            };
            let mut request = server.client.get(format!("{}{path}", server.api_url));
            if let Ok(value) =
                reqwest::header::HeaderValue::from_bytes(format!("Bearer {token}").as_bytes())
            {
                request = request.header("authorization", value);
            }
            assert_problem(case, &send(request));
        } else if target == "login-totp" {
            let code = match text.as_str() {
                "{replay}" => {
                    let fresh = enroller.code();
                    let answer = send(server.client.post(format!("{}/api/v1/login", server.api_url)).json(
                        &json!({"username": "enroller", "password": enroller.password, "totp": fresh}),
                    ));
                    assert_eq!(answer.status, 200, "the first use of a code logs in");
                    fresh
                }
                "{previous-window}" => enroller.stale_code(20),
                t => t.to_string(),
            };
            let answer = send(
                server
                    .client
                    .post(format!("{}/api/v1/login", server.api_url))
                    .json(&json!({"username": "enroller", "password": enroller.password, "totp": code})),
            );
            assert_problem(case, &answer);
        } else if let Some(profile) = target.strip_prefix("scep-post:") {
            let answer = send(
                reqwest::blocking::Client::new()
                    .post(format!("{scep_url}/scep/{profile}?operation=PKIOperation"))
                    .header("content-type", "application/x-pki-message")
                    .body(data.clone()),
            );
            assert_scep_refusal(case, &answer);
        } else if let Some(profile) = target.strip_prefix("scep-get:") {
            let message = if text.starts_with('%') {
                text.clone()
            } else {
                encode_path(&data)
            };
            let answer = send(reqwest::blocking::Client::new().get(format!(
                "{scep_url}/scep/{profile}?operation=PKIOperation&message={message}"
            )));
            assert_scep_refusal(case, &answer);
        } else if let Some(rest) = target
            .strip_prefix("est-enroll:")
            .map(|p| (p, "simpleenroll"))
            .or_else(|| {
                target
                    .strip_prefix("est-reenroll:")
                    .map(|p| (p, "simplereenroll"))
            })
        {
            let (profile, operation) = rest;
            let (status, code) = server.call(
                "POST",
                "/api/v1/enrollment-codes",
                Some(&enroller.token()),
                Some(json!({"profile": "network-gateway", "cn_pattern": "gw[0-9]+\\.ward3\\.hospital\\.example"})),
            );
            assert_eq!(status, 201, "{code}");
            let mut request = server
                .client
                .post(format!(
                    "{enroll_url}/.well-known/est/{profile}/{operation}"
                ))
                .header("content-type", "application/pkcs10")
                .body(data.clone());
            if operation == "simpleenroll" {
                request = request.basic_auth("device", code["code"].as_str());
            }
            assert_problem(case, &send(request));
        } else if let Some(rest) = target
            .strip_prefix("acme:")
            .map(|p| ("application/jose+json", p))
            .or_else(|| {
                target
                    .strip_prefix("acme-as:")
                    .and_then(|r| r.split_once(':'))
            })
        {
            let (ctype, path) = rest;
            let answer = send(
                server
                    .client
                    .post(format!("{enroll_url}/acme/{path}"))
                    .header("content-type", ctype)
                    .body(data.clone()),
            );
            assert_problem(case, &answer);
            let problem: Value = serde_json::from_slice(&answer.body).unwrap();
            assert!(
                problem["type"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("urn:ietf:params:acme:error:"),
                "{}: not an ACME problem: {problem}",
                case.what
            );
        } else if let Some(spec) = target.strip_prefix("huge:") {
            let (method, path) = spec.split_once(':').unwrap();
            let size: usize = text.trim().parse().unwrap();
            let body = vec![b'A'; size];
            let (url, ctype) = if path == "/ocsp" {
                (
                    format!("{}{path}", server.public_url),
                    "application/ocsp-request",
                )
            } else {
                (format!("{}{path}", server.api_url), "application/json")
            };
            let client = if path == "/ocsp" {
                reqwest::blocking::Client::new()
            } else {
                server.client.clone()
            };
            let mut request = match method {
                "PUT" => client.put(url),
                _ => client.post(url),
            }
            .header("content-type", ctype)
            .body(body);
            if path != "/ocsp" && path != "/api/v1/login" {
                request = request.bearer_auth(enroller.token());
            }
            let answer = send(request);
            if path == "/ocsp" {
                assert_ocsp_refusal(case, &answer);
            } else {
                assert_problem(case, &answer);
            }
        } else {
            panic!("unknown target {target} for {}", case.file.display());
        }
        let alive = reqwest::blocking::get(format!("{}/healthz", server.public_url))
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        assert!(
            alive,
            "the server died after {}: {}",
            case.what,
            server.logs()
        );
    }
    assert_eq!(
        snapshot(&server),
        before,
        "hostile input changed the database"
    );
    assert!(
        !server.logs().contains("panicked"),
        "the server panicked: {}",
        server.logs()
    );
    eprintln!("hostile input: {} cases, all refused", cases.len());
}

#[test]
fn hostile_input_is_refused_cleanly_sqlite() {
    hostile(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn hostile_input_is_refused_cleanly_postgres() {
    hostile(Backend::Postgres);
}

#[test]
fn login_attempts_are_limited_per_client_address() {
    let server = Server::start(
        Backend::Sqlite,
        &[("MAMORI_LOGIN_ATTEMPTS_PER_MINUTE", "5")],
    );
    // Spraying: one wrong password against each of several accounts (none reaches its own
    // lockout threshold), from one address.
    let mut statuses = Vec::new();
    let mut last = None;
    for name in ["admin", "alice", "bob", "carol", "dave", "erin", "frank"] {
        let response = server
            .client
            .post(format!("{}/api/v1/login", server.api_url))
            .json(&json!({"username": name, "password": "Winter2026!", "totp": "123456"}))
            .send()
            .unwrap();
        statuses.push(response.status().as_u16());
        last = Some(response);
    }
    assert_eq!(&statuses[..5], &[401, 401, 401, 401, 401], "{statuses:?}");
    assert_eq!(&statuses[5..], &[429, 429], "{statuses:?}");
    let last = last.unwrap();
    let retry: u64 = last.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let problem: Value = last.json().unwrap();
    assert_eq!(
        problem["type"],
        json!("https://mamori.dev/problems/too-many-attempts")
    );
    // The limit is per address and per minute, and the right credentials do not bypass it.
    let (status, _) = server.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "admin", "password": server.admin.password, "totp": server.admin.code()})),
    );
    assert_eq!(status, 429);
}

/// Runs `openssl s_client` against the API listener with extra arguments; true when the
/// handshake completed.
fn handshake(port: &str, args: &[&str]) -> bool {
    let output = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.contains("Cipher is") && !text.contains("Cipher is (NONE)")
}

#[test]
fn transport_is_tls_1_2_or_1_3_with_security_headers_and_the_public_listener_is_public_only() {
    let server = Server::start(Backend::Sqlite, &[]);
    let port = server.api_url.rsplit(':').next().unwrap().to_string();
    // The client side is opened up (security level 0) so that the refusal is the server's.
    let old = ["-cipher", "DEFAULT:@SECLEVEL=0"];
    assert!(handshake(&port, &["-tls1_3"]), "TLS 1.3 is offered");
    assert!(handshake(&port, &["-tls1_2"]), "TLS 1.2 is offered");
    assert!(
        !handshake(&port, &[&["-tls1_1"][..], &old[..]].concat()),
        "TLS 1.1 is refused"
    );
    assert!(
        !handshake(&port, &[&["-tls1"][..], &old[..]].concat()),
        "TLS 1.0 is refused"
    );
    assert!(
        !handshake(
            &port,
            &["-tls1_2", "-cipher", "AES128-SHA:DES-CBC3-SHA:@SECLEVEL=0"]
        ),
        "static-RSA and CBC-only suites are refused"
    );
    // Every API answer carries the security headers.
    let response = server
        .client
        .get(format!("{}/api/v1/me", server.api_url))
        .send()
        .unwrap();
    assert_eq!(response.status(), 401);
    let headers = response.headers();
    assert!(headers["strict-transport-security"]
        .to_str()
        .unwrap()
        .contains("max-age="));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["content-security-policy"], "default-src 'none'");
    assert_eq!(headers["cache-control"], "no-store");
    // The public listener serves public data only: no API there.
    for path in [
        "/api/v1/me",
        "/api/v1/login",
        "/api/v1/openapi.json",
        "/api/v1/users",
    ] {
        let answer = server.public_get(path);
        assert_eq!(answer.status(), 404, "{path} on the public listener");
        assert!(answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json"));
    }
}
