//! The `certificate_names` table: each certificate's subjectAltNames as one searchable line, for
//! the certificate list's `san` filter. New certificates get theirs with their reservation;
//! [`fill_missing`] fills the rows of certificates stored before the table existed.

use diesel::prelude::*;

use super::models::CertificateNamesRow;
use super::schema::{certificate_names, certificates};
use super::settings::{put_setting, setting};
use super::DbConnection;

/// The setting that records that every older certificate has its names row.
const FILLED: &str = "certificate_names_filled";

/// A certificate without a names row: CA, serial, DER (once signed), reserved TBS.
type Unnamed = (String, String, Option<Vec<u8>>, Vec<u8>);

/// Rows read and written per round of [`fill_missing`].
const BATCH: i64 = 500;

/// Gives every certificate without a names row one, from its DER (or reserved TBS), in batches;
/// runs once per database (a setting records it), at start. Returns how many it filled.
pub fn fill_missing(conn: &mut DbConnection) -> anyhow::Result<usize> {
    if setting(conn, FILLED)?.is_some() {
        return Ok(0);
    }
    let mut filled = 0;
    loop {
        let missing: Vec<Unnamed> = certificates::table
            .filter(diesel::dsl::not(diesel::dsl::exists(
                certificate_names::table.filter(
                    certificate_names::ca_id
                        .eq(certificates::ca_id)
                        .and(certificate_names::serial.eq(certificates::serial)),
                ),
            )))
            .select((
                certificates::ca_id,
                certificates::serial,
                certificates::der,
                certificates::tbs_der,
            ))
            .limit(BATCH)
            .load(conn)?;
        if missing.is_empty() {
            break;
        }
        let rows: Vec<CertificateNamesRow> = missing
            .into_iter()
            .map(|(ca_id, serial, der, tbs)| CertificateNamesRow {
                names: ca_core::name::searchable_names(der.as_deref().unwrap_or(&tbs))
                    .unwrap_or_default(),
                ca_id,
                serial,
            })
            .collect();
        filled += rows.len();
        super::insert_all!(&mut *conn, certificate_names::table, &rows)?;
    }
    // Another instance may have finished first: its setting is as good as ours.
    let _ = put_setting(conn, FILLED, "1");
    Ok(filled)
}
