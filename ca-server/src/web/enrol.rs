//! Enrolment in the browser, for people who will never type `ca-cli`: the new (or reset) user
//! types both halves of the one-time code and a new password, and is shown the TOTP QR code
//! once. The API's own enrolment, behind the same per-address limit as sign-in.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use maud::{html, PreEscaped};
use serde::Deserialize;

use super::layout::{error_text, html, page};
use super::session::{
    blocking, fresh_form_token, signed_out_form_ok, strict_cookie, State, LOGIN_COOKIE,
};
use super::viewer::Viewer;
use crate::api::EnrolRequest;
use crate::error::ServiceError;

/// The enrolment form.
#[derive(Deserialize)]
pub struct EnrolForm {
    username: String,
    first: String,
    second: String,
    new_password: String,
    repeat: String,
    csrf: String,
}

fn enrol_page(viewer: &Viewer, message: Option<&str>, status: StatusCode) -> HttpResponse {
    let csrf = fresh_form_token();
    let v = viewer;
    let body = html! {
        p { (v.t("管理者と承認者から受け取った登録コードの半分を、それぞれ入力してください。", "Type the two halves of your enrolment code, from the admin who asked and from the approver.")) }
        @if let Some(m) = message {
            p class="error" role="alert" { (m) }
        }
        form method="post" action="/enrol" class="card narrow" {
            input type="hidden" name="csrf" value=(csrf);
            label for="username" { (v.t("ユーザー名", "User name")) }
            input id="username" name="username" autocomplete="username" required;
            label for="first" { (v.t("前半 (依頼した管理者から)", "First half (from the admin who asked)")) }
            input id="first" name="first" autocomplete="off" required;
            label for="second" { (v.t("後半 (承認者から)", "Second half (from the approver)")) }
            input id="second" name="second" autocomplete="off" required;
            label for="new" { (v.t("新しいパスワード (12 文字以上)", "New password (12 characters or more)")) }
            input id="new" name="new_password" type="password" autocomplete="new-password" minlength="12" aria-describedby="new-hint";
            p id="new-hint" class="hint" { (v.t("ディレクトリ (AD / LDAP) のアカウントは空のままにします。", "Leave it empty for a directory (AD / LDAP) account.")) }
            label for="repeat" { (v.t("もう一度", "Repeat it")) }
            input id="repeat" name="repeat" type="password" autocomplete="new-password" minlength="12";
            button type="submit" { (v.t("登録する", "Enrol")) }
        }
    };
    let mut response = html(
        status,
        page(v, None, v.t("アカウントの登録", "Enrol your account"), body),
    );
    let _ = response.add_cookie(&strict_cookie(LOGIN_COOKIE, csrf));
    response
}

/// `GET /enrol`.
pub async fn form(request: HttpRequest) -> HttpResponse {
    enrol_page(&Viewer::of(&request), None, StatusCode::OK)
}

/// The otpauth URI as a QR code (SVG, shown as an image: no inline markup from elsewhere).
fn qr_image(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(240, 240)
        .build();
    Some(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

/// `POST /enrol`: sets the password and shows the new TOTP secret once.
pub async fn enrol(request: HttpRequest, form: web::Form<EnrolForm>) -> HttpResponse {
    let viewer = Viewer::of(&request);
    let form = form.into_inner();
    if !signed_out_form_ok(&request, &form.csrf) {
        let text = viewer.t(
            "フォームの有効期限が切れました。もう一度入力してください。",
            "The form expired; please enter your details again.",
        );
        return enrol_page(&viewer, Some(text), StatusCode::FORBIDDEN);
    }
    if form.new_password != form.repeat {
        let text = viewer.t(
            "新しいパスワードが一致しません。",
            "The new passwords differ.",
        );
        return enrol_page(&viewer, Some(text), StatusCode::BAD_REQUEST);
    }
    let Some(state) = request.app_data::<State>().cloned() else {
        let e = ServiceError::Internal("no state".into());
        return enrol_page(
            &viewer,
            Some(&error_text(&viewer, &e)),
            StatusCode::INTERNAL_SERVER_ERROR,
        );
    };
    let authority = state.get_ref().clone();
    if let Some(peer) = request.peer_addr() {
        if let Err(e) = authority.accounts.count_attempt(peer.ip()) {
            let status = actix_web::ResponseError::status_code(&e);
            return enrol_page(&viewer, Some(&error_text(&viewer, &e)), status);
        }
    }
    let enrolment = EnrolRequest {
        username: form.username,
        code: format!("{}-{}", form.first.trim(), form.second.trim()),
        new_password: form.new_password,
    };
    match blocking(move || authority.accounts.enrol(&enrolment)).await {
        Ok(done) => {
            let v = &viewer;
            let image = qr_image(&done.totp_uri);
            let body = html! {
                p class="ok" role="status" { (v.t("登録しました。認証アプリでこの QR コードを読み取ってください。一度だけ表示されます。", "You are enrolled. Scan this QR code with your authenticator app; it is shown only once.")) }
                @if let Some(src) = image {
                    img src=(PreEscaped(src)) alt=(v.t("TOTP 登録用 QR コード", "TOTP enrolment QR code")) width="240" height="240";
                }
                p { (v.t("読み取れない場合はこの URI を入力してください: ", "If it cannot be scanned, enter this URI: ")) code class="mono" id="totp-uri" { (done.totp_uri) } }
                p { a href="/login" { (v.t("サインインへ", "Go to sign-in")) } }
            };
            html(
                StatusCode::OK,
                page(v, None, v.t("登録が完了しました", "Enrolled"), body),
            )
        }
        Err(e) => {
            let status = actix_web::ResponseError::status_code(&e);
            enrol_page(&viewer, Some(&error_text(&viewer, &e)), status)
        }
    }
}
