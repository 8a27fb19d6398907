//! The statuses of stored requests and certificates as enums, so that services, views and
//! queries cannot disagree on a spelling. The database keeps the same words as text.

use serde::{Deserialize, Serialize};

use crate::error::ServiceError;

/// Where a certificate request is in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    /// Waiting for approvals.
    Pending,
    /// Approved; the certificate is being issued.
    Approved,
    /// The certificate exists.
    Issued,
    /// An approver rejected it.
    Rejected,
    /// Nobody decided within the profile's waiting time.
    Expired,
    /// Issuance failed after approval.
    Failed,
    /// Withdrawn because its requester's account was disabled.
    Cancelled,
}

impl RequestStatus {
    /// Every status, in workflow order.
    pub const ALL: [RequestStatus; 7] = [
        RequestStatus::Pending,
        RequestStatus::Approved,
        RequestStatus::Issued,
        RequestStatus::Rejected,
        RequestStatus::Expired,
        RequestStatus::Failed,
        RequestStatus::Cancelled,
    ];

    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Issued => "issued",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Expired => "expired",
            RequestStatus::Failed => "failed",
            RequestStatus::Cancelled => "cancelled",
        }
    }

    /// The status a stored word names; `None` for any other text.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// A `?status=` filter, refused with a message listing the statuses.
    pub fn parse_filter(text: &str) -> Result<Self, ServiceError> {
        Self::parse(text).ok_or_else(|| {
            ServiceError::Invalid(format!(
                "status must be pending, approved, issued, rejected, expired, failed or cancelled \
                 (got {text:?})"
            ))
        })
    }

    /// The status of a stored row (a word no version wrote is an internal error, not a guess).
    pub fn of_row(text: &str) -> Result<Self, ServiceError> {
        Self::parse(text)
            .ok_or_else(|| ServiceError::Internal(format!("unknown request status {text:?}")))
    }
}

impl std::fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a stored certificate row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificateStatus {
    /// A serial written before signing, so that a crash between signing and storing cannot
    /// leave a certificate nobody knows of; never shown by the API.
    Reserved,
    /// Issued and not revoked.
    Valid,
    /// Revoked for good.
    Revoked,
    /// On hold (revoked with reason certificateHold; can be released).
    Hold,
}

impl CertificateStatus {
    /// Every status.
    pub const ALL: [CertificateStatus; 4] = [
        CertificateStatus::Reserved,
        CertificateStatus::Valid,
        CertificateStatus::Revoked,
        CertificateStatus::Hold,
    ];

    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateStatus::Reserved => "reserved",
            CertificateStatus::Valid => "valid",
            CertificateStatus::Revoked => "revoked",
            CertificateStatus::Hold => "hold",
        }
    }

    /// The status a stored word names; `None` for any other text.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// A `?status=` filter of the certificate list: valid, revoked or hold.
    pub fn parse_filter(text: &str) -> Result<Self, ServiceError> {
        match Self::parse(text) {
            Some(status) if status != CertificateStatus::Reserved => Ok(status),
            _ => Err(ServiceError::Invalid(format!(
                "status must be valid, revoked or hold (got {text:?})"
            ))),
        }
    }

    /// The status of a stored row.
    pub fn of_row(text: &str) -> Result<Self, ServiceError> {
        Self::parse(text)
            .ok_or_else(|| ServiceError::Internal(format!("unknown certificate status {text:?}")))
    }

    /// Revoked or on hold: listed on the CRL and answered "revoked" by OCSP.
    pub fn is_revoked(self) -> bool {
        matches!(self, CertificateStatus::Revoked | CertificateStatus::Hold)
    }
}

impl std::fmt::Display for CertificateStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_match_serde() {
        for s in RequestStatus::ALL {
            assert_eq!(RequestStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        for s in CertificateStatus::ALL {
            assert_eq!(CertificateStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!(RequestStatus::parse("Pending").is_none());
    }

    #[test]
    fn filters_refuse_unknown_and_internal_words() {
        assert!(CertificateStatus::parse_filter("reserved").is_err());
        assert!(CertificateStatus::parse_filter("good").is_err());
        assert_eq!(
            CertificateStatus::parse_filter("hold").unwrap(),
            CertificateStatus::Hold
        );
        assert!(RequestStatus::parse_filter("done").is_err());
    }
}
