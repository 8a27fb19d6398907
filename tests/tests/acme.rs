//! ACME (RFC 8555, RFC 9773) with clients we did not write: Debian's certbot (http-01,
//! standalone on loopback) and lego (http-01 and tls-alpn-01) register with External Account
//! Binding keys a security officer minted through `ca-cli acme eab create`, obtain, renew and
//! revoke. The names they validate are under `hospital.example`, which the test's
//! `acme_resolve` points at 127.0.0.1, so validation never leaves the machine. A small JWS
//! client of the test's own sends what real clients never would: bad signatures, reused
//! nonces, mismatched URLs, other accounts' keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use mamori_e2e::{artifact, free_port, have, Backend, Server};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use serde_json::{json, Value};

struct Acme {
    server: Server,
    directory: String,
    enroll: String,
    http_port: u16,
    tls_port: u16,
    work: PathBuf,
    root: PathBuf,
    cli_home: PathBuf,
}

fn start(backend: Backend) -> Acme {
    let (enroll_port, http_port, tls_port) = (free_port(), free_port(), free_port());
    let enroll_addr = format!("127.0.0.1:{enroll_port}");
    let (http, tls) = (http_port.to_string(), tls_port.to_string());
    let server = Server::start(
        backend,
        &[
            ("MAMORI_ENROLL_ADDR", enroll_addr.as_str()),
            ("MAMORI_ACME_HTTP01_PORT", http.as_str()),
            ("MAMORI_ACME_TLS_ALPN01_PORT", tls.as_str()),
            ("MAMORI_ACME_RESOLVE", "hospital.example=127.0.0.1"),
            ("MAMORI_ACME_VALIDATION_TIMEOUT_SECS", "10"),
        ],
    );
    let work = server.path().join("acme");
    std::fs::create_dir_all(&work).unwrap();
    let root = work.join("root.pem");
    std::fs::write(&root, &server.root_pem).unwrap();
    let cli_home = server.path().join("cli-officer");
    server.cli_login(&cli_home, &server.officer);
    let enroll = format!("https://localhost:{enroll_port}");
    Acme {
        directory: format!("{enroll}/acme/tls-server/directory"),
        enroll,
        server,
        http_port,
        tls_port,
        work,
        root,
        cli_home,
    }
}

impl Acme {
    /// Mints an EAB key through the real CLI: (kid, hmac key).
    fn eab(&self, names: &[&str], label: &str) -> (String, String) {
        let code = self.server.officer.code();
        let mut args = vec!["--json", "acme", "eab", "create", "--profile", "tls-server"];
        for n in names {
            args.extend(["--name", n]);
        }
        args.extend(["--label", label, "--totp", &code]);
        let run = self.server.cli(&self.cli_home, &args);
        assert_eq!(run.code, 0, "{run:?}");
        let view = run.json();
        (
            view["id"].as_str().unwrap().to_string(),
            view["hmac_key"].as_str().unwrap().to_string(),
        )
    }

    fn one(&self, sql: &str) -> String {
        self.server.query(sql).trim().to_string()
    }

    /// Runs certbot; a failure's output carries the end of certbot's own log.
    fn certbot(&self, args: &[&str]) -> Output {
        let dir = self.work.join("certbot");
        let started = std::time::Instant::now();
        let mut out = self.certbot_run(&dir, args);
        eprintln!("certbot {} took {:?}", args[0], started.elapsed());
        if !out.status.success() {
            let log = std::fs::read_to_string(dir.join("logs/letsencrypt.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            out.stderr
                .extend_from_slice(b"\n--- letsencrypt.log (end) ---\n");
            for line in tail.iter().rev() {
                out.stderr.extend_from_slice(line.as_bytes());
                out.stderr.push(b'\n');
            }
        }
        out
    }

    fn certbot_run(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new("certbot")
            .args([
                "--non-interactive",
                "--config-dir",
                dir.join("config").to_str().unwrap(),
                "--work-dir",
                dir.join("work").to_str().unwrap(),
                "--logs-dir",
                dir.join("logs").to_str().unwrap(),
            ])
            .args(args)
            .env("REQUESTS_CA_BUNDLE", &self.root)
            .output()
            .unwrap()
    }

    fn lego(&self, args: &[&str]) -> Output {
        Command::new("lego")
            .args([
                "--server",
                &self.directory,
                "--path",
                self.work.join("lego").to_str().unwrap(),
                "--accept-tos",
                "--email",
                "pacs-team@hospital.example",
            ])
            .args(args)
            .env("LEGO_CA_CERTIFICATES", &self.root)
            .output()
            .unwrap()
    }

    /// The status of a certificate (PEM file) in Mamori's table.
    fn status_of(&self, pem_file: &Path) -> String {
        let serial = serial_of(pem_file);
        self.one(&format!(
            "SELECT status FROM certificates WHERE ltrim(upper(serial), '0') = '{serial}'"
        ))
    }

    /// `openssl verify` of a leaf with the chain the client saved, up to Mamori's root.
    fn verify(&self, leaf: &Path, chain: &Path) {
        let out = Command::new("openssl")
            .args(["verify", "-purpose", "sslserver", "-CAfile"])
            .arg(&self.root)
            .arg("-untrusted")
            .arg(chain)
            .arg(leaf)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl verify: {}", text(&out));
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn serial_of(pem_file: &Path) -> String {
    let cert = openssl::x509::X509::from_pem(&std::fs::read(pem_file).unwrap()).unwrap();
    let hex = cert
        .serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_string();
    mamori_e2e::normal_serial(&hex)
}

fn dns_names(pem_file: &Path) -> Vec<String> {
    let cert = openssl::x509::X509::from_pem(&std::fs::read(pem_file).unwrap()).unwrap();
    let mut names: Vec<String> = cert
        .subject_alt_names()
        .map(|list| {
            list.iter()
                .filter_map(|n| n.dnsname().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn certbot_registers_with_eab_obtains_renews_and_revokes() {
    if !have("certbot") {
        eprintln!("skipped: certbot is not installed (Debian package certbot)");
        return;
    }
    let a = start(Backend::Sqlite);
    let (kid, hmac) = a.eab(&["*.ehr.hospital.example"], "EHR front ends (certbot)");
    let http_port = a.http_port.to_string();
    let common = [
        "--server",
        a.directory.as_str(),
        "--http-01-port",
        http_port.as_str(),
        "--http-01-address",
        "127.0.0.1",
    ];
    // Register with the EAB key and obtain a certificate for two names (http-01).
    let mut args = vec![
        "certonly",
        "--standalone",
        "--agree-tos",
        "--email",
        "ehr-team@hospital.example",
    ];
    args.extend(common);
    args.extend([
        "--eab-kid",
        kid.as_str(),
        "--eab-hmac-key",
        hmac.as_str(),
        "--key-type",
        "ecdsa",
        "--cert-name",
        "ehr",
        "-d",
        "web.ehr.hospital.example",
        "-d",
        "api.ehr.hospital.example",
    ]);
    let out = a.certbot(&args);
    assert!(out.status.success(), "certbot certonly: {}", text(&out));
    let live = a.work.join("certbot/config/live/ehr");
    a.verify(&live.join("cert.pem"), &live.join("chain.pem"));
    assert_eq!(
        dns_names(&live.join("cert.pem")),
        ["api.ehr.hospital.example", "web.ehr.hospital.example"]
    );
    let first = serial_of(&live.join("cert.pem"));
    assert_eq!(a.status_of(&live.join("cert.pem")), "valid");
    artifact("acme-certbot", &live.join("cert.pem"));
    // The EAB key is bound now: the account and the audit name it.
    assert_eq!(
        a.one(&format!(
            "SELECT count(*) FROM acme_eab_keys WHERE id = '{kid}' AND account_id IS NOT NULL"
        )),
        "1"
    );
    assert_eq!(
        a.one("SELECT count(*) FROM audit_log WHERE action = 'acme.account.create'"),
        "1"
    );
    assert_eq!(
        a.one("SELECT count(*) FROM audit_log WHERE action = 'acme.eab.create'"),
        "1"
    );

    // A name outside the key's scope is refused before any validation.
    let mut args = vec!["certonly", "--standalone", "--cert-name", "pacs"];
    args.extend(common);
    args.extend(["-d", "viewer.pacs.hospital.example"]);
    let out = a.certbot(&args);
    assert!(
        !out.status.success(),
        "an out-of-scope name was issued: {}",
        text(&out)
    );
    // Debian's certbot 2.1 on Python 3.11 reports every ACME error as "AttributeError: can't
    // set attribute" (josepy's immutable Error meets contextlib); the typed problem is in its
    // log, which the helper appends.
    assert!(
        text(&out).contains("rejectedIdentifier")
            || text(&out).contains("External Account Binding scope"),
        "{}",
        text(&out)
    );
    // A name outside the profile's allowed domains too.
    let mut args = vec!["certonly", "--standalone", "--cert-name", "outside"];
    args.extend(common);
    args.extend(["-d", "web.ehr.example.com"]);
    let out = a.certbot(&args);
    assert!(!out.status.success(), "{}", text(&out));

    // Renewal: a new certificate for the same names, validated again.
    let mut args = vec![
        "renew",
        "--force-renewal",
        "--no-random-sleep-on-renew",
        "--cert-name",
        "ehr",
    ];
    args.extend([
        "--http-01-port",
        http_port.as_str(),
        "--http-01-address",
        "127.0.0.1",
    ]);
    let out = a.certbot(&args);
    assert!(out.status.success(), "certbot renew: {}", text(&out));
    let second = serial_of(&live.join("cert.pem"));
    assert_ne!(first, second, "renewal issued a new certificate");
    a.verify(&live.join("cert.pem"), &live.join("chain.pem"));

    // Revocation with the account key.
    let cert = live.join("cert.pem");
    let mut args = vec![
        "revoke",
        "--cert-path",
        cert.to_str().unwrap(),
        "--reason",
        "superseded",
        "--no-delete-after-revoke",
    ];
    args.extend(["--server", a.directory.as_str()]);
    let out = a.certbot(&args);
    assert!(out.status.success(), "certbot revoke: {}", text(&out));
    assert_eq!(a.status_of(&cert), "revoked");
    // OCSP says so too.
    let issuing = mamori_e2e::issuing_certificate(&a.server.public_url);
    let leaf = openssl::x509::X509::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let status = mamori_e2e::ocsp_status(&a.server.public_url, &leaf, &issuing);
    assert_eq!(status, "revoked", "OCSP");
    // Certificates issued without a second approval still name the officer who minted the key.
    assert_eq!(
        a.one("SELECT count(*) FROM audit_log WHERE action = 'request.submit' AND actor LIKE 'acme:acct-%'"),
        "2"
    );
}

#[test]
fn lego_obtains_with_http01_renews_with_tls_alpn01_and_revokes() {
    if !have("lego") {
        eprintln!("skipped: lego is not installed (Debian package lego)");
        return;
    }
    let a = start(Backend::Sqlite);
    let (kid, hmac) = a.eab(
        &["pacs.hospital.example", "*.pacs.hospital.example"],
        "PACS viewers (lego)",
    );
    let http = format!(":{}", a.http_port);
    let tls = format!(":{}", a.tls_port);
    let out = a.lego(&[
        "--eab",
        "--kid",
        &kid,
        "--hmac",
        &hmac,
        "--domains",
        "pacs.hospital.example",
        "--domains",
        "viewer.pacs.hospital.example",
        "--http",
        "--http.port",
        &http,
        "run",
    ]);
    assert!(out.status.success(), "lego run: {}", text(&out));
    let certs = a.work.join("lego/certificates");
    let crt = certs.join("pacs.hospital.example.crt");
    let issuer = certs.join("pacs.hospital.example.issuer.crt");
    a.verify(&crt, &issuer);
    artifact("acme-lego", &crt);
    let first = serial_of(&crt);

    // Renewal through tls-alpn-01 (lego answers on the port Mamori is told to use).
    // lego 4.9 wants --eab on every command against a server that requires it (the account
    // is already registered and is reused).
    let eab = ["--eab", "--kid", kid.as_str(), "--hmac", hmac.as_str()];
    let out = a.lego(
        &[
            &eab[..],
            &[
                "--domains",
                "pacs.hospital.example",
                "--domains",
                "viewer.pacs.hospital.example",
                "--tls",
                "--tls.port",
                &tls,
                "renew",
                "--days",
                "400",
                "--no-random-sleep",
            ],
        ]
        .concat(),
    );
    assert!(out.status.success(), "lego renew: {}", text(&out));

    let second = serial_of(&crt);
    assert_ne!(first, second);
    a.verify(&crt, &issuer);
    assert_eq!(
        a.one("SELECT count(*) FROM acme_authorizations WHERE challenge_type = 'tls-alpn-01' AND status = 'valid'"),
        "2"
    );

    // RFC 9773: the renewal window of the current certificate lies ahead; after revocation it
    // lies in the past (renew now).
    let cert_id = ari_id(&crt);
    let ari = |id: &str| -> Value {
        let response = a
            .server
            .client
            .get(format!("{}/acme/tls-server/renewal-info/{id}", a.enroll))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("retry-after"));
        response.json().unwrap()
    };
    let before = ari(&cert_id);
    let start = before["suggestedWindow"]["start"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(start > mamori_e2e::rfc3339(now()), "{before}");

    // lego moves a revoked certificate to its archive: compare by serial.
    let status_now = || {
        a.one(&format!(
            "SELECT status FROM certificates WHERE ltrim(upper(serial), '0') = '{second}'"
        ))
    };
    let out = a.lego(&[&eab[..], &["--domains", "pacs.hospital.example", "revoke"]].concat());
    assert!(out.status.success(), "lego revoke: {}", text(&out));
    assert_eq!(status_now(), "revoked");
    let after = ari(&cert_id);
    let end = after["suggestedWindow"]["end"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(end < mamori_e2e::rfc3339(now()), "{after}");
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64u(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 9773 certificate identifier of a PEM certificate.
fn ari_id(pem_file: &Path) -> String {
    let cert = openssl::x509::X509::from_pem(&std::fs::read(pem_file).unwrap()).unwrap();
    let aki = cert.authority_key_id().unwrap().as_slice().to_vec();
    let der = cert.serial_number().to_bn().unwrap().to_vec();
    let serial = if der.first().is_some_and(|b| b & 0x80 != 0) {
        [vec![0], der].concat()
    } else {
        der
    };
    format!("{}.{}", b64u(&aki), b64u(&serial))
}

/// The test's own ACME client: ES256 JWS over reqwest.
struct Client {
    key: PKey<Private>,
    http: reqwest::blocking::Client,
    root: String,
    kid: Option<String>,
}

impl Client {
    fn new(a: &Acme) -> Client {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        Client {
            key: PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap(),
            http: a.server.client.clone(),
            root: format!("{}/acme/tls-server", a.enroll),
            kid: None,
        }
    }

    fn jwk(&self) -> Value {
        let ec = self.key.ec_key().unwrap();
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        let (mut x, mut y) = (
            openssl::bn::BigNum::new().unwrap(),
            openssl::bn::BigNum::new().unwrap(),
        );
        ec.public_key()
            .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
            .unwrap();
        json!({"crv": "P-256", "kty": "EC", "x": b64u(&x.to_vec_padded(32).unwrap()), "y": b64u(&y.to_vec_padded(32).unwrap())})
    }

    fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
            jwk["x"], jwk["y"]
        );
        b64u(&openssl::sha::sha256(canonical.as_bytes()))
    }

    fn nonce(&self) -> String {
        let r = self
            .http
            .head(format!("{}/new-nonce", self.root))
            .send()
            .unwrap();
        r.headers()["replay-nonce"].to_str().unwrap().to_string()
    }

    fn sign_with(&self, protected: &Value, payload: &str) -> Value {
        let protected = b64u(protected.to_string().as_bytes());
        let payload = b64u(payload.as_bytes());
        let mut signer =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &self.key).unwrap();
        signer
            .update(format!("{protected}.{payload}").as_bytes())
            .unwrap();
        let der = signer.sign_to_vec().unwrap();
        let sig = openssl::ecdsa::EcdsaSig::from_der(&der).unwrap();
        let raw = [
            sig.r().to_vec_padded(32).unwrap(),
            sig.s().to_vec_padded(32).unwrap(),
        ]
        .concat();
        json!({"protected": protected, "payload": payload, "signature": b64u(&raw)})
    }

    fn header(&self, url: &str, nonce: &str) -> Value {
        match &self.kid {
            Some(kid) => json!({"alg": "ES256", "nonce": nonce, "url": url, "kid": kid}),
            None => json!({"alg": "ES256", "nonce": nonce, "url": url, "jwk": self.jwk()}),
        }
    }

    fn post_body(&self, url: &str, body: &Value) -> (u16, Value, reqwest::header::HeaderMap) {
        let r = self
            .http
            .post(url)
            .header("content-type", "application/jose+json")
            .body(body.to_string())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            headers,
        )
    }

    fn post(&self, path: &str, payload: &str) -> (u16, Value, reqwest::header::HeaderMap) {
        let url = format!("{}/{path}", self.root);
        let body = self.sign_with(&self.header(&url, &self.nonce()), payload);
        self.post_body(&url, &body)
    }

    fn register(&mut self, kid: &str, hmac: &str) -> (u16, Value) {
        let url = format!("{}/new-account", self.root);
        let protected = b64u(
            json!({"alg": "HS256", "kid": kid, "url": url})
                .to_string()
                .as_bytes(),
        );
        let payload = b64u(self.jwk().to_string().as_bytes());
        let key = PKey::hmac(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(hmac)
                .unwrap(),
        )
        .unwrap();
        let mut signer =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
        signer
            .update(format!("{protected}.{payload}").as_bytes())
            .unwrap();
        let mac = signer.sign_to_vec().unwrap();
        let eab = json!({"protected": protected, "payload": payload, "signature": b64u(&mac)});
        let (status, body, headers) = self.post(
            "new-account",
            &json!({"termsOfServiceAgreed": true, "externalAccountBinding": eab}).to_string(),
        );
        if let Some(location) = headers.get("location") {
            self.kid = Some(location.to_str().unwrap().to_string());
        }
        (status, body)
    }
}

/// A P-256 CSR (base64url DER) with an optional CN and these DNS names.
fn csr(cn: Option<&str>, sans: &[&str]) -> String {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut req = openssl::x509::X509ReqBuilder::new().unwrap();
    if let Some(cn) = cn {
        let mut subject = openssl::x509::X509NameBuilder::new().unwrap();
        subject.append_entry_by_text("CN", cn).unwrap();
        req.set_subject_name(&subject.build()).unwrap();
    }
    req.set_pubkey(&key).unwrap();
    let mut san = openssl::x509::extension::SubjectAlternativeName::new();
    for name in sans {
        san.dns(name);
    }
    let mut extensions = openssl::stack::Stack::new().unwrap();
    extensions
        .push(san.build(&req.x509v3_context(None)).unwrap())
        .unwrap();
    req.add_extensions(&extensions).unwrap();
    req.sign(&key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    b64u(&req.build().to_der().unwrap())
}

fn problem_type(body: &Value) -> String {
    body["type"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("urn:ietf:params:acme:error:")
        .to_string()
}

fn attacks(backend: Backend) {
    let a = start(backend);
    let directory: Value = a
        .server
        .client
        .get(&a.directory)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(directory["meta"]["externalAccountRequired"], true);
    let (kid, hmac) = a.eab(&["*.ehr.hospital.example"], "attacks");

    // No EAB: refused, nothing stored.
    let mut mallory = Client::new(&a);
    let (status, body, _) = mallory.post("new-account", r#"{"termsOfServiceAgreed":true}"#);
    assert_eq!(
        (status, problem_type(&body).as_str()),
        (400, "externalAccountRequired"),
        "{body}"
    );
    // A wrong HMAC key.
    let (status, body) = mallory.register(&kid, &b64u(&[7u8; 32]));
    assert_eq!(
        (status, problem_type(&body).as_str()),
        (403, "unauthorized"),
        "{body}"
    );
    // The right one: registered.
    let mut alice = Client::new(&a);
    let (status, body) = alice.register(&kid, &hmac);
    assert_eq!(status, 201, "{body}");
    // The key is used up: a second account cannot bind it.
    let (status, body) = mallory.register(&kid, &hmac);
    assert_eq!(
        (status, problem_type(&body).as_str()),
        (403, "unauthorized"),
        "{body}"
    );
    assert_eq!(a.one("SELECT count(*) FROM acme_accounts"), "1");

    // A reused nonce.
    let url = format!("{}/new-order", alice.root);
    let order =
        json!({"identifiers": [{"type": "dns", "value": "web.ehr.hospital.example"}]}).to_string();
    let nonce = alice.nonce();
    let body = alice.sign_with(&alice.header(&url, &nonce), &order);
    let (status, first, headers) = alice.post_body(&url, &body);
    assert_eq!(status, 201, "{first}");
    assert!(headers.contains_key("replay-nonce"));
    let (status, again, headers) = alice.post_body(&url, &body);
    assert_eq!(
        (status, problem_type(&again).as_str()),
        (400, "badNonce"),
        "{again}"
    );
    assert!(
        headers.contains_key("replay-nonce"),
        "a badNonce carries a fresh nonce"
    );
    // A URL that is not where the request went.
    let other = format!("{}/new-account", alice.root);
    let body = alice.sign_with(&alice.header(&other, &alice.nonce()), &order);
    let (status, answer, _) = alice.post_body(&url, &body);
    assert_eq!(
        (status, problem_type(&answer).as_str()),
        (403, "unauthorized"),
        "{answer}"
    );
    // A changed payload under a valid signature.
    let mut body = alice.sign_with(&alice.header(&url, &alice.nonce()), &order);
    body["payload"] = json!(b64u(
        json!({"identifiers": [{"type": "dns", "value": "evil.ehr.hospital.example"}]})
            .to_string()
            .as_bytes()
    ));
    let (status, answer, _) = alice.post_body(&url, &body);
    assert_eq!(
        (status, problem_type(&answer).as_str()),
        (400, "malformed"),
        "{answer}"
    );
    // alg none with a fresh nonce.
    let mut header = alice.header(&url, &alice.nonce());
    header["alg"] = json!("none");
    let body = json!({"protected": b64u(header.to_string().as_bytes()), "payload": b64u(order.as_bytes()), "signature": ""});
    let (status, answer, _) = alice.post_body(&url, &body);
    assert_eq!(
        (status, problem_type(&answer).as_str()),
        (400, "badSignatureAlgorithm"),
        "{answer}"
    );
    // Mallory signs with her key but names Alice's account.
    mallory.kid = alice.kid.clone();
    let (status, answer, _) = mallory.post("new-order", &order);
    assert_eq!(
        (status, problem_type(&answer).as_str()),
        (400, "malformed"),
        "{answer}"
    );
    // Names outside the EAB scope, outside the profile, wildcards, IP identifiers.
    for (value, kind, want) in [
        ("viewer.pacs.hospital.example", "dns", "rejectedIdentifier"),
        ("web.ehr.example.com", "dns", "rejectedIdentifier"),
        ("*.ehr.hospital.example", "dns", "rejectedIdentifier"),
        ("127.0.0.1", "ip", "unsupportedIdentifier"),
    ] {
        let (status, answer, _) = alice.post(
            "new-order",
            &json!({"identifiers": [{"type": kind, "value": value}]}).to_string(),
        );
        assert_eq!(
            (status, problem_type(&answer).as_str()),
            (400, want),
            "{value}: {answer}"
        );
    }
    // Finalizing before validation: orderNotReady. Another account cannot read the order.
    let order_url = first["finalize"]
        .as_str()
        .unwrap()
        .trim_end_matches("/finalize")
        .to_string();
    let order_path = order_url
        .trim_start_matches(&format!("{}/", alice.root))
        .to_string();
    let (status, answer, _) = alice.post(&format!("{order_path}/finalize"), r#"{"csr":"AAAA"}"#);
    assert_eq!(
        (status, problem_type(&answer).as_str()),
        (403, "orderNotReady"),
        "{answer}"
    );
    // A second officer mints Bob's key through the API (each person's TOTP codes are used once).
    let oscar = a.server.user("oscar", &["security-officer"]);
    let (status, minted) = a.server.call(
        "POST",
        "/api/v1/acme/eab",
        Some(&oscar.token()),
        Some(json!({"profile": "tls-server", "names": ["*.ehr.hospital.example"], "label": "bob", "totp": oscar.code()})),
    );
    assert_eq!(status, 201, "{minted}");
    let (kid2, hmac2) = (
        minted["id"].as_str().unwrap().to_string(),
        minted["hmac_key"].as_str().unwrap().to_string(),
    );
    let mut bob = Client::new(&a);
    assert_eq!(bob.register(&kid2, &hmac2).0, 201);
    let (status, answer, _) = bob.post(&order_path, "");
    assert_eq!(status, 404, "{answer}");
    // A validation that fails (nobody answers on the http-01 port): the authorization and
    // the order turn invalid; nothing was issued.
    let authz = first["authorizations"][0]
        .as_str()
        .unwrap()
        .trim_start_matches(&format!("{}/", alice.root))
        .to_string();
    let (status, authz_view, _) = alice.post(&authz, "");
    assert_eq!(status, 200, "{authz_view}");
    let challenge = authz_view["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "http-01")
        .unwrap();
    let chall_path = challenge["url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&format!("{}/", alice.root))
        .to_string();
    let (status, answer, headers) = alice.post(&chall_path, "{}");
    assert_eq!(status, 200, "{answer}");
    assert!(headers
        .get_all("link")
        .iter()
        .any(|l| l.to_str().unwrap().contains("rel=\"up\"")));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, view, _) = alice.post(&order_path, "");
        if view["status"] == "invalid" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the order never failed: {view}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (_, view, _) = alice.post(&authz, "");
    assert_eq!(view["status"], "invalid", "{view}");
    assert_eq!(
        problem_type(&view["challenges"][0]["error"]),
        "connection",
        "{view}"
    );
    assert_eq!(
        a.one("SELECT count(*) FROM certificates WHERE profile_id = 'tls-server'"),
        "0"
    );

    // A validated order: the test answers http-01 itself. A CSR whose CN or SANs are not
    // exactly the order's names is refused and the order stays ready for a corrected one;
    // Bob can neither download nor revoke Alice's certificate.
    let name = "api.ehr.hospital.example";
    let (status, second, headers) = alice.post(
        "new-order",
        &json!({"identifiers": [{"type": "dns", "value": name}]}).to_string(),
    );
    assert_eq!(status, 201, "{second}");
    let order_path = headers["location"]
        .to_str()
        .unwrap()
        .trim_start_matches(&format!("{}/", alice.root))
        .to_string();
    let authz = second["authorizations"][0]
        .as_str()
        .unwrap()
        .trim_start_matches(&format!("{}/", alice.root))
        .to_string();
    let (_, authz_view, _) = alice.post(&authz, "");
    let challenge = authz_view["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "http-01")
        .unwrap()
        .clone();
    let token = challenge["token"].as_str().unwrap().to_string();
    let answer = format!("{token}.{}", alice.thumbprint());
    let listener = std::net::TcpListener::bind(("127.0.0.1", a.http_port)).unwrap();
    let responder = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 2048];
        let n = stream.read(&mut buf).unwrap();
        let request = String::from_utf8_lossy(&buf[..n]).to_string();
        let reply = format!(
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        stream.write_all(reply.as_bytes()).unwrap();
        request
    });
    let chall_path = challenge["url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&format!("{}/", alice.root))
        .to_string();
    assert_eq!(alice.post(&chall_path, "{}").0, 200);
    let request = responder.join().unwrap();
    assert!(
        request.starts_with(&format!("GET /.well-known/acme-challenge/{token} HTTP/1.0")),
        "{request}"
    );
    assert!(request.contains(&format!("Host: {name}")), "{request}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, view, _) = alice.post(&order_path, "");
        if view["status"] == "ready" {
            break;
        }
        assert_eq!(view["status"], "pending", "{view}");
        assert!(
            std::time::Instant::now() < deadline,
            "the order never became ready: {view}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for (cn, sans, why) in [
        (
            Some("evil.example.com"),
            vec![name],
            "a CN outside the order",
        ),
        (None, vec![name, "web.ehr.hospital.example"], "an extra SAN"),
        (None, vec!["web.ehr.hospital.example"], "another SAN"),
    ] {
        let (status, answer, _) = alice.post(
            &format!("{order_path}/finalize"),
            &json!({"csr": csr(cn, &sans)}).to_string(),
        );
        assert_eq!(
            (status, problem_type(&answer).as_str()),
            (400, "badCSR"),
            "{why}: {answer}"
        );
    }
    let (status, done, _) = alice.post(
        &format!("{order_path}/finalize"),
        &json!({"csr": csr(Some(name), &[name])}).to_string(),
    );
    assert_eq!(
        (status, done["status"].as_str()),
        (200, Some("valid")),
        "{done}"
    );
    let cert_path = done["certificate"]
        .as_str()
        .unwrap()
        .trim_start_matches(&format!("{}/", alice.root))
        .to_string();
    let (status, chain, _) = alice.post(&cert_path, "");
    assert_eq!(status, 200);
    let pem = chain.as_str().unwrap().to_string();
    assert_eq!(
        pem.matches("BEGIN CERTIFICATE").count(),
        2,
        "leaf and issuing CA: {pem}"
    );
    assert_eq!(bob.post(&cert_path, "").0, 404);
    let der = openssl::x509::X509::from_pem(pem.as_bytes())
        .unwrap()
        .to_der()
        .unwrap();
    let (status, answer, _) = bob.post(
        "revoke-cert",
        &json!({"certificate": b64u(&der)}).to_string(),
    );
    assert_eq!(
        (status, problem_type(&answer).as_str()),
        (403, "unauthorized"),
        "{answer}"
    );
    let (status, answer, _) = alice.post(
        "revoke-cert",
        &json!({"certificate": b64u(&der), "reason": 2}).to_string(),
    );
    assert_eq!(
        (status, problem_type(&answer).as_str()),
        (400, "badRevocationReason"),
        "{answer}"
    );
    assert_eq!(
        alice
            .post(
                "revoke-cert",
                &json!({"certificate": b64u(&der), "reason": 4}).to_string()
            )
            .0,
        200
    );
    let (status, answer, _) = alice.post(
        "revoke-cert",
        &json!({"certificate": b64u(&der)}).to_string(),
    );
    assert_eq!(
        (status, problem_type(&answer).as_str()),
        (400, "alreadyRevoked"),
        "{answer}"
    );

    // Revoking the EAB key deactivates the account it bound.
    let code = a.server.officer.code();
    let run = a.server.cli(
        &a.cli_home,
        &["acme", "eab", "revoke", &kid, "--totp", &code],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let (status, answer, _) = alice.post("new-order", &order);
    assert_eq!(
        (status, problem_type(&answer).as_str()),
        (403, "unauthorized"),
        "{answer}"
    );
    let list = a
        .server
        .cli(&a.cli_home, &["--json", "acme", "eab", "list"])
        .json();
    let states: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["bound", "revoked"], "{list}");
    assert_eq!(list[0]["created_by"], "oscar", "{list}");
    // Minting needs a security officer and a fresh code.
    let run = a.server.cli(
        &a.cli_home,
        &[
            "acme",
            "eab",
            "create",
            "--profile",
            "tls-server",
            "--name",
            "x.hospital.example",
            "--label",
            "x",
            "--totp",
            "000000",
        ],
    );
    assert_ne!(run.code, 0, "{run:?}");
}

#[test]
fn acme_refuses_forged_replayed_and_out_of_scope_requests_sqlite() {
    attacks(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "needs MAMORI_TEST_POSTGRES_URL")]
fn acme_refuses_forged_replayed_and_out_of_scope_requests_postgres() {
    attacks(Backend::Postgres);
}
