//! The rows directory sign-in reads and writes: which accounts the directory vouches for, what
//! it said at the last check, and which of them have sessions open (for the periodic sync).

use std::collections::HashSet;

use diesel::prelude::*;

use super::models::DirectoryAccountRow;
use super::schema::*;
use super::DbConnection;

/// What directory sign-in asks of the database.
pub trait DirectoryRows {
    /// The directory record of a user, if the account is a directory account.
    fn directory_account(&mut self, user_id: &str) -> QueryResult<Option<DirectoryAccountRow>>;
    /// Marks a new account as a directory account.
    fn insert_directory_account(&mut self, row: &DirectoryAccountRow) -> QueryResult<()>;
    /// Records what the directory said of a person.
    fn record_directory_check(&mut self, row: &DirectoryAccountRow) -> QueryResult<()>;
    /// The ids of every directory account.
    fn directory_user_ids(&mut self) -> QueryResult<HashSet<String>>;
    /// Directory accounts with a session not yet expired at `now`, with their user names.
    fn directory_accounts_in_session(
        &mut self,
        now: i64,
    ) -> QueryResult<Vec<(String, DirectoryAccountRow)>>;
}

impl DirectoryRows for DbConnection {
    fn directory_account(&mut self, user_id: &str) -> QueryResult<Option<DirectoryAccountRow>> {
        directory_accounts::table
            .find(user_id)
            .select(DirectoryAccountRow::as_select())
            .first(self)
            .optional()
    }

    fn insert_directory_account(&mut self, row: &DirectoryAccountRow) -> QueryResult<()> {
        diesel::insert_into(directory_accounts::table)
            .values(row)
            .execute(self)?;
        Ok(())
    }

    fn record_directory_check(&mut self, row: &DirectoryAccountRow) -> QueryResult<()> {
        diesel::update(directory_accounts::table.find(&row.user_id))
            .set(row)
            .execute(self)?;
        Ok(())
    }

    fn directory_user_ids(&mut self) -> QueryResult<HashSet<String>> {
        Ok(directory_accounts::table
            .select(directory_accounts::user_id)
            .load::<String>(self)?
            .into_iter()
            .collect())
    }

    fn directory_accounts_in_session(
        &mut self,
        now: i64,
    ) -> QueryResult<Vec<(String, DirectoryAccountRow)>> {
        let open: Vec<String> = sessions::table
            .filter(sessions::expires_at.gt(now))
            .select(sessions::user_id)
            .distinct()
            .load(self)?;
        directory_accounts::table
            .inner_join(users::table.on(users::id.eq(directory_accounts::user_id)))
            .filter(directory_accounts::user_id.eq_any(open))
            .select((users::username, DirectoryAccountRow::as_select()))
            .load(self)
    }
}
