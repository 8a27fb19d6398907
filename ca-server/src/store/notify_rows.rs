//! The rows notifications read and write: the outbox of notices (`notifications`), each
//! person's contact address (`user_contacts`), and the certificates a notice is about. The
//! notify service reaches the database only through [`NotifyRows`].

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use super::models::NotificationRow;
use super::schema::*;
use super::DbConnection;

/// A valid certificate that ends soon, as the expiry scan reads it.
#[derive(Debug, Clone)]
pub struct ExpiringRow {
    /// Issuing CA.
    pub ca_id: String,
    /// Serial (hex).
    pub serial: String,
    /// Profile.
    pub profile_id: String,
    /// Subject (RFC 4514 text).
    pub subject: String,
    /// notAfter (Unix seconds).
    pub not_after: i64,
    /// The request it was issued for, if any.
    pub request_id: Option<String>,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Sent at this time.
    Sent(i64),
    /// Failed; tried again at `next` (attempts counted).
    Retry {
        /// When to try again.
        next: i64,
        /// Why it failed.
        error: String,
    },
    /// Failed for good (attempts used up).
    Failed(String),
}

/// What notifications ask of the database.
pub trait NotifyRows {
    /// Stores a notice; false when the same event, channel and recipient is already stored
    /// (by this instance before, or by another).
    fn insert_notice(&mut self, row: &NotificationRow) -> QueryResult<bool>;
    /// Claims up to `limit` pending notices due at `now` for delivery until `lease_until`;
    /// another instance's claim on a row is respected until its lease ends.
    fn claim_due(
        &mut self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> QueryResult<Vec<NotificationRow>>;
    /// Records how a delivery ended.
    fn finish_notice(&mut self, id: &str, outcome: &Delivery) -> QueryResult<()>;
    /// The newest notices (`status` filters), newest first.
    fn notices(&mut self, status: Option<&str>, limit: i64) -> QueryResult<Vec<NotificationRow>>;
    /// How many notices are pending and how many failed.
    fn notice_counts(&mut self) -> QueryResult<(i64, i64)>;

    /// Sets (or with `None` removes) a person's contact address.
    fn set_contact(&mut self, user_id: &str, email: Option<&str>) -> QueryResult<()>;
    /// A person's contact address.
    fn contact(&mut self, user_id: &str) -> QueryResult<Option<String>>;
    /// Every enabled account with a contact address: (user id, roles text, address).
    fn contacts(&mut self) -> QueryResult<Vec<(String, String, String)>>;

    /// Valid certificates of `profiles` ending after `now` and by `until`, soonest first.
    fn expiring(
        &mut self,
        profiles: &[String],
        now: i64,
        until: i64,
        limit: i64,
    ) -> QueryResult<Vec<ExpiringRow>>;
    /// How many valid certificates of each profile end after `now` and by `until`.
    fn expiring_counts(&mut self, now: i64, until: i64) -> QueryResult<Vec<(String, i64)>>;
    /// A certificate's subjectAltNames line (`email:a@b dns:x`).
    fn certificate_names(&mut self, ca_id: &str, serial: &str) -> QueryResult<Option<String>>;
    /// The account that asked for a request.
    fn requester_of(&mut self, request_id: &str) -> QueryResult<Option<String>>;
}

impl NotifyRows for DbConnection {
    fn insert_notice(&mut self, row: &NotificationRow) -> QueryResult<bool> {
        // In a savepoint of its own: on PostgreSQL a unique violation would otherwise abort
        // the caller's transaction.
        let inserted = self.transaction(|conn| {
            diesel::insert_into(notifications::table)
                .values(row)
                .execute(conn)
        });
        match inserted {
            Ok(_) => Ok(true),
            Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn claim_due(
        &mut self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> QueryResult<Vec<NotificationRow>> {
        let due: Vec<NotificationRow> = notifications::table
            .filter(notifications::status.eq("pending"))
            .filter(notifications::next_attempt_at.le(now))
            .filter(notifications::claimed_until.lt(now))
            .order(notifications::next_attempt_at.asc())
            .limit(limit)
            .select(NotificationRow::as_select())
            .load(self)?;
        let mut claimed = Vec::with_capacity(due.len());
        for mut row in due {
            let won = diesel::update(
                notifications::table
                    .filter(notifications::id.eq(&row.id))
                    .filter(notifications::status.eq("pending"))
                    .filter(notifications::claimed_until.lt(now)),
            )
            .set(notifications::claimed_until.eq(lease_until))
            .execute(self)?;
            if won == 1 {
                row.claimed_until = lease_until;
                claimed.push(row);
            }
        }
        Ok(claimed)
    }

    fn finish_notice(&mut self, id: &str, outcome: &Delivery) -> QueryResult<()> {
        let target = notifications::table.filter(notifications::id.eq(id));
        match outcome {
            Delivery::Sent(at) => diesel::update(target)
                .set((
                    notifications::status.eq("sent"),
                    notifications::sent_at.eq(Some(*at)),
                    notifications::attempts.eq(notifications::attempts + 1),
                    notifications::claimed_until.eq(0),
                ))
                .execute(self),
            Delivery::Retry { next, error } => diesel::update(target)
                .set((
                    notifications::attempts.eq(notifications::attempts + 1),
                    notifications::next_attempt_at.eq(*next),
                    notifications::last_error.eq(Some(error.as_str())),
                    notifications::claimed_until.eq(0),
                ))
                .execute(self),
            Delivery::Failed(error) => diesel::update(target)
                .set((
                    notifications::status.eq("failed"),
                    notifications::attempts.eq(notifications::attempts + 1),
                    notifications::last_error.eq(Some(error.as_str())),
                    notifications::claimed_until.eq(0),
                ))
                .execute(self),
        }
        .map(drop)
    }

    fn notices(&mut self, status: Option<&str>, limit: i64) -> QueryResult<Vec<NotificationRow>> {
        let mut query = notifications::table
            .order((notifications::created_at.desc(), notifications::id.desc()))
            .limit(limit)
            .select(NotificationRow::as_select())
            .into_boxed();
        if let Some(status) = status {
            query = query.filter(notifications::status.eq(status));
        }
        query.load(self)
    }

    fn notice_counts(&mut self) -> QueryResult<(i64, i64)> {
        let count = |conn: &mut Self, status: &str| {
            notifications::table
                .filter(notifications::status.eq(status))
                .count()
                .get_result::<i64>(conn)
        };
        Ok((count(self, "pending")?, count(self, "failed")?))
    }

    fn set_contact(&mut self, user_id: &str, email: Option<&str>) -> QueryResult<()> {
        self.transaction(|conn| {
            diesel::delete(user_contacts::table.filter(user_contacts::user_id.eq(user_id)))
                .execute(conn)?;
            if let Some(email) = email {
                diesel::insert_into(user_contacts::table)
                    .values((
                        user_contacts::user_id.eq(user_id),
                        user_contacts::email.eq(email),
                    ))
                    .execute(conn)?;
            }
            Ok(())
        })
    }

    fn contact(&mut self, user_id: &str) -> QueryResult<Option<String>> {
        user_contacts::table
            .filter(user_contacts::user_id.eq(user_id))
            .select(user_contacts::email)
            .first(self)
            .optional()
    }

    fn contacts(&mut self) -> QueryResult<Vec<(String, String, String)>> {
        user_contacts::table
            .inner_join(users::table.on(users::id.eq(user_contacts::user_id)))
            .filter(users::disabled.eq(false))
            .select((users::id, users::roles, user_contacts::email))
            .load(self)
    }

    fn expiring(
        &mut self,
        profiles: &[String],
        now: i64,
        until: i64,
        limit: i64,
    ) -> QueryResult<Vec<ExpiringRow>> {
        let rows: Vec<(String, String, String, String, i64, Option<String>)> = certificates::table
            .filter(certificates::status.eq("valid"))
            .filter(certificates::not_after.gt(now))
            .filter(certificates::not_after.le(until))
            .filter(certificates::profile_id.eq_any(profiles))
            .order(certificates::not_after.asc())
            .limit(limit)
            .select((
                certificates::ca_id,
                certificates::serial,
                certificates::profile_id,
                certificates::subject,
                certificates::not_after,
                certificates::request_id,
            ))
            .load(self)?;
        Ok(rows
            .into_iter()
            .map(
                |(ca_id, serial, profile_id, subject, not_after, request_id)| ExpiringRow {
                    ca_id,
                    serial,
                    profile_id,
                    subject,
                    not_after,
                    request_id,
                },
            )
            .collect())
    }

    fn expiring_counts(&mut self, now: i64, until: i64) -> QueryResult<Vec<(String, i64)>> {
        certificates::table
            .filter(certificates::status.eq("valid"))
            .filter(certificates::not_after.gt(now))
            .filter(certificates::not_after.le(until))
            .group_by(certificates::profile_id)
            .select((certificates::profile_id, diesel::dsl::count_star()))
            .load(self)
    }

    fn certificate_names(&mut self, ca_id: &str, serial: &str) -> QueryResult<Option<String>> {
        certificate_names::table
            .filter(certificate_names::ca_id.eq(ca_id))
            .filter(certificate_names::serial.eq(serial))
            .select(certificate_names::names)
            .first(self)
            .optional()
    }

    fn requester_of(&mut self, request_id: &str) -> QueryResult<Option<String>> {
        requests::table
            .filter(requests::id.eq(request_id))
            .select(requests::requester_id)
            .first(self)
            .optional()
    }
}
