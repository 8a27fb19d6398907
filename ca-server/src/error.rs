//! The service's error type. Each variant maps to one HTTP status and one stable RFC 9457
//! problem `type` (see `http::problem`); the detail shown to clients never carries secrets or
//! internals, which go to the log instead.

use ca_core::error::{ApprovalError, CsrError, IssueError};

/// What went wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Too many login attempts from one client address; retry after this many seconds.
    #[error("too many login attempts from this address; try again in {0} seconds")]
    TooManyAttempts(u64),
    /// No or an invalid/expired bearer token.
    #[error("authentication required")]
    Unauthenticated,
    /// Wrong user name, password or code, or a locked or disabled account (never says which).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The right password for an account locked after too many failed sign-ins (a wrong one
    /// gets [`ServiceError::InvalidCredentials`], so the lock tells a guesser nothing).
    #[error("this account is locked after too many failed sign-ins until {0}; an admin or security officer can lift it sooner (ca-cli user unlock) / サインイン失敗が続いたためロックされています")]
    AccountLocked(String),
    /// A step-up second factor that is wrong or replayed.
    #[error("the second-factor code is invalid or was already used")]
    InvalidSecondFactor,
    /// Step-up is locked for this account after too many wrong codes; another security officer
    /// or an admin lifts it.
    #[error("step-up is locked after too many wrong codes; another security officer or an admin must unlock it")]
    StepUpLocked,
    /// The account's password was set by an admin and must be changed before anything else.
    #[error("change the password an admin set first (ca-cli passwd, or POST /api/v1/passwd)")]
    PasswordChangeRequired,
    /// The caller's roles do not allow this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The thing does not exist (or the caller may not know it does).
    #[error("{0} not found")]
    NotFound(String),
    /// The request body or parameters are invalid.
    #[error("{0}")]
    Invalid(String),
    /// The CSR is refused.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// Issuance refused (profile, validity, lint).
    #[error(transparent)]
    Issue(IssueError),
    /// The approval rules refuse the decision.
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// The state of the thing does not allow this (e.g. revoking a revoked certificate).
    #[error("{0}")]
    Conflict(String),
    /// The service cannot do this now but will later (the database is busy, the CA is
    /// locked until its custodians activate it); the client should retry after a while.
    #[error("{0}")]
    Unavailable(String),
    /// Something failed inside; details are logged, not shown.
    #[error("internal error")]
    Internal(String),
}

impl ServiceError {
    /// For a refused security action, its problem type (audited and counted as a refusal);
    /// `None` for every other error.
    pub fn refusal_kind(&self) -> Option<&'static str> {
        match self {
            ServiceError::InvalidSecondFactor => Some("invalid-second-factor"),
            ServiceError::StepUpLocked => Some("step-up-locked"),
            ServiceError::Approval(ApprovalError::SelfApproval) => Some("self-approval"),
            ServiceError::Forbidden(_)
            | ServiceError::Approval(ApprovalError::RoleNotAllowed(_)) => Some("forbidden"),
            ServiceError::Approval(_) => Some("approval-refused"),
            _ => None,
        }
    }
}

impl From<IssueError> for ServiceError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::Csr(c) => ServiceError::Csr(c),
            IssueError::Sign(s) => ServiceError::Internal(s.to_string()),
            other => ServiceError::Issue(other),
        }
    }
}

impl From<ca_core::error::CrlError> for ServiceError {
    fn from(e: ca_core::error::CrlError) -> Self {
        match e {
            // The revoked set moved while a CRL was written: publishing again is the answer.
            e @ ca_core::error::CrlError::EntriesChanged { .. } => {
                ServiceError::Conflict(e.to_string())
            }
            other => ServiceError::Internal(format!("CRL: {other}")),
        }
    }
}

impl From<diesel::result::Error> for ServiceError {
    fn from(e: diesel::result::Error) -> Self {
        database_error(&e.to_string())
    }
}

impl From<crate::secrets::SecretError> for ServiceError {
    fn from(e: crate::secrets::SecretError) -> Self {
        ServiceError::Internal(format!("secrets: {e}"))
    }
}

impl From<r2d2_error::PoolError> for ServiceError {
    fn from(e: r2d2_error::PoolError) -> Self {
        // No connection within the pool's timeout: the database is down or restarting.
        tracing::warn!(error = %e, "no database connection");
        ServiceError::Unavailable(DATABASE_UNREACHABLE.into())
    }
}

/// The service error for a failed database operation described by `text`: a 503 when the disk
/// is full or the database cannot be reached (nothing was changed: every write is one
/// transaction), otherwise an internal error.
pub fn database_error(text: &str) -> ServiceError {
    if crate::disk::is_disk_full(text) {
        crate::disk::count_disk_full(text);
        return ServiceError::Unavailable(crate::disk::DISK_FULL.into());
    }
    if database_unreachable(text) {
        tracing::warn!(error = %text, "the database is unreachable");
        return ServiceError::Unavailable(DATABASE_UNREACHABLE.into());
    }
    ServiceError::Internal(format!("database: {text}"))
}

/// What a request refused while the database cannot be reached is told.
pub const DATABASE_UNREACHABLE: &str = "the database cannot be reached (restarting or down); \
     nothing was changed, try again shortly / データベースに接続できません。変更は行われていません。\
     しばらくしてから再試行してください";

/// Whether a database error's text says the connection was lost or refused (PostgreSQL
/// restarting, shutting down, or gone), rather than that the statement failed.
pub fn database_unreachable(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "terminating connection",
        "server closed the connection",
        "connection refused",
        "the database system is shutting down",
        "the database system is starting up",
        "could not connect to server",
        "no connection to the server",
        "connection to server",
        "broken pipe",
        "connection reset",
        "could not receive data from server",
        "could not send data to server",
        "ssl syscall error",
        "the database system is in recovery mode",
        "the database system is not yet accepting connections",
        "the database system is not accepting connections",
        "cannot execute insert in a read-only transaction",
        "cannot execute update in a read-only transaction",
        "cannot execute delete in a read-only transaction",
        // Diesel's state after a ROLLBACK failed, which is what a lost connection does to an
        // open transaction.
        "the transaction manager is broken",
    ]
    .iter()
    .any(|needle| t.contains(needle))
}

/// The pool's error type, named once here.
pub mod r2d2_error {
    /// A failure to get a pooled connection.
    pub type PoolError = diesel::r2d2::PoolError;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_and_full_disks_are_503_and_the_rest_500() {
        for text in [
            "terminating connection due to administrator command",
            "connection to server at \"127.0.0.1\", port 5432 failed: Connection refused",
            "FATAL:  the database system is starting up",
            "FATAL:  the database system is in recovery mode",
            "ERROR:  cannot execute INSERT in a read-only transaction",
            "The transaction manager is broken",
            "database or disk is full",
        ] {
            assert!(
                matches!(database_error(text), ServiceError::Unavailable(_)),
                "{text}"
            );
        }
        assert!(matches!(
            database_error("UNIQUE constraint failed: certificates.serial"),
            ServiceError::Internal(_)
        ));
    }
}
