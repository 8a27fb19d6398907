//! ACME challenge validation: http-01 (RFC 8555 §8.3) and tls-alpn-01 (RFC 8737). Only names
//! the profile and the account's EAB key allow reach here; connections go to the configured
//! port of the name's address (`acme_resolve` first, then DNS), with one deadline for the
//! whole exchange, a small answer limit, and no redirects followed: a validator cannot be
//! steered to another host.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::AcmeError;
use crate::config::{Config, ResolveOverride};

/// The most of an http-01 answer read (headers and body).
const MAX_ANSWER: usize = 16 * 1024;
/// id-pe-acmeIdentifier (RFC 8737 §3).
const ACME_IDENTIFIER_OID: &str = "1.3.6.1.5.5.7.1.31";

fn connection(detail: impl Into<String>) -> AcmeError {
    AcmeError::new("connection", 400, detail)
}

/// Where validation of `name` connects: an `acme_resolve` override for it or a domain above
/// it, else the first address DNS gives.
pub fn address_of(
    name: &str,
    port: u16,
    resolve: &[ResolveOverride],
) -> Result<SocketAddr, AcmeError> {
    if let Some(entry) = resolve
        .iter()
        .filter(|r| name == r.domain || name.ends_with(&format!(".{}", r.domain)))
        .max_by_key(|r| r.domain.len())
    {
        return Ok(SocketAddr::new(entry.address, port));
    }
    (name, port)
        .to_socket_addrs()
        .map_err(|_| AcmeError::new("dns", 400, format!("{name} does not resolve")))?
        .next()
        .ok_or_else(|| AcmeError::new("dns", 400, format!("{name} has no address")))
}

fn remaining(deadline: Instant) -> Result<Duration, AcmeError> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| connection("the validation timed out"))
}

/// Validates `kind` for `name`: Ok when the name's server proves it holds the account key.
pub fn validate(
    kind: &str,
    name: &str,
    token: &str,
    key_authorization: &str,
    config: &Config,
    resolve: &[ResolveOverride],
) -> Result<(), AcmeError> {
    let deadline = Instant::now() + Duration::from_secs(config.acme_validation_timeout_secs);
    match kind {
        "http-01" => {
            let address = address_of(name, config.acme_http01_port, resolve)?;
            http01(name, address, token, key_authorization, deadline)
        }
        "tls-alpn-01" => {
            let address = address_of(name, config.acme_tls_alpn01_port, resolve)?;
            tls_alpn01(name, address, key_authorization, deadline)
        }
        _ => Err(AcmeError::malformed("unknown challenge type")),
    }
}

fn http01(
    name: &str,
    address: SocketAddr,
    token: &str,
    key_authorization: &str,
    deadline: Instant,
) -> Result<(), AcmeError> {
    let mut stream = TcpStream::connect_timeout(&address, remaining(deadline)?)
        .map_err(|e| connection(format!("connecting to {name} ({address}): {e}")))?;
    // HTTP/1.0 so that the answer is not chunked; the Host header names the name validated.
    let request = format!(
        "GET /.well-known/acme-challenge/{token} HTTP/1.0\r\nHost: {name}\r\n\
         User-Agent: Mamori-ACME-validator\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .and_then(|_| stream.write_all(request.as_bytes()))
        .map_err(|e| connection(format!("writing to {name}: {e}")))?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(|e| connection(e.to_string()))?;
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buffer[..n]);
                if answer.len() > MAX_ANSWER {
                    return Err(AcmeError::unauthorized(format!(
                        "{name}'s answer is larger than {MAX_ANSWER} bytes"
                    )));
                }
            }
            Err(e) => return Err(connection(format!("reading from {name}: {e}"))),
        }
    }
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| AcmeError::unauthorized(format!("{name} did not answer HTTP")))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| AcmeError::unauthorized(format!("{name} did not answer HTTP")))?;
    if (300..400).contains(&status) {
        return Err(AcmeError::unauthorized(format!(
            "{name} answered with a redirect ({status}); Mamori does not follow redirects"
        )));
    }
    if status != 200 {
        return Err(AcmeError::unauthorized(format!(
            "{name} answered {status} for the challenge"
        )));
    }
    let body = &answer[split + 4..];
    let text = String::from_utf8_lossy(body);
    if text.trim_end() != key_authorization {
        return Err(AcmeError::unauthorized(format!(
            "{name} answered a wrong key authorization"
        )));
    }
    Ok(())
}

fn tls_alpn01(
    name: &str,
    address: SocketAddr,
    key_authorization: &str,
    deadline: Instant,
) -> Result<(), AcmeError> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let stream = TcpStream::connect_timeout(&address, remaining(deadline)?)
        .map_err(|e| connection(format!("connecting to {name} ({address}): {e}")))?;
    let left = remaining(deadline)?;
    stream
        .set_read_timeout(Some(left))
        .and_then(|_| stream.set_write_timeout(Some(left)))
        .map_err(|e| connection(e.to_string()))?;
    let tls = |e: String| AcmeError::new("tls", 400, format!("TLS with {name}: {e}"));
    let mut builder =
        SslConnector::builder(SslMethod::tls_client()).map_err(|e| tls(e.to_string()))?;
    // The answer is a self-signed certificate: checked below, not by a chain.
    builder.set_verify(SslVerifyMode::NONE);
    builder
        .set_alpn_protos(b"\x0aacme-tls/1")
        .map_err(|e| tls(e.to_string()))?;
    let connector = builder.build();
    let mut config = connector.configure().map_err(|e| tls(e.to_string()))?;
    config.set_verify_hostname(false);
    let stream = config
        .connect(name, stream)
        .map_err(|e| tls(e.to_string()))?;
    if stream.ssl().selected_alpn_protocol() != Some(b"acme-tls/1") {
        return Err(AcmeError::unauthorized(format!(
            "{name} did not negotiate acme-tls/1"
        )));
    }
    let cert = stream
        .ssl()
        .peer_certificate()
        .ok_or_else(|| AcmeError::unauthorized(format!("{name} sent no certificate")))?;
    let der = cert.to_der().map_err(|e| tls(e.to_string()))?;
    check_alpn_certificate(name, &der, key_authorization)
}

/// Checks a tls-alpn-01 certificate: exactly one subjectAltName, the dNSName validated, and a
/// critical acmeIdentifier extension holding SHA-256 of the key authorization.
pub fn check_alpn_certificate(
    name: &str,
    der: &[u8],
    key_authorization: &str,
) -> Result<(), AcmeError> {
    use der::{Decode, Encode};
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let refuse =
        |why: &str| AcmeError::unauthorized(format!("{name}'s tls-alpn-01 certificate: {why}"));
    let cert = x509_cert::Certificate::from_der(der).map_err(|_| refuse("does not parse"))?;
    let extensions = cert.tbs_certificate.extensions.unwrap_or_default();
    let oid = const_oid::ObjectIdentifier::new_unwrap(ACME_IDENTIFIER_OID);
    let acme = extensions
        .iter()
        .find(|e| e.extn_id == oid)
        .ok_or_else(|| refuse("no acmeIdentifier extension"))?;
    if !acme.critical {
        return Err(refuse("the acmeIdentifier extension is not critical"));
    }
    let digest = der::asn1::OctetString::from_der(acme.extn_value.as_bytes())
        .map_err(|_| refuse("the acmeIdentifier is not an OCTET STRING"))?;
    let expected = Sha256::digest(key_authorization.as_bytes());
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        digest.as_bytes(),
        expected.as_slice(),
    )) {
        return Err(refuse(
            "the acmeIdentifier does not match the key authorization",
        ));
    }
    let san = extensions
        .iter()
        .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME)
        .ok_or_else(|| refuse("no subjectAltName"))?;
    let names = SubjectAltName::from_der(san.extn_value.as_bytes())
        .map_err(|_| refuse("the subjectAltName does not parse"))?;
    let _ = names.to_der();
    match names.0.as_slice() {
        [GeneralName::DnsName(n)] if n.as_str().eq_ignore_ascii_case(name) => Ok(()),
        _ => Err(refuse(
            "the subjectAltName must be exactly the name validated",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn overrides() -> Vec<ResolveOverride> {
        vec![ResolveOverride {
            domain: "hospital.example".into(),
            address: "127.0.0.1".parse().unwrap(),
        }]
    }

    fn serve_once(answer: &'static [u8]) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(answer);
            }
        });
        port
    }

    #[test]
    fn overrides_win_over_dns_for_names_below_them() {
        let a = address_of("ehr.hospital.example", 80, &overrides()).unwrap();
        assert_eq!(a, "127.0.0.1:80".parse().unwrap());
        assert!(address_of("no-such-name.invalid", 80, &overrides()).is_err());
    }

    #[test]
    fn http01_accepts_the_key_authorization_and_refuses_redirects_and_wrong_answers() {
        let deadline = || Instant::now() + Duration::from_secs(5);
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let good = serve_once(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\ntok.k\n");
        assert!(http01("a.hospital.example", addr(good), "tok", "tok.k", deadline()).is_ok());
        let redirect =
            serve_once(b"HTTP/1.0 302 Found\r\nLocation: http://169.254.169.254/\r\n\r\n");
        let e = http01(
            "a.hospital.example",
            addr(redirect),
            "tok",
            "tok.k",
            deadline(),
        )
        .unwrap_err();
        assert!(e.detail.contains("redirect"), "{}", e.detail);
        let wrong = serve_once(b"HTTP/1.0 200 OK\r\n\r\nother");
        assert_eq!(
            http01(
                "a.hospital.example",
                addr(wrong),
                "tok",
                "tok.k",
                deadline()
            )
            .unwrap_err()
            .kind,
            "unauthorized"
        );
        // A server that never answers is cut off at the deadline.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let e = http01(
            "a.hospital.example",
            addr(port),
            "tok",
            "tok.k",
            Instant::now() + Duration::from_millis(200),
        )
        .unwrap_err();
        assert_eq!(e.kind, "connection");
    }
}
