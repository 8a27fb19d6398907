//! Signing in (password + TOTP, through the API's own login: same lockout and rate limits),
//! signing out, the forced password change, and the language switch.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use serde::Deserialize;

use super::form::signed_in_form;
use super::layout::{error_text, html, page};
use super::session::{
    blocking, expired_cookie, fresh_form_token, redirect, signed_in, signed_out_form_ok,
    strict_cookie, State, LOGIN_COOKIE, SESSION_COOKIE,
};
use super::viewer::{Viewer, LANG_COOKIE};
use crate::api::{LoginRequest, PasswordChangeRequest};
use crate::error::ServiceError;

/// The sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    totp: String,
    csrf: String,
}

fn login_page(
    viewer: &Viewer,
    csrf: &str,
    message: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let body = html! {
        @if let Some(m) = message {
            p class="error" role="alert" { (m) }
        }
        form method="post" action="/login" class="card narrow" {
            input type="hidden" name="csrf" value=(csrf);
            label for="username" { (viewer.t("ユーザー名", "User name")) }
            input id="username" name="username" autocomplete="username" required autofocus;
            label for="password" { (viewer.t("パスワード", "Password")) }
            input id="password" name="password" type="password" autocomplete="current-password" required;
            label for="totp" { (viewer.t("確認コード (認証アプリの 6 桁)", "Code (6 digits from your authenticator app)")) }
            input id="totp" name="totp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required;
            button type="submit" { (viewer.t("サインイン", "Sign in")) }
        }
        p { a href="/enrol" { (viewer.t("登録コードを受け取った方はこちら (初回登録・リセット後)", "Got an enrolment code? Enrol here (new or reset accounts)")) } }
    };
    let mut response = html(
        status,
        page(viewer, None, viewer.t("サインイン", "Sign in"), body),
    );
    let _ = response.add_cookie(&strict_cookie(LOGIN_COOKIE, csrf.to_string()));
    response
}

/// `GET /login`.
pub async fn login_form(request: HttpRequest) -> HttpResponse {
    let viewer = Viewer::of(&request);
    login_page(&viewer, &fresh_form_token(), None, StatusCode::OK)
}

/// `POST /login`: the API's login; on success the token goes into the session cookie.
pub async fn login(request: HttpRequest, form: web::Form<LoginForm>) -> HttpResponse {
    let viewer = Viewer::of(&request);
    let form = form.into_inner();
    let fresh = fresh_form_token;
    if !signed_out_form_ok(&request, &form.csrf) {
        let text = viewer.t(
            "フォームの有効期限が切れました。もう一度入力してください。",
            "The form expired; please enter your details again.",
        );
        return login_page(&viewer, &fresh(), Some(text), StatusCode::FORBIDDEN);
    }
    let Some(state) = request.app_data::<State>().cloned() else {
        return super::layout::error_page(
            &viewer,
            None,
            &ServiceError::Internal("no state".into()),
        );
    };
    let authority = state.get_ref().clone();
    if let Some(peer) = request.peer_addr() {
        if let Err(e) = authority.accounts.count_attempt(peer.ip()) {
            let status = actix_web::ResponseError::status_code(&e);
            return login_page(&viewer, &fresh(), Some(&error_text(&viewer, &e)), status);
        }
    }
    let login = LoginRequest {
        username: form.username,
        password: form.password,
        totp: form.totp,
    };
    match blocking(move || authority.accounts.login(&login)).await {
        Ok(answer) => {
            let next = if answer.password_change_required {
                "/password"
            } else {
                "/"
            };
            let mut response = redirect(next);
            let _ = response.add_cookie(&strict_cookie(SESSION_COOKIE, answer.token));
            let _ = response.add_cookie(&expired_cookie(LOGIN_COOKIE));
            response
        }
        Err(e) => {
            let status = actix_web::ResponseError::status_code(&e);
            login_page(&viewer, &fresh(), Some(&error_text(&viewer, &e)), status)
        }
    }
}

/// A form that carries only its CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /logout`: ends the session on the server and in the browser.
pub async fn logout(request: HttpRequest, form: web::Form<CsrfForm>) -> HttpResponse {
    let session = match signed_in_form(&request, &form.csrf).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let token = session.token().to_string();
    let _ = session.run(move |a, c| a.accounts.logout(c, &token)).await;
    let mut response = redirect("/login");
    let _ = response.add_cookie(&expired_cookie(SESSION_COOKIE));
    response
}

/// The password change form.
#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
    repeat: String,
    csrf: String,
}

fn password_page(
    session: &super::session::WebSession,
    message: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let v = &session.viewer;
    let body = html! {
        @if session.caller.must_change_password {
            p class="notice" { (v.t("管理者が設定したパスワードです。続けるには変更してください。", "An admin set this password: change it to go on.")) }
        }
        @if let Some(m) = message {
            p class="error" role="alert" { (m) }
        }
        form method="post" action="/password" class="card narrow" {
            input type="hidden" name="csrf" value=(session.csrf());
            label for="current" { (v.t("現在のパスワード", "Current password")) }
            input id="current" name="current_password" type="password" autocomplete="current-password" required;
            label for="new" { (v.t("新しいパスワード (12 文字以上)", "New password (12 characters or more)")) }
            input id="new" name="new_password" type="password" autocomplete="new-password" minlength="12" required;
            label for="repeat" { (v.t("もう一度", "Repeat it")) }
            input id="repeat" name="repeat" type="password" autocomplete="new-password" minlength="12" required;
            button type="submit" { (v.t("変更する", "Change it")) }
        }
    };
    html(
        status,
        page(
            v,
            Some(session),
            v.t("パスワードの変更", "Change password"),
            body,
        ),
    )
}

/// `GET /password`.
pub async fn password_form(request: HttpRequest) -> HttpResponse {
    match signed_in(&request).await {
        Ok(session) => password_page(&session, None, StatusCode::OK),
        Err(to) => to,
    }
}

/// `POST /password`: the API's own password change.
pub async fn change_password(request: HttpRequest, form: web::Form<PasswordForm>) -> HttpResponse {
    let form = form.into_inner();
    let session = match signed_in_form(&request, &form.csrf).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    if form.new_password != form.repeat {
        let text = session.viewer.t(
            "新しいパスワードが一致しません。",
            "The new passwords differ.",
        );
        return password_page(&session, Some(text), StatusCode::BAD_REQUEST);
    }
    let change = PasswordChangeRequest {
        current_password: form.current_password,
        new_password: form.new_password,
    };
    match session
        .run(move |a, c| a.accounts.change_password(c, &change))
        .await
    {
        Ok(_) => redirect("/"),
        Err(e) => {
            let status = actix_web::ResponseError::status_code(&e);
            password_page(&session, Some(&error_text(&session.viewer, &e)), status)
        }
    }
}

/// `GET /lang/{ja|en}`: the language switch; back to where the person was.
pub async fn switch_language(request: HttpRequest, lang: web::Path<String>) -> HttpResponse {
    let lang = match lang.as_str() {
        "en" => "en",
        _ => "ja",
    };
    let mut response = redirect("/");
    let cookie = Cookie::build(LANG_COOKIE, lang)
        .path("/")
        .secure(true)
        .same_site(actix_web::cookie::SameSite::Strict)
        .finish();
    let _ = response.add_cookie(&cookie);
    let _ = request;
    response
}
