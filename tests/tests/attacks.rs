//! Issue 18's findings, reproduced as an attacker would try them against the real server, each
//! now failing to get in: guessing step-up codes, parallel wrong passwords against lockout,
//! terminal escapes through the audit log, a disabled requester's pending request, a
//! maintenance window years ahead, one administrator supplying every approval, guessing
//! enrolment codes, cutting or rewriting the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use mamori_e2e::{csr, rfc3339, Backend, Person, Server};
use rcgen::DnType::{CommonName, OrganizationName};
use serde_json::{json, Value};

fn vendor_request(server: &Server, vendor: &Person, start_in: u64) -> (u16, Value) {
    let now = ca_core::time::UnixTime::now().as_secs();
    let (_key, pem) = csr(
        &[
            (OrganizationName, "Acme Medical"),
            (CommonName, "acme-engineer-1"),
        ],
        vec![],
    );
    server.call(
        "POST",
        "/api/v1/requests",
        Some(&vendor.token()),
        Some(json!({"profile": "vendor-maintenance", "csr": pem, "justification": "MRI firmware",
            "work_order": "WO-1", "not_before": rfc3339(now + start_in), "not_after": rfc3339(now + start_in + 4 * 3600)})),
    )
}

fn audit(server: &Server, action: &str) -> Vec<Value> {
    let (status, body) = server.call(
        "GET",
        &format!("/api/v1/audit?after=0&action={action}&limit=1000"),
        Some(&server.admin.token()),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

fn metric(server: &Server, name: &str) -> f64 {
    let text = server.public_get("/metrics").text().unwrap();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in /metrics"))
}

/// Finding 1: wrong step-up codes end the session after 3 and lock the account's step-up after
/// 5, even with the right code; each is audited and counted; only another officer unlocks.
#[test]
fn step_up_guessing_stops_at_the_limit_and_is_audited() {
    let server = Server::start(Backend::Sqlite, &[]);
    server.login(&server.admin);
    let alice = server.user("alice", &["security-officer"]);
    let bob = server.user("bob", &["security-officer"]);
    let vendor = server.user("acme", &["vendor"]);
    let (status, body) = vendor_request(&server, &vendor, 0);
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let approve = |who: &Person, code: &str| {
        server.call(
            "POST",
            &format!("/api/v1/requests/{id}/approve"),
            Some(&who.token()),
            Some(json!({"totp": code, "comment": "guess"})),
        )
    };
    let wrong = alice.stale_code(20);
    for attempt in 1..=3 {
        let (status, body) = approve(&alice, &wrong);
        assert_eq!(status, 403, "attempt {attempt}: {body}");
        assert_eq!(
            body["type"],
            "https://mamori.dev/problems/invalid-second-factor"
        );
    }
    // The third wrong code in one session ended it.
    let (status, _) = server.call("GET", "/api/v1/me", Some(&alice.token()), None);
    assert_eq!(status, 401, "the session that guessed three times is over");
    server.login(&alice);
    for attempt in 4..=5 {
        let (status, body) = approve(&alice, &wrong);
        assert_eq!(status, 403, "attempt {attempt}: {body}");
    }
    // Five in a row: locked, even for the right code.
    let (status, body) = approve(&alice, &alice.code());
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "https://mamori.dev/problems/step-up-locked");
    let failed = audit(&server, "stepup.failed");
    assert_eq!(failed.len(), 5, "{failed:?}");
    assert_eq!(failed[4]["details"]["step_up_locked"], true);
    assert_eq!(failed[2]["details"]["session_ended"], true);
    assert!(failed
        .iter()
        .all(|e| e["actor"] == "alice" && e["target"] == id.as_str()));
    let refused = audit(&server, "security.refused");
    assert!(
        refused
            .iter()
            .any(|e| e["details"]["type"] == "step-up-locked" && e["actor"] == "alice"),
        "{refused:?}"
    );
    assert_eq!(metric(&server, "mamori_step_up_failures_total"), 5.0);
    assert!(
        metric(
            &server,
            "mamori_security_refusals_total{type=\"invalid-second-factor\"}"
        ) >= 5.0
    );
    let (_, users) = server.call("GET", "/api/v1/users", Some(&server.admin.token()), None);
    let shown = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(shown["step_up_locked"], true, "{shown}");
    // Nobody lifts their own lock; another officer does, with their own step-up.
    let (status, body) = server.call(
        "POST",
        "/api/v1/users/alice/unlock",
        Some(&alice.token()),
        Some(json!({"totp": "000000"})),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = server.call(
        "POST",
        "/api/v1/users/alice/unlock",
        Some(&bob.token()),
        Some(json!({"totp": bob.code(), "comment": "alice mistyped"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["step_up_locked"], false);
    let (status, body) = approve(&alice, &alice.code());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approvals"], 1);
}

/// Finding 5: 40 parallel wrong passwords lock the account; the right password then fails.
#[test]
fn parallel_wrong_passwords_lock_the_account() {
    let server = Server::start(
        Backend::Sqlite,
        &[("MAMORI_LOGIN_ATTEMPTS_PER_MINUTE", "0")],
    );
    server.login(&server.admin);
    let victim = server.user("victim", &["security-officer"]);
    let threads: Vec<_> = (0..40)
        .map(|i| {
            let client = server.client.clone();
            let url = format!("{}/api/v1/login", server.api_url);
            std::thread::spawn(move || {
                client
                    .post(url)
                    .json(&json!({"username": "victim", "password": format!("wrong password {i}"), "totp": "123456"}))
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 401);
    }
    let (status, body) = server.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "victim", "password": victim.password, "totp": victim.code()})),
    );
    assert_eq!(status, 401, "locked after 40 parallel failures: {body}");
    // The right password learns that the account is locked, and until when.
    assert_eq!(
        body["type"], "https://mamori.dev/problems/account-locked",
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("locked"),
        "{body}"
    );
    let (status, body) = server.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "victim", "password": "not the password", "totp": victim.code()})),
    );
    assert_eq!(status, 401);
    assert_eq!(
        body["type"], "https://mamori.dev/problems/invalid-credentials",
        "a guesser is not told about the lock: {body}"
    );
    let (_, users) = server.call("GET", "/api/v1/users", Some(&server.admin.token()), None);
    let shown = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "victim")
        .unwrap()
        .clone();
    assert!(shown["locked_until"].is_string(), "{shown}");
    let failed = audit(&server, "login.failed");
    assert!(
        failed
            .iter()
            .filter(|e| e["actor"] == "victim")
            .any(|e| e["details"]["locked"] == true),
        "{failed:?}"
    );
    // Break-glass on the server itself, with the CA passphrase: the lock is lifted, audited.
    let out = server.ca_server(&["unlock", "--username", "victim"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = server.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "victim", "password": victim.password, "totp": victim.code()})),
    );
    assert_eq!(status, 200, "{body}");
    let unlocked = audit(&server, "user.unlock");
    assert_eq!(unlocked.last().unwrap()["actor"], "ca-server (local)");
}

/// Finding 6: a user name with terminal escapes and a newline, typed at a failed login, comes
/// out of `ca-cli audit list` escaped, and is stored as a hash and a short escaped form.
#[test]
fn terminal_escapes_in_the_audit_log_come_out_escaped() {
    let server = Server::start(Backend::Sqlite, &[]);
    server.login(&server.admin);
    let forged = "\u{1b}[2J\u{1b}[HAUDIT OK - no events\u{1b}[8m\nforged  row";
    let (status, _) = server.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": forged, "password": "whatever it is", "totp": "123456"})),
    );
    assert_eq!(status, 401);
    let entry = audit(&server, "login.failed").pop().unwrap();
    assert_eq!(entry["actor"], "(unknown user)");
    assert!(entry["target"].as_str().unwrap().starts_with("unknown:"));
    let name = entry["details"]["name"].as_str().unwrap();
    assert!(!name.contains('\u{1b}') && !name.contains('\n'), "{name:?}");
    let home = server.dir.path().join("cli-admin");
    server.cli_login(&home, &server.admin);
    let run = server.cli(&home, &["audit", "list", "--action", "login.failed"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        !run.stdout.contains('\u{1b}'),
        "no escape reaches the terminal: {:?}",
        run.stdout
    );
    assert!(
        !run.stdout.lines().any(|l| l.starts_with("forged")),
        "no forged row: {}",
        run.stdout
    );
    assert!(run.stdout.contains("(unknown user)"), "{}", run.stdout);
}

/// Finding 7: disabling a vendor cancels their pending request (audited) and it cannot be
/// approved; a maintenance window may not start two years ahead.
#[test]
fn disabled_requesters_requests_are_cancelled_and_windows_are_bounded() {
    let server = Server::start(Backend::Sqlite, &[]);
    server.login(&server.admin);
    let alice = server.user("alice", &["security-officer"]);
    let vendor = server.user("acme", &["vendor"]);
    let (status, body) = vendor_request(&server, &vendor, 2 * 365 * 86_400);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("within 30 days"),
        "{body}"
    );
    let (status, body) = vendor_request(&server, &vendor, 0);
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let (status, body) = server.call(
        "POST",
        "/api/v1/users/acme/disable",
        Some(&server.admin.token()),
        Some(json!({"totp": server.admin.code(), "comment": "contract ended"})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&alice.token()),
        Some(json!({"totp": alice.code()})),
    );
    assert_eq!(status, 409, "{body}");
    let (_, view) = server.call(
        "GET",
        &format!("/api/v1/requests/{id}"),
        Some(&alice.token()),
        None,
    );
    assert_eq!(view["status"], "cancelled", "{view}");
    let cancelled = audit(&server, "request.cancel");
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0]["target"], id.as_str());
}

/// Finding 2: approvers see the decoded CSR with what to notice; a vendor cannot ask for the
/// group's organization or an e-mail outside its own domain; profiles carry distinct policies.
#[test]
fn approvers_see_the_subject_and_vendors_are_bound_to_their_account() {
    let server = Server::start(
        Backend::Sqlite,
        &[("MAMORI_GROUP_DOMAINS", "hospital.example")],
    );
    server.login(&server.admin);
    let alice = server.user("alice", &["security-officer"]);
    let vendor = server.user("acme", &["vendor"]);
    let now = ca_core::time::UnixTime::now().as_secs();
    let submit = |subject: &[(rcgen::DnType, &str)], sans: Vec<rcgen::SanType>| {
        let (_key, pem) = csr(subject, sans);
        server.call(
            "POST",
            "/api/v1/requests",
            Some(&vendor.token()),
            Some(json!({"profile": "vendor-maintenance", "csr": pem, "justification": "x",
                "work_order": "WO-2", "not_before": rfc3339(now), "not_after": rfc3339(now + 3600)})),
        )
    };
    let email = |e: &str| rcgen::SanType::Rfc822Name(e.try_into().unwrap());
    // The group's own name as O, and another domain's e-mail, are refused outright.
    let (status, body) = submit(
        &[
            (OrganizationName, "Mamori Hospital Group"),
            (CommonName, "Security Officer"),
        ],
        vec![],
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("Acme Medical"),
        "{body}"
    );
    let (status, body) = submit(
        &[(OrganizationName, "Acme Medical"), (CommonName, "eng")],
        vec![email("director@hospital.example")],
    );
    assert_eq!(status, 400, "{body}");
    // A lookalike of the admin account goes through to review, flagged.
    let (status, body) = submit(
        &[
            (OrganizationName, "Acme Medical"),
            (CommonName, "\u{430}dmin"),
        ],
        vec![email("eng@acme.example")],
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let (status, view) = server.call(
        "GET",
        &format!("/api/v1/requests/{id}"),
        Some(&alice.token()),
        None,
    );
    assert_eq!(status, 200, "{view}");
    let csr = &view["csr"];
    assert!(
        csr["subject"].as_str().unwrap().contains("Acme Medical"),
        "{csr}"
    );
    assert_eq!(csr["sans"][0], "email:eng@acme.example");
    assert_eq!(csr["key"], "ECDSA P-256");
    let codes: Vec<&str> = csr["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"mixed-scripts"), "{codes:?}");
    assert!(codes.contains(&"matches-account"), "{codes:?}");
    assert!(codes.contains(&"outside-group-domain"), "{codes:?}");
    // The CLI shows it to the officer.
    let home = server.dir.path().join("cli-alice");
    server.cli_login(&home, &alice);
    let run = server.cli(&home, &["request", "show", &id]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("主体名") && run.stdout.contains("O=Acme Medical"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("CHECK [matches-account]"),
        "{}",
        run.stdout
    );
}

/// Saves the server's signed checkpoints as an auditor would (after signing one now) and checks
/// the chain against them through the real CLI; returns the file and the checkpointed entry.
fn keep_checkpoints(server: &Server, home: &std::path::Path) -> (std::path::PathBuf, u64) {
    let run = server.cli(home, &["audit", "checkpoint"]);
    assert_eq!(run.code, 0, "{run:?}");
    let file = home.join("checkpoints.json");
    let run = server.cli(
        home,
        &["audit", "checkpoints", "--out", file.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = server.cli(
        home,
        &["audit", "verify", "--checkpoints", file.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("audit chain intact"), "{}", run.stdout);
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let seq = kept["checkpoints"].as_array().unwrap().last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    (file, seq)
}

/// Finding 4, first half: cutting the tail off the audit log is detected against a checkpoint
/// the auditor keeps, and by the server's own verify while its checkpoints are there.
#[test]
fn audit_tail_truncation_is_detected_against_a_checkpoint() {
    let server = Server::start(Backend::Sqlite, &[]);
    server.login(&server.admin);
    let auditor = server.user("audit", &["auditor"]);
    server.user("alice", &["security-officer"]);
    let home = server.dir.path().join("cli-audit");
    server.cli_login(&home, &auditor);
    let (file, seq) = keep_checkpoints(&server, &home);
    // The checkpoint is public, with the key that signed it.
    let published: Value = server.public_get("/audit/checkpoints").json().unwrap();
    assert!(published["audit_key"]
        .as_str()
        .unwrap()
        .contains("PUBLIC KEY"));
    // Delete the last two entries the checkpoint covers (an approval and a login, say).
    server.sql(&format!("DELETE FROM audit_log WHERE seq >= {}", seq - 1));
    let run = server.cli(
        &home,
        &["audit", "verify", "--checkpoints", file.to_str().unwrap()],
    );
    assert_eq!(run.code, 6, "{run:?}");
    assert!(run.stderr.contains(&format!("{seq}")), "{}", run.stderr);
    let run = server.cli(&home, &["audit", "verify"]);
    assert_eq!(
        run.code, 6,
        "the server's stored checkpoint catches it too: {run:?}"
    );
}

/// Finding 4, second half: rewriting an entry's actor and recomputing every hash after it,
/// with the database's checkpoints deleted as well, still fails against the auditor's copy.
#[test]
fn consistent_audit_rewrite_is_detected_against_a_checkpoint() {
    let mut server = Server::start(Backend::Sqlite, &[]);
    server.login(&server.admin);
    let auditor = server.user("audit", &["auditor"]);
    server.user("alice", &["security-officer"]);
    let home = server.dir.path().join("cli-audit");
    server.cli_login(&home, &auditor);
    let (file, _) = keep_checkpoints(&server, &home);
    let (status, entries) = server.call(
        "GET",
        "/api/v1/audit?after=0&limit=1000",
        Some(&auditor.token()),
        None,
    );
    assert_eq!(status, 200);
    let entries = entries.as_array().unwrap().clone();
    server.kill();
    assert_eq!(
        server.query("SELECT max(seq) FROM audit_log"),
        entries.len().to_string()
    );
    // The attacker rewrites who created alice, and recomputes the chain from there on.
    let victim = entries
        .iter()
        .position(|e| e["action"] == "user.create" && e["target"] == "alice")
        .unwrap();
    let mut prev = entries[victim]["prev_hash"].as_str().unwrap().to_string();
    for (i, entry) in entries.iter().enumerate().skip(victim) {
        let actor = if i == victim {
            "mallory".to_string()
        } else {
            entry["actor"].as_str().unwrap().to_string()
        };
        let record = ca_core::audit::AuditRecord {
            seq: entry["seq"].as_u64().unwrap(),
            at: entry["at_unix"].as_u64().unwrap(),
            actor: actor.clone(),
            action: entry["action"].as_str().unwrap().to_string(),
            target: entry["target"].as_str().unwrap().to_string(),
            details: entry["details"].to_string(),
        };
        let hash = ca_core::audit::entry_hash(&prev, &record);
        server.sql(&format!(
            "UPDATE audit_log SET actor = '{actor}', prev_hash = '{prev}', hash = '{hash}' WHERE seq = {}",
            record.seq
        ));
        prev = hash;
    }
    server.sql("DELETE FROM audit_checkpoints");
    server.restart();
    // The chain alone is consistent: the server's verify, without its checkpoints, passes.
    let run = server.cli(&home, &["audit", "verify"]);
    assert_eq!(
        run.code, 0,
        "a consistent rewrite fools the chain alone: {run:?}"
    );
    // The auditor's checkpoint does not.
    let run = server.cli(
        &home,
        &["audit", "verify", "--checkpoints", file.to_str().unwrap()],
    );
    assert_eq!(run.code, 6, "{run:?}");
    assert!(run.stderr.contains("rewritten"), "{}", run.stderr);
}

/// Finding 3: one administrator, holding admin and security-officer, tries every path to a
/// two-approval certificate alone — changing their own roles, creating a second officer
/// account, resetting another officer's credentials, re-enabling a dormant account, approving
/// their own account changes, voting twice — and each is refused. The four-eyes path with a
/// second person works, and the accounts it makes or resets cannot approve during cooling-off
/// (one day, as in production). Nothing the admin holds alone lets them sign in as anyone else.
#[test]
fn one_admin_cannot_get_a_two_approval_certificate_alone() {
    let server = Server::start(
        Backend::Sqlite,
        &[
            ("MAMORI_APPROVAL_COOLING_OFF_SECS", "86400"),
            ("MAMORI_LOGIN_ATTEMPTS_PER_MINUTE", "1000"),
        ],
    );
    server.login(&server.admin);
    server.login(&server.officer);
    let admin = &server.admin;
    // Colleagues from before the admin turned rogue, past their cooling-off.
    let bob = server.user("bob", &["security-officer"]);
    let vendor = server.user("acme", &["vendor"]);
    let _dora = server.user("dora", &["security-officer"]);
    server.sql("UPDATE users SET credentials_set_at = 0");
    server.sql("UPDATE users SET disabled = TRUE WHERE username = 'dora'");
    // A code the server never checks: every refusal below comes before the step-up.
    let no_code = json!({"totp": "000000", "comment": "alone"});
    let refused = |status: u16, body: &Value, words: &str| {
        assert_eq!(status, 403, "{body}");
        assert!(
            body["detail"].as_str().unwrap_or_default().contains(words),
            "{words}: {body}"
        );
    };

    // 1. Their own roles: refused outright.
    let (status, body) = server.call(
        "PUT",
        "/api/v1/users/admin/roles",
        Some(&admin.token()),
        Some(json!({"roles": ["admin", "security-officer", "vendor"], "totp": "000000"})),
    );
    refused(status, &body, "own account");

    // 2. A second officer account: asking works, approving it themselves does not, and the
    //    account does not exist until someone else approves.
    let (status, sock) = server.call(
        "POST",
        "/api/v1/users",
        Some(&admin.token()),
        Some(json!({"username": "sock", "roles": ["security-officer"], "totp": admin.code(), "comment": "new officer"})),
    );
    assert_eq!(status, 202, "{sock}");
    assert_eq!(sock["status"], "pending", "{sock}");
    let sock_id = sock["id"].as_str().unwrap().to_string();
    let admins_half = sock["enrolment_code_part"].as_str().unwrap().to_string();
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/account-changes/{sock_id}/approve"),
        Some(&admin.token()),
        Some(no_code.clone()),
    );
    refused(status, &body, "own request");
    let (_, users) = server.call("GET", "/api/v1/users", Some(&admin.token()), None);
    assert!(
        !users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "sock"),
        "{users}"
    );
    // The admin's half alone enrols nobody, before or after a second person approves.
    let enrol = |name: &str, code: &str| {
        server.call(
            "POST",
            "/api/v1/enrol",
            None,
            Some(json!({"username": name, "code": code, "new_password": "a password of my own"})),
        )
    };
    assert_eq!(enrol("sock", &format!("{admins_half}-00000-00000")).0, 401);
    let (status, applied) = server.call(
        "POST",
        &format!("/api/v1/account-changes/{sock_id}/approve"),
        Some(&server.officer.token()),
        Some(json!({"totp": server.officer.code(), "comment": "checked the roster"})),
    );
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["status"], "applied", "{applied}");
    let officers_half = applied["enrolment_code_part"].as_str().unwrap().to_string();
    assert_ne!(admins_half, officers_half);
    for guess in [
        format!("{admins_half}-00000-00000"),
        admins_half.clone(),
        format!("{officers_half}-{admins_half}"),
    ] {
        let (status, body) = enrol("sock", &guess);
        assert_eq!(status, 401, "{guess}: {body}");
    }
    let (_, users) = server.call("GET", "/api/v1/users", Some(&admin.token()), None);
    let listed = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "sock")
        .unwrap();
    assert_eq!(listed["enrolment_pending"], true, "{listed}");
    // With both halves (the two people together) the holder enrols, and the new account is
    // in cooling-off.
    let sock = server.enrol("sock", &format!("{admins_half}-{officers_half}"));

    // 3. Bob's credentials: the admin asks for a reset, cannot approve it, and Bob cannot
    //    approve the change to his own account.
    let (status, reset) = server.call(
        "POST",
        "/api/v1/users/bob/reset",
        Some(&admin.token()),
        Some(json!({"totp": admin.code(), "comment": "lost phone"})),
    );
    assert_eq!(status, 202, "{reset}");
    let reset_id = reset["id"].as_str().unwrap().to_string();
    let reset_half = reset["enrolment_code_part"].as_str().unwrap().to_string();
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/account-changes/{reset_id}/approve"),
        Some(&admin.token()),
        Some(no_code.clone()),
    );
    refused(status, &body, "own request");
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/account-changes/{reset_id}/approve"),
        Some(&bob.token()),
        Some(no_code.clone()),
    );
    refused(status, &body, "own account");
    // Until someone else approves, Bob signs in as before.
    server.login(&bob);

    // 4. A dormant officer account: enabling it needs another person too.
    let (status, enable) = server.call(
        "POST",
        "/api/v1/users/dora/enable",
        Some(&admin.token()),
        Some(json!({"totp": admin.code(), "comment": "back"})),
    );
    assert_eq!(status, 202, "{enable}");
    let (status, body) = server.call(
        "POST",
        &format!(
            "/api/v1/account-changes/{}/approve",
            enable["id"].as_str().unwrap()
        ),
        Some(&admin.token()),
        Some(no_code.clone()),
    );
    refused(status, &body, "own request");
    let (status, _) = server.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "dora", "password": _dora.password, "totp": _dora.code()})),
    );
    assert_eq!(status, 401, "dora stays disabled");

    // 5. The certificate itself: the admin's officer role is one vote of two, once.
    let (status, body) = vendor_request(&server, &vendor, 0);
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&admin.token()),
        Some(json!({"totp": admin.code()})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&admin.token()),
        Some(no_code.clone()),
    );
    assert_eq!(status, 409, "one vote per approver: {body}");
    // The account made under four eyes is in cooling-off.
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&sock.token()),
        Some(no_code.clone()),
    );
    refused(status, &body, "approval_cooling_off_secs");
    // Once a second person approves Bob's reset, Bob's old credentials stop working and his
    // enrolment needs the approver's half as well as the admin's.
    let (status, applied) = server.call(
        "POST",
        &format!("/api/v1/account-changes/{reset_id}/approve"),
        Some(&server.officer.token()),
        Some(json!({"totp": server.officer.code()})),
    );
    assert_eq!(status, 200, "{applied}");
    let (status, _) = server.call("GET", "/api/v1/me", Some(&bob.token()), None);
    assert_eq!(status, 401, "a reset ends Bob's sessions");
    let (status, _) = server.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "bob", "password": bob.password, "totp": bob.code()})),
    );
    assert_eq!(status, 401, "no sign-in while the enrolment is pending");
    assert_eq!(enrol("bob", &format!("{reset_half}-00000-00000")).0, 401);
    let second = applied["enrolment_code_part"].as_str().unwrap();
    let bob = server.enrol("bob", &format!("{reset_half}-{second}"));
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&bob.token()),
        Some(no_code.clone()),
    );
    refused(status, &body, "approval_cooling_off_secs");
    let (_, view) = server.call(
        "GET",
        &format!("/api/v1/requests/{id}"),
        Some(&admin.token()),
        None,
    );
    assert_eq!(view["status"], "pending", "{view}");
    assert_eq!(view["approvals"], 1, "{view}");
    // Every refusal is on the audit trail, and each applied change names both people.
    let refusals = audit(&server, "security.refused");
    assert!(refusals.len() >= 7, "{refusals:?}");
    let created = audit(&server, "user.create");
    let sock_entry = created.iter().find(|e| e["target"] == "sock").unwrap();
    assert_eq!(sock_entry["actor"], "officer", "{sock_entry}");
    assert_eq!(
        sock_entry["details"]["requested_by"], "admin",
        "{sock_entry}"
    );
}

/// Enrolment codes cannot be guessed: the fifth wrong code voids the enrolment, after which
/// even the right code fails; an expired code fails; each failure is audited.
#[test]
fn enrolment_codes_cannot_be_guessed() {
    let server = Server::start(
        Backend::Sqlite,
        &[("MAMORI_LOGIN_ATTEMPTS_PER_MINUTE", "1000")],
    );
    server.login(&server.admin);
    let add = |name: &str| {
        let out = server.ca_server(&[
            "user",
            "add",
            "--username",
            name,
            "--roles",
            "auditor",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value: Value = serde_json::from_slice(&out.stdout).unwrap();
        value["enrolment_code"].as_str().unwrap().to_string()
    };
    let enrol = |name: &str, code: &str| {
        server
            .call(
                "POST",
                "/api/v1/enrol",
                None,
                Some(
                    json!({"username": name, "code": code, "new_password": "a password of my own"}),
                ),
            )
            .0
    };
    let code = add("vic");
    for _ in 0..5 {
        assert_eq!(enrol("vic", "ABCDE-FGHJK-MNPQR-STVWX"), 401);
    }
    assert_eq!(enrol("vic", &code), 401, "void after five wrong codes");
    let failed = audit(&server, "user.enrol_failed");
    assert_eq!(failed.len(), 5, "{failed:?}");
    assert_eq!(failed.last().unwrap()["details"]["void"], true);
    // Expired: the code's time is set back past its validity.
    let code = add("walt");
    server.sql("UPDATE enrolments SET expires_at = 1");
    assert_eq!(enrol("walt", &code), 401, "expired");
    // The server-side reset gives a new code that works.
    let out = server.ca_server(&["user", "reset", "--username", "walt", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: Value = serde_json::from_slice(&out.stdout).unwrap();
    server.enrol("walt", value["enrolment_code"].as_str().unwrap());
    assert!(
        metric(
            &server,
            "mamori_security_refusals_total{type=\"enrolment\"}"
        ) >= 7.0
    );
}
