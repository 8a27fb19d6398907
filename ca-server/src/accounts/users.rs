//! Users: lookups, views, the TOTP check, the trial accounts of `ca-server dev`, listing and
//! disabling.

use ca_core::role::Role;
use ca_core::totp::TotpSecret;
use serde_json::json;

use super::credentials as auth;
use super::{parse_roles, roles_text, Accounts, Caller};
use crate::api::*;
use crate::error::ServiceError;
use crate::secrets::DataKey;
use crate::store::account_rows::AccountRows;
use crate::store::audit_log;
use crate::store::directory_rows::DirectoryRows;
use ca_core::random::RandomSource;

use crate::store::ids::new_id;
use crate::store::models::*;
use crate::store::DbConnection;

/// A new account's row, nothing failed or locked yet, with a fresh TOTP secret (returned, and
/// stored sealed under `data_key`); its credentials count as set `now`.
pub(crate) fn user_row(
    data_key: &DataKey,
    random: &dyn RandomSource,
    username: &str,
    password_hash: String,
    roles: &[Role],
    registered: (Option<String>, Option<String>),
    now: i64,
) -> Result<(UserRow, TotpSecret), ServiceError> {
    let (organization, email_domain) = crate::accounts::registered_fields(registered)?;
    let secret = TotpSecret::generate(random).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let row = UserRow {
        id: new_id("u")?,
        username: username.into(),
        password_hash,
        totp_secret_enc: data_key.seal(secret.as_bytes())?,
        roles: roles_text(roles),
        disabled: false,
        failed_logins: 0,
        locked_until: None,
        last_totp_step: 0,
        created_at: now,
        step_up_failures: 0,
        step_up_locked_at: None,
        organization,
        email_domain,
        must_change_password: false,
        credentials_set_at: now,
    };
    Ok((row, secret))
}

impl Accounts {
    pub(crate) fn user_by_name(
        &self,
        conn: &mut DbConnection,
        name: &str,
    ) -> Result<Option<UserRow>, ServiceError> {
        Ok(AccountRows::user_by_name(conn, name)?)
    }

    pub(crate) fn user_view(row: &UserRow) -> UserView {
        UserView {
            username: row.username.clone(),
            roles: parse_roles(&row.roles)
                .iter()
                .map(|r| r.to_string())
                .collect(),
            disabled: row.disabled,
            step_up_locked: row.step_up_locked_at.is_some(),
            locked_until: row.locked_until.map(rfc3339),
            organization: row.organization.clone(),
            email_domain: row.email_domain.clone(),
            enrolment_pending: false,
            directory: false,
        }
    }

    /// Checks a TOTP code for `user` and records its step so it is accepted once. Call inside a
    /// transaction.
    pub(crate) fn consume_totp(
        &self,
        conn: &mut DbConnection,
        user: &UserRow,
        code: &str,
    ) -> Result<bool, ServiceError> {
        let secret_bytes = self.data_key.open(&user.totp_secret_enc)?;
        let secret = TotpSecret::from_bytes(&secret_bytes);
        let Some(step) = secret.verify(code, self.now().as_secs()) else {
            return Ok(false);
        };
        let step = step as i64;
        Ok(conn.consume_totp_step(&user.id, step)?)
    }

    /// Creates a user with a password and TOTP secret the caller chooses: only `ca-server dev`'s
    /// trial accounts (`actor` "system"), never through the API, where accounts enrol their own.
    /// Returns the TOTP enrolment URI, shown once.
    pub(crate) fn create_dev_user(
        &self,
        conn: &mut DbConnection,
        actor: &str,
        username: &str,
        password: &str,
        roles: &[Role],
        registered: (Option<String>, Option<String>),
    ) -> Result<TotpEnrolment, ServiceError> {
        auth::check_username(username).map_err(ServiceError::Invalid)?;
        auth::check_password_policy(password).map_err(ServiceError::Invalid)?;
        if roles.is_empty() {
            return Err(ServiceError::Invalid(
                "a user needs at least one role".into(),
            ));
        }
        let now = self.now().as_secs() as i64;
        let (mut row, secret) = user_row(
            &self.data_key,
            &*self.random,
            username,
            auth::hash_password(password)?,
            roles,
            registered,
            now,
        )?;
        // A trial account made at start-up is nobody's sock puppet: no cooling-off.
        row.credentials_set_at = 0;
        crate::store::write_transaction::<_, ServiceError, _>(&mut *conn, |conn| {
            if self.user_by_name(conn, username)?.is_some() {
                return Err(ServiceError::Conflict(format!(
                    "user {username} already exists"
                )));
            }
            conn.insert_user(&row)?;
            audit_log::append(
                conn,
                now as u64,
                actor,
                "user.create",
                username,
                json!({"roles": roles_text(roles), "organization": row.organization, "email_domain": row.email_domain}),
            )?;
            Ok(())
        })?;
        Ok(TotpEnrolment {
            user: Self::user_view(&row),
            totp_uri: secret.otpauth_uri("Mamori", username).to_string(),
        })
    }

    /// `GET /users` (admin, auditor).
    pub fn list_users(&self, caller: &Caller) -> Result<Vec<UserView>, ServiceError> {
        caller.require(&[Role::Admin, Role::Auditor])?;
        let mut conn = self.conn()?;
        let rows = conn.users_by_name()?;
        let enrolling = conn.enrolling_user_ids()?;
        let directory = conn.directory_user_ids()?;
        Ok(rows
            .iter()
            .map(|row| UserView {
                enrolment_pending: enrolling.contains(&row.id),
                directory: directory.contains(&row.id),
                ..Self::user_view(row)
            })
            .collect())
    }

    /// `POST /users/{name}/disable` (admin with step-up; never oneself). Immediate, without a
    /// second person: disabling only takes power away, and a leaver must lose it at once.
    pub fn disable_user(
        &self,
        caller: &Caller,
        username: &str,
        body: &StepUpRequest,
    ) -> Result<UserView, ServiceError> {
        let outcome = self.disable_user_inner(caller, username, body);
        self.guarded(caller, "user.disable", username, outcome)
    }

    fn disable_user_inner(
        &self,
        caller: &Caller,
        username: &str,
        body: &StepUpRequest,
    ) -> Result<UserView, ServiceError> {
        caller.require(&[Role::Admin])?;
        if username == caller.username {
            return Err(ServiceError::Forbidden(
                "admins cannot disable themselves".into(),
            ));
        }
        self.disable_checked(caller, username, Some(&body.totp), &body.comment)
    }

    /// Disables `username` for `caller` (already checked to be an admin): with `totp`, after a
    /// step-up in the same transaction; without, for a caller who gave one already (a leaver
    /// run). Ends their sessions and cancels their pending requests, audited.
    pub(crate) fn disable_checked(
        &self,
        caller: &Caller,
        username: &str,
        totp: Option<&str>,
        comment: &str,
    ) -> Result<UserView, ServiceError> {
        let now = self.now().as_secs();
        let mut conn = self.conn()?;
        let outcome = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            if let Some(totp) = totp {
                let me = conn.user(&caller.user_id)?;
                self.step_up(conn, &me, totp)?;
            }
            let mut user = self
                .user_by_name(conn, username)?
                .ok_or_else(|| ServiceError::NotFound(format!("user {username}")))?;
            conn.set_disabled(&user.id, true)?;
            conn.delete_sessions_of(&user.id)?;
            // A disabled person's pending requests go with them: a vendor let go must not get a
            // certificate from a request officers approve later.
            let pending = conn.cancel_pending_requests_of(&user.id, now as i64)?;
            audit_log::append(
                conn,
                now,
                &caller.username,
                "user.disable",
                username,
                json!({"cancelled_requests": pending, "comment": comment}),
            )?;
            for id in &pending {
                audit_log::append(
                    conn,
                    now,
                    &caller.username,
                    "request.cancel",
                    id,
                    json!({"reason": "requester disabled", "requester": username}),
                )?;
            }
            user.disabled = true;
            Ok(Self::user_view(&user))
        });
        self.ending_sessions(outcome)
    }
}
