//! The web console in a real browser: Debian's chromium, headless, driven over WebDriver by
//! chromedriver (`mamori_e2e::webdriver`). A vendor pastes a CSR and submits, two officers
//! approve in the browser with fresh TOTP codes, an officer revokes and OCSP says revoked; the
//! pages render in Japanese; a form without this session's CSRF token, or from another origin,
//! is refused; no page can be framed. Screenshots of each page go to
//! `$MAMORI_ARTIFACTS_DIR/screenshots` (or `target/console-screenshots`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use mamori_e2e::webdriver::{missing, Browser};
use mamori_e2e::{issuing_certificate, ocsp_status, workspace_root, Backend, Person, Server};

fn shots_dir() -> std::path::PathBuf {
    match std::env::var_os("MAMORI_ARTIFACTS_DIR") {
        Some(dir) => std::path::PathBuf::from(dir).join("screenshots"),
        None => workspace_root().join("target").join("console-screenshots"),
    }
}

/// Signs `person` in through the sign-in form.
fn sign_in(browser: &Browser, server: &Server, person: &Person) {
    browser.go(&format!("{}/login", server.api_url));
    browser.type_into("#username", &person.username);
    browser.type_into("#password", &person.password);
    browser.type_into("#totp", &person.code());
    browser.click("main button[type=submit]");
    browser.wait_for("Sign out");
}

fn sign_out(browser: &Browser) {
    browser.click("header form button");
    browser.wait_for("name=\"username\"");
}

#[test]
fn officers_approve_and_revoke_in_a_real_browser() {
    if let Some(why) = missing() {
        eprintln!("SKIPPED: the console browser test needs chromium: {why}");
        return;
    }
    let server = Server::start(Backend::Sqlite, &[]);
    let vendor = server.user("acme", &["vendor"]);
    let browser = Browser::start("Asia/Tokyo", "en-US", &shots_dir());

    // No session: every page sends the browser to the sign-in page.
    browser.go(&format!("{}/", server.api_url));
    assert!(browser.url().ends_with("/login"), "{}", browser.url());
    // The browser tells the server its zone once (app.js); from then on times name it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !browser
        .script("return document.cookie;", serde_json::json!([]))
        .as_str()
        .unwrap_or("")
        .contains("mamori_tz=Asia/Tokyo")
    {
        assert!(std::time::Instant::now() < deadline, "app.js set no zone");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    browser.screenshot("01-sign-in");

    // A wrong code is refused with a message, and nothing else happens.
    browser.go(&format!("{}/login", server.api_url));
    browser.type_into("#username", &vendor.username);
    browser.type_into("#password", &vendor.password);
    browser.type_into("#totp", "000000");
    browser.click("main button[type=submit]");
    browser.wait_for("The user name, password or code is wrong.");

    // The vendor makes a key and CSR in the browser (WebCrypto; the key stays in this
    // browser's IndexedDB) and asks for tomorrow 09:00-17:00, Tokyo time.
    sign_in(&browser, &server, &vendor);
    browser.go(&format!("{}/requests/new", server.api_url));
    let tomorrow = ca_core::time::UnixTime::now().as_secs() + 86_400;
    let day = mamori_e2e::rfc3339(tomorrow)[..10].to_string();
    browser.set_value("#profile", "vendor-maintenance");
    browser.type_into("#keygen-o", "Acme Medical");
    browser.type_into("#keygen-cn", "acme-engineer-1");
    browser.type_into("#keygen-email", "eng1@acme.example");
    browser.click("#keygen-button");
    browser.wait_until("document.getElementById('csr').value.length > 0");
    let pem = browser
        .script(
            "return document.getElementById('csr').value;",
            serde_json::json!([]),
        )
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
        "{pem}"
    );
    // openssl reads the browser's CSR and its signature verifies.
    let parsed = openssl::x509::X509Req::from_pem(pem.as_bytes()).expect("openssl parses the CSR");
    assert!(parsed.verify(&parsed.public_key().unwrap()).unwrap());
    browser.type_into("#justification", "CT firmware update");
    browser.type_into("#work_order", "WO-2026-1123");
    browser.set_value("#not_before", &format!("{day}T09:00"));
    browser.set_value("#not_after", &format!("{day}T17:00"));
    browser.screenshot("02-new-request");
    browser.click("main form button[type=submit]");
    let html = browser.wait_for("Decisions");
    let url = browser.url();
    let id = url.rsplit('/').next().unwrap().to_string();
    assert!(id.starts_with("req-"), "{url}");
    assert!(
        html.contains(&format!("{day} 09:00 JST (Asia/Tokyo)")),
        "{html}"
    );
    assert!(html.contains("8 h 0 min"), "{html}");
    // Nobody approves their own request: no decision form for the requester.
    assert!(!html.contains("name=\"verdict\""), "{html}");
    sign_out(&browser);

    // Two officers approve, each in the browser with a fresh code.
    for (n, officer) in [&server.officer, &server.admin].into_iter().enumerate() {
        sign_in(&browser, &server, officer);
        let dashboard = browser.wait_for("Waiting for your approval");
        assert!(
            dashboard.contains(&id),
            "the dashboard lists the request: {dashboard}"
        );
        if n == 0 {
            browser.screenshot("03-dashboard");
        }
        browser.go(&format!("{}/requests/{id}", server.api_url));
        let detail = browser.wait_for("The CSR, decoded");
        for shown in [
            "acme-engineer-1",
            "Acme Medical",
            "WO-2026-1123",
            "CT firmware update",
        ] {
            assert!(detail.contains(shown), "{shown} on the request page");
        }
        if n == 0 {
            browser.screenshot("04-request");
        }
        browser.type_into("#totp", &officer.code());
        browser.type_into("#comment", "WO checked");
        browser.click("button[value=approve]");
        browser.wait_for(&format!("{} / 2", n + 1));
        if n == 0 {
            sign_out(&browser);
        }
    }
    let issued = browser.wait_for("The issued certificate");
    assert!(issued.contains("issued"), "{issued}");

    // The certificate page: who asked and approved; revoke with a reason and a fresh code.
    browser.click("main a[href^='/certificates/']");
    let certificate = browser.wait_for("Request and approvals");
    assert!(
        certificate.contains("officer") && certificate.contains("acme"),
        "{certificate}"
    );
    assert!(
        certificate.contains("Certificate chain") && certificate.contains("CN=Mamori Root CA"),
        "the chain up to the root: {certificate}"
    );
    browser.screenshot("05-certificate");
    let serial = browser.url().rsplit('/').next().unwrap().to_string();
    let session = browser.cookie("mamori_session").expect("a session cookie");
    let csrf = certificate
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();

    // A form without this session's CSRF token, or from another origin, changes nothing.
    let post = |token: &str, origin: Option<&str>| {
        let mut request = server
            .client
            .post(format!(
                "{}/certificates/issuing/{serial}/status",
                server.api_url
            ))
            .header("cookie", format!("mamori_session={session}"))
            .form(&[
                ("action", "hold"),
                ("totp", "000000"),
                ("comment", "forged"),
                ("csrf", token),
            ]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send().unwrap()
    };
    assert_eq!(post("", None).status().as_u16(), 403);
    assert_eq!(
        post("0123456789abcdef0123456789abcdef", None)
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        post(&csrf, Some("https://evil.example")).status().as_u16(),
        403
    );
    // Every other form of the console is refused the same way without this session's token
    // (`web::form::signed_in_form` checks them all): 403, and nothing done — the session the
    // forged logout names still works below.
    let forged = [
        (
            "/requests/new",
            vec![
                ("profile", "staff"),
                ("csr", "forged"),
                ("justification", "forged"),
                ("work_order", ""),
                ("not_before", ""),
                ("not_after", ""),
            ],
        ),
        (
            "/requests/0000000000000000/decide",
            vec![("verdict", "approve"), ("totp", "000000"), ("comment", "")],
        ),
        (
            "/users",
            vec![("username", "mallory"), ("roles", "security-officer")],
        ),
        (
            "/users/admin/action",
            vec![("action", "disable"), ("totp", "000000")],
        ),
        (
            "/users/changes/1",
            vec![("verdict", "approve"), ("totp", "000000"), ("comment", "")],
        ),
        (
            "/break-glass/1/review",
            vec![("verdict", "approve"), ("totp", "000000"), ("comment", "")],
        ),
        (
            "/password",
            vec![
                ("current_password", "x"),
                ("new_password", "a new password"),
                ("repeat", "a new password"),
            ],
        ),
        ("/logout", vec![]),
    ];
    for (path, mut fields) in forged {
        fields.push(("csrf", "0123456789abcdef0123456789abcdef"));
        let answer = server
            .client
            .post(format!("{}{path}", server.api_url))
            .header("cookie", format!("mamori_session={session}"))
            .form(&fields)
            .send()
            .unwrap();
        assert_eq!(answer.status().as_u16(), 403, "{path}");
    }
    // The API takes no cookie: the console's session is not a bearer token there.
    let api = server
        .client
        .get(format!("{}/api/v1/me", server.api_url))
        .header("cookie", format!("mamori_session={session}"))
        .send()
        .unwrap();
    assert_eq!(api.status().as_u16(), 401);

    browser.set_value("#reason", "key-compromise");
    browser.type_into("#totp", &server.admin.code());
    browser.type_into("#comment", "laptop stolen");
    browser.click("button[value=revoke]");
    let revoked = browser.wait_for("keyCompromise");
    assert!(revoked.contains("revoked"), "{revoked}");
    let der = server
        .client
        .get(format!(
            "{}/api/v1/certificates/issuing/{serial}?format=der",
            server.api_url
        ))
        .bearer_auth({
            server.login(&server.officer);
            server.officer.token()
        })
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let leaf = openssl::x509::X509::from_der(&der).unwrap();
    let issuer = issuing_certificate(&server.public_url);
    assert_eq!(ocsp_status(&server.public_url, &leaf, &issuer), "revoked");

    // Search by SAN-less subject text and by serial.
    browser.go(&format!(
        "{}/certificates?subject=acme-engineer&status=revoked",
        server.api_url
    ));
    let found = browser.wait_for("1 found");
    assert!(found.contains(&serial), "{found}");
    browser.screenshot("06-certificates");

    // Japanese pages.
    browser.go(&format!("{}/lang/ja", server.api_url));
    let ja = browser.wait_for("ダッシュボード");
    assert!(ja.contains("<html lang=\"ja\""), "{ja}");
    assert!(ja.contains("あなたの承認待ち"), "{ja}");
    browser.screenshot("07-dashboard-ja");
    browser.go(&format!("{}/audit", server.api_url));
    let audit = browser.wait_for("ハッシュチェーンは正常です");
    assert!(audit.contains("certificate.revoke"), "{audit}");
    browser.screenshot("08-audit-ja");

    // The vendor, back in the same browser, bundles the key (still only in the browser) and
    // the issued chain as an encrypted PKCS#12; openssl opens it with the passphrase.
    browser.go(&format!("{}/lang/en", server.api_url));
    browser.wait_for("Sign out");
    sign_out(&browser);
    sign_in(&browser, &server, &vendor);
    browser.go(&format!("{}/requests/{id}", server.api_url));
    browser.wait_for("Bundle key and certificate as PKCS#12");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while browser
        .script(
            "return document.getElementById('bundle').hidden;",
            serde_json::json!([]),
        )
        .as_bool()
        .unwrap()
    {
        assert!(std::time::Instant::now() < deadline, "{}", browser.source());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    browser.type_into("#bundle-pass", "a bundle passphrase");
    browser.click("#bundle-button");
    browser.wait_until("!document.getElementById('bundle-link').hidden");
    browser.screenshot("09-pkcs12");
    let p12 = browser.script_async(
        "const done = arguments[arguments.length - 1];
         fetch(document.getElementById('bundle-link').href)
           .then(r => r.arrayBuffer())
           .then(b => { let s = ''; new Uint8Array(b).forEach(x => s += String.fromCharCode(x)); done(btoa(s)); })
           .catch(e => done('error: ' + e));",
        serde_json::json!([]),
    );
    let p12 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(p12.as_str().unwrap())
            .unwrap_or_else(|e| panic!("{p12}: {e}"))
    };
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("acme.p12");
    std::fs::write(&file, &p12).unwrap();
    let opened = std::process::Command::new("openssl")
        .args(["pkcs12", "-in"])
        .arg(&file)
        .args(["-passin", "pass:a bundle passphrase", "-nodes"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&opened.stdout);
    assert!(
        opened.status.success(),
        "openssl pkcs12: {}",
        String::from_utf8_lossy(&opened.stderr)
    );
    assert!(text.contains("-----BEGIN PRIVATE KEY-----"), "{text}");
    assert_eq!(
        text.matches("-----BEGIN CERTIFICATE-----").count(),
        3,
        "leaf, issuing CA, root"
    );
    let key = openssl::pkey::PKey::private_key_from_pem(text.as_bytes()).unwrap();
    let cert = openssl::x509::X509::from_pem(text.as_bytes()).unwrap();
    assert!(
        cert.public_key().unwrap().public_eq(&key),
        "the key is the certificate's"
    );
    assert_eq!(cert, leaf);
    let wrong = std::process::Command::new("openssl")
        .args(["pkcs12", "-in"])
        .arg(&file)
        .args(["-passin", "pass:not the passphrase", "-nodes"])
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "a wrong passphrase opens nothing");

    // Another origin cannot frame the console: in a frame of a page of its own (about:blank,
    // no policy of ours) the browser shows its error page, never the sign-in form.
    browser.go("about:blank");
    browser.script(
        "window.framed = false; const f = document.createElement('iframe');
         f.onload = () => { window.framed = true; }; f.src = arguments[0]; document.body.appendChild(f);",
        serde_json::json!([format!("{}/login", server.api_url)]),
    );
    browser.wait_until("window.framed");
    browser.frame(Some(0));
    let framed = browser.source();
    browser.frame(None);
    assert!(
        !framed.contains("name=\"username\""),
        "the sign-in form rendered inside another origin's frame: {framed}"
    );

    // No page can be framed by another site; nothing inline may run.
    let login = server
        .client
        .get(format!("{}/login", server.api_url))
        .send()
        .unwrap();
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(login.headers()["x-frame-options"], "DENY");
    assert_eq!(login.headers()["cache-control"], "no-store");
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(part), "{cookie}");
    }
}

/// Four eyes in the browser: an admin asks for an account and sees one half of its enrolment
/// code, another officer approves and sees the other; the two halves enrol the new user.
#[test]
fn accounts_are_made_by_two_people_in_the_browser() {
    if let Some(why) = missing() {
        eprintln!("SKIPPED: the console browser test needs chromium: {why}");
        return;
    }
    let server = Server::start(Backend::Sqlite, &[]);
    let browser = Browser::start("UTC", "ja", &shots_dir());
    let half = |browser: &Browser| -> String {
        let html = browser.wait_for("id=\"code-half\"");
        html.split("id=\"code-half\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_string()
    };

    sign_in_as(&browser, &server, &server.admin, "サインアウト");
    browser.go(&format!("{}/users", server.api_url));
    browser.wait_for("ユーザーの追加");
    browser.type_into("#new-username", "nurse-it");
    browser.click("form[action='/users'] input[name=roles][value=staff-requester]");
    browser.type_into("#new-totp", &server.admin.code());
    browser.type_into("#new-comment", "ward 3 HR");
    browser.click("form[action='/users'] button[type=submit]");
    let first = half(&browser);
    browser.screenshot("10-users-ja");
    // The asker cannot approve their own request.
    let page = browser.source();
    assert!(
        page.contains("別の管理者またはセキュリティ責任者の承認待ちです。"),
        "{page}"
    );
    browser.click("header form button");
    browser.wait_for("name=\"username\"");

    sign_in_as(&browser, &server, &server.officer, "サインアウト");
    browser.go(&format!("{}/users", server.api_url));
    browser.wait_for("nurse-it");
    browser.set_value(
        "form[action^='/users/changes/'] input[name=totp]",
        &server.officer.code(),
    );
    browser.click("form[action^='/users/changes/'] button[value=approve]");
    let second = half(&browser);
    assert_ne!(first, second);
    browser.click("header form button");
    browser.wait_for("name=\"username\"");

    // The new user enrols in the browser with both halves and is shown the QR code once.
    browser.go(&format!("{}/enrol", server.api_url));
    browser.type_into("#username", "nurse-it");
    browser.type_into("#first", &first);
    browser.type_into("#second", &second);
    browser.type_into("#new", "nurse password 2026");
    browser.type_into("#repeat", "nurse password 2026");
    browser.click("main button[type=submit]");
    let done = browser.wait_for("id=\"totp-uri\"");
    assert!(
        done.contains("data:image/svg+xml;base64,"),
        "a QR code: {done}"
    );
    browser.screenshot("11-enrolled-ja");
    let uri = done
        .split("id=\"totp-uri\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let nurse = Person::new(
        "nurse-it",
        "nurse password 2026",
        ca_core::totp::TotpSecret::from_base32(&secret).unwrap(),
    );
    // The code is used up: a second enrolment with it fails.
    browser.go(&format!("{}/enrol", server.api_url));
    browser.type_into("#username", "nurse-it");
    browser.type_into("#first", &first);
    browser.type_into("#second", &second);
    browser.type_into("#new", "another password 2026");
    browser.type_into("#repeat", "another password 2026");
    browser.click("main button[type=submit]");
    browser.wait_for("role=\"alert\"");
    sign_in_as(&browser, &server, &nurse, "サインアウト");
    server.login(&nurse);
    let (status, me) = server.call("GET", "/api/v1/me", Some(&nurse.token()), None);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["roles"], serde_json::json!(["staff-requester"]));
}

/// Signs `person` in and waits for `signed_in_text` (the sign-out button in the page language).
fn sign_in_as(browser: &Browser, server: &Server, person: &Person, signed_in_text: &str) {
    browser.go(&format!("{}/login", server.api_url));
    browser.type_into("#username", &person.username);
    browser.type_into("#password", &person.password);
    browser.type_into("#totp", &person.code());
    browser.click("main button[type=submit]");
    browser.wait_for(signed_in_text);
}

/// The sign-in form counts against the same per-address limit as the API's login (one budget
/// for both), and a locked account is told so there too.
#[test]
fn the_sign_in_form_is_limited_like_the_api() {
    let server = Server::start(
        Backend::Sqlite,
        &[("MAMORI_LOGIN_ATTEMPTS_PER_MINUTE", "4")],
    );
    let form = || -> (String, String) {
        let page = server
            .client
            .get(format!("{}/login", server.api_url))
            .send()
            .unwrap();
        let cookie = page.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let html = page.text().unwrap();
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        (cookie, csrf)
    };
    let post = |password: &str| -> (u16, String) {
        let (cookie, csrf) = form();
        let answer = server
            .client
            .post(format!("{}/login", server.api_url))
            .header("cookie", cookie)
            .form(&[
                ("username", "admin"),
                ("password", password),
                ("totp", "000000"),
                ("csrf", &csrf),
            ])
            .send()
            .unwrap();
        (answer.status().as_u16(), answer.text().unwrap())
    };
    // One API attempt and three form attempts use up the minute's four.
    let (status, _) = server.call(
        "POST",
        "/api/v1/login",
        None,
        Some(serde_json::json!({"username": "admin", "password": "wrong", "totp": "000000"})),
    );
    assert_eq!(status, 401);
    for _ in 0..3 {
        let (status, page) = post("wrong password");
        assert_eq!(status, 401, "{page}");
    }
    let (status, page) = post("wrong password");
    assert_eq!(status, 429, "{page}");
    // Even the right password waits: the limit is per address, before any check.
    let (status, _) = post(&server.admin.password);
    assert_eq!(status, 429);
}

/// A device enroller imports terminals in the browser: keys and CSRs made there, live
/// progress, a report and the keys with their certificates as downloads; a re-run skips them.
#[test]
fn devices_are_imported_in_the_browser() {
    if let Some(why) = missing() {
        eprintln!("SKIPPED: the console browser test needs chromium: {why}");
        return;
    }
    let server = Server::start(Backend::Sqlite, &[]);
    let enroller = server.user("amb-it", &["device-enroller"]);
    let browser = Browser::start("UTC", "en-US", &shots_dir());
    let scratch = tempfile::tempdir().unwrap();
    let csv = scratch.path().join("fleet.csv");
    std::fs::write(&csv, "id\n0001\n0002\n0002\nBAD ID\n0003\n").unwrap();
    sign_in(&browser, &server, &enroller);
    let blob = |css: &str| -> String {
        let text = browser.script_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.querySelector(arguments[0]).href).then(r => r.text()).then(done, e => done('error: ' + e));",
            serde_json::json!([css]),
        );
        text.as_str().unwrap().to_string()
    };
    let import = || {
        browser.go(&format!("{}/devices", server.api_url));
        browser.type_into("#csv", csv.to_str().unwrap());
        browser.click("#import-button");
        browser.wait_until("document.getElementById('import').dataset.finished === '1'");
        browser
            .script(
                "return document.getElementById('import-status').textContent;",
                serde_json::json!([]),
            )
            .as_str()
            .unwrap()
            .to_string()
    };

    let status = import();
    assert!(
        status.contains("5 / 5 — issued 3, skipped 0, failed 2"),
        "{status}"
    );
    browser.screenshot("12-devices");
    let report = blob("#import-report");
    assert!(
        report.starts_with("id,status,serial,duplicates,error\n"),
        "{report}"
    );
    assert_eq!(report.matches(",issued,").count(), 3, "{report}");
    assert!(report.contains("repeated in the CSV"), "{report}");
    assert!(report.contains("\"BAD ID\",failed"), "{report}");
    let keys = blob("#import-keys");
    assert_eq!(keys.matches("-----BEGIN PRIVATE KEY-----").count(), 3);
    // Each key belongs to the certificate after it, and that certificate names the device.
    for part in keys.split("# amb-").skip(1) {
        let id = part.lines().next().unwrap().to_string();
        let key = openssl::pkey::PKey::private_key_from_pem(part.as_bytes()).unwrap();
        let cert = openssl::x509::X509::from_pem(part.as_bytes()).unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key), "amb-{id}");
        let cn = cert
            .subject_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
            .next()
            .unwrap()
            .data()
            .to_string()
            .unwrap();
        assert_eq!(cn, format!("amb-{id}"));
    }
    assert_eq!(
        server
            .query("SELECT count(*) FROM certificates WHERE profile_id = 'ambulance-terminal' AND status = 'valid'")
            .trim(),
        "3"
    );

    // A re-run issues nothing new.
    let status = import();
    assert!(status.contains("issued 0, skipped 3, failed 2"), "{status}");
    assert_eq!(
        server
            .query("SELECT count(*) FROM certificates WHERE profile_id = 'ambulance-terminal' AND status = 'valid'")
            .trim(),
        "3"
    );
}

/// Break-glass in the console: an issuance made alone (here through the API) is listed with its
/// emergency (escaped) and deadline; its issuer gets no review form; another officer confirms it
/// in the browser with a fresh code, and the review is recorded.
#[test]
fn break_glass_is_reviewed_in_the_browser() {
    if let Some(why) = missing() {
        eprintln!("SKIPPED: the console browser test needs chromium: {why}");
        return;
    }
    let server = Server::start(Backend::Sqlite, &[]);
    server.login(&server.admin);
    let (_, pem) = mamori_e2e::csr(
        &[
            (rcgen::DnType::CommonName, "Taro Sato"),
            (rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]), "STAFF-0420"),
        ],
        vec![rcgen::SanType::Rfc822Name(
            "taro.sato@hospital.example".try_into().unwrap(),
        )],
    );
    let (status, issued) = server.call(
        "POST",
        "/api/v1/break-glass",
        Some(&server.admin.token()),
        Some(serde_json::json!({
            "profile": "staff",
            "csr": pem,
            "emergency": "ER night shift: <b>card reader</b> failed",
            "totp": server.admin.code(),
        })),
    );
    assert_eq!(status, 201, "{issued}");
    let id = issued["id"].as_str().unwrap().to_string();
    let browser = Browser::start("Asia/Tokyo", "en-US", &shots_dir());

    // The issuer sees it, escaped, with no form to review their own.
    sign_in(&browser, &server, &server.admin);
    browser.go(&format!("{}/break-glass", server.api_url));
    let page = browser.wait_for(&id);
    assert!(page.contains("&lt;b&gt;card reader&lt;/b&gt;"), "{page}");
    assert!(page.contains("awaiting review"), "{page}");
    assert!(
        !page.contains("/review\""),
        "the issuer may not review: {page}"
    );
    sign_out(&browser);

    // Another officer confirms it.
    sign_in(&browser, &server, &server.officer);
    browser.go(&format!("{}/break-glass", server.api_url));
    browser.wait_for(&id);
    browser.screenshot("20-break-glass");
    browser.set_value(
        &format!("form[action='/break-glass/{id}/review'] input[name=totp]"),
        &server.officer.code(),
    );
    browser.click(&format!(
        "form[action='/break-glass/{id}/review'] button[value=confirm]"
    ));
    let page = browser.wait_for("Review recorded");
    assert!(page.contains("officer: confirm"), "{page}");
    let (_, view) = server.call(
        "GET",
        &format!("/api/v1/break-glass/{id}"),
        Some(&server.admin.token()),
        None,
    );
    assert_eq!(view["reviews"][0]["reviewer"], "officer", "{view}");
}
