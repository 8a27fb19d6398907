//! Certificates: search (subject, SAN, serial, staff number, profile, status, requester,
//! expiry), one certificate with its chain, requester and approvers, revoke / hold / release
//! with a reason and a fresh TOTP code, and PEM / DER downloads.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::form::signed_in_form;
use super::layout::{error_page, error_text, html, page};
use super::session::{redirect, signed_in, WebSession};
use crate::api::{CertificateListQuery, CertificateView};
use crate::error::ServiceError;
use crate::ra::StatusChange;
use crate::store::ids::Serial;
use ca_core::crl::RevocationReason;

/// The status of a certificate in the viewer's language.
fn status_text(s: &WebSession, status: &str) -> String {
    let v = &s.viewer;
    match status {
        "valid" => v.t("有効", "valid"),
        "revoked" => v.t("失効", "revoked"),
        "hold" => v.t("保留", "on hold"),
        other => other,
    }
    .to_string()
}

/// A stored revocation reason as RFC 5280 names it (`keyCompromise`).
fn reason_text(stored: &str) -> &str {
    RevocationReason::parse(stored)
        .map(RevocationReason::rfc5280_name)
        .unwrap_or(stored)
}

/// A table of certificates (search results, the dashboard's parts).
pub fn listing(s: &WebSession, rows: &[CertificateView]) -> Markup {
    let v = &s.viewer;
    html! {
        @if rows.is_empty() {
            p class="empty" { (v.t("ありません。", "None.")) }
        } @else {
            table {
                thead { tr {
                    th scope="col" { (v.t("シリアル", "Serial")) }
                    th scope="col" { (v.t("主体名", "Subject")) }
                    th scope="col" { (v.t("プロファイル", "Profile")) }
                    th scope="col" { (v.t("状態", "Status")) }
                    th scope="col" { (v.t("有効期限", "Expires")) }
                } }
                tbody { @for c in rows {
                    tr {
                        td class="mono" { a href={ "/certificates/" (c.ca) "/" (c.serial) } { (c.serial) } }
                        td { (c.subject) }
                        td { (c.profile) }
                        td { (status_text(s, &c.status)) @if let Some(r) = &c.revocation_reason { " (" (reason_text(r)) ")" } }
                        td { (v.time(&c.not_after)) }
                    }
                } }
            }
        }
    }
}

/// `GET /certificates`: the search form and one page of results.
pub async fn list(request: HttpRequest, query: web::Query<CertificateListQuery>) -> HttpResponse {
    let s = match signed_in(&request).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let mut query = query.into_inner();
    // Empty form fields mean "any".
    for field in [
        &mut query.subject,
        &mut query.san,
        &mut query.serial,
        &mut query.staff_id,
        &mut query.profile,
        &mut query.status,
        &mut query.requester,
    ] {
        if field.as_deref().is_some_and(|t| t.trim().is_empty()) {
            *field = None;
        }
    }
    query.limit = Some(100);
    let shown = CertificateListQuery {
        cursor: None,
        ..query.clone()
    };
    let found = s.run(move |a, c| a.list_certificates(c, &query)).await;
    let v = &s.viewer;
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let body = html! {
        form method="get" action="/certificates" class="card search" role="search" {
            label for="subject" { (v.t("主体名 (名前・端末 ID)", "Subject (a name, a device id)")) }
            input id="subject" name="subject" value=(text(&shown.subject));
            label for="san" { (v.t("別名 (ホスト名・IP・メール)", "SAN (host, IP, e-mail)")) }
            input id="san" name="san" value=(text(&shown.san));
            label for="staff_id" { (v.t("職員番号", "Staff number")) }
            input id="staff_id" name="staff_id" value=(text(&shown.staff_id));
            label for="serial" { (v.t("シリアル (先頭)", "Serial (first digits)")) }
            input id="serial" name="serial" value=(text(&shown.serial));
            label for="requester" { (v.t("申請者", "Requester")) }
            input id="requester" name="requester" value=(text(&shown.requester));
            label for="profile" { (v.t("プロファイル", "Profile")) }
            input id="profile" name="profile" value=(text(&shown.profile));
            label for="status" { (v.t("状態", "Status")) }
            select id="status" name="status" {
                @for (value, label) in [("", v.t("すべて", "any")), ("valid", v.t("有効", "valid")), ("hold", v.t("保留", "on hold")), ("revoked", v.t("失効", "revoked"))] {
                    option value=(value) selected[shown.status.as_deref().unwrap_or("") == value] { (label) }
                }
            }
            label for="expiring" { (v.t("この日数以内に期限切れ", "Expiring within days")) }
            input id="expiring" name="expiring_within_days" type="number" min="1" max="10000" value=[shown.expiring_within_days];
            button type="submit" { (v.t("検索", "Search")) }
        }
        @match &found {
            Ok(p) => {
                p { (p.total) (v.t(" 件", " found")) }
                (listing(&s, &p.items))
                @if let Some(next) = &p.next {
                    p { a href={ (next_href(&request, next)) } { (v.t("次のページ", "Next page")) } }
                }
            }
            Err(e) => { p class="error" role="alert" { (error_text(v, e)) } }
        }
    };
    let status = match &found {
        Ok(_) => StatusCode::OK,
        Err(e) => actix_web::ResponseError::status_code(e),
    };
    html(
        status,
        page(v, Some(&s), v.t("証明書", "Certificates"), body),
    )
}

/// This search's address with the next page's cursor.
fn next_href(request: &HttpRequest, cursor: &str) -> String {
    let mut parts: Vec<String> = request
        .query_string()
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("cursor="))
        .map(str::to_string)
        .collect();
    parts.push(format!("cursor={}", crate::api::url_escape(cursor)));
    format!("/certificates?{}", parts.join("&"))
}

fn detail(
    s: &WebSession,
    c: &CertificateView,
    request: Option<&crate::api::RequestView>,
    message: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let v = &s.viewer;
    let base = format!("/certificates/{}/{}", c.ca, c.serial);
    let reasons = [
        ("unspecified", v.t("指定なし", "unspecified")),
        ("key-compromise", v.t("鍵の危殆化", "key compromise")),
        (
            "affiliation-changed",
            v.t("所属の変更", "affiliation changed"),
        ),
        ("superseded", v.t("更新済み", "superseded")),
        (
            "cessation-of-operation",
            v.t("運用の終了", "cessation of operation"),
        ),
    ];
    let body = html! {
        @if let Some(m) = message {
            p class="error" role="alert" { (m) }
        }
        dl class="facts" {
            dt { (v.t("主体名", "Subject")) } dd class="mono" { (c.subject) }
            dt { (v.t("別名 (SAN)", "SANs")) }
            dd class="mono" { @if c.sans.is_empty() { "-" } @else { @for san in &c.sans { (san) br; } } }
            dt { (v.t("鍵", "Key")) } dd { (c.key.as_deref().unwrap_or("-")) }
            dt { (v.t("プロファイル", "Profile")) } dd { (c.profile) }
            dt { (v.t("発行 CA", "Issuing CA")) } dd { (c.ca) }
            dt { (v.t("シリアル", "Serial")) } dd class="mono" { (c.serial) }
            dt { (v.t("有効期間", "Validity")) } dd { (v.time(&c.not_before)) " – " (v.time(&c.not_after)) }
            dt { (v.t("状態", "Status")) }
            dd {
                (status_text(s, &c.status))
                @if let Some(r) = &c.revocation_reason { " (" (reason_text(r)) ")" }
                @if let Some(at) = &c.revoked_at { " " (v.time(at)) }
            }
        }
        h2 { (v.t("証明書チェーン", "Certificate chain")) }
        ol class="chain" {
            li class="mono" { (c.subject) }
            @for subject in chain_subjects(s, &c.ca) { li class="mono" { (subject) } }
        }
        p class="buttons" {
            a class="button" href={ (base) "/download?format=pem" } download { (v.t("PEM (チェーン付き)", "PEM (with chain)")) }
            a class="button" href={ (base) "/download?format=der" } download { "DER" }
        }
        @if let Some(r) = request {
            h2 { (v.t("申請と承認", "Request and approvals")) }
            p { a href={ "/requests/" (r.id) } { (r.id) } " — " (r.requester) ": " (r.justification)
                @if let Some(w) = &r.work_order { " (" (v.t("作業指示 ", "work order ")) (w) ")" } }
            ul { @for d in &r.decisions {
                li { (d.approver) " — " (d.verdict) " — " (v.time(&d.decided_at)) @if !d.comment.is_empty() { ": " (d.comment) } }
            } }
        }
        @if c.status != "revoked" {
            h2 { (v.t("失効・保留", "Revoke or hold")) }
            form method="post" action={ (base) "/status" } class="card" {
                input type="hidden" name="csrf" value=(s.csrf());
                @if c.status == "valid" {
                    label for="reason" { (v.t("失効の理由", "Reason to revoke")) }
                    select id="reason" name="reason" {
                        @for (value, label) in &reasons { option value=(value) { (label) } }
                    }
                }
                label for="totp" { (v.t("確認コード (新しいもの)", "A fresh code")) }
                input id="totp" name="totp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required;
                label for="comment" { (v.t("コメント", "Comment")) }
                input id="comment" name="comment" maxlength="500";
                div class="buttons" {
                    @if c.status == "valid" {
                        button type="submit" name="action" value="revoke" class="danger" { (v.t("失効させる", "Revoke")) }
                        button type="submit" name="action" value="hold" { (v.t("保留にする", "Hold")) }
                    }
                    @if c.status == "hold" {
                        button type="submit" name="action" value="release" { (v.t("保留を解除", "Release")) }
                        button type="submit" name="action" value="revoke" class="danger" { (v.t("失効させる", "Revoke")) }
                        input type="hidden" name="reason" value="unspecified";
                    }
                }
            }
        }
    };
    let title = format!("{} {}", v.t("証明書", "Certificate"), c.serial);
    html(status, page(v, Some(s), &title, body))
}

/// The subjects of the issuing CA's chain, issuing CA first, root last.
fn chain_subjects(s: &WebSession, ca: &str) -> Vec<String> {
    let Some(pem) = s.authority.chain_pem(ca) else {
        return Vec::new();
    };
    x509_cert::Certificate::load_pem_chain(pem.as_bytes())
        .map(|chain| {
            chain
                .iter()
                .map(|c| c.tbs_certificate.subject.to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn load(
    s: &WebSession,
    ca: String,
    serial: Serial,
) -> Result<(CertificateView, Option<crate::api::RequestView>), ServiceError> {
    let (view, _) = s
        .run(move |a, c| a.get_certificate(c, &ca, &serial))
        .await?;
    let request = match &view.request_id {
        Some(id) => {
            let id = crate::store::ids::RequestId::parse(id)?;
            s.run(move |a, c| a.get_request(c, &id)).await.ok()
        }
        None => None,
    };
    Ok((view, request))
}

/// `GET /certificates/{ca}/{serial}`.
pub async fn show(request: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let s = match signed_in(&request).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let (ca, serial) = path.into_inner();
    let serial = match Serial::parse(&serial) {
        Ok(serial) => serial,
        Err(e) => return error_page(&s.viewer, Some(&s), &e),
    };
    match load(&s, ca, serial).await {
        Ok((view, req)) => detail(&s, &view, req.as_ref(), None, StatusCode::OK),
        Err(e) => error_page(&s.viewer, Some(&s), &e),
    }
}

/// The download format.
#[derive(Deserialize)]
pub struct Format {
    format: Option<String>,
}

/// `GET /certificates/{ca}/{serial}/download?format=pem|der`.
pub async fn download(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    format: web::Query<Format>,
) -> HttpResponse {
    let s = match signed_in(&request).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let (ca, serial) = path.into_inner();
    let serial = match Serial::parse(&serial) {
        Ok(serial) => serial,
        Err(e) => return error_page(&s.viewer, Some(&s), &e),
    };
    let name = serial.as_str().to_string();
    let ca_id = ca.clone();
    let der = match s.run(move |a, c| a.get_certificate(c, &ca, &serial)).await {
        Ok((_, der)) => der,
        Err(e) => return error_page(&s.viewer, Some(&s), &e),
    };
    let (body, kind, file) = if format.format.as_deref() == Some("der") {
        (der, "application/pkix-cert", format!("{name}.cer"))
    } else {
        let mut pem = ca_core::ca::pem(&der);
        if let Some(chain) = s.authority.chain_pem(&ca_id) {
            pem.push_str(&chain);
        }
        (
            pem.into_bytes(),
            "application/pem-certificate-chain",
            format!("{name}.pem"),
        )
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, kind))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// The revoke / hold / release form.
#[derive(Deserialize)]
pub struct StatusForm {
    action: String,
    #[serde(default)]
    reason: String,
    totp: String,
    #[serde(default)]
    comment: String,
    csrf: String,
}

/// `POST /certificates/{ca}/{serial}/status`: the API's revoke, hold or release.
pub async fn change_status(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<StatusForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let s = match signed_in_form(&request, &form.csrf).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let (ca, serial_text) = path.into_inner();
    let serial = match Serial::parse(&serial_text) {
        Ok(serial) => serial,
        Err(e) => return error_page(&s.viewer, Some(&s), &e),
    };
    let change = match form.action.as_str() {
        "revoke" => match RevocationReason::parse(&form.reason) {
            Some(reason) => StatusChange::Revoke {
                reason,
                invalidity_date: None,
            },
            None => {
                let e =
                    ServiceError::Invalid(format!("unknown revocation reason {:?}", form.reason));
                return error_page(&s.viewer, Some(&s), &e);
            }
        },
        "hold" => StatusChange::Hold,
        "release" => StatusChange::Release,
        _ => {
            let e = ServiceError::Invalid("action is revoke, hold or release".into());
            return error_page(&s.viewer, Some(&s), &e);
        }
    };
    let (ca2, serial2) = (ca.clone(), serial.clone());
    let (totp, comment) = (form.totp, form.comment);
    match s
        .run(move |a, c| a.change_status(c, &ca, &serial, change, &totp, &comment))
        .await
    {
        Ok(view) => redirect(&format!("/certificates/{}/{}", view.ca, view.serial)),
        Err(e) => match load(&s, ca2, serial2).await {
            Ok((view, req)) => {
                let status = actix_web::ResponseError::status_code(&e);
                detail(
                    &s,
                    &view,
                    req.as_ref(),
                    Some(&error_text(&s.viewer, &e)),
                    status,
                )
            }
            Err(_) => error_page(&s.viewer, Some(&s), &e),
        },
    }
}
