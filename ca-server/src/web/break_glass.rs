//! Break-glass issuances for officers, admins and auditors: each with its stated emergency,
//! review deadline, status and reviews; officers other than the issuer review them here
//! (confirm, or misuse, which revokes at once) with a fresh code, as `ca-cli break-glass
//! review` does.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use ca_core::role::Role;
use maud::{html, Markup};
use serde::Deserialize;

use super::form::signed_in_form;
use super::layout::{error_text, html, page};
use super::session::{signed_in, WebSession};
use crate::api::{BreakGlassReviewRequest, BreakGlassView};

/// A review: the pressed button's verdict, a fresh code, a comment and the CSRF token.
#[derive(Deserialize)]
pub struct ReviewForm {
    verdict: String,
    totp: String,
    #[serde(default)]
    comment: String,
    csrf: String,
}

/// Whether the viewer may review `item` now: an officer, not its issuer, not yet reviewed by
/// them, and still open.
fn reviewable(s: &WebSession, item: &BreakGlassView) -> bool {
    s.caller.has_any(&[Role::SecurityOfficer])
        && item.officer != s.caller.username
        && !item.reviews.iter().any(|r| r.reviewer == s.caller.username)
        && matches!(item.status.as_str(), "awaiting-review" | "overdue")
}

fn status_text(s: &WebSession, status: &str) -> String {
    let v = &s.viewer;
    match status {
        "awaiting-review" => v.t("レビュー待ち", "awaiting review"),
        "overdue" => v.t("レビュー期限切れ", "review overdue"),
        "confirmed" => v.t("確認済み", "confirmed"),
        "misuse" => v.t("不正利用 (失効済み)", "misuse (revoked)"),
        "revoked-unreviewed" => v.t("未レビューのため失効", "revoked, unreviewed"),
        other => other,
    }
    .to_string()
}

fn item_card(s: &WebSession, item: &BreakGlassView) -> Markup {
    let v = &s.viewer;
    let alert = matches!(
        item.status.as_str(),
        "overdue" | "misuse" | "revoked-unreviewed"
    );
    html! {
        article class="card" aria-labelledby={ "bg-" (item.id) } {
            h2 id={ "bg-" (item.id) } { (item.id) " — " (item.profile) }
            p class=(if alert { "error" } else { "status" }) { strong { (status_text(s, &item.status)) } }
            dl {
                dt { (v.t("発行した責任者", "Issued by")) } dd { (item.officer) }
                dt { (v.t("緊急事態", "Emergency")) } dd { (item.emergency) }
                dt { (v.t("発行日時", "Issued")) } dd { (v.time(&item.issued_at)) }
                dt { (v.t("レビュー期限", "Review due")) } dd { (v.time(&item.review_due)) }
                dt { (v.t("必要な確認", "Confirmations needed")) } dd { (item.reviews_needed) }
                @if let (Some(ca), Some(serial)) = (&item.ca, &item.serial) {
                    dt { (v.t("証明書", "Certificate")) }
                    dd { a href={ "/certificates/" (ca) "/" (serial) } { (serial) } }
                }
            }
            @if !item.reviews.is_empty() {
                ul {
                    @for r in &item.reviews {
                        li { (r.reviewer) ": " (r.verdict) " — " (v.time(&r.at)) @if !r.comment.is_empty() { " — " (r.comment) } }
                    }
                }
            }
            @if reviewable(s, item) {
                form method="post" action={ "/break-glass/" (item.id) "/review" } {
                    input type="hidden" name="csrf" value=(s.csrf());
                    label for={ "bg-totp-" (item.id) } { (v.t("確認コード (新しいもの)", "A fresh code")) }
                    input id={ "bg-totp-" (item.id) } name="totp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required;
                    label for={ "bg-comment-" (item.id) } { (v.t("コメント (不正利用の場合は必須)", "Comment (required for misuse)")) }
                    input id={ "bg-comment-" (item.id) } name="comment" maxlength="2000";
                    button type="submit" name="verdict" value="confirm" { (v.t("正当な緊急発行と確認", "Confirm the emergency")) }
                    button type="submit" name="verdict" value="misuse" class="danger" { (v.t("不正利用 (直ちに失効)", "Misuse (revoke now)")) }
                }
            }
        }
    }
}

async fn list_page(s: &WebSession, notice: Option<Markup>, status: StatusCode) -> HttpResponse {
    let v = &s.viewer;
    let items = s.run(|a, c| a.break_glass_list(c, None, Some(100))).await;
    let body = html! {
        @if let Some(n) = notice { (n) }
        p { (v.t("責任者が一人で発行した緊急証明書です。発行者以外の責任者が期限までにレビューします。",
                 "Certificates an officer issued alone in an emergency. Officers other than the issuer review each one before its deadline.")) }
        @match &items {
            Ok(items) if items.is_empty() => p class="empty" { (v.t("ありません。", "None.")) },
            Ok(items) => @for item in items { (item_card(s, item)) },
            Err(e) => p class="error" role="alert" { (error_text(v, e)) },
        }
    };
    html(
        status,
        page(v, Some(s), v.t("緊急発行", "Break-glass"), body),
    )
}

/// `GET /break-glass`.
pub async fn list(request: HttpRequest) -> HttpResponse {
    match signed_in(&request).await {
        Ok(s) => list_page(&s, None, StatusCode::OK).await,
        Err(to) => to,
    }
}

/// `POST /break-glass/{id}/review`.
pub async fn review(
    request: HttpRequest,
    id: web::Path<String>,
    form: web::Form<ReviewForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let s = match signed_in_form(&request, &form.csrf).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let body = BreakGlassReviewRequest {
        verdict: form.verdict,
        comment: form.comment,
        totp: form.totp,
    };
    let id = id.into_inner();
    match s.run(move |a, c| a.break_glass_review(c, &id, &body)).await {
        Ok(view) => {
            let text = status_text(&s, &view.status);
            let notice = html! { p class="ok" role="status" { (s.viewer.t("レビューを記録しました: ", "Review recorded: ")) (view.id) " — " (text) } };
            list_page(&s, Some(notice), StatusCode::OK).await
        }
        Err(e) => {
            let status = actix_web::ResponseError::status_code(&e);
            let notice = html! { p class="error" role="alert" { (error_text(&s.viewer, &e)) } };
            list_page(&s, Some(notice), status).await
        }
    }
}
