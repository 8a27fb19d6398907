//! ACME over HTTP on the enrollment listener (`/acme/<profile>/...`), and the officers' EAB
//! key routes on the API listener. Every JWS request is authenticated by the ACME service
//! before anything acts on it; every answer carries a fresh nonce and the directory's link.

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use crate::acme::{AcmeError, AcmeService, Authenticated, Base};
use crate::api::*;
use crate::error::ServiceError;
use crate::http::caller::SignedIn;

/// What a handler answers, before nonce and links are added.
struct Reply {
    status: StatusCode,
    location: Option<String>,
    up: Option<String>,
    retry_after: Option<u64>,
    body: Body,
}

enum Body {
    Json(Value),
    Pem(String),
    Empty,
}

impl Reply {
    fn json(body: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            location: None,
            up: None,
            retry_after: None,
            body: Body::Json(body),
        }
    }
}

fn base(request: &HttpRequest, profile: &str) -> Base {
    let host = request.connection_info().host().to_string();
    Base {
        root: format!("https://{host}/acme/{profile}"),
        profile: profile.to_string(),
    }
}

fn request_url(request: &HttpRequest) -> String {
    let host = request.connection_info().host().to_string();
    format!("https://{host}{}", request.path())
}

fn respond(base: &Base, nonce: Option<String>, outcome: Result<Reply, AcmeError>) -> HttpResponse {
    let problem = outcome.is_err();
    let (mut builder, body) = match outcome {
        Ok(reply) => {
            let mut builder = HttpResponse::build(reply.status);
            if let Some(location) = &reply.location {
                builder.insert_header((header::LOCATION, location.as_str()));
            }
            if let Some(up) = &reply.up {
                builder.append_header((header::LINK, format!("<{up}>;rel=\"up\"")));
            }
            if let Some(secs) = reply.retry_after {
                builder.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            (builder, reply.body)
        }
        Err(problem) => {
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
            let mut builder = HttpResponse::build(status);
            builder.insert_header((header::CONTENT_TYPE, "application/problem+json"));
            (builder, Body::Json(problem.body()))
        }
    };
    builder.append_header((
        header::LINK,
        format!("<{}>;rel=\"index\"", base.url("directory")),
    ));
    builder.insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(nonce) = nonce {
        builder.insert_header(("Replay-Nonce", nonce));
    }
    match body {
        Body::Json(value) => {
            if !problem {
                builder.insert_header((header::CONTENT_TYPE, "application/json"));
            }
            builder.body(value.to_string())
        }
        Body::Pem(text) => builder
            .insert_header((header::CONTENT_TYPE, "application/pem-certificate-chain"))
            .body(text),
        Body::Empty => builder.finish(),
    }
}

/// Runs `work` on a blocking thread after authenticating the JWS, and answers with a fresh
/// nonce (also on errors, so that a client can retry a badNonce).
async fn signed<F>(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    body: web::Bytes,
    profile: String,
    jwk_allowed: bool,
    work: F,
) -> HttpResponse
where
    F: FnOnce(&Arc<AcmeService>, &Base, Authenticated) -> Result<Reply, AcmeError> + Send + 'static,
{
    let base = base(&request, &profile);
    let url = request_url(&request);
    if let Some(refusal) = refuse_non_jose(&service, &request, &base).await {
        return refusal;
    }
    let service = service.get_ref().clone();
    let b = base.clone();
    let outcome = web::block(move || {
        let outcome = service
            .authenticate(&b, &url, &body, jwk_allowed)
            .and_then(|auth| work(&service, &b, auth));
        (outcome, service.new_nonce().ok())
    })
    .await;
    match outcome {
        Ok((outcome, nonce)) => respond(&base, nonce, outcome),
        Err(_) => respond(
            &base,
            None,
            Err(AcmeError::new("serverInternal", 500, "internal error")),
        ),
    }
}

/// The 415 answer (with a fresh nonce) to a signed request that is not
/// `application/jose+json` (RFC 8555 §6.2); `None` when it is.
async fn refuse_non_jose(
    service: &web::Data<Arc<AcmeService>>,
    request: &HttpRequest,
    base: &Base,
) -> Option<HttpResponse> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type == Some("application/jose+json") {
        return None;
    }
    let nonce = fresh_nonce(service).await;
    Some(respond(
        base,
        nonce,
        Err(AcmeError::new(
            "malformed",
            415,
            "ACME requests are application/jose+json",
        )),
    ))
}

async fn fresh_nonce(service: &web::Data<Arc<AcmeService>>) -> Option<String> {
    let service = service.get_ref().clone();
    web::block(move || service.new_nonce().ok())
        .await
        .ok()
        .flatten()
}

/// `GET /acme/{profile}/directory`.
pub async fn directory(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    profile: web::Path<String>,
) -> HttpResponse {
    let base = base(&request, &profile);
    let outcome = service.directory(&base).map(Reply::json);
    respond(&base, None, outcome)
}

/// `HEAD|GET /acme/{profile}/new-nonce`.
pub async fn new_nonce(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    profile: web::Path<String>,
) -> HttpResponse {
    let base = base(&request, &profile);
    if let Err(e) = service.profile(&profile) {
        return respond(&base, None, Err(e));
    }
    let nonce = fresh_nonce(&service).await;
    let status = if request.method() == actix_web::http::Method::HEAD {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    };
    respond(
        &base,
        nonce,
        Ok(Reply {
            status,
            location: None,
            up: None,
            retry_after: None,
            body: Body::Empty,
        }),
    )
}

/// `POST /acme/{profile}/new-account`.
pub async fn new_account(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    profile: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    signed(
        service,
        request,
        body,
        profile.into_inner(),
        true,
        |s, base, auth| {
            let answer = s.new_account(base, auth)?;
            Ok(Reply {
                status: if answer.created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                location: Some(answer.location),
                up: None,
                retry_after: None,
                body: Body::Json(answer.body),
            })
        },
    )
    .await
}

/// `POST /acme/{profile}/account/{id}`.
pub async fn account(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (profile, id) = path.into_inner();
    signed(
        service,
        request,
        body,
        profile,
        false,
        move |s, base, auth| {
            let answer = s.update_account(base, &id, auth)?;
            Ok(Reply {
                location: Some(answer.location),
                ..Reply::json(answer.body)
            })
        },
    )
    .await
}

/// `POST /acme/{profile}/account/{id}/orders`.
pub async fn account_orders(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (profile, id) = path.into_inner();
    signed(
        service,
        request,
        body,
        profile,
        false,
        move |s, base, auth| Ok(Reply::json(s.account_orders(base, &id, auth)?)),
    )
    .await
}

/// `POST /acme/{profile}/key-change`.
pub async fn key_change(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    profile: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    signed(
        service,
        request,
        body,
        profile.into_inner(),
        false,
        |s, base, auth| Ok(Reply::json(s.key_change(base, auth)?)),
    )
    .await
}

/// `POST /acme/{profile}/new-order`.
pub async fn new_order(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    profile: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    signed(
        service,
        request,
        body,
        profile.into_inner(),
        false,
        |s, base, auth| {
            let (location, view) = s.new_order(base, auth)?;
            Ok(Reply {
                status: StatusCode::CREATED,
                location: Some(location),
                ..Reply::json(view)
            })
        },
    )
    .await
}

/// `POST /acme/{profile}/order/{id}`.
pub async fn order(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (profile, id) = path.into_inner();
    signed(
        service,
        request,
        body,
        profile,
        false,
        move |s, base, auth| {
            let view = s.order(base, &id, auth)?;
            let processing = view["status"] == "processing";
            Ok(Reply {
                location: Some(base.url(&format!("order/{id}"))),
                retry_after: processing.then_some(1),
                ..Reply::json(view)
            })
        },
    )
    .await
}

/// `POST /acme/{profile}/authz/{id}`.
pub async fn authorization(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (profile, id) = path.into_inner();
    signed(
        service,
        request,
        body,
        profile,
        false,
        move |s, base, auth| {
            let view = s.authorization(base, &id, auth)?;
            let pending = view["status"] == "pending";
            Ok(Reply {
                retry_after: pending.then_some(1),
                ..Reply::json(view)
            })
        },
    )
    .await
}

/// `POST /acme/{profile}/chall/{authz}/{type}`.
pub async fn challenge(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (profile, authz, kind) = path.into_inner();
    signed(
        service,
        request,
        body,
        profile,
        false,
        move |s, base, auth| {
            let (view, up) = s.challenge(base, &authz, &kind, auth)?;
            let processing = view["status"] == "processing";
            Ok(Reply {
                up: Some(up),
                retry_after: processing.then_some(1),
                ..Reply::json(view)
            })
        },
    )
    .await
}

/// `POST /acme/{profile}/order/{id}/finalize`: checks on a blocking thread, then waits for
/// the issuance's commit, then answers the order.
pub async fn finalize(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (profile, id) = path.into_inner();
    let base = base(&request, &profile);
    let url = request_url(&request);
    if let Some(refusal) = refuse_non_jose(&service, &request, &base).await {
        return refusal;
    }
    let svc = service.get_ref().clone();
    let (b, order_id) = (base.clone(), id.clone());
    let started = web::block(move || {
        svc.authenticate(&b, &url, &body, false).and_then(|auth| {
            let account = auth.account()?.clone();
            svc.finalize(&b, &order_id, auth).map(|f| (f, account))
        })
    })
    .await;
    let nonce = fresh_nonce(&service).await;
    let (finalizing, account) = match started {
        Ok(Ok(pair)) => pair,
        Ok(Err(problem)) => return respond(&base, nonce, Err(problem)),
        Err(_) => {
            return respond(
                &base,
                nonce,
                Err(AcmeError::new("serverInternal", 500, "internal error")),
            )
        }
    };
    let authority = service.authority.clone();
    let order_id = finalizing.order_id.clone();
    if let Err(e) = finalizing.submitted.finish(authority).await {
        let svc = service.get_ref().clone();
        let failed = order_id.clone();
        let _ = web::block(move || svc.unfinalize(&failed)).await;
        return respond(&base, nonce, Err(e.into()));
    }
    let svc = service.get_ref().clone();
    let b = base.clone();
    let view = web::block(move || svc.order_of_account(&b, &order_id, &account)).await;
    match view {
        Ok(Ok(view)) => respond(
            &base,
            nonce,
            Ok(Reply {
                location: Some(base.url(&format!("order/{id}"))),
                ..Reply::json(view)
            }),
        ),
        Ok(Err(problem)) => respond(&base, nonce, Err(problem)),
        Err(_) => respond(
            &base,
            nonce,
            Err(AcmeError::new("serverInternal", 500, "internal error")),
        ),
    }
}

/// `POST /acme/{profile}/cert/{order}`.
pub async fn certificate(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (profile, id) = path.into_inner();
    signed(
        service,
        request,
        body,
        profile,
        false,
        move |s, _base, auth| {
            Ok(Reply {
                status: StatusCode::OK,
                location: None,
                up: None,
                retry_after: None,
                body: Body::Pem(s.certificate(&id, auth)?),
            })
        },
    )
    .await
}

/// `POST /acme/{profile}/revoke-cert`.
pub async fn revoke_cert(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    profile: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    signed(
        service,
        request,
        body,
        profile.into_inner(),
        true,
        |s, _base, auth| {
            s.revoke(auth)?;
            Ok(Reply {
                status: StatusCode::OK,
                location: None,
                up: None,
                retry_after: None,
                body: Body::Empty,
            })
        },
    )
    .await
}

/// `GET /acme/{profile}/renewal-info/{id}` (RFC 9773): unauthenticated.
pub async fn renewal_info(
    service: web::Data<Arc<AcmeService>>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (profile, id) = path.into_inner();
    let base = base(&request, &profile);
    let svc = service.get_ref().clone();
    let outcome = web::block(move || {
        let profile = svc.profile(&profile)?;
        svc.renewal_info(profile, &id)
    })
    .await
    .unwrap_or_else(|_| Err(AcmeError::new("serverInternal", 500, "internal error")));
    respond(
        &base,
        None,
        outcome.map(|view| Reply {
            retry_after: Some(crate::acme::renewal_info::RETRY_AFTER_SECS),
            ..Reply::json(view)
        }),
    )
}

/// `POST /api/v1/acme/eab`.
pub async fn create_eab(
    service: web::Data<Arc<AcmeService>>,
    who: SignedIn,
    body: web::Json<EabRequest>,
) -> Result<HttpResponse, ServiceError> {
    let caller = who.0.caller;
    let svc = service.get_ref().clone();
    let view =
        crate::blocking::blocking(move || svc.create_eab(&caller, body.into_inner())).await?;
    Ok(HttpResponse::Created().json(view))
}

/// Query of `GET /api/v1/acme/eab`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EabQuery {
    /// Only this profile's keys.
    pub profile: Option<String>,
}

/// `GET /api/v1/acme/eab`.
pub async fn list_eabs(
    service: web::Data<Arc<AcmeService>>,
    who: SignedIn,
    request: HttpRequest,
    query: web::Query<EabQuery>,
) -> Result<HttpResponse, ServiceError> {
    let caller = who.0.caller;
    let svc = service.get_ref().clone();
    let page =
        crate::blocking::blocking(move || svc.list_eabs(&caller, query.profile.as_deref())).await?;
    Ok(crate::http::api::paged(&request, page))
}

/// `POST /api/v1/acme/eab/{id}/revoke`.
pub async fn revoke_eab(
    service: web::Data<Arc<AcmeService>>,
    who: SignedIn,
    id: web::Path<String>,
    body: web::Json<EabRevokeRequest>,
) -> Result<HttpResponse, ServiceError> {
    let caller = who.0.caller;
    let svc = service.get_ref().clone();
    let view = crate::blocking::blocking(move || svc.revoke_eab(&caller, &id, &body.totp)).await?;
    Ok(HttpResponse::Ok().json(view))
}
