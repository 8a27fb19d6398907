//! The rows reserved signing writes: a certificate's serial and TBS before it is signed, then
//! the certificate over them. `ca::reservation` reaches the database only through
//! [`ReservationRows`].

use diesel::prelude::*;

use super::models::{CertificateNamesRow, CertificateRow};
use super::schema::{certificate_names, certificates};
use super::status::CertificateStatus;
use super::DbConnection;

/// What reserved signing asks of the database.
pub trait ReservationRows {
    /// Stores a `reserved` row and its searchable names (in the caller's transaction, if any).
    fn insert_reservation(
        &mut self,
        row: &CertificateRow,
        names: &CertificateNamesRow,
    ) -> QueryResult<usize>;

    /// Stores the signed certificate over its reservation and marks it valid.
    fn mark_issued(&mut self, ca_id: &str, serial: &str, der: &[u8]) -> QueryResult<usize>;
}

impl ReservationRows for DbConnection {
    fn insert_reservation(
        &mut self,
        row: &CertificateRow,
        names: &CertificateNamesRow,
    ) -> QueryResult<usize> {
        let stored = diesel::insert_into(certificates::table)
            .values(row)
            .execute(self)?;
        diesel::insert_into(certificate_names::table)
            .values(names)
            .execute(self)?;
        Ok(stored)
    }

    fn mark_issued(&mut self, ca_id: &str, serial: &str, der: &[u8]) -> QueryResult<usize> {
        diesel::update(certificates::table.find((ca_id, serial)))
            .set((
                certificates::der.eq(Some(der)),
                // The certificate holds its TBS; the reserved copy has served its purpose.
                certificates::tbs_der.eq(Vec::<u8>::new()),
                certificates::status.eq(CertificateStatus::Valid.as_str()),
            ))
            .execute(self)
    }
}
