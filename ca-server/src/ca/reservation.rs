//! Reserved signing: store the serial and the exact TBS first (`reserved`), then sign, then mark
//! it issued inside the caller's transaction — so a crash never leaves a signed certificate
//! nobody recorded, and a reserved serial is never reused. Issuance after approvals, the API
//! server's own certificate and the OCSP responder certificate go this way; a profile without
//! approvals stores the row built by [`reservation`] already signed, in the one commit that
//! records its request (the RA's issue-at-once path).

use ca_core::ca::CertificateAuthority;
use ca_core::issuance::{IssuedCertificate, PreparedIssuance};
use ca_core::serial::serial_hex;
use diesel::QueryResult;

use crate::error::ServiceError;
use crate::store::models::{CertificateNamesRow, CertificateRow};
use crate::store::reservation_rows::ReservationRows;
use crate::store::status::CertificateStatus;
use crate::store::DbConnection;

/// Reserves the serial and TBS, then signs. Returns the certificate and its serial (hex).
pub fn reserve_and_sign(
    conn: &mut DbConnection,
    ca: &CertificateAuthority,
    prepared: PreparedIssuance,
    profile_id: &str,
    request_id: Option<&str>,
    now: i64,
) -> Result<(IssuedCertificate, String), ServiceError> {
    let serial = reserve(conn, ca, &prepared, profile_id, request_id, now)?;
    let issued = prepared.sign(ca)?;
    Ok((issued, serial))
}

/// Stores the serial and TBS of `prepared` as `reserved` (in the caller's transaction, if any),
/// before anything is signed. Returns the serial (hex).
pub fn reserve(
    conn: &mut DbConnection,
    ca: &CertificateAuthority,
    prepared: &PreparedIssuance,
    profile_id: &str,
    request_id: Option<&str>,
    now: i64,
) -> Result<String, ServiceError> {
    let row = reservation(ca, prepared, profile_id, request_id, now);
    store_reservation(conn, &row, &names_row(&row, prepared))?;
    Ok(row.serial)
}

/// The `reserved` row for `prepared`: its serial and exact TBS, no certificate yet. Built apart
/// from storing it so that a write queued for a later commit needs no borrow of the CA.
pub fn reservation(
    ca: &CertificateAuthority,
    prepared: &PreparedIssuance,
    profile_id: &str,
    request_id: Option<&str>,
    now: i64,
) -> CertificateRow {
    CertificateRow {
        ca_id: ca.id().to_string(),
        serial: serial_hex(prepared.serial()),
        request_id: request_id.map(str::to_string),
        profile_id: profile_id.to_string(),
        subject: prepared.subject().to_string(),
        tbs_der: prepared.tbs_der().to_vec(),
        der: None,
        not_before: prepared.not_before().as_secs() as i64,
        not_after: prepared.not_after().as_secs() as i64,
        status: CertificateStatus::Reserved.as_str().into(),
        revoked_at: None,
        revocation_reason: None,
        invalidity_date: None,
        created_at: now,
        status_changed_ms: 0,
        crl_partition: ca.crl_partition_of(prepared.serial()).map(|k| k as i32),
    }
}

/// The searchable subjectAltNames of the certificate `row` reserves for `prepared`.
pub fn names_row(row: &CertificateRow, prepared: &PreparedIssuance) -> CertificateNamesRow {
    CertificateNamesRow {
        ca_id: row.ca_id.clone(),
        serial: row.serial.clone(),
        names: prepared.names().to_string(),
    }
}

/// Stores a reservation built by [`reservation`] (in the caller's transaction, if any).
pub fn store_reservation(
    conn: &mut DbConnection,
    row: &CertificateRow,
    names: &CertificateNamesRow,
) -> QueryResult<usize> {
    conn.insert_reservation(row, names)
}

/// Stores the signed certificate over its reservation; call inside the transaction that also
/// records what it was issued for.
pub fn mark_issued(
    conn: &mut DbConnection,
    ca_id: &str,
    serial: &str,
    der: &[u8],
) -> QueryResult<usize> {
    ReservationRows::mark_issued(conn, ca_id, serial, der)
}
