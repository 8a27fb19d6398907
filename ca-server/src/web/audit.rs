//! The audit trail for auditors and admins: filters (action, actor, target, time), whether the
//! hash chain verifies, and an export of what the filters select as JSON lines.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use serde::Deserialize;

use super::layout::{error_page, error_text, html, page};
use super::session::signed_in;
use crate::api::AuditListQuery;

/// The audit page's filters (`datetime-local` times, in the viewer's zone).
#[derive(Deserialize, Default)]
pub struct Filter {
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

fn query(
    filter: &Filter,
    tz: &jiff::tz::TimeZone,
) -> Result<AuditListQuery, crate::error::ServiceError> {
    let text = |v: &Option<String>| v.clone().filter(|t| !t.trim().is_empty());
    let time = |v: &Option<String>| -> Result<Option<String>, crate::error::ServiceError> {
        match text(v) {
            None => Ok(None),
            Some(t) => super::requests::local_to_rfc3339(&t, tz),
        }
    };
    Ok(AuditListQuery {
        action: text(&filter.action),
        actor: text(&filter.actor),
        target: text(&filter.target),
        since: time(&filter.since)?,
        until: time(&filter.until)?,
        limit: Some(100),
        cursor: filter.cursor.clone(),
        ..Default::default()
    })
}

/// `GET /audit`.
pub async fn list(request: HttpRequest, filter: web::Query<Filter>) -> HttpResponse {
    let s = match signed_in(&request).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let filter = filter.into_inner();
    let q = match query(&filter, &s.viewer.tz) {
        Ok(q) => q,
        Err(e) => return error_page(&s.viewer, Some(&s), &e),
    };
    let entries = s.run(move |a, c| a.audit(c, &q)).await;
    let verified = s.run(|a, c| a.audit_verify(c)).await;
    let v = &s.viewer;
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let body = html! {
        @match &verified {
            Ok(check) if check.ok => p class="ok" role="status" {
                (v.t("ハッシュチェーンは正常です: ", "The hash chain verifies: ")) (check.entries) (v.t(" 件、チェックポイント ", " entries, checkpoints ")) (check.checkpoints)
            },
            Ok(check) => p class="error" role="alert" {
                (v.t("ハッシュチェーンが壊れています: ", "The hash chain is broken: ")) (check.reason.clone().unwrap_or_default())
                @if let Some(at) = check.broken_at { " (#" (at) ")" }
            },
            Err(e) => p class="error" role="alert" { (error_text(v, e)) },
        }
        form method="get" action="/audit" class="card search" role="search" {
            label for="action" { (v.t("操作", "Action")) }
            input id="action" name="action" value=(text(&filter.action)) placeholder="certificate.revoke";
            label for="actor" { (v.t("実行者", "Actor")) }
            input id="actor" name="actor" value=(text(&filter.actor));
            label for="target" { (v.t("対象", "Target")) }
            input id="target" name="target" value=(text(&filter.target));
            label for="since" { (v.t("開始", "From")) }
            input id="since" name="since" type="datetime-local" value=(text(&filter.since));
            label for="until" { (v.t("終了", "Until")) }
            input id="until" name="until" type="datetime-local" value=(text(&filter.until));
            button type="submit" { (v.t("絞り込む", "Filter")) }
        }
        p { a href={ "/audit/export?" (request.query_string()) } download { (v.t("この条件で書き出す (JSON Lines)", "Export these (JSON Lines)")) } }
        @match &entries {
            Ok(p) => {
                p { (p.total) (v.t(" 件", " in all")) }
                table {
                    thead { tr {
                        th scope="col" { "#" }
                        th scope="col" { (v.t("日時", "When")) }
                        th scope="col" { (v.t("実行者", "Actor")) }
                        th scope="col" { (v.t("操作", "Action")) }
                        th scope="col" { (v.t("対象", "Target")) }
                        th scope="col" { (v.t("詳細", "Details")) }
                    } }
                    tbody { @for e in &p.items {
                        tr {
                            td { (e.seq) }
                            td { (v.time(&e.at)) }
                            td { (e.actor) }
                            td { (e.action) }
                            td class="mono" { (e.target) }
                            td class="mono small" { (e.details.to_string()) }
                        }
                    } }
                }
                @if let Some(next) = &p.next {
                    p { a href={ "/audit?" (request.query_string().split('&').filter(|x| !x.starts_with("cursor=")).collect::<Vec<_>>().join("&")) "&cursor=" (crate::api::url_escape(next)) } { (v.t("次のページ", "Next page")) } }
                }
            }
            Err(e) => p class="error" role="alert" { (error_text(v, e)) },
        }
    };
    let status = match &entries {
        Ok(_) => StatusCode::OK,
        Err(e) => actix_web::ResponseError::status_code(e),
    };
    html(
        status,
        page(v, Some(&s), v.t("監査ログ", "Audit trail"), body),
    )
}

/// `GET /audit/export`: every entry the filters select, oldest first, one JSON object per line.
pub async fn export(request: HttpRequest, filter: web::Query<Filter>) -> HttpResponse {
    let s = match signed_in(&request).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let mut q = match query(&filter, &s.viewer.tz) {
        Ok(q) => q,
        Err(e) => return error_page(&s.viewer, Some(&s), &e),
    };
    q.order = Some("asc".into());
    q.limit = Some(1000);
    q.cursor = None;
    let lines = s
        .run(move |a, c| {
            let mut out = String::new();
            loop {
                let page = a.audit(c, &q)?;
                for entry in &page.items {
                    out.push_str(&serde_json::to_string(entry).unwrap_or_default());
                    out.push('\n');
                }
                match page.next {
                    Some(next) => q.cursor = Some(next),
                    None => return Ok(out),
                }
            }
        })
        .await;
    match lines {
        Ok(body) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/jsonl"))
            .insert_header((
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"mamori-audit.jsonl\"",
            ))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(e) => error_page(&s.viewer, Some(&s), &e),
    }
}
