//! The load generator of `bench/soak.sh`: an hour (or any length) of mixed load against one
//! running `ca-server dev`, sampled every `step` seconds for memory and latency.
//!
//! `soak <data-dir> <api-url> <public-url> <server-pid> <seconds> <step> <out.csv> [rate]
//! [warm-up seconds]` reads
//! the dev admin and officer from `<data-dir>`, has the admin ask for a device enroller and the
//! officer approve it (the four-eyes path), enrols it, and then runs until the time is up:
//! - issuance: two threads issuing `ambulance-terminal` certificates, `rate` a second between
//!   them (0: one after another, as fast as the server answers);
//! - OCSP: one thread POSTing requests for the unexpired certificates issued so far (one at a
//!   time), as relying parties ask about the certificates presented to them;
//! - CRL: one download per second;
//! - revocation: the officer revokes a recent certificate per TOTP step (a code is good once);
//! - sign-in: the admin signs in once per TOTP step.
//!
//! Every `step` seconds a CSV row records the server's resident memory (`/proc/<pid>/status`
//! VmRSS), per kind of call the count, errors and median and 99th percentile latency of that
//! step, and the OCSP responses the server holds in memory (`mamori_ocsp_cached_responses`),
//! one per certificate until its last response's nextUpdate; then the resident memory split into
//! anonymous (heap, stacks, the allocator's holdings) and file-backed (the binary and libraries)
//! pages, and the server's thread count (each thread has its own stack and allocator pages). At
//! the end it prints totals, the memory after warm-up (a sixth of the run unless given) against
//! the memory at the end, the growth per response cached meanwhile, and the least-squares slope
//! of memory after warm-up.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ca_core::totp::TotpSecret;
use serde_json::{json, Value};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The kinds of call, in CSV order.
const KINDS: [&str; 5] = ["issue", "ocsp", "crl", "revoke", "login"];

#[derive(Default)]
struct Window {
    latencies_ms: HashMap<&'static str, Vec<f64>>,
    errors: HashMap<&'static str, u64>,
}

struct Shared {
    window: Mutex<Window>,
    totals: Mutex<HashMap<&'static str, (u64, u64)>>,
    /// Unexpired certificates issued (DER, notAfter in Unix seconds), oldest first.
    issued: Mutex<VecDeque<(Vec<u8>, u64)>>,
    serials: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Shared {
    fn record(&self, kind: &'static str, started: Instant, ok: bool) {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Ok(mut w) = self.window.lock() {
            if ok {
                w.latencies_ms.entry(kind).or_default().push(ms);
            } else {
                *w.errors.entry(kind).or_default() += 1;
            }
        }
        if let Ok(mut t) = self.totals.lock() {
            let e = t.entry(kind).or_default();
            if ok {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
}

struct Person {
    name: String,
    password: String,
    secret: TotpSecret,
    last_step: Mutex<u64>,
}

impl Person {
    fn from_dev_file(path: &std::path::Path, name: &str) -> Result<Person, Failure> {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        Ok(Person {
            name: name.into(),
            password: v["password"].as_str().ok_or("password")?.into(),
            secret: TotpSecret::from_base32(v["totp_secret"].as_str().ok_or("totp_secret")?)
                .ok_or("totp_secret: not base32")?,
            last_step: Mutex::new(0),
        })
    }

    /// A code of a step not used yet, waiting for the next step when this one is spent.
    fn code(&self, stop: &AtomicBool) -> Option<String> {
        loop {
            let step = ca_core::time::UnixTime::now().as_secs() / 30;
            {
                let mut last = self.last_step.lock().ok()?;
                if step > *last {
                    *last = step;
                    return Some(self.secret.code_at_step(step));
                }
            }
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn client(root: &str) -> Result<reqwest::blocking::Client, Failure> {
    Ok(reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes())?)
        .timeout(Duration::from_secs(30))
        .build()?)
}

fn call(
    http: &reqwest::blocking::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> Result<(u16, Value), Failure> {
    let mut request = http.post(url).json(&body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send()?;
    let status = response.status().as_u16();
    Ok((status, response.json().unwrap_or(Value::Null)))
}

fn login(
    http: &reqwest::blocking::Client,
    api: &str,
    p: &Person,
    code: String,
) -> Result<String, Failure> {
    let (status, body) = call(
        http,
        format!("{api}/api/v1/login"),
        None,
        json!({"username": p.name, "password": p.password, "totp": code}),
    )?;
    if status != 200 {
        return Err(format!("login {}: {status} {body}", p.name).into());
    }
    Ok(body["token"].as_str().ok_or("token")?.to_string())
}

fn device_csr(n: u64) -> Result<String, Failure> {
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)?;
    let key = openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&group)?)?;
    let mut name = openssl::x509::X509NameBuilder::new()?;
    name.append_entry_by_text("CN", &format!("amb-{n}"))?;
    let mut req = openssl::x509::X509ReqBuilder::new()?;
    req.set_subject_name(&name.build())?;
    req.set_pubkey(&key)?;
    let mut sans = openssl::stack::Stack::new()?;
    sans.push(
        openssl::x509::extension::SubjectAlternativeName::new()
            .uri(&format!("urn:mamori:device:ambulance:{n}"))
            .build(&req.x509v3_context(None))?,
    )?;
    req.add_extensions(&sans)?;
    req.sign(&key, openssl::hash::MessageDigest::sha256())?;
    Ok(String::from_utf8(req.build().to_pem()?)?)
}

/// The enroller, through the four-eyes path: the admin asks, the officer approves, the
/// enroller enrols with both halves and signs in.
fn enroller(
    http: &reqwest::blocking::Client,
    api: &str,
    admin: &Person,
    officer: &Person,
    stop: &AtomicBool,
) -> Result<String, Failure> {
    let admin_token = login(http, api, admin, admin.code(stop).ok_or("stopped")?)?;
    let officer_token = login(http, api, officer, officer.code(stop).ok_or("stopped")?)?;
    let (status, asked) = call(
        http,
        format!("{api}/api/v1/users"),
        Some(&admin_token),
        json!({"username": "soak-enroller", "roles": ["device-enroller"], "totp": admin.code(stop).ok_or("stopped")?, "comment": "soak"}),
    )?;
    if status != 202 {
        return Err(format!("asking for the enroller: {status} {asked}").into());
    }
    let id = asked["id"].as_str().ok_or("id")?;
    let (status, approved) = call(
        http,
        format!("{api}/api/v1/account-changes/{id}/approve"),
        Some(&officer_token),
        json!({"totp": officer.code(stop).ok_or("stopped")?, "comment": "soak"}),
    )?;
    if status != 200 {
        return Err(format!("approving the enroller: {status} {approved}").into());
    }
    let code = format!(
        "{}-{}",
        asked["enrolment_code_part"].as_str().ok_or("half")?,
        approved["enrolment_code_part"].as_str().ok_or("half")?
    );
    let (status, enrolled) = call(
        http,
        format!("{api}/api/v1/enrol"),
        None,
        json!({"username": "soak-enroller", "code": code, "new_password": "soak enroller password"}),
    )?;
    if status != 200 {
        return Err(format!("enrolling: {status} {enrolled}").into());
    }
    let secret = TotpSecret::from_otpauth_uri(enrolled["totp_uri"].as_str().ok_or("uri")?)
        .ok_or("totp_uri")?;
    let person = Person {
        name: "soak-enroller".into(),
        password: "soak enroller password".into(),
        secret,
        last_step: Mutex::new(0),
    };
    login(http, api, &person, person.code(stop).ok_or("stopped")?)
}

/// A number field of `/proc/<pid>/status` (`VmRSS:`, `RssAnon:`, `Threads:`; kB for sizes).
fn status_field(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The least-squares slope of `points` (y per x); 0 for fewer than two.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(x, y), (px, py)| (x + px / n, y + py / n));
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(sxy, sxx), (x, y)| {
        (sxy + (x - mx) * (y - my), sxx + (x - mx) * (x - mx))
    });
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// A certificate's notAfter in Unix seconds.
fn not_after(leaf: &openssl::x509::X509) -> Option<u64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let diff = epoch.diff(leaf.not_after()).ok()?;
    u64::try_from(i64::from(diff.days) * 86_400 + i64::from(diff.secs)).ok()
}

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (rate, warm_up, args) = match args.len() {
        9 => (
            args[7].parse::<f64>()?,
            Some(args[8].parse::<u64>()?),
            &args[..7],
        ),
        8 => (args[7].parse::<f64>()?, None, &args[..7]),
        _ => (0.0, None, &args[..]),
    };
    let [data, api, public, pid, seconds, step, out] = args else {
        return Err(
            "usage: soak <data-dir> <api-url> <public-url> <server-pid> <seconds> <step> <out.csv> [issuances per second] [warm-up seconds]"
                .into(),
        );
    };
    let (seconds, step): (u64, u64) = (seconds.parse()?, step.parse()?);
    let data = std::path::Path::new(data);
    let root = std::fs::read_to_string(data.join("root-ca.pem"))?;
    let http = client(&root)?;
    let admin = Arc::new(Person::from_dev_file(
        &data.join("dev-admin.json"),
        "admin",
    )?);
    let officer = Arc::new(Person::from_dev_file(
        &data.join("dev-officer.json"),
        "officer",
    )?);
    let shared = Arc::new(Shared {
        window: Mutex::new(Window::default()),
        totals: Mutex::new(HashMap::new()),
        issued: Mutex::new(VecDeque::new()),
        serials: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    let enroller_token = enroller(&http, api, &admin, &officer, &shared.stop)?;
    let officer_token = login(
        &http,
        api,
        &officer,
        officer.code(&shared.stop).ok_or("stopped")?,
    )?;
    let issuer = openssl::x509::X509::from_pem(
        &reqwest::blocking::get(format!("{public}/ca/issuing.pem"))?.bytes()?,
    )?;
    let mut threads = Vec::new();
    for t in 0..2u64 {
        let (shared, http, api, token) = (
            shared.clone(),
            http.clone(),
            api.clone(),
            enroller_token.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut n = t;
            // Each of the two threads issues half the rate, on a fixed schedule.
            let interval = (rate > 0.0).then(|| Duration::from_secs_f64(2.0 / rate));
            let mut next = Instant::now();
            while !shared.stop.load(Ordering::Relaxed) {
                if let Some(interval) = interval {
                    next += interval;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                n += 2;
                let Ok(pem) = device_csr(n) else { continue };
                let started = Instant::now();
                let answer = call(
                    &http,
                    format!("{api}/api/v1/requests"),
                    Some(&token),
                    json!({"profile": "ambulance-terminal", "csr": pem, "justification": "soak"}),
                );
                let ok = matches!(&answer, Ok((201, _)));
                shared.record("issue", started, ok);
                if let Ok((201, body)) = answer {
                    let id = body["id"].as_str().unwrap_or_default().to_string();
                    if let Ok(chain) = http
                        .get(format!("{api}/api/v1/requests/{id}/certificate"))
                        .bearer_auth(&token)
                        .send()
                        .and_then(|r| r.bytes())
                    {
                        if let Ok(leaf) = openssl::x509::X509::from_pem(&chain) {
                            if let (Ok(der), Some(not_after)) = (leaf.to_der(), not_after(&leaf)) {
                                if let Ok(mut issued) = shared.issued.lock() {
                                    issued.push_back((der, not_after));
                                }
                            }
                        }
                    }
                    if let Ok(mut serials) = shared.serials.lock() {
                        serials.push(body["serial"].as_str().unwrap_or_default().to_string());
                    }
                }
            }
        }));
    }
    {
        let (shared, public, issuer) = (shared.clone(), public.clone(), issuer.clone());
        threads.push(std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            let mut i = 0usize;
            while !shared.stop.load(Ordering::Relaxed) {
                let der = shared.issued.lock().ok().and_then(|mut v| {
                    // Certificates about to expire leave the working set (issued in order,
                    // so they are at the front).
                    let soon = ca_core::time::UnixTime::now().as_secs() + 5;
                    while v.front().is_some_and(|(_, not_after)| *not_after <= soon) {
                        v.pop_front();
                    }
                    (!v.is_empty()).then(|| v[i % v.len()].0.clone())
                });
                i += 1;
                let Some(der) = der else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                let Ok(leaf) = openssl::x509::X509::from_der(&der) else {
                    continue;
                };
                let Ok(request) = (|| -> Result<Vec<u8>, openssl::error::ErrorStack> {
                    let id = openssl::ocsp::OcspCertId::from_cert(
                        openssl::hash::MessageDigest::sha1(),
                        &leaf,
                        &issuer,
                    )?;
                    let mut r = openssl::ocsp::OcspRequest::new()?;
                    r.add_id(id)?;
                    r.to_der()
                })() else {
                    continue;
                };
                let started = Instant::now();
                let ok = http
                    .post(format!("{public}/ocsp"))
                    .header("content-type", "application/ocsp-request")
                    .body(request)
                    .send()
                    .ok()
                    .filter(|r| r.status() == 200)
                    .and_then(|r| r.bytes().ok())
                    .and_then(|b| openssl::ocsp::OcspResponse::from_der(&b).ok())
                    .is_some_and(|r| r.status() == openssl::ocsp::OcspResponseStatus::SUCCESSFUL);
                shared.record("ocsp", started, ok);
            }
        }));
    }
    {
        let (shared, public) = (shared.clone(), public.clone());
        threads.push(std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            while !shared.stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = http
                    .get(format!("{public}/crl/issuing.crl"))
                    .send()
                    .ok()
                    .filter(|r| r.status() == 200)
                    .and_then(|r| r.bytes().ok())
                    .is_some_and(|b| openssl::x509::X509Crl::from_der(&b).is_ok());
                shared.record("crl", started, ok);
                std::thread::sleep(Duration::from_secs(1));
            }
        }));
    }
    {
        let (shared, http, api, officer) =
            (shared.clone(), http.clone(), api.clone(), officer.clone());
        threads.push(std::thread::spawn(move || {
            while let Some(code) = officer.code(&shared.stop) {
                // A certificate issued a moment ago (a step apart, never the same twice).
                let serial = shared
                    .serials
                    .lock()
                    .ok()
                    .and_then(|s| s.len().checked_sub(10).and_then(|i| s.get(i).cloned()));
                let Some(serial) = serial else { continue };
                let started = Instant::now();
                let ok = matches!(
                    call(
                        &http,
                        format!("{api}/api/v1/certificates/issuing/{serial}/revoke"),
                        Some(&officer_token),
                        json!({"totp": code, "reason": "key-compromise"}),
                    ),
                    Ok((200, _))
                );
                shared.record("revoke", started, ok);
            }
        }));
    }
    {
        let (shared, http, api, admin) = (shared.clone(), http.clone(), api.clone(), admin.clone());
        threads.push(std::thread::spawn(move || {
            while let Some(code) = admin.code(&shared.stop) {
                let started = Instant::now();
                let ok = login(&http, &api, &admin, code).is_ok();
                shared.record("login", started, ok);
            }
        }));
    }

    let mut csv = std::fs::File::create(out)?;
    let mut header = String::from("t_secs,rss_mib");
    for kind in KINDS {
        header.push_str(&format!(
            ",{kind}_n,{kind}_errors,{kind}_p50_ms,{kind}_p99_ms"
        ));
    }
    header.push_str(",cached_responses,rss_anon_mib,rss_file_mib,threads");
    writeln!(csv, "{header}")?;
    let begin = Instant::now();
    let mut rss = Vec::new();
    let metrics_client = reqwest::blocking::Client::new();
    let cached = || -> u64 {
        metrics_client
            .get(format!("{public}/metrics"))
            .send()
            .and_then(|r| r.text())
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("mamori_ocsp_cached_responses "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    };
    while begin.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(step));
        let window = std::mem::take(&mut *shared.window.lock().map_err(|_| "lock")?);
        let mib = status_field(pid, "VmRSS:") as f64 / 1024.0;
        let anon = status_field(pid, "RssAnon:") as f64 / 1024.0;
        let file = status_field(pid, "RssFile:") as f64 / 1024.0;
        let server_threads = status_field(pid, "Threads:");
        let responses = cached();
        rss.push((begin.elapsed().as_secs(), mib, responses));
        let mut row = format!("{},{mib:.1}", begin.elapsed().as_secs());
        for kind in KINDS {
            let mut l = window.latencies_ms.get(kind).cloned().unwrap_or_default();
            l.sort_by(f64::total_cmp);
            row.push_str(&format!(
                ",{},{},{:.1},{:.1}",
                l.len(),
                window.errors.get(kind).copied().unwrap_or(0),
                percentile(&l, 0.5),
                percentile(&l, 0.99)
            ));
        }
        row.push_str(&format!(
            ",{responses},{anon:.1},{file:.1},{server_threads}"
        ));
        writeln!(csv, "{row}")?;
        csv.flush()?;
    }
    shared.stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let totals = shared.totals.lock().map_err(|_| "lock")?;
    let mut errors = 0;
    for kind in KINDS {
        let (ok, failed) = totals.get(kind).copied().unwrap_or_default();
        errors += failed;
        println!("{kind}: {ok} ok, {failed} errors");
    }
    // Memory after warm-up (the first sample past a sixth of the run) against the last sample,
    // and what the growth between them is per OCSP response the cache took on meanwhile.
    let warm_up = warm_up.unwrap_or(seconds / 6);
    let warm = rss
        .iter()
        .find(|(t, _, _)| *t >= warm_up)
        .or(rss.first())
        .copied()
        .unwrap_or_default();
    let last = rss.last().copied().unwrap_or_default();
    let peak = rss.iter().map(|(_, m, _)| *m).fold(0.0, f64::max);
    let grown = last.2.saturating_sub(warm.2);
    let growth = if last.1 <= warm.1 {
        "no growth".to_string()
    } else if grown > warm.2 / 10 {
        format!(
            "{:.0} bytes per response cached meanwhile",
            (last.1 - warm.1) * 1024.0 * 1024.0 / grown as f64
        )
    } else {
        "growth without (many) new responses".to_string()
    };
    let after: Vec<(f64, f64)> = rss
        .iter()
        .filter(|(t, _, _)| *t >= warm.0)
        .map(|(t, m, _)| (*t as f64, *m))
        .collect();
    let (low, high) = after
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), (_, m)| (l.min(*m), h.max(*m)));
    println!(
        "memory: {:.1} MiB after warm-up ({} s, {} responses cached), {:.1} MiB at the end ({} responses), {peak:.1} MiB at most: {growth}; errors: {errors}",
        warm.1, warm.0, warm.2, last.1, last.2
    );
    println!(
        "after warm-up: {} samples between {low:.1} and {high:.1} MiB, fitted slope {:+.2} MiB per hour",
        after.len(),
        slope(&after) * 3600.0
    );
    Ok(())
}
