//! k-of-n activation through the API: a signed-in custodian gives their share with a fresh
//! TOTP code; the server opens its CA keys when k distinct custodians have (see
//! `custody::quorum`). Every share given, refused or not, is audited.

use base64::Engine;
use ca_api::{ActivateRequest, ActivationView};
use serde_json::json;

use super::Authority;
use crate::accounts::Caller;
use crate::error::ServiceError;
use crate::store::audit_log;
use crate::store::request_rows::RequestRows;

impl Authority {
    /// `GET /api/v1/activate`: where activation stands.
    pub fn activation_view(&self) -> Result<ActivationView, ServiceError> {
        let activation = self.activation.as_ref().ok_or_else(not_under_quorum)?;
        let progress = activation.progress();
        Ok(ActivationView {
            locked: !progress.unlocked,
            shares_given: progress.given,
            threshold: progress.threshold,
            set: activation.quorum().set.clone(),
        })
    }

    /// `POST /api/v1/activate`: the caller's share, for the caller only, with step-up.
    pub fn activate(
        &self,
        caller: &Caller,
        body: &ActivateRequest,
    ) -> Result<ActivationView, ServiceError> {
        let outcome = self.activate_inner(caller, body);
        self.accounts
            .guarded(caller, "quorum.share", "quorum", outcome)
    }

    fn activate_inner(
        &self,
        caller: &Caller,
        body: &ActivateRequest,
    ) -> Result<ActivationView, ServiceError> {
        let activation = self.activation.as_ref().ok_or_else(not_under_quorum)?;
        let quorum = activation.quorum();
        if body.set != quorum.set {
            return Err(ServiceError::Invalid(format!(
                "share set {} is not the current one ({}); a reshare replaced it",
                body.set, quorum.set
            )));
        }
        if quorum.custodians.get(&body.index) != Some(&caller.username) {
            return Err(ServiceError::Forbidden(format!(
                "share {} is not {}'s: each custodian gives their own",
                body.index, caller.username
            )));
        }
        let value = base64::engine::general_purpose::STANDARD
            .decode(&body.value)
            .map_err(|_| ServiceError::Invalid("value is not base64".into()))?;
        let was_unlocked = activation.unlocked();
        let now = self.now().as_secs();
        let mut conn = self.conn()?;
        crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let user = conn.user_row(&caller.user_id)?;
            self.accounts.step_up(conn, &user, &body.totp)?;
            audit_log::append(
                conn,
                now,
                &caller.username,
                "quorum.share",
                "quorum",
                json!({"set": quorum.set, "index": body.index}),
            )?;
            Ok(())
        })?;
        let share = ca_core::quorum::Share {
            index: body.index,
            value: zeroize::Zeroizing::new(value),
        };
        activation
            .give(&caller.username, share)
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        if !was_unlocked && activation.unlocked() {
            self.metrics
                .locked
                .store(false, std::sync::atomic::Ordering::Relaxed);
            audit_log::append(
                &mut conn,
                now,
                &caller.username,
                "quorum.unlock",
                "quorum",
                json!({"set": quorum.set, "threshold": quorum.threshold}),
            )?;
            drop(conn);
            tracing::info!("k of n custodians activated the CA keys");
            // What waited for the keys: responder renewals and CRL publication.
            if let Err(e) = self.maintain() {
                tracing::warn!(error = %e, "upkeep after activation failed; the next run retries");
            }
        }
        self.activation_view()
    }
}

fn not_under_quorum() -> ServiceError {
    ServiceError::Conflict(
        "this server's CA keys are not under a k-of-n quorum (ca-server quorum split)".into(),
    )
}
