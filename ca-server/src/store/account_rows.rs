//! The rows the accounts service reads and writes: users, sessions, enrolments and account
//! changes under four eyes. `accounts/` reaches the database only through [`AccountRows`]; the
//! queries live here.

use std::collections::HashSet;

use diesel::prelude::*;

use super::models::*;
use super::schema::*;
use super::status::RequestStatus;
use super::DbConnection;

/// What the accounts service asks of the database.
pub trait AccountRows {
    /// A user by id.
    fn user(&mut self, id: &str) -> QueryResult<UserRow>;
    /// A user by name.
    fn user_by_name(&mut self, name: &str) -> QueryResult<Option<UserRow>>;
    /// Every user, by name.
    fn users_by_name(&mut self) -> QueryResult<Vec<UserRow>>;
    /// Stores a new user.
    fn insert_user(&mut self, row: &UserRow) -> QueryResult<()>;
    /// Locks a user's row for the rest of the transaction (a no-op UPDATE), so that parallel
    /// attempts on one account take turns and its counters stay exact.
    fn lock_user(&mut self, id: &str) -> QueryResult<()>;
    /// Records a failed login: the new count and lock.
    fn set_login_failures(
        &mut self,
        id: &str,
        failures: i32,
        locked_until: Option<i64>,
    ) -> QueryResult<()>;
    /// Clears the failed-login count and lock after a good login.
    fn clear_login_failures(&mut self, id: &str) -> QueryResult<()>;
    /// Lifts the step-up lock and the login lockout, with their counts.
    fn lift_locks(&mut self, id: &str) -> QueryResult<usize>;
    /// Clears the step-up failure count after a good code.
    fn clear_step_up_failures(&mut self, id: &str) -> QueryResult<()>;
    /// Adds one step-up failure (one UPDATE, whatever runs at the same time), then reads the
    /// count and when the step-up was locked.
    fn count_step_up_failure(&mut self, id: &str) -> QueryResult<(i32, Option<i64>)>;
    /// Locks the user's step-up at `at`.
    fn lock_step_up(&mut self, id: &str, at: i64) -> QueryResult<()>;
    /// Records TOTP step `step` as used if it is later than the last one used; false when it
    /// was used already (a replayed code).
    fn consume_totp_step(&mut self, id: &str, step: i64) -> QueryResult<bool>;
    /// Sets a new password chosen by the user.
    fn set_password(&mut self, id: &str, hash: &str) -> QueryResult<()>;
    /// Sets the password and TOTP secret an enrolment chose, clearing every failure count.
    fn set_credentials(
        &mut self,
        id: &str,
        password_hash: &str,
        sealed_secret: &[u8],
        now: i64,
    ) -> QueryResult<()>;
    /// Sets the roles (comma-separated).
    fn set_roles(&mut self, id: &str, roles: &str) -> QueryResult<()>;
    /// Disables or enables an account.
    fn set_disabled(&mut self, id: &str, disabled: bool) -> QueryResult<()>;
    /// Cancels the pending certificate requests of a user; returns their ids.
    fn cancel_pending_requests_of(&mut self, user_id: &str, now: i64) -> QueryResult<Vec<String>>;

    /// Stores a new session.
    fn insert_session(&mut self, row: &SessionRow) -> QueryResult<()>;
    /// The session with this token hash, and its user.
    fn session_with_user(&mut self, hash: &str) -> QueryResult<Option<(SessionRow, UserRow)>>;
    /// Ends one session.
    fn delete_session(&mut self, hash: &str) -> QueryResult<()>;
    /// Ends every session of a user.
    fn delete_sessions_of(&mut self, user_id: &str) -> QueryResult<()>;
    /// Ends every session of a user but one.
    fn delete_other_sessions(&mut self, user_id: &str, keep: &str) -> QueryResult<()>;
    /// Records activity at `now` unless a later one is recorded.
    fn touch_session(&mut self, hash: &str, now: i64) -> QueryResult<()>;
    /// Adds one step-up failure to a session, then reads its count (`None`: the session ended).
    fn count_session_step_up_failure(&mut self, hash: &str) -> QueryResult<Option<i32>>;

    /// Whether a user has an enrolment pending.
    fn is_enrolling(&mut self, user_id: &str) -> QueryResult<bool>;
    /// The users with an enrolment pending.
    fn enrolling_user_ids(&mut self) -> QueryResult<HashSet<String>>;
    /// Replaces a user's enrolment.
    fn replace_enrolment(&mut self, row: &EnrolmentRow) -> QueryResult<()>;
    /// Locks a user's enrolment row for the rest of the transaction (a no-op UPDATE).
    fn lock_enrolment(&mut self, user_id: &str) -> QueryResult<()>;
    /// A user's enrolment.
    fn enrolment(&mut self, user_id: &str) -> QueryResult<Option<EnrolmentRow>>;
    /// Records wrong codes against an enrolment.
    fn set_enrolment_failures(&mut self, user_id: &str, failures: i32) -> QueryResult<()>;
    /// Ends an enrolment (done or void).
    fn delete_enrolment(&mut self, user_id: &str) -> QueryResult<()>;

    /// How many changes to `target` still wait for approval at `now`.
    fn open_changes_for(&mut self, target: &str, now: i64) -> QueryResult<i64>;
    /// Stores a new account change.
    fn insert_account_change(&mut self, row: &AccountChangeRow) -> QueryResult<()>;
    /// The newest `limit` account changes.
    fn newest_account_changes(&mut self, limit: i64) -> QueryResult<Vec<AccountChangeRow>>;
    /// Locks an account change's row for the rest of the transaction (a no-op UPDATE), so two
    /// last approvals cannot both apply it.
    fn lock_account_change(&mut self, id: &str) -> QueryResult<()>;
    /// An account change.
    fn account_change(&mut self, id: &str) -> QueryResult<Option<AccountChangeRow>>;
    /// Whether `approver_id` decided on change `id` already.
    fn has_decided_on_change(&mut self, id: &str, approver_id: &str) -> QueryResult<bool>;
    /// Stores a decision on an account change.
    fn insert_account_change_decision(&mut self, row: &AccountChangeDecisionRow)
        -> QueryResult<()>;
    /// How many approvals change `id` has.
    fn change_approvals(&mut self, id: &str) -> QueryResult<i64>;
    /// Sets an account change's status.
    fn set_account_change_status(&mut self, id: &str, status: &str, now: i64) -> QueryResult<()>;
    /// The decisions on change `id`, oldest first.
    fn account_change_decisions(&mut self, id: &str) -> QueryResult<Vec<AccountChangeDecisionRow>>;
}

impl AccountRows for DbConnection {
    fn user(&mut self, id: &str) -> QueryResult<UserRow> {
        users::table
            .find(id)
            .select(UserRow::as_select())
            .first(self)
    }

    fn user_by_name(&mut self, name: &str) -> QueryResult<Option<UserRow>> {
        users::table
            .filter(users::username.eq(name))
            .select(UserRow::as_select())
            .first(self)
            .optional()
    }

    fn users_by_name(&mut self) -> QueryResult<Vec<UserRow>> {
        users::table
            .order(users::username.asc())
            .select(UserRow::as_select())
            .load(self)
    }

    fn insert_user(&mut self, row: &UserRow) -> QueryResult<()> {
        diesel::insert_into(users::table)
            .values(row)
            .execute(self)?;
        Ok(())
    }

    fn lock_user(&mut self, id: &str) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set(users::failed_logins.eq(users::failed_logins))
            .execute(self)?;
        Ok(())
    }

    fn set_login_failures(
        &mut self,
        id: &str,
        failures: i32,
        locked_until: Option<i64>,
    ) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set((
                users::failed_logins.eq(failures),
                users::locked_until.eq(locked_until),
            ))
            .execute(self)?;
        Ok(())
    }

    fn clear_login_failures(&mut self, id: &str) -> QueryResult<()> {
        self.set_login_failures(id, 0, None)
    }

    fn lift_locks(&mut self, id: &str) -> QueryResult<usize> {
        diesel::update(users::table.find(id))
            .set((
                users::step_up_failures.eq(0),
                users::step_up_locked_at.eq(None::<i64>),
                users::failed_logins.eq(0),
                users::locked_until.eq(None::<i64>),
            ))
            .execute(self)
    }

    fn clear_step_up_failures(&mut self, id: &str) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set(users::step_up_failures.eq(0))
            .execute(self)?;
        Ok(())
    }

    fn count_step_up_failure(&mut self, id: &str) -> QueryResult<(i32, Option<i64>)> {
        diesel::update(users::table.find(id))
            .set(users::step_up_failures.eq(users::step_up_failures + 1))
            .execute(self)?;
        users::table
            .find(id)
            .select((users::step_up_failures, users::step_up_locked_at))
            .first(self)
    }

    fn lock_step_up(&mut self, id: &str, at: i64) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set(users::step_up_locked_at.eq(Some(at)))
            .execute(self)?;
        Ok(())
    }

    fn consume_totp_step(&mut self, id: &str, step: i64) -> QueryResult<bool> {
        let updated = diesel::update(
            users::table
                .filter(users::id.eq(id))
                .filter(users::last_totp_step.lt(step)),
        )
        .set(users::last_totp_step.eq(step))
        .execute(self)?;
        Ok(updated == 1)
    }

    fn set_password(&mut self, id: &str, hash: &str) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set((
                users::password_hash.eq(hash),
                users::must_change_password.eq(false),
            ))
            .execute(self)?;
        Ok(())
    }

    fn set_credentials(
        &mut self,
        id: &str,
        password_hash: &str,
        sealed_secret: &[u8],
        now: i64,
    ) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set((
                users::password_hash.eq(password_hash),
                users::totp_secret_enc.eq(sealed_secret),
                users::last_totp_step.eq(0),
                users::must_change_password.eq(false),
                users::credentials_set_at.eq(now),
                users::failed_logins.eq(0),
                users::locked_until.eq(None::<i64>),
            ))
            .execute(self)?;
        Ok(())
    }

    fn set_roles(&mut self, id: &str, roles: &str) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set(users::roles.eq(roles))
            .execute(self)?;
        Ok(())
    }

    fn set_disabled(&mut self, id: &str, disabled: bool) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set(users::disabled.eq(disabled))
            .execute(self)?;
        Ok(())
    }

    fn cancel_pending_requests_of(&mut self, user_id: &str, now: i64) -> QueryResult<Vec<String>> {
        let pending: Vec<String> = requests::table
            .filter(requests::requester_id.eq(user_id))
            .filter(requests::status.eq(RequestStatus::Pending.as_str()))
            .select(requests::id)
            .load(self)?;
        diesel::update(requests::table.filter(requests::id.eq_any(&pending)))
            .set((
                requests::status.eq(RequestStatus::Cancelled.as_str()),
                requests::updated_at.eq(now),
            ))
            .execute(self)?;
        Ok(pending)
    }

    fn insert_session(&mut self, row: &SessionRow) -> QueryResult<()> {
        diesel::insert_into(sessions::table)
            .values(row)
            .execute(self)?;
        Ok(())
    }

    fn session_with_user(&mut self, hash: &str) -> QueryResult<Option<(SessionRow, UserRow)>> {
        // The primary key finds at most one row; `load`, not `first`, because SQLite re-prepares
        // a statement whose LIMIT is a bound parameter each time, and this runs per API call.
        Ok(sessions::table
            .inner_join(users::table.on(users::id.eq(sessions::user_id)))
            .filter(sessions::token_hash.eq(hash))
            .select((SessionRow::as_select(), UserRow::as_select()))
            .load(self)?
            .pop())
    }

    fn delete_session(&mut self, hash: &str) -> QueryResult<()> {
        diesel::delete(sessions::table.find(hash)).execute(self)?;
        Ok(())
    }

    fn delete_sessions_of(&mut self, user_id: &str) -> QueryResult<()> {
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(self)?;
        Ok(())
    }

    fn delete_other_sessions(&mut self, user_id: &str, keep: &str) -> QueryResult<()> {
        diesel::delete(
            sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::token_hash.ne(keep)),
        )
        .execute(self)?;
        Ok(())
    }

    fn touch_session(&mut self, hash: &str, now: i64) -> QueryResult<()> {
        diesel::update(
            sessions::table
                .find(hash)
                .filter(sessions::last_seen.lt(now)),
        )
        .set(sessions::last_seen.eq(now))
        .execute(self)?;
        Ok(())
    }

    fn count_session_step_up_failure(&mut self, hash: &str) -> QueryResult<Option<i32>> {
        diesel::update(sessions::table.find(hash))
            .set(sessions::step_up_failures.eq(sessions::step_up_failures + 1))
            .execute(self)?;
        sessions::table
            .find(hash)
            .select(sessions::step_up_failures)
            .first(self)
            .optional()
    }

    fn is_enrolling(&mut self, user_id: &str) -> QueryResult<bool> {
        Ok(enrolments::table
            .find(user_id)
            .count()
            .get_result::<i64>(self)?
            > 0)
    }

    fn enrolling_user_ids(&mut self) -> QueryResult<HashSet<String>> {
        Ok(enrolments::table
            .select(enrolments::user_id)
            .load::<String>(self)?
            .into_iter()
            .collect())
    }

    fn replace_enrolment(&mut self, row: &EnrolmentRow) -> QueryResult<()> {
        diesel::delete(enrolments::table.find(&row.user_id)).execute(self)?;
        diesel::insert_into(enrolments::table)
            .values(row)
            .execute(self)?;
        Ok(())
    }

    fn lock_enrolment(&mut self, user_id: &str) -> QueryResult<()> {
        diesel::update(enrolments::table.find(user_id))
            .set(enrolments::failures.eq(enrolments::failures))
            .execute(self)?;
        Ok(())
    }

    fn enrolment(&mut self, user_id: &str) -> QueryResult<Option<EnrolmentRow>> {
        enrolments::table
            .find(user_id)
            .select(EnrolmentRow::as_select())
            .first(self)
            .optional()
    }

    fn set_enrolment_failures(&mut self, user_id: &str, failures: i32) -> QueryResult<()> {
        diesel::update(enrolments::table.find(user_id))
            .set(enrolments::failures.eq(failures))
            .execute(self)?;
        Ok(())
    }

    fn delete_enrolment(&mut self, user_id: &str) -> QueryResult<()> {
        diesel::delete(enrolments::table.find(user_id)).execute(self)?;
        Ok(())
    }

    fn open_changes_for(&mut self, target: &str, now: i64) -> QueryResult<i64> {
        account_changes::table
            .filter(account_changes::target.eq(target))
            .filter(account_changes::status.eq("pending"))
            .filter(account_changes::expires_at.gt(now))
            .count()
            .get_result(self)
    }

    fn insert_account_change(&mut self, row: &AccountChangeRow) -> QueryResult<()> {
        diesel::insert_into(account_changes::table)
            .values(row)
            .execute(self)?;
        Ok(())
    }

    fn newest_account_changes(&mut self, limit: i64) -> QueryResult<Vec<AccountChangeRow>> {
        account_changes::table
            .order(account_changes::created_at.desc())
            .limit(limit)
            .select(AccountChangeRow::as_select())
            .load(self)
    }

    fn lock_account_change(&mut self, id: &str) -> QueryResult<()> {
        diesel::update(account_changes::table.find(id))
            .set(account_changes::updated_at.eq(account_changes::updated_at))
            .execute(self)?;
        Ok(())
    }

    fn account_change(&mut self, id: &str) -> QueryResult<Option<AccountChangeRow>> {
        account_changes::table
            .find(id)
            .select(AccountChangeRow::as_select())
            .first(self)
            .optional()
    }

    fn has_decided_on_change(&mut self, id: &str, approver_id: &str) -> QueryResult<bool> {
        Ok(account_change_decisions::table
            .filter(account_change_decisions::change_id.eq(id))
            .filter(account_change_decisions::approver_id.eq(approver_id))
            .count()
            .get_result::<i64>(self)?
            > 0)
    }

    fn insert_account_change_decision(
        &mut self,
        row: &AccountChangeDecisionRow,
    ) -> QueryResult<()> {
        diesel::insert_into(account_change_decisions::table)
            .values(row)
            .execute(self)?;
        Ok(())
    }

    fn change_approvals(&mut self, id: &str) -> QueryResult<i64> {
        account_change_decisions::table
            .filter(account_change_decisions::change_id.eq(id))
            .filter(account_change_decisions::verdict.eq("approve"))
            .count()
            .get_result(self)
    }

    fn set_account_change_status(&mut self, id: &str, status: &str, now: i64) -> QueryResult<()> {
        diesel::update(account_changes::table.find(id))
            .set((
                account_changes::status.eq(status),
                account_changes::updated_at.eq(now),
            ))
            .execute(self)?;
        Ok(())
    }

    fn account_change_decisions(&mut self, id: &str) -> QueryResult<Vec<AccountChangeDecisionRow>> {
        account_change_decisions::table
            .filter(account_change_decisions::change_id.eq(id))
            .order(account_change_decisions::decided_at.asc())
            .select(AccountChangeDecisionRow::as_select())
            .load(self)
    }
}
