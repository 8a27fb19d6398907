//! The page shell every console page shares (navigation, language switch, sign-out), the
//! security headers of an HTML answer, and the error page.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use maud::{html, Markup, DOCTYPE};

use super::session::WebSession;
use super::viewer::{Lang, Viewer};
use crate::error::ServiceError;
use ca_core::role::Role;

/// The console's Content-Security-Policy: scripts, styles and images only from this server,
/// nothing inline, no frames around it, forms only to itself.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self' blob:; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// An HTML answer with the console's headers: CSP, no framing, no caching, no referrer.
pub fn html(status: StatusCode, page: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on
        // this site's own forms, and the Origin check needs the real one.
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .body(page.into_string())
}

/// A whole page: `<head>`, the navigation for `session` (none on the sign-in page), `body`.
pub fn page(viewer: &Viewer, session: Option<&WebSession>, title: &str, body: Markup) -> Markup {
    let other = match viewer.lang {
        Lang::Ja => ("en", "English"),
        Lang::En => ("ja", "日本語"),
    };
    html! {
        (DOCTYPE)
        html lang=(viewer.lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Mamori" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                a class="skip" href="#main" { (viewer.t("本文へ", "Skip to content")) }
                header {
                    nav aria-label=(viewer.t("メニュー", "Menu")) {
                        a class="brand" href="/" { "Mamori" }
                        @if let Some(s) = session {
                            a href="/" { (viewer.t("ダッシュボード", "Dashboard")) }
                            a href="/requests" { (viewer.t("申請", "Requests")) }
                            a href="/certificates" { (viewer.t("証明書", "Certificates")) }
                            @if s.caller.has_any(&[Role::DeviceEnroller, Role::Admin]) {
                                a href="/devices" { (viewer.t("端末登録", "Devices")) }
                            }
                            @if s.caller.has_any(&[Role::Admin, Role::SecurityOfficer, Role::Auditor]) {
                                a href="/users" { (viewer.t("ユーザー", "Users")) }
                            }
                            @if s.caller.has_any(&[Role::Admin, Role::SecurityOfficer, Role::Auditor]) {
                                a href="/break-glass" { (viewer.t("緊急発行", "Break-glass")) }
                            }
                            @if s.caller.has_any(&[Role::Auditor, Role::Admin]) {
                                a href="/audit" { (viewer.t("監査ログ", "Audit")) }
                            }
                            span class="who" { (s.caller.username) }
                            form method="post" action="/logout" class="inline" {
                                input type="hidden" name="csrf" value=(s.csrf());
                                button type="submit" { (viewer.t("サインアウト", "Sign out")) }
                            }
                        }
                        a class="lang" href={ "/lang/" (other.0) } lang=(other.0) { (other.1) }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// What a failed action tells the person, in their language.
pub fn error_text(viewer: &Viewer, error: &ServiceError) -> String {
    match error {
        ServiceError::InvalidCredentials => viewer
            .t(
                "ユーザー名、パスワード、または確認コードが違います。",
                "The user name, password or code is wrong.",
            )
            .to_string(),
        ServiceError::InvalidSecondFactor => viewer
            .t(
                "確認コードが違うか、すでに使われています。新しいコードを入力してください。",
                "The code is wrong or was already used; enter a new one.",
            )
            .to_string(),
        ServiceError::Internal(_) => viewer
            .t(
                "サーバーで処理できませんでした (記録済み)。",
                "The server could not complete this (the error was logged).",
            )
            .to_string(),
        other => other.to_string(),
    }
}

/// An error as a page, with the status the API would answer.
pub fn error_page(
    viewer: &Viewer,
    session: Option<&WebSession>,
    error: &ServiceError,
) -> HttpResponse {
    let status = actix_web::ResponseError::status_code(error);
    let body = html! {
        p class="error" role="alert" { (error_text(viewer, error)) }
        p { a href="/" { (viewer.t("ダッシュボードへ戻る", "Back to the dashboard")) } }
    };
    html(
        status,
        page(viewer, session, viewer.t("エラー", "Error"), body),
    )
}
