//! How a challenge password proves a device may enroll: a list of [`ChallengeValidator`]s,
//! asked in turn. Mamori's own are a profile's static challenge (off unless configured) and the
//! one-time codes device enrollers mint. An MDM's own check (Microsoft Intune's SCEP challenge
//! validation, where the network allows reaching it) is one more implementation in the list.

use std::sync::Arc;

use ca_core::csr::VerifiedCsr;
use ca_core::profile::Profile;
use sha2::{Digest, Sha256};

use super::enrollment::{bad_code, check_patterns, code_hash};
use super::submit::{OnStore, Requester};
use super::Authority;
use crate::error::ServiceError;
use crate::store::enrollment_rows::EnrollmentRows;
use crate::store::request_rows::RequestRows;

/// Who a device's request is filed under, and the work its commit must do.
pub(crate) type Proven = (Requester, Option<OnStore>);

/// One way a challenge password can prove a device may enroll under a profile.
pub(crate) trait ChallengeValidator: Send + Sync {
    /// `Ok(None)`: not this validator's challenge (the next one is asked); `Ok(Some)`: the
    /// account the request is filed under and what its commit must do; `Err`: refused.
    fn validate(
        &self,
        authority: &Authority,
        profile: &Profile,
        challenge: &str,
        csr: &VerifiedCsr,
        via: &str,
    ) -> Result<Option<Proven>, ServiceError>;
}

/// The validators, in the order they are asked.
pub(crate) const VALIDATORS: &[&dyn ChallengeValidator] = &[&StaticChallenge, &OneTimeCodes];

/// A profile's static challenge (`[enrollment] static_challenge_sha256`), compared in constant
/// time; its requests are filed under `static_challenge_owner`.
pub(crate) struct StaticChallenge;

impl ChallengeValidator for StaticChallenge {
    fn validate(
        &self,
        authority: &Authority,
        profile: &Profile,
        challenge: &str,
        _csr: &VerifiedCsr,
        via: &str,
    ) -> Result<Option<Proven>, ServiceError> {
        let rule = profile.enrollment();
        let (Some(hash), Some(owner)) =
            (&rule.static_challenge_sha256, &rule.static_challenge_owner)
        else {
            return Ok(None);
        };
        let given: [u8; 32] = Sha256::digest(challenge.as_bytes()).into();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&given[..], &hash[..])) {
            return Ok(None);
        }
        let mut conn = authority.conn()?;
        let user_id = conn.user_id_by_name(owner)?.ok_or_else(|| {
            ServiceError::Internal(format!(
                "profile {}: static_challenge_owner {owner} does not exist",
                profile.id()
            ))
        })?;
        if conn.user_disabled(&user_id)? {
            return Err(bad_code());
        }
        Ok(Some((
            Requester {
                user_id,
                username: owner.clone(),
                actor: format!("{via}:static-challenge"),
            },
            None,
        )))
    }
}

/// The one-time codes of `POST /api/v1/enrollment-codes`: unknown, used, expired or a disabled
/// minter's codes are refused alike; the code is used up in the request's own commit.
pub(crate) struct OneTimeCodes;

impl ChallengeValidator for OneTimeCodes {
    fn validate(
        &self,
        authority: &Authority,
        profile: &Profile,
        challenge: &str,
        csr: &VerifiedCsr,
        via: &str,
    ) -> Result<Option<Proven>, ServiceError> {
        let now = authority.now().as_secs() as i64;
        let Some((row, user)) = authority.conn()?.challenge_by_hash(&code_hash(challenge))? else {
            return Ok(None);
        };
        if row.used_at.is_some() || row.expires_at <= now || user.disabled {
            return Err(bad_code());
        }
        if row.profile_id != profile.id() {
            return Err(ServiceError::Forbidden(format!(
                "this enrollment code is for profile {}, not {} / プロファイルが違います",
                row.profile_id,
                profile.id()
            )));
        }
        check_patterns(&row, csr)?;
        let id = row.id.clone();
        let on_store: OnStore = Arc::new(move |conn, request_id, now| {
            if conn.use_challenge(&id, request_id, now)? {
                Ok(())
            } else {
                Err(bad_code())
            }
        });
        Ok(Some((
            Requester {
                user_id: user.id,
                username: user.username,
                actor: format!("{via}:{}", row.id),
            },
            Some(on_store),
        )))
    }
}
