//! The monthly export of vendor certificates: every certificate of a profile vendors request,
//! issued in one calendar month (Japan time, the guideline's), with who asked, the work order,
//! the window and the approvers, for the access-log review.

use ca_core::role::Role;
use ca_core::time::UnixTime;

use crate::accounts::Caller;
use crate::api::VendorCertificateView;
use crate::error::ServiceError;
use crate::store::request_rows::RequestRows;
use crate::store::vendor_rows::VendorRows;

use super::Authority;

/// `YYYY-MM` as the Unix seconds of its first instant and of the next month's, in Asia/Tokyo.
pub(crate) fn month_bounds(month: &str) -> Result<(i64, i64), ServiceError> {
    let bad = || {
        ServiceError::Invalid(format!(
            "month is YYYY-MM (got {}) / 月は YYYY-MM の形で指定します",
            ca_core::text::escape_untrusted(month, 20)
        ))
    };
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    let (y, m): (i16, i8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if y.to_string().len() != 4 || !(1..=12).contains(&m) {
        return Err(bad());
    }
    let tokyo =
        jiff::tz::TimeZone::get("Asia/Tokyo").map_err(|e| ServiceError::Internal(e.to_string()))?;
    let start = jiff::civil::date(y, m, 1);
    let next = start
        .checked_add(jiff::Span::new().months(1))
        .map_err(|_| bad())?;
    let at = |d: jiff::civil::Date| -> Result<i64, ServiceError> {
        Ok(d.to_zoned(tokyo.clone())
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .timestamp()
            .as_second())
    };
    Ok((at(start)?, at(next)?))
}

impl Authority {
    /// `GET /api/v1/vendor-certificates?month=YYYY-MM`: auditors, security officers, admins.
    pub fn vendor_export(
        &self,
        caller: &Caller,
        month: &str,
    ) -> Result<Vec<VendorCertificateView>, ServiceError> {
        caller.require(&[Role::Auditor, Role::SecurityOfficer, Role::Admin])?;
        let (from, to) = month_bounds(month)?;
        let profiles: Vec<String> = self
            .profiles
            .values()
            .filter(|p| p.requester_roles().contains(&Role::Vendor))
            .map(|p| p.id().to_string())
            .collect();
        let time = |t: i64| UnixTime(t.max(0) as u64).to_rfc3339();
        let mut conn = self.conn()?;
        let rows = conn.vendor_certificates(&profiles, from, to)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let approvers = conn
                .decisions_of(&row.request.id)?
                .into_iter()
                .filter(|(d, _)| d.verdict == "approve")
                .map(|(_, name)| name)
                .collect();
            let c = row.certificate;
            out.push(VendorCertificateView {
                ca: c.ca_id,
                serial: c.serial,
                profile: c.profile_id,
                subject: c.subject,
                organization: row.organization,
                requester: row.requester,
                work_order: row.request.work_order,
                justification: row.request.justification,
                not_before: time(c.not_before),
                not_after: time(c.not_after),
                issued_at: time(c.created_at),
                status: c.status,
                revoked_at: c.revoked_at.map(time),
                approvers,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_is_a_japanese_calendar_month() {
        // 2026-11-01T00:00+09:00 is 2026-10-31T15:00Z.
        let (from, to) = month_bounds("2026-11").unwrap();
        assert_eq!(UnixTime(from as u64).to_rfc3339(), "2026-10-31T15:00:00Z");
        assert_eq!(UnixTime(to as u64).to_rfc3339(), "2026-11-30T15:00:00Z");
        let (_, to) = month_bounds("2026-12").unwrap();
        assert_eq!(UnixTime(to as u64).to_rfc3339(), "2026-12-31T15:00:00Z");
        for bad in ["2026-13", "26-11", "2026/11", "", "2026-00"] {
            assert!(month_bounds(bad).is_err(), "{bad}");
        }
    }
}
