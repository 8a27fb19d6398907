//! Harness for Mamori's end-to-end tests: builds and starts the real `ca-server` on free local
//! ports against SQLite or a fresh PostgreSQL database, waits for it with a deadline (no sleeps),
//! and talks to it like a client would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod private_postgres;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ca_core::totp::TotpSecret;
use serde_json::{json, Value};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

static BUILD: Mutex<bool> = Mutex::new(false);

/// Path to a workspace binary (`ca-server`, `ca-cli`), building it once if needed.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    let mut built = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    // `cargo test --workspace` builds both binaries before any test runs (ca-server and ca-cli
    // have integration tests of their own); build here only when they are missing.
    if !*built && !path.exists() {
        let profile_release = dir.ends_with("release");
        let mut cmd = Command::new(env!("CARGO"));
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().to_string();
            if (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR")
                || key.starts_with("RUSTC")
            {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(workspace_root()).args([
            "build",
            "--bins",
            "-p",
            "ca-server",
            "-p",
            "ca-cli",
        ]);
        if profile_release {
            cmd.arg("--release");
        }
        let status = cmd.status().unwrap();
        assert!(status.success(), "building the binaries failed");
        *built = true;
    }
    assert!(path.exists(), "{} missing", path.display());
    path
}

/// Which database the server runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// SQLite in the data folder.
    Sqlite,
    /// A fresh database on the PostgreSQL server named by MAMORI_TEST_POSTGRES_URL.
    Postgres,
    /// A database the test made itself, on a PostgreSQL server of its own (one it restarts).
    PostgresAt(String),
}

/// A port for a server under test, chosen below the kernel's ephemeral range so that no outgoing
/// connection (the tests' own HTTP clients use ephemeral ports) can take it between choosing and
/// binding; ports already handed out in this process are never handed out again.
pub fn free_port() -> u16 {
    static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = 10_000u16;
    let span = ephemeral_low.saturating_sub(low).max(1000);
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let r = rand_bytes(2);
    let start = u16::from_be_bytes([r[0], r[1]]) % span;
    for i in 0..span {
        let port = low + (start + i) % span;
        if taken.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.push(port);
            return port;
        }
    }
    panic!("no free port below {ephemeral_low}");
}

fn fresh_postgres_database() -> String {
    let base = std::env::var("MAMORI_TEST_POSTGRES_URL").expect("MAMORI_TEST_POSTGRES_URL");
    let name = format!("mamori_t_{}", hex(&rand_bytes(6)));
    let status = Command::new("psql")
        .arg(&base)
        .args(["-qc", &format!("CREATE DATABASE {name}")])
        .status()
        .unwrap();
    assert!(status.success(), "creating {name}");
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

fn rand_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    openssl::rand::rand_bytes(&mut out).unwrap();
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A person with credentials and a TOTP secret; hands out each code once, in step order.
pub struct Person {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    secret: TotpSecret,
    last_step: Mutex<u64>,
    /// Bearer token after login.
    pub token: Mutex<Option<String>>,
}

/// The oldest TOTP step worth sending at `now`. The server accepts one step of drift either way,
/// so the previous step stops being accepted at the next 30 s boundary: it is used only while at
/// least 10 s of the current window remain, so that a request slowed by load still arrives in
/// time.
fn oldest_usable_step(now: u64) -> u64 {
    let current = now / 30;
    if now % 30 < 20 {
        current - 1
    } else {
        current
    }
}

impl Person {
    /// A person known by name, password and TOTP secret (e.g. one enrolled by a test).
    pub fn new(username: &str, password: &str, secret: TotpSecret) -> Self {
        Person {
            username: username.into(),
            password: password.into(),
            secret,
            last_step: Mutex::new(0),
            token: Mutex::new(None),
        }
    }

    /// A TOTP code the server has not seen from this person (uses the one-step drift window;
    /// waits for the clock only when three codes were used within one step).
    pub fn code(&self) -> String {
        let mut last = self.last_step.lock().unwrap();
        loop {
            let now = ca_core::time::UnixTime::now().as_secs();
            let current = now / 30;
            let step = (*last + 1).max(oldest_usable_step(now));
            if step <= current + 1 {
                *last = step;
                return self.secret.code_at_step(step);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Like [`Person::code`], but `None` instead of waiting when every code of the drift window
    /// has been used.
    pub fn try_code(&self) -> Option<String> {
        let mut last = self.last_step.lock().unwrap();
        let now = ca_core::time::UnixTime::now().as_secs();
        let current = now / 30;
        let step = (*last + 1).max(oldest_usable_step(now));
        if step > current + 1 {
            return None;
        }
        *last = step;
        Some(self.secret.code_at_step(step))
    }

    /// Never sends a code for `step` or an earlier one (the server refuses them, e.g. after a
    /// restore).
    pub fn skip_codes_through(&self, step: u64) {
        let mut last = self.last_step.lock().unwrap();
        *last = (*last).max(step);
    }

    /// The code of `steps` TOTP steps ago (for replay and staleness tests).
    pub fn stale_code(&self, steps: u64) -> String {
        let current = ca_core::time::UnixTime::now().as_secs() / 30;
        self.secret.code_at_step(current.saturating_sub(steps))
    }

    /// The bearer token.
    pub fn token(&self) -> String {
        self.token.lock().unwrap().clone().expect("logged in")
    }
}

/// A running server.
pub struct Server {
    child: Mutex<Child>,
    /// Its data folder.
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`.
    pub public_url: String,
    /// `https://localhost:<port>`.
    pub api_url: String,
    /// The database URL.
    pub database_url: String,
    /// HTTPS client trusting the server's root.
    pub client: reqwest::blocking::Client,
    /// The dev admin (admin and security officer).
    pub admin: Person,
    /// The dev officer (security officer): approves what the admin asks for.
    pub officer: Person,
    /// The root certificate (PEM).
    pub root_pem: String,
    http_port: u16,
    api_port: u16,
    extra_env: Vec<(String, String)>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if let (Some((prefix, name)), Ok(base)) = (
            self.database_url.rsplit_once('/'),
            std::env::var("MAMORI_TEST_POSTGRES_URL"),
        ) {
            if prefix.starts_with("postgres") && name.starts_with("mamori_t_") {
                let _ = Command::new("psql")
                    .arg(&base)
                    .args(["-qc", &format!("DROP DATABASE IF EXISTS {name}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

impl Server {
    /// Starts `ca-server dev` with extra environment variables and waits until it answers.
    pub fn start(backend: Backend, extra_env: &[(&str, &str)]) -> Server {
        Self::start_prepared(backend, extra_env, |_, _, _| {})
    }

    /// As [`Server::start`], with its data folder (and SQLite database) made inside `base`
    /// (a small filesystem, say).
    pub fn start_in(base: &Path, backend: Backend, extra_env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir_in(base).unwrap();
        Self::start_prepared_in(dir, backend, extra_env, |_, _, _| {})
    }

    /// As [`Server::start`], on a hierarchy whose root is offline: `ca-server init
    /// --issuing-csr`, a ceremony (`ca-server ceremony`, its vault in `<data>/offline`) that
    /// creates the root and signs the issuing CA and the root's OCSP responder, and `ca-server
    /// init --import-issuing`, before `ca-server dev` starts on the result.
    pub fn start_offline_root(backend: Backend, extra_env: &[(&str, &str)]) -> Server {
        Self::start_prepared(backend, extra_env, offline_root_ceremony)
    }

    fn start_prepared(
        backend: Backend,
        extra_env: &[(&str, &str)],
        prepare: impl FnOnce(&Path, &str, &str),
    ) -> Server {
        Self::start_prepared_in(tempfile::tempdir().unwrap(), backend, extra_env, prepare)
    }

    fn start_prepared_in(
        dir: tempfile::TempDir,
        backend: Backend,
        extra_env: &[(&str, &str)],
        prepare: impl FnOnce(&Path, &str, &str),
    ) -> Server {
        let http_port = free_port();
        let api_port = free_port();
        let public_url = format!("http://127.0.0.1:{http_port}");
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("mamori.db").display()),
            Backend::Postgres => fresh_postgres_database(),
            Backend::PostgresAt(url) => url.clone(),
        };
        let extra_env: Vec<(String, String)> = extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        prepare(dir.path(), &database_url, &public_url);
        let child = spawn_server(
            "dev",
            dir.path(),
            &database_url,
            http_port,
            api_port,
            &public_url,
            &extra_env,
        );
        let admin_file = dir.path().join("dev-admin.json");
        let child = wait_ready(child, &public_url, dir.path(), Some(&admin_file));
        let dev_person = |name: &str| {
            let file = dir.path().join(format!("dev-{name}.json"));
            let value: Value =
                serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            let secret = TotpSecret::from_base32(value["totp_secret"].as_str().unwrap()).unwrap();
            Person::new(name, value["password"].as_str().unwrap(), secret)
        };
        let (admin, officer) = (dev_person("admin"), dev_person("officer"));
        let root_pem = std::fs::read_to_string(dir.path().join("root-ca.pem")).unwrap();
        let client = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes()).unwrap())
            .tls_built_in_root_certs(false)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Server {
            child: Mutex::new(child),
            http_port,
            api_port,
            extra_env,
            dir,
            public_url,
            api_url: format!("https://localhost:{api_port}"),
            database_url,
            client,
            admin,
            officer,
            root_pem,
        }
    }

    /// Kills the server with SIGKILL (no chance to clean up), as a crash or power cut would.
    pub fn kill(&self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs, starts it again on the same data, database and ports, and
    /// waits until it answers.
    pub fn restart(&mut self) {
        // Stop the running one first (harmless when a test already killed it): otherwise the new
        // process cannot bind the ports and the old one keeps answering.
        self.kill();
        let child = spawn_server(
            "dev",
            self.dir.path(),
            &self.database_url,
            self.http_port,
            self.api_port,
            &self.public_url,
            &self.extra_env,
        );
        self.child = Mutex::new(wait_ready(child, &self.public_url, self.dir.path(), None));
    }

    /// Starts a second `ca-server serve` on the same database and keys (another machine of a
    /// group in front of one PostgreSQL cluster), on its own ports.
    pub fn instance(&self, extra_env: &[(&str, &str)]) -> Instance {
        let http_port = free_port();
        let api_port = free_port();
        let public_url = format!("http://127.0.0.1:{http_port}");
        let mut env: Vec<(String, String)> = self.extra_env.clone();
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env.push((
            "MAMORI_CA_PASSPHRASE_FILE".into(),
            self.dir.path().join("dev-passphrase").display().to_string(),
        ));
        let child = spawn_server(
            "serve",
            self.dir.path(),
            &self.database_url,
            http_port,
            api_port,
            &self.public_url,
            &env,
        );
        let child = wait_ready(child, &public_url, self.dir.path(), None);
        Instance {
            child,
            public_url,
            api_url: format!("https://localhost:{api_port}"),
        }
    }

    /// Sends a JSON request to the API; returns status and parsed body (Null when empty).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.api_url);
        let mut request = match method {
            "GET" => self.client.get(url),
            "POST" => self.client.post(url),
            "PUT" => self.client.put(url),
            other => panic!("method {other}"),
        };
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Logs a person in; panics on failure.
    pub fn login(&self, person: &Person) {
        let (status, body) = self.call("POST", "/api/v1/login", None, Some(json!({"username": person.username, "password": person.password, "totp": person.code()})));
        assert_eq!(status, 200, "login {}: {body}", person.username);
        *person.token.lock().unwrap() = Some(body["token"].as_str().unwrap().to_string());
    }

    /// Creates a user on the server itself (`ca-server user add`, with the CA passphrase: the
    /// bootstrap path, which needs no approver) and returns them enrolled and logged in. A vendor
    /// account is registered for the organization `Acme Medical` and the e-mail domain
    /// `acme.example` (the vendor-maintenance profile holds the CSR's O and e-mail to them). The
    /// four-eyes path through the API is what `tests/attacks.rs` drives.
    pub fn user(&self, name: &str, roles: &[&str]) -> Person {
        let roles = roles.join(",");
        let mut args = vec![
            "user",
            "add",
            "--username",
            name,
            "--roles",
            &roles,
            "--json",
        ];
        if roles.split(',').any(|r| r == "vendor") {
            args.extend([
                "--organization",
                "Acme Medical",
                "--email-domain",
                "acme.example",
            ]);
        }
        let out = self.ca_server(&args);
        assert!(
            out.status.success(),
            "ca-server user add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let created: Value = serde_json::from_slice(&out.stdout).unwrap();
        self.enrol(name, created["enrolment_code"].as_str().unwrap())
    }

    /// Sets where `person`'s notices go (`PUT /api/v1/me/contact`, with a fresh code).
    pub fn set_contact(&self, person: &Person, email: &str) {
        let (status, body) = self.call(
            "PUT",
            "/api/v1/me/contact",
            Some(&person.token()),
            Some(serde_json::json!({"email": email, "totp": person.code()})),
        );
        assert_eq!(status, 200, "{body}");
    }

    /// Enrols `name` with the whole enrolment code and returns them logged in.
    pub fn enrol(&self, name: &str, code: &str) -> Person {
        let password = format!("pw-{}", hex(&rand_bytes(8)));
        let (status, enrolment) = self.call(
            "POST",
            "/api/v1/enrol",
            None,
            Some(json!({"username": name, "code": code, "new_password": password})),
        );
        assert_eq!(status, 200, "enrol {name}: {enrolment}");
        let person = Person::new(name, &password, totp_secret_of(&enrolment));
        self.login(&person);
        person
    }

    /// GETs a public URL.
    pub fn public_get(&self, path: &str) -> reqwest::blocking::Response {
        reqwest::blocking::get(format!("{}{path}", self.public_url)).unwrap()
    }

    /// Runs SQL directly on the server's database (to simulate tampering).
    pub fn sql(&self, statement: &str) {
        let status = if let Some(path) = self.database_url.strip_prefix("sqlite://") {
            Command::new("sqlite3")
                // Wait for the server's writer instead of failing with "database is locked".
                .args(["-cmd", ".timeout 10000"])
                .arg(path)
                .arg(statement)
                .status()
                .unwrap()
        } else {
            Command::new("psql")
                .arg(&self.database_url)
                .args(["-qc", statement])
                .status()
                .unwrap()
        };
        assert!(status.success(), "sql: {statement}");
    }

    /// Asserts that `GET /api/v1/audit/verify`, asked with `token` (an admin's or an auditor's),
    /// finds the whole audit chain intact.
    pub fn assert_audit_intact(&self, token: &str) {
        let (status, verify) = self.call("GET", "/api/v1/audit/verify", Some(token), None);
        assert_eq!(status, 200, "{verify}");
        assert_eq!(verify["ok"], true, "{verify}");
    }

    /// Runs a query on the server's database and returns its output (one line per row, `|`
    /// between columns).
    pub fn query(&self, statement: &str) -> String {
        let output = if let Some(path) = self.database_url.strip_prefix("sqlite://") {
            Command::new("sqlite3")
                // Wait for the server's writer instead of failing with "database is locked".
                .args(["-cmd", ".timeout 10000"])
                .arg(path)
                .arg(statement)
                .output()
                .unwrap()
        } else {
            Command::new("psql")
                .arg(&self.database_url)
                .args(["-tAc", statement])
                .output()
                .unwrap()
        };
        assert!(output.status.success(), "query: {statement}");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Runs `ca-server <args>` (e.g. backup, restore) on this server's data folder and database,
    /// with the dev passphrase file.
    pub fn ca_server(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary("ca-server"))
            .args(args)
            .env("MAMORI_DATA_DIR", self.dir.path())
            .env("MAMORI_DATABASE_URL", &self.database_url)
            .env("MAMORI_PUBLIC_URL", &self.public_url)
            .env("MAMORI_POLICIES_DIR", workspace_root().join("policies"))
            .env(
                "MAMORI_CA_PASSPHRASE_FILE",
                self.dir.path().join("dev-passphrase"),
            )
            .env("MAMORI_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Everything the server (and its other instances) logged so far.
    pub fn logs(&self) -> String {
        logs_in(self.dir.path())
    }

    /// The data folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Another instance of the server on the same database.
pub struct Instance {
    child: Child,
    /// `http://127.0.0.1:<port>` (its public listener).
    pub public_url: String,
    /// `https://localhost:<port>` (its API).
    pub api_url: String,
}

/// A server restored from a backup on "another machine": its own data folder and SQLite
/// database, `ca-server serve` on ports of its own.
pub struct Restored {
    /// The running server (dropped, so killed, before its folder goes).
    pub instance: Instance,
    /// Its data folder.
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Restores `backup` (with this server's CA passphrase) into a fresh data folder and SQLite
    /// database, then starts `ca-server serve` there and waits until it answers.
    pub fn restore_elsewhere(&self, backup: &Path) -> Restored {
        let dir = tempfile::tempdir().unwrap();
        let passphrase = dir.path().join("dev-passphrase");
        std::fs::copy(self.dir.path().join("dev-passphrase"), &passphrase).unwrap();
        let (http_port, api_port) = (free_port(), free_port());
        let public_url = format!("http://127.0.0.1:{http_port}");
        let database_url = format!("sqlite://{}", dir.path().join("mamori.db").display());
        ca_server_in(
            dir.path(),
            &database_url,
            &public_url,
            &["restore", "--from", backup.to_str().unwrap()],
        );
        let env = vec![(
            "MAMORI_CA_PASSPHRASE_FILE".to_string(),
            passphrase.display().to_string(),
        )];
        let child = spawn_server(
            "serve",
            dir.path(),
            &database_url,
            http_port,
            api_port,
            &public_url,
            &env,
        );
        let child = wait_ready(child, &public_url, dir.path(), None);
        Restored {
            instance: Instance {
                child,
                public_url,
                api_url: format!("https://localhost:{api_port}"),
            },
            dir,
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed P-256 certificate for `cn` with subjectAltName `san` (two days), made by
/// openssl for a test server of someone else's (slapd, an SMTP server): `(cert.pem, key.pem)`
/// written into `dir` with names starting `name`.
pub fn self_signed_tls(dir: &Path, name: &str, cn: &str, san: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .args(["-subj", &format!("/CN={cn}")])
        .args(["-addext", &format!("subjectAltName={san}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (cert, key)
}

/// Every `*.log` file in `dir`, concatenated.
fn logs_in(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn spawn_server(
    command: &str,
    dir: &Path,
    database_url: &str,
    http_port: u16,
    api_port: u16,
    public_url: &str,
    extra_env: &[(String, String)],
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("server-{http_port}.log")))
        .unwrap();
    let mut cmd = Command::new(binary("ca-server"));
    cmd.arg(command)
        .env("MAMORI_DATA_DIR", dir)
        .env("MAMORI_DATABASE_URL", database_url)
        .env("MAMORI_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("MAMORI_API_ADDR", format!("127.0.0.1:{api_port}"))
        .env("MAMORI_PUBLIC_URL", public_url)
        .env("MAMORI_POLICIES_DIR", workspace_root().join("policies"))
        .env("MAMORI_LOG", "warn")
        // Device enrollment listeners only where a test asks for them (fixed dev ports would
        // collide between tests running at once).
        .env("MAMORI_ENROLL_ADDR", "")
        .env("MAMORI_SCEP_HTTP_ADDR", "")
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Polls `/healthz` (and, for a first start, the dev admin file) with a deadline.
fn wait_ready(mut child: Child, public_url: &str, dir: &Path, admin_file: Option<&Path>) -> Child {
    let deadline = Instant::now() + Duration::from_secs(120);
    let plain = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let logs = || logs_in(dir);
    loop {
        let ready = admin_file.is_none_or(Path::exists)
            && plain
                .get(format!("{public_url}/healthz"))
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
        if ready {
            return child;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("ca-server exited with {status}: {}", logs());
        }
        assert!(
            Instant::now() < deadline,
            "ca-server did not become ready: {}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The TOTP secret in an enrolment answer (`totp_uri`, as user creation and TOTP reset give it).
pub fn totp_secret_of(enrolment: &Value) -> TotpSecret {
    TotpSecret::from_otpauth_uri(enrolment["totp_uri"].as_str().unwrap()).unwrap()
}

/// A P-256 key and a PEM CSR with the given subject and SANs.
pub fn csr(
    subject: &[(rcgen::DnType, &str)],
    sans: Vec<rcgen::SanType>,
) -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (kind, value) in subject {
        params.distinguished_name.push(kind.clone(), *value);
    }
    params.subject_alt_names = sans;
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    (key, pem)
}

/// A key and CSR for an ambulance terminal: CN `amb-<id>`, URI SAN
/// `urn:mamori:device:ambulance:<id>` (what the `ambulance-terminal` profile asks for).
pub fn device_csr(id: &str) -> (rcgen::KeyPair, String) {
    csr(
        &[(rcgen::DnType::CommonName, &format!("amb-{id}"))],
        vec![rcgen::SanType::URI(
            format!("urn:mamori:device:ambulance:{id}")
                .as_str()
                .try_into()
                .unwrap(),
        )],
    )
}

/// The cRLNumber of a DER CRL.
pub fn crl_number(der: &[u8]) -> u128 {
    use ca_core::der::Decode;
    let crl = ca_core::x509_cert::crl::CertificateList::from_der(der).unwrap();
    let ext = crl
        .tbs_cert_list
        .crl_extensions
        .unwrap()
        .into_iter()
        .find(|e| e.extn_id.to_string() == "2.5.29.20")
        .unwrap();
    ca_core::der::asn1::Uint::from_der(ext.extn_value.as_bytes())
        .unwrap()
        .as_bytes()
        .iter()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
}

/// The serials a DER CRL lists, as [`normal_serial`] writes them, in CRL order.
pub fn crl_serials(der: &[u8]) -> Vec<String> {
    openssl::x509::X509Crl::from_der(der)
        .unwrap()
        .get_revoked()
        .map(|list| {
            list.iter()
                .map(|r| {
                    r.serial_number()
                        .to_bn()
                        .unwrap()
                        .to_hex_str()
                        .unwrap()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A hex serial upper case without leading zeros (as OpenSSL prints it).
pub fn normal_serial(serial: &str) -> String {
    serial.trim_start_matches('0').to_uppercase()
}

/// POSTs a one-certificate OCSP request to `<public_url>/ocsp`; the status it reports as the API
/// names it (`valid`, `revoked`, `unknown`).
pub fn ocsp_status(
    public_url: &str,
    leaf: &openssl::x509::X509,
    issuer: &openssl::x509::X509,
) -> &'static str {
    use openssl::ocsp::{OcspCertId, OcspCertStatus, OcspRequest, OcspResponse};
    let id = || OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), leaf, issuer).unwrap();
    let mut request = OcspRequest::new().unwrap();
    request.add_id(id()).unwrap();
    let der = reqwest::blocking::Client::new()
        .post(format!("{public_url}/ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(request.to_der().unwrap())
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let response = OcspResponse::from_der(&der).unwrap();
    match response
        .basic()
        .unwrap()
        .find_status(&id())
        .map(|s| s.status)
    {
        Some(OcspCertStatus::GOOD) => "valid",
        Some(OcspCertStatus::REVOKED) => "revoked",
        _ => "unknown",
    }
}

/// The issuing CA's certificate, from the public listener.
pub fn issuing_certificate(public_url: &str) -> openssl::x509::X509 {
    openssl::x509::X509::stack_from_pem(
        &reqwest::blocking::get(format!("{public_url}/ca/issuing.pem"))
            .unwrap()
            .bytes()
            .unwrap(),
    )
    .unwrap()
    .remove(0)
}

/// RFC 3339 for a Unix time.
pub fn rfc3339(secs: u64) -> String {
    ca_core::time::UnixTime(secs).to_rfc3339()
}

/// Output of one `ca-cli` run.
#[derive(Debug)]
pub struct CliRun {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliRun {
    /// Parses stdout as JSON (for `--json` runs).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

impl Server {
    /// Runs the real `ca-cli` against this server with its own config folder `home`.
    pub fn cli(&self, home: &Path, args: &[&str]) -> CliRun {
        let output = Command::new(binary("ca-cli"))
            .args(["--config-dir", home.to_str().unwrap()])
            .args(args)
            .env("MAMORI_SERVER", &self.api_url)
            .env("MAMORI_PUBLIC_URL", &self.public_url)
            .env("MAMORI_CA_FILE", self.dir.path().join("root-ca.pem"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        CliRun {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `ca-cli` with a standard output whose reader has already gone away (`ca-cli ... |
    /// head` after head exits).
    pub fn cli_into_closed_pipe(&self, home: &Path, args: &[&str]) -> CliRun {
        let mut child = Command::new(binary("ca-cli"))
            .args(["--config-dir", home.to_str().unwrap()])
            .args(args)
            .env("MAMORI_SERVER", &self.api_url)
            .env("MAMORI_PUBLIC_URL", &self.public_url)
            .env("MAMORI_CA_FILE", self.dir.path().join("root-ca.pem"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        CliRun {
            code: output.status.code().unwrap_or(-1),
            stdout: String::new(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Logs `person` in through the CLI, in config folder `home`.
    pub fn cli_login(&self, home: &Path, person: &Person) {
        let pw = home.join("password");
        std::fs::create_dir_all(home).unwrap();
        std::fs::write(&pw, &person.password).unwrap();
        let code = person.code();
        let run = self.cli(
            home,
            &[
                "login",
                "--username",
                &person.username,
                "--password-file",
                pw.to_str().unwrap(),
                "--totp",
                &code,
            ],
        );
        assert_eq!(run.code, 0, "cli login {}: {run:?}", person.username);
    }
}

/// A TCP forwarder standing in for the network between an instance and PostgreSQL; `cut`
/// severs every connection and refuses new ones, as a database outage would.
pub struct Link {
    /// `127.0.0.1:<port>` to connect to instead of the database.
    pub addr: String,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    streams: std::sync::Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl Link {
    /// Forwards a local port to `target`.
    pub fn to(target: &str) -> Link {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (cut2, streams2, target) = (cut.clone(), streams.clone(), target.to_string());
        std::thread::spawn(move || {
            for incoming in listener.incoming() {
                let Ok(client) = incoming else { continue };
                if cut2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                let mut list = streams2.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Link { addr, cut, streams }
    }

    /// Severs every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.streams.lock().unwrap().iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// A running `ca-server ocsp` instance.
pub struct OcspOnly {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Drop for OcspOnly {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts an OCSP-only instance on the same database (or `database_url`), with the dev
    /// passphrase, and waits for it to answer.
    pub fn ocsp_only(&self, database_url: &str) -> OcspOnly {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(self.dir.path().join(format!("ocsp-{port}.log"))).unwrap();
        let child = Command::new(binary("ca-server"))
            .arg("ocsp")
            .env("MAMORI_DATA_DIR", self.dir.path())
            .env("MAMORI_DATABASE_URL", database_url)
            .env("MAMORI_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("MAMORI_PUBLIC_URL", &self.public_url)
            .env(
                "MAMORI_CA_PASSPHRASE_FILE",
                self.dir.path().join("dev-passphrase"),
            )
            .env("MAMORI_MAINTENANCE_INTERVAL_SECS", "1")
            .env("MAMORI_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut instance = OcspOnly { child, url };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if reqwest::blocking::get(format!("{}/healthz", instance.url))
                .map(|r| r.status().is_success())
                .unwrap_or(false)
            {
                return instance;
            }
            if let Some(status) = instance.child.try_wait().unwrap() {
                panic!(
                    "ca-server ocsp exited with {status}: {}",
                    std::fs::read_to_string(self.dir.path().join(format!("ocsp-{port}.log")))
                        .unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "ca-server ocsp did not become ready: {}",
                std::fs::read_to_string(self.dir.path().join(format!("ocsp-{port}.log")))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The pkiStatus (`0` success, `2` failure, `3` pending) and failInfo of a SCEP CertRep, read
/// with RustCrypto's `cms` types; `None` when it is not a CertRep.
pub fn scep_status(der: &[u8]) -> Option<(String, Option<String>)> {
    use ca_core::der::Decode;
    let info = cms::content_info::ContentInfo::from_der(der).ok()?;
    let signed: cms::signed_data::SignedData = info.content.decode_as().ok()?;
    let signer = signed.signer_infos.0.iter().next()?;
    let attrs = signer.signed_attrs.as_ref()?;
    let text = |oid: &str| {
        attrs
            .iter()
            .find(|a| a.oid.to_string() == oid)
            .and_then(|a| a.values.iter().next())
            .map(|v| String::from_utf8_lossy(v.value()).to_string())
    };
    Some((
        text("2.16.840.1.113733.1.9.3")?,
        text("2.16.840.1.113733.1.9.4"),
    ))
}

/// Runs `ca-server <args>` on a data folder and database with its passphrase file (`dev-passphrase`)
/// and panics with its output when it fails.
pub fn ca_server_in(dir: &Path, database_url: &str, public_url: &str, args: &[&str]) -> String {
    let output = Command::new(binary("ca-server"))
        .args(args)
        .env("MAMORI_DATA_DIR", dir)
        .env("MAMORI_DATABASE_URL", database_url)
        .env("MAMORI_PUBLIC_URL", public_url)
        .env("MAMORI_POLICIES_DIR", workspace_root().join("policies"))
        .env("MAMORI_CA_PASSPHRASE_FILE", dir.join("dev-passphrase"))
        .env("MAMORI_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ca-server {args:?}: {said}");
    said
}

/// The offline root's three steps before a server starts (see [`Server::start_offline_root`]);
/// the ceremony's vault and output are in `<dir>/offline`.
fn offline_root_ceremony(dir: &Path, database_url: &str, public_url: &str) {
    let private = |path: &Path, text: &str| {
        std::fs::write(path, format!("{text}\n")).unwrap();
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    private(
        &dir.join("dev-passphrase"),
        &format!("online-{nanos:x}-{}", std::process::id()),
    );
    let offline = dir.join("offline");
    std::fs::create_dir_all(&offline).unwrap();
    let requests = offline.join("requests");
    ca_server_in(
        dir,
        database_url,
        public_url,
        &["init", "--issuing-csr", requests.to_str().unwrap()],
    );
    private(
        &offline.join("vault-passphrase"),
        &format!("vault-{nanos:x}"),
    );
    std::fs::write(
        offline.join("ceremony.toml"),
        format!(
            "vault = \"vault\"\nout = \"out\"\npublic_url = \"{public_url}\"\npolicies_dir = \"{}\"\n\
             [root]\norganization = \"Mamori Hospital Group\"\ncountry = \"JP\"\nname = \"Mamori Offline Root\"\n\
             key_algorithm = \"ecdsa-p384\"\nvalidity_days = 7300\n\
             [[sign_ca]]\ncsr = \"requests/issuing.csr\"\nvalidity_days = 1825\n\
             [[sign_responder]]\ncsr = \"requests/root-ocsp.csr\"\nvalidity_days = 400\n\
             [crl]\nvalidity_days = 180\n",
            workspace_root().join("policies").display()
        ),
    )
    .unwrap();
    let script = offline.join("ceremony.toml");
    let vault_pass = offline.join("vault-passphrase");
    ca_server_in(
        dir,
        database_url,
        public_url,
        &[
            "ceremony",
            "--script",
            script.to_str().unwrap(),
            "--passphrase-file",
            vault_pass.to_str().unwrap(),
        ],
    );
    let out = offline.join("out");
    ca_server_in(
        dir,
        database_url,
        public_url,
        &["init", "--import-issuing", out.to_str().unwrap()],
    );
}

/// An ambulance terminal's certificate issued through the API: the leaf, its issuer and serial.
pub struct Device {
    /// The certificate.
    pub leaf: openssl::x509::X509,
    /// The issuing CA's certificate.
    pub issuer: openssl::x509::X509,
    /// Its serial (hex).
    pub serial: String,
}

/// Issues an `ambulance-terminal` certificate for device `id` as `enroller` (issued at once).
pub fn issue_device(server: &Server, enroller: &Person, id: &str) -> Device {
    let (_k, pem) = device_csr(id);
    let (status, body) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&enroller.token()),
        Some(serde_json::json!({"profile": "ambulance-terminal", "csr": pem, "justification": "test"})),
    );
    assert_eq!(status, 201, "{body}");
    let response = server
        .client
        .get(format!(
            "{}/api/v1/requests/{}/certificate",
            server.api_url,
            body["id"].as_str().unwrap()
        ))
        .bearer_auth(enroller.token())
        .send()
        .unwrap();
    let chain = openssl::x509::X509::stack_from_pem(&response.bytes().unwrap()).unwrap();
    Device {
        leaf: chain[0].clone(),
        issuer: chain[1].clone(),
        serial: body["serial"].as_str().unwrap().to_string(),
    }
}

/// Whether `program` is on PATH (tests of real clients skip, saying why, where one is missing).
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Keeps a certificate (PEM file, first certificate) for pkilint in CI: `cert-<name>.der` in
/// MAMORI_ARTIFACTS_DIR (or target/pki-artifacts).
pub fn artifact(name: &str, pem: &Path) {
    let dir = std::env::var_os("MAMORI_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/pki-artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = openssl::x509::X509::from_pem(&std::fs::read(pem).unwrap()).unwrap();
    std::fs::write(dir.join(format!("cert-{name}.der")), cert.to_der().unwrap()).unwrap();
}
