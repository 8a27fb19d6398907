//! Self-enrolment: a created or reset account's holder sets their own password and gets their
//! own TOTP secret with a one-time code, so no administrator ever knows either. The code has two
//! halves (50 random bits each) that go to two different people — the admin who asked for the
//! change and the approver who completed it — so one of them alone cannot take the account over.
//! Only SHA-256 digests of the halves are stored; five wrong codes void the enrolment (a new
//! reset is needed), and the route shares the login limiter per client address.

use ca_core::random::RandomSource;
use ca_core::role::Role;
use ca_core::totp::TotpSecret;
use diesel::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Accounts;
use crate::accounts::credentials as auth;
use crate::api::{EnrolRequest, TotpEnrolment};
use crate::error::ServiceError;
use crate::secrets::{random_bytes, DataKey, SecretError};
use crate::store::account_rows::AccountRows;
use crate::store::audit_log;
use crate::store::directory_rows::DirectoryRows;
use crate::store::models::{EnrolmentRow, UserRow};
use crate::store::DbConnection;

/// Characters of a code half: Crockford's base32 (no I, L, O, U to misread).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters per half (5 bits each).
const HALF_LEN: usize = 10;
/// Wrong codes before an enrolment is void.
pub const MAX_ENROLMENT_FAILURES: i32 = 5;

/// A new code half, shown as `XXXXX-XXXXX`.
pub fn new_half() -> Result<String, SecretError> {
    let bytes = random_bytes(HALF_LEN)?;
    // 256 is a multiple of 32: masking keeps every character equally likely.
    let chars: String = bytes
        .iter()
        .map(|b| ALPHABET[(b & 31) as usize] as char)
        .collect();
    Ok(format!("{}-{}", &chars[..5], &chars[5..]))
}

/// The stored digest of a half (hex SHA-256 of its normalized characters).
pub fn half_hash(half: &str) -> String {
    hex::encode(Sha256::digest(normalize(half).as_bytes()))
}

/// Upper-case letters and digits only, with the look-alikes a person may type mapped as
/// Crockford's base32 does (O→0, I/L→1).
fn normalize(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect()
}

/// The stored form of a whole code: the digests of both halves.
pub fn stored_hash(first_half_hash: &str, second_half: &str) -> String {
    format!("{first_half_hash}:{}", half_hash(second_half))
}

/// Whether `code` (both halves, in order, any separators) matches `stored`; constant time.
pub fn code_matches(code: &str, stored: &str) -> bool {
    let code = normalize(code);
    let Some((first, second)) = stored.split_once(':') else {
        return false;
    };
    if code.len() != 2 * HALF_LEN {
        return false;
    }
    let (a, b) = code.split_at(HALF_LEN);
    let ok_a = half_hash(a).as_bytes().ct_eq(first.as_bytes());
    let ok_b = half_hash(b).as_bytes().ct_eq(second.as_bytes());
    (ok_a & ok_b).into()
}

/// A password hash nobody knows the password of (an account waiting to enrol cannot sign in,
/// and a login attempt on it costs the same argon2 time as any other).
pub fn unusable_password_hash() -> Result<String, SecretError> {
    auth::hash_password(&hex::encode(random_bytes(32)?))
}

/// Puts an account into enrolment: the code's digest and expiry are stored (replacing an
/// earlier enrolment), its sessions end, and it cannot sign in until its holder enrols.
pub fn start_enrolment(
    conn: &mut DbConnection,
    user_id: &str,
    stored: &str,
    expires_at: i64,
) -> QueryResult<()> {
    conn.replace_enrolment(&EnrolmentRow {
        user_id: user_id.into(),
        code_hash: stored.into(),
        expires_at,
        failures: 0,
    })?;
    conn.delete_sessions_of(user_id)
}

/// A user row for an account that will enrol (store it, then [`start_enrolment`]): nobody knows
/// its password or TOTP secret.
pub fn enrolling_user_row(
    data_key: &DataKey,
    random: &dyn RandomSource,
    username: &str,
    roles: &[Role],
    registered: (Option<String>, Option<String>),
    now: i64,
) -> Result<UserRow, ServiceError> {
    let (row, _) = super::users::user_row(
        data_key,
        random,
        username,
        unusable_password_hash()?,
        roles,
        registered,
        now,
    )?;
    Ok(row)
}

impl Accounts {
    /// `POST /api/v1/enrol` (no session): with the whole one-time code, the account's holder
    /// sets their password and receives a new TOTP secret, shown once. Every failure answers
    /// "invalid credentials" and is audited; the fifth wrong code voids the enrolment.
    ///
    /// A directory account's holder sends no password: the directory keeps it.
    pub fn enrol(&self, request: &EnrolRequest) -> Result<TotpEnrolment, ServiceError> {
        let password_hash = if request.new_password.is_empty() {
            None
        } else {
            auth::check_password_policy(&request.new_password).map_err(ServiceError::Invalid)?;
            Some(auth::hash_password(&request.new_password)?)
        };
        let now = self.now().as_secs() as i64;
        let secret = TotpSecret::generate(&*self.random)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let sealed = self.data_key.seal(secret.as_bytes())?;
        let mut conn = self.conn()?;
        let outcome = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let Some(user) = self.user_by_name(conn, &request.username)? else {
                return Ok(Err("no such account or no enrolment"));
            };
            // Parallel attempts take turns on the row (as logins do), so the count is exact.
            conn.lock_enrolment(&user.id)?;
            let Some(enrolment) = conn.enrolment(&user.id)? else {
                return Ok(Err("no such account or no enrolment"));
            };
            if user.disabled {
                return Ok(Err("account disabled"));
            }
            if enrolment.expires_at <= now {
                return Ok(Err("enrolment code expired"));
            }
            if !code_matches(&request.code, &enrolment.code_hash) {
                let failures = enrolment.failures + 1;
                let void = failures >= MAX_ENROLMENT_FAILURES;
                if void {
                    conn.delete_enrolment(&user.id)?;
                } else {
                    conn.set_enrolment_failures(&user.id, failures)?;
                }
                audit_log::append(
                    conn,
                    now as u64,
                    &user.username,
                    "user.enrol_failed",
                    &user.username,
                    json!({"failures": failures, "void": void}),
                )?;
                return Ok(Err("wrong enrolment code"));
            }
            let directory = conn.directory_account(&user.id)?.is_some();
            let password_hash = match (directory, &password_hash) {
                (true, None) => user.password_hash.clone(),
                (false, Some(hash)) => hash.clone(),
                (true, Some(_)) => {
                    return Err(ServiceError::Invalid(
                        "this account signs in with its directory password: leave the new \
                         password out / ディレクトリのパスワードでサインインするアカウントです"
                            .into(),
                    ))
                }
                (false, None) => {
                    return Err(ServiceError::Invalid(
                        "choose a password (new_password) / パスワードを設定してください".into(),
                    ))
                }
            };
            conn.delete_enrolment(&user.id)?;
            conn.set_credentials(&user.id, &password_hash, &sealed, now)?;
            audit_log::append(
                conn,
                now as u64,
                &user.username,
                "user.enrol",
                &user.username,
                json!({}),
            )?;
            Ok(Ok(user))
        })?;
        match outcome {
            Ok(user) => Ok(TotpEnrolment {
                user: Self::user_view(&user),
                totp_uri: secret.otpauth_uri("Mamori", &request.username).to_string(),
            }),
            Err(reason) => {
                tracing::info!(reason, "enrolment refused");
                self.metrics.refusal("enrolment");
                Err(ServiceError::InvalidCredentials)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_are_random_and_both_are_needed() {
        let (a, b) = (new_half().unwrap(), new_half().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 11);
        assert!(a.chars().all(|c| c == '-' || ALPHABET.contains(&(c as u8))));
        let stored = stored_hash(&half_hash(&a), &b);
        assert!(code_matches(&format!("{a}-{b}"), &stored));
        assert!(code_matches(&format!("{a} {b}").to_lowercase(), &stored));
        assert!(!code_matches(&format!("{b}-{a}"), &stored));
        assert!(!code_matches(&a, &stored));
        assert!(!code_matches(&format!("{a}-{a}"), &stored));
        assert!(!code_matches(&format!("{a}-{b}"), "not-a-digest"));
    }

    #[test]
    fn look_alikes_read_as_crockford_digits() {
        assert_eq!(normalize("o1-Il"), "0111");
        assert_eq!(half_hash("ABCDE-0123"), half_hash("abcdeo123"));
    }
}
