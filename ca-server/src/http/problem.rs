//! RFC 9457 problem details: the one place errors become HTTP answers. Each error has a stable
//! `type` URI under `https://mamori.dev/problems/`; the detail never carries secrets or internals.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::error::ServiceError;

/// The base of every problem type URI.
pub const TYPE_BASE: &str = "https://mamori.dev/problems/";

/// A problem details body.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// Stable type URI.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, stable summary.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong, for this occurrence.
    pub detail: String,
}

/// Builds a problem response.
pub fn problem(
    status: StatusCode,
    slug: &str,
    title: &str,
    detail: impl Into<String>,
) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .json(Problem {
            kind: format!("{TYPE_BASE}{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
        })
}

fn parts(error: &ServiceError) -> (StatusCode, &'static str, &'static str) {
    use ca_core::error::ApprovalError;
    match error {
        ServiceError::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
        ),
        ServiceError::InvalidCredentials => (
            StatusCode::UNAUTHORIZED,
            "invalid-credentials",
            "Invalid credentials",
        ),
        ServiceError::AccountLocked(_) => {
            (StatusCode::UNAUTHORIZED, "account-locked", "Account locked")
        }
        ServiceError::InvalidSecondFactor => (
            StatusCode::FORBIDDEN,
            "invalid-second-factor",
            "Invalid second factor",
        ),
        ServiceError::PasswordChangeRequired => (
            StatusCode::FORBIDDEN,
            "password-change-required",
            "Password change required",
        ),
        ServiceError::StepUpLocked => (StatusCode::FORBIDDEN, "step-up-locked", "Step-up locked"),
        ServiceError::TooManyAttempts(_) => (
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-attempts",
            "Too many login attempts",
        ),
        ServiceError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
        ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
        ServiceError::Invalid(_) => (
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
        ),
        ServiceError::Csr(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "csr-rejected",
            "CSR rejected",
        ),
        ServiceError::Issue(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "issuance-refused",
            "Issuance refused",
        ),
        ServiceError::Approval(ApprovalError::SelfApproval) => (
            StatusCode::FORBIDDEN,
            "self-approval",
            "Self-approval refused",
        ),
        ServiceError::Approval(ApprovalError::RoleNotAllowed(_)) => {
            (StatusCode::FORBIDDEN, "forbidden", "Forbidden")
        }
        ServiceError::Approval(_) => (StatusCode::CONFLICT, "approval-refused", "Decision refused"),
        ServiceError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
        ServiceError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Unavailable",
        ),
        ServiceError::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        ),
    }
}

impl ResponseError for ServiceError {
    fn status_code(&self) -> StatusCode {
        parts(self).0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, slug, title) = parts(self);
        let detail = match self {
            ServiceError::Internal(inner) => {
                tracing::error!(error = %inner, "internal error");
                "the server could not complete the request; the error was logged".to_string()
            }
            other => other.to_string(),
        };
        let mut response = problem(status, slug, title, detail);
        if let ServiceError::TooManyAttempts(seconds) = self {
            if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&seconds.to_string())
            {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, value);
            }
        }
        if let ServiceError::Unavailable(_) = self {
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static("5"),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                actix_web::http::header::WWW_AUTHENTICATE,
                actix_web::http::header::HeaderValue::from_static("Bearer realm=\"mamori\""),
            );
        }
        response
    }
}
