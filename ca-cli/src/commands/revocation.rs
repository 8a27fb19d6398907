//! `crl fetch` and `ocsp check`: what relying parties see, verified with OpenSSL.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use openssl::ocsp::{
    OcspCertId, OcspCertStatus, OcspFlag, OcspRequest, OcspResponse, OcspResponseStatus,
};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509Crl, X509};
use serde_json::json;

use crate::client::{exit, fail, CliResult, Connection};
use crate::output;

/// `ca-cli crl fetch`.
#[derive(Args)]
#[command(after_help = "Example:\n  ca-cli --public-url http://127.0.0.1:8080 crl fetch --list")]
pub struct CrlFetch {
    /// CA id.
    #[arg(long, default_value = "issuing")]
    pub ca: String,
    /// Save the DER CRL here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// List the entries.
    #[arg(long)]
    pub list: bool,
}

/// `ca-cli ocsp check`.
#[derive(Args)]
#[command(
    after_help = "Example:\n  ca-cli --ca-file mamori-dev/root-ca.pem ocsp check eng-chain.pem"
)]
pub struct OcspCheck {
    /// The certificate (PEM); if the file holds its chain, the second certificate is the issuer.
    pub cert: PathBuf,
    /// The issuer certificate (PEM), if not in the certificate file.
    #[arg(long)]
    pub issuer: Option<PathBuf>,
    /// OCSP URL (default: the certificate's AIA OCSP URL).
    #[arg(long)]
    pub url: Option<String>,
}

fn root_store(conn: &Connection) -> CliResult<openssl::x509::store::X509Store> {
    let path = conn.ca_file.as_ref().ok_or_else(|| {
        fail(
            exit::USAGE,
            "pass --ca-file (Mamori's root certificate) to verify",
        )
    })?;
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut store = X509StoreBuilder::new()?;
    for cert in X509::stack_from_pem(&pem).with_context(|| format!("parsing {}", path.display()))? {
        store.add_cert(cert)?;
    }
    Ok(store.build())
}

/// An ASN.1 time as RFC 3339 in UTC (`2026-12-01T11:03:15Z`), as the API writes times.
fn asn1_text(time: &openssl::asn1::Asn1TimeRef) -> String {
    let seconds = openssl::asn1::Asn1Time::from_unix(0)
        .and_then(|epoch| epoch.diff(time))
        .map(|d| i64::from(d.days) * 86_400 + i64::from(d.secs));
    match seconds {
        Ok(s) if s >= 0 => ca_core::time::UnixTime(s as u64).to_rfc3339(),
        _ => time.to_string(),
    }
}

/// An OCSP GeneralizedTime as RFC 3339 in UTC. OpenSSL prints it as `Dec  1 20:03:15 2026
/// GMT` and gives no other way to read it, so that is parsed.
fn generalized_text(time: &openssl::asn1::Asn1GeneralizedTimeRef) -> String {
    let text = time.to_string();
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = text.split_whitespace().collect();
    match parts.as_slice() {
        [month, day, clock, year, "GMT"] => match MONTHS.iter().position(|m| m == month) {
            Some(m) => format!(
                "{year}-{:02}-{:02}T{clock}Z",
                m + 1,
                day.parse::<u32>().unwrap_or(0)
            ),
            None => text,
        },
        _ => text,
    }
}

/// RFC 5280's name for a CRLReason code (§5.3.1), as relying parties and RFCs write it.
fn reason_name(code: i64) -> String {
    match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        other => return format!("reason {other}"),
    }
    .to_string()
}

/// Fetches, verifies and summarises a CRL.
pub fn crl_fetch(
    conn: &Connection,
    public_url: &str,
    args: CrlFetch,
    json_out: bool,
) -> CliResult<()> {
    let http = conn.http()?;
    let base = public_url.trim_end_matches('/');
    let get = |path: &str| -> CliResult<Vec<u8>> {
        let url = format!("{base}{path}");
        let response = http
            .get(&url)
            .send()
            .map_err(|e| fail(exit::UNAVAILABLE, public_failure("GET", &url, &e)))?;
        if !response.status().is_success() {
            let code = if response.status().as_u16() == 404 {
                exit::NOT_FOUND
            } else {
                exit::UNAVAILABLE
            };
            return Err(fail(code, format!("GET {url}: {}", response.status())));
        }
        Ok(response
            .bytes()
            .map_err(|e| fail(exit::UNAVAILABLE, crate::client::describe(&e)))?
            .to_vec())
    };
    let der = get(&format!("/crl/{}.crl", args.ca))?;
    let crl =
        X509Crl::from_der(&der).map_err(|_| fail(exit::ERROR, "the server's CRL is not DER"))?;
    let chain =
        X509::stack_from_pem(&get(&format!("/ca/{}.pem", args.ca))?).context("the CA chain")?;
    let ca = chain
        .first()
        .ok_or_else(|| fail(exit::ERROR, "empty CA chain"))?;
    if conn.ca_file.is_some() {
        let store = root_store(conn)?;
        let mut untrusted = openssl::stack::Stack::new()?;
        for c in chain.iter().skip(1) {
            untrusted.push(c.clone())?;
        }
        let mut ctx = openssl::x509::X509StoreContext::new()?;
        if !ctx.init(&store, ca, &untrusted, |c| c.verify_cert())? {
            return Err(fail(
                exit::ERROR,
                "the CA certificate does not chain to the trusted root",
            ));
        }
    }
    let ca_key = ca.public_key()?;
    if !crl.verify(&ca_key)? {
        return Err(fail(exit::ERROR, "the CRL's signature does not verify"));
    }
    if let Some(out) = &args.out {
        std::fs::write(out, &der).with_context(|| format!("writing {}", out.display()))?;
    }
    let entries: Vec<serde_json::Value> = crl
        .get_revoked()
        .map(|stack| {
            stack
                .iter()
                .map(|e| {
                    json!({
                        "serial": e.serial_number().to_bn().ok().and_then(|b| b.to_hex_str().ok()).map(|h| h.to_lowercase()).unwrap_or_default(),
                        "revoked_at": asn1_text(e.revocation_date()),
                        "reason": e.extension::<openssl::x509::ReasonCode>().ok().flatten().map(|(_, r)| reason_name(r.get_i64().unwrap_or(0))).unwrap_or_else(|| "unspecified".into()),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let summary = json!({
        "ca": args.ca,
        "this_update": asn1_text(crl.last_update()),
        "next_update": crl.next_update().map(asn1_text),
        "entries": entries.len(),
        "signature": "valid",
    });
    if json_out {
        output::print(true, &json!({"crl": summary, "revoked": entries}), &[]);
    } else {
        output::print(
            false,
            &summary,
            &[
                ("ca", "CA"),
                ("this_update", "THIS UPDATE"),
                ("next_update", "NEXT UPDATE"),
                ("entries", "ENTRIES"),
                ("signature", "SIGNATURE"),
            ],
        );
        if args.list {
            out!();
            output::print(
                false,
                &serde_json::Value::Array(entries),
                &[
                    ("serial", "SERIAL"),
                    ("revoked_at", "REVOKED"),
                    ("reason", "REASON"),
                ],
            );
        }
    }
    Ok(())
}

/// Sends a real OCSP request, verifies the signed response, prints the status and its times.
pub fn ocsp_check(conn: &Connection, args: OcspCheck, json_out: bool) -> CliResult<()> {
    let pem =
        std::fs::read(&args.cert).with_context(|| format!("reading {}", args.cert.display()))?;
    let certs = X509::stack_from_pem(&pem)
        .with_context(|| format!("{} is not PEM certificates", args.cert.display()))?;
    let leaf = certs.first().ok_or_else(|| {
        fail(
            exit::ERROR,
            format!("{} holds no certificate", args.cert.display()),
        )
    })?;
    let issuer = match &args.issuer {
        Some(path) => X509::from_pem(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?,
        None => certs.get(1).cloned().ok_or_else(|| {
            fail(
                exit::USAGE,
                "the file holds no issuer certificate: pass --issuer",
            )
        })?,
    };
    let url = match args.url {
        Some(u) => u,
        None => leaf
            .ocsp_responders()
            .ok()
            .and_then(|list| list.iter().next().map(|s| s.to_string()))
            .ok_or_else(|| {
                fail(
                    exit::USAGE,
                    "the certificate names no OCSP responder: pass --url",
                )
            })?,
    };
    let id = || OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), leaf, &issuer);
    let mut request = OcspRequest::new()?;
    request.add_id(id()?)?;
    let response = conn
        .http()?
        .post(&url)
        .header("content-type", "application/ocsp-request")
        .body(request.to_der()?)
        .send()
        .map_err(|e| fail(exit::UNAVAILABLE, public_failure("POST", &url, &e)))?;
    if !response.status().is_success() {
        return Err(fail(
            exit::UNAVAILABLE,
            format!("POST {url}: {}", response.status()),
        ));
    }
    let body = response
        .bytes()
        .map_err(|e| fail(exit::UNAVAILABLE, crate::client::describe(&e)))?;
    let response = OcspResponse::from_der(&body)
        .map_err(|_| fail(exit::ERROR, "the OCSP response is not DER"))?;
    if response.status() != OcspResponseStatus::SUCCESSFUL {
        return Err(fail(
            exit::REFUSED,
            format!("the responder answered {:?}", response.status()),
        ));
    }
    let basic = response.basic()?;
    let store = root_store(conn)?;
    let mut untrusted = openssl::stack::Stack::new()?;
    untrusted.push(issuer.clone())?;
    basic
        .verify(&untrusted, &store, OcspFlag::empty())
        .map_err(|_| fail(exit::ERROR, "the OCSP response's signature does not verify"))?;
    let cert_id = id()?;
    let status = basic
        .find_status(&cert_id)
        .ok_or_else(|| fail(exit::ERROR, "the response does not cover this certificate"))?;
    status
        .check_validity(300, None)
        .map_err(|_| fail(exit::ERROR, "the OCSP response is outside its validity"))?;
    let text = match status.status {
        OcspCertStatus::GOOD => "good",
        OcspCertStatus::REVOKED => "revoked",
        _ => "unknown",
    };
    let reason = if status.status == OcspCertStatus::REVOKED {
        Some(reason_name(status.reason.as_raw().into()))
    } else {
        None
    };
    let summary = json!({
        "status": text,
        "this_update": generalized_text(status.this_update),
        "next_update": status.next_update().map(generalized_text),
        "revoked_at": status.revocation_time.map(generalized_text),
        "reason": reason,
        "responder": url,
        "signature": "valid",
    });
    output::print(
        json_out,
        &summary,
        &[
            ("status", "STATUS"),
            ("this_update", "THIS UPDATE"),
            ("next_update", "NEXT UPDATE"),
            ("revoked_at", "REVOKED"),
            ("reason", "REASON"),
        ],
    );
    match text {
        "good" => Ok(()),
        "revoked" => Err(fail(
            exit::REVOKED,
            format!(
                "the certificate is revoked ({}) / 失効しています",
                reason.as_deref().unwrap_or("unspecified")
            ),
        )),
        _ => Err(fail(
            exit::UNKNOWN,
            "the responder does not know this certificate / 応答者はこの証明書を知りません",
        )),
    }
}

/// What failed on the public listener, with every cause and where the address came from.
fn public_failure(method: &str, url: &str, error: &reqwest::Error) -> String {
    let hint = if error.is_connect() || error.is_timeout() {
        " (nothing answers there: is Mamori's public listener running and reachable from here?)"
    } else {
        ""
    };
    format!("{method} {url}: {}{hint}", crate::client::describe(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_times_read_as_people_write_them() {
        assert_eq!(reason_name(1), "keyCompromise");
        assert_eq!(reason_name(6), "certificateHold");
        assert_eq!(reason_name(7), "reason 7");
        let t = openssl::asn1::Asn1Time::from_unix(1_764_587_000).unwrap();
        assert_eq!(asn1_text(&t), "2025-12-01T11:03:20Z");
    }
}
