//! Accounts for admins (auditors read): every user with roles and locks, the account changes
//! waiting for a second person, and the forms that ask for one (add, roles, reset, enable) or
//! act at once (disable, unlock) — the API's own four-eyes services, each with a fresh code.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::form::signed_in_form;
use super::layout::{error_page, error_text, html, page};
use super::session::{signed_in, DecisionForm, WebSession};
use crate::accounts::changes::ChangeKind;
use crate::api::{
    AccountChangeQuery, AccountChangeView, CreateUserRequest, SetRolesRequest, StepUpRequest,
};
use crate::error::ServiceError;

/// Roles an admin can give, with their names in both languages.
const ROLES: [(&str, &str, &str); 6] = [
    ("admin", "管理者", "admin"),
    ("security-officer", "セキュリティ責任者", "security officer"),
    ("auditor", "監査者", "auditor"),
    ("vendor", "保守業者", "vendor"),
    ("device-enroller", "端末登録者", "device enroller"),
    ("staff-requester", "職員証明書の申請者", "staff requester"),
];

fn totp_and_comment(s: &WebSession, id: &str) -> Markup {
    let v = &s.viewer;
    html! {
        input type="hidden" name="csrf" value=(s.csrf());
        label for={ (id) "-totp" } { (v.t("確認コード (新しいもの)", "A fresh code")) }
        input id={ (id) "-totp" } name="totp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required;
        label for={ (id) "-comment" } { (v.t("コメント", "Comment")) }
        input id={ (id) "-comment" } name="comment" maxlength="500";
    }
}

fn change_list(s: &WebSession, changes: &[AccountChangeView]) -> Markup {
    let v = &s.viewer;
    html! {
        @if changes.is_empty() {
            p class="empty" { (v.t("ありません。", "None.")) }
        }
        @for c in changes {
            div class="card" {
                p { strong { (c.kind) " " (c.target) } @if c.directory { " (" (v.t("ディレクトリ", "directory")) ")" } " — " (v.t("依頼者 ", "asked by ")) (c.requester) ", " (v.time(&c.created_at))
                    @if !c.roles.is_empty() { br; (v.t("ロール: ", "Roles: ")) (c.roles.join(", ")) @if !c.current_roles.is_empty() { " (" (v.t("現在 ", "now ")) (c.current_roles.join(", ")) ")" } }
                    @if !c.comment.is_empty() { br; (c.comment) } }
                @if c.requester != s.caller.username {
                    form method="post" action={ "/users/changes/" (c.id) } {
                        (totp_and_comment(s, &c.id))
                        div class="buttons" {
                            button type="submit" name="verdict" value="approve" { (v.t("承認する", "Approve")) }
                            button type="submit" name="verdict" value="reject" class="danger" { (v.t("却下する", "Reject")) }
                        }
                    }
                } @else {
                    p class="empty" { (v.t("別の管理者またはセキュリティ責任者の承認待ちです。", "Waiting for another admin or security officer.")) }
                }
            }
        }
    }
}

async fn users_page(s: &WebSession, notice: Option<Markup>, status: StatusCode) -> HttpResponse {
    {
        let v = &s.viewer;
        let users = s.run(|a, c| a.accounts.list_users(c)).await;
        let changes = s
            .run(|a, c| {
                a.accounts.list_account_changes(
                    c,
                    &AccountChangeQuery {
                        status: Some("pending".into()),
                    },
                )
            })
            .await;
        let users = users.map_err(|e| error_text(v, &e));
        let body = html! {
            @if let Some(n) = notice { (n) }
            h2 { (v.t("承認待ちのアカウント変更", "Account changes waiting for approval")) }
            @match &changes {
                Ok(list) => (change_list(s, list)),
                Err(e) => p class="error" { (error_text(v, e)) },
            }
            h2 { (v.t("ユーザー", "Users")) }
            @match &users { Err(e) => p class="error" { (e) }, Ok(users) => {
            table {
                thead { tr {
                    th scope="col" { (v.t("ユーザー名", "User")) }
                    th scope="col" { (v.t("ロール", "Roles")) }
                    th scope="col" { (v.t("状態", "State")) }
                    th scope="col" { (v.t("操作", "Actions")) }
                } }
                tbody { @for u in users.iter() {
                    tr {
                        td { (u.username) @if let Some(o) = &u.organization { br; small { (o) } } }
                        td { (u.roles.join(", ")) }
                        td {
                            @if u.disabled { strong class="bad" { (v.t("無効", "disabled")) } br; }
                            @if u.enrolment_pending { (v.t("登録待ち", "enrolment pending")) br; }
                            @if u.step_up_locked { strong class="bad" { (v.t("確認コードのロック", "step-up locked")) } br; }
                            @if let Some(until) = &u.locked_until { strong class="bad" { (v.t("サインインのロック: ", "sign-in locked until ")) (v.time(until)) } br; }
                            @if !u.disabled && !u.step_up_locked && u.locked_until.is_none() && !u.enrolment_pending { (v.t("有効", "active")) }
                        }
                        td {
                            details {
                                summary { (v.t("変更", "Change")) }
                                form method="post" action={ "/users/" (u.username) "/action" } class="card" {
                                    (totp_and_comment(s, &format!("u-{}", u.username)))
                                    fieldset {
                                        legend { (v.t("ロール (承認が必要)", "Roles (needs approval)")) }
                                        @for (name, ja, en) in ROLES {
                                            label { input type="checkbox" name="roles" value=(name) checked[u.roles.iter().any(|r| r == name)]; " " (v.t(ja, en)) }
                                        }
                                    }
                                    div class="buttons" {
                                        button type="submit" name="action" value="roles" { (v.t("ロールを変更", "Change roles")) }
                                        button type="submit" name="action" value="reset" { (v.t("パスワードと TOTP をリセット", "Reset password and TOTP")) }
                                        @if u.disabled {
                                            button type="submit" name="action" value="enable" { (v.t("有効にする", "Enable")) }
                                        } @else {
                                            button type="submit" name="action" value="disable" class="danger" { (v.t("無効にする", "Disable")) }
                                        }
                                        @if u.step_up_locked {
                                            button type="submit" name="action" value="unlock" { (v.t("ロック解除", "Unlock")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
            } }
            h2 { (v.t("ユーザーの追加 (承認が必要)", "Add a user (needs approval)")) }
            form method="post" action="/users" class="card" {
                label for="new-username" { (v.t("ユーザー名", "User name")) }
                input id="new-username" name="username" required pattern="[a-z0-9._@-]{3,64}";
                fieldset {
                    legend { (v.t("ロール", "Roles")) }
                    @for (name, ja, en) in ROLES {
                        label { input type="checkbox" name="roles" value=(name); " " (v.t(ja, en)) }
                    }
                }
                label for="new-org" { (v.t("会社名 (保守業者)", "Company (vendors)")) }
                input id="new-org" name="organization";
                label for="new-domain" { (v.t("メールのドメイン (保守業者)", "E-mail domain (vendors)")) }
                input id="new-domain" name="email_domain";
                label { input type="checkbox" name="directory"; " " (v.t("ディレクトリ (AD / LDAP) のパスワードでサインイン", "Signs in with the directory (AD / LDAP) password")) }
                (totp_and_comment(s, "new"))
                button type="submit" { (v.t("追加を依頼する", "Ask to add")) }
            }
        };
        html(status, page(v, Some(s), v.t("ユーザー", "Users"), body))
    }
}

/// `GET /users`.
pub async fn list(request: HttpRequest) -> HttpResponse {
    match signed_in(&request).await {
        Ok(s) => users_page(&s, None, StatusCode::OK).await,
        Err(to) => to,
    }
}

/// What a change answered: its status and, once, this person's half of an enrolment code.
fn change_notice(s: &WebSession, change: &AccountChangeView) -> Markup {
    let v = &s.viewer;
    html! {
        p class="ok" role="status" { (change.kind) " " (change.target) ": " (change.status) }
        @if let Some(part) = &change.enrolment_code_part {
            p class="notice" role="status" {
                (v.t("登録コードのあなたの半分 (一度だけ表示、本人に直接渡してください): ", "Your half of the enrolment code (shown once; hand it over in person): "))
                strong class="mono" id="code-half" { (part) }
            }
        }
    }
}

async fn answered(s: &WebSession, result: Result<AccountChangeView, ServiceError>) -> HttpResponse {
    match result {
        Ok(change) => users_page(s, Some(change_notice(s, &change)), StatusCode::OK).await,
        Err(e) => {
            let status = actix_web::ResponseError::status_code(&e);
            let notice = html! { p class="error" role="alert" { (error_text(&s.viewer, &e)) } };
            users_page(s, Some(notice), status).await
        }
    }
}

/// A form's fields, with `roles` repeated once per checked box.
fn fields(body: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field(all: &[(String, String)], name: &str) -> String {
    all.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn roles_of(all: &[(String, String)]) -> Vec<String> {
    all.iter()
        .filter(|(k, _)| k == "roles")
        .map(|(_, v)| v.clone())
        .collect()
}

/// `POST /users`: asks for a new account (another person approves).
pub async fn add(request: HttpRequest, body: String) -> HttpResponse {
    let all = fields(&body);
    let s = match signed_in_form(&request, &field(&all, "csrf")).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let optional = |name: &str| Some(field(&all, name)).filter(|t| !t.trim().is_empty());
    let create = CreateUserRequest {
        username: field(&all, "username"),
        roles: roles_of(&all),
        organization: optional("organization"),
        email_domain: optional("email_domain"),
        directory: field(&all, "directory") == "on",
        totp: field(&all, "totp"),
        comment: field(&all, "comment"),
    };
    let result = s
        .run(move |a, c| a.accounts.request_create_user(c, create))
        .await;
    answered(&s, result).await
}

/// `POST /users/{name}/action`: roles, reset or enable (asked for), disable or unlock (at once).
pub async fn act(request: HttpRequest, name: web::Path<String>, body: String) -> HttpResponse {
    let all = fields(&body);
    let s = match signed_in_form(&request, &field(&all, "csrf")).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let name = name.into_inner();
    let step_up = StepUpRequest {
        totp: field(&all, "totp"),
        comment: field(&all, "comment"),
    };
    let result: Result<Option<AccountChangeView>, ServiceError> =
        match field(&all, "action").as_str() {
            "roles" => {
                let roles = SetRolesRequest {
                    roles: roles_of(&all),
                    totp: step_up.totp,
                    comment: step_up.comment,
                };
                s.run(move |a, c| a.accounts.request_set_roles(c, &name, roles))
                    .await
                    .map(Some)
            }
            "reset" => s
                .run(move |a, c| {
                    a.accounts
                        .request_reset_or_enable(c, &name, ChangeKind::Reset, &step_up)
                })
                .await
                .map(Some),
            "enable" => s
                .run(move |a, c| {
                    a.accounts
                        .request_reset_or_enable(c, &name, ChangeKind::Enable, &step_up)
                })
                .await
                .map(Some),
            "disable" => s
                .run(move |a, c| a.accounts.disable_user(c, &name, &step_up))
                .await
                .map(|_| None),
            "unlock" => s
                .run(move |a, c| a.accounts.unlock_user(c, &name, &step_up))
                .await
                .map(|_| None),
            _ => Err(ServiceError::Invalid(
                "action is roles, reset, enable, disable or unlock".into(),
            )),
        };
    match result {
        Ok(Some(change)) => answered(&s, Ok(change)).await,
        Ok(None) => {
            let done =
                html! { p class="ok" role="status" { (s.viewer.t("変更しました。", "Done.")) } };
            users_page(&s, Some(done), StatusCode::OK).await
        }
        Err(e) => answered(&s, Err(e)).await,
    }
}

/// `POST /users/changes/{id}`: the second person's decision (prints their half of a code).
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
    let verdict = match form.verdict() {
        Ok(v) => v,
        Err(e) => return error_page(&s.viewer, Some(&s), &e),
    };
    let body = StepUpRequest {
        totp: form.totp,
        comment: form.comment,
    };
    let id = id.into_inner();
    let result = s
        .run(move |a, c| a.accounts.decide_account_change(c, &id, verdict, &body))
        .await;
    answered(&s, result).await
}
