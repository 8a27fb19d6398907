//! The relying-party matrix: what nginx, `openssl verify` and `openssl ocsp` — clients we did not
//! write — make of Mamori's revocation data when they check the whole chain, as nginx
//! (`ssl_ocsp on`, `ssl_crl`), Windows, VPN gateways and strict Java/PKIX do by default.
//!
//! For a good and a revoked (keyCompromise) leaf of every requestable profile, under the default
//! settings, with delta CRLs and with partitioned CRLs:
//! - `openssl verify -crl_check_all` with the root's CRL and the CRL the leaf names (and with
//!   `-extended_crl -use_deltas` plus the delta CRL in delta mode; and with the complete CRLs
//!   alone in delta mode, as a client that ignores deltas would);
//! - `openssl ocsp` for the leaf (CertIDs with SHA-1, SHA-256, SHA-384 and SHA-512) and for the
//!   issuing CA's certificate (answered by the root's delegated responder);
//! - nginx with `ssl_verify_client on; ssl_ocsp on` and, separately, with `ssl_crl`, asked by curl
//!   with each leaf as client certificate (skipped with a printed reason where nginx or curl is
//!   not installed; CI installs both).
//!
//! The root CRL, a root-issued OCSP response, a SHA-256-CertID response, the root's responder
//! certificate and the issuing CA certificate are written to MAMORI_ARTIFACTS_DIR for pkilint.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ca_core::der::Decode;
use mamori_e2e::{csr, free_port, rfc3339, Backend, Person, Server};
use openssl::x509::{X509Crl, X509};
use rcgen::DnType::{CommonName, OrganizationName};
use serde_json::json;

/// One issued leaf, with its key, as files a client can use.
struct Leaf {
    profile: &'static str,
    serial: String,
    revoked: bool,
    cert: PathBuf,
    key: PathBuf,
}

struct Cast {
    officers: Vec<Person>,
    next: std::cell::Cell<usize>,
    vendor: Person,
    enroller: Person,
    staffer: Person,
}

impl Cast {
    /// The next officer in turn, so that no one runs out of fresh TOTP codes.
    fn officer(&self) -> &Person {
        let i = self.next.get();
        self.next.set(i + 1);
        &self.officers[i % self.officers.len()]
    }
}

fn artifacts() -> PathBuf {
    let dir = std::env::var_os("MAMORI_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| mamori_e2e::workspace_root().join("target/pki-artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args([
            "-c",
            &format!("command -v {program} || test -x /usr/sbin/{program}"),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn fetch(url: &str) -> Vec<u8> {
    let response = reqwest::blocking::get(url).unwrap();
    assert_eq!(response.status().as_u16(), 200, "GET {url}");
    response.bytes().unwrap().to_vec()
}

fn crl_pem(der: &[u8]) -> Vec<u8> {
    X509Crl::from_der(der).unwrap().to_pem().unwrap()
}

/// The URI of a certificate's first CRL distribution point (or freshestCRL with `freshest`).
fn distribution_point(cert: &X509, freshest: bool) -> Option<String> {
    use ca_core::x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
    use ca_core::x509_cert::ext::pkix::{CrlDistributionPoints, FreshestCrl};
    let parsed = ca_core::x509_cert::Certificate::from_der(&cert.to_der().unwrap()).unwrap();
    let points = if freshest {
        parsed
            .tbs_certificate
            .get::<FreshestCrl>()
            .unwrap()
            .map(|(_, f)| f.0)
    } else {
        parsed
            .tbs_certificate
            .get::<CrlDistributionPoints>()
            .unwrap()
            .map(|(_, c)| c.0)
    }?;
    points.into_iter().find_map(|p| match p.distribution_point {
        Some(DistributionPointName::FullName(names)) => names.into_iter().find_map(|n| match n {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
            _ => None,
        }),
        _ => None,
    })
}

fn cast(server: &Server) -> Cast {
    server.login(&server.admin);
    Cast {
        officers: (0..4)
            .map(|i| server.user(&format!("officer{i}"), &["security-officer"]))
            .collect(),
        next: std::cell::Cell::new(0),
        vendor: server.user("acme-vendor", &["vendor"]),
        enroller: server.user("enroller", &["device-enroller"]),
        staffer: server.user("hr-desk", &["staff-requester"]),
    }
}

/// Requests a `profile` certificate as its requester, has officers approve it as the profile
/// asks, and writes the certificate and its key into `dir`.
fn issue(server: &Server, cast: &Cast, dir: &Path, profile: &'static str, n: usize) -> Leaf {
    let now = ca_core::time::UnixTime::now().as_secs();
    let tag = format!("{profile}-{n}");
    let (key, body, requester) = match profile {
        "ambulance-terminal" => {
            let (key, pem) = mamori_e2e::device_csr(&format!("rp-{n}"));
            (
                key,
                json!({"profile": profile, "csr": pem, "justification": "relying-party test"}),
                &cast.enroller,
            )
        }
        "staff" => {
            let (key, pem) = csr(
                &[
                    (CommonName, &format!("Nurse {n}")),
                    (
                        rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]),
                        &format!("ST-{n:04}"),
                    ),
                ],
                vec![rcgen::SanType::Rfc822Name(
                    format!("nurse{n}@hospital.example")
                        .as_str()
                        .try_into()
                        .unwrap(),
                )],
            );
            (
                key,
                json!({"profile": profile, "csr": pem, "justification": "new nurse"}),
                &cast.staffer,
            )
        }
        "vendor-maintenance" => {
            let (key, pem) = csr(
                &[
                    (OrganizationName, "Acme Medical"),
                    (CommonName, &format!("acme-engineer-{n}")),
                ],
                vec![],
            );
            (
                key,
                json!({"profile": profile, "csr": pem, "justification": "MRI firmware", "work_order": format!("WO-{n}"), "not_before": rfc3339(now), "not_after": rfc3339(now + 4 * 3600)}),
                &cast.vendor,
            )
        }
        "tls-server" => {
            let name = format!("pacs{n}.hospital.example");
            let (key, pem) = csr(
                &[(CommonName, &name)],
                vec![rcgen::SanType::DnsName(name.as_str().try_into().unwrap())],
            );
            // An officer requests; other officers approve.
            (
                key,
                json!({"profile": profile, "csr": pem, "justification": "PACS"}),
                &cast.officers[0],
            )
        }
        other => panic!("no recipe for {other}"),
    };
    let (status, mut request) = server.call(
        "POST",
        "/api/v1/requests",
        Some(&requester.token()),
        Some(body),
    );
    assert_eq!(status, 201, "{profile}: {request}");
    let id = request["id"].as_str().unwrap().to_string();
    while request["status"] == "pending" {
        let mut officer = cast.officer();
        while officer.username == requester.username {
            officer = cast.officer();
        }
        let (status, body) = server.call(
            "POST",
            &format!("/api/v1/requests/{id}/approve"),
            Some(&officer.token()),
            Some(json!({"totp": officer.code(), "comment": "checked"})),
        );
        assert_eq!(status, 200, "{profile}: {body}");
        request = body;
    }
    assert_eq!(request["status"], "issued", "{profile}: {request}");
    let chain = server
        .client
        .get(format!(
            "{}/api/v1/requests/{id}/certificate",
            server.api_url
        ))
        .bearer_auth(requester.token())
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let leaf = X509::stack_from_pem(&chain).unwrap().remove(0);
    Leaf {
        profile,
        serial: request["serial"].as_str().unwrap().to_string(),
        revoked: false,
        cert: write(dir, &format!("{tag}.pem"), &leaf.to_pem().unwrap()),
        key: write(dir, &format!("{tag}.key"), key.serialize_pem().as_bytes()),
    }
}

fn revoke(server: &Server, cast: &Cast, leaf: &mut Leaf) {
    let officer = cast.officer();
    let (status, body) = server.call(
        "POST",
        &format!("/api/v1/certificates/issuing/{}/revoke", leaf.serial),
        Some(&officer.token()),
        Some(json!({"reason": "key-compromise", "totp": officer.code(), "comment": "lost"})),
    );
    assert_eq!(status, 200, "{}: {body}", leaf.profile);
    leaf.revoked = true;
}

/// A running nginx with its own configuration in a temporary folder, stopped on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// Starts nginx in the foreground with `servers` (each a `server { ... }` block) and waits
    /// until every port in `ports` accepts connections.
    fn start(dir: &Path, servers: &str, ports: &[u16]) -> Nginx {
        let dir = dir.join("nginx");
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  \
             proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  \
             uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n{servers}\n}}\n"
        );
        let conf_path = write(&dir, "nginx.conf", conf.as_bytes());
        let binary = if Path::new("/usr/sbin/nginx").exists() {
            "/usr/sbin/nginx".to_string()
        } else {
            "nginx".to_string()
        };
        let child = Command::new(binary)
            .args(["-p", &d.to_string(), "-c", &conf_path.display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut nginx = Nginx { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in ports {
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                if let Ok(Some(status)) = nginx.child.try_wait() {
                    panic!("nginx exited ({status}): {}", nginx.log());
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx did not listen: {}",
                    nginx.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        nginx
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

/// curl with `leaf` as client certificate against nginx on `port`: the HTTP status.
fn curl_status(port: u16, leaf: &Leaf) -> String {
    let (_, out) = run(
        "curl",
        &[
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "20",
            "--cert",
            &leaf.cert.display().to_string(),
            "--key",
            &leaf.key.display().to_string(),
            &format!("https://127.0.0.1:{port}/"),
        ],
    );
    out.trim().to_string()
}

/// Setting under test: the name (for artifacts and messages) and the server's environment.
fn matrix(setting: &str, env: &[(&str, &str)]) {
    matrix_on(setting, Server::start(Backend::Sqlite, env));
}

fn matrix_on(setting: &str, server: Server) {
    let cast = cast(&server);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let base = &server.public_url;
    let deltas = setting == "delta";

    let root_pem = write(dir, "root.pem", server.root_pem.as_bytes());
    let issuing_der = fetch(&format!("{base}/ca/issuing.crt"));
    let issuing = X509::from_der(&issuing_der).unwrap();
    let issuing_pem = write(dir, "issuing.pem", &issuing.to_pem().unwrap());
    let chain_pem = write(
        dir,
        "chain.pem",
        &[
            issuing.to_pem().unwrap(),
            server.root_pem.as_bytes().to_vec(),
        ]
        .concat(),
    );

    // The issuing CA certificate names its issuer's OCSP responder and CRL.
    let text = String::from_utf8(issuing.to_text().unwrap()).unwrap();
    assert!(
        text.contains(&format!("OCSP - URI:{base}/ocsp")),
        "issuing CA AIA: {text}"
    );
    assert!(text.contains(&format!("URI:{base}/crl/root.crl")), "{text}");

    let profiles = [
        "ambulance-terminal",
        "staff",
        "vendor-maintenance",
        "tls-server",
    ];
    let mut leaves = Vec::new();
    for (i, profile) in profiles.iter().enumerate() {
        for n in 0..2 {
            leaves.push(issue(&server, &cast, dir, profile, i * 2 + n));
        }
    }
    for leaf in leaves.iter_mut().skip(1).step_by(2) {
        revoke(&server, &cast, leaf);
    }

    // --- CRLs, as a relying party finds them from the certificates ---
    let root_crl_der = fetch(&format!("{base}/crl/root.crl"));
    let root_crl = write(dir, "root.crl.pem", &crl_pem(&root_crl_der));
    let root_crl_text = run(
        "openssl",
        &[
            "crl",
            "-noout",
            "-text",
            "-in",
            &root_crl.display().to_string(),
        ],
    )
    .1;
    assert!(
        !root_crl_text.contains("Issuing Distribution Point"),
        "the root's CRL covers CA certificates: no IDP with onlyContainsUserCerts\n{root_crl_text}"
    );
    let next = openssl::asn1::Asn1Time::days_from_now(25).unwrap();
    assert!(
        X509Crl::from_der(&root_crl_der)
            .unwrap()
            .next_update()
            .unwrap()
            > next,
        "the root's CRL lives long (root_crl_validity_secs, 30 days)"
    );
    std::fs::write(
        artifacts().join(format!("crl-root-{setting}.der")),
        &root_crl_der,
    )
    .unwrap();
    std::fs::write(
        artifacts().join(format!("server-{setting}-issuing-ca.der")),
        &issuing_der,
    )
    .unwrap();

    for leaf in &leaves {
        let cert = X509::from_pem(&std::fs::read(&leaf.cert).unwrap()).unwrap();
        let url = distribution_point(&cert, false).expect("leaf CRL distribution point");
        if setting == "partitioned" {
            assert!(url.contains("/crl/issuing-p"), "{url}");
        }
        let crl_der = fetch(&url);
        let crl = write(
            dir,
            &format!("{}.crl.pem", leaf.profile),
            &crl_pem(&crl_der),
        );
        let expect = |(ok, out): (bool, String), what: &str| {
            if leaf.revoked {
                assert!(
                    !ok && out.contains("certificate revoked"),
                    "{setting} {} revoked, {what}: {out}",
                    leaf.profile
                );
            } else {
                assert!(
                    ok && out.contains(": OK"),
                    "{setting} {} good, {what}: {out}",
                    leaf.profile
                );
            }
        };
        let verify = |extra: &[&str], crls: &[&Path]| {
            let mut args: Vec<String> = [
                "verify",
                "-CAfile",
                &root_pem.display().to_string(),
                "-untrusted",
                &issuing_pem.display().to_string(),
                "-crl_check_all",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            for crl in crls {
                args.push("-CRLfile".into());
                args.push(crl.display().to_string());
            }
            args.push(leaf.cert.display().to_string());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run("openssl", &args)
        };
        // Whole-chain CRL checking with the complete CRLs alone: what Java's checker, nginx
        // `ssl_crl` and clients that ignore deltas do. In delta mode too.
        expect(
            verify(&[], &[&root_crl, &crl]),
            "openssl verify -crl_check_all",
        );
        if deltas {
            let delta_url = distribution_point(&cert, true).expect("freshestCRL in delta mode");
            let delta_der = fetch(&delta_url);
            let delta = write(
                dir,
                &format!("{}.delta.pem", leaf.profile),
                &crl_pem(&delta_der),
            );
            expect(
                verify(
                    &["-extended_crl", "-use_deltas"],
                    &[&root_crl, &crl, &delta],
                ),
                "openssl verify -crl_check_all -extended_crl -use_deltas",
            );
            std::fs::write(artifacts().join("crl-issuing-delta-server.der"), &delta_der).unwrap();
        }
        if setting == "partitioned" {
            std::fs::write(
                artifacts().join("crl-issuing-partition-server.der"),
                &crl_der,
            )
            .unwrap();
        }

        // OCSP for the leaf, under every CertID hash.
        for digest in ["-sha1", "-sha256", "-sha384", "-sha512"] {
            let respout = dir.join(format!("{}{digest}.ocsp", leaf.profile));
            let (ok, out) = run(
                "openssl",
                &[
                    "ocsp",
                    digest,
                    "-no_nonce",
                    "-issuer",
                    &issuing_pem.display().to_string(),
                    "-cert",
                    &leaf.cert.display().to_string(),
                    "-url",
                    &format!("{base}/ocsp"),
                    "-CAfile",
                    &root_pem.display().to_string(),
                    "-verify_other",
                    &issuing_pem.display().to_string(),
                    "-respout",
                    &respout.display().to_string(),
                ],
            );
            let want = if leaf.revoked { ": revoked" } else { ": good" };
            assert!(
                ok && out.contains("Response verify OK") && out.contains(want),
                "{setting} {} OCSP {digest}: {out}",
                leaf.profile
            );
            if leaf.revoked {
                assert!(out.contains("Reason: keyCompromise"), "{out}");
            }
            if digest == "-sha256" && !leaf.revoked {
                std::fs::copy(
                    &respout,
                    artifacts().join(format!("ocsp-sha256-certid-{setting}.der")),
                )
                .unwrap();
            }
        }
    }

    // OCSP for the issuing CA's certificate, answered by the root's delegated responder.
    let respout = dir.join("issuing.ocsp");
    let (ok, out) = run(
        "openssl",
        &[
            "ocsp",
            "-no_nonce",
            "-issuer",
            &root_pem.display().to_string(),
            "-cert",
            &issuing_pem.display().to_string(),
            "-url",
            &format!("{base}/ocsp"),
            "-CAfile",
            &root_pem.display().to_string(),
            "-respout",
            &respout.display().to_string(),
        ],
    );
    assert!(
        ok && out.contains("Response verify OK") && out.contains(": good"),
        "{setting} issuing CA OCSP: {out}"
    );
    let root_issued = std::fs::read(&respout).unwrap();
    std::fs::write(
        artifacts().join(format!("ocsp-root-issued-{setting}.der")),
        &root_issued,
    )
    .unwrap();
    // The response is signed by a root-issued OCSP-signing certificate with ocsp-nocheck.
    let (_, text) = run(
        "openssl",
        &[
            "ocsp",
            "-respin",
            &respout.display().to_string(),
            "-resp_text",
            "-noverify",
        ],
    );
    assert!(
        text.contains("Mamori OCSP Responder (root)") && text.contains("OCSP No Check"),
        "{text}"
    );
    if let Some(start) = text.find("-----BEGIN CERTIFICATE-----") {
        let cert = X509::from_pem(&text.as_bytes()[start..]).unwrap();
        std::fs::write(
            artifacts().join(format!("cert-root-ocsp-responder-{setting}.der")),
            cert.to_der().unwrap(),
        )
        .unwrap();
    }

    // --- nginx: whole-chain OCSP, and whole-chain CRLs ---
    if !installed("nginx") || !installed("curl") {
        println!("SKIPPED nginx part of the {setting} matrix: nginx or curl is not installed (apt-get install nginx-light curl)");
        return;
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let server_pem = write(dir, "nginx-server.pem", server_cert.pem().as_bytes());
    let server_key = write(dir, "nginx-server.key", key.serialize_pem().as_bytes());
    let mut all_crls = crl_pem(&root_crl_der);
    let mut names = vec!["issuing".to_string()];
    names.extend((1..=4).map(|k| format!("issuing-p{k}")));
    for name in &names {
        let response = reqwest::blocking::get(format!("{base}/crl/{name}.crl")).unwrap();
        if response.status().is_success() {
            all_crls.extend(crl_pem(&response.bytes().unwrap()));
        }
    }
    let crls = write(dir, "all-crls.pem", &all_crls);
    let (ocsp_port, crl_port) = (free_port(), free_port());
    let tls = format!(
        "ssl_certificate {};\n    ssl_certificate_key {};\n    ssl_client_certificate {};\n    \
         ssl_verify_client on;\n    ssl_verify_depth 2;\n",
        server_pem.display(),
        server_key.display(),
        chain_pem.display()
    );
    let mut servers = format!(
        "  server {{\n    listen 127.0.0.1:{ocsp_port} ssl;\n    {tls}    ssl_ocsp on;\n    \
         ssl_ocsp_responder {base}/ocsp;\n    location / {{ return 200 \"ok\\n\"; }}\n  }}\n\
         \x20 server {{\n    listen 127.0.0.1:{crl_port} ssl;\n    {tls}    ssl_crl {};\n    \
         location / {{ return 200 \"ok\\n\"; }}\n  }}\n",
        crls.display()
    );
    // A TLS server certificate is checked by the server's clients: nginx serves each tls-server
    // leaf with OCSP stapling from Mamori (it staples only a verified "good" answer) and curl
    // requires the stapled status.
    let mut stapled = Vec::new();
    for (i, leaf) in leaves
        .iter()
        .enumerate()
        .filter(|(_, l)| l.profile == "tls-server")
    {
        let port = free_port();
        let fullchain = write(
            dir,
            &format!("fullchain-{i}.pem"),
            &[
                std::fs::read(&leaf.cert).unwrap(),
                issuing.to_pem().unwrap(),
            ]
            .concat(),
        );
        servers.push_str(&format!(
            "  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    \
             ssl_certificate_key {};\n    ssl_stapling on;\n    ssl_stapling_verify on;\n    \
             ssl_trusted_certificate {};\n    ssl_stapling_responder {base}/ocsp;\n    \
             location / {{ return 200 \"ok\\n\"; }}\n  }}\n",
            fullchain.display(),
            leaf.key.display(),
            chain_pem.display()
        ));
        stapled.push((port, leaf));
    }
    let mut ports = vec![ocsp_port, crl_port];
    ports.extend(stapled.iter().map(|(p, _)| *p));
    let nginx = Nginx::start(dir, &servers, &ports);
    for leaf in leaves.iter().filter(|l| l.profile != "tls-server") {
        let want = if leaf.revoked { "400" } else { "200" };
        let got = curl_status(ocsp_port, leaf);
        assert_eq!(
            got,
            want,
            "{setting} {} via nginx ssl_ocsp: {}",
            leaf.profile,
            nginx.log()
        );
        let got = curl_status(crl_port, leaf);
        assert_eq!(
            got,
            want,
            "{setting} {} via nginx ssl_crl: {}",
            leaf.profile,
            nginx.log()
        );
    }
    for (port, leaf) in &stapled {
        let name = format!("pacs{}.hospital.example", {
            let stem = leaf.cert.file_stem().unwrap().to_string_lossy().to_string();
            stem.rsplit('-').next().unwrap().to_string()
        });
        let stapled_status = || {
            run(
                "curl",
                &[
                    "-s",
                    "--cert-status",
                    "--max-time",
                    "20",
                    "--cacert",
                    &root_pem.display().to_string(),
                    "--resolve",
                    &format!("{name}:{port}:127.0.0.1"),
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &format!("https://{name}:{port}/"),
                ],
            )
        };
        // nginx fetches the OCSP answer on the first handshake and staples it from then on.
        let deadline = Instant::now() + Duration::from_secs(30);
        if leaf.revoked {
            let marker = "certificate status \"revoked\" in the OCSP response";
            while !nginx.log().contains(marker) {
                let (ok, out) = stapled_status();
                assert!(
                    !ok,
                    "{setting} revoked tls-server leaf accepted with --cert-status: {out}"
                );
                assert!(
                    Instant::now() < deadline,
                    "nginx never saw the revocation: {}",
                    nginx.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            let (ok, out) = stapled_status();
            assert!(!ok, "{setting} revoked tls-server leaf: {out}");
        } else {
            loop {
                let (ok, out) = stapled_status();
                if ok && out.trim() == "200" {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{setting} good tls-server leaf never stapled: {out}\n{}",
                    nginx.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let log = nginx.log();
    assert!(!log.contains("unauthorized"), "nginx log: {log}");
}

#[test]
fn default_settings() {
    matrix("default", &[]);
}

#[test]
fn delta_crls() {
    matrix("delta", &[("MAMORI_DELTA_CRLS", "true")]);
}

/// The same relying parties with a root made in an offline ceremony (`ca-server ceremony`)
/// and the issuing CA imported (`ca-server init --issuing-csr`, then `--import-issuing`): the
/// online server holds no root key; the root's CRL and its OCSP responder's certificate come
/// from the ceremony.
#[test]
fn offline_root_from_a_ceremony() {
    let server = Server::start_offline_root(Backend::Sqlite, &[]);
    assert_eq!(
        server.query("SELECT key_pem FROM cas WHERE id = 'root'"),
        "offline-root",
        "no root key online"
    );
    let vault = server.path().join("offline/vault");
    assert!(vault.join("root-key.pem").exists());
    let out = server.path().join("offline/out");
    let transcript = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("transcript-")
        })
        .unwrap();
    let transcript = std::fs::read_to_string(transcript).unwrap();
    for what in [
        "script: ",
        "root certificate: ",
        "issuing CA certificate: ",
        "responder certificate: ",
        "root CRL: ",
    ] {
        assert!(
            transcript.contains(what),
            "{what} in the transcript:\n{transcript}"
        );
    }
    assert_eq!(transcript.matches("sha256=").count(), 10, "{transcript}");
    matrix_on("ceremony", server);
}

#[test]
fn partitioned_crls() {
    matrix("partitioned", &[("MAMORI_CRL_PARTITIONS", "4")]);
}

/// HEAD on every public GET route answers like GET, without a body.
#[test]
fn head_on_public_routes() {
    let server = Server::start(Backend::Sqlite, &[]);
    let base = &server.public_url;
    let client = reqwest::blocking::Client::new();
    let issuing = X509::from_der(&fetch(&format!("{base}/ca/issuing.crt"))).unwrap();
    let root = X509::from_pem(server.root_pem.as_bytes()).unwrap();
    let mut request = openssl::ocsp::OcspRequest::new().unwrap();
    request
        .add_id(
            openssl::ocsp::OcspCertId::from_cert(
                openssl::hash::MessageDigest::sha1(),
                &issuing,
                &root,
            )
            .unwrap(),
        )
        .unwrap();
    use base64::Engine;
    let ocsp_path: String = base64::engine::general_purpose::STANDARD
        .encode(request.to_der().unwrap())
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    for path in [
        "/crl/issuing.crl".to_string(),
        "/crl/root.crl".to_string(),
        "/ca/issuing.crt".to_string(),
        "/ca/issuing.pem".to_string(),
        "/healthz".to_string(),
        "/metrics".to_string(),
        format!("/ocsp/{ocsp_path}"),
    ] {
        let get = client.get(format!("{base}{path}")).send().unwrap();
        let (get_status, get_type) = (
            get.status().as_u16(),
            get.headers().get("content-type").cloned(),
        );
        let get_len = get.bytes().unwrap().len();
        let head = client.head(format!("{base}{path}")).send().unwrap();
        assert_eq!(head.status().as_u16(), get_status, "HEAD {path}");
        assert_eq!(get_status, 200, "GET {path}");
        assert_eq!(
            head.headers().get("content-type").cloned(),
            get_type,
            "HEAD {path}"
        );
        if let Some(len) = head.headers().get("content-length") {
            if !path.starts_with("/metrics") {
                assert_eq!(len.to_str().unwrap(), get_len.to_string(), "HEAD {path}");
            }
        }
        assert!(head.bytes().unwrap().is_empty(), "HEAD {path} has no body");
    }
}
