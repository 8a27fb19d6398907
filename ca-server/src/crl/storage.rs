//! What CRL publication keeps of storage: the look-back margin, how a CRL is rebuilt, and
//! turning the stored rows into a served [`PublishedCrl`]. The queries are
//! [`crate::store::crl_rows`].

use super::PublishedCrl;
use crate::error::ServiceError;
use crate::store::crl_rows::{CrlRowError, CrlRows};
use crate::store::DbConnection;

/// How far before a CRL's thisUpdate the next one looks for status changes, so that a change
/// whose transaction committed just after the previous CRL read the database is never missed.
pub(super) const SLACK_MS: i64 = 60_000;

impl From<CrlRowError> for ServiceError {
    fn from(e: CrlRowError) -> Self {
        match e {
            CrlRowError::Database(e) => e.into(),
            CrlRowError::Raced => ServiceError::Conflict(e.to_string()),
            CrlRowError::Damaged(..) => ServiceError::Internal(e.to_string()),
        }
    }
}

/// Reads the published CRL `name` as the service serves it.
pub(super) fn load(
    conn: &mut DbConnection,
    name: &str,
) -> Result<Option<PublishedCrl>, ServiceError> {
    Ok(conn
        .load_crl(name)?
        .map(|(row, der)| PublishedCrl::new(&row, der)))
}

/// How a complete CRL is built.
pub(super) enum Rebuild {
    /// From every row of the scope.
    Full,
    /// From the previous CRL plus the status changes since.
    FromBase,
}
