//! Requests: the approval queue, a request in full (the decoded CSR, window, work order,
//! decisions) with approve / reject and a fresh TOTP code in the same form, and a new request
//! from a pasted CSR.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::form::signed_in_form;
use super::layout::{error_page, error_text, html, page};
use super::session::{redirect, signed_in, DecisionForm, WebSession};
use crate::api::{DecisionRequest, RequestListQuery, RequestView, SubmitRequest};
use crate::error::ServiceError;
use crate::store::ids::RequestId;

/// Filters of the request list.
#[derive(Deserialize, Default)]
pub struct ListFilter {
    status: Option<String>,
    cursor: Option<String>,
}

/// The status of a request in the viewer's language.
fn status_text(s: &WebSession, status: &str) -> String {
    let v = &s.viewer;
    match status {
        "pending" => v.t("承認待ち", "pending"),
        "approved" => v.t("承認済み", "approved"),
        "issued" => v.t("発行済み", "issued"),
        "rejected" => v.t("却下", "rejected"),
        "expired" => v.t("期限切れ", "expired"),
        "failed" => v.t("失敗", "failed"),
        "cancelled" => v.t("取消", "cancelled"),
        other => other,
    }
    .to_string()
}

/// A table of requests (the queue, the dashboard's part).
pub fn listing(s: &WebSession, rows: &[RequestView]) -> Markup {
    let v = &s.viewer;
    html! {
        @if rows.is_empty() {
            p class="empty" { (v.t("ありません。", "None.")) }
        } @else {
            table {
                thead { tr {
                    th scope="col" { (v.t("申請", "Request")) }
                    th scope="col" { (v.t("プロファイル", "Profile")) }
                    th scope="col" { (v.t("申請者", "Requester")) }
                    th scope="col" { (v.t("主体名", "Subject")) }
                    th scope="col" { (v.t("状態", "Status")) }
                    th scope="col" { (v.t("承認", "Approvals")) }
                    th scope="col" { (v.t("申請日時", "Submitted")) }
                } }
                tbody {
                    @for r in rows {
                        tr {
                            td { a href={ "/requests/" (r.id) } { (r.id) } }
                            td { (r.profile) }
                            td { (r.requester) }
                            td { (r.csr.as_ref().map(|c| c.subject.as_str()).unwrap_or("-")) }
                            td { (status_text(s, &r.status)) }
                            td { (r.approvals) " / " (r.approvals_required) }
                            td { (v.time(&r.created_at)) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /requests`: pending first (the queue); `?status=` for others.
pub async fn list(request: HttpRequest, filter: web::Query<ListFilter>) -> HttpResponse {
    let s = match signed_in(&request).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let filter = filter.into_inner();
    let status = filter.status.clone().unwrap_or_else(|| "pending".into());
    let query = RequestListQuery {
        status: (status != "all").then(|| status.clone()),
        limit: Some(100),
        cursor: filter.cursor,
        ..Default::default()
    };
    let page_of = match s.run(move |a, c| a.list_requests(c, &query)).await {
        Ok(p) => p,
        Err(e) => return error_page(&s.viewer, Some(&s), &e),
    };
    let v = &s.viewer;
    let body = html! {
        nav class="tabs" aria-label=(v.t("状態", "Status")) {
            @for (value, label) in [("pending", v.t("承認待ち", "Pending")), ("issued", v.t("発行済み", "Issued")), ("rejected", v.t("却下", "Rejected")), ("all", v.t("すべて", "All"))] {
                a href={ "/requests?status=" (value) } aria-current=[(value == status).then_some("page")] { (label) }
            }
            a class="action" href="/requests/new" { (v.t("新しい申請", "New request")) }
        }
        p { (page_of.total) (v.t(" 件", " in all")) }
        (listing(&s, &page_of.items))
        @if let Some(next) = &page_of.next {
            p { a href={ "/requests?status=" (status) "&cursor=" (crate::api::url_escape(next)) } { (v.t("次のページ", "Next page")) } }
        }
    };
    html(
        StatusCode::OK,
        page(v, Some(&s), v.t("申請", "Requests"), body),
    )
}

fn detail(
    s: &WebSession,
    r: &RequestView,
    message: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let v = &s.viewer;
    let window = match (&r.not_before, &r.not_after) {
        (Some(from), Some(until)) => {
            let secs = match (
                from.parse::<jiff::Timestamp>(),
                until.parse::<jiff::Timestamp>(),
            ) {
                (Ok(a), Ok(b)) => Some(b.as_second() - a.as_second()),
                _ => None,
            };
            Some((v.time(from), v.time(until), secs.map(|d| v.duration(d))))
        }
        _ => None,
    };
    let body = html! {
        @if let Some(m) = message {
            p class="error" role="alert" { (m) }
        }
        dl class="facts" {
            dt { (v.t("状態", "Status")) } dd { (status_text(s, &r.status)) }
            dt { (v.t("プロファイル", "Profile")) } dd { (r.profile) }
            dt { (v.t("申請者", "Requester")) } dd { (r.requester) }
            dt { (v.t("理由", "Justification")) } dd { (r.justification) }
            dt { (v.t("作業指示", "Work order")) } dd { (r.work_order.as_deref().unwrap_or("-")) }
            dt { (v.t("期間", "Window")) }
            dd {
                @if let Some((from, until, length)) = &window {
                    (from) " – " (until)
                    @if let Some(l) = length { " (" (l) ")" }
                } @else {
                    (v.t("プロファイルの有効期間 (発行時から)", "The profile's validity, from issuance"))
                }
            }
            dt { (v.t("申請日時", "Submitted")) } dd { (v.time(&r.created_at)) }
            dt { (v.t("承認", "Approvals")) } dd { (r.approvals) " / " (r.approvals_required) }
        }
        @if let Some(csr) = &r.csr {
            h2 { (v.t("CSR の内容", "The CSR, decoded")) }
            dl class="facts" {
                dt { (v.t("主体名", "Subject")) } dd class="mono" { (csr.subject) }
                dt { (v.t("別名 (SAN)", "SANs")) }
                dd class="mono" { @if csr.sans.is_empty() { "-" } @else { @for san in &csr.sans { (san) br; } } }
                dt { (v.t("鍵", "Key")) } dd { (csr.key) }
            }
            @for flag in &csr.flags {
                p class="flag" role="note" { strong { (v.t("要確認", "CHECK")) " [" (flag.code) "] " } (flag.field) ": " (flag.detail) }
            }
        }
        @if !r.duplicates.is_empty() {
            p class="notice" { (v.t("この主体名の有効な証明書があります: ", "Valid certificates for this subject already exist: ")) (r.duplicates.join(", ")) }
        }
        @if let (Some(ca), Some(serial)) = (&r.ca, &r.serial) {
            p { a href={ "/certificates/" (ca) "/" (serial) } { (v.t("発行された証明書", "The issued certificate")) } }
            @if r.requester == s.caller.username {
                section id="bundle" hidden
                    data-chain={ "/certificates/" (ca) "/" (serial) "/download?format=pem" }
                    data-no-key=(v.t("この証明書の鍵はこのブラウザにありません (別のブラウザで作ったか、CSR を貼り付けました)。", "This certificate's key is not in this browser (made elsewhere, or the CSR was pasted)."))
                    data-short-pass=(v.t("パスフレーズは 8 文字以上にしてください。", "Use a passphrase of 8 characters or more."))
                    data-done=(v.t("できました。ダウンロードしてください。", "Ready: download it.")) {
                    h2 { (v.t("鍵と証明書を PKCS#12 にまとめる", "Bundle key and certificate as PKCS#12")) }
                    p { (v.t("このブラウザの中で暗号化します (PBES2 / AES-256)。", "Encrypted in this browser (PBES2 / AES-256).")) }
                    label for="bundle-pass" { (v.t("PKCS#12 のパスフレーズ", "PKCS#12 passphrase")) }
                    input id="bundle-pass" type="password" autocomplete="new-password" minlength="8";
                    button type="button" id="bundle-button" { (v.t("作成", "Make it")) }
                    " "
                    a id="bundle-link" hidden download="mamori.p12" { (v.t("PKCS#12 をダウンロード", "Download the PKCS#12")) }
                }
                p id="bundle-status" role="status" hidden {}
                script src="/static/keys.js" defer {}
            }
        }
        @if let Some(f) = &r.failure { p class="error" { (f) } }
        h2 { (v.t("判断", "Decisions")) }
        @if r.decisions.is_empty() {
            p class="empty" { (v.t("まだありません。", "None yet.")) }
        } @else {
            ul { @for d in &r.decisions {
                li { (d.approver) " — " (d.verdict) " — " (v.time(&d.decided_at)) @if !d.comment.is_empty() { ": " (d.comment) } }
            } }
        }
        @if r.status == "pending" && r.requester != s.caller.username {
            form method="post" action={ "/requests/" (r.id) "/decide" } class="card" {
                input type="hidden" name="csrf" value=(s.csrf());
                label for="totp" { (v.t("確認コード (新しいもの)", "A fresh code")) }
                input id="totp" name="totp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required;
                label for="comment" { (v.t("コメント", "Comment")) }
                input id="comment" name="comment" maxlength="500";
                div class="buttons" {
                    button type="submit" name="verdict" value="approve" { (v.t("承認する", "Approve")) }
                    button type="submit" name="verdict" value="reject" class="danger" { (v.t("却下する", "Reject")) }
                }
            }
        }
    };
    let title = format!("{} {}", v.t("申請", "Request"), r.id);
    html(status, page(v, Some(s), &title, body))
}

/// `GET /requests/{id}`.
pub async fn show(request: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let s = match signed_in(&request).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let id = match RequestId::parse(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&s.viewer, Some(&s), &e),
    };
    match s.run(move |a, c| a.get_request(c, &id)).await {
        Ok(view) => detail(&s, &view, None, StatusCode::OK),
        Err(e) => error_page(&s.viewer, Some(&s), &e),
    }
}

/// `POST /requests/{id}/decide`: the API's decision, with the code typed in the form.
pub async fn decide(
    request: HttpRequest,
    id: web::Path<String>,
    form: web::Form<DecisionForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let s = match signed_in_form(&request, &form.csrf).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let id = match RequestId::parse(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&s.viewer, Some(&s), &e),
    };
    let verdict = match form.verdict() {
        Ok(v) => v,
        Err(e) => return error_page(&s.viewer, Some(&s), &e),
    };
    let body = DecisionRequest {
        totp: form.totp,
        comment: form.comment,
    };
    let again = id.clone();
    match s.run(move |a, c| a.decide(c, &id, verdict, &body)).await {
        Ok(view) => redirect(&format!("/requests/{}", view.id)),
        Err(e) => match s.run(move |a, c| a.get_request(c, &again)).await {
            Ok(view) => {
                let status = actix_web::ResponseError::status_code(&e);
                detail(&s, &view, Some(&error_text(&s.viewer, &e)), status)
            }
            Err(_) => error_page(&s.viewer, Some(&s), &e),
        },
    }
}

/// The new request form.
#[derive(Deserialize)]
pub struct NewForm {
    profile: String,
    csr: String,
    justification: String,
    #[serde(default)]
    work_order: String,
    /// `datetime-local` value, in the viewer's zone.
    #[serde(default)]
    not_before: String,
    #[serde(default)]
    not_after: String,
    csrf: String,
}

fn new_page(s: &WebSession, message: Option<&str>, status: StatusCode) -> HttpResponse {
    let v = &s.viewer;
    let profiles: Vec<_> = s
        .authority
        .profiles()
        .into_iter()
        .filter(|p| {
            p.requester_roles
                .iter()
                .any(|r| s.caller.roles.iter().any(|have| have.as_str() == r))
        })
        .collect();
    let zone = s.viewer.tz.iana_name().unwrap_or("UTC").to_string();
    let body = html! {
        @if let Some(m) = message {
            p class="error" role="alert" { (m) }
        }
        @if profiles.is_empty() {
            p class="empty" { (v.t("申請できるプロファイルがありません。", "No profile lets you request.")) }
        } @else {
            form method="post" action="/requests/new" class="card" {
                input type="hidden" name="csrf" value=(s.csrf());
                label for="profile" { (v.t("プロファイル", "Profile")) }
                select id="profile" name="profile" {
                    @for p in &profiles { option value=(p.id) { (p.id) " — " (p.description) } }
                }
                section id="keygen" hidden
                    data-need-cn=(v.t("CN を入力してください。", "Enter a CN."))
                    data-done=(v.t("鍵はこのブラウザの中で作られ、ここに保存されました。CSR を下に入れました。発行後、この申請のページで PKCS#12 にまとめます。", "The key was made in this browser and stays here; the CSR is filled in below. Once issued, bundle it as PKCS#12 on this request's page.")) {
                    h2 { (v.t("このブラウザで鍵と CSR を作る", "Make the key and CSR in this browser")) }
                    p { (v.t("秘密鍵はサーバーに送られません。", "The private key is never sent to the server.")) }
                    label for="keygen-o" { (v.t("組織名 (O、登録された会社名)", "Organization (O, your registered company)")) }
                    input id="keygen-o";
                    label for="keygen-cn" { (v.t("名前 (CN)", "Name (CN)")) }
                    input id="keygen-cn";
                    label for="keygen-email" { (v.t("メールアドレス (任意)", "E-mail address (optional)")) }
                    input id="keygen-email" type="email";
                    button type="button" id="keygen-button" { (v.t("鍵と CSR を作る (ECDSA P-256)", "Make key and CSR (ECDSA P-256)")) }
                    p id="keygen-status" role="status" hidden {}
                }
                label for="csr" { (v.t("CSR (PEM を貼り付け、または上で作成)", "CSR (paste the PEM, or make it above)")) }
                textarea id="csr" name="csr" rows="10" required class="mono" {}
                label for="justification" { (v.t("理由", "Justification")) }
                input id="justification" name="justification" required maxlength="500";
                label for="work_order" { (v.t("作業指示番号 (保守の場合)", "Work order (for maintenance)")) }
                input id="work_order" name="work_order" maxlength="100";
                fieldset {
                    legend { (v.t("作業期間 (保守の場合)", "Maintenance window (for maintenance)")) " — " (zone) }
                    label for="not_before" { (v.t("開始", "From")) }
                    input id="not_before" name="not_before" type="datetime-local";
                    label for="not_after" { (v.t("終了", "Until")) }
                    input id="not_after" name="not_after" type="datetime-local";
                }
                button type="submit" { (v.t("申請する", "Submit")) }
            }
            script src="/static/keys.js" defer {}
        }
    };
    html(
        status,
        page(v, Some(s), v.t("新しい申請", "New request"), body),
    )
}

/// `GET /requests/new`.
pub async fn new_form(request: HttpRequest) -> HttpResponse {
    match signed_in(&request).await {
        Ok(s) => new_page(&s, None, StatusCode::OK),
        Err(to) => to,
    }
}

/// A `datetime-local` value in `tz` as RFC 3339.
pub(super) fn local_to_rfc3339(
    value: &str,
    tz: &jiff::tz::TimeZone,
) -> Result<Option<String>, ServiceError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let civil: jiff::civil::DateTime = value
        .parse()
        .map_err(|_| ServiceError::Invalid(format!("not a date and time: {value:?}")))?;
    let zoned = civil
        .to_zoned(tz.clone())
        .map_err(|e| ServiceError::Invalid(format!("{value}: {e}")))?;
    Ok(Some(zoned.timestamp().to_string()))
}

/// `POST /requests/new`: the API's submission.
pub async fn submit(request: HttpRequest, form: web::Form<NewForm>) -> HttpResponse {
    let form = form.into_inner();
    let s = match signed_in_form(&request, &form.csrf).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let window = local_to_rfc3339(&form.not_before, &s.viewer.tz)
        .and_then(|a| Ok((a, local_to_rfc3339(&form.not_after, &s.viewer.tz)?)));
    let (not_before, not_after) = match window {
        Ok(w) => w,
        Err(e) => {
            let status = actix_web::ResponseError::status_code(&e);
            return new_page(&s, Some(&error_text(&s.viewer, &e)), status);
        }
    };
    let body = SubmitRequest {
        profile: form.profile,
        csr: form.csr,
        justification: form.justification,
        work_order: Some(form.work_order).filter(|w| !w.trim().is_empty()),
        not_before,
        not_after,
    };
    let authority = s.authority.clone();
    let submitted = match s.run(move |a, c| a.submit(c, body)).await {
        Ok(submitted) => submitted.finish(authority).await,
        Err(e) => Err(e),
    };
    match submitted {
        Ok(view) => redirect(&format!("/requests/{}", view.id)),
        Err(e) => {
            let status = actix_web::ResponseError::status_code(&e);
            new_page(&s, Some(&error_text(&s.viewer, &e)), status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_window_is_read_in_the_viewers_zone() {
        let tokyo = jiff::tz::TimeZone::get("Asia/Tokyo").unwrap();
        assert_eq!(
            local_to_rfc3339("2026-12-03T09:00", &tokyo)
                .unwrap()
                .as_deref(),
            Some("2026-12-03T00:00:00Z")
        );
        assert_eq!(local_to_rfc3339("", &tokyo).unwrap(), None);
        assert!(local_to_rfc3339("tomorrow", &tokyo).is_err());
    }
}
