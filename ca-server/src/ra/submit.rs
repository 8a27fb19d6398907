//! Submitting requests and issuing: at once for profiles without approvals (one commit stores
//! certificate, request and audit), or after approvals through a reserved serial.

use std::sync::Arc;

use ca_core::ca::CertificateAuthority;
use ca_core::csr::VerifiedCsr;
use ca_core::issuance::{IssuanceOptions, PreparedIssuance};
use ca_core::profile::DuplicatePolicy;
use ca_core::profile::Profile;
use ca_core::time::UnixTime;
use serde_json::json;

use crate::accounts::Caller;
use crate::api::*;
use crate::error::ServiceError;
use crate::store::audit_log;
use crate::store::group_commit::Committing;
use crate::store::ids::new_ordered_id;
use crate::store::models::*;
use crate::store::request_rows::RequestRows;
use crate::store::status::{CertificateStatus, RequestStatus};
use crate::store::DbConnection;

use super::Authority;

/// The audit entry of a stored request.
fn submit_entry(row: &RequestRow, actor: &str, now: i64) -> audit_log::Entry {
    audit_log::Entry::new(
        now as u64,
        actor,
        "request.submit",
        &row.id,
        json!({"profile": row.profile_id, "work_order": row.work_order}),
    )
}

/// A certificate signed for a request, with its first OCSP response and audit entry, waiting
/// for the commit that stores them.
#[derive(Debug)]
struct SignedIssuance {
    der: Vec<u8>,
    response: Option<crate::ocsp::SignedResponse>,
    entry: audit_log::Entry,
}

/// What [`Authority::submit`] hands back.
#[derive(Debug)]
pub enum Submitted {
    /// A request stored to wait for its approvals.
    Stored(Box<RequestView>),
    /// A request whose profile needs no approval: signed, and queued for the one commit that
    /// stores it; [`Issuing::done`] waits for that commit.
    Issuing(Box<Issuing>),
}

impl Submitted {
    /// The request's view once it is stored: at once for a stored request; for an issuance,
    /// after its commit, awaited in a task of its own so that it finishes (caches the OCSP
    /// response, counts it) even if the caller goes away. The API and the console both use it.
    pub async fn finish(self, authority: Arc<Authority>) -> Result<RequestView, ServiceError> {
        match self {
            Submitted::Stored(view) => Ok(*view),
            Submitted::Issuing(issuing) => {
                tokio::task::spawn(async move { issuing.done(authority).await })
                    .await
                    .map_err(|e| ServiceError::Internal(format!("issuance task: {e}")))?
            }
        }
    }
}

/// An issuance queued for its commit (see [`Submitted`]).
#[derive(Debug)]
pub struct Issuing {
    /// The commit; it answers with the valid certificates of the same subject and profile that
    /// were there before this one (read in the writer's own transaction).
    commit: Committing<Duplicates>,
    signed: SignedIssuance,
    ca_id: String,
    profile_id: String,
    serial: String,
    view: RequestView,
    /// The profile's duplicate policy.
    policy: DuplicatePolicy,
}

impl Issuing {
    /// Waits for the commit, then caches the certificate's first OCSP response and counts the
    /// issuance; the request's view. Nothing signed leaves the process before the commit.
    pub async fn done(self, authority: Arc<Authority>) -> Result<RequestView, ServiceError> {
        let duplicates = self.commit.durable().await?;
        authority.issued(&self.signed, &self.ca_id, &self.profile_id, &self.serial);
        let mut view = self.view;
        view.duplicates = duplicates
            .iter()
            .map(|(ca, serial)| format!("{ca}/{serial}"))
            .collect();
        if self.policy == DuplicatePolicy::Supersede && !duplicates.is_empty() {
            let (old, id) = (duplicates, view.id.clone());
            // Revocations write, sign and publish: a blocking thread, not the event loop.
            tokio::task::spawn_blocking(move || authority.supersede(&old, &id))
                .await
                .map_err(|e| ServiceError::Internal(format!("superseding: {e}")))??;
        }
        Ok(view)
    }
}

/// Who a request is filed under: the account (`user_id`, shown as `username`), and the actor
/// its audit entries name (the account itself, or e.g. `device:<code id>` for a device that
/// enrolled with an enroller's one-time code).
#[derive(Debug, Clone)]
pub(crate) struct Requester {
    pub user_id: String,
    pub username: String,
    pub actor: String,
}

/// Work done inside the transaction that stores a request (with the request's id and the
/// time): consuming a one-time code, recording a renewal or a SCEP transaction. An error
/// undoes the whole submission; it may run twice (the group commit's retry).
pub(crate) type OnStore =
    Arc<dyn Fn(&mut DbConnection, &str, i64) -> Result<(), ServiceError> + Send + Sync>;

/// What a submission asks for besides profile and CSR.
pub(crate) struct Submission {
    pub justification: String,
    pub work_order: Option<String>,
    pub window: Option<(UnixTime, UnixTime)>,
    pub on_store: Option<OnStore>,
    /// Issue without approvals even where the profile needs them (a renewal whose profile
    /// says `requires_approval = false`).
    pub approved: bool,
    /// What an existing valid certificate of the subject does: the profile's policy, or
    /// `Allow` for a renewal (its predecessor is retired by the renewal rule).
    pub duplicates: DuplicatePolicy,
}

/// Valid certificates of one subject under one profile: (CA, serial), newest first.
type Duplicates = Vec<(String, String)>;

/// The refusal of a second valid certificate under a `duplicates = "refuse"` profile.
fn refused_duplicate(
    profile: &Profile,
    subject: &str,
    duplicates: &[(String, String)],
) -> ServiceError {
    ServiceError::Conflict(format!(
        "{subject} already has a valid certificate under profile {} ({}): revoke it first \
         / この主体には有効な証明書があります",
        profile.id(),
        duplicates
            .iter()
            .map(|(ca, serial)| format!("{ca}/{serial}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

impl Authority {
    /// `POST /requests`: checks the CSR against the profile now (so errors come back at once)
    /// and stores the request to wait for its approvals; when the profile needs none, signs the
    /// certificate at once and queues the commit that stores everything
    /// ([`Submitted::Issuing`]; the caller awaits [`Issuing::done`]).
    pub fn submit(
        &self,
        caller: &Caller,
        request: SubmitRequest,
    ) -> Result<Submitted, ServiceError> {
        let profile = self
            .profiles
            .get(&request.profile)
            .ok_or_else(|| ServiceError::NotFound(format!("profile {}", request.profile)))?;
        if !profile.may_request(&caller.roles) {
            let needed: Vec<&str> = profile
                .requester_roles()
                .iter()
                .map(|r| r.as_str())
                .collect();
            return Err(ServiceError::Forbidden(format!(
                "profile {} is requested by {}; an admin can add the role (ca-cli user roles) \
                 / このプロファイルの申請に必要なロール: {}",
                profile.id(),
                if needed.is_empty() {
                    "nobody (Mamori issues it itself)".to_string()
                } else {
                    format!("the role {}", needed.join(" or "))
                },
                needed.join(", ")
            )));
        }
        let justification = request.justification.trim();
        if justification.is_empty() || justification.len() > 2000 {
            return Err(ServiceError::Invalid(
                "justification must be 1-2000 characters".into(),
            ));
        }
        let work_order = request
            .work_order
            .as_deref()
            .map(str::trim)
            .filter(|w| !w.is_empty());
        if let Some(w) = work_order {
            if w.len() > 128 {
                return Err(ServiceError::Invalid(
                    "work_order must be at most 128 characters".into(),
                ));
            }
        }
        if profile.allows_requested_window() && work_order.is_none() {
            return Err(ServiceError::Invalid(format!(
                "profile {} needs a work_order reference",
                profile.id()
            )));
        }
        let window = match (&request.not_before, &request.not_after) {
            (None, None) => None,
            (Some(start), Some(end)) => {
                let start = parse_rfc3339(start)
                    .ok_or_else(|| ServiceError::Invalid("not_before is not RFC 3339".into()))?;
                let end = parse_rfc3339(end)
                    .ok_or_else(|| ServiceError::Invalid("not_after is not RFC 3339".into()))?;
                let horizon = self.config.max_window_start_days;
                if start > self.now().as_secs() + horizon * 86_400 {
                    return Err(ServiceError::Invalid(format!(
                        "not_before must be within {horizon} days (max_window_start_days); \
                         request the window nearer the work"
                    )));
                }
                Some((UnixTime(start), UnixTime(end)))
            }
            _ => {
                return Err(ServiceError::Invalid(
                    "give both not_before and not_after, or neither".into(),
                ))
            }
        };
        let csr = VerifiedCsr::parse_remembering(
            request.csr.as_bytes(),
            profile.min_rsa_bits(),
            &self.csr_signatures,
        )?;
        if profile.organization_from_account() || profile.email_domain_from_account() {
            self.check_account_binding(caller, profile, &csr)?;
        }
        let requester = Requester {
            user_id: caller.user_id.clone(),
            username: caller.username.clone(),
            actor: caller.username.clone(),
        };
        self.submit_checked(
            &requester,
            profile,
            &csr,
            Submission {
                justification: justification.to_string(),
                work_order: work_order.map(str::to_string),
                window,
                on_store: None,
                approved: false,
                duplicates: profile.duplicates(),
            },
        )
    }

    /// Stores (or, without approvals, issues) a request whose requester is already authorized
    /// and whose CSR is verified: the API's submissions, device enrollment and renewal.
    pub(crate) fn submit_checked(
        &self,
        requester: &Requester,
        profile: &Profile,
        csr: &VerifiedCsr,
        submission: Submission,
    ) -> Result<Submitted, ServiceError> {
        let Submission {
            justification,
            work_order,
            window,
            on_store,
            approved,
            duplicates: policy,
        } = submission;
        let ca = self.issuing_ca(profile)?;
        // The profile, the window and the lint all pass before anything is stored; a profile
        // without approvals issues this very preparation.
        let prepared = PreparedIssuance::prepare(
            ca,
            profile,
            csr,
            &IssuanceOptions { window },
            &*self.clock,
            &*self.random,
        )?;
        let approved_now = approved || profile.approval().approvals == 0;
        // A request that waits for approvers, or a profile that refuses duplicates, looks now
        // (refusing before anything is signed). Issuance at once looks again in the writer's
        // own transaction, with no second connection per issuance (`issue_at_once`).
        let duplicates = if !approved_now || policy == DuplicatePolicy::Refuse {
            self.conn()?
                .valid_with_subject(profile.id(), prepared.subject(), 10)?
        } else {
            Vec::new()
        };
        if policy == DuplicatePolicy::Refuse && !duplicates.is_empty() {
            return Err(refused_duplicate(profile, prepared.subject(), &duplicates));
        }
        let shown_duplicates: Vec<String> = duplicates
            .iter()
            .map(|(ca, serial)| format!("{ca}/{serial}"))
            .collect();
        let now = self.now().as_secs() as i64;
        let row = RequestRow {
            id: new_ordered_id("req", self.clock.now_ms())?,
            profile_id: profile.id().to_string(),
            requester_id: requester.user_id.clone(),
            csr_der: csr.der().to_vec(),
            justification,
            work_order,
            window_start: window.map(|w| w.0.as_secs() as i64),
            window_end: window.map(|w| w.1.as_secs() as i64),
            status: if approved_now {
                RequestStatus::Approved
            } else {
                RequestStatus::Pending
            }
            .as_str()
            .into(),
            ca_id: None,
            certificate_serial: None,
            failure: None,
            created_at: now,
            updated_at: now,
        };
        let mut view = row.clone();
        if approved_now && ca.signs_outside_process() {
            // The key is in a token: the signature leaves the process, so the serial and TBS
            // are reserved (committed) before anything is signed, as after approvals.
            let (id, username) = (row.id.clone(), requester.username.clone());
            self.store_request(row, &requester.actor, on_store, now)?;
            let mut conn = self.conn()?;
            let older = self.issue_approved(&mut conn, &id, &requester.actor)?;
            let stored = conn
                .request(&id)?
                .ok_or_else(|| ServiceError::Internal(format!("request {id} vanished")))?;
            drop(conn);
            if !older.is_empty() {
                self.supersede(&older, &id)?;
            }
            let mut view = self.view_of(stored, username, &[]);
            view.duplicates = shown_duplicates;
            return Ok(Submitted::Stored(Box::new(view)));
        }
        if approved_now {
            let (serial, commit, signed) = self.issue_at_once(
                row,
                ca,
                profile,
                prepared,
                &requester.actor,
                now,
                on_store,
                policy,
            )?;
            // What issue_at_once stores, without reading the row back.
            view.status = RequestStatus::Issued.as_str().into();
            view.ca_id = Some(ca.id().to_string());
            view.certificate_serial = Some(serial.clone());
            let shown = self.view_of(view, requester.username.clone(), &[]);
            return Ok(Submitted::Issuing(Box::new(Issuing {
                commit,
                signed,
                ca_id: ca.id().to_string(),
                profile_id: profile.id().to_string(),
                serial,
                view: shown,
                policy,
            })));
        }
        self.store_request(row, &requester.actor, on_store, now)?;
        let mut view = self.view_of(view, requester.username.clone(), &[]);
        view.duplicates = shown_duplicates;
        if !approved_now {
            self.notify_waiting(&view, profile, &requester.user_id);
        }
        Ok(Submitted::Stored(Box::new(view)))
    }

    /// Stores a request that waits (for approvals, or for its reserved issuance), with its
    /// `on_store` work and audit entry, in one commit.
    fn store_request(
        &self,
        row: RequestRow,
        actor: &str,
        on_store: Option<OnStore>,
        now: i64,
    ) -> Result<(), ServiceError> {
        let entry = submit_entry(&row, actor, now);
        self.writer.run(move |w| {
            w.conn.insert_request(&row)?;
            if let Some(hook) = &on_store {
                hook(w.conn, &row.id, now)?;
            }
            w.audit(entry.clone());
            Ok(())
        })?;
        Ok(())
    }

    fn issuing_ca(&self, profile: &Profile) -> Result<&CertificateAuthority, ServiceError> {
        self.require_unlocked()?;
        self.issuers.get(profile.issuing_ca()).ok_or_else(|| {
            ServiceError::Internal(format!(
                "profile {} names unknown CA {}",
                profile.id(),
                profile.issuing_ca()
            ))
        })
    }

    /// Issues an approved request: reserve serial + TBS, sign, then store the certificate,
    /// mark the request issued and audit, in one transaction. Returns the certificates a
    /// `supersede` profile now revokes: the caller does that once it has given `conn` back
    /// (revocation takes connections of its own).
    pub(super) fn issue_approved(
        &self,
        conn: &mut DbConnection,
        request_id: &str,
        actor: &str,
    ) -> Result<Vec<(String, String)>, ServiceError> {
        let row = conn
            .request(request_id)?
            .ok_or_else(|| ServiceError::NotFound(format!("request {request_id}")))?;
        if RequestStatus::of_row(&row.status)? != RequestStatus::Approved {
            return Ok(Vec::new());
        }
        let profile = self
            .profiles
            .get(&row.profile_id)
            .ok_or_else(|| ServiceError::Internal("profile vanished".into()))?;
        let ca = self.issuing_ca(profile)?;
        let window = row
            .window_start
            .zip(row.window_end)
            .map(|(s, e)| (UnixTime(s as u64), UnixTime(e as u64)));
        let now = self.now().as_secs() as i64;
        let prepared = VerifiedCsr::parse_remembering(
            &row.csr_der,
            profile.min_rsa_bits(),
            &self.csr_signatures,
        )
        .map_err(ServiceError::from)
        .and_then(|csr| {
            Ok(PreparedIssuance::prepare(
                ca,
                profile,
                &csr,
                &IssuanceOptions { window },
                &*self.clock,
                &*self.random,
            )?)
        });
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                let message = e.to_string();
                crate::store::write_transaction::<_, ServiceError, _>(&mut *conn, |conn| {
                    conn.fail_request(request_id, &message, now)?;
                    audit_log::append(
                        conn,
                        now as u64,
                        actor,
                        "request.failed",
                        request_id,
                        json!({"error": message}),
                    )?;
                    Ok(())
                })?;
                return Ok(Vec::new());
            }
        };
        let subject = prepared.subject().to_string();
        let serial =
            crate::ca::reservation::reserve(conn, ca, &prepared, profile.id(), Some(&row.id), now)?;
        self.finish_issue(request_id, ca, profile, prepared, &serial, actor, now)?;
        if profile.duplicates() == DuplicatePolicy::Supersede {
            return Ok(conn
                .valid_with_subject(profile.id(), &subject, 1000)?
                .into_iter()
                .filter(|(c, s)| !(c == ca.id() && *s == serial))
                .collect());
        }
        Ok(Vec::new())
    }

    /// Signs the certificate and its first OCSP response (good), and builds the audit entry of
    /// the issuance; nothing is stored yet.
    #[allow(clippy::too_many_arguments)]
    fn sign_issuance(
        &self,
        request_id: &str,
        ca: &CertificateAuthority,
        profile: &Profile,
        prepared: PreparedIssuance,
        serial: &str,
        actor: &str,
        now: i64,
    ) -> Result<SignedIssuance, ServiceError> {
        let issued = prepared.sign(ca)?;
        let response = match self
            .ocsp
            .sign_response(ca.id(), serial, ca_core::ocsp::Status::Good)
        {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(error = %e, cert.serial = %serial, "pre-signing the OCSP response failed; upkeep will retry");
                None
            }
        };
        let details = json!({"request": request_id, "profile": profile.id(), "subject": issued.subject, "not_after": issued.not_after.to_rfc3339()});
        let entry = audit_log::Entry::new(
            now as u64,
            actor,
            "certificate.issue",
            &format!("{}/{serial}", ca.id()),
            details,
        );
        Ok(SignedIssuance {
            der: issued.der,
            // Shared with the queued write, which stores it, then cached from here once durable.
            response,
            entry,
        })
    }

    /// After the commit that stored an issuance: caches its OCSP response, counts and logs it.
    fn issued(&self, signed: &SignedIssuance, ca_id: &str, profile_id: &str, serial: &str) {
        if let Some(response) = &signed.response {
            self.ocsp.cache_signed(response);
        }
        self.metrics
            .issued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(cert.serial = %serial, ca.id = %ca_id, profile.id = %profile_id, "certificate issued");
    }

    /// Issues a request whose profile needs no approval, with one durable commit: signs the
    /// certificate and its first OCSP response, then stores the request (already issued), the
    /// certificate, the response and both audit entries together (sharing the commit with other
    /// writes through the group-commit writer). Nothing signed leaves the process before that
    /// commit: if it fails, the caller gets the error and the certificate is dropped unseen.
    /// Returns the serial (hex) and the queued commit, which the caller awaits
    /// ([`Issuing::done`]).
    #[allow(clippy::too_many_arguments)]
    fn issue_at_once(
        &self,
        mut request: RequestRow,
        ca: &CertificateAuthority,
        profile: &Profile,
        prepared: PreparedIssuance,
        actor: &str,
        now: i64,
        on_store: Option<OnStore>,
        policy: DuplicatePolicy,
    ) -> Result<(String, Committing<Duplicates>, SignedIssuance), ServiceError> {
        let mut certificate = crate::ca::reservation::reservation(
            ca,
            &prepared,
            profile.id(),
            Some(&request.id),
            now,
        );
        let names = crate::ca::reservation::names_row(&certificate, &prepared);
        let serial = certificate.serial.clone();
        let signed = self.sign_issuance(&request.id, ca, profile, prepared, &serial, actor, now)?;
        certificate.der = Some(signed.der.clone());
        // As after a reservation: the stored certificate holds its TBS.
        certificate.tbs_der = Vec::new();
        certificate.status = CertificateStatus::Valid.as_str().into();
        let submitted = submit_entry(&request, actor, now);
        request.status = RequestStatus::Issued.as_str().into();
        request.ca_id = Some(ca.id().to_string());
        request.certificate_serial = Some(serial.clone());
        let entry = signed.entry.clone();
        let response = signed.response.as_ref().map(|r| r.row.clone());
        let (profile_id, subject) = (profile.id().to_string(), certificate.subject.clone());
        let refuses = policy == DuplicatePolicy::Refuse;
        let refusing = profile.clone();
        // Inserted with the batch's other new rows, one statement per table (a new serial has no
        // response to replace). The valid certificates of the same subject are read first, in
        // the batch's transaction: this one's rows are not inserted yet, so they are only the
        // earlier ones. A refusing profile refuses here too (two submissions at once).
        let commit = self.writer.queue(move |w| {
            let duplicates = w.conn.valid_with_subject(&profile_id, &subject, 10)?;
            if refuses && !duplicates.is_empty() {
                return Err(refused_duplicate(&refusing, &subject, &duplicates));
            }
            if let Some(hook) = &on_store {
                hook(w.conn, &request.id, now)?;
            }
            w.add_request(request.clone());
            w.audit(submitted.clone());
            w.add_certificate(certificate.clone(), names.clone());
            w.audit(entry.clone());
            if let Some(row) = &response {
                w.add_response(row.clone());
            }
            Ok(duplicates)
        })?;
        Ok((serial, commit, signed))
    }

    /// Signs a reserved certificate and its first OCSP response (good), then in one commit (shared
    /// with other issuances through the group-commit writer) stores the certificate, marks the
    /// request issued, appends the audit entry and stores the OCSP response.
    #[allow(clippy::too_many_arguments)]
    fn finish_issue(
        &self,
        request_id: &str,
        ca: &CertificateAuthority,
        profile: &Profile,
        prepared: PreparedIssuance,
        serial: &str,
        actor: &str,
        now: i64,
    ) -> Result<(), ServiceError> {
        let signed = self.sign_issuance(request_id, ca, profile, prepared, serial, actor, now)?;
        let (ca_id, serial_owned) = (ca.id().to_string(), serial.to_string());
        let request_id = request_id.to_string();
        let (der, entry, response) = (
            signed.der.clone(),
            signed.entry.clone(),
            signed.response.as_ref().map(|r| r.row.clone()),
        );
        self.writer.run(move |w| {
            crate::ca::reservation::mark_issued(w.conn, &ca_id, &serial_owned, &der)?;
            if !w
                .conn
                .mark_request_issued(&request_id, &ca_id, &serial_owned, now)?
            {
                return Err(ServiceError::Conflict(
                    "request changed while issuing".into(),
                ));
            }
            w.audit(entry.clone());
            if let Some(row) = &response {
                // The certificate was reserved until now, so it has no response to replace.
                crate::ocsp::insert_response(w.conn, row)?;
            }
            Ok(())
        })?;
        self.issued(&signed, ca.id(), profile.id(), serial);
        Ok(())
    }
}
