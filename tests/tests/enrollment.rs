//! Devices enroll and renew themselves with clients we did not write: certmonger (SCEP, its
//! daemon on a private D-Bus session), Debian's micromdm `scepclient` (SCEP), curl and openssl
//! (EST, RFC 7030), and `ca-cli renew` over mutual TLS. The policies are the shipped ones with
//! the renewal window widened (a fresh certificate would otherwise wait eleven months to renew)
//! and network-gateway's overlap set to zero, so that upkeep retires a renewed certificate at
//! once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mamori_e2e::{
    artifact, free_port, have, normal_serial, workspace_root, Backend, Person, Server,
};
use serde_json::{json, Value};

/// network-gateway's static challenge in these tests.
const STATIC_CHALLENGE: &str = "ward 3 gateways, staging 2026";

struct Enrollment {
    server: Server,
    _policies: tempfile::TempDir,
    enroll_url: String,
    scep_url: String,
    enroller: Person,
    work: PathBuf,
    root: PathBuf,
}

fn start(backend: Backend, extra: &[(&str, &str)]) -> Enrollment {
    let policies = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(workspace_root().join("policies")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        let mut text = std::fs::read_to_string(entry.path()).unwrap();
        if [
            "mdm-tablet.toml",
            "windows-device.toml",
            "network-gateway.toml",
        ]
        .contains(&name.as_str())
        {
            text = text.replace("window = \"30d\"", "window = \"400d\"");
        }
        if name == "network-gateway.toml" {
            text = text.replace("revoke_old_after = \"3d\"", "revoke_old_after = \"0s\"");
            // A static challenge, filed under the enroller (off in the shipped profile).
            text.push_str(&format!(
                "static_challenge_sha256 = \"{}\"\nstatic_challenge_owner = \"enroller\"\n",
                hex(&openssl::sha::sha256(STATIC_CHALLENGE.as_bytes()))
            ));
        }
        std::fs::write(policies.path().join(&name), text).unwrap();
    }
    let (enroll_port, scep_port) = (free_port(), free_port());
    let enroll_addr = format!("127.0.0.1:{enroll_port}");
    let scep_addr = format!("127.0.0.1:{scep_port}");
    let mut env = vec![
        ("MAMORI_POLICIES_DIR", policies.path().to_str().unwrap()),
        ("MAMORI_ENROLL_ADDR", enroll_addr.as_str()),
        ("MAMORI_SCEP_HTTP_ADDR", scep_addr.as_str()),
        ("MAMORI_MAINTENANCE_INTERVAL_SECS", "1"),
    ];
    env.extend_from_slice(extra);
    let server = Server::start(backend, &env);
    let enroller = server.user("enroller", &["device-enroller"]);
    let work = server.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let root = work.join("root.pem");
    std::fs::write(&root, &server.root_pem).unwrap();
    Enrollment {
        server,
        _policies: policies,
        enroll_url: format!("https://localhost:{enroll_port}"),
        scep_url: format!("http://127.0.0.1:{scep_port}"),
        enroller,
        work,
        root,
    }
}

impl Enrollment {
    /// A fresh one-time enrollment code.
    fn code(&self, profile: &str, cn_pattern: Option<&str>) -> (String, String) {
        let (status, body) = self.server.call(
            "POST",
            "/api/v1/enrollment-codes",
            Some(&self.enroller.token()),
            Some(json!({"profile": profile, "cn_pattern": cn_pattern, "valid_minutes": 30})),
        );
        assert_eq!(status, 201, "{body}");
        (
            body["code"].as_str().unwrap().to_string(),
            body["id"].as_str().unwrap().to_string(),
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// `SELECT` one value.
    fn one(&self, sql: &str) -> String {
        self.server.query(sql).trim().to_string()
    }

    /// Approves the one pending request of `profile` as the dev officer.
    fn approve_pending(&self, profile: &str) -> String {
        let officer = &self.server.officer;
        self.server.login(officer);
        let deadline = Instant::now() + Duration::from_secs(60);
        let id = loop {
            let (status, list) = self.server.call(
                "GET",
                &format!("/api/v1/requests?status=pending&profile={profile}"),
                Some(&officer.token()),
                None,
            );
            assert_eq!(status, 200, "{list}");
            if let Some(id) = list
                .as_array()
                .and_then(|l| l.first())
                .map(|r| r["id"].clone())
            {
                break id.as_str().unwrap().to_string();
            }
            assert!(Instant::now() < deadline, "no pending {profile} request");
            std::thread::sleep(Duration::from_millis(200));
        };
        let (status, body) = self.server.call(
            "POST",
            &format!("/api/v1/requests/{id}/approve"),
            Some(&officer.token()),
            Some(json!({"totp": officer.code(), "comment": "device checked"})),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "issued", "{body}");
        id
    }
}

fn run(command: &mut Command) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// curl against the enrollment listener, trusting only Mamori's root: (HTTP status, body).
fn curl(e: &Enrollment, args: &[&str]) -> (u16, Vec<u8>) {
    let body = e.path(&format!("curl-{}.out", free_port()));
    let out = run(Command::new("curl")
        .args(["-s", "-o", body.to_str().unwrap(), "-w", "%{http_code}"])
        .args(["--cacert", e.root.to_str().unwrap()])
        .args(args));
    let status = String::from_utf8_lossy(&out.stdout).parse().unwrap();
    (status, std::fs::read(&body).unwrap_or_default())
}

/// A new P-256 key and a base64 DER CSR for `cn` with one DNS name.
fn gateway_csr(e: &Enrollment, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let key = e.path(&format!("{name}.key"));
    let der = e.path(&format!("{name}.der"));
    run(Command::new("openssl").args([
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-subj",
        &format!("/O=Mamori Hospital/CN={cn}"),
        "-addext",
        &format!("subjectAltName=DNS:{cn}"),
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ]));
    let b64 = e.path(&format!("{name}.b64"));
    let encoded = run(Command::new("base64").arg(&der)).stdout;
    std::fs::write(&b64, encoded).unwrap();
    (key, b64)
}

/// The certificates of an EST answer (base64 PKCS#7), as PEM, through `base64 -d | openssl`.
fn est_certificates(e: &Enrollment, body: &[u8], name: &str) -> PathBuf {
    let b64 = e.path(&format!("{name}.p7.b64"));
    std::fs::write(&b64, body).unwrap();
    let der = run(Command::new("base64").arg("-d").arg(&b64)).stdout;
    let p7 = e.path(&format!("{name}.p7"));
    std::fs::write(&p7, der).unwrap();
    let pem = e.path(&format!("{name}.pem"));
    run(Command::new("openssl").args([
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        p7.to_str().unwrap(),
        "-print_certs",
        "-out",
        pem.to_str().unwrap(),
    ]));
    pem
}

/// The certificate's serial, or `None` while the file holds no whole certificate.
fn try_serial(pem: &Path) -> Option<String> {
    let cert = openssl::x509::X509::from_pem(&std::fs::read(pem).ok()?).ok()?;
    let hex = cert
        .serial_number()
        .to_bn()
        .ok()?
        .to_hex_str()
        .ok()?
        .to_string();
    Some(normal_serial(&hex).to_lowercase())
}

fn serial_of(pem: &Path) -> String {
    let out = run(Command::new("openssl").args([
        "x509",
        "-noout",
        "-serial",
        "-in",
        pem.to_str().unwrap(),
    ]));
    normal_serial(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("serial="),
    )
    .to_lowercase()
}

fn est(backend: Backend) {
    let e = start(backend, &[]);
    let est = |op: &str| format!("{}/.well-known/est/network-gateway/{op}", e.enroll_url);

    // cacerts and csrattrs, as any RFC 7030 client fetches them first.
    let (status, body) = curl(&e, &[&est("cacerts")]);
    assert_eq!(status, 200);
    let cacerts = std::fs::read_to_string(est_certificates(&e, &body, "cacerts")).unwrap();
    assert!(
        cacerts.contains("Mamori Issuing CA 1") && cacerts.contains("Mamori Root CA"),
        "{cacerts}"
    );
    let chain = e.path("chain.pem");
    std::fs::write(&chain, &cacerts).unwrap();
    let (status, attrs) = curl(&e, &[&est("csrattrs")]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&attrs));

    // Enrollment with a one-time code as the Basic password.
    let (key, csr) = gateway_csr(&e, "gw1", "gw1.ward3.hospital.example");
    let data = format!("@{}", csr.display());
    let post = [
        "-H",
        "Content-Type: application/pkcs10",
        "--data-binary",
        data.as_str(),
    ];
    let (status, _) = curl(&e, &[&post[..], &[est("simpleenroll").as_str()]].concat());
    assert_eq!(status, 401, "no code, no certificate");
    let (code, code_id) = e.code("network-gateway", Some(r"gw1\.ward3\.hospital\.example"));
    let basic = format!("gw1:{code}");
    let (status, body) = curl(
        &e,
        &[&post[..], &["-u", &basic, est("simpleenroll").as_str()]].concat(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let first = est_certificates(&e, &body, "gw1-first");
    run(Command::new("openssl").args([
        "verify",
        "-CAfile",
        e.root.to_str().unwrap(),
        "-untrusted",
        chain.to_str().unwrap(),
        first.to_str().unwrap(),
    ]));
    let first_serial = serial_of(&first);
    artifact("est-network-gateway", &first);
    // The SCEP RA certificate (RSA, no extended key usage) from GetCACert, for pkilint too.
    let ra = ra_certificate(&e, "network-gateway");
    let ra_pem = e.path("ra.pem");
    std::fs::write(&ra_pem, ra.to_pem().unwrap()).unwrap();
    artifact("scep-ra", &ra_pem);
    assert_eq!(
        e.one(&format!("SELECT count(*) FROM enrollment_challenges WHERE id = '{code_id}' AND used_at IS NOT NULL")),
        "1"
    );

    // The same CSR again (a client retrying) answers the same certificate; nothing new.
    let (status, body) = curl(
        &e,
        &[&post[..], &["-u", &basic, est("simpleenroll").as_str()]].concat(),
    );
    assert_eq!(status, 200);
    assert_eq!(
        serial_of(&est_certificates(&e, &body, "gw1-retry")),
        first_serial
    );
    // The used code with another CSR: refused, nothing stored.
    let (_, other) = gateway_csr(&e, "gw1b", "gw1.ward3.hospital.example");
    let other_data = format!("@{}", other.display());
    let (status, body) = curl(
        &e,
        &[
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &other_data,
            "-u",
            &basic,
            &est("simpleenroll"),
        ],
    );
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    // A fresh code for another CN pattern: refused, and still unused.
    let (code2, code2_id) = e.code("network-gateway", Some(r"gw2\.ward3\.hospital\.example"));
    let (status, body) = curl(
        &e,
        &[
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &other_data,
            "-u",
            &format!("gw:{code2}"),
            &est("simpleenroll"),
        ],
    );
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("CN matching"));
    assert_eq!(e.one(&format!("SELECT count(*) FROM enrollment_challenges WHERE id = '{code2_id}' AND used_at IS NULL")), "1");
    assert_eq!(
        e.one(
            "SELECT count(*) FROM certificates WHERE subject LIKE '%gw1.ward3.hospital.example%'"
        ),
        "1"
    );

    // simplereenroll: the current certificate over TLS, a new key, the same names.
    let (key2, csr2) = gateway_csr(&e, "gw1-2", "gw1.ward3.hospital.example");
    let data2 = format!("@{}", csr2.display());
    let (status, body) = curl(
        &e,
        &[
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &data2,
            "--cert",
            first.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            &est("simplereenroll"),
        ],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let second = est_certificates(&e, &body, "gw1-second");
    let second_serial = serial_of(&second);
    assert_ne!(second_serial, first_serial);
    // Another subject is not a renewal.
    let (_, foreign) = gateway_csr(&e, "gw5", "gw5.ward3.hospital.example");
    let (status, body) = curl(
        &e,
        &[
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &format!("@{}", foreign.display()),
            "--cert",
            second.to_str().unwrap(),
            "--key",
            key2.to_str().unwrap(),
            &est("simplereenroll"),
        ],
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    // Without a client certificate: 401.
    let (status, _) = curl(
        &e,
        &[
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &data2,
            &est("simplereenroll"),
        ],
    );
    assert_eq!(status, 401);

    // Upkeep retires the renewed certificate (overlap 0s here): superseded.
    let deadline = Instant::now() + Duration::from_secs(60);
    while e.one(&format!(
        "SELECT status FROM certificates WHERE serial = '{first_serial}'"
    )) != "revoked"
    {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not retired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        e.one(&format!(
            "SELECT revocation_reason FROM certificates WHERE serial = '{first_serial}'"
        )),
        "superseded"
    );

    // ca-cli renew, as a cron job runs it: not due at 30 days, renewed when asked within 400.
    let cert_file = e.path("device.pem");
    let key_file = e.path("device.key");
    std::fs::copy(&second, &cert_file).unwrap();
    std::fs::copy(&key2, &key_file).unwrap();
    let cli = |args: &[&str]| {
        Command::new(mamori_e2e::binary("ca-cli"))
            .args([
                "--ca-file",
                e.root.to_str().unwrap(),
                "renew",
                "--enroll-server",
                &e.enroll_url,
            ])
            .args([
                "--cert",
                cert_file.to_str().unwrap(),
                "--key",
                key_file.to_str().unwrap(),
            ])
            .args(args)
            .env("MAMORI_CLI_HOME", e.path("cli"))
            .output()
            .unwrap()
    };
    let out = cli(&[]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not due"),
        "{out:?}"
    );
    assert_eq!(serial_of(&cert_file), second_serial);
    let out = cli(&["--within", "400"]);
    assert!(out.status.success(), "{out:?}");
    let third_serial = serial_of(&cert_file);
    let (third_cert, third_key) = (e.path("third.pem"), e.path("third.key"));
    std::fs::copy(&cert_file, &third_cert).unwrap();
    std::fs::copy(&key_file, &third_key).unwrap();
    assert_ne!(third_serial, second_serial);
    assert!(e.path("device.pem.old").exists() && e.path("device.key.old").exists());
    assert_ne!(
        std::fs::read(&key_file).unwrap(),
        std::fs::read(&key2).unwrap(),
        "a new key"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // The renewed-away certificate can no longer renew (superseded once retired, or refused as
    // a key the server already replaced): the old key and certificate are refused.
    let deadline = Instant::now() + Duration::from_secs(60);
    while e.one(&format!(
        "SELECT status FROM certificates WHERE serial = '{second_serial}'"
    )) != "revoked"
    {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not retired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::fs::copy(&second, &cert_file).unwrap();
    std::fs::copy(&key2, &key_file).unwrap();
    let out = cli(&["--within", "400"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("revoked"),
        "{out:?}"
    );

    // The profile's static challenge enrolls too, filed under its owner, audited as such; a
    // near miss does not.
    let (_, csr9) = gateway_csr(&e, "gw9", "gw9.ward3.hospital.example");
    let data9 = format!("@{}", csr9.display());
    let (status, _) = curl(
        &e,
        &[
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &data9,
            "-u",
            "gw9:ward 3 gateways, staging 2025",
            &est("simpleenroll"),
        ],
    );
    assert_eq!(status, 403);
    let (status, body) = curl(
        &e,
        &[
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &data9,
            "-u",
            &format!("gw9:{STATIC_CHALLENGE}"),
            &est("simpleenroll"),
        ],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(e.one("SELECT count(*) FROM audit_log WHERE action = 'request.submit' AND actor = 'est:static-challenge'"), "1");

    // A staging certificate (device-bootstrap, issued through the API at staging) stands in
    // for the code over TLS; a certificate of another profile does not.
    let (boot_key, boot_b64) = gateway_csr(&e, "gw7-boot", "gw7.ward3.hospital.example");
    let boot_der = run(Command::new("base64").arg("-d").arg(&boot_b64)).stdout;
    let boot_csr = String::from_utf8(
        run(Command::new("openssl")
            .args(["req", "-inform", "DER", "-in", "/dev/stdin"])
            .stdin(std::fs::File::open(e.path("gw7-boot.der")).unwrap()))
        .stdout,
    )
    .unwrap();
    assert!(!boot_der.is_empty());
    let (status, view) = e.server.call(
        "POST",
        "/api/v1/requests",
        Some(&e.enroller.token()),
        Some(
            json!({"profile": "device-bootstrap", "csr": boot_csr, "justification": "staging gw7"}),
        ),
    );
    assert_eq!(status, 201, "{view}");
    let id = view["id"].as_str().unwrap();
    let (status, chain) = e.server.call(
        "GET",
        &format!("/api/v1/requests/{id}/certificate"),
        Some(&e.enroller.token()),
        None,
    );
    assert_eq!(status, 200);
    let boot_cert = e.path("gw7-boot.pem");
    std::fs::write(&boot_cert, chain.as_str().unwrap()).unwrap();
    artifact("device-bootstrap", &boot_cert);
    let (_, csr7) = gateway_csr(&e, "gw7", "gw7.ward3.hospital.example");
    let data7 = format!("@{}", csr7.display());
    let (status, body) = curl(
        &e,
        &[
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &data7,
            "--cert",
            boot_cert.to_str().unwrap(),
            "--key",
            boot_key.to_str().unwrap(),
            &est("simpleenroll"),
        ],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (_, csr8) = gateway_csr(&e, "gw8", "gw8.ward3.hospital.example");
    let (status, body) = curl(
        &e,
        &[
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &format!("@{}", csr8.display()),
            "--cert",
            third_cert.to_str().unwrap(),
            "--key",
            third_key.to_str().unwrap(),
            &est("simpleenroll"),
        ],
    );
    assert_eq!(
        status,
        403,
        "a network-gateway certificate is no staging certificate: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(String::from_utf8_lossy(&body).contains("bootstrap_profiles"));

    // The audit names the device path and the certificate that renewed.
    assert_eq!(e.one("SELECT count(*) FROM audit_log WHERE action = 'request.submit' AND actor LIKE 'est:chl-%'"), "1");
    assert!(e.one("SELECT count(*) FROM audit_log WHERE action = 'request.submit' AND actor LIKE 'renew:issuing/%'") == "1");
}

#[test]
fn est_enrolls_and_renews_with_curl_openssl_and_ca_cli_sqlite() {
    est(Backend::Sqlite);
}

#[test]
fn est_enrolls_and_renews_with_curl_openssl_and_ca_cli_postgres() {
    if std::env::var("MAMORI_TEST_POSTGRES_URL").is_err() {
        eprintln!("skipped: MAMORI_TEST_POSTGRES_URL is not set");
        return;
    }
    est(Backend::Postgres);
}

/// One certmonger daemon at a time in this test process: two session daemons started side by
/// side (the SoftHSM2 RA test beside the plain one) once answered a first `getcert request`
/// with "There is already a request with the nickname" in CI.
static CERTMONGER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A private D-Bus session and a certmonger daemon on it, with its state in `dir`.
struct Certmonger {
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
    bus: Child,
    daemon: Child,
    dir: PathBuf,
    address: String,
}

impl Drop for Certmonger {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

impl Certmonger {
    fn start(dir: &Path) -> Certmonger {
        let one_at_a_time = CERTMONGER.lock().unwrap_or_else(|e| e.into_inner());
        for sub in ["requests", "cas", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let address = format!("unix:path={}", dir.join("bus").display());
        let bus = Command::new("dbus-daemon")
            .args([
                "--session",
                "--nofork",
                "--nopidfile",
                &format!("--address={address}"),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !dir.join("bus").exists() {
            assert!(Instant::now() < deadline, "dbus-daemon did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::File::create(dir.join("certmonger.log")).unwrap();
        let daemon = Command::new("certmonger")
            .args(["-s", "-n", "-d", "2"])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("HOME", dir)
            .env("CERTMONGER_REQUESTS_DIR", dir.join("requests"))
            .env("CERTMONGER_CAS_DIR", dir.join("cas"))
            .env("CERTMONGER_TMPDIR", dir.join("tmp"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let certmonger = Certmonger {
            _one_at_a_time: one_at_a_time,
            bus,
            daemon,
            dir: dir.to_path_buf(),
            address,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !certmonger.getcert(&["list-cas", "-s"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "certmonger did not answer on D-Bus"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        certmonger
    }

    fn getcert(&self, args: &[&str]) -> Output {
        Command::new("getcert")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.getcert(args);
        assert!(
            out.status.success(),
            "getcert {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("certmonger.log")).unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Polls `getcert list` for request `id` until its status is `want`.
    fn wait_for(&self, id: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let list = self.ok(&["list", "-s", "-i", id]);
            if list.contains(&format!("status: {want}")) {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "request {id} never reached {want}: {list}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// certmonger enrolls a tablet named `cn` (mdm-tablet, issued at once) as its request `id`;
/// the key's and certificate's files.
fn certmonger_tablet(e: &Enrollment, cm: &Certmonger, id: &str, cn: &str) -> (PathBuf, PathBuf) {
    if !cm.ok(&["list-cas", "-s"]).contains("CA 'tablets'") {
        cm.ok(&[
            "add-scep-ca",
            "-s",
            "-c",
            "tablets",
            "-u",
            &format!("{}/scep/mdm-tablet", e.scep_url),
        ]);
    }
    let (code, _) = e.code("mdm-tablet", Some("tablet-[0-9]{4}"));
    let (key, cert) = (e.path(&format!("{id}.key")), e.path(&format!("{id}.pem")));
    cm.ok(&[
        "request",
        "-s",
        "-c",
        "tablets",
        "-I",
        id,
        "-k",
        key.to_str().unwrap(),
        "-f",
        cert.to_str().unwrap(),
        "-N",
        &format!("CN={cn},OU=Ward 3,O=Mamori Hospital,C=JP"),
        "-L",
        &code,
    ]);
    cm.wait_for(id, "MONITORING");
    (key, cert)
}

#[test]
fn scep_enrolls_waits_and_renews_with_certmonger() {
    for program in ["certmonger", "getcert", "dbus-daemon"] {
        if !have(program) {
            eprintln!("skipped: {program} is not installed (Debian packages certmonger, dbus)");
            return;
        }
    }
    let e = start(Backend::Sqlite, &[]);
    let cm = Certmonger::start(&e.path("certmonger"));
    let url = |profile: &str| format!("{}/scep/{profile}", e.scep_url);

    // mdm-tablet issues at once.
    let (key, cert) = certmonger_tablet(&e, &cm, "tablet", "tablet-0001");
    let first = serial_of(&cert);
    artifact("scep-mdm-tablet", &cert);
    assert_eq!(
        e.one(&format!(
            "SELECT profile_id FROM certificates WHERE serial = '{first}'"
        )),
        "mdm-tablet"
    );
    // Renewal: a new key, signed with the current certificate, issued at once.
    let old_key = std::fs::read(&key).unwrap();
    cm.ok(&["rekey", "-s", "-i", "tablet"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    // certmonger rewrites the file in place: a read in the middle of it finds no certificate.
    while try_serial(&cert).is_none_or(|s| s == first) {
        assert!(
            Instant::now() < deadline,
            "certmonger did not renew: {}",
            cm.ok(&["list", "-s", "-i", "tablet"])
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    cm.wait_for("tablet", "MONITORING");
    assert_ne!(
        std::fs::read(&key).unwrap(),
        old_key,
        "renewed with a new key"
    );
    let second = serial_of(&cert);
    assert_eq!(
        e.one(&format!("SELECT count(*) FROM renewals r JOIN requests q ON q.id = r.request_id WHERE r.old_serial = '{first}' AND q.certificate_serial = '{second}'")),
        "1"
    );

    // windows-device needs an officer's approval: certmonger waits, polls, then has it.
    cm.ok(&[
        "add-scep-ca",
        "-s",
        "-c",
        "windows",
        "-u",
        &url("windows-device"),
    ]);
    let (code, _) = e.code("windows-device", None);
    let (wkey, wcert) = (e.path("pc.key"), e.path("pc.pem"));
    cm.ok(&[
        "request",
        "-s",
        "-c",
        "windows",
        "-I",
        "pc",
        "-k",
        wkey.to_str().unwrap(),
        "-f",
        wcert.to_str().unwrap(),
        "-N",
        "CN=PC-WARD3-01,OU=Ward 3,O=Mamori Hospital,C=JP",
        "-L",
        &code,
    ]);
    cm.wait_for("pc", "CA_WORKING");
    assert!(!wcert.exists(), "no certificate before the approval");
    let request = e.approve_pending("windows-device");
    cm.ok(&["resubmit", "-s", "-i", "pc"]);
    cm.wait_for("pc", "MONITORING");
    let issued = serial_of(&wcert);
    artifact("scep-windows-device", &wcert);
    assert_eq!(
        e.one(&format!(
            "SELECT certificate_serial FROM requests WHERE id = '{request}'"
        )),
        issued
    );
    // One request for the whole exchange (PKCSReq, then polls): no duplicates.
    assert_eq!(
        e.one("SELECT count(*) FROM requests WHERE profile_id = 'windows-device'"),
        "1"
    );
}

/// Debian's micromdm scepclient encrypts with single DES whatever GetCACaps says: refused with a
/// signed badAlg by default, enrolled where `scep_allow_single_des` is set.
#[test]
fn scep_enrolls_with_micromdm_scepclient_only_where_des_is_allowed() {
    if !have("scepclient") {
        eprintln!("skipped: scepclient is not installed (Debian package scep)");
        return;
    }
    for (allowed, want) in [(false, "badAlg"), (true, "SUCCESS")] {
        let value = allowed.to_string();
        let e = start(
            Backend::Sqlite,
            &[("MAMORI_SCEP_ALLOW_SINGLE_DES", value.as_str())],
        );
        let (code, _) = e.code("mdm-tablet", None);
        let scepclient = || scepclient(&e, &code, "tablet-0042");
        let out = scepclient();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(want), "allowed={allowed}: {text}");
        let stored = e.one("SELECT count(*) FROM certificates WHERE profile_id = 'mdm-tablet'");
        if allowed {
            assert!(out.status.success(), "{text}");
            assert_eq!(stored, "1");
            let subject = run(Command::new("openssl").args([
                "x509",
                "-noout",
                "-subject",
                "-in",
                e.path("c.pem").to_str().unwrap(),
            ]));
            assert!(String::from_utf8_lossy(&subject.stdout).contains("tablet-0042"));
            // Run again, scepclient signs with its self-signed certificate for the same key
            // and the same transactionID (derived from the key): a retry, answered with the
            // certificate it already has, and nothing new stored. (It cannot renew: it never
            // signs with the issued certificate; certmonger's renewal is tested above.)
            let first = serial_of(&e.path("c.pem"));
            std::fs::remove_file(e.path("c.pem")).unwrap();
            let again = scepclient();
            assert!(again.status.success(), "{again:?}");
            assert_eq!(serial_of(&e.path("c.pem")), first);
            assert_eq!(
                e.one("SELECT count(*) FROM certificates WHERE profile_id = 'mdm-tablet'"),
                "1"
            );
        } else {
            assert_eq!(stored, "0", "nothing stored for a refused message");
        }
    }
}

/// The SCEP RA certificate among GetCACert's certificates for `profile`.
fn ra_certificate(e: &Enrollment, profile: &str) -> openssl::x509::X509 {
    let body = reqwest::blocking::get(format!("{}/scep/{profile}?operation=GetCACert", e.scep_url))
        .unwrap()
        .bytes()
        .unwrap();
    let p7 = openssl::pkcs7::Pkcs7::from_der(&body).unwrap();
    let certs = p7.signed().unwrap().certificates().unwrap();
    certs
        .iter()
        .find(|c| {
            c.subject_name()
                .entries()
                .any(|n| n.data().to_string().is_ok_and(|t| t.contains("SCEP RA")))
        })
        .unwrap()
        .to_owned()
}

/// With a PKCS#11 token configured the SCEP RA key is made inside it (SoftHSM2: RSA,
/// sensitive, never extractable; only its URI in `scep_ra`), and real clients enroll through
/// it: certmonger (AES envelope) and scepclient (single DES, allowed here); the token opens
/// their envelopes and signs the CertReps they verify.
#[test]
fn scep_enrolls_through_an_ra_key_in_softhsm() {
    for program in ["certmonger", "getcert", "dbus-daemon", "scepclient"] {
        if !have(program) {
            eprintln!(
                "skipped: {program} is not installed (Debian packages certmonger, dbus, scep)"
            );
            return;
        }
    }
    if let Err(why) = ca_server::custody::softhsm::module() {
        eprintln!("skipped: {why}");
        return;
    }
    let hsm = tempfile::tempdir().unwrap();
    let token = ca_server::custody::softhsm::create(hsm.path(), "mamori-scep", "1357").unwrap();
    let module = token.config.module.display().to_string();
    let pin_file = token.config.pin_file.clone().unwrap();
    let e = start(
        Backend::Sqlite,
        &[
            ("SOFTHSM2_CONF", token.conf.to_str().unwrap()),
            ("MAMORI_PKCS11_MODULE", module.as_str()),
            ("MAMORI_PKCS11_TOKEN_LABEL", "mamori-scep"),
            ("MAMORI_PKCS11_PIN_FILE", pin_file.to_str().unwrap()),
            ("MAMORI_SCEP_ALLOW_SINGLE_DES", "true"),
        ],
    );
    // certmonger first: its GetCACert makes the RA identity if upkeep has not yet.
    let cm = Certmonger::start(&e.path("certmonger"));
    let (_, cert) = certmonger_tablet(&e, &cm, "hsm-tablet", "tablet-0007");
    artifact("scep-hsm-tablet", &cert);
    let stored = e.one("SELECT key_sealed FROM scep_ra");
    assert!(
        stored.starts_with("pkcs11:token=mamori-scep;object=mamori-scep-ra-issuing-"),
        "{stored}"
    );
    if have("pkcs11-tool") {
        let out = run(Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", &token.conf)
            .args(["--module", &module, "--token-label", "mamori-scep"])
            .args(["--pin", "1357", "--list-objects", "--type", "privkey"]));
        let listing = String::from_utf8_lossy(&out.stdout);
        let ra = listing
            .split("Private Key Object")
            .find(|o| o.contains("mamori-scep-ra-"))
            .unwrap_or_else(|| panic!("no RA key in the token:\n{listing}"));
        assert!(
            ra.contains("RSA") && ra.contains("never extractable") && ra.contains("sensitive"),
            "{ra}"
        );
    }
    let (code, _) = e.code("mdm-tablet", None);
    let out = scepclient(&e, &code, "tablet-0008");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let subject = run(Command::new("openssl").args([
        "x509",
        "-noout",
        "-subject",
        "-in",
        e.path("c.pem").to_str().unwrap(),
    ]));
    assert!(String::from_utf8_lossy(&subject.stdout).contains("tablet-0008"));
    assert_eq!(
        e.one("SELECT count(*) FROM certificates WHERE profile_id = 'mdm-tablet'"),
        "2"
    );
}

/// micromdm's scepclient enrolls `cn` for mdm-tablet with `code`, encrypting to the RA
/// certificate (named by its fingerprint: scepclient encrypts to every certificate of
/// GetCACert unless told which one, and cannot encrypt to the ECDSA CA); keys and
/// certificates in `k.pem` and `c.pem` of the work folder.
fn scepclient(e: &Enrollment, code: &str, cn: &str) -> Output {
    let ra = ra_certificate(e, "mdm-tablet");
    let fingerprint = hex(&ra.digest(openssl::hash::MessageDigest::sha256()).unwrap());
    Command::new("scepclient")
        .current_dir(&e.work)
        .args([
            "-server-url",
            &format!("{}/scep/mdm-tablet", e.scep_url),
            "-challenge",
            code,
            "-cn",
            cn,
            "-organization",
            "Mamori Hospital",
            "-ou",
            "Ward 3",
            "-country",
            "JP",
            "-private-key",
            "k.pem",
            "-certificate",
            "c.pem",
            "-ca-fingerprint",
            &fingerprint,
        ])
        .output()
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn enrollment_codes_are_for_enrollers_and_listed_without_the_code() {
    let e = start(Backend::Sqlite, &[]);
    let auditor = e.server.user("audrey", &["auditor"]);
    let (status, body) = e.server.call(
        "POST",
        "/api/v1/enrollment-codes",
        Some(&auditor.token()),
        Some(json!({"profile": "mdm-tablet"})),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = e.server.call(
        "POST",
        "/api/v1/enrollment-codes",
        Some(&e.enroller.token()),
        Some(json!({"profile": "staff"})),
    );
    assert_eq!(status, 400, "a profile without device enrollment: {body}");
    let (status, body) = e.server.call(
        "POST",
        "/api/v1/enrollment-codes",
        Some(&e.enroller.token()),
        Some(json!({"profile": "mdm-tablet", "cn_pattern": "("})),
    );
    assert_eq!(status, 400, "{body}");
    let (code, id) = e.code("mdm-tablet", None);
    let (status, list) = e.server.call(
        "GET",
        "/api/v1/enrollment-codes",
        Some(&auditor.token()),
        None,
    );
    assert_eq!(status, 200);
    let text = list.to_string();
    assert!(text.contains(&id) && !text.contains(&code), "{text}");
    assert_eq!(
        e.one(&format!(
            "SELECT code_sha256 FROM enrollment_challenges WHERE id = '{id}'"
        )),
        hex(&openssl::sha::sha256(code.as_bytes())),
        "only the hash is stored"
    );
    let (status, _) = e.server.call(
        "POST",
        &format!("/api/v1/enrollment-codes/{id}/revoke"),
        Some(&e.enroller.token()),
        None,
    );
    assert_eq!(status, 204);
    let (status, body) = e.server.call(
        "POST",
        &format!("/api/v1/enrollment-codes/{id}/revoke"),
        Some(&e.enroller.token()),
        None,
    );
    assert_eq!(status, 409, "{body}");
    let list: Value = e
        .server
        .call(
            "GET",
            "/api/v1/enrollment-codes?profile=mdm-tablet",
            Some(&e.enroller.token()),
            None,
        )
        .1;
    assert_eq!(list[0]["state"], "expired", "{list}");
}

/// A SCEP client written here only from RFC 8894 and `ca_core::scep`'s types, for what the real
/// clients above do not send: GetCert, GetCRL, a replayed transaction and a reused code.
struct ScepClient {
    key: openssl::pkey::PKey<openssl::pkey::Private>,
    signer: openssl::x509::X509,
    ra: openssl::x509::X509,
    url: String,
}

impl ScepClient {
    fn new(e: &Enrollment, profile: &str) -> ScepClient {
        let url = format!("{}/scep/{profile}", e.scep_url);
        let body = reqwest::blocking::get(format!("{url}?operation=GetCACert"))
            .unwrap()
            .bytes()
            .unwrap();
        let p7 = openssl::pkcs7::Pkcs7::from_der(&body).unwrap();
        let ra = p7
            .signed()
            .unwrap()
            .certificates()
            .unwrap()
            .iter()
            .find(|c| format!("{:?}", c.subject_name()).contains("SCEP RA"))
            .unwrap()
            .to_owned();
        let key =
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "test client").unwrap();
        let name = name.build();
        let mut builder = openssl::x509::X509Builder::new().unwrap();
        builder.set_version(2).unwrap();
        // A positive serial: OpenSSL's default is an empty INTEGER, which re-encodes as 0 and
        // then names another certificate.
        let mut serial = openssl::bn::BigNum::new().unwrap();
        serial
            .rand(63, openssl::bn::MsbOption::MAYBE_ZERO, false)
            .unwrap();
        builder
            .set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        builder.set_subject_name(&name).unwrap();
        builder.set_issuer_name(&name).unwrap();
        builder.set_pubkey(&key).unwrap();
        let (from, until) = (
            openssl::asn1::Asn1Time::days_from_now(0).unwrap(),
            openssl::asn1::Asn1Time::days_from_now(1).unwrap(),
        );
        builder.set_not_before(&from).unwrap();
        builder.set_not_after(&until).unwrap();
        builder
            .sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        ScepClient {
            key,
            signer: builder.build(),
            ra,
            url,
        }
    }

    /// A CSR for `cn` with a challengePassword, signed by this client's key (DER).
    fn csr(&self, e: &Enrollment, cn: &str, challenge: &str) -> Vec<u8> {
        let key = e.path(&format!("scep-{cn}.key"));
        std::fs::write(&key, self.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let config = e.path(&format!("scep-{cn}.cnf"));
        std::fs::write(
            &config,
            format!("[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n[dn]\nO = Mamori Hospital\nCN = {cn}\n[attrs]\nchallengePassword = {challenge}\n"),
        )
        .unwrap();
        run(Command::new("openssl").args([
            "req",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-config",
            config.to_str().unwrap(),
            "-outform",
            "DER",
        ]))
        .stdout
    }

    /// Sends one pkiMessage; the CertRep's pkiStatus, failInfo and (on success) certificates.
    fn send(
        &self,
        kind: ca_core::scep::MessageType,
        transaction: &str,
        content: &[u8],
    ) -> (String, Option<String>, Vec<openssl::x509::X509>) {
        use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
        let mut recipients = openssl::stack::Stack::new().unwrap();
        recipients.push(self.ra.clone()).unwrap();
        let envelope = Pkcs7::encrypt(
            &recipients,
            content,
            openssl::symm::Cipher::aes_256_cbc(),
            Pkcs7Flags::BINARY,
        )
        .unwrap()
        .to_der()
        .unwrap();
        let attributes = ca_core::scep::PkiAttributes {
            message_type: kind,
            transaction_id: transaction.into(),
            sender_nonce: vec![42; 16],
        };
        let message = ca_core::scep::pki_request(
            &attributes,
            &envelope,
            &self.signer.to_der().unwrap(),
            |data| {
                let mut s =
                    openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &self.key)
                        .unwrap();
                Ok(s.sign_oneshot_to_vec(data).unwrap())
            },
        )
        .unwrap();
        let reply = reqwest::blocking::Client::new()
            .post(format!("{}?operation=PKIOperation", self.url))
            .body(message)
            .send()
            .unwrap();
        assert_eq!(reply.status().as_u16(), 200);
        let reply = reply.bytes().unwrap().to_vec();
        let (status, fail) = mamori_e2e::scep_status(&reply).unwrap();
        let mut certificates = Vec::new();
        if status == "0" {
            let p7 = Pkcs7::from_der(&reply).unwrap();
            let mut inner = Vec::new();
            let store = openssl::x509::store::X509StoreBuilder::new()
                .unwrap()
                .build();
            let none = openssl::stack::Stack::new().unwrap();
            p7.verify(
                &none,
                &store,
                None,
                Some(&mut inner),
                Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
            )
            .unwrap();
            let degenerate = Pkcs7::from_der(&inner)
                .unwrap()
                .decrypt(&self.key, &self.signer, Pkcs7Flags::BINARY)
                .unwrap();
            let p7 = Pkcs7::from_der(&degenerate).unwrap();
            if let Some(certs) = p7.signed().and_then(|s| s.certificates()) {
                certificates = certs.iter().map(|c| c.to_owned()).collect();
            }
        }
        (status, fail, certificates)
    }
}

#[test]
fn scep_get_cert_get_crl_replays_and_reused_codes() {
    use ca_core::der::Encode;
    use ca_core::scep::MessageType;
    let e = start(Backend::Sqlite, &[]);
    let client = ScepClient::new(&e, "mdm-tablet");
    let (code, _) = e.code("mdm-tablet", None);
    let csr = client.csr(&e, "tablet-0100", &code);
    let (status, _, certs) = client.send(MessageType::PkcsReq, "T-100", &csr);
    assert_eq!(status, "0");
    let issued = certs[0].to_der().unwrap();
    // The same message again (a replay, or a client retrying): the same certificate, nothing new.
    let (status, _, again) = client.send(MessageType::PkcsReq, "T-100", &csr);
    assert_eq!(
        (status.as_str(), again[0].to_der().unwrap()),
        ("0", issued.clone())
    );
    // The same transaction with another key's CSR: refused. The used code in a new transaction:
    // refused. Neither stores anything.
    let other = ScepClient::new(&e, "mdm-tablet");
    let (status, fail, _) = client.send(
        MessageType::PkcsReq,
        "T-100",
        &other.csr(&e, "tablet-0101", &code),
    );
    assert_eq!((status.as_str(), fail.as_deref()), ("2", Some("2")));
    let (status, fail, _) = other.send(
        MessageType::PkcsReq,
        "T-101",
        &other.csr(&e, "tablet-0101", &code),
    );
    assert_eq!((status.as_str(), fail.as_deref()), ("2", Some("2")));
    assert_eq!(
        e.one("SELECT count(*) FROM certificates WHERE profile_id = 'mdm-tablet'"),
        "1"
    );
    // CertPoll of the transaction answers its certificate; of an unknown one, badCertId.
    let (status, _, polled) = client.send(MessageType::CertPoll, "T-100", b"\x30\x00");
    assert_eq!(
        (status.as_str(), polled[0].to_der().unwrap()),
        ("0", issued.clone())
    );
    let (status, fail, _) = client.send(MessageType::CertPoll, "T-999", b"\x30\x00");
    assert_eq!((status.as_str(), fail.as_deref()), ("2", Some("4")));
    // GetCert by issuer and serial; GetCRL by the issuer.
    let cert = <x509_cert::Certificate as ca_core::der::Decode>::from_der(&issued).unwrap();
    let ias = cms::cert::IssuerAndSerialNumber {
        issuer: cert.tbs_certificate.issuer.clone(),
        serial_number: cert.tbs_certificate.serial_number.clone(),
    }
    .to_der()
    .unwrap();
    let (status, _, fetched) = client.send(MessageType::GetCert, "T-102", &ias);
    assert_eq!(
        (status.as_str(), fetched[0].to_der().unwrap()),
        ("0", issued)
    );
    let (status, _, _) = client.send(MessageType::GetCrl, "T-103", &ias);
    assert_eq!(status, "0", "GetCRL answers the issuing CA's CRL");
}

#[test]
fn scep_and_est_copies_sent_at_once_get_one_certificate() {
    use ca_core::scep::MessageType;
    let e = start(Backend::Sqlite, &[]);
    let client = ScepClient::new(&e, "mdm-tablet");
    let (code, _) = e.code("mdm-tablet", None);
    let csr = client.csr(&e, "tablet-0200", &code);
    let answers: Vec<(String, Vec<u8>)> = std::thread::scope(|scope| {
        let sends: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    let (status, _, certs) = client.send(MessageType::PkcsReq, "T-200", &csr);
                    (
                        status,
                        certs
                            .first()
                            .map(|c| c.to_der().unwrap())
                            .unwrap_or_default(),
                    )
                })
            })
            .collect();
        sends.into_iter().map(|s| s.join().unwrap()).collect()
    });
    assert!(
        answers.iter().all(|(status, _)| status == "0"),
        "{:?}",
        answers.iter().map(|a| &a.0).collect::<Vec<_>>()
    );
    assert!(
        answers.windows(2).all(|w| w[0].1 == w[1].1),
        "one certificate for every copy"
    );
    assert_eq!(
        e.one("SELECT count(*) FROM certificates WHERE profile_id = 'mdm-tablet'"),
        "1"
    );

    // Several rounds: the race is between copies, and a loaded machine shows it more often.
    for round in 0..4 {
        let (est_code, _) = e.code("network-gateway", None);
        let (_, b64) = gateway_csr(
            &e,
            &format!("gw-race{round}"),
            &format!("gw-race{round}.ward3.hospital.example"),
        );
        let data = format!("@{}", b64.display());
        let url = format!(
            "{}/.well-known/est/network-gateway/simpleenroll",
            e.enroll_url
        );
        let basic = format!("gw:{est_code}");
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let sends: Vec<_> = (0..6)
                .map(|_| {
                    scope.spawn(|| {
                        curl(
                            &e,
                            &[
                                "-H",
                                "Content-Type: application/pkcs10",
                                "--data-binary",
                                &data,
                                "-u",
                                &basic,
                                &url,
                            ],
                        )
                        .0
                    })
                })
                .collect();
            sends.into_iter().map(|s| s.join().unwrap()).collect()
        });
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        assert_eq!(
            e.one("SELECT count(*) FROM certificates WHERE profile_id = 'network-gateway'"),
            (round + 1).to_string()
        );
    }
    assert!(!e.server.logs().contains("UNIQUE"), "{}", e.server.logs());
}
