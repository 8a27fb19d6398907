//! The load generator of `bench/acme.sh`: complete ACME orders per second.
//!
//! `acme_load <directory-url> <root.pem> <eab-kid> <eab-hmac-key> <http01-port> <workers>
//! <seconds>` registers one account with the EAB key, answers http-01 challenges itself on
//! 127.0.0.1:<http01-port> (the server validates there through `acme_resolve`), and runs
//! `workers` threads that each, until the time is up, complete one order after another for a
//! new name under `ehr.hospital.example`: newOrder, the authorization, the http-01 challenge,
//! polling the authorization every 20 ms until valid, finalize with a fresh P-256 CSR, and the
//! certificate download. Prints orders completed, orders/s and latency percentiles.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use serde_json::{json, Value};

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn b64u(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

struct Account {
    key: PKey<Private>,
    kid: Mutex<Option<String>>,
    thumbprint: String,
    jwk: Value,
    directory: Value,
    http: reqwest::blocking::Client,
}

impl Account {
    fn sign(&self, url: &str, nonce: &str, payload: &str) -> Result<String, Failure> {
        let header = match self.kid.lock().map_err(|_| "lock")?.clone() {
            Some(kid) => json!({"alg": "ES256", "nonce": nonce, "url": url, "kid": kid}),
            None => json!({"alg": "ES256", "nonce": nonce, "url": url, "jwk": self.jwk}),
        };
        let protected = b64u(header.to_string().as_bytes());
        let payload = b64u(payload.as_bytes());
        let mut signer =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &self.key)?;
        signer.update(format!("{protected}.{payload}").as_bytes())?;
        let sig = openssl::ecdsa::EcdsaSig::from_der(&signer.sign_to_vec()?)?;
        let raw = [sig.r().to_vec_padded(32)?, sig.s().to_vec_padded(32)?].concat();
        Ok(
            json!({"protected": protected, "payload": payload, "signature": b64u(&raw)})
                .to_string(),
        )
    }

    fn fresh_nonce(&self) -> Result<String, Failure> {
        let url = self.directory["newNonce"].as_str().ok_or("no newNonce")?;
        let r = self.http.head(url).send()?;
        Ok(r.headers()["replay-nonce"].to_str()?.to_string())
    }

    /// POSTs a JWS; returns (status, headers, body) and keeps the answer's nonce in `nonce`.
    fn post(
        &self,
        nonce: &mut String,
        url: &str,
        payload: &str,
    ) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), Failure> {
        let body = self.sign(url, nonce, payload)?;
        let r = self
            .http
            .post(url)
            .header("content-type", "application/jose+json")
            .body(body)
            .send()?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        if let Some(n) = headers.get("replay-nonce") {
            *nonce = n.to_str()?.to_string();
        }
        Ok((status, headers, r.bytes()?.to_vec()))
    }

    fn post_json(
        &self,
        nonce: &mut String,
        url: &str,
        payload: &str,
    ) -> Result<(u16, Value, Option<String>), Failure> {
        let (status, headers, body) = self.post(nonce, url, payload)?;
        let location = headers
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        Ok((
            status,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
            location,
        ))
    }
}

/// The http-01 responder: tokens to key authorizations.
type Answers = Arc<Mutex<HashMap<String, String>>>;

fn responder(port: u16, answers: Answers) -> Result<(), Failure> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answers = answers.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buffer = [0u8; 2048];
                let n = stream.read(&mut buffer).unwrap_or(0);
                let request = String::from_utf8_lossy(&buffer[..n]);
                let token = request
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.strip_prefix("/.well-known/acme-challenge/"))
                    .unwrap_or("")
                    .to_string();
                let answer = answers.lock().ok().and_then(|a| a.get(&token).cloned());
                let reply = match answer {
                    Some(body) => format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    ),
                    None => "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
                };
                let _ = stream.write_all(reply.as_bytes());
            });
        }
    });
    Ok(())
}

fn csr_for(name: &str) -> Result<String, Failure> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut req = openssl::x509::X509ReqBuilder::new()?;
    req.set_pubkey(&key)?;
    let mut extensions = openssl::stack::Stack::new()?;
    extensions.push(
        openssl::x509::extension::SubjectAlternativeName::new()
            .dns(name)
            .build(&req.x509v3_context(None))?,
    )?;
    req.add_extensions(&extensions)?;
    req.sign(&key, openssl::hash::MessageDigest::sha256())?;
    Ok(b64u(&req.build().to_der()?))
}

/// One order from newOrder to the downloaded certificate.
fn one_order(
    account: &Account,
    answers: &Answers,
    nonce: &mut String,
    name: &str,
) -> Result<(), Failure> {
    let new_order = account.directory["newOrder"]
        .as_str()
        .ok_or("no newOrder")?;
    let (status, order, location) = account.post_json(
        nonce,
        new_order,
        &json!({"identifiers": [{"type": "dns", "value": name}]}).to_string(),
    )?;
    if status != 201 {
        return Err(format!("newOrder {status}: {order}").into());
    }
    let order_url = location.ok_or("no order location")?;
    let authz_url = order["authorizations"][0]
        .as_str()
        .ok_or("no authorization")?
        .to_string();
    let (_, authz, _) = account.post_json(nonce, &authz_url, "")?;
    let challenge = authz["challenges"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "http-01"))
        .ok_or("no http-01 challenge")?;
    let token = challenge["token"].as_str().ok_or("no token")?.to_string();
    answers
        .lock()
        .map_err(|_| "lock")?
        .insert(token.clone(), format!("{token}.{}", account.thumbprint));
    let chall_url = challenge["url"]
        .as_str()
        .ok_or("no challenge url")?
        .to_string();
    account.post_json(nonce, &chall_url, "{}")?;
    loop {
        let (_, view, _) = account.post_json(nonce, &authz_url, "")?;
        match view["status"].as_str() {
            Some("valid") => break,
            Some("pending") => std::thread::sleep(Duration::from_millis(20)),
            other => return Err(format!("authorization {other:?}: {view}").into()),
        }
    }
    answers.lock().map_err(|_| "lock")?.remove(&token);
    let finalize = order["finalize"].as_str().ok_or("no finalize")?;
    let (status, done, _) =
        account.post_json(nonce, finalize, &json!({"csr": csr_for(name)?}).to_string())?;
    if status != 200 || done["status"] != "valid" {
        return Err(format!("finalize {status}: {done} ({order_url})").into());
    }
    let cert_url = done["certificate"].as_str().ok_or("no certificate url")?;
    let (status, _, body) = account.post(nonce, cert_url, "")?;
    if status != 200 || !body.starts_with(b"-----BEGIN CERTIFICATE-----") {
        return Err(format!("certificate {status}").into());
    }
    Ok(())
}

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [directory_url, root, kid, hmac, port, workers, seconds] = args.as_slice() else {
        return Err("usage: acme_load <directory-url> <root.pem> <eab-kid> <eab-hmac-key> <http01-port> <workers> <seconds>".into());
    };
    let root = reqwest::Certificate::from_pem(&std::fs::read(root)?)?;
    let http = reqwest::blocking::Client::builder()
        .add_root_certificate(root)
        .tls_built_in_root_certs(false)
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(30))
        .build()?;
    let directory: Value = http.get(directory_url).send()?.json()?;
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let ec = key.ec_key()?;
    let mut ctx = openssl::bn::BigNumContext::new()?;
    let (mut x, mut y) = (openssl::bn::BigNum::new()?, openssl::bn::BigNum::new()?);
    ec.public_key()
        .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)?;
    let jwk_text = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        b64u(&x.to_vec_padded(32)?),
        b64u(&y.to_vec_padded(32)?)
    );
    let thumbprint = b64u(&openssl::sha::sha256(jwk_text.as_bytes()));
    let account = Arc::new(Account {
        key,
        kid: Mutex::new(None),
        thumbprint,
        jwk: serde_json::from_str(&jwk_text)?,
        directory,
        http,
    });
    // Register with the EAB key.
    let new_account = account.directory["newAccount"]
        .as_str()
        .ok_or("no newAccount")?
        .to_string();
    let protected = b64u(
        json!({"alg": "HS256", "kid": kid, "url": new_account})
            .to_string()
            .as_bytes(),
    );
    let payload = b64u(jwk_text.as_bytes());
    let mac_key = PKey::hmac(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(hmac)?)?;
    let mut mac = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &mac_key)?;
    mac.update(format!("{protected}.{payload}").as_bytes())?;
    let eab =
        json!({"protected": protected, "payload": payload, "signature": b64u(&mac.sign_to_vec()?)});
    let mut nonce = account.fresh_nonce()?;
    let (status, body, location) = account.post_json(
        &mut nonce,
        &new_account,
        &json!({"termsOfServiceAgreed": true, "externalAccountBinding": eab}).to_string(),
    )?;
    if status != 201 {
        return Err(format!("newAccount {status}: {body}").into());
    }
    *account.kid.lock().map_err(|_| "lock")? = location;

    let answers: Answers = Arc::new(Mutex::new(HashMap::new()));
    responder(port.parse()?, answers.clone())?;
    let (workers, seconds): (usize, u64) = (workers.parse()?, seconds.parse()?);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let (account, answers, latencies, failures) = (
                account.clone(),
                answers.clone(),
                latencies.clone(),
                failures.clone(),
            );
            std::thread::spawn(move || {
                let mut nonce = account.fresh_nonce().unwrap_or_default();
                let mut n = 0;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let name = format!("w{w}-{n}.ehr.hospital.example");
                    n += 1;
                    match one_order(&account, &answers, &mut nonce, &name) {
                        Ok(()) => {
                            if let Ok(mut l) = latencies.lock() {
                                l.push(t.elapsed().as_secs_f64() * 1000.0);
                            }
                        }
                        Err(e) => {
                            eprintln!("{name}: {e}");
                            failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            nonce = account.fresh_nonce().unwrap_or_default();
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = latencies.lock().map_err(|_| "lock")?.clone();
    l.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "orders {} in {elapsed:.1} s: {:.1} orders/s, p50 {:.0} ms, p99 {:.0} ms, failures {}",
        l.len(),
        l.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        failures.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}
