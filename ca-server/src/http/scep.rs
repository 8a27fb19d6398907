//! SCEP over HTTP (RFC 8894 §4): `GET|POST /scep/<profile>[/pkiclient.exe]?operation=...` on
//! the enrollment listeners. GetCACaps and GetCACert answer at once; PKIOperation verifies and
//! opens the message on the blocking pool, awaits an issuance's commit on the event loop, and
//! signs the CertRep on the blocking pool again.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use base64::Engine;
use serde::Deserialize;

use crate::blocking::blocking;
use crate::error::ServiceError;
use crate::ra::Authority;
use crate::scep::{ScepService, Step, CAPABILITIES};

/// The query every SCEP request carries.
#[derive(Debug, Deserialize)]
pub struct ScepQuery {
    operation: String,
    #[serde(default)]
    message: Option<String>,
}

/// `GET /scep/{profile}`: GetCACaps, GetCACert, or PKIOperation with a base64 message.
pub async fn get(
    scep: web::Data<Arc<ScepService>>,
    authority: web::Data<Arc<Authority>>,
    profile: web::Path<String>,
    query: web::Query<ScepQuery>,
) -> Result<HttpResponse, ServiceError> {
    let profile = profile.into_inner();
    match query.operation.as_str() {
        "GetCACaps" => {
            authority.enrollment_profile(&profile, "scep")?;
            Ok(HttpResponse::Ok()
                .content_type("text/plain")
                .body(CAPABILITIES))
        }
        "GetCACert" => {
            let service = scep.get_ref().clone();
            let body = blocking(move || service.ca_certificates(&profile)).await?;
            Ok(HttpResponse::Ok()
                .content_type("application/x-x509-ca-ra-cert")
                .body(body))
        }
        "PKIOperation" => {
            // Some clients leave '+' unescaped in the query, which form decoding turns into ' '.
            let text = query
                .message
                .as_deref()
                .unwrap_or_default()
                .replace(' ', "+");
            let body = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| ServiceError::Invalid("message is not base64".into()))?;
            pki_operation(
                scep.get_ref().clone(),
                authority.get_ref().clone(),
                profile,
                body,
            )
            .await
        }
        other => Err(ServiceError::Invalid(format!(
            "unknown SCEP operation {other:?} (GetCACaps, GetCACert, PKIOperation)"
        ))),
    }
}

/// `POST /scep/{profile}?operation=PKIOperation` with the DER message as the body.
pub async fn post(
    scep: web::Data<Arc<ScepService>>,
    authority: web::Data<Arc<Authority>>,
    profile: web::Path<String>,
    query: web::Query<ScepQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ServiceError> {
    if query.operation != "PKIOperation" {
        return Err(ServiceError::Invalid(
            "POST takes operation=PKIOperation".into(),
        ));
    }
    pki_operation(
        scep.get_ref().clone(),
        authority.get_ref().clone(),
        profile.into_inner(),
        body.to_vec(),
    )
    .await
}

async fn pki_operation(
    scep: Arc<ScepService>,
    authority: Arc<Authority>,
    profile: String,
    body: Vec<u8>,
) -> Result<HttpResponse, ServiceError> {
    let service = scep.clone();
    let id = profile.clone();
    let step = blocking(move || service.handle(&id, &body)).await?;
    let (request, reply) = match step {
        Step::Reply(request, reply) => (request, reply),
        Step::Submitted(request, submitted) => {
            let result = submitted.finish(authority).await;
            let service = scep.clone();
            let (request, reply) = blocking(move || {
                let reply = service.after_submission(&request, result)?;
                Ok((request, reply))
            })
            .await?;
            (request, reply)
        }
    };
    let body = blocking(move || scep.reply(&profile, &request, reply)).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/x-pki-message"))
        .body(body))
}
