//! The public plain-HTTP listener: what relying parties fetch. CRLs, OCSP (POST and GET,
//! RFC 6960 appendix A / RFC 9919), CA certificates, health and metrics. Nothing secret.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use actix_web::http::header::{self, HttpDate};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;

use super::body::SlicedBody;
use super::problem::problem;
use crate::ca::CaCertificates;
use crate::crl::CrlService;
use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::ocsp::OcspAnswer;
use crate::ocsp::OcspService;
use crate::store::group_commit::Stats;
use crate::store::DbPool;

/// What the public listener reaches: OCSP, CRLs, CA certificates, the published audit
/// checkpoints and the counters. Never a CA key, an account, a session or the RA: an
/// unauthenticated caller's request cannot get near them.
pub struct PublicState {
    /// OCSP answers (pre-signed, or signed with a responder key).
    pub ocsp: Arc<OcspService>,
    /// Published CRLs.
    pub crls: Arc<CrlService>,
    /// CA certificates.
    pub certificates: Arc<CaCertificates>,
    /// For the published audit checkpoints.
    pub pool: DbPool,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The group-commit writer's counters (none on an OCSP-only instance that never writes).
    pub writer: Option<Arc<Stats>>,
    /// Free space on the data disk.
    pub disk: crate::disk::DiskWatch,
}

fn http_date(secs: i64) -> String {
    HttpDate::from(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)).to_string()
}

/// `GET /crl/{ca}.crl`: DER, application/pkix-crl, with Last-Modified, ETag and Cache-Control.
pub async fn crl(
    state: web::Data<PublicState>,
    path: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ServiceError> {
    let name = path.into_inner();
    let Some(ca) = name.strip_suffix(".crl").map(str::to_string) else {
        return Err(ServiceError::NotFound(format!("CRL {name}")));
    };
    let crls = state.crls.clone();
    let file = ca.clone();
    let row = web::block(move || crls.crl_file(&file))
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))??;
    let etag = format!("\"{}-{}\"", ca, row.number);
    if request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    let now = ca_core::time::UnixTime::now().as_secs() as i64;
    let max_age = (row.next_update - now).clamp(0, 3600);
    Ok(HttpResponse::Ok()
        .content_type("application/pkix-crl")
        .insert_header((header::LAST_MODIFIED, http_date(row.this_update)))
        .insert_header((header::ETAG, etag))
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={max_age}, no-transform, must-revalidate"),
        ))
        .body(SlicedBody::new(row.der.clone())))
}

/// `GET /ca/{ca}.crt` (DER, the AIA caIssuers target) and `GET /ca/{ca}.pem` (PEM chain to the root).
pub async fn ca_certificate(
    state: web::Data<PublicState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let name = path.into_inner();
    if let Some(id) = name.strip_suffix(".crt") {
        let der = state
            .certificates
            .der(id)
            .ok_or_else(|| ServiceError::NotFound(format!("CA {id}")))?;
        return Ok(HttpResponse::Ok()
            .content_type("application/pkix-cert")
            .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
            .body(der.to_vec()));
    }
    if let Some(id) = name.strip_suffix(".pem") {
        let chain = state
            .certificates
            .chain_pem(id)
            .ok_or_else(|| ServiceError::NotFound(format!("CA {id}")))?;
        return Ok(HttpResponse::Ok()
            .content_type("application/pem-certificate-chain")
            .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
            .body(chain));
    }
    Err(ServiceError::NotFound(format!("CA certificate {name}")))
}

fn ocsp_plain(der: impl Into<web::Bytes>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/ocsp-response")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(der.into())
}

/// RFC 9919 (the lightweight OCSP profile that obsoletes RFC 5019) caching: a pre-signed answer
/// to a GET carries max-age up to nextUpdate, Last-Modified, Expires and an ETag; a matching
/// If-None-Match gets 304.
fn ocsp_answer(answer: OcspAnswer, request: &HttpRequest, get: bool) -> HttpResponse {
    match answer.cache {
        Some((this_update, next_update, tag)) if get => {
            let etag = format!("\"{tag:016x}\"");
            let now = ca_core::time::UnixTime::now().as_secs();
            let max_age = next_update.saturating_sub(now);
            let matches = request
                .headers()
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
            let mut builder = if matches {
                HttpResponse::NotModified()
            } else {
                HttpResponse::Ok()
            };
            builder
                .insert_header((
                    header::CACHE_CONTROL,
                    format!("max-age={max_age}, public, no-transform, must-revalidate"),
                ))
                .insert_header((header::LAST_MODIFIED, http_date(this_update as i64)))
                .insert_header((header::EXPIRES, http_date(next_update as i64)))
                .insert_header((header::ETAG, etag));
            if matches {
                builder.finish()
            } else {
                builder
                    .content_type("application/ocsp-response")
                    .body(answer.der)
            }
        }
        _ => ocsp_plain(answer.der),
    }
}

/// `POST /ocsp` with `application/ocsp-request`.
pub async fn ocsp_post(
    state: web::Data<PublicState>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.eq_ignore_ascii_case("application/ocsp-request") {
        return problem(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "OCSP requests must be sent as application/ocsp-request",
        );
    }
    let ocsp = state.ocsp.clone();
    if let Some(answer) = ocsp.ocsp_cached(&body) {
        return ocsp_answer(answer, &request, false);
    }
    match web::block(move || ocsp.ocsp(&body)).await {
        Ok(answer) => ocsp_answer(answer, &request, false),
        Err(_) => ocsp_plain(ca_core::ocsp::error_response(
            x509_ocsp::OcspResponseStatus::InternalError,
        )),
    }
}

/// Everything under `/ocsp` but `POST /ocsp`: a GET (or HEAD) of `/ocsp/{request}` is an OCSP
/// request, anything else is refused with 405.
pub async fn ocsp_get_or_refuse(
    state: web::Data<PublicState>,
    request: HttpRequest,
) -> HttpResponse {
    let method = request.method();
    if (method == actix_web::http::Method::GET || method == actix_web::http::Method::HEAD)
        && request.path().starts_with("/ocsp/")
    {
        return ocsp_get(state, request).await;
    }
    problem(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "OCSP requests are POST /ocsp or GET /ocsp/{base64 request}",
    )
}

/// `GET /ocsp/{base64 request}` (RFC 6960 appendix A.1, RFC 9919): base64 of the DER
/// request, URL-encoded.
pub async fn ocsp_get(state: web::Data<PublicState>, request: HttpRequest) -> HttpResponse {
    let raw = request.path().strip_prefix("/ocsp/").unwrap_or("");
    let decoded = percent_decode(raw);
    let der = decoded.and_then(|text| {
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .or_else(|_| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(text.trim_end_matches('=').as_bytes())
            })
            .ok()
    });
    let Some(der) = der else {
        return ocsp_plain(ca_core::ocsp::error_response(
            x509_ocsp::OcspResponseStatus::MalformedRequest,
        ));
    };
    let ocsp = state.ocsp.clone();
    if let Some(answer) = ocsp.ocsp_cached(&der) {
        return ocsp_answer(answer, &request, true);
    }
    match web::block(move || ocsp.ocsp(&der)).await {
        Ok(answer) => ocsp_answer(answer, &request, true),
        Err(_) => ocsp_plain(ca_core::ocsp::error_response(
            x509_ocsp::OcspResponseStatus::InternalError,
        )),
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `GET /healthz`: the data disk has room, the database answers and the CRL is current; an OCSP-only instance is
/// healthy while its cache holds responses, even with the database unreachable.
pub async fn healthz(state: web::Data<PublicState>) -> HttpResponse {
    if let Some(why) = state.disk.low() {
        return problem(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "disk-full",
            "Data disk (nearly) full",
            &why,
        );
    }
    let (ocsp, crls) = (state.ocsp.clone(), state.crls.clone());
    let ok = web::block(move || {
        if ocsp.ocsp_only() && ocsp.cached_responses() > 0 {
            return true;
        }
        crls.crl("issuing")
            .map(|c| c.next_update > ca_core::time::UnixTime::now().as_secs() as i64)
            .unwrap_or(false)
    })
    .await;
    match ok {
        Ok(true) => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        _ => problem(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            "Unhealthy",
            "the database or the CRL is not available",
        ),
    }
}

/// `GET /audit/checkpoints`: the audit key and the newest signed checkpoints of the audit
/// chain, for auditors to keep where the database cannot reach (`ca-cli audit checkpoints`).
pub async fn audit_checkpoints(state: web::Data<PublicState>) -> HttpResponse {
    let pool = state.pool.clone();
    match web::block(move || crate::ra::audit_checkpoint::published(&mut *pool.get()?)).await {
        Ok(Ok(file)) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(file),
        Ok(Err(e)) => actix_web::ResponseError::error_response(&e),
        Err(_) => {
            actix_web::ResponseError::error_response(&ServiceError::Internal("blocking".into()))
        }
    }
}

/// `GET /metrics`: Prometheus text format, with how many pre-signed OCSP responses are held and
/// how the group-commit writer batches.
pub async fn metrics(state: web::Data<PublicState>) -> HttpResponse {
    let mut text = state.metrics.render();
    text.push_str(&state.disk.render());
    text.push_str(&format!(
        "# HELP mamori_ocsp_cached_responses Pre-signed OCSP responses held in memory.\n# TYPE mamori_ocsp_cached_responses gauge\nmamori_ocsp_cached_responses {}\n",
        state.ocsp.cached_responses()
    ));
    if let Some(writer) = &state.writer {
        text.push_str(&format!(
        "# HELP mamori_db_group_commits_total Transactions run by the group-commit writer.\n# TYPE mamori_db_group_commits_total counter\nmamori_db_group_commits_total {}\n# HELP mamori_db_group_commit_jobs_total Writes those transactions carried (jobs per commit = this / commits).\n# TYPE mamori_db_group_commit_jobs_total counter\nmamori_db_group_commit_jobs_total {}\n# HELP mamori_db_group_commit_retries_total Batches run again with a savepoint per write because one write failed.\n# TYPE mamori_db_group_commit_retries_total counter\nmamori_db_group_commit_retries_total {}\n",
        writer.batches.load(std::sync::atomic::Ordering::Relaxed),
        writer.jobs.load(std::sync::atomic::Ordering::Relaxed),
        writer.retried.load(std::sync::atomic::Ordering::Relaxed)
    ));
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}
