//! The enrollment listener's device routes: EST (RFC 7030) under `/.well-known/est/<profile>/`
//! and renewal by the current certificate (`/api/v1/renew`). Devices authenticate with a TLS
//! client certificate (read off the connection into [`PeerCertificate`]) or, for a first EST
//! enrollment, a one-time code as the HTTP Basic password.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::api::*;
use crate::blocking::blocking;
use crate::error::ServiceError;
use crate::ra::{Authority, DeviceProof, OnStore, Submitted};
use crate::store::enrollment_rows::EnrollmentRows;
use crate::store::models::ScepTransactionRow;

/// The certificate a client authenticated the TLS connection with (DER), verified up to
/// Mamori's root by the TLS layer (expiry left to the renewal rule).
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Vec<u8>);

fn peer(request: &HttpRequest) -> Option<Vec<u8>> {
    request.conn_data::<PeerCertificate>().map(|p| p.0.clone())
}

fn need_certificate() -> ServiceError {
    ServiceError::Unauthenticated
}

/// Base64 with a line break (LF, which `base64 -d` and `openssl base64 -d` both take) every 64
/// characters, as EST bodies carry it.
fn base64_lines(der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(text.len() + text.len() / 64 + 1);
    for chunk in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out
}

fn pkcs7_response(status: actix_web::http::StatusCode, der: &[u8]) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            "application/pkcs7-mime; smime-type=certs-only",
        ))
        .insert_header(("Content-Transfer-Encoding", "base64"))
        .body(base64_lines(der))
}

/// A base64 body (whitespace allowed) as DER.
fn decode_body(body: &[u8]) -> Result<Vec<u8>, ServiceError> {
    let text: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| ServiceError::Invalid("the body is not base64 (RFC 7030 §4.2.1)".into()))
}

/// `GET /.well-known/est/{profile}/cacerts`: the issuing CA and the root.
pub async fn cacerts(
    authority: web::Data<Arc<Authority>>,
    profile: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let profile = authority.enrollment_profile(&profile, "est")?;
    let chain = authority
        .issuers
        .certificates()
        .chain_der(profile.issuing_ca());
    let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let der = crate::scep::message::degenerate(&refs, &[])
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(pkcs7_response(actix_web::http::StatusCode::OK, &der))
}

/// `GET /.well-known/est/{profile}/csrattrs`: what the CSR should carry (RFC 7030 §4.5): the
/// signature algorithm and key types the profile takes.
pub async fn csrattrs(
    authority: web::Data<Arc<Authority>>,
    profile: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    use ca_core::der::Encode;
    let profile = authority.enrollment_profile(&profile, "est")?;
    let mut oids: Vec<const_oid::ObjectIdentifier> = Vec::new();
    for key in profile.key_types() {
        let (key_oid, signature) = match key.as_str() {
            "rsa" => ("1.2.840.113549.1.1.1", "1.2.840.113549.1.1.11"),
            "ecdsa-p384" => ("1.2.840.10045.2.1", "1.2.840.10045.4.3.3"),
            _ => ("1.2.840.10045.2.1", "1.2.840.10045.4.3.2"),
        };
        for text in [key_oid, signature] {
            let oid = const_oid::ObjectIdentifier::new_unwrap(text);
            if !oids.contains(&oid) {
                oids.push(oid);
            }
        }
    }
    let der = oids
        .to_der()
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/csrattrs"))
        .insert_header(("Content-Transfer-Encoding", "base64"))
        .body(base64_lines(&der)))
}

/// The Basic password of a request, if it sent one.
fn basic_password(request: &HttpRequest) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, p)| p.to_string())
}

/// An EST retry of the same CSR answers the request it made: transactions keyed by the CSR.
fn est_transaction(csr_der: &[u8]) -> (String, String) {
    let hash = hex::encode(Sha256::digest(csr_der));
    (format!("est:{hash}"), hash)
}

fn est_hook(csr_der: &[u8]) -> OnStore {
    let (id, hash) = est_transaction(csr_der);
    Arc::new(move |conn, request_id, now| {
        let stored = conn.insert_scep_transaction(&ScepTransactionRow {
            transaction_id: id.clone(),
            signer_sha256: "est".into(),
            csr_key_sha256: hash.clone(),
            request_id: request_id.to_string(),
            created_at: now,
        })?;
        if stored {
            Ok(())
        } else {
            Err(ServiceError::Conflict(
                crate::scep::DUPLICATE_TRANSACTION.into(),
            ))
        }
    })
}

/// The answer to an EST enrollment: 200 with the certificate, or 202 with Retry-After while it
/// waits for approval (RFC 7030 §4.2.3).
async fn est_answer(
    authority: Arc<Authority>,
    csr: Vec<u8>,
    submitted: Result<Result<Submitted, String>, ServiceError>,
) -> Result<HttpResponse, ServiceError> {
    let duplicate = |e: &ServiceError| matches!(e, ServiceError::Conflict(m) if m == crate::scep::DUPLICATE_TRANSACTION);
    let finished = match submitted {
        Ok(Ok(submitted)) => submitted.finish(authority.clone()).await.map(|v| v.id),
        Ok(Err(request_id)) => Ok(request_id),
        Err(e) => Err(e),
    };
    let request_id = match finished {
        Ok(id) => id,
        // The same CSR sent twice at once: the first one's request answers both. A copy may
        // also be refused for the code its twin used up a moment before: the same answer.
        Err(e) if duplicate(&e) || !matches!(e, ServiceError::Internal(_)) => {
            let a = authority.clone();
            blocking(move || {
                let (id, _) = est_transaction(&csr);
                a.conn()?
                    .scep_transaction(&id, "est")?
                    .map(|t| t.request_id)
                    .ok_or(e)
            })
            .await?
        }
        Err(e) => return Err(e),
    };
    let view = blocking(move || authority.renew_view(&request_id)).await?;
    match view.status.as_str() {
        "issued" => {
            let pem = view.certificate_pem.unwrap_or_default();
            let first = openssl::x509::X509::from_pem(pem.as_bytes())
                .and_then(|c| c.to_der())
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            let der = crate::scep::message::degenerate(&[&first], &[])
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            Ok(pkcs7_response(actix_web::http::StatusCode::OK, &der))
        }
        "pending" | "approved" => Ok(HttpResponse::Accepted()
            .insert_header((header::RETRY_AFTER, "60"))
            .content_type("text/plain")
            .body(format!(
                "request {} waits for approval / 承認待ちです\n",
                view.request
            ))),
        other => Err(ServiceError::Forbidden(format!(
            "request {} was {other} / 申請は {other} です",
            view.request
        ))),
    }
}

/// `POST /.well-known/est/{profile}/simpleenroll`.
pub async fn simpleenroll(
    authority: web::Data<Arc<Authority>>,
    profile: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ServiceError> {
    let csr = decode_body(&body)?;
    let proof = match (basic_password(&request), peer(&request)) {
        (Some(code), _) => DeviceProof::Code(code),
        (None, Some(der)) => DeviceProof::Bootstrap(der),
        (None, None) => {
            let mut response = crate::http::problem::problem(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
                "send the one-time enrollment code as the HTTP Basic password, or a bootstrap \
                 certificate over TLS / 登録コードが必要です",
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"mamori-est\""),
            );
            return Ok(response);
        }
    };
    let profile = profile.into_inner();
    est_submit(authority.get_ref().clone(), csr, move |a, csr, hook| {
        let profile = a.enrollment_profile(&profile, "est")?;
        a.enroll_device(profile, &proof, csr, "est", Some(hook))
    })
    .await
}

/// `POST /.well-known/est/{profile}/simplereenroll`: renewal by the TLS client certificate.
pub async fn simplereenroll(
    authority: web::Data<Arc<Authority>>,
    profile: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ServiceError> {
    let csr = decode_body(&body)?;
    let current = peer(&request).ok_or_else(need_certificate)?;
    authority.enrollment_profile(&profile, "est")?;
    est_submit(authority.get_ref().clone(), csr, move |a, csr, hook| {
        a.renew(&current, csr, "est", Some(hook))
    })
    .await
}

/// An EST enrollment or re-enrollment: a retry of a CSR already answered gets that request's
/// state; otherwise `submit` (on the blocking pool) files it, with the hook that records the
/// CSR's transaction in the request's own commit.
async fn est_submit(
    authority: Arc<Authority>,
    csr: Vec<u8>,
    submit: impl FnOnce(&Authority, &[u8], OnStore) -> Result<Submitted, ServiceError> + Send + 'static,
) -> Result<HttpResponse, ServiceError> {
    let a = authority.clone();
    let sent = csr.clone();
    let submitted = blocking(move || {
        let (id, _) = est_transaction(&csr);
        if let Some(earlier) = a.conn()?.scep_transaction(&id, "est")? {
            return Ok(Err(earlier.request_id));
        }
        submit(&a, &csr, est_hook(&csr)).map(Ok)
    })
    .await;
    est_answer(authority, sent, submitted).await
}

/// `POST /api/v1/renew`: renewal by the TLS client certificate, JSON in and out.
pub async fn renew(
    authority: web::Data<Arc<Authority>>,
    request: HttpRequest,
    body: web::Json<RenewRequest>,
) -> Result<HttpResponse, ServiceError> {
    let current = peer(&request).ok_or_else(need_certificate)?;
    let a = authority.get_ref().clone();
    let csr = body.into_inner().csr;
    let submitted = blocking(move || a.renew(&current, csr.as_bytes(), "renew", None)).await?;
    let view = submitted.finish(authority.get_ref().clone()).await?;
    let a = authority.get_ref().clone();
    let view = blocking(move || a.renew_view(&view.id)).await?;
    Ok(if view.status == "issued" {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Accepted()
            .insert_header((header::RETRY_AFTER, "60"))
            .json(view)
    })
}

/// `GET /api/v1/renew/{id}`: a renewal's state, for the certificate that asked for it.
pub async fn renew_status(
    authority: web::Data<Arc<Authority>>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let current = peer(&request).ok_or_else(need_certificate)?;
    let a = authority.get_ref().clone();
    let id = id.into_inner();
    let view = blocking(move || a.renewal_status(&current, &id)).await?;
    Ok(if view.status == "pending" || view.status == "approved" {
        HttpResponse::Accepted()
            .insert_header((header::RETRY_AFTER, "60"))
            .json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}
