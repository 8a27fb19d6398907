//! The rows vendor oversight reads: how many certificates an organisation holds or waits for
//! under a profile (its concurrency limit), and every vendor certificate of a period with its
//! request and requester (the monthly export for the access-log review).

use diesel::prelude::*;

use super::models::{CertificateRow, RequestRow};
use super::schema::*;
use super::DbConnection;

/// A vendor certificate with what the export shows of its request and requester.
#[derive(Debug, Clone)]
pub struct VendorCertificate {
    /// The certificate.
    pub certificate: CertificateRow,
    /// Its request.
    pub request: RequestRow,
    /// The requester's user name.
    pub requester: String,
    /// The requester's registered organisation.
    pub organization: Option<String>,
}

/// What vendor oversight asks of the database.
pub trait VendorRows {
    /// Valid certificates (not yet ended at `now`) of `profile` requested by accounts of
    /// `organization`, plus that organisation's requests of `profile` still waiting or approved.
    fn organization_in_use(
        &mut self,
        profile: &str,
        organization: &str,
        now: i64,
    ) -> QueryResult<i64>;
    /// Certificates of `profiles` stored in [`from`, `to`), oldest first, with their request and
    /// requester.
    fn vendor_certificates(
        &mut self,
        profiles: &[String],
        from: i64,
        to: i64,
    ) -> QueryResult<Vec<VendorCertificate>>;
}

impl VendorRows for DbConnection {
    fn organization_in_use(
        &mut self,
        profile: &str,
        organization: &str,
        now: i64,
    ) -> QueryResult<i64> {
        let valid: i64 = certificates::table
            .inner_join(requests::table.on(certificates::request_id.eq(requests::id.nullable())))
            .inner_join(users::table.on(users::id.eq(requests::requester_id)))
            .filter(certificates::profile_id.eq(profile))
            .filter(certificates::status.eq("valid"))
            .filter(certificates::not_after.gt(now))
            .filter(users::organization.eq(organization))
            .count()
            .get_result(self)?;
        let waiting: i64 = requests::table
            .inner_join(users::table.on(users::id.eq(requests::requester_id)))
            .filter(requests::profile_id.eq(profile))
            .filter(requests::status.eq_any(["pending", "approved"]))
            .filter(users::organization.eq(organization))
            .count()
            .get_result(self)?;
        Ok(valid + waiting)
    }

    fn vendor_certificates(
        &mut self,
        profiles: &[String],
        from: i64,
        to: i64,
    ) -> QueryResult<Vec<VendorCertificate>> {
        let rows: Vec<(CertificateRow, RequestRow, String, Option<String>)> = certificates::table
            .inner_join(requests::table.on(certificates::request_id.eq(requests::id.nullable())))
            .inner_join(users::table.on(users::id.eq(requests::requester_id)))
            .filter(certificates::profile_id.eq_any(profiles))
            .filter(certificates::created_at.ge(from))
            .filter(certificates::created_at.lt(to))
            .filter(certificates::status.ne("reserved"))
            .order((certificates::created_at.asc(), certificates::serial.asc()))
            .select((
                CertificateRow::as_select(),
                RequestRow::as_select(),
                users::username,
                users::organization,
            ))
            .load(self)?;
        Ok(rows
            .into_iter()
            .map(
                |(certificate, request, requester, organization)| VendorCertificate {
                    certificate,
                    request,
                    requester,
                    organization,
                },
            )
            .collect())
    }
}
