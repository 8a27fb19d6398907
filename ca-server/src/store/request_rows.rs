//! The rows the RA reads and writes: certificate requests and their decisions, the certificates
//! it shows and revokes, and the few account facts a request needs (the requester's name,
//! registered organization and domain, whether they are disabled). `ra/` reaches the database
//! only through [`RequestRows`] and [`AuditRows`]; the queries live here.

use diesel::prelude::*;

use super::models::*;
use super::schema::*;
use super::status::{CertificateStatus, RequestStatus};
use super::DbConnection;

/// Filters and position of a page of the certificate list (newest first).
#[derive(Debug, Clone, Default)]
pub struct CertificateQuery<'a> {
    /// Only this profile's.
    pub profile: Option<&'a str>,
    /// Only in this status.
    pub status: Option<CertificateStatus>,
    /// Only those ending in (`now`, `until`].
    pub ending_between: Option<(i64, i64)>,
    /// Only those requested by this user.
    pub requester_id: Option<&'a str>,
    /// Only those whose subject contains this text (a name, a staff number: any case).
    pub subject: Option<&'a str>,
    /// Only those with a subjectAltName containing this text (any case).
    pub san: Option<&'a str>,
    /// Only those whose subject's serialNumber is exactly this (any case).
    pub staff_id: Option<&'a str>,
    /// Only those whose serial (lower-case hex) starts with this.
    pub serial_prefix: Option<&'a str>,
    /// Only those listed after this one: (created_at, CA, serial) of the last row of the page
    /// before.
    pub after: Option<(i64, String, String)>,
}

/// Filters and position of a page of the request list (newest first).
#[derive(Debug, Clone, Default)]
pub struct RequestQuery<'a> {
    /// Only in this status.
    pub status: Option<RequestStatus>,
    /// Only this profile's.
    pub profile: Option<&'a str>,
    /// Only this requester's.
    pub requester_id: Option<&'a str>,
    /// Only those older than this id (ids sort by creation time).
    pub before_id: Option<&'a str>,
}

/// Filters and position of a page of the audit trail.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery<'a> {
    /// Only this action.
    pub action: Option<&'a str>,
    /// Only this actor's.
    pub actor: Option<&'a str>,
    /// Only on this target.
    pub target: Option<&'a str>,
    /// Only at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// Only at or before this time (Unix seconds).
    pub until: Option<i64>,
    /// Oldest first (exports, verification) instead of newest first.
    pub oldest_first: bool,
    /// Oldest first: only entries after this sequence number. Newest first: only before it.
    pub from_seq: Option<i64>,
}

/// `text` without LIKE's wildcards (`%`, `_`) and the backslash: SQLite's LIKE has no default
/// escape character, so they are dropped rather than escaped (a filter, not a rule).
fn like_text(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '%' | '_' | '\\'))
        .collect()
}

/// A status change of one certificate: what revoke, hold and release write.
#[derive(Debug, Clone)]
pub struct StatusWrite<'a> {
    /// The new status.
    pub status: CertificateStatus,
    /// The revocation reason's name (none for a release).
    pub reason: Option<&'a str>,
    /// When revoked or held.
    pub revoked_at: Option<i64>,
    /// The invalidity date given.
    pub invalidity_date: Option<i64>,
    /// The change's time in milliseconds (what CRL and OCSP upkeep compare against).
    pub changed_ms: i64,
}

/// What the RA asks of the database about requests and certificates.
pub trait RequestRows {
    /// A request.
    fn request(&mut self, id: &str) -> QueryResult<Option<RequestRow>>;
    /// A request with its requester's name.
    fn request_with_requester(&mut self, id: &str) -> QueryResult<Option<(RequestRow, String)>>;
    /// Who asked for a request.
    fn requester_of(&mut self, id: &str) -> QueryResult<Option<String>>;
    /// A page of at most `limit` request ids, newest first, and how many match in all.
    fn request_page(&mut self, query: &RequestQuery, limit: i64)
        -> QueryResult<(Vec<String>, i64)>;
    /// A user's id by name.
    fn user_id_by_name(&mut self, name: &str) -> QueryResult<Option<String>>;
    /// The ids of every pending request.
    fn pending_request_ids(&mut self) -> QueryResult<Vec<String>>;
    /// Stores a new request.
    fn insert_request(&mut self, row: &RequestRow) -> QueryResult<()>;
    /// Moves a request from `from` to `to` at `now` if it is still in `from`; false if it was
    /// not (another decision or instance moved it first).
    fn move_request(
        &mut self,
        id: &str,
        from: RequestStatus,
        to: RequestStatus,
        now: i64,
    ) -> QueryResult<bool>;
    /// Sets a request's status whatever it was.
    fn set_request_status(&mut self, id: &str, to: RequestStatus, now: i64) -> QueryResult<()>;
    /// Marks an approved request failed, with why.
    fn fail_request(&mut self, id: &str, why: &str, now: i64) -> QueryResult<()>;
    /// Marks an approved request issued with its certificate; false if it was not approved.
    fn mark_request_issued(
        &mut self,
        id: &str,
        ca_id: &str,
        serial: &str,
        now: i64,
    ) -> QueryResult<bool>;

    /// The decisions on a request with each approver's name, oldest first.
    fn decisions_of(&mut self, request_id: &str) -> QueryResult<Vec<(DecisionRow, String)>>;
    /// Stores a decision.
    fn insert_decision(&mut self, row: &DecisionRow) -> QueryResult<()>;

    /// Whether a user's account is disabled (`true` for a user that does not exist).
    fn user_disabled(&mut self, id: &str) -> QueryResult<bool>;
    /// A user (the RA reads the caller's row for step-up and cooling-off).
    fn user_row(&mut self, id: &str) -> QueryResult<UserRow>;
    /// The organization and e-mail domain registered on an account.
    fn registered_fields(&mut self, id: &str) -> QueryResult<(Option<String>, Option<String>)>;
    /// Every account's name (a reviewer is warned of a CSR naming one).
    fn usernames(&mut self) -> QueryResult<Vec<String>>;

    /// A certificate row.
    fn certificate(&mut self, ca_id: &str, serial: &str) -> QueryResult<Option<CertificateRow>>;
    /// A certificate's DER.
    fn certificate_der(&mut self, ca_id: &str, serial: &str) -> QueryResult<Option<Vec<u8>>>;
    /// A page of at most `limit` issued certificates matching `query`, newest first, and how
    /// many match in all.
    fn certificate_page(
        &mut self,
        query: &CertificateQuery,
        limit: i64,
    ) -> QueryResult<(Vec<CertificateRow>, i64)>;
    /// Up to `limit` valid staff certificates whose subject contains `CN=<cn>` (LIKE's
    /// wildcards in `cn` are dropped).
    fn valid_staff_certificates_named(&mut self, cn: &str, limit: i64) -> QueryResult<Vec<String>>;
    /// The newest `limit` valid certificates of `subject` under `profile_id`: (CA, serial).
    fn valid_with_subject(
        &mut self,
        profile_id: &str,
        subject: &str,
        limit: i64,
    ) -> QueryResult<Vec<(String, String)>>;
    /// Revokes a certificate that is still valid as superseded at `at`; false when it no
    /// longer was (revoked or held meanwhile).
    fn supersede_if_valid(
        &mut self,
        ca_id: &str,
        serial: &str,
        at: i64,
        changed_ms: i64,
    ) -> QueryResult<bool>;
    /// Writes a certificate's status change.
    fn set_certificate_status(
        &mut self,
        ca_id: &str,
        serial: &str,
        change: &StatusWrite,
    ) -> QueryResult<()>;
}

impl RequestRows for DbConnection {
    fn request(&mut self, id: &str) -> QueryResult<Option<RequestRow>> {
        requests::table
            .find(id)
            .select(RequestRow::as_select())
            .first(self)
            .optional()
    }

    fn request_with_requester(&mut self, id: &str) -> QueryResult<Option<(RequestRow, String)>> {
        requests::table
            .inner_join(users::table.on(users::id.eq(requests::requester_id)))
            .filter(requests::id.eq(id))
            .select((RequestRow::as_select(), users::username))
            .first(self)
            .optional()
    }

    fn requester_of(&mut self, id: &str) -> QueryResult<Option<String>> {
        requests::table
            .find(id)
            .select(requests::requester_id)
            .first(self)
            .optional()
    }

    fn request_page(
        &mut self,
        query: &RequestQuery,
        limit: i64,
    ) -> QueryResult<(Vec<String>, i64)> {
        let filtered = |query: &RequestQuery| {
            let mut rows = requests::table.into_boxed();
            if let Some(s) = query.status {
                rows = rows.filter(requests::status.eq(s.as_str()));
            }
            if let Some(p) = query.profile {
                rows = rows.filter(requests::profile_id.eq(p.to_string()));
            }
            if let Some(r) = query.requester_id {
                rows = rows.filter(requests::requester_id.eq(r.to_string()));
            }
            rows
        };
        let total = filtered(query).count().get_result(self)?;
        let mut page = filtered(query);
        if let Some(before) = query.before_id {
            page = page.filter(requests::id.lt(before.to_string()));
        }
        let ids = page
            .select(requests::id)
            .order(requests::id.desc())
            .limit(limit)
            .load(self)?;
        Ok((ids, total))
    }

    fn user_id_by_name(&mut self, name: &str) -> QueryResult<Option<String>> {
        users::table
            .filter(users::username.eq(name))
            .select(users::id)
            .first(self)
            .optional()
    }

    fn pending_request_ids(&mut self) -> QueryResult<Vec<String>> {
        requests::table
            .filter(requests::status.eq(RequestStatus::Pending.as_str()))
            .select(requests::id)
            .load(self)
    }

    fn insert_request(&mut self, row: &RequestRow) -> QueryResult<()> {
        diesel::insert_into(requests::table)
            .values(row)
            .execute(self)?;
        Ok(())
    }

    fn move_request(
        &mut self,
        id: &str,
        from: RequestStatus,
        to: RequestStatus,
        now: i64,
    ) -> QueryResult<bool> {
        let moved = diesel::update(
            requests::table
                .find(id)
                .filter(requests::status.eq(from.as_str())),
        )
        .set((
            requests::status.eq(to.as_str()),
            requests::updated_at.eq(now),
        ))
        .execute(self)?;
        Ok(moved == 1)
    }

    fn set_request_status(&mut self, id: &str, to: RequestStatus, now: i64) -> QueryResult<()> {
        diesel::update(requests::table.find(id))
            .set((
                requests::status.eq(to.as_str()),
                requests::updated_at.eq(now),
            ))
            .execute(self)?;
        Ok(())
    }

    fn fail_request(&mut self, id: &str, why: &str, now: i64) -> QueryResult<()> {
        diesel::update(requests::table.find(id))
            .set((
                requests::status.eq(RequestStatus::Failed.as_str()),
                requests::failure.eq(why),
                requests::updated_at.eq(now),
            ))
            .execute(self)?;
        Ok(())
    }

    fn mark_request_issued(
        &mut self,
        id: &str,
        ca_id: &str,
        serial: &str,
        now: i64,
    ) -> QueryResult<bool> {
        let updated = diesel::update(
            requests::table
                .find(id)
                .filter(requests::status.eq(RequestStatus::Approved.as_str())),
        )
        .set((
            requests::status.eq(RequestStatus::Issued.as_str()),
            requests::ca_id.eq(ca_id),
            requests::certificate_serial.eq(serial),
            requests::updated_at.eq(now),
        ))
        .execute(self)?;
        Ok(updated == 1)
    }

    fn decisions_of(&mut self, request_id: &str) -> QueryResult<Vec<(DecisionRow, String)>> {
        decisions::table
            .inner_join(users::table.on(users::id.eq(decisions::approver_id)))
            .filter(decisions::request_id.eq(request_id))
            // Decisions in the same second come out in name order, not in whatever order the
            // database finds them (the vendor export's approvers column flipped between runs).
            .order((decisions::decided_at.asc(), users::username.asc()))
            .select((DecisionRow::as_select(), users::username))
            .load(self)
    }

    fn insert_decision(&mut self, row: &DecisionRow) -> QueryResult<()> {
        diesel::insert_into(decisions::table)
            .values(row)
            .execute(self)?;
        Ok(())
    }

    fn user_disabled(&mut self, id: &str) -> QueryResult<bool> {
        Ok(users::table
            .find(id)
            .select(users::disabled)
            .first(self)
            .optional()?
            .unwrap_or(true))
    }

    fn user_row(&mut self, id: &str) -> QueryResult<UserRow> {
        users::table
            .find(id)
            .select(UserRow::as_select())
            .first(self)
    }

    fn registered_fields(&mut self, id: &str) -> QueryResult<(Option<String>, Option<String>)> {
        users::table
            .find(id)
            .select((users::organization, users::email_domain))
            .first(self)
    }

    fn usernames(&mut self) -> QueryResult<Vec<String>> {
        users::table.select(users::username).load(self)
    }

    fn certificate(&mut self, ca_id: &str, serial: &str) -> QueryResult<Option<CertificateRow>> {
        certificates::table
            .find((ca_id, serial))
            .select(CertificateRow::as_select())
            .first(self)
            .optional()
    }

    fn certificate_der(&mut self, ca_id: &str, serial: &str) -> QueryResult<Option<Vec<u8>>> {
        certificates::table
            .find((ca_id, serial))
            .select(certificates::der)
            .first(self)
    }

    fn certificate_page(
        &mut self,
        query: &CertificateQuery,
        limit: i64,
    ) -> QueryResult<(Vec<CertificateRow>, i64)> {
        let own: Option<Vec<String>> = match query.requester_id {
            Some(requester) => Some(
                requests::table
                    .filter(requests::requester_id.eq(requester))
                    .select(requests::id)
                    .load(self)?,
            ),
            None => None,
        };
        let filtered = || {
            let mut rows = certificates::table
                .filter(certificates::status.ne(CertificateStatus::Reserved.as_str()))
                .into_boxed();
            if let Some(p) = query.profile {
                rows = rows.filter(certificates::profile_id.eq(p.to_string()));
            }
            if let Some(s) = query.status {
                rows = rows.filter(certificates::status.eq(s.as_str()));
            }
            if let Some((now, until)) = query.ending_between {
                rows = rows
                    .filter(certificates::not_after.le(until))
                    .filter(certificates::not_after.gt(now));
            }
            if let Some(ids) = &own {
                rows = rows.filter(certificates::request_id.eq_any(ids.clone()));
            }
            if let Some(text) = query.subject {
                // lower() on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
                rows = rows.filter(
                    diesel::dsl::sql::<diesel::sql_types::Bool>("lower(subject) LIKE ")
                        .bind::<diesel::sql_types::Text, _>(format!(
                        "%{}%",
                        like_text(&text.to_lowercase())
                    )),
                );
            }
            if let Some(text) = query.san {
                rows = rows.filter(diesel::dsl::exists(
                    certificate_names::table
                        .filter(certificate_names::ca_id.eq(certificates::ca_id))
                        .filter(certificate_names::serial.eq(certificates::serial))
                        .filter(
                            diesel::dsl::sql::<diesel::sql_types::Bool>(
                                "lower(certificate_names.names) LIKE ",
                            )
                            .bind::<diesel::sql_types::Text, _>(
                                format!("%{}%", like_text(&text.to_lowercase())),
                            ),
                        ),
                ));
            }
            if let Some(id) = query.staff_id {
                // RFC 4514: the attribute ends the subject, or a comma or plus sign follows it.
                let exact = format!("%serialnumber={}", like_text(&id.to_lowercase()));
                let [last, comma, plus] =
                    [exact.clone(), format!("{exact},%"), format!("{exact}+%")];
                let like = |pattern: String| {
                    diesel::dsl::sql::<diesel::sql_types::Bool>("lower(subject) LIKE ")
                        .bind::<diesel::sql_types::Text, _>(pattern)
                };
                rows = rows.filter(like(last).or(like(comma)).or(like(plus)));
            }
            if let Some(prefix) = query.serial_prefix {
                rows = rows.filter(
                    certificates::serial.like(format!("{}%", like_text(&prefix.to_lowercase()))),
                );
            }
            rows
        };
        let total = filtered().count().get_result(self)?;
        let mut page = filtered();
        if let Some((created, ca, serial)) = &query.after {
            page = page.filter(
                certificates::created_at
                    .lt(*created)
                    .or(certificates::created_at.eq(*created).and(
                        certificates::ca_id.lt(ca.clone()).or(certificates::ca_id
                            .eq(ca.clone())
                            .and(certificates::serial.lt(serial.clone()))),
                    )),
            );
        }
        let rows = page
            .order((
                certificates::created_at.desc(),
                certificates::ca_id.desc(),
                certificates::serial.desc(),
            ))
            .limit(limit)
            .select(CertificateRow::as_select())
            .load(self)?;
        Ok((rows, total))
    }

    fn valid_staff_certificates_named(&mut self, cn: &str, limit: i64) -> QueryResult<Vec<String>> {
        certificates::table
            .filter(certificates::profile_id.eq("staff"))
            .filter(certificates::status.eq(CertificateStatus::Valid.as_str()))
            .filter(certificates::subject.like(format!("%CN={}%", like_text(cn))))
            .select(certificates::serial)
            .limit(limit)
            .load(self)
    }

    fn valid_with_subject(
        &mut self,
        profile_id: &str,
        subject: &str,
        limit: i64,
    ) -> QueryResult<Vec<(String, String)>> {
        certificates::table
            .filter(certificates::profile_id.eq(profile_id))
            .filter(certificates::subject.eq(subject))
            .filter(certificates::status.eq(CertificateStatus::Valid.as_str()))
            .order(certificates::created_at.desc())
            .select((certificates::ca_id, certificates::serial))
            .limit(limit)
            .load(self)
    }

    fn supersede_if_valid(
        &mut self,
        ca_id: &str,
        serial: &str,
        at: i64,
        changed_ms: i64,
    ) -> QueryResult<bool> {
        let changed = diesel::update(
            certificates::table
                .find((ca_id, serial))
                .filter(certificates::status.eq(CertificateStatus::Valid.as_str())),
        )
        .set((
            certificates::status.eq(CertificateStatus::Revoked.as_str()),
            certificates::revocation_reason.eq(Some("superseded")),
            certificates::revoked_at.eq(Some(at)),
            certificates::status_changed_ms.eq(changed_ms),
        ))
        .execute(self)?;
        Ok(changed == 1)
    }

    fn set_certificate_status(
        &mut self,
        ca_id: &str,
        serial: &str,
        change: &StatusWrite,
    ) -> QueryResult<()> {
        diesel::update(certificates::table.find((ca_id, serial)))
            .set((
                certificates::status.eq(change.status.as_str()),
                certificates::revocation_reason.eq(change.reason),
                certificates::revoked_at.eq(change.revoked_at),
                certificates::invalidity_date.eq(change.invalidity_date),
                certificates::status_changed_ms.eq(change.changed_ms),
            ))
            .execute(self)?;
        Ok(())
    }
}

/// One stored audit checkpoint: (seq, hash, at, signature).
pub type CheckpointRow = (i64, String, i64, String);

/// What the RA asks of the database about the audit trail (appending goes through
/// `store::audit_log`).
pub trait AuditRows {
    /// A page of at most `limit` entries matching `query`, and how many match in all.
    fn audit_page(&mut self, query: &AuditQuery, limit: i64) -> QueryResult<(Vec<AuditRow>, i64)>;
    /// The chain's head: (seq, hash).
    fn audit_head(&mut self) -> QueryResult<Option<(i64, String)>>;
    /// Stores a checkpoint; fails if one of that sequence number exists.
    fn insert_checkpoint(&mut self, row: &CheckpointRow) -> QueryResult<()>;
    /// Every checkpoint, oldest first.
    fn checkpoints(&mut self) -> QueryResult<Vec<CheckpointRow>>;
    /// The newest `limit` checkpoints, newest first.
    fn newest_checkpoints(&mut self, limit: i64) -> QueryResult<Vec<CheckpointRow>>;
}

impl AuditRows for DbConnection {
    fn audit_page(&mut self, query: &AuditQuery, limit: i64) -> QueryResult<(Vec<AuditRow>, i64)> {
        use super::schema::audit_log as log;
        let filtered = || {
            let mut rows = log::table.into_boxed();
            if let Some(a) = query.action {
                rows = rows.filter(log::action.eq(a.to_string()));
            }
            if let Some(a) = query.actor {
                rows = rows.filter(log::actor.eq(a.to_string()));
            }
            if let Some(t) = query.target {
                rows = rows.filter(log::target.eq(t.to_string()));
            }
            if let Some(t) = query.since {
                rows = rows.filter(log::at.ge(t));
            }
            if let Some(t) = query.until {
                rows = rows.filter(log::at.le(t));
            }
            rows
        };
        let total = filtered().count().get_result(self)?;
        let page = match (query.oldest_first, query.from_seq) {
            (true, Some(after)) => filtered().filter(log::seq.gt(after)).order(log::seq.asc()),
            (true, None) => filtered().order(log::seq.asc()),
            (false, Some(before)) => filtered()
                .filter(log::seq.lt(before))
                .order(log::seq.desc()),
            (false, None) => filtered().order(log::seq.desc()),
        };
        let rows = page.limit(limit).select(AuditRow::as_select()).load(self)?;
        Ok((rows, total))
    }

    fn audit_head(&mut self) -> QueryResult<Option<(i64, String)>> {
        audit_log::table
            .order(audit_log::seq.desc())
            .select((audit_log::seq, audit_log::hash))
            .first(self)
            .optional()
    }

    fn insert_checkpoint(&mut self, row: &CheckpointRow) -> QueryResult<()> {
        diesel::insert_into(audit_checkpoints::table)
            .values((
                audit_checkpoints::seq.eq(row.0),
                audit_checkpoints::hash.eq(&row.1),
                audit_checkpoints::at.eq(row.2),
                audit_checkpoints::signature.eq(&row.3),
            ))
            .execute(self)?;
        Ok(())
    }

    fn checkpoints(&mut self) -> QueryResult<Vec<CheckpointRow>> {
        audit_checkpoints::table
            .order(audit_checkpoints::seq.asc())
            .select((
                audit_checkpoints::seq,
                audit_checkpoints::hash,
                audit_checkpoints::at,
                audit_checkpoints::signature,
            ))
            .load(self)
    }

    fn newest_checkpoints(&mut self, limit: i64) -> QueryResult<Vec<CheckpointRow>> {
        audit_checkpoints::table
            .order(audit_checkpoints::seq.desc())
            .limit(limit)
            .select((
                audit_checkpoints::seq,
                audit_checkpoints::hash,
                audit_checkpoints::at,
                audit_checkpoints::signature,
            ))
            .load(self)
    }
}
