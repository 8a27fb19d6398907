//! Requests and certificates as the API shows them, to whom they may be shown.

use crate::accounts::Caller;
use crate::api::*;
use crate::error::ServiceError;
use crate::store::ids::{RequestId, Serial};
use crate::store::models::*;
use crate::store::request_rows::{CertificateQuery, RequestQuery, RequestRows};

use super::{page_limit, Page};
use crate::store::status::{CertificateStatus, RequestStatus};
use crate::store::DbConnection;

use super::Authority;

impl Authority {
    pub(super) fn request_view(
        &self,
        conn: &mut DbConnection,
        request_id: &str,
    ) -> Result<RequestView, ServiceError> {
        let accounts = crate::ra::review::account_names(conn)?;
        self.request_view_among(conn, request_id, &accounts)
    }

    /// [`Authority::request_view`] with the account names its review compares against read
    /// once by the caller (a list reads them once, not once per request).
    fn request_view_among(
        &self,
        conn: &mut DbConnection,
        request_id: &str,
        accounts: &[String],
    ) -> Result<RequestView, ServiceError> {
        let (row, requester) = conn
            .request_with_requester(request_id)?
            .ok_or_else(|| ServiceError::NotFound(format!("request {request_id}")))?;
        let decisions = self.decisions_of(conn, request_id)?;
        let profile_id = row.profile_id.clone();
        let csr_der = row.csr_der.clone();
        let mut view = self.view_of(row, requester, &decisions);
        view.csr = self.review_csr(conn, &profile_id, &view.requester, &csr_der, accounts)?;
        Ok(view)
    }

    /// The API view of a request row, its requester's name and its decisions.
    pub(super) fn view_of(
        &self,
        row: RequestRow,
        requester: String,
        decisions: &[(DecisionRow, String)],
    ) -> RequestView {
        let required = self
            .profiles
            .get(&row.profile_id)
            .map(|p| p.approval().approvals)
            .unwrap_or(0);
        RequestView {
            approvals: decisions
                .iter()
                .filter(|(d, _)| d.verdict == "approve")
                .count() as u32,
            approvals_required: required,
            decisions: decisions
                .iter()
                .map(|(d, name)| DecisionView {
                    approver: name.clone(),
                    verdict: d.verdict.clone(),
                    comment: d.comment.clone(),
                    decided_at: rfc3339(d.decided_at),
                })
                .collect(),
            id: row.id,
            profile: row.profile_id,
            requester,
            status: row.status,
            justification: row.justification,
            work_order: row.work_order,
            not_before: row.window_start.map(rfc3339),
            not_after: row.window_end.map(rfc3339),
            ca: row.ca_id,
            serial: row.certificate_serial,
            failure: row.failure,
            created_at: rfc3339(row.created_at),
            csr: None,
            duplicates: Vec::new(),
        }
    }

    /// `GET /requests/{id}`: requesters see their own; officers, admins and auditors all.
    pub fn get_request(
        &self,
        caller: &Caller,
        request_id: &RequestId,
    ) -> Result<RequestView, ServiceError> {
        let request_id = request_id.as_str();
        let mut conn = self.conn()?;
        self.expire_one(&mut conn, request_id)?;
        let owner = conn.requester_of(request_id)?;
        match owner {
            Some(owner) if owner == caller.user_id || caller.sees_everything() => {
                self.request_view(&mut conn, request_id)
            }
            _ => Err(ServiceError::NotFound(format!("request {request_id}"))),
        }
    }

    /// `GET /requests`: a page, newest first. Requesters see their own; officers, admins and
    /// auditors all, and may pick one requester.
    pub fn list_requests(
        &self,
        caller: &Caller,
        query: &RequestListQuery,
    ) -> Result<Page<RequestView>, ServiceError> {
        let status = query
            .status
            .as_deref()
            .map(RequestStatus::parse_filter)
            .transpose()?;
        let limit = page_limit(query.limit, 500)?;
        self.expire_requests()?;
        let mut conn = self.conn()?;
        let Some(requester) = requester_filter(&mut conn, caller, query.requester.as_deref())?
        else {
            return Ok(Page::empty());
        };
        let (ids, total) = conn.request_page(
            &RequestQuery {
                status,
                profile: query.profile.as_deref(),
                requester_id: requester.as_deref(),
                before_id: query.cursor.as_deref(),
            },
            limit,
        )?;
        let next = (ids.len() as i64 == limit)
            .then(|| ids.last().cloned())
            .flatten();
        let accounts = crate::ra::review::account_names(&mut conn)?;
        let items = ids
            .iter()
            .map(|id| self.request_view_among(&mut conn, id, &accounts))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, total, next })
    }

    /// `GET /requests/{id}/certificate`: the issued certificate with its chain, in PEM.
    pub fn request_certificate(
        &self,
        caller: &Caller,
        request_id: &RequestId,
    ) -> Result<String, ServiceError> {
        let view = self.get_request(caller, request_id)?;
        let (Some(ca), Some(serial)) = (view.ca, view.serial) else {
            return Err(ServiceError::Conflict(format!(
                "request {request_id} is {} and has no certificate",
                view.status
            )));
        };
        let mut conn = self.conn()?;
        let der = conn.certificate_der(&ca, &serial)?;
        let der =
            der.ok_or_else(|| ServiceError::Internal("issued certificate without DER".into()))?;
        let mut pem = ca_core::ca::pem(&der);
        pem.push_str(&self.chain_pem(&ca).unwrap_or_default());
        Ok(pem)
    }

    // ---- certificates ----

    pub(super) fn certificate_view(row: &CertificateRow) -> CertificateView {
        CertificateView {
            ca: row.ca_id.clone(),
            serial: row.serial.clone(),
            profile: row.profile_id.clone(),
            subject: row.subject.clone(),
            status: row.status.clone(),
            not_before: rfc3339(row.not_before),
            not_after: rfc3339(row.not_after),
            revoked_at: row.revoked_at.map(rfc3339),
            revocation_reason: row.revocation_reason.clone(),
            request_id: row.request_id.clone(),
            sans: Vec::new(),
            key: None,
        }
    }

    pub(super) fn visible_certificate(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        ca: &str,
        serial: &Serial,
    ) -> Result<CertificateRow, ServiceError> {
        let serial = serial.as_str();
        let not_found = || ServiceError::NotFound(format!("certificate {ca}/{serial}"));
        let row = conn.certificate(ca, serial)?.ok_or_else(not_found)?;
        if CertificateStatus::of_row(&row.status)? == CertificateStatus::Reserved {
            return Err(not_found());
        }
        if caller.sees_everything() {
            return Ok(row);
        }
        let owner = match &row.request_id {
            Some(id) => conn.requester_of(id)?,
            None => None,
        };
        if owner.as_deref() == Some(caller.user_id.as_str()) {
            Ok(row)
        } else {
            Err(not_found())
        }
    }

    /// `GET /certificates`: a page, newest first, filtered. Requesters see their own.
    pub fn list_certificates(
        &self,
        caller: &Caller,
        query: &CertificateListQuery,
    ) -> Result<Page<CertificateView>, ServiceError> {
        let status = query
            .status
            .as_deref()
            .map(CertificateStatus::parse_filter)
            .transpose()?;
        let limit = page_limit(query.limit, 1000)?;
        let profile = query.profile.as_deref();
        if let Some(p) = profile {
            if !self.profiles.contains_key(p) && p != "ocsp-responder" && p != "issuing-ca" {
                return Err(ServiceError::Invalid(format!("no profile named {p:?}")));
            }
        }
        if let Some(serial) = &query.serial {
            if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ServiceError::Invalid("serial must be hex digits".into()));
            }
        }
        let after = match &query.cursor {
            None => None,
            Some(cursor) => Some(certificate_cursor(cursor)?),
        };
        let mut conn = self.conn()?;
        let Some(requester) = requester_filter(&mut conn, caller, query.requester.as_deref())?
        else {
            return Ok(Page::empty());
        };
        let now = self.now().as_secs() as i64;
        let (rows, total) = conn.certificate_page(
            &CertificateQuery {
                profile,
                status,
                ending_between: query
                    .expiring_within_days
                    .map(|days| (now, now + days.min(10_000) as i64 * 86_400)),
                requester_id: requester.as_deref(),
                subject: query.subject.as_deref(),
                san: query.san.as_deref(),
                staff_id: query.staff_id.as_deref(),
                serial_prefix: query.serial.as_deref(),
                after,
            },
            limit,
        )?;
        let next = (rows.len() as i64 == limit)
            .then(|| rows.last())
            .flatten()
            .map(|r| format!("{}.{}.{}", r.created_at, r.ca_id, r.serial));
        Ok(Page {
            items: rows.iter().map(Self::certificate_view).collect(),
            total,
            next,
        })
    }

    /// `GET /certificates/{ca}/{serial}`.
    pub fn get_certificate(
        &self,
        caller: &Caller,
        ca: &str,
        serial: &Serial,
    ) -> Result<(CertificateView, Vec<u8>), ServiceError> {
        let mut conn = self.conn()?;
        let row = self.visible_certificate(&mut conn, caller, ca, serial)?;
        let mut view = Self::certificate_view(&row);
        let der = row.der.unwrap_or_default();
        if let Some((sans, key)) = ca_core::review::certificate_names_and_key(&der) {
            view.sans = sans;
            view.key = Some(key);
        }
        Ok((view, der))
    }
}

/// A certificate list cursor: `<created_at>.<CA>.<serial>` of the last row of a page.
fn certificate_cursor(text: &str) -> Result<(i64, String, String), ServiceError> {
    let bad = || ServiceError::Invalid("cursor is not one this server gave".into());
    let mut parts = text.splitn(3, '.');
    let created = parts.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
    let ca = parts.next().filter(|c| !c.is_empty()).ok_or_else(bad)?;
    let serial = parts
        .next()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(bad)?;
    Ok((created, ca.to_string(), serial.to_string()))
}

/// Whose rows a list shows: a requester sees their own whatever they ask; officers, admins and
/// auditors everyone's, or one named user's. `None`: a named user who does not exist (an empty
/// page); `Some(None)`: everyone's.
fn requester_filter(
    conn: &mut crate::store::DbConnection,
    caller: &Caller,
    named: Option<&str>,
) -> Result<Option<Option<String>>, ServiceError> {
    Ok(match (named, caller.sees_everything()) {
        (_, false) => Some(Some(caller.user_id.clone())),
        (Some(name), true) => conn.user_id_by_name(name)?.map(Some),
        (None, true) => Some(None),
    })
}
