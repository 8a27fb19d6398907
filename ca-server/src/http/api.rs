//! Thin API handlers: extract (the caller through [`SignedIn`]), call the RA or the accounts
//! service on the blocking pool, map to JSON.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use ca_core::approval::Verdict;
use ca_core::crl::RevocationReason;
use ca_core::time::UnixTime;
use serde::Deserialize;

use super::caller::{bearer, blocking, SignedIn, SignedInAny, State};
use crate::accounts::changes::ChangeKind;
use crate::api::*;
use crate::error::ServiceError;
use crate::ra::StatusChange;
use crate::store::ids::{RequestId, Serial};

/// `POST /api/v1/passwd`: changes the caller's own password (the current one is asked again).
pub async fn change_password(
    who: SignedInAny,
    body: web::Json<PasswordChangeRequest>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(
        who.run(move |a, c| a.accounts.change_password(c, &body))
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
        state.accounts.count_attempt(peer.ip())?;
    }
    let authority = state.get_ref().clone();
    let response = blocking(move || authority.accounts.login(&body)).await?;
    Ok(HttpResponse::Ok().json(response))
}

/// `POST /api/v1/logout`.
pub async fn logout(who: SignedInAny, request: HttpRequest) -> Result<HttpResponse, ServiceError> {
    let token = bearer(&request)?;
    who.run(move |a, c| a.accounts.logout(c, &token)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/v1/me`.
pub async fn me(who: SignedInAny) -> Result<HttpResponse, ServiceError> {
    let caller = who.caller;
    Ok(HttpResponse::Ok().json(UserView {
        username: caller.username,
        roles: caller.roles.iter().map(|r| r.to_string()).collect(),
        disabled: false,
        step_up_locked: false,
        locked_until: None,
        organization: None,
        email_domain: None,
        enrolment_pending: false,
        directory: false,
    }))
}

/// `GET /api/v1/users`.
pub async fn list_users(who: SignedIn) -> Result<HttpResponse, ServiceError> {
    Ok(HttpResponse::Ok().json(who.run(|a, c| a.accounts.list_users(c)).await?))
}

/// `POST /api/v1/users`: asks for a new account (202: waiting for approval).
pub async fn create_user(
    who: SignedIn,
    body: web::Json<CreateUserRequest>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    Ok(HttpResponse::Accepted().json(
        who.run(move |a, c| a.accounts.request_create_user(c, body))
            .await?,
    ))
}

/// `PUT /api/v1/users/{username}/roles`: asks for a role change (202).
pub async fn set_roles(
    who: SignedIn,
    path: web::Path<String>,
    body: web::Json<SetRolesRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (name, body) = (path.into_inner(), body.into_inner());
    Ok(HttpResponse::Accepted().json(
        who.run(move |a, c| a.accounts.request_set_roles(c, &name, body))
            .await?,
    ))
}

/// `POST /api/v1/users/{username}/disable` (immediate, with step-up).
pub async fn disable_user(
    who: SignedIn,
    path: web::Path<String>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (name, body) = (path.into_inner(), body.into_inner());
    Ok(HttpResponse::Ok().json(
        who.run(move |a, c| a.accounts.disable_user(c, &name, &body))
            .await?,
    ))
}

/// `POST /api/v1/users/{username}/unlock`: lifts a step-up lock and a login lockout.
pub async fn unlock_user(
    who: SignedIn,
    path: web::Path<String>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    let name = path.into_inner();
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(
        who.run(move |a, c| a.accounts.unlock_user(c, &name, &body))
            .await?,
    ))
}

/// `POST /api/v1/users/{username}/reset`: asks for a new password and TOTP by enrolment (202).
pub async fn reset_user(
    who: SignedIn,
    path: web::Path<String>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (name, body) = (path.into_inner(), body.into_inner());
    Ok(HttpResponse::Accepted().json(
        who.run(move |a, c| {
            a.accounts
                .request_reset_or_enable(c, &name, ChangeKind::Reset, &body)
        })
        .await?,
    ))
}

/// `POST /api/v1/users/{username}/enable`: asks for a disabled account back (202).
pub async fn enable_user(
    who: SignedIn,
    path: web::Path<String>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (name, body) = (path.into_inner(), body.into_inner());
    Ok(HttpResponse::Accepted().json(
        who.run(move |a, c| {
            a.accounts
                .request_reset_or_enable(c, &name, ChangeKind::Enable, &body)
        })
        .await?,
    ))
}

/// `GET /api/v1/account-changes`.
pub async fn list_account_changes(
    who: SignedIn,
    query: web::Query<AccountChangeQuery>,
) -> Result<HttpResponse, ServiceError> {
    let query = query.into_inner();
    Ok(HttpResponse::Ok().json(
        who.run(move |a, c| a.accounts.list_account_changes(c, &query))
            .await?,
    ))
}

/// `GET /api/v1/account-changes/{id}`.
pub async fn get_account_change(
    who: SignedIn,
    path: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = path.into_inner();
    Ok(HttpResponse::Ok().json(
        who.run(move |a, c| a.accounts.get_account_change(c, &id))
            .await?,
    ))
}

/// `POST /api/v1/account-changes/{id}/approve`.
pub async fn approve_account_change(
    who: SignedIn,
    path: web::Path<String>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    decide_account_change(who, path.into_inner(), body.into_inner(), Verdict::Approve).await
}

/// `POST /api/v1/account-changes/{id}/reject`.
pub async fn reject_account_change(
    who: SignedIn,
    path: web::Path<String>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    decide_account_change(who, path.into_inner(), body.into_inner(), Verdict::Reject).await
}

async fn decide_account_change(
    who: SignedIn,
    id: String,
    body: StepUpRequest,
    verdict: Verdict,
) -> Result<HttpResponse, ServiceError> {
    Ok(HttpResponse::Ok().json(
        who.run(move |a, c| a.accounts.decide_account_change(c, &id, verdict, &body))
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
        state.accounts.count_attempt(peer.ip())?;
    }
    let authority = state.get_ref().clone();
    Ok(HttpResponse::Ok().json(blocking(move || authority.accounts.enrol(&body)).await?))
}

/// `GET /api/v1/profiles`.
pub async fn profiles(who: SignedIn) -> Result<HttpResponse, ServiceError> {
    Ok(HttpResponse::Ok().json(who.run(|a, _| Ok(a.profiles())).await?))
}

/// `POST /api/v1/requests`.
pub async fn submit(
    who: SignedIn,
    body: web::Json<SubmitRequest>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    let authority = who.0.authority.clone();
    let view = who
        .run(move |a, c| a.submit(c, body))
        .await?
        .finish(authority)
        .await?;
    Ok(HttpResponse::Created().json(view))
}

/// A page of a list as the API answers it: the items as a JSON array, `X-Total-Count`, and a
/// `Link: <...>; rel="next"` (RFC 8288) to the next page, which repeats this request's query
/// with the next page's `cursor`.
pub(crate) fn paged<T: serde::Serialize>(
    request: &HttpRequest,
    page: crate::ra::Page<T>,
) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.insert_header(("X-Total-Count", page.total.to_string()));
    if let Some(cursor) = &page.next {
        let mut query: Vec<String> = request
            .query_string()
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("cursor="))
            .map(str::to_string)
            .collect();
        query.push(format!("cursor={}", url_escape(cursor)));
        response.insert_header((
            header::LINK,
            format!("<{}?{}>; rel=\"next\"", request.path(), query.join("&")),
        ));
    }
    response.json(page.items)
}

/// `GET /api/v1/requests`: a page, newest first.
pub async fn list_requests(
    who: SignedIn,
    request: HttpRequest,
    query: web::Query<RequestListQuery>,
) -> Result<HttpResponse, ServiceError> {
    let q = query.into_inner();
    let page = who.run(move |a, c| a.list_requests(c, &q)).await?;
    Ok(paged(&request, page))
}

/// `GET /api/v1/requests/{id}`.
pub async fn get_request(
    who: SignedIn,
    path: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = RequestId::parse(&path.into_inner())?;
    Ok(HttpResponse::Ok().json(who.run(move |a, c| a.get_request(c, &id)).await?))
}

/// `POST /api/v1/requests/{id}/approve`.
pub async fn approve(
    who: SignedIn,
    path: web::Path<String>,
    body: web::Json<DecisionRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (id, body) = (RequestId::parse(&path.into_inner())?, body.into_inner());
    Ok(HttpResponse::Ok().json(
        who.run(move |a, c| a.decide(c, &id, Verdict::Approve, &body))
            .await?,
    ))
}

/// `POST /api/v1/requests/{id}/reject`.
pub async fn reject(
    who: SignedIn,
    path: web::Path<String>,
    body: web::Json<DecisionRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (id, body) = (RequestId::parse(&path.into_inner())?, body.into_inner());
    Ok(HttpResponse::Ok().json(
        who.run(move |a, c| a.decide(c, &id, Verdict::Reject, &body))
            .await?,
    ))
}

/// `GET /api/v1/requests/{id}/certificate`: PEM with chain.
pub async fn request_certificate(
    who: SignedIn,
    path: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = RequestId::parse(&path.into_inner())?;
    let pem = who.run(move |a, c| a.request_certificate(c, &id)).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/pem-certificate-chain")
        .body(pem))
}

/// `GET /api/v1/certificates`: a page, newest first, filtered.
pub async fn list_certificates(
    who: SignedIn,
    request: HttpRequest,
    query: web::Query<CertificateListQuery>,
) -> Result<HttpResponse, ServiceError> {
    let q = query.into_inner();
    let page = who.run(move |a, c| a.list_certificates(c, &q)).await?;
    Ok(paged(&request, page))
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
    who: SignedIn,
    path: web::Path<(String, String)>,
    query: web::Query<FormatQuery>,
) -> Result<HttpResponse, ServiceError> {
    let (ca, serial) = path.into_inner();
    let serial = Serial::parse(&serial)?;
    let (view, der) = who
        .run(move |a, c| a.get_certificate(c, &ca, &serial))
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
    who: SignedIn,
    path: web::Path<(String, String)>,
    body: web::Json<RevokeRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (ca, serial) = path.into_inner();
    let serial = Serial::parse(&serial)?;
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
        who.run(move |a, c| a.change_status(c, &ca, &serial, change, &body.totp, &body.comment))
            .await?,
    ))
}

/// `POST /api/v1/certificates/{ca}/{serial}/hold`.
pub async fn hold(
    who: SignedIn,
    path: web::Path<(String, String)>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (ca, serial) = path.into_inner();
    let serial = Serial::parse(&serial)?;
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(
        who.run(move |a, c| {
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
    who: SignedIn,
    path: web::Path<(String, String)>,
    body: web::Json<StepUpRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (ca, serial) = path.into_inner();
    let serial = Serial::parse(&serial)?;
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(
        who.run(move |a, c| {
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

/// `GET /api/v1/audit`: a page of entries, newest first (oldest first from `after`).
pub async fn audit(
    who: SignedIn,
    request: HttpRequest,
    query: web::Query<AuditListQuery>,
) -> Result<HttpResponse, ServiceError> {
    let q = query.into_inner();
    let page = who.run(move |a, c| a.audit(c, &q)).await?;
    Ok(paged(&request, page))
}

/// `POST /api/v1/audit/checkpoints`: signs a checkpoint of the chain's head now.
pub async fn audit_checkpoint(who: SignedIn) -> Result<HttpResponse, ServiceError> {
    let checkpoint = who
        .run(|a, c| {
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
pub async fn audit_verify(who: SignedIn) -> Result<HttpResponse, ServiceError> {
    Ok(HttpResponse::Ok().json(who.run(|a, c| a.audit_verify(c)).await?))
}

/// `?profile=` on the enrollment code list.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeListQuery {
    /// Only this profile's codes.
    pub profile: Option<String>,
}

/// `POST /api/v1/enrollment-codes`: a one-time code for a device (SCEP, EST).
pub async fn create_challenge(
    who: SignedIn,
    body: web::Json<ChallengeRequest>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    let view = who.run(move |a, c| a.create_challenge(c, body)).await?;
    Ok(HttpResponse::Created().json(view))
}

/// `GET /api/v1/enrollment-codes`: the newest codes, never the codes themselves.
pub async fn list_challenges(
    who: SignedIn,
    request: HttpRequest,
    query: web::Query<ChallengeListQuery>,
) -> Result<HttpResponse, ServiceError> {
    let profile = query.into_inner().profile;
    let page = who
        .run(move |a, c| a.list_challenges(c, profile.as_deref()))
        .await?;
    Ok(paged(&request, page))
}

/// `POST /api/v1/enrollment-codes/{id}/revoke`: ends an unused code.
pub async fn revoke_challenge(
    who: SignedIn,
    path: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = path.into_inner();
    who.run(move |a, c| a.revoke_challenge(c, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `?month=YYYY-MM` on the vendor export.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonthQuery {
    /// The month, Japan time.
    pub month: String,
}

/// `GET /api/v1/vendor-certificates?month=YYYY-MM`: the month's vendor certificates.
pub async fn vendor_export(
    who: SignedIn,
    query: web::Query<MonthQuery>,
) -> Result<HttpResponse, ServiceError> {
    let month = query.into_inner().month;
    Ok(HttpResponse::Ok().json(who.run(move |a, c| a.vendor_export(c, &month)).await?))
}

/// `POST /api/v1/staff/leave`: leavers' certificates revoked and accounts disabled (or, dry,
/// reported).
pub async fn staff_leave(
    who: SignedIn,
    body: web::Json<LeaveRequest>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(who.run(move |a, c| a.staff_leave(c, &body)).await?))
}

/// `POST /api/v1/break-glass`: a security officer issues alone in an emergency.
pub async fn break_glass_issue(
    who: SignedIn,
    body: web::Json<BreakGlassRequest>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    let authority = who.0.authority.clone();
    let view = who
        .run(move |a, c| a.break_glass_issue(c, body))
        .await?
        .finish(authority)
        .await?;
    Ok(HttpResponse::Created().json(view))
}

/// `GET /api/v1/break-glass`: the newest break-glass issuances.
pub async fn break_glass_list(
    who: SignedIn,
    query: web::Query<NotificationQuery>,
) -> Result<HttpResponse, ServiceError> {
    let q = query.into_inner();
    Ok(HttpResponse::Ok().json(
        who.run(move |a, c| a.break_glass_list(c, q.status.as_deref(), q.limit))
            .await?,
    ))
}

/// `GET /api/v1/break-glass/{id}`.
pub async fn break_glass_get(
    who: SignedIn,
    path: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = path.into_inner();
    Ok(HttpResponse::Ok().json(who.run(move |a, c| a.break_glass_get(c, &id)).await?))
}

/// `POST /api/v1/break-glass/{id}/review`: another officer's verdict.
pub async fn break_glass_review(
    who: SignedIn,
    path: web::Path<String>,
    body: web::Json<BreakGlassReviewRequest>,
) -> Result<HttpResponse, ServiceError> {
    let (id, body) = (path.into_inner(), body.into_inner());
    Ok(HttpResponse::Ok().json(
        who.run(move |a, c| a.break_glass_review(c, &id, &body))
            .await?,
    ))
}

/// `?status=&limit=` on the notification and break-glass lists.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    /// Notifications: `pending`, `sent` or `failed`; break-glass: `awaiting-review`,
    /// `confirmed`, `misuse`, `overdue`, `revoked-unreviewed`.
    pub status: Option<String>,
    /// 1-1000 (default 100).
    pub limit: Option<u32>,
}

/// `GET /api/v1/notifications`: the outbox, newest first (failed deliveries with their error).
pub async fn notifications(
    who: SignedIn,
    query: web::Query<NotificationQuery>,
) -> Result<HttpResponse, ServiceError> {
    let q = query.into_inner();
    Ok(HttpResponse::Ok().json(
        who.run(move |a, c| a.notifications(c, q.status.as_deref(), q.limit))
            .await?,
    ))
}

/// `GET /api/v1/me/contact`: where the caller's notices go.
pub async fn contact(who: SignedIn) -> Result<HttpResponse, ServiceError> {
    Ok(HttpResponse::Ok().json(who.run(move |a, c| a.contact(c)).await?))
}

/// `PUT /api/v1/me/contact`: sets it, with a fresh TOTP code.
pub async fn set_contact(
    who: SignedIn,
    body: web::Json<ContactRequest>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(who.run(move |a, c| a.set_contact(c, &body)).await?))
}

/// `GET /api/v1/activate`: where k-of-n activation stands (any signed-in user).
pub async fn activation(who: SignedIn) -> Result<HttpResponse, ServiceError> {
    Ok(HttpResponse::Ok().json(who.run(move |a, _| a.activation_view()).await?))
}

/// `POST /api/v1/activate`: a custodian's share, with a fresh TOTP code.
pub async fn activate(
    who: SignedIn,
    body: web::Json<ActivateRequest>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(who.run(move |a, c| a.activate(c, &body)).await?))
}
