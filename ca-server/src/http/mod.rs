//! The two listeners: plain HTTP for relying parties (`public`), HTTPS for the JSON API (`api`),
//! with one error mapping (`problem`) and the route table the OpenAPI document is built from.

pub mod acme;
pub mod api;
pub mod body;
pub mod caller;
pub mod enroll;
mod openapi;
pub mod problem;
pub mod public;
pub mod scep;

use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Service;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use openssl::ssl::{SslAcceptor, SslAcceptorBuilder, SslMethod, SslVerifyMode};

use crate::ra::Authority;
pub use openapi::{openapi, Route, ROUTES};
use problem::problem;

fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _| {
            use actix_web::error::JsonPayloadError;
            let (status, slug, title) = match &err {
                JsonPayloadError::ContentType => (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Unsupported media type",
                ),
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    "Payload too large",
                ),
                _ => (StatusCode::BAD_REQUEST, "invalid-json", "Invalid JSON"),
            };
            let detail = err.to_string();
            actix_web::error::InternalError::from_response(
                err,
                problem(status, slug, title, detail),
            )
            .into()
        })
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        let detail = err.to_string();
        actix_web::error::InternalError::from_response(
            err,
            problem(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                "Invalid query",
                detail,
            ),
        )
        .into()
    })
}

fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _| {
        let detail = err.to_string();
        actix_web::error::InternalError::from_response(
            err,
            problem(StatusCode::NOT_FOUND, "not-found", "Not found", detail),
        )
        .into()
    })
}

async fn not_found() -> HttpResponse {
    problem(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "no such resource",
    )
}

/// Turns every error answer that is not already a problem (nor an OCSP response) — those actix
/// writes itself, e.g. for an oversized OCSP body or a malformed path — into an RFC 9457 problem.
fn bare_errors<B: actix_web::body::MessageBody + 'static>(
) -> actix_web::middleware::ErrorHandlers<B> {
    use actix_web::middleware::ErrorHandlerResponse;
    actix_web::middleware::ErrorHandlers::new().default_handler(
        |res: actix_web::dev::ServiceResponse<B>| {
            let typed = res
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| {
                    t.starts_with("application/problem+json")
                        || t.starts_with("application/ocsp-response")
                        || t.starts_with("text/html")
                });
            if typed {
                return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
            }
            let status = res.status();
            let (slug, title) = match status.as_u16() {
                404 => ("not-found", "Not found"),
                405 => ("method-not-allowed", "Method not allowed"),
                413 => ("payload-too-large", "Request body too large"),
                415 => ("unsupported-media-type", "Unsupported media type"),
                s if s >= 500 => ("internal", "Internal error"),
                _ => ("bad-request", "Bad request"),
            };
            let detail = if status.is_server_error() {
                "the server could not complete the request; the error was logged".to_string()
            } else {
                format!(
                    "{} ({})",
                    title.to_lowercase(),
                    status.canonical_reason().unwrap_or("error")
                )
            };
            let (request, _) = res.into_parts();
            let response = problem::problem(status, slug, title, detail);
            Ok(ErrorHandlerResponse::Response(
                actix_web::dev::ServiceResponse::new(request, response).map_into_right_body(),
            ))
        },
    )
}

/// Registers the API routes.
pub fn api_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/login", web::post().to(api::login))
            .route("/logout", web::post().to(api::logout))
            .route("/me", web::get().to(api::me))
            .route("/passwd", web::post().to(api::change_password))
            .route("/users", web::get().to(api::list_users))
            .route("/users", web::post().to(api::create_user))
            .route("/users/{username}/roles", web::put().to(api::set_roles))
            .route(
                "/users/{username}/disable",
                web::post().to(api::disable_user),
            )
            .route("/users/{username}/reset", web::post().to(api::reset_user))
            .route("/users/{username}/enable", web::post().to(api::enable_user))
            .route("/users/{username}/unlock", web::post().to(api::unlock_user))
            .route("/account-changes", web::get().to(api::list_account_changes))
            .route(
                "/account-changes/{id}",
                web::get().to(api::get_account_change),
            )
            .route(
                "/account-changes/{id}/approve",
                web::post().to(api::approve_account_change),
            )
            .route(
                "/account-changes/{id}/reject",
                web::post().to(api::reject_account_change),
            )
            .route("/enrol", web::post().to(api::enrol))
            .route("/profiles", web::get().to(api::profiles))
            .route("/requests", web::post().to(api::submit))
            .route("/requests", web::get().to(api::list_requests))
            .route("/requests/{id}", web::get().to(api::get_request))
            .route("/requests/{id}/approve", web::post().to(api::approve))
            .route("/requests/{id}/reject", web::post().to(api::reject))
            .route(
                "/requests/{id}/certificate",
                web::get().to(api::request_certificate),
            )
            .route("/certificates", web::get().to(api::list_certificates))
            .route(
                "/certificates/{ca}/{serial}",
                web::get().to(api::get_certificate),
            )
            .route(
                "/certificates/{ca}/{serial}/revoke",
                web::post().to(api::revoke),
            )
            .route(
                "/certificates/{ca}/{serial}/hold",
                web::post().to(api::hold),
            )
            .route(
                "/certificates/{ca}/{serial}/release",
                web::post().to(api::release),
            )
            .route("/enrollment-codes", web::post().to(api::create_challenge))
            .route("/enrollment-codes", web::get().to(api::list_challenges))
            .route(
                "/enrollment-codes/{id}/revoke",
                web::post().to(api::revoke_challenge),
            )
            .route("/acme/eab", web::post().to(acme::create_eab))
            .route("/acme/eab", web::get().to(acme::list_eabs))
            .route("/acme/eab/{id}/revoke", web::post().to(acme::revoke_eab))
            .route("/staff/leave", web::post().to(api::staff_leave))
            .route("/vendor-certificates", web::get().to(api::vendor_export))
            .route("/break-glass", web::post().to(api::break_glass_issue))
            .route("/break-glass", web::get().to(api::break_glass_list))
            .route("/break-glass/{id}", web::get().to(api::break_glass_get))
            .route(
                "/break-glass/{id}/review",
                web::post().to(api::break_glass_review),
            )
            .route("/notifications", web::get().to(api::notifications))
            .route("/me/contact", web::get().to(api::contact))
            .route("/me/contact", web::put().to(api::set_contact))
            .route("/activate", web::get().to(api::activation))
            .route("/activate", web::post().to(api::activate))
            .route("/audit", web::get().to(api::audit))
            .route("/audit/verify", web::get().to(api::audit_verify))
            .route("/audit/checkpoints", web::post().to(api::audit_checkpoint))
            .route(
                "/openapi.json",
                web::get().to(|| async { HttpResponse::Ok().json(openapi()) }),
            ),
    );
}

/// Registers the public routes.
pub fn public_routes(cfg: &mut web::ServiceConfig) {
    // OCSP first, under a static prefix: a `/ocsp/{request:.*}` route would run the router's
    // regular expression over every GET's 100-odd characters of base64 (measured: three times
    // the instructions of a whole cached POST).
    cfg.service(
        web::scope("/ocsp")
            .route("", web::post().to(public::ocsp_post))
            .default_service(web::to(public::ocsp_get_or_refuse)),
    )
    .route("/crl/{name}", web::get().to(public::crl))
    .route("/ca/{name}", web::get().to(public::ca_certificate))
    .route("/healthz", web::get().to(public::healthz))
    .route("/metrics", web::get().to(public::metrics))
    .route(
        "/audit/checkpoints",
        web::get().to(public::audit_checkpoints),
    )
    // HEAD on every GET route (HTTP caches and some clients probe with it): the same handler,
    // whose body actix leaves unsent while keeping its headers and Content-Length.
    .route("/crl/{name}", web::head().to(public::crl))
    .route("/ca/{name}", web::head().to(public::ca_certificate))
    .route("/healthz", web::head().to(public::healthz))
    .route("/metrics", web::head().to(public::metrics))
    .route(
        "/audit/checkpoints",
        web::head().to(public::audit_checkpoints),
    );
}

/// Registers SCEP's routes (on both enrollment listeners).
pub fn scep_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/scep/{profile}", web::get().to(scep::get))
        .route("/scep/{profile}", web::post().to(scep::post))
        .route("/scep/{profile}/pkiclient.exe", web::get().to(scep::get))
        .route("/scep/{profile}/pkiclient.exe", web::post().to(scep::post));
}

/// Registers the HTTPS enrollment listener's routes: EST, renewal, SCEP.
pub fn enroll_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/.well-known/est/{profile}")
            .route("/cacerts", web::get().to(enroll::cacerts))
            .route("/csrattrs", web::get().to(enroll::csrattrs))
            .route("/simpleenroll", web::post().to(enroll::simpleenroll))
            .route("/simplereenroll", web::post().to(enroll::simplereenroll)),
    )
    .service(
        web::scope("/acme/{profile}")
            .route("/directory", web::get().to(acme::directory))
            .route("/new-nonce", web::get().to(acme::new_nonce))
            .route("/new-nonce", web::head().to(acme::new_nonce))
            .route("/new-account", web::post().to(acme::new_account))
            .route("/account/{id}", web::post().to(acme::account))
            .route("/account/{id}/orders", web::post().to(acme::account_orders))
            .route("/key-change", web::post().to(acme::key_change))
            .route("/new-order", web::post().to(acme::new_order))
            .route("/order/{id}", web::post().to(acme::order))
            .route("/order/{id}/finalize", web::post().to(acme::finalize))
            .route("/authz/{id}", web::post().to(acme::authorization))
            .route("/chall/{authz}/{kind}", web::post().to(acme::challenge))
            .route("/cert/{id}", web::post().to(acme::certificate))
            .route("/revoke-cert", web::post().to(acme::revoke_cert))
            .route("/renewal-info/{id}", web::get().to(acme::renewal_info)),
    )
    .route("/api/v1/renew", web::post().to(enroll::renew))
    .route("/api/v1/renew/{id}", web::get().to(enroll::renew_status))
    .configure(scep_routes);
}

/// X509_V_ERR_CERT_HAS_EXPIRED: an expired client certificate still completes the handshake on
/// the enrollment listener; the renewal rule (grace after expiry, off by default) decides.
const CERT_HAS_EXPIRED: i32 = 10;

/// The enrollment listener's TLS: the API's certificate, and a client certificate asked for
/// (not required) and verified up to Mamori's root.
fn enroll_acceptor(
    chain_pem: &str,
    key_pkcs8: &[u8],
    ca_certificates: &[Vec<u8>],
) -> anyhow::Result<SslAcceptorBuilder> {
    let mut builder = tls_acceptor(chain_pem, key_pkcs8, None)?;
    let mut store = openssl::x509::store::X509StoreBuilder::new()?;
    for der in ca_certificates {
        let cert = openssl::x509::X509::from_der(der)?;
        builder.add_client_ca(&cert)?;
        store.add_cert(cert)?;
    }
    builder.set_verify_cert_store(store.build())?;
    builder.set_verify_callback(SslVerifyMode::PEER, |ok, ctx| {
        ok || ctx.error().as_raw() == CERT_HAS_EXPIRED
    });
    builder.set_session_id_context(b"mamori-enroll")?;
    Ok(builder)
}

/// Puts the TLS client certificate of a connection, if any, where handlers find it.
fn remember_peer(connection: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    type Tls = actix_tls::accept::openssl::TlsStream<actix_web::rt::net::TcpStream>;
    if let Some(tls) = connection.downcast_ref::<Tls>() {
        if let Some(der) = tls.ssl().peer_certificate().and_then(|c| c.to_der().ok()) {
            data.insert(enroll::PeerCertificate(der));
        }
    }
}

fn tls_acceptor(
    chain_pem: &str,
    key_pkcs8: &[u8],
    client_ca: Option<&[u8]>,
) -> anyhow::Result<SslAcceptorBuilder> {
    // Mozilla "intermediate": TLS 1.2 and 1.3 only, AEAD cipher suites with forward secrecy.
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    let mut certs = openssl::x509::X509::stack_from_pem(chain_pem.as_bytes())
        .context("API TLS certificate chain")?
        .into_iter();
    let leaf = certs.next().context("the API TLS chain is empty")?;
    builder.set_certificate(&leaf)?;
    for extra in certs {
        builder.add_extra_chain_cert(extra)?;
    }
    let key = openssl::pkey::PKey::private_key_from_pkcs8(key_pkcs8).context("API TLS key")?;
    builder.set_private_key(&key)?;
    builder
        .check_private_key()
        .context("the API TLS key does not match its certificate")?;
    if let Some(root_pem) = client_ca {
        let mut store = openssl::x509::store::X509StoreBuilder::new()?;
        for cert in openssl::x509::X509::stack_from_pem(root_pem)? {
            store.add_cert(cert)?;
        }
        builder.set_verify_cert_store(store.build())?;
        builder.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    Ok(builder)
}

/// Runs both listeners until a shutdown signal, with upkeep (CRL refresh, responder renewal,
/// request expiry) every minute.
/// Without `tls` (an OCSP-only instance) only the public listener runs.
pub async fn serve(
    authority: Arc<Authority>,
    tls: Option<(String, zeroize::Zeroizing<Vec<u8>>)>,
) -> anyhow::Result<()> {
    let config = authority.config.clone();
    let client_ca = if config.api_require_client_cert {
        authority.chain_pem("root").map(String::into_bytes)
    } else {
        None
    };
    let enroll_acceptor = match (&tls, &config.enroll_addr) {
        (Some((chain_pem, key_pkcs8)), Some(_)) => {
            let cas: Vec<Vec<u8>> = authority
                .issuers
                .certificates()
                .all()
                .values()
                .cloned()
                .collect();
            Some(enroll_acceptor(chain_pem, key_pkcs8, &cas)?)
        }
        _ => None,
    };
    let acceptor = match tls {
        Some((chain_pem, key_pkcs8)) => {
            Some(tls_acceptor(&chain_pem, &key_pkcs8, client_ca.as_deref())?)
        }
        None => None,
    };
    let scep_service = if acceptor.is_some() {
        let service = Arc::new(crate::scep::ScepService::new(authority.clone())?);
        let starting = service.clone();
        web::block(move || starting.maintain())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))??;
        Some(service)
    } else {
        None
    };
    let acme_service = if scep_service.is_some() {
        Some(web::Data::new(Arc::new(crate::acme::AcmeService::new(
            authority.clone(),
        )?)))
    } else {
        None
    };
    let data = web::Data::new(authority.clone());
    let limit = config.max_body_bytes;
    let enroll = enroll_servers(
        &config,
        data.clone(),
        scep_service.clone(),
        acme_service.clone(),
        enroll_acceptor,
        limit,
    )?;

    let public_data = web::Data::new(public::PublicState {
        ocsp: authority.ocsp.clone(),
        crls: authority.crls.clone(),
        certificates: authority.issuers.certificates().clone(),
        pool: authority.pool.clone(),
        metrics: authority.metrics.clone(),
        writer: Some(authority.writer_stats().clone()),
        disk: crate::disk::DiskWatch::new(
            &authority.config.data_dir,
            &authority.config.database_url(),
            authority.config.min_free_disk_bytes,
        ),
    });
    let public = HttpServer::new(move || {
        let metrics_state = public_data.clone();
        App::new()
            .app_data(public_data.clone())
            .app_data(web::PayloadConfig::new(ca_core::ocsp::MAX_REQUEST_LEN))
            .app_data(path_config())
            .wrap_fn(move |req, srv| {
                let start = Instant::now();
                let state = metrics_state.clone();
                let fut = srv.call(req);
                async move {
                    let res = fut.await;
                    state
                        .metrics
                        .public_latency
                        .observe(start.elapsed().as_secs_f64());
                    res
                }
            })
            .wrap(bare_errors())
            .configure(public_routes)
            .default_service(web::to(not_found))
    })
    .bind(&config.http_addr)
    .with_context(|| format!("binding the public listener to {}", config.http_addr))?
    .run();

    let api_data = data.clone();
    let api_acme = acme_service.clone();
    let api_server = acceptor.map(|acceptor| {
        (
            acceptor,
            HttpServer::new(move || {
                let metrics_state = api_data.clone();
                let mut app = App::new();
                if let Some(acme) = &api_acme {
                    app = app.app_data(acme.clone());
                }
                app.app_data(api_data.clone())
                    .app_data(json_config(limit))
                    .app_data(query_config())
                    .app_data(path_config())
                    .app_data(web::PayloadConfig::new(limit))
                    .wrap(bare_errors())
                    .wrap_fn(move |req, srv| {
                        let start = Instant::now();
                        let state = metrics_state.clone();
                        let fut = srv.call(req);
                        async move {
                            let mut res = fut.await?;
                            let headers = res.headers_mut();
                            headers.insert(
                                header::STRICT_TRANSPORT_SECURITY,
                                HeaderValue::from_static("max-age=31536000"),
                            );
                            headers.insert(
                                header::X_CONTENT_TYPE_OPTIONS,
                                HeaderValue::from_static("nosniff"),
                            );
                            headers
                                .insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
                            // Console pages set their own policy (scripts and styles
                            // from this server); everything else gets none at all.
                            if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
                                headers.insert(
                                    header::CONTENT_SECURITY_POLICY,
                                    HeaderValue::from_static("default-src 'none'"),
                                );
                            }
                            headers.insert(
                                header::CACHE_CONTROL,
                                HeaderValue::from_static("no-store"),
                            );
                            state
                                .metrics
                                .api_latency
                                .observe(start.elapsed().as_secs_f64());
                            Ok(res)
                        }
                    })
                    .configure(api_routes)
                    .configure(crate::web::routes)
                    .default_service(web::to(not_found))
            }),
        )
    });
    let api = match api_server {
        Some((acceptor, server)) => Some(
            server
                .worker_max_blocking_threads(config.api_blocking_threads)
                .bind_openssl(&config.api_addr, acceptor)
                .with_context(|| format!("binding the API listener to {}", config.api_addr))?
                .run(),
        ),
        None => None,
    };

    let upkeep = authority.clone();
    let upkeep_acme = acme_service.clone();
    let maintenance = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(
            config.maintenance_interval_secs,
        ));
        loop {
            tick.tick().await;
            let a = upkeep.clone();
            let scep = scep_service.clone();
            let acme = upkeep_acme.clone();
            let work = move || {
                a.maintain()?;
                if let Some(scep) = scep {
                    scep.maintain()?;
                }
                if let Some(acme) = acme {
                    acme.maintain()?;
                }
                Ok::<(), crate::error::ServiceError>(())
            };
            match web::block(work).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "upkeep failed"),
                Err(e) => tracing::error!(error = %e, "upkeep task failed"),
            }
        }
    });
    // Notices: delivered every two seconds on a blocking thread of their own, so a slow SMTP
    // server or webhook never delays the CA's upkeep.
    let notifier = authority.clone();
    let notifying = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tick.tick().await;
            let a = notifier.clone();
            if let Err(e) = web::block(move || a.notify_tick()).await {
                tracing::error!(error = %e, "notification task failed");
            }
        }
    });
    // Directory accounts: every second, those with open sessions not checked for `sync_secs`
    // are looked up again, so a person disabled in the directory loses their sessions.
    let syncer = authority.clone();
    let syncing = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let a = syncer.clone();
            match web::block(move || a.accounts.directory_sync()).await {
                Ok(Err(e)) => tracing::error!(error = %e, "directory sync failed"),
                Err(e) => tracing::error!(error = %e, "directory sync task failed"),
                Ok(Ok(_)) => {}
            }
        }
    });
    let poller = authority.clone();
    let polling = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let a = poller.clone();
            if let Ok(Err(e)) =
                web::block(move || a.ocsp.poll_responses().and_then(|_| a.crls.poll_crls())).await
            {
                poller
                    .metrics
                    .poll_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = %e, "polling OCSP responses failed; answering from the cache");
            }
        }
    });
    tracing::info!(http = %config.http_addr, api = %config.api_addr, "mamori listening");
    let mut servers = vec![public];
    servers.extend(api);
    servers.extend(enroll);
    let result = join_all(servers).await;
    maintenance.abort();
    polling.abort();
    notifying.abort();
    syncing.abort();
    result
}

async fn join_all(servers: Vec<actix_web::dev::Server>) -> anyhow::Result<()> {
    let handles: Vec<_> = servers.into_iter().map(tokio::spawn).collect();
    for handle in handles {
        handle.await.context("listener task")?.context("listener")?;
    }
    Ok(())
}

/// The device enrollment listeners, when configured: HTTPS (EST, renewal, SCEP) and plain
/// HTTP (SCEP only).
fn enroll_servers(
    config: &crate::config::Config,
    data: web::Data<Arc<Authority>>,
    scep: Option<Arc<crate::scep::ScepService>>,
    acme: Option<web::Data<Arc<crate::acme::AcmeService>>>,
    acceptor: Option<SslAcceptorBuilder>,
    limit: usize,
) -> anyhow::Result<Vec<actix_web::dev::Server>> {
    let Some(scep) = scep else {
        return Ok(Vec::new());
    };
    let scep = web::Data::new(scep);
    let mut servers = Vec::new();
    if let (Some(addr), Some(acceptor)) = (&config.enroll_addr, acceptor) {
        let (data, scep) = (data.clone(), scep.clone());
        servers.push(
            HttpServer::new(move || {
                let mut app = App::new();
                if let Some(acme) = &acme {
                    app = app.app_data(acme.clone());
                }
                app.app_data(data.clone())
                    .app_data(scep.clone())
                    .app_data(json_config(limit))
                    .app_data(query_config())
                    .app_data(path_config())
                    .app_data(web::PayloadConfig::new(limit))
                    .wrap(bare_errors())
                    .configure(enroll_routes)
                    .default_service(web::to(not_found))
            })
            .on_connect(remember_peer)
            .bind_openssl(addr, acceptor)
            .with_context(|| format!("binding the enrollment listener to {addr}"))?
            .run(),
        );
        tracing::info!(enroll = %addr, "device enrollment listening (EST, SCEP, renewal)");
    }
    if let Some(addr) = &config.scep_http_addr {
        servers.push(
            HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .app_data(scep.clone())
                    .app_data(query_config())
                    .app_data(path_config())
                    .app_data(web::PayloadConfig::new(
                        crate::scep::message::MAX_MESSAGE_LEN,
                    ))
                    .wrap(bare_errors())
                    .configure(scep_routes)
                    .default_service(web::to(not_found))
            })
            .bind(addr)
            .with_context(|| format!("binding the SCEP listener to {addr}"))?
            .run(),
        );
        tracing::info!(scep = %addr, "SCEP over plain HTTP listening");
    }
    Ok(servers)
}
