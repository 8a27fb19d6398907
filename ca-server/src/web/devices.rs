//! Device enrollers' bulk import in the browser: a CSV of device ids; for each one the browser
//! makes the key and the CSR (the keys never reach the server), asks for the certificate through
//! the same submission service as the API, shows progress (done, failed, skipped, rate, time
//! left), and offers the result report and the keys with their certificates as downloads.
//! Re-runs skip devices that already have a valid certificate, as `ca-cli device import` does.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use serde::{Deserialize, Serialize};

use super::layout::{error_text, html, page};
use super::session::signed_in;
use crate::api::{CertificateListQuery, SubmitRequest};
use crate::error::ServiceError;

/// The ambulance terminals' profile, whose CSRs the page builds.
const PROFILE: &str = "ambulance-terminal";

/// `GET /devices`.
pub async fn form(request: HttpRequest) -> HttpResponse {
    let s = match signed_in(&request).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let v = &s.viewer;
    let body = html! {
        p { (v.t("1 行に 1 台の端末 ID を書いた CSV (見出し行 id は任意)。鍵と CSR はこのブラウザで作られ、鍵はサーバーに送られません。有効な証明書がある端末は飛ばします。", "A CSV with one device id per row (an \"id\" header is optional). Keys and CSRs are made in this browser; keys never reach the server. Devices that already have a valid certificate are skipped.")) }
        section id="import" class="card"
            data-csrf=(s.csrf())
            data-profile=(PROFILE)
            data-bad-id=(v.t("端末 ID は英小文字・数字・ハイフン (1-40 文字) です", "a device id is 1-40 lower-case letters, digits or hyphens"))
            data-repeated=(v.t("CSV の中で重複しています", "repeated in the CSV"))
            data-done=(v.t("完了しました。", "Finished."))
            data-issued=(v.t("発行", "issued"))
            data-skipped=(v.t("スキップ", "skipped"))
            data-failed=(v.t("失敗", "failed"))
            data-left=(v.t("秒 残り", "s left")) {
            label for="csv" { (v.t("CSV ファイル", "CSV file")) }
            input id="csv" type="file" accept=".csv,text/csv";
            label { input id="reissue" type="checkbox"; " " (v.t("有効な証明書があっても再発行する", "Re-issue even when a valid certificate exists")) }
            button type="button" id="import-button" { (v.t("取り込む", "Import")) }
            progress id="import-progress" value="0" max="1" {}
            p id="import-status" role="status" aria-live="polite" {}
            p class="buttons" {
                a id="import-report" class="button" hidden download="mamori-import-report.csv" { (v.t("結果 (CSV)", "Report (CSV)")) }
                a id="import-keys" class="button" hidden download="mamori-device-keys.pem" { (v.t("鍵と証明書 (PEM)", "Keys and certificates (PEM)")) }
            }
        }
        noscript { p class="error" { (v.t("この画面には JavaScript が必要です (鍵をブラウザで作るため)。ca-cli device import も使えます。", "This page needs JavaScript (the keys are made in the browser); ca-cli device import works too.")) } }
        script src="/static/keys.js" defer {}
    };
    html(
        StatusCode::OK,
        page(v, Some(&s), v.t("端末の一括登録", "Import devices"), body),
    )
}

/// One device as the page sends it.
#[derive(Deserialize)]
pub struct DeviceRequest {
    id: String,
    csr: String,
    #[serde(default)]
    reissue: bool,
}

/// What happened to one device.
#[derive(Serialize)]
pub struct DeviceResult {
    /// issued, skipped or failed.
    status: &'static str,
    /// The new certificate's serial.
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<String>,
    /// Its certificate with the chain (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    chain: Option<String>,
    /// Valid certificates it already had (`<ca>/<serial>`).
    duplicates: Vec<String>,
    /// Why it failed, in the viewer's language where we have it.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn valid_id(id: &str) -> bool {
    (1..=40).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `POST /devices/request`: one device (JSON, with the session's CSRF token in `X-CSRF-Token`).
pub async fn submit(request: HttpRequest, body: web::Json<DeviceRequest>) -> HttpResponse {
    let s = match signed_in(&request).await {
        Ok(s) => s,
        Err(_) => return HttpResponse::Unauthorized().finish(),
    };
    let token = request
        .headers()
        .get("x-csrf-token")
        .and_then(|t| t.to_str().ok())
        .unwrap_or("");
    if let Err(e) = s.check_form(&request, token) {
        return answer(StatusCode::FORBIDDEN, failed(error_text(&s.viewer, &e)));
    }
    let device = body.into_inner();
    if !valid_id(&device.id) {
        let e = ServiceError::Invalid(format!("device id {:?}", device.id));
        return answer(StatusCode::BAD_REQUEST, failed(error_text(&s.viewer, &e)));
    }
    if !device.reissue {
        let subject = format!("CN=amb-{}", device.id);
        let query = CertificateListQuery {
            profile: Some(PROFILE.into()),
            status: Some("valid".into()),
            subject: Some(format!("amb-{}", device.id)),
            limit: Some(1000),
            ..Default::default()
        };
        match s.run(move |a, c| a.list_certificates(c, &query)).await {
            Ok(found) => {
                let existing: Vec<String> = found
                    .items
                    .iter()
                    .filter(|c| c.subject == subject)
                    .map(|c| format!("{}/{}", c.ca, c.serial))
                    .collect();
                if !existing.is_empty() {
                    return answer(
                        StatusCode::OK,
                        DeviceResult {
                            status: "skipped",
                            serial: None,
                            chain: None,
                            duplicates: existing,
                            error: None,
                        },
                    );
                }
            }
            Err(e) => {
                let status = actix_web::ResponseError::status_code(&e);
                return answer(status, failed(error_text(&s.viewer, &e)));
            }
        }
    }
    let submission = SubmitRequest {
        profile: PROFILE.into(),
        csr: device.csr,
        justification: format!("device import (console): {}", device.id),
        work_order: None,
        not_before: None,
        not_after: None,
    };
    let authority = s.authority.clone();
    let submitted = match s.run(move |a, c| a.submit(c, submission)).await {
        Ok(submitted) => submitted.finish(authority).await,
        Err(e) => Err(e),
    };
    match submitted {
        Ok(view) => {
            let chain = match (&view.ca, &view.serial) {
                (Some(ca), Some(serial)) => {
                    let (ca, serial) = (ca.clone(), serial.clone());
                    let chain_of = s.authority.chain_pem(&ca);
                    match crate::store::ids::Serial::parse(&serial) {
                        Ok(parsed) => s
                            .run(move |a, c| a.get_certificate(c, &ca, &parsed))
                            .await
                            .ok()
                            .map(|(_, der)| {
                                ca_core::ca::pem(&der) + chain_of.as_deref().unwrap_or("")
                            }),
                        Err(_) => None,
                    }
                }
                _ => None,
            };
            answer(
                StatusCode::OK,
                DeviceResult {
                    status: if view.status == "issued" {
                        "issued"
                    } else {
                        "failed"
                    },
                    serial: view.serial,
                    chain,
                    duplicates: view.duplicates,
                    error: view.failure,
                },
            )
        }
        Err(e) => {
            let status = actix_web::ResponseError::status_code(&e);
            answer(status, failed(error_text(&s.viewer, &e)))
        }
    }
}

fn failed(error: String) -> DeviceResult {
    DeviceResult {
        status: "failed",
        serial: None,
        chain: None,
        duplicates: Vec::new(),
        error: Some(error),
    }
}

fn answer(status: StatusCode, result: DeviceResult) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(result)
}
