//! Thin API handlers: extract, authenticate, call the authority on the blocking pool, map to JSON.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use ca_core::approval::Verdict;
use ca_core::crl::RevocationReason;
use ca_core::time::UnixTime;
use serde::Deserialize;

use crate::accounts::changes::ChangeKind;
use crate::accounts::Caller;
use crate::api::*;
use crate::error::ServiceError;
use crate::ra::{Authority, StatusChange, Submitted};

type State = web::Data<Arc<Authority>>;

fn bearer(request: &HttpRequest) -> Result<String, ServiceError> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ServiceError::Unauthenticated)?;
    let token = value
        .strip_prefix("Bearer ")
        .ok_or(ServiceError::Unauthenticated)?
        .trim();
    Ok(token.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    web::block(f)
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
}

/// Runs `f` as the caller the bearer token names. A caller who must still change the password
/// an admin set gets nothing but [`as_caller_any`]'s routes (who am I, log out, change it).
async fn as_caller<T: Send + 'static>(
    state: &State,
    request: &HttpRequest,
    f: impl FnOnce(&Authority, &Caller) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    as_caller_any(state, request, move |authority, caller| {
        if caller.must_change_password {
            return Err(ServiceError::PasswordChangeRequired);
        }
        f(authority, caller)
    })
    .await
}

/// As [`as_caller`], also for a caller who must change their password first.
async fn as_caller_any<T: Send + 'static>(
    state: &State,
    request: &HttpRequest,
    f: impl FnOnce(&Authority, &Caller) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let token = bearer(request)?;
    let authority = state.get_ref().clone();
    blocking(move || {
        let caller = authority.accounts.authenticate(&token)?;
        f(&authority, &caller)
    })
    .await
}

/// `POST /api/v1/passwd`: changes the caller's own password (the current one is asked again).
pub async fn change_password(
    state: State,
    request: HttpRequest,
    body: web::Json<PasswordChangeRequest>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(
        as_caller_any(&state, &request, move |a, c| {
            a.accounts.change_password(c, &body)
        })
        .await?,
    ))
}

/// `POST /api/v1/login`.
pub async fn login(
    state: State,
    request: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ServiceError> {
    if let Some(peer) = request.peer_addr() {
        state
            .accounts
            .login_limiter
            .attempt(peer.ip(), ca_core::time::UnixTime::now().as_secs())
            .map_err(ServiceError::TooManyAttempts)?;
    }
    let authority = state.get_ref().clone();
    let response = blocking(move || authority.accounts.login(&body)).await?;
    Ok(HttpResponse::Ok().json(response))
}

/// `POST /api/v1/logout`.
pub async fn logout(state: State, request: HttpRequest) -> Result<HttpResponse, ServiceError> {
    let token = bearer(&request)?;
    as_caller_any(&state, &request, move |a, c| a.accounts.logout(c, &token)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/v1/me`.
pub async fn me(state: State, request: HttpRequest) -> Result<HttpResponse, ServiceError> {
    let caller = as_caller_any(&state, &request, |_, c| Ok(c.clone())).await?;
    Ok(HttpResponse::Ok().json(UserView {
        username: caller.username,
        roles: caller.roles.iter().map(|r| r.to_string()).collect(),
        disabled: false,
        step_up_locked: false,
        locked_until: None,
        organization: None,
        email_domain: None,
        enrolment_pending: false,
    }))
}

/// `GET /api/v1/users`.
pub async fn list_users(state: State, request: HttpRequest) -> Result<HttpResponse, ServiceError> {
    Ok(
        HttpResponse::Ok()
            .json(as_caller(&state, &request, |a, c| a.accounts.list_users(c)).await?),
    )
}

/// `POST /api/v1/users`: asks for a new account (202: waiting for approval).
pub async fn create_user(
    state: State,
    request: HttpRequest,
    body: web::Json<CreateUserRequest>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    Ok(HttpResponse::Accepted().json(
        as_caller(&state, &request, move |a, c| {
            a.accounts.request_create_user(c, body)
        })
        .await?,
    ))
}

/// `PUT /api/v1/users/{username}/roles`: asks for a role change (202).
pub async fn set_roles(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<SetRolesRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (name, body) = (path.into_inner(), body.into_inner());
    Ok(HttpResponse::Accepted().json(
        as_caller(&state, &request, move |a, c| {
            a.accounts.request_set_roles(c, &name, body)
        })
        .await?,
    ))
}

/// `POST /api/v1/users/{username}/disable` (immediate, with step-up).
pub async fn disable_user(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (name, body) = (path.into_inner(), body.into_inner());
    Ok(HttpResponse::Ok().json(
        as_caller(&state, &request, move |a, c| {
            a.accounts.disable_user(c, &name, &body)
        })
        .await?,
    ))
}

/// `POST /api/v1/users/{username}/unlock`: lifts a step-up lock and a login lockout.
pub async fn unlock_user(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    let name = path.into_inner();
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(
        as_caller(&state, &request, move |a, c| {
            a.accounts.unlock_user(c, &name, &body)
        })
        .await?,
    ))
}

/// `POST /api/v1/users/{username}/reset`: asks for a new password and TOTP by enrolment (202).
pub async fn reset_user(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (name, body) = (path.into_inner(), body.into_inner());
    Ok(HttpResponse::Accepted().json(
        as_caller(&state, &request, move |a, c| {
            a.accounts
                .request_reset_or_enable(c, &name, ChangeKind::Reset, &body)
        })
        .await?,
    ))
}

/// `POST /api/v1/users/{username}/enable`: asks for a disabled account back (202).
pub async fn enable_user(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (name, body) = (path.into_inner(), body.into_inner());
    Ok(HttpResponse::Accepted().json(
        as_caller(&state, &request, move |a, c| {
            a.accounts
                .request_reset_or_enable(c, &name, ChangeKind::Enable, &body)
        })
        .await?,
    ))
}

/// `GET /api/v1/account-changes`.
pub async fn list_account_changes(
    state: State,
    request: HttpRequest,
    query: web::Query<AccountChangeQuery>,
) -> Result<HttpResponse, ServiceError> {
    let query = query.into_inner();
    Ok(HttpResponse::Ok().json(
        as_caller(&state, &request, move |a, c| {
            a.accounts.list_account_changes(c, &query)
        })
        .await?,
    ))
}

/// `GET /api/v1/account-changes/{id}`.
pub async fn get_account_change(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = path.into_inner();
    Ok(HttpResponse::Ok().json(
        as_caller(&state, &request, move |a, c| {
            a.accounts.get_account_change(c, &id)
        })
        .await?,
    ))
}

/// `POST /api/v1/account-changes/{id}/approve`.
pub async fn approve_account_change(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    decide_account_change(
        state,
        request,
        path.into_inner(),
        body.into_inner(),
        Verdict::Approve,
    )
    .await
}

/// `POST /api/v1/account-changes/{id}/reject`.
pub async fn reject_account_change(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    decide_account_change(
        state,
        request,
        path.into_inner(),
        body.into_inner(),
        Verdict::Reject,
    )
    .await
}

async fn decide_account_change(
    state: State,
    request: HttpRequest,
    id: String,
    body: StepUpRequest,
    verdict: Verdict,
) -> Result<HttpResponse, ServiceError> {
    Ok(HttpResponse::Ok().json(
        as_caller(&state, &request, move |a, c| {
            a.accounts.decide_account_change(c, &id, verdict, &body)
        })
        .await?,
    ))
}

/// `POST /api/v1/enrol` (no session; limited per client address like login).
pub async fn enrol(
    state: State,
    request: HttpRequest,
    body: web::Json<EnrolRequest>,
) -> Result<HttpResponse, ServiceError> {
    if let Some(peer) = request.peer_addr() {
        state
            .accounts
            .login_limiter
            .attempt(peer.ip(), ca_core::time::UnixTime::now().as_secs())
            .map_err(ServiceError::TooManyAttempts)?;
    }
    let authority = state.get_ref().clone();
    Ok(HttpResponse::Ok().json(blocking(move || authority.accounts.enrol(&body)).await?))
}

/// `GET /api/v1/profiles`.
pub async fn profiles(state: State, request: HttpRequest) -> Result<HttpResponse, ServiceError> {
    Ok(HttpResponse::Ok().json(as_caller(&state, &request, |a, _| Ok(a.profiles())).await?))
}

/// `POST /api/v1/requests`.
pub async fn submit(
    state: State,
    request: HttpRequest,
    body: web::Json<SubmitRequest>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    let view = match as_caller(&state, &request, move |a, c| a.submit(c, body)).await? {
        Submitted::Stored(view) => *view,
        // The commit is awaited here, not on a blocking thread. A task of its own finishes the
        // issuance (caches the OCSP response, counts it) even if the client goes away first.
        Submitted::Issuing(issuing) => {
            let authority = state.get_ref().clone();
            actix_web::rt::spawn(async move { issuing.done(&authority).await })
                .await
                .map_err(|e| ServiceError::Internal(format!("issuance task: {e}")))??
        }
    };
    Ok(HttpResponse::Created().json(view))
}

/// Query filters for request lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFilter {
    /// pending, approved, issued, rejected, expired, failed.
    pub status: Option<String>,
    /// Profile id.
    pub profile: Option<String>,
}

/// `GET /api/v1/requests`.
pub async fn list_requests(
    state: State,
    request: HttpRequest,
    query: web::Query<RequestFilter>,
) -> Result<HttpResponse, ServiceError> {
    let q = query.into_inner();
    Ok(HttpResponse::Ok().json(
        as_caller(&state, &request, move |a, c| {
            a.list_requests(c, q.status.as_deref(), q.profile.as_deref())
        })
        .await?,
    ))
}

/// `GET /api/v1/requests/{id}`.
pub async fn get_request(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = path.into_inner();
    Ok(HttpResponse::Ok()
        .json(as_caller(&state, &request, move |a, c| a.get_request(c, &id)).await?))
}

/// `POST /api/v1/requests/{id}/approve`.
pub async fn approve(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<DecisionRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (id, body) = (path.into_inner(), body.into_inner());
    Ok(HttpResponse::Ok().json(
        as_caller(&state, &request, move |a, c| {
            a.decide(c, &id, Verdict::Approve, &body)
        })
        .await?,
    ))
}

/// `POST /api/v1/requests/{id}/reject`.
pub async fn reject(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<DecisionRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (id, body) = (path.into_inner(), body.into_inner());
    Ok(HttpResponse::Ok().json(
        as_caller(&state, &request, move |a, c| {
            a.decide(c, &id, Verdict::Reject, &body)
        })
        .await?,
    ))
}

/// `GET /api/v1/requests/{id}/certificate`: PEM with chain.
pub async fn request_certificate(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = path.into_inner();
    let pem = as_caller(&state, &request, move |a, c| a.request_certificate(c, &id)).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/pem-certificate-chain")
        .body(pem))
}

/// Query filters for certificate lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFilter {
    /// Profile id.
    pub profile: Option<String>,
    /// valid, revoked, hold.
    pub status: Option<String>,
    /// Only those expiring within this many days.
    pub expiring_within_days: Option<u64>,
}

/// `GET /api/v1/certificates`.
pub async fn list_certificates(
    state: State,
    request: HttpRequest,
    query: web::Query<CertificateFilter>,
) -> Result<HttpResponse, ServiceError> {
    let q = query.into_inner();
    Ok(HttpResponse::Ok().json(
        as_caller(&state, &request, move |a, c| {
            a.list_certificates(
                c,
                q.profile.as_deref(),
                q.status.as_deref(),
                q.expiring_within_days,
            )
        })
        .await?,
    ))
}

/// Format choice for certificate downloads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    /// `json` (default), `pem` or `der`.
    pub format: Option<String>,
}

/// `GET /api/v1/certificates/{ca}/{serial}?format=json|pem|der`.
pub async fn get_certificate(
    state: State,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<FormatQuery>,
) -> Result<HttpResponse, ServiceError> {
    let (ca, serial) = path.into_inner();
    let (view, der) = as_caller(&state, &request, move |a, c| {
        a.get_certificate(c, &ca, &serial)
    })
    .await?;
    match query.format.as_deref().unwrap_or("json") {
        "json" => Ok(HttpResponse::Ok().json(view)),
        "pem" => Ok(HttpResponse::Ok()
            .content_type("application/x-pem-file")
            .body(ca_core::ca::pem(&der))),
        "der" => Ok(HttpResponse::Ok()
            .content_type("application/pkix-cert")
            .body(der)),
        other => Err(ServiceError::Invalid(format!(
            "format {other:?} is not json, pem or der"
        ))),
    }
}

/// `POST /api/v1/certificates/{ca}/{serial}/revoke`.
pub async fn revoke(
    state: State,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<RevokeRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (ca, serial) = path.into_inner();
    let body = body.into_inner();
    let reason = RevocationReason::parse(&body.reason).ok_or_else(|| {
        ServiceError::Invalid(format!("unknown revocation reason {:?}", body.reason))
    })?;
    let invalidity_date = match &body.invalidity_date {
        None => None,
        Some(text) => Some(UnixTime(parse_rfc3339(text).ok_or_else(|| {
            ServiceError::Invalid("invalidity_date is not RFC 3339".into())
        })?)),
    };
    let change = StatusChange::Revoke {
        reason,
        invalidity_date,
    };
    Ok(HttpResponse::Ok().json(
        as_caller(&state, &request, move |a, c| {
            a.change_status(c, &ca, &serial, change, &body.totp, &body.comment)
        })
        .await?,
    ))
}

/// `POST /api/v1/certificates/{ca}/{serial}/hold`.
pub async fn hold(
    state: State,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (ca, serial) = path.into_inner();
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(
        as_caller(&state, &request, move |a, c| {
            a.change_status(
                c,
                &ca,
                &serial,
                StatusChange::Hold,
                &body.totp,
                &body.comment,
            )
        })
        .await?,
    ))
}

/// `POST /api/v1/certificates/{ca}/{serial}/release`.
pub async fn release(
    state: State,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (ca, serial) = path.into_inner();
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(
        as_caller(&state, &request, move |a, c| {
            a.change_status(
                c,
                &ca,
                &serial,
                StatusChange::Release,
                &body.totp,
                &body.comment,
            )
        })
        .await?,
    ))
}

/// Audit list filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// Entries after this sequence number.
    pub after: Option<u64>,
    /// At most this many (1-1000, default 100).
    pub limit: Option<u32>,
    /// Only this action.
    pub action: Option<String>,
}

/// `GET /api/v1/audit`.
pub async fn audit(
    state: State,
    request: HttpRequest,
    query: web::Query<AuditFilter>,
) -> Result<HttpResponse, ServiceError> {
    let q = query.into_inner();
    Ok(HttpResponse::Ok().json(
        as_caller(&state, &request, move |a, c| {
            a.audit(
                c,
                q.after.unwrap_or(0),
                q.limit.unwrap_or(100),
                q.action.as_deref(),
            )
        })
        .await?,
    ))
}

/// `POST /api/v1/audit/checkpoints`: signs a checkpoint of the chain's head now.
pub async fn audit_checkpoint(
    state: State,
    request: HttpRequest,
) -> Result<HttpResponse, ServiceError> {
    let checkpoint = as_caller(&state, &request, |a, c| {
        c.require(&[
            ca_core::role::Role::Auditor,
            ca_core::role::Role::Admin,
            ca_core::role::Role::SecurityOfficer,
        ])?;
        a.checkpoint_audit(true)
    })
    .await?;
    Ok(HttpResponse::Ok().json(checkpoint))
}

/// `GET /api/v1/audit/verify`.
pub async fn audit_verify(
    state: State,
    request: HttpRequest,
) -> Result<HttpResponse, ServiceError> {
    Ok(HttpResponse::Ok().json(as_caller(&state, &request, |a, c| a.audit_verify(c)).await?))
}
