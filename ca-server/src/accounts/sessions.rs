//! Sign-in, sessions (bearer tokens stored as SHA-256, idle and absolute expiry, a cache
//! trusted for a second) and sign-out.

use serde_json::json;
use sha2::Digest;

use super::credentials as auth;
use super::{Accounts, Caller};
use crate::api::*;
use crate::error::ServiceError;
use crate::store::account_rows::AccountRows;
use crate::store::audit_log;
use crate::store::directory_rows::DirectoryRows;
use crate::store::models::*;

impl Accounts {
    /// Logs in with password and TOTP. Every failure answers the same; repeated failures lock
    /// the account for `lockout_secs`.
    pub fn login(&self, request: &LoginRequest) -> Result<LoginResponse, ServiceError> {
        let now = self.now().as_secs() as i64;
        let mut conn = self.conn()?;
        let user = self.user_by_name(&mut conn, &request.username)?;
        let Some(user) = user else {
            let _ = auth::verify_password(&request.password, auth::dummy_hash());
            self.metrics
                .login_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Whatever was typed as a user name is data, never an actor: kept as a hash to
            // correlate attempts and a short escaped form to read (no control or bidi
            // characters reach a terminal or log).
            let digest = hex::encode(&sha2::Sha256::digest(request.username.as_bytes())[..8]);
            let shown = ca_core::text::escape_untrusted(&request.username, 32);
            audit_log::append(
                &mut conn,
                now as u64,
                "(unknown user)",
                "login.failed",
                &format!("unknown:{digest}"),
                json!({"reason": "unknown user", "name": shown, "name_sha256_64": digest}),
            )?;
            return Err(ServiceError::InvalidCredentials);
        };
        let checked = self.check_password(&mut conn, &user, &request.password, now)?;
        let password_ok = checked.ok;
        let result = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            // Concurrent attempts on one account take turns from here: the no-op UPDATE takes
            // the row's lock on PostgreSQL (SQLite's write transaction is already exclusive),
            // and the row is read again after it, so each attempt counts on the last one's
            // count and sees its lock. Read before the transaction, 40 parallel wrong
            // passwords left the count at 4 and the account unlocked.
            conn.lock_user(&user.id)?;
            let user = conn.user(&user.id)?;
            let locked = user.locked_until.is_some_and(|t| t > now);
            let enrolling = conn.is_enrolling(&user.id)?;
            let totp_ok = password_ok
                && !locked
                && !user.disabled
                && !enrolling
                && self.consume_totp(conn, &user, &request.totp)?;
            if !totp_ok {
                let failures = user.failed_logins + 1;
                let lock = if failures as u32 >= self.config.lockout_threshold {
                    Some(now + self.config.lockout_secs as i64)
                } else {
                    user.locked_until
                };
                let counted = if lock != user.locked_until {
                    0
                } else {
                    failures
                };
                conn.set_login_failures(&user.id, counted, lock)?;
                if let Some(record) = &checked.record {
                    conn.record_directory_check(record)?;
                }
                if checked.end_sessions {
                    conn.delete_sessions_of(&user.id)?;
                }
                let reason = if user.disabled {
                    "disabled"
                } else if enrolling {
                    "enrolment pending"
                } else if locked {
                    "locked"
                } else if !password_ok {
                    checked.reason
                } else {
                    "second factor"
                };
                audit_log::append(
                    conn,
                    now as u64,
                    &user.username,
                    "login.failed",
                    &user.username,
                    json!({"reason": reason, "locked": lock.is_some_and(|t| t > now),
                        "sessions_ended": checked.end_sessions}),
                )?;
                // Only someone who knows the password learns that the account is locked.
                let locked_until = (locked && password_ok && !user.disabled)
                    .then_some(user.locked_until)
                    .flatten();
                return Ok(Err(locked_until));
            }
            conn.clear_login_failures(&user.id)?;
            if let Some(record) = &checked.record {
                conn.record_directory_check(record)?;
            }
            let roles = self.session_roles(conn, &user)?;
            let (token, hash) = auth::new_token()?;
            let expires = now + self.config.session_absolute_secs as i64;
            conn.insert_session(&SessionRow {
                token_hash: hash,
                user_id: user.id.clone(),
                created_at: now,
                last_seen: now,
                expires_at: expires,
                step_up_failures: 0,
            })?;
            audit_log::append(
                conn,
                now as u64,
                &user.username,
                "login.ok",
                &user.username,
                json!({}),
            )?;
            Ok(Ok((token, expires, roles)))
        })?;
        if checked.record.is_some() {
            // The directory may have changed this person's roles: no cached session keeps the
            // old ones.
            self.sessions.invalidate();
        }
        match result {
            Ok((token, expires, roles)) => Ok(LoginResponse {
                token,
                expires_at: rfc3339(expires),
                user: UserView {
                    roles: roles.iter().map(|r| r.to_string()).collect(),
                    ..Self::user_view(&user)
                },
                password_change_required: user.must_change_password,
            }),
            Err(locked_until) => {
                self.metrics
                    .login_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(match locked_until {
                    Some(until) => ServiceError::AccountLocked(rfc3339(until)),
                    None => ServiceError::InvalidCredentials,
                })
            }
        }
    }

    /// Passes on the outcome of a change that ends or narrows sessions (logout, roles, disable,
    /// second-factor reset) after forgetting every cached session, so that no call on this
    /// instance is answered for a session the change ended once the change has answered.
    pub(super) fn ending_sessions<T>(
        &self,
        outcome: Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        self.sessions.invalidate();
        outcome
    }

    /// Activity is recorded in steps of a thirtieth of the idle timeout (at most a minute),
    /// through the group-commit writer: a session in use writes about once a minute, not once a
    /// second with a write transaction of its own that, on SQLite, waited for the writer's lock
    /// while every other call of that second did the same.
    fn activity_step(&self) -> i64 {
        (self.config.session_idle_secs / 30).min(60) as i64
    }

    /// The caller a bearer token names if [`crate::accounts::session_cache`] confirmed it in the
    /// database less than a second ago and it has neither expired nor is due to have its activity
    /// recorded; `None` sends the caller to [`Self::authenticate`]. Touches no database, so the
    /// API's extractor runs it on the event loop.
    pub fn authenticate_cached(&self, token: &str) -> Option<Caller> {
        if token.len() != 43 {
            return None;
        }
        let now_ms = self.clock.now_ms();
        let now = (now_ms / 1000) as i64;
        let cached = self.sessions.get(&auth::token_hash(token), now_ms)?;
        let idle = self.config.session_idle_secs as i64;
        (cached.expires_at > now
            && cached.last_seen + idle > now
            && now <= cached.last_seen + self.activity_step())
        .then_some(cached.caller)
    }

    /// Resolves a bearer token; refreshes its idle timer. Answers from the cache when
    /// [`Self::authenticate_cached`] can.
    pub fn authenticate(&self, token: &str) -> Result<Caller, ServiceError> {
        if token.len() != 43 {
            return Err(ServiceError::Unauthenticated);
        }
        if let Some(caller) = self.authenticate_cached(token) {
            return Ok(caller);
        }
        let hash = auth::token_hash(token);
        let now_ms = self.clock.now_ms();
        let now = (now_ms / 1000) as i64;
        let step = self.activity_step();
        let idle = self.config.session_idle_secs as i64;
        let generation = self.sessions.generation();
        let mut conn = self.conn()?;
        let found = conn.session_with_user(&hash)?;
        let Some((session, user)) = found else {
            return Err(ServiceError::Unauthenticated);
        };
        let idle_expired = session.last_seen + idle <= now;
        if session.expires_at <= now || idle_expired || user.disabled {
            conn.delete_session(&hash)?;
            return Err(ServiceError::Unauthenticated);
        }
        let roles = self.session_roles(&mut conn, &user)?;
        let mut last_seen = session.last_seen;
        if now > session.last_seen + step {
            drop(conn);
            let key = hash.clone();
            self.writer
                .run(move |w| Ok(w.conn.touch_session(&key, now)?))?;
            last_seen = now;
        }
        let caller = Caller {
            user_id: user.id,
            username: user.username,
            roles,
            session: hash.clone(),
            must_change_password: user.must_change_password,
        };
        self.sessions.insert(
            hash,
            crate::accounts::session_cache::CachedSession {
                caller: caller.clone(),
                expires_at: session.expires_at,
                last_seen,
                checked_ms: now_ms,
            },
            generation,
        );
        Ok(caller)
    }

    /// Ends a session.
    pub fn logout(&self, caller: &Caller, token: &str) -> Result<(), ServiceError> {
        let now = self.now().as_secs();
        let mut conn = self.conn()?;
        let outcome = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            conn.delete_session(&auth::token_hash(token))?;
            audit_log::append(
                conn,
                now,
                &caller.username,
                "logout",
                &caller.username,
                json!({}),
            )?;
            Ok(())
        });
        self.ending_sessions(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ca_core::clock::{Clock, ManualClock};
    use ca_core::role::Role;
    use ca_core::time::UnixTime;
    use ca_core::totp::TotpSecret;

    use super::*;
    use crate::accounts::policy::AccountPolicy;
    use crate::accounts::AccountsParts;
    use crate::config::Config;
    use crate::metrics::Metrics;
    use crate::secrets::DataKey;
    use crate::store::group_commit::GroupCommit;

    /// An accounts service on a fresh SQLite database, with a clock the test moves, and one
    /// officer whose TOTP secret the test holds.
    fn service() -> (tempfile::TempDir, Accounts, Arc<ManualClock>, TotpSecret) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("accounts.db").display());
        let pool = crate::store::open(&url, 4).unwrap();
        let clock = Arc::new(ManualClock::at(UnixTime(1_800_000_000)));
        let accounts = Accounts::new(AccountsParts {
            pool,
            config: Arc::new(Config::default()),
            metrics: Arc::new(Metrics::default()),
            clock: clock.clone(),
            random: Arc::new(ca_core::random::SeededRandom::new([3; 32])),
            data_key: DataKey::derive("a test passphrase", b"0123456789abcdef").unwrap(),
            account_policy: AccountPolicy::default(),
            writer: Arc::new(GroupCommit::start(&url).unwrap()),
            directory: None,
        });
        let mut conn = accounts.conn().unwrap();
        let enrolment = accounts
            .create_dev_user(
                &mut conn,
                "system",
                "alice",
                "a long password of hers",
                &[Role::SecurityOfficer],
                (None, None),
            )
            .unwrap();
        (
            dir,
            accounts,
            clock,
            TotpSecret::from_otpauth_uri(&enrolment.totp_uri).unwrap(),
        )
    }

    fn login(accounts: &Accounts, code: String) -> Result<LoginResponse, ServiceError> {
        accounts.login(&LoginRequest {
            username: "alice".into(),
            password: "a long password of hers".into(),
            totp: code,
        })
    }

    #[test]
    fn sessions_end_when_idle_and_at_their_absolute_limit_on_the_injected_clock() {
        let (_dir, accounts, clock, secret) = service();
        let code = |clock: &ManualClock| secret.code_at_step(clock.now().as_secs() / 30);
        let token = login(&accounts, code(&clock)).unwrap().token;
        accounts.authenticate(&token).unwrap();
        // Idle: one second short of the timeout still works; past it the session is gone.
        let idle = accounts.config.session_idle_secs;
        clock.advance(idle - 1);
        accounts.authenticate(&token).unwrap();
        clock.advance(idle);
        assert!(matches!(
            accounts.authenticate(&token),
            Err(ServiceError::Unauthenticated)
        ));
        // Absolute: kept busy, a session still ends at session_absolute_secs.
        clock.advance(30);
        let token = login(&accounts, code(&clock)).unwrap().token;
        let absolute = accounts.config.session_absolute_secs;
        let mut used = 0;
        while used + idle / 2 < absolute {
            clock.advance(idle / 2);
            used += idle / 2;
            accounts.authenticate(&token).unwrap();
        }
        clock.advance(absolute - used);
        assert!(matches!(
            accounts.authenticate(&token),
            Err(ServiceError::Unauthenticated)
        ));
    }

    #[test]
    fn a_totp_code_works_once_and_the_next_step_brings_a_new_one() {
        let (_dir, accounts, clock, secret) = service();
        let step = clock.now().as_secs() / 30;
        login(&accounts, secret.code_at_step(step)).unwrap();
        // The same code again, within its step: a replay.
        assert!(matches!(
            login(&accounts, secret.code_at_step(step)),
            Err(ServiceError::InvalidCredentials)
        ));
        // Thirty seconds on, the next code is accepted; a code from two steps back is not.
        clock.advance(30);
        login(&accounts, secret.code_at_step(step + 1)).unwrap();
        clock.advance(60);
        assert!(matches!(
            login(&accounts, secret.code_at_step(step)),
            Err(ServiceError::InvalidCredentials)
        ));
    }
}
