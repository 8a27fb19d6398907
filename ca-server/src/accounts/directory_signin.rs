//! Directory accounts in the accounts service: their password checked by the directory at
//! sign-in, their session's roles narrowed to what their groups allow, and the periodic sync
//! that ends the sessions of people the directory disabled or removed.

use ca_core::role::Role;
use serde_json::json;

use super::credentials as auth;
use super::directory::{effective_roles, PasswordCheck};
use super::{parse_roles, roles_text, Accounts};
use crate::error::ServiceError;
use crate::store::audit_log;
use crate::store::directory_rows::DirectoryRows;
use crate::store::models::{DirectoryAccountRow, UserRow};
use crate::store::DbConnection;

/// What the password check decided, for the sign-in transaction to apply.
pub(super) struct PasswordOutcome {
    /// The password (local or directory) is right and, for a directory account, the person
    /// is enabled there with at least one role.
    pub ok: bool,
    /// Why not, for the audit trail.
    pub reason: &'static str,
    /// The directory no longer knows the person as enabled: end their sessions.
    pub end_sessions: bool,
    /// What to record of the directory's answer.
    pub record: Option<DirectoryAccountRow>,
}

impl PasswordOutcome {
    fn refused(reason: &'static str) -> PasswordOutcome {
        PasswordOutcome {
            ok: false,
            reason,
            end_sessions: false,
            record: None,
        }
    }
}

impl Accounts {
    /// Checks `password` for `user`: against the local argon2id hash, or for a directory
    /// account by a bind to the directory (at most `timeout_secs` per operation). An unreachable
    /// directory is a 503: directory accounts wait for it, local accounts still sign in.
    pub(super) fn check_password(
        &self,
        conn: &mut DbConnection,
        user: &UserRow,
        password: &str,
        now: i64,
    ) -> Result<PasswordOutcome, ServiceError> {
        let Some(record) = conn.directory_account(&user.id)? else {
            let ok = auth::verify_password(password, &user.password_hash);
            return Ok(if ok {
                PasswordOutcome {
                    ok,
                    reason: "",
                    end_sessions: false,
                    record: None,
                }
            } else {
                PasswordOutcome::refused("password")
            });
        };
        let Some(directory) = &self.directory else {
            tracing::warn!(user = %user.username, "a directory account signs in but [directory] is not configured");
            return Ok(PasswordOutcome::refused("directory not configured"));
        };
        let username = user.username.clone();
        let answer = directory.check_password(&username, password);
        let person = match answer {
            Ok(PasswordCheck::Accepted(person)) => person,
            Ok(PasswordCheck::WrongPassword) => return Ok(PasswordOutcome::refused("password")),
            Ok(PasswordCheck::NoSuchPerson) => {
                return Ok(PasswordOutcome {
                    end_sessions: true,
                    ..PasswordOutcome::refused("absent or disabled in the directory")
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, user = %username, "directory sign-in failed");
                audit_log::append(
                    conn,
                    now as u64,
                    &user.username,
                    "login.failed",
                    &user.username,
                    json!({"reason": "directory unreachable"}),
                )?;
                return Err(ServiceError::Unavailable(
                    "the directory cannot be reached; directory accounts sign in again when it \
                     answers / ディレクトリに接続できません"
                        .into(),
                ));
            }
        };
        let allowed = directory.allowed_roles(&person);
        let effective = effective_roles(&parse_roles(&user.roles), allowed.as_deref());
        let record = Some(DirectoryAccountRow {
            user_id: record.user_id,
            dn: Some(person.dn),
            roles: allowed.as_deref().map(roles_text),
            checked_at: now,
        });
        if effective.is_empty() {
            return Ok(PasswordOutcome {
                record,
                ..PasswordOutcome::refused("no granted role allowed by the directory's groups")
            });
        }
        Ok(PasswordOutcome {
            ok: true,
            reason: "",
            end_sessions: false,
            record,
        })
    }

    /// The roles a session of `user` holds: the granted ones, narrowed by the directory's
    /// groups for a directory account whose groups were read.
    pub(super) fn session_roles(
        &self,
        conn: &mut DbConnection,
        user: &UserRow,
    ) -> Result<Vec<Role>, ServiceError> {
        let granted = parse_roles(&user.roles);
        Ok(match conn.directory_account(&user.id)? {
            Some(DirectoryAccountRow {
                roles: Some(allowed),
                ..
            }) => effective_roles(&granted, Some(&parse_roles(&allowed))),
            _ => granted,
        })
    }

    /// Asks the directory again about each directory account with an open session not checked
    /// for `sync_secs`: a person absent or disabled there, or left without any granted role
    /// their groups allow, loses their sessions at once; changed groups change the roles of
    /// their sessions. A directory that does not answer changes nothing (and is logged).
    /// Returns how many accounts lost their sessions.
    pub fn directory_sync(&self) -> Result<usize, ServiceError> {
        let Some(directory) = &self.directory else {
            return Ok(0);
        };
        let now = self.now().as_secs() as i64;
        let due: Vec<(String, DirectoryAccountRow)> = {
            let mut conn = self.conn()?;
            conn.directory_accounts_in_session(now)?
                .into_iter()
                .filter(|(_, row)| row.checked_at + directory.sync_secs() as i64 <= now)
                .collect()
        };
        let mut ended = 0;
        for (username, row) in due {
            let found = match directory.find(&username) {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "directory sync: the directory did not answer");
                    return Ok(ended);
                }
            };
            let mut conn = self.conn()?;
            let user = conn_user(&mut conn, &row.user_id)?;
            let allowed = found.as_ref().and_then(|p| directory.allowed_roles(p));
            let keeps = found.is_some()
                && !effective_roles(&parse_roles(&user.roles), allowed.as_deref()).is_empty();
            let record = DirectoryAccountRow {
                user_id: row.user_id.clone(),
                dn: found.map(|p| p.dn).or(row.dn.clone()),
                roles: allowed.as_deref().map(roles_text),
                checked_at: now,
            };
            crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
                conn.record_directory_check(&record)?;
                if !keeps {
                    crate::store::account_rows::AccountRows::delete_sessions_of(
                        conn,
                        &row.user_id,
                    )?;
                    audit_log::append(
                        conn,
                        now as u64,
                        "directory",
                        "session.end",
                        &username,
                        json!({"reason": "absent, disabled or without a role in the directory"}),
                    )?;
                } else if record.roles != row.roles {
                    audit_log::append(
                        conn,
                        now as u64,
                        "directory",
                        "user.directory_roles",
                        &username,
                        json!({"before": row.roles, "after": record.roles}),
                    )?;
                }
                Ok(())
            })?;
            if !keeps {
                ended += 1;
            }
            if !keeps || record.roles != row.roles {
                self.invalidate_sessions();
            }
        }
        Ok(ended)
    }
}

fn conn_user(conn: &mut DbConnection, id: &str) -> Result<UserRow, ServiceError> {
    Ok(crate::store::account_rows::AccountRows::user(conn, id)?)
}
