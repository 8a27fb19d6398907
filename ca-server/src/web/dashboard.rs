//! The dashboard: what is waiting for me, what expires within 30 days, what was revoked last,
//! and whether the CRLs are fresh.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use maud::html;

use super::layout::{html, page};
use super::session::signed_in;
use crate::api::{CertificateListQuery, RequestListQuery};
use ca_core::role::Role;

/// `GET /`.
pub async fn dashboard(request: HttpRequest) -> HttpResponse {
    let s = match signed_in(&request).await {
        Ok(s) => s,
        Err(to) => return to,
    };
    let me = s.caller.username.clone();
    let approver = s.caller.has_any(&[Role::SecurityOfficer, Role::Admin]);
    let pending = s
        .run(move |a, c| {
            a.list_requests(
                c,
                &RequestListQuery {
                    status: Some("pending".into()),
                    limit: Some(100),
                    ..Default::default()
                },
            )
        })
        .await;
    let expiring = s
        .run(|a, c| {
            a.list_certificates(
                c,
                &CertificateListQuery {
                    status: Some("valid".into()),
                    expiring_within_days: Some(30),
                    limit: Some(10),
                    ..Default::default()
                },
            )
        })
        .await;
    let revoked = s
        .run(|a, c| {
            a.list_certificates(
                c,
                &CertificateListQuery {
                    status: Some("revoked".into()),
                    limit: Some(100),
                    ..Default::default()
                },
            )
        })
        .await
        .map(|mut p| {
            p.items.sort_by(|a, b| b.revoked_at.cmp(&a.revoked_at));
            p.items.truncate(5);
            p
        });
    let responders = s
        .run(|a, c| {
            a.list_certificates(
                c,
                &CertificateListQuery {
                    profile: Some("ocsp-responder".into()),
                    status: Some("valid".into()),
                    limit: Some(10),
                    ..Default::default()
                },
            )
        })
        .await;
    // (CA, its CRL's number, thisUpdate and nextUpdate if published).
    type CrlState = (&'static str, Option<(i64, i64, i64)>);
    let crls: Vec<CrlState> = ["root", "issuing"]
        .into_iter()
        .map(|id| {
            let found = s
                .authority
                .crls
                .crl(id)
                .ok()
                .map(|c| (c.number, c.this_update, c.next_update));
            (id, found)
        })
        .collect();
    let now = s.authority.accounts.now().as_secs() as i64;
    let v = &s.viewer;
    let body = html! {
        section aria-labelledby="mine" {
            h2 id="mine" { (v.t("あなたの承認待ち", "Waiting for your approval")) }
            @match &pending {
                Ok(p) => {
                    @let mine: Vec<_> = p.items.iter().filter(|r| approver && r.requester != me).cloned().collect();
                    (super::requests::listing(&s, &mine))
                }
                Err(e) => p class="error" { (super::layout::error_text(v, e)) }
            }
        }
        section aria-labelledby="expiring" {
            h2 id="expiring" { (v.t("30 日以内に期限切れ", "Expiring within 30 days")) }
            @match &expiring {
                Ok(p) => {
                    p { (p.total) (v.t(" 件", " in all")) " — " a href="/certificates?status=valid&expiring_within_days=30" { (v.t("すべて表示", "show all")) } }
                    (super::certificates::listing(&s, &p.items))
                }
                Err(e) => p class="error" { (super::layout::error_text(v, e)) }
            }
        }
        section aria-labelledby="revoked" {
            h2 id="revoked" { (v.t("最近の失効", "Recent revocations")) }
            @match &revoked {
                Ok(p) => (super::certificates::listing(&s, &p.items)),
                Err(e) => p class="error" { (super::layout::error_text(v, e)) }
            }
        }
        section aria-labelledby="health" {
            h2 id="health" { (v.t("CRL と OCSP", "CRLs and OCSP")) }
            table {
                thead { tr {
                    th scope="col" { "CRL" }
                    th scope="col" { (v.t("番号", "Number")) }
                    th scope="col" { (v.t("発行", "Published")) }
                    th scope="col" { (v.t("次回更新", "Next update")) }
                    th scope="col" { (v.t("状態", "State")) }
                } }
                tbody { @for (id, crl) in &crls {
                    tr {
                        td { (id) }
                        @if let Some((number, this, next)) = crl {
                            td { (number) }
                            td { (v.unix(*this)) }
                            td { (v.unix(*next)) }
                            td { @if *next > now { (v.t("正常", "fresh")) } @else { strong class="bad" { (v.t("期限切れ", "stale")) } } }
                        } @else {
                            td colspan="4" { strong class="bad" { (v.t("未発行", "not published")) } }
                        }
                    }
                } }
            }
            p { (v.t("OCSP 応答は CRL と同じ失効情報から事前署名されています。応答者の証明書は期限の前に自動で更新されます。", "OCSP responses are pre-signed from the same revocation data as the CRLs. Responder certificates are renewed automatically before they expire.")) }
            @if let Ok(p) = &responders {
                table {
                    thead { tr {
                        th scope="col" { (v.t("OCSP 応答者の証明書", "OCSP responder certificate")) }
                        th scope="col" { (v.t("有効期限", "Expires")) }
                    } }
                    tbody { @for c in &p.items {
                        tr { td { (c.subject) } td { (v.time(&c.not_after)) } }
                    } }
                }
            }
        }
    };
    html(
        StatusCode::OK,
        page(v, Some(&s), v.t("ダッシュボード", "Dashboard"), body),
    )
}
