//! Console sessions: the session token from the same login as the API's (same lockout, rate
//! limits, idle and absolute timeouts), kept in an `HttpOnly; Secure; SameSite=Strict` cookie
//! that the API never reads, and a CSRF token bound to it in every state-changing form.

use std::sync::Arc;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::viewer::Viewer;
use crate::accounts::Caller;
pub use crate::blocking::blocking;
use crate::error::ServiceError;
use crate::ra::Authority;

/// The listener's state, as the API registers it (`web::Data<Arc<Authority>>`).
pub type State = actix_web::web::Data<Arc<Authority>>;

/// The session cookie (the session token itself; the API takes tokens only as bearer tokens).
pub const SESSION_COOKIE: &str = "mamori_session";
/// The sign-in form's double-submit cookie (there is no session to bind a token to yet).
pub const LOGIN_COOKIE: &str = "mamori_login";

/// A signed-in console user.
pub struct WebSession {
    /// The RA.
    pub authority: Arc<Authority>,
    /// Who is signed in.
    pub caller: Caller,
    /// Language and time zone.
    pub viewer: Viewer,
    token: String,
}

impl WebSession {
    /// The CSRF token of every form this session posts.
    pub fn csrf(&self) -> String {
        csrf_for(&self.token)
    }

    /// The session token (for signing out).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Refuses a form whose CSRF token is not this session's, or that another origin sent.
    pub fn check_form(&self, request: &HttpRequest, token: &str) -> Result<(), ServiceError> {
        same_origin(request)?;
        let expected = self.csrf();
        if bool::from(expected.as_bytes().ct_eq(token.as_bytes())) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(
                "the form's CSRF token is missing or not this session's; reload the page".into(),
            ))
        }
    }

    /// Runs `f` as this user on the blocking pool (the API's service calls, unchanged).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Authority, &Caller) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let (authority, caller) = (self.authority.clone(), self.caller.clone());
        blocking(move || f(&authority, &caller)).await
    }
}

/// The CSRF token of a session: a hash of its token (which never leaves the cookie), so a page
/// can carry it without the token and another site cannot know it.
pub fn csrf_for(token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"mamori console csrf\0")
        .chain_update(token.as_bytes())
        .finalize();
    hex::encode(&digest[..16])
}

/// Refuses a request whose `Origin` (browsers send it on every POST) is not this server.
pub fn same_origin(request: &HttpRequest) -> Result<(), ServiceError> {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    // The Host header, or HTTP/2's :authority (browsers speak HTTP/2 over TLS).
    let info = request.connection_info();
    let host = info.host();
    let origin = origin.to_str().unwrap_or("");
    if origin == format!("https://{host}") {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(
            "a form from another origin is refused".into(),
        ))
    }
}

/// An approve / reject form (requests and account changes): the verdict, a fresh code, a comment
/// and the CSRF token.
#[derive(serde::Deserialize)]
pub struct DecisionForm {
    /// `approve` or `reject`.
    pub verdict: String,
    /// A fresh TOTP code.
    pub totp: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
    /// The session's CSRF token.
    pub csrf: String,
}

impl DecisionForm {
    /// The verdict the pressed button names.
    pub fn verdict(&self) -> Result<ca_core::approval::Verdict, ServiceError> {
        match self.verdict.as_str() {
            "approve" => Ok(ca_core::approval::Verdict::Approve),
            "reject" => Ok(ca_core::approval::Verdict::Reject),
            _ => Err(ServiceError::Invalid("verdict is approve or reject".into())),
        }
    }
}

/// A fresh token for a signed-out form (sign-in, enrolment) and its double-submit cookie: there
/// is no session yet to bind a CSRF token to.
pub fn fresh_form_token() -> String {
    hex::encode(crate::secrets::random_bytes(16).unwrap_or_default())
}

/// Whether a signed-out form came from this origin carrying the token its cookie holds.
pub fn signed_out_form_ok(request: &HttpRequest, token: &str) -> bool {
    let cookie = request
        .cookie(LOGIN_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let origin_ok = same_origin(request).is_ok();
    let token_ok = !cookie.is_empty() && bool::from(cookie.as_bytes().ct_eq(token.as_bytes()));
    if !origin_ok || !token_ok {
        tracing::info!(
            path = request.path(),
            origin_ok,
            has_cookie = !cookie.is_empty(),
            token_ok,
            "console form refused"
        );
    }
    origin_ok && token_ok
}

/// A cookie only this server's pages over HTTPS send back, never to scripts or other sites.
pub fn strict_cookie(name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .finish()
}

/// The cookie that ends a session in the browser.
pub fn expired_cookie(name: &'static str) -> Cookie<'static> {
    let mut cookie = strict_cookie(name, String::new());
    cookie.make_removal();
    cookie
}

/// The signed-in user of a page, or where to send the browser instead: the sign-in page
/// without a valid session, the password page while a change is required.
pub async fn signed_in(request: &HttpRequest) -> Result<WebSession, HttpResponse> {
    let to_login = || redirect("/login");
    let Some(state) = request.app_data::<State>().cloned() else {
        return Err(to_login());
    };
    let Some(token) = request
        .cookie(SESSION_COOKIE)
        .map(|c| c.value().to_string())
    else {
        return Err(to_login());
    };
    let authority = state.get_ref().clone();
    let caller = match authority.accounts.authenticate_cached(&token) {
        Some(caller) => caller,
        None => {
            let (accounts, token) = (authority.clone(), token.clone());
            match blocking(move || accounts.accounts.authenticate(&token)).await {
                Ok(caller) => caller,
                Err(_) => return Err(to_login()),
            }
        }
    };
    if caller.must_change_password && request.path() != "/password" && request.path() != "/logout" {
        return Err(redirect("/password"));
    }
    Ok(WebSession {
        authority,
        caller,
        viewer: Viewer::of(request),
        token,
    })
}

/// `303 See Other` to `location` (after a form, the browser GETs it).
pub fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_string()))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_differ_per_session_and_hide_the_token() {
        let a = csrf_for("a-session-token");
        assert_eq!(a.len(), 32);
        assert_ne!(a, csrf_for("another-session-token"));
        assert!(!a.contains("a-session-token"));
    }
}
