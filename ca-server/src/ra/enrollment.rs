//! Device enrollment's authorization: one-time enrollment codes ("challenge passwords") that a
//! device enroller mints for one profile (the shape of Jamf's and Intune's dynamic SCEP
//! challenges), the optional static challenge of a profile, and enrollment under a bootstrap
//! certificate. A device that proves one of these files a request under the enroller's account;
//! the profile's approval rule still applies.

use std::sync::Arc;

use ca_core::csr::VerifiedCsr;
use ca_core::name::{first_attribute, general_name_text, AttributeKind};
use ca_core::profile::Profile;
use regex::Regex;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::submit::{OnStore, Requester, Submission};
use super::{Authority, Page, Submitted};
use crate::accounts::Caller;
use crate::api::*;
use crate::error::ServiceError;
use crate::store::audit_log;
use crate::store::enrollment_rows::EnrollmentRows;
use crate::store::ids::new_ordered_id;
use crate::store::models::ChallengeRow;

/// The characters of an enrollment code: no 0/O, 1/I/L, so that it survives being read aloud.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters in a code: 24 of 31, about 119 bits.
const CODE_LEN: usize = 24;
/// The longest a code may live (a day); the default is an hour.
const MAX_VALID_MINUTES: u32 = 1440;

/// How a device proves it may enroll under a profile.
#[derive(Debug, Clone)]
pub enum DeviceProof {
    /// A one-time enrollment code (SCEP challengePassword, EST HTTP Basic password), or the
    /// profile's static challenge.
    Code(String),
    /// A certificate the device authenticated with over TLS (EST), from one of the profile's
    /// bootstrap profiles.
    Bootstrap(Vec<u8>),
}

/// The SHA-256 of a code, hex: what the database keeps and looks codes up by.
pub(super) fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.trim().as_bytes()))
}

/// A pattern of an enrollment code, anchored; refused when it does not compile or is huge.
fn anchored(field: &str, pattern: &str) -> Result<Regex, ServiceError> {
    if pattern.len() > 256 {
        return Err(ServiceError::Invalid(format!(
            "{field} must be at most 256 characters"
        )));
    }
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ServiceError::Invalid(format!("{field} is not a valid pattern: {e}")))
}

/// Checks a CSR against a code's CN and SAN patterns.
pub(super) fn check_patterns(row: &ChallengeRow, csr: &VerifiedCsr) -> Result<(), ServiceError> {
    if let Some(pattern) = &row.cn_pattern {
        let cn = first_attribute(csr.subject(), AttributeKind::CN).unwrap_or_default();
        if !anchored("cn_pattern", pattern)?.is_match(&cn) {
            return Err(ServiceError::Forbidden(format!(
                "this enrollment code is for a CN matching {pattern:?}, not {cn:?} \
                 / この登録コードはこの CN には使えません"
            )));
        }
    }
    if let Some(pattern) = &row.san_pattern {
        let re = anchored("san_pattern", pattern)?;
        for name in csr.requested_sans() {
            let (field, value) = general_name_text(name);
            let text = format!("{field}:{value}");
            if !re.is_match(&text) {
                return Err(ServiceError::Forbidden(format!(
                    "this enrollment code is for subjectAltNames matching {pattern:?}, not \
                     {text:?} / この登録コードはこの SAN には使えません"
                )));
            }
        }
    }
    Ok(())
}

/// The refusal of an unknown, used or expired code: one message for all three, so that a
/// guesser learns nothing about which codes exist.
pub(super) fn bad_code() -> ServiceError {
    ServiceError::Forbidden(
        "the enrollment code is unknown, used or expired; ask the device enroller for a new one \
         / 登録コードが無効です"
            .into(),
    )
}

impl Authority {
    /// A profile that serves device enrollment through `protocol` (`scep` or `est`).
    pub fn enrollment_profile(&self, id: &str, protocol: &str) -> Result<&Profile, ServiceError> {
        let profile = self
            .profiles
            .get(id)
            .ok_or_else(|| ServiceError::NotFound(format!("profile {id}")))?;
        let rule = profile.enrollment();
        let served = match protocol {
            "scep" => rule.scep,
            "est" => rule.est,
            _ => false,
        };
        if served {
            Ok(profile)
        } else {
            Err(ServiceError::NotFound(format!(
                "{protocol} enrollment for profile {id}"
            )))
        }
    }

    /// `POST /api/v1/enrollment-codes`: mints a one-time code for one device under a profile
    /// the caller may request. The answer is the only place the code appears.
    pub fn create_challenge(
        &self,
        caller: &Caller,
        request: ChallengeRequest,
    ) -> Result<ChallengeView, ServiceError> {
        let profile = self
            .profiles
            .get(&request.profile)
            .ok_or_else(|| ServiceError::NotFound(format!("profile {}", request.profile)))?;
        if !(profile.enrollment().scep || profile.enrollment().est) {
            return Err(ServiceError::Invalid(format!(
                "profile {} does not serve SCEP or EST ([enrollment] in its file)",
                profile.id()
            )));
        }
        if !profile.may_request(&caller.roles) {
            return Err(ServiceError::Forbidden(format!(
                "enrollment codes for {} are minted by its requesters ({})",
                profile.id(),
                profile
                    .requester_roles()
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let clean = |p: Option<String>| p.map(|p| p.trim().to_string()).filter(|p| !p.is_empty());
        let (cn_pattern, san_pattern) = (clean(request.cn_pattern), clean(request.san_pattern));
        if let Some(p) = &cn_pattern {
            anchored("cn_pattern", p)?;
        }
        if let Some(p) = &san_pattern {
            anchored("san_pattern", p)?;
        }
        let minutes = request.valid_minutes.unwrap_or(60);
        if minutes == 0 || minutes > MAX_VALID_MINUTES {
            return Err(ServiceError::Invalid(format!(
                "valid_minutes must be 1-{MAX_VALID_MINUTES}"
            )));
        }
        let mut bytes = [0u8; CODE_LEN];
        self.random
            .fill(&mut bytes)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        // 256 is not a multiple of 31: draw again for the top values instead of skewing.
        let mut code = String::with_capacity(CODE_LEN + 4);
        let mut pool = bytes.to_vec();
        while code.chars().filter(|c| *c != '-').count() < CODE_LEN {
            let Some(b) = pool.pop() else {
                let mut more = [0u8; 16];
                self.random
                    .fill(&mut more)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?;
                pool.extend_from_slice(&more);
                continue;
            };
            if usize::from(b) >= 256 - 256 % CODE_ALPHABET.len() {
                continue;
            }
            if !code.is_empty() && code.chars().filter(|c| *c != '-').count() % 6 == 0 {
                code.push('-');
            }
            code.push(char::from(
                CODE_ALPHABET[usize::from(b) % CODE_ALPHABET.len()],
            ));
        }
        let now = self.now().as_secs() as i64;
        let row = ChallengeRow {
            id: new_ordered_id("chl", self.clock.now_ms())?,
            code_sha256: code_hash(&code),
            profile_id: profile.id().to_string(),
            cn_pattern,
            san_pattern,
            created_by: caller.user_id.clone(),
            created_at: now,
            expires_at: now + i64::from(minutes) * 60,
            used_at: None,
            request_id: None,
        };
        let stored = row.clone();
        let actor = caller.username.clone();
        self.writer.run(move |w| {
            w.conn.insert_challenge(&stored)?;
            w.audit(audit_log::Entry::new(
                now as u64,
                &actor,
                "enrollment.code.create",
                &stored.id,
                json!({"profile": stored.profile_id, "cn_pattern": stored.cn_pattern,
                       "san_pattern": stored.san_pattern, "expires_at": rfc3339(stored.expires_at)}),
            ));
            Ok(())
        })?;
        let mut view = challenge_view(row, caller.username.clone(), now);
        view.code = Some(code);
        Ok(view)
    }

    /// `GET /api/v1/enrollment-codes`: the newest codes (never the codes themselves).
    pub fn list_challenges(
        &self,
        caller: &Caller,
        profile: Option<&str>,
    ) -> Result<Page<ChallengeView>, ServiceError> {
        use ca_core::role::Role;
        let enroller = self.profiles.values().any(|p| p.may_request(&caller.roles));
        if !enroller && !caller.has_any(&[Role::SecurityOfficer, Role::Admin, Role::Auditor]) {
            return Err(ServiceError::Forbidden(
                "enrollment codes are listed for enrollers, officers, admins and auditors".into(),
            ));
        }
        let now = self.now().as_secs() as i64;
        let rows = self.conn()?.challenges(profile, 1000)?;
        let items: Vec<ChallengeView> = rows
            .into_iter()
            .map(|(row, name)| challenge_view(row, name, now))
            .collect();
        Ok(Page {
            total: items.len() as i64,
            items,
            next: None,
        })
    }

    /// `POST /api/v1/enrollment-codes/{id}/revoke`: ends an unused code at once (its minter,
    /// a security officer or an admin).
    pub fn revoke_challenge(&self, caller: &Caller, id: &str) -> Result<(), ServiceError> {
        use ca_core::role::Role;
        let now = self.now().as_secs() as i64;
        let mut conn = self.conn()?;
        let own = conn
            .challenges(None, 1000)?
            .into_iter()
            .find(|(row, _)| row.id == id)
            .ok_or_else(|| ServiceError::NotFound(format!("enrollment code {id}")))?;
        if own.0.created_by != caller.user_id
            && !caller.has_any(&[Role::SecurityOfficer, Role::Admin])
        {
            return Err(ServiceError::Forbidden(
                "an enrollment code is revoked by its minter, a security officer or an admin"
                    .into(),
            ));
        }
        let (id, actor) = (id.to_string(), caller.username.clone());
        self.writer.run(move |w| {
            if !w.conn.expire_challenge(&id, now)? {
                return Err(ServiceError::Conflict(format!(
                    "enrollment code {id} is already used or expired"
                )));
            }
            w.audit(audit_log::Entry::new(
                now as u64,
                &actor,
                "enrollment.code.revoke",
                &id,
                json!({}),
            ));
            Ok(())
        })
    }

    /// Who a device's request is filed under, after checking its proof against the profile
    /// and the CSR; and the work that must happen in the request's own commit (using the
    /// one-time code up). Nothing is stored here.
    pub(crate) fn authorize_device(
        &self,
        profile: &Profile,
        proof: &DeviceProof,
        csr: &VerifiedCsr,
        via: &str,
    ) -> Result<(Requester, Option<OnStore>), ServiceError> {
        match proof {
            DeviceProof::Code(code) => {
                let code = code.trim();
                if code.is_empty() || code.len() > 128 {
                    return Err(bad_code());
                }
                for validator in super::challenge::VALIDATORS {
                    if let Some(found) = validator.validate(self, profile, code, csr, via)? {
                        return Ok(found);
                    }
                }
                Err(bad_code())
            }
            DeviceProof::Bootstrap(der) => {
                let current = self.presented_certificate(der)?;
                if !profile
                    .enrollment()
                    .bootstrap_profiles
                    .contains(&current.row.profile_id)
                {
                    return Err(ServiceError::Forbidden(format!(
                        "a certificate of profile {} does not authorize enrollment under {} \
                         (its [enrollment] bootstrap_profiles)",
                        current.row.profile_id,
                        profile.id()
                    )));
                }
                current.require_unexpired(self.now().as_secs() as i64, 0)?;
                Ok((current.requester(self, via)?, None))
            }
        }
    }

    /// A device's enrollment (SCEP PKCSReq, EST simpleenroll): the proof is checked, then the
    /// request is submitted under the profile as if its enroller had sent it.
    pub fn enroll_device(
        &self,
        profile: &Profile,
        proof: &DeviceProof,
        csr_der: &[u8],
        via: &str,
        extra: Option<OnStore>,
    ) -> Result<Submitted, ServiceError> {
        let csr =
            VerifiedCsr::parse_remembering(csr_der, profile.min_rsa_bits(), &self.csr_signatures)?;
        let (requester, on_store) = self.authorize_device(profile, proof, &csr, via)?;
        // The transaction first: a copy of a message sent at the same time is answered with the
        // first one's request, not refused for the code the first one used up.
        let on_store = chain_hooks(extra, on_store);
        self.submit_checked(
            &requester,
            profile,
            &csr,
            Submission {
                justification: format!("device enrollment through {via}"),
                work_order: None,
                window: None,
                on_store,
                approved: false,
                duplicates: profile.duplicates(),
            },
        )
    }
}

/// Both hooks, in order, or whichever there is.
pub(crate) fn chain_hooks(first: Option<OnStore>, second: Option<OnStore>) -> Option<OnStore> {
    match (first, second) {
        (Some(a), Some(b)) => Some(Arc::new(move |conn, id, now| {
            a(conn, id, now)?;
            b(conn, id, now)
        })),
        (a, None) => a,
        (None, b) => b,
    }
}

fn challenge_view(row: ChallengeRow, created_by: String, now: i64) -> ChallengeView {
    let state = if row.used_at.is_some() {
        "used"
    } else if row.expires_at <= now {
        "expired"
    } else {
        "unused"
    };
    ChallengeView {
        id: row.id,
        code: None,
        profile: row.profile_id,
        cn_pattern: row.cn_pattern,
        san_pattern: row.san_pattern,
        created_by,
        created_at: rfc3339(row.created_at),
        expires_at: rfc3339(row.expires_at),
        state: state.into(),
        request_id: row.request_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_anchored_and_bounded() {
        let re = anchored("cn_pattern", "ipad-[0-9]+").unwrap();
        assert!(re.is_match("ipad-12"));
        assert!(!re.is_match("xipad-12"));
        assert!(!re.is_match("ipad-12x"));
        assert!(anchored("cn_pattern", "(").is_err());
        assert!(anchored("cn_pattern", &"a".repeat(300)).is_err());
    }

    #[test]
    fn code_hash_ignores_surrounding_space_only() {
        assert_eq!(code_hash(" ABC "), code_hash("ABC"));
        assert_ne!(code_hash("ABC"), code_hash("abc"));
    }
}
