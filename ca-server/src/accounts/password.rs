//! Changing one's own password: required at the first sign-in when an admin set it (so the
//! password the admin chose does not stay valid), and open to everyone at any time.

use serde_json::json;

use super::{Accounts, Caller};
use crate::accounts::credentials as auth;
use crate::api::{PasswordChangeRequest, UserView};
use crate::error::ServiceError;
use crate::store::account_rows::AccountRows;
use crate::store::audit_log;
use crate::store::directory_rows::DirectoryRows;

impl Accounts {
    /// `POST /passwd`: the current password again, then a new one that meets the policy and
    /// differs from it. Other sessions of the account end; this one goes on.
    pub fn change_password(
        &self,
        caller: &Caller,
        request: &PasswordChangeRequest,
    ) -> Result<UserView, ServiceError> {
        auth::check_password_policy(&request.new_password).map_err(ServiceError::Invalid)?;
        if request.new_password == request.current_password {
            return Err(ServiceError::Invalid(
                "the new password must differ from the current one".into(),
            ));
        }
        let now = self.now().as_secs();
        let mut conn = self.conn()?;
        let user = conn.user(&caller.user_id)?;
        if conn.directory_account(&user.id)?.is_some() {
            return Err(ServiceError::Conflict(
                "this account's password is kept by the directory: change it there / \
                 パスワードはディレクトリで変更してください"
                    .into(),
            ));
        }
        if !auth::verify_password(&request.current_password, &user.password_hash) {
            audit_log::append(
                &mut conn,
                now,
                &caller.username,
                "user.passwd_failed",
                &caller.username,
                json!({"reason": "current password wrong"}),
            )?;
            return Err(ServiceError::InvalidCredentials);
        }
        let hash = auth::hash_password(&request.new_password)?;
        let outcome = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            conn.set_password(&user.id, &hash)?;
            conn.delete_other_sessions(&user.id, &caller.session)?;
            audit_log::append(
                conn,
                now,
                &caller.username,
                "user.passwd",
                &caller.username,
                json!({"was_set_by_admin": user.must_change_password}),
            )?;
            let mut updated = user.clone();
            updated.must_change_password = false;
            Ok(Self::user_view(&updated))
        });
        // Cached sessions carry the old flag: forget them.
        self.sessions.invalidate();
        outcome
    }
}
