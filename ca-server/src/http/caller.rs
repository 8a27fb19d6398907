//! The authenticated caller as an actix extractor: a handler that takes [`SignedIn`] runs only
//! for a valid bearer token, so no handler can forget to authenticate.
//!
//! A session the cache confirmed less than a second ago is resolved on the event loop; any other
//! goes to the blocking pool once (the database read and, about once a minute, the activity
//! write). The handler's own work then runs on the blocking pool through [`SignedIn::run`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};

use crate::accounts::Caller;
use crate::error::ServiceError;
use crate::ra::Authority;

/// The API's state: the RA, which holds the accounts service.
pub type State = web::Data<Arc<Authority>>;

/// The bearer token of a request (`Authorization: Bearer <token>`).
pub fn bearer(request: &HttpRequest) -> Result<String, ServiceError> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ServiceError::Unauthenticated)?;
    let token = value
        .strip_prefix("Bearer ")
        .ok_or(ServiceError::Unauthenticated)?
        .trim();
    Ok(token.to_string())
}

pub use crate::blocking::blocking;

/// A caller whose session is valid, whatever the state of their password: only for who-am-I,
/// log out and change password, which a caller with an admin-set password may still use.
pub struct SignedInAny {
    /// The RA (and through it the accounts service).
    pub authority: Arc<Authority>,
    /// Who is calling.
    pub caller: Caller,
}

/// A caller whose session is valid and who has no pending forced password change: every route
/// but those [`SignedInAny`] serves.
pub struct SignedIn(pub SignedInAny);

impl SignedInAny {
    /// Runs `f` as this caller on the blocking pool.
    pub async fn run<T: Send + 'static>(
        self,
        f: impl FnOnce(&Authority, &Caller) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        blocking(move || f(&self.authority, &self.caller)).await
    }
}

impl SignedIn {
    /// Runs `f` as this caller on the blocking pool.
    pub async fn run<T: Send + 'static>(
        self,
        f: impl FnOnce(&Authority, &Caller) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        self.0.run(f).await
    }
}

type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, ServiceError>>>>;

async fn sign_in(
    state: Option<State>,
    token: Result<String, ServiceError>,
) -> Result<SignedInAny, ServiceError> {
    let authority = state
        .ok_or_else(|| ServiceError::Internal("the API's state is missing".into()))?
        .get_ref()
        .clone();
    let token = token?;
    let caller = match authority.accounts.authenticate_cached(&token) {
        Some(caller) => caller,
        None => {
            let accounts = authority.clone();
            blocking(move || accounts.accounts.authenticate(&token)).await?
        }
    };
    Ok(SignedInAny { authority, caller })
}

impl FromRequest for SignedInAny {
    type Error = ServiceError;
    type Future = Extracting<Self>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(sign_in(
            request.app_data::<State>().cloned(),
            bearer(request),
        ))
    }
}

impl FromRequest for SignedIn {
    type Error = ServiceError;
    type Future = Extracting<Self>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let signing_in = sign_in(request.app_data::<State>().cloned(), bearer(request));
        Box::pin(async move {
            let signed_in = signing_in.await?;
            if signed_in.caller.must_change_password {
                return Err(ServiceError::PasswordChangeRequired);
            }
            Ok(SignedIn(signed_in))
        })
    }
}
