//! Running service calls off the event loop: the API and the console both hand database work,
//! password hashing and signing to actix's blocking pool through [`blocking`].

use crate::error::ServiceError;

/// Runs `f` on actix's blocking pool (database work, password hashing, signing).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    actix_web::web::block(f)
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
}
