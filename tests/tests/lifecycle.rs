//! Hospital life around certificates (issue 25): vendors' one-day certificates that need no
//! revocation (noRevAvail, RFC 9608) under a per-organisation limit, with the monthly vendor
//! export; break-glass issuance and its review; leavers from an HR export.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use mamori_e2e::{artifact, csr, rfc3339, Backend, Server};
use openssl::x509::X509;
use rcgen::DnType::{CommonName, OrganizationName};
use serde_json::json;

/// A vendor-day certificate: two officers approve a window of a day or less; the certificate
/// carries noRevAvail and no CRL or OCSP pointer (openssl's reading), verifies under the root,
/// and is never revoked or held (409, saying what to do instead). A longer window is refused,
/// and so is a second request while the organisation is at its limit (here 1). The month's
/// vendor export (`ca-cli vendor export`) lists the certificate with its approvers.
#[test]
fn vendor_day_certificates_carry_no_rev_avail_and_are_never_revoked() {
    let policies = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(mamori_e2e::workspace_root().join("policies")).unwrap() {
        let entry = entry.unwrap();
        let text = std::fs::read_to_string(entry.path()).unwrap().replace(
            "max_valid_per_organization = 5",
            "max_valid_per_organization = 1",
        );
        std::fs::write(policies.path().join(entry.file_name()), text).unwrap();
    }
    let server = Server::start(
        Backend::Sqlite,
        &[("MAMORI_POLICIES_DIR", policies.path().to_str().unwrap())],
    );
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
    let (status, body) = submit(10);
    assert_eq!(status, 409, "Acme Medical is at its limit of one: {body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_valid_per_organization"),
        "{body}"
    );
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

    // The month's export (Japan time), as the access-log review reads it.
    let month = std::process::Command::new("date")
        .env("TZ", "Asia/Tokyo")
        .arg("+%Y-%m")
        .output()
        .unwrap();
    let month = String::from_utf8(month.stdout).unwrap().trim().to_string();
    let auditor = server.user("auditor", &["auditor"]);
    let home = server.path().join("auditor-cli");
    server.cli_login(&home, &auditor);
    let out = server.path().join("vendors.csv");
    let run = server.cli(
        &home,
        &[
            "vendor",
            "export",
            "--month",
            &month,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let csv = std::fs::read_to_string(&out).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    for want in [
        serial.as_str(),
        "Acme Medical",
        "acme-vendor",
        "WO-2026-1202",
        "alice bob",
        "vendor-day",
    ] {
        assert!(csv.contains(want), "{want}: {csv}");
    }
    let (status, _) = server.call(
        "GET",
        &format!("/api/v1/vendor-certificates?month={month}"),
        Some(&vendor.token()),
        None,
    );
    assert_eq!(status, 403, "vendors do not read the export");
}

/// Break-glass: one officer issues a staff certificate alone with `ca-cli break-glass issue`
/// (TOTP, a stated emergency): 8 hours at most, every other officer's notice queued. The
/// issuer cannot review their own; each officer reviews once; two confirmations close it. A
/// second one judged misuse is revoked at once (privilegeWithdrawn, OCSP says revoked). A
/// profile without `[break_glass]`, a vendor, and a one-word emergency are refused.
#[test]
fn break_glass_is_issued_alone_reviewed_by_two_others_and_revoked_on_misuse() {
    let server = Server::start(
        Backend::Sqlite,
        &[
            // A mailbox and an SMTP server that is not there: notices are queued (and retried),
            // which is what this test looks at; delivery is notify.rs's.
            (
                "MAMORI_NOTIFY_SECURITY_MAILBOX",
                "pki-team@hospital.example",
            ),
            ("MAMORI_SMTP_HOST", "localhost"),
            ("MAMORI_SMTP_PORT", "9"),
            ("MAMORI_SMTP_FROM", "mamori@hospital.example"),
        ],
    );
    server.login(&server.admin);
    let alice = server.user("alice", &["security-officer"]);
    let bob = server.user("bob", &["security-officer"]);
    let carol = server.user("carol", &["security-officer"]);
    // Each person gets three fresh TOTP codes per 30 s (sign-in takes one): dave issues the
    // second one and erin reviews it, so nobody waits for a new window.
    let dave = server.user("dave", &["security-officer"]);
    let erin = server.user("erin", &["security-officer"]);
    let vendor = server.user("acme-vendor", &["vendor"]);
    server.set_contact(&bob, "bob@hospital.example");
    server.set_contact(&carol, "carol@hospital.example");
    let staff_csr = |cn: &str, number: &str, email: &str| {
        csr(
            &[
                (CommonName, cn),
                (rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]), number),
            ],
            vec![rcgen::SanType::Rfc822Name(email.try_into().unwrap())],
        )
        .1
    };
    let home = server.path().join("alice-cli");
    server.cli_login(&home, &alice);
    let csr_path = server.path().join("dr-sato.csr");
    std::fs::write(
        &csr_path,
        staff_csr("Taro Sato", "STAFF-0420", "taro.sato@hospital.example"),
    )
    .unwrap();
    let chain_path = server.path().join("dr-sato.pem");
    let code = alice.code();
    let issued = server.cli(
        &home,
        &[
            "--json",
            "break-glass",
            "issue",
            "--profile",
            "staff",
            "--csr",
            csr_path.to_str().unwrap(),
            "--emergency",
            "ER night shift: Dr Sato's card reader failed, no second officer reachable",
            "--totp",
            &code,
            "--out",
            chain_path.to_str().unwrap(),
        ],
    );
    assert_eq!(issued.code, 0, "{issued:?}\n{}", server.logs());
    let view: serde_json::Value = serde_json::from_str(&issued.stdout).unwrap();
    assert_eq!(view["status"], "issued", "{view}");
    let id = view["id"].as_str().unwrap().to_string();
    let leaf = X509::stack_from_pem(&std::fs::read(&chain_path).unwrap()).unwrap()[0].clone();
    let lifetime = leaf.not_before().diff(leaf.not_after()).unwrap();
    assert!(
        lifetime.days == 0 && lifetime.secs <= 8 * 3600 + 60,
        "{lifetime:?}"
    );
    artifact("break-glass-staff", &chain_path);
    // Every other officer's notice and the mailbox's are queued with the issuance.
    let queued = server.query(&format!(
        "SELECT recipient FROM notifications WHERE event_key = 'break_glass.issued:{id}' ORDER BY recipient"
    ));
    assert_eq!(
        queued.lines().collect::<Vec<_>>(),
        [
            "bob@hospital.example",
            "carol@hospital.example",
            "pki-team@hospital.example"
        ]
    );

    // Refusals made before the second factor is read get a dummy code (Person::code() gives
    // each person three fresh codes per 30 s).
    let review_with =
        |who: &mamori_e2e::Person, id: &str, verdict: &str, comment: &str, code: String| {
            server.call(
                "POST",
                &format!("/api/v1/break-glass/{id}/review"),
                Some(&who.token()),
                Some(json!({"verdict": verdict, "comment": comment, "totp": code})),
            )
        };
    let review = |who: &mamori_e2e::Person, id: &str, verdict: &str, comment: &str| {
        review_with(who, id, verdict, comment, who.code())
    };
    let (status, body) = review_with(&alice, &id, "confirm", "", "000000".into());
    assert_eq!(status, 403, "the issuer cannot review their own: {body}");
    let (status, body) = review(&bob, &id, "confirm", "called the ER lead");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "awaiting-review");
    let (status, body) = review_with(&bob, &id, "confirm", "again", "000000".into());
    assert_eq!(status, 409, "one review per officer: {body}");
    let (status, body) = review(&carol, &id, "confirm", "badge log matches");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "confirmed", "{body}");
    assert_eq!(body["reviews"].as_array().unwrap().len(), 2);

    // A second one, judged misuse: revoked at once.
    let (status, body) = server.call(
        "POST",
        "/api/v1/break-glass",
        Some(&dave.token()),
        Some(json!({"profile": "staff", "csr": staff_csr("Jiro Suzuki", "STAFF-0777", "jiro.suzuki@hospital.example"),
            "emergency": "said to be urgent, no ticket", "totp": dave.code()})),
    );
    assert_eq!(status, 201, "{body}");
    let (second, serial) = (
        body["id"].as_str().unwrap().to_string(),
        body["serial"].as_str().unwrap().to_string(),
    );
    let (status, body) = review_with(&erin, &second, "misuse", "", "000000".into());
    assert_eq!(status, 400, "misuse needs a comment: {body}");
    let (status, body) = review(&erin, &second, "misuse", "no ticket, no emergency");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "misuse");
    assert_eq!(
        server
            .query(&format!(
                "SELECT status, revocation_reason FROM certificates WHERE serial = '{serial}'"
            ))
            .trim(),
        "revoked|privilege-withdrawn"
    );
    // The officers' misuse alert names whose certificate it was.
    let alert = server.query(&format!(
        "SELECT body FROM notifications WHERE event_key LIKE 'break_glass.misuse:{second}%' LIMIT 1"
    ));
    assert!(alert.contains("Jiro Suzuki"), "{alert}");

    // Refusals: a profile without break-glass, a vendor, a one-word emergency.
    for (who, profile, emergency, want) in [
        (
            &alice,
            "ambulance-terminal",
            "ambulance 7 terminal died",
            403,
        ),
        (&vendor, "staff", "ER night shift emergency", 403),
        (&alice, "staff", "urgent", 400),
    ] {
        let (status, body) = server.call(
            "POST",
            "/api/v1/break-glass",
            Some(&who.token()),
            Some(json!({"profile": profile, "csr": staff_csr("Hana Ito", "STAFF-0101", "hana.ito@hospital.example"),
                "emergency": emergency, "totp": "000000"})),
        );
        assert_eq!(status, want, "{profile} {emergency}: {body}");
    }

    let listed = server.cli(&home, &["break-glass", "list"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    assert!(
        listed.stdout.contains("confirmed") && listed.stdout.contains("misuse"),
        "{}",
        listed.stdout
    );
    let audit = server.query("SELECT action FROM audit_log WHERE action LIKE '%break_glass%'");
    assert!(
        audit.contains("certificate.break_glass") && audit.contains("break_glass.review"),
        "{audit}"
    );
}

/// A leaver from an HR export: `ca-cli staff leave --csv` first as a dry run (a report,
/// nothing changed), then for real: every certificate with the staff id or the e-mail address
/// revoked (affiliationChanged), the account disabled, a colleague's certificate untouched.
#[test]
fn leavers_from_an_hr_csv_are_revoked_and_disabled_after_a_dry_run() {
    let server = Server::start(Backend::Sqlite, &[]);
    server.login(&server.admin);
    // Certificates for the leaver (two) and a colleague, issued by break-glass so that each
    // needs one officer and one code.
    let officers: Vec<_> = ["officer1", "officer2", "officer3"]
        .iter()
        .map(|n| server.user(n, &["security-officer"]))
        .collect();
    let leaver_account = server.user("tsato", &["staff-requester"]);
    let mut serials = Vec::new();
    for (officer, (cn, id, email)) in officers.iter().zip([
        ("Taro Sato", "STAFF-0420", "taro.sato@hospital.example"),
        ("Taro Sato", "STAFF-0420", "taro.sato@hospital.example"),
        ("Hana Ito", "STAFF-0101", "hana.ito@hospital.example"),
    ]) {
        let pem = csr(
            &[
                (CommonName, cn),
                (rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]), id),
            ],
            vec![rcgen::SanType::Rfc822Name(email.try_into().unwrap())],
        )
        .1;
        let (status, body) = server.call(
            "POST",
            "/api/v1/break-glass",
            Some(&officer.token()),
            Some(json!({"profile": "staff", "csr": pem, "emergency": "ward 5 night shift card failure",
                "totp": officer.code()})),
        );
        assert_eq!(status, 201, "{body}");
        serials.push(body["serial"].as_str().unwrap().to_string());
    }
    let csv_path = server.path().join("leavers.csv");
    std::fs::write(
        &csv_path,
        "staff_id,name,email,username\nSTAFF-0420,\"Sato, Taro\",taro.sato@hospital.example,tsato\n",
    )
    .unwrap();
    let home = server.path().join("admin-cli");
    server.cli_login(&home, &server.admin);
    let status_of = |serial: &str| {
        server
            .query(&format!(
                "SELECT status, coalesce(revocation_reason, '') FROM certificates WHERE serial = '{serial}'"
            ))
            .trim()
            .to_string()
    };
    let dry_report = server.path().join("dry.csv");
    let dry = server.cli(
        &home,
        &[
            "staff",
            "leave",
            "--csv",
            csv_path.to_str().unwrap(),
            "--dry-run",
            "--report",
            dry_report.to_str().unwrap(),
        ],
    );
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stderr.contains("[1/1]") && dry.stderr.contains("would be revoked"),
        "{}",
        dry.stderr
    );
    let report = std::fs::read_to_string(&dry_report).unwrap();
    assert_eq!(report.matches("would-revoke").count(), 2, "{report}");
    assert!(report.contains("would-disable"), "{report}");
    assert!(
        serials.iter().all(|s| status_of(s) == "valid|"),
        "a dry run changes nothing"
    );

    // An officer who is not an admin cannot disable accounts (refused before the code is read).
    let (status, body) = server.call(
        "POST",
        "/api/v1/staff/leave",
        Some(&officers[0].token()),
        Some(
            json!({"leavers": [{"staff_id": "STAFF-0420", "username": "tsato"}], "totp": "000000"}),
        ),
    );
    assert_eq!(status, 403, "{body}");

    let done_report = server.path().join("done.csv");
    let code = server.admin.code();
    let done = server.cli(
        &home,
        &[
            "staff",
            "leave",
            "--csv",
            csv_path.to_str().unwrap(),
            "--report",
            done_report.to_str().unwrap(),
            "--totp",
            &code,
        ],
    );
    assert_eq!(done.code, 0, "{done:?}");
    assert!(
        done.stderr
            .contains("2 certificate(s) revoked, account disabled"),
        "{}",
        done.stderr
    );
    assert_eq!(status_of(&serials[0]), "revoked|affiliation-changed");
    assert_eq!(status_of(&serials[1]), "revoked|affiliation-changed");
    assert_eq!(status_of(&serials[2]), "valid|", "the colleague keeps hers");
    assert_eq!(
        server
            .query("SELECT disabled FROM users WHERE username = 'tsato'")
            .trim(),
        "1"
    );
    let (status, _) = server.call(
        "GET",
        "/api/v1/requests",
        Some(&leaver_account.token()),
        None,
    );
    assert_eq!(status, 401, "the leaver's sessions ended");
    let report = std::fs::read_to_string(&done_report).unwrap();
    assert_eq!(report.matches(",\"revoked\",").count(), 2, "{report}");
    let audit = server.query("SELECT action FROM audit_log WHERE action = 'staff.leave'");
    assert_eq!(audit.trim(), "staff.leave");
}
