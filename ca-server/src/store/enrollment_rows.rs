//! The rows device enrollment reads and writes: one-time enrollment codes, SCEP transactions,
//! the SCEP RA certificate and renewals waiting to retire their predecessor. The RA's enrollment
//! code and the SCEP service reach the database only through [`EnrollmentRows`].

use diesel::prelude::*;

use super::models::{ChallengeRow, RenewalRow, ScepRaRow, ScepTransactionRow, UserRow};
use super::schema::*;
use super::DbConnection;

/// What device enrollment asks of the database.
pub trait EnrollmentRows {
    /// Stores a new enrollment code.
    fn insert_challenge(&mut self, row: &ChallengeRow) -> QueryResult<()>;
    /// The code whose SHA-256 (hex) is `hash`, with the account that minted it.
    fn challenge_by_hash(&mut self, hash: &str) -> QueryResult<Option<(ChallengeRow, UserRow)>>;
    /// Marks an unused, unexpired code used by `request_id`; false when it was used or expired
    /// meanwhile (two devices racing with one code: one wins).
    fn use_challenge(&mut self, id: &str, request_id: &str, now: i64) -> QueryResult<bool>;
    /// Ends an unused code now; false when there was none to end.
    fn expire_challenge(&mut self, id: &str, now: i64) -> QueryResult<bool>;
    /// The newest codes (`profile` filters), newest first, with their minters' names.
    fn challenges(
        &mut self,
        profile: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<(ChallengeRow, String)>>;

    /// The request a client's earlier message with this transaction id created.
    fn scep_transaction(
        &mut self,
        transaction_id: &str,
        signer_sha256: &str,
    ) -> QueryResult<Option<ScepTransactionRow>>;
    /// Records a SCEP (or EST) transaction; false when it is already recorded (the same
    /// message sent twice at once: the first one's request answers both).
    fn insert_scep_transaction(&mut self, row: &ScepTransactionRow) -> QueryResult<bool>;

    /// A CA's current SCEP RA certificate and sealed key.
    fn scep_ra(&mut self, ca_id: &str) -> QueryResult<Option<ScepRaRow>>;
    /// Replaces a CA's SCEP RA certificate and key.
    fn replace_scep_ra(&mut self, row: &ScepRaRow) -> QueryResult<()>;

    /// Records a renewal.
    fn insert_renewal(&mut self, row: &RenewalRow) -> QueryResult<()>;
    /// The renewal a request is, if it is one.
    fn renewal(&mut self, request_id: &str) -> QueryResult<Option<RenewalRow>>;
    /// Renewals whose predecessor is due for revocation, oldest first.
    fn due_renewals(&mut self, now: i64, limit: i64) -> QueryResult<Vec<RenewalRow>>;
    /// Marks a renewal's predecessor handled.
    fn finish_renewal(&mut self, request_id: &str) -> QueryResult<()>;
}

impl EnrollmentRows for DbConnection {
    fn insert_challenge(&mut self, row: &ChallengeRow) -> QueryResult<()> {
        diesel::insert_into(enrollment_challenges::table)
            .values(row)
            .execute(self)
            .map(drop)
    }

    fn challenge_by_hash(&mut self, hash: &str) -> QueryResult<Option<(ChallengeRow, UserRow)>> {
        enrollment_challenges::table
            .inner_join(users::table.on(users::id.eq(enrollment_challenges::created_by)))
            .filter(enrollment_challenges::code_sha256.eq(hash))
            .select((ChallengeRow::as_select(), UserRow::as_select()))
            .first(self)
            .optional()
    }

    fn use_challenge(&mut self, id: &str, request_id: &str, now: i64) -> QueryResult<bool> {
        let changed = diesel::update(
            enrollment_challenges::table
                .find(id)
                .filter(enrollment_challenges::used_at.is_null())
                .filter(enrollment_challenges::expires_at.gt(now)),
        )
        .set((
            enrollment_challenges::used_at.eq(Some(now)),
            enrollment_challenges::request_id.eq(Some(request_id)),
        ))
        .execute(self)?;
        Ok(changed == 1)
    }

    fn expire_challenge(&mut self, id: &str, now: i64) -> QueryResult<bool> {
        let changed = diesel::update(
            enrollment_challenges::table
                .find(id)
                .filter(enrollment_challenges::used_at.is_null())
                .filter(enrollment_challenges::expires_at.gt(now)),
        )
        .set(enrollment_challenges::expires_at.eq(now))
        .execute(self)?;
        Ok(changed == 1)
    }

    fn challenges(
        &mut self,
        profile: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<(ChallengeRow, String)>> {
        let mut query = enrollment_challenges::table
            .inner_join(users::table.on(users::id.eq(enrollment_challenges::created_by)))
            .select((ChallengeRow::as_select(), users::username))
            .order(enrollment_challenges::created_at.desc())
            .limit(limit)
            .into_boxed();
        if let Some(p) = profile {
            query = query.filter(enrollment_challenges::profile_id.eq(p.to_string()));
        }
        query.load(self)
    }

    fn scep_transaction(
        &mut self,
        transaction_id: &str,
        signer_sha256: &str,
    ) -> QueryResult<Option<ScepTransactionRow>> {
        scep_transactions::table
            .find((transaction_id, signer_sha256))
            .select(ScepTransactionRow::as_select())
            .first(self)
            .optional()
    }

    fn insert_scep_transaction(&mut self, row: &ScepTransactionRow) -> QueryResult<bool> {
        use diesel::sql_types::{BigInt, Text};
        // ON CONFLICT DO NOTHING (the same words on SQLite and PostgreSQL; diesel's
        // multi-backend connection does not offer it): a copy stored meanwhile, by another
        // write of the same batch or another instance, inserts nothing and says so.
        let sql = |p: [&str; 5]| {
            format!(
                "INSERT INTO scep_transactions (transaction_id, signer_sha256, csr_key_sha256, \
                 request_id, created_at) VALUES ({}, {}, {}, {}, {}) ON CONFLICT DO NOTHING",
                p[0], p[1], p[2], p[3], p[4]
            )
        };
        let inserted = match self {
            DbConnection::Sqlite(conn) => diesel::sql_query(sql(["?"; 5]))
                .bind::<Text, _>(&row.transaction_id)
                .bind::<Text, _>(&row.signer_sha256)
                .bind::<Text, _>(&row.csr_key_sha256)
                .bind::<Text, _>(&row.request_id)
                .bind::<BigInt, _>(row.created_at)
                .execute(conn)?,
            DbConnection::Postgresql(conn) => {
                diesel::sql_query(sql(["$1", "$2", "$3", "$4", "$5"]))
                    .bind::<Text, _>(&row.transaction_id)
                    .bind::<Text, _>(&row.signer_sha256)
                    .bind::<Text, _>(&row.csr_key_sha256)
                    .bind::<Text, _>(&row.request_id)
                    .bind::<BigInt, _>(row.created_at)
                    .execute(conn)?
            }
        };
        Ok(inserted == 1)
    }

    fn scep_ra(&mut self, ca_id: &str) -> QueryResult<Option<ScepRaRow>> {
        scep_ra::table
            .find(ca_id)
            .select(ScepRaRow::as_select())
            .first(self)
            .optional()
    }

    fn replace_scep_ra(&mut self, row: &ScepRaRow) -> QueryResult<()> {
        diesel::delete(scep_ra::table.find(&row.ca_id)).execute(self)?;
        diesel::insert_into(scep_ra::table)
            .values(row)
            .execute(self)
            .map(drop)
    }

    fn insert_renewal(&mut self, row: &RenewalRow) -> QueryResult<()> {
        diesel::insert_into(renewals::table)
            .values(row)
            .execute(self)
            .map(drop)
    }

    fn renewal(&mut self, request_id: &str) -> QueryResult<Option<RenewalRow>> {
        renewals::table
            .find(request_id)
            .select(RenewalRow::as_select())
            .first(self)
            .optional()
    }

    fn due_renewals(&mut self, now: i64, limit: i64) -> QueryResult<Vec<RenewalRow>> {
        renewals::table
            .filter(renewals::done.eq(false))
            .filter(renewals::revoke_old_at.le(now))
            .order(renewals::revoke_old_at.asc())
            .limit(limit)
            .select(RenewalRow::as_select())
            .load(self)
    }

    fn finish_renewal(&mut self, request_id: &str) -> QueryResult<()> {
        diesel::update(renewals::table.find(request_id))
            .set(renewals::done.eq(true))
            .execute(self)
            .map(drop)
    }
}
