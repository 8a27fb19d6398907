//! The web console on the API listener (HTTPS) at `/`: server-rendered pages (maud) for officers,
//! requesters, enrollers and auditors, in Japanese and English. Every page calls the same RA and
//! accounts services as the API, as the signed-in user, so there is no second permission model;
//! what differs is the transport: a `SameSite=Strict` session cookie and a CSRF token per form
//! instead of a bearer token, and a Content-Security-Policy that allows nothing inline.

pub mod audit;
pub mod break_glass;
pub mod certificates;
pub mod dashboard;
pub mod devices;
pub mod enrol;
pub mod form;
pub mod layout;
pub mod login;
pub mod requests;
pub mod session;
pub mod users;
pub mod viewer;

use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// The console's own script and style sheet, compiled in (no third-party code, nothing fetched
/// from elsewhere).
const APP_CSS: &str = include_str!("static/app.css");
const APP_JS: &str = include_str!("static/app.js");
const KEYS_JS: &str = include_str!("static/keys.js");

fn asset(kind: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, kind))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

/// Registers the console's routes (beside `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(dashboard::dashboard))
        .route("/login", web::get().to(login::login_form))
        .route("/login", web::post().to(login::login))
        .route("/logout", web::post().to(login::logout))
        .route("/password", web::get().to(login::password_form))
        .route("/password", web::post().to(login::change_password))
        .route("/lang/{lang}", web::get().to(login::switch_language))
        .route("/enrol", web::get().to(enrol::form))
        .route("/enrol", web::post().to(enrol::enrol))
        .route("/requests", web::get().to(requests::list))
        .route("/requests/new", web::get().to(requests::new_form))
        .route("/requests/new", web::post().to(requests::submit))
        .route("/requests/{id}", web::get().to(requests::show))
        .route("/requests/{id}/decide", web::post().to(requests::decide))
        .route("/certificates", web::get().to(certificates::list))
        .route(
            "/certificates/{ca}/{serial}",
            web::get().to(certificates::show),
        )
        .route(
            "/certificates/{ca}/{serial}/download",
            web::get().to(certificates::download),
        )
        .route(
            "/certificates/{ca}/{serial}/status",
            web::post().to(certificates::change_status),
        )
        .route("/devices", web::get().to(devices::form))
        .route("/devices/request", web::post().to(devices::submit))
        .route("/users", web::get().to(users::list))
        .route("/users", web::post().to(users::add))
        .route("/users/changes/{id}", web::post().to(users::decide))
        .route("/users/{name}/action", web::post().to(users::act))
        .route("/break-glass", web::get().to(break_glass::list))
        .route(
            "/break-glass/{id}/review",
            web::post().to(break_glass::review),
        )
        .route("/audit", web::get().to(audit::list))
        .route("/audit/export", web::get().to(audit::export))
        .route(
            "/static/app.css",
            web::get().to(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/static/app.js",
            web::get().to(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/static/keys.js",
            web::get().to(|| async { asset("text/javascript; charset=utf-8", KEYS_JS) }),
        );
}
