//! The preamble every console form handler shares: the signed-in session (or the redirect to
//! sign in), then the form's CSRF token checked against it (or the error page), so that no
//! handler can forget the second half.

use actix_web::{HttpRequest, HttpResponse};

use super::layout::error_page;
use super::session::{signed_in, WebSession};

/// The session of a form POST whose CSRF token `csrf` is good for it; otherwise what to send
/// back: the sign-in redirect without a session, the error page (403) with a bad token.
pub async fn signed_in_form(request: &HttpRequest, csrf: &str) -> Result<WebSession, HttpResponse> {
    let session = signed_in(request).await?;
    match session.check_form(request, csrf) {
        Ok(()) => Ok(session),
        Err(e) => Err(error_page(&session.viewer, Some(&session), &e)),
    }
}
