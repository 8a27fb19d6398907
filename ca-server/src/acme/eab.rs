//! External Account Binding keys: minted by a security officer with a fresh second factor for
//! one profile and a list of name patterns, shown once, sealed at rest, bound to the first
//! account that presents them; revoking one deactivates its account.

use ca_core::profile::Profile;
use ca_core::role::Role;
use serde_json::json;

use super::AcmeService;
use crate::accounts::Caller;
use crate::api::*;
use crate::error::ServiceError;
use crate::ra::Page;
use crate::store::acme_rows::AcmeRows;
use crate::store::audit_log;
use crate::store::ids::new_ordered_id;
use crate::store::models::EabKeyRow;
use crate::store::request_rows::RequestRows;

/// Bytes of HMAC key.
const EAB_KEY_LEN: usize = 32;
/// Longest validity of an unused key.
const MAX_VALID_DAYS: u32 = 90;
/// Most name patterns per key.
const MAX_NAMES: usize = 50;

/// A name pattern of an EAB key: an exact DNS name, or `*.domain` for any name below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    /// This name only.
    Exact(String),
    /// Any name ending in `.domain` (at any depth), not `domain` itself.
    Below(String),
}

impl NamePattern {
    /// Reads a pattern as written (lower-cased; `*.` only as the first label).
    pub fn parse(text: &str) -> Result<NamePattern, ServiceError> {
        let lower = text.trim().to_ascii_lowercase();
        let (pattern, name) = match lower.strip_prefix("*.") {
            Some(rest) => (NamePattern::Below(rest.to_string()), rest.to_string()),
            None => (NamePattern::Exact(lower.clone()), lower.clone()),
        };
        if !ca_core::profile::valid_dns_name(&name) || !name.contains('.') {
            return Err(ServiceError::Invalid(format!(
                "{} is not a DNS name or *.domain pattern / DNS 名または *.ドメイン の形式ではありません",
                ca_core::text::escape_untrusted(text, 80)
            )));
        }
        Ok(pattern)
    }

    /// Whether `name` (lower case) falls under the pattern.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(n) => name == n,
            NamePattern::Below(d) => name.len() > d.len() + 1 && name.ends_with(&format!(".{d}")),
        }
    }

    /// The name the profile must allow for the pattern to make sense.
    fn example(&self) -> String {
        match self {
            NamePattern::Exact(n) => n.clone(),
            NamePattern::Below(d) => format!("a.{d}"),
        }
    }

    /// As written.
    pub fn text(&self) -> String {
        match self {
            NamePattern::Exact(n) => n.clone(),
            NamePattern::Below(d) => format!("*.{d}"),
        }
    }
}

/// The patterns of a stored key.
pub fn patterns_of(row: &EabKeyRow) -> Vec<NamePattern> {
    row.name_patterns
        .lines()
        .filter_map(|l| NamePattern::parse(l).ok())
        .collect()
}

fn state(row: &EabKeyRow, now: i64) -> &'static str {
    if row.revoked_at.is_some() {
        "revoked"
    } else if row.account_id.is_some() {
        "bound"
    } else if row.expires_at <= now {
        "expired"
    } else {
        "unused"
    }
}

fn view(row: EabKeyRow, created_by: String, now: i64) -> EabView {
    EabView {
        state: state(&row, now).into(),
        names: patterns_of(&row).iter().map(NamePattern::text).collect(),
        directory_path: format!("/acme/{}/directory", row.profile_id),
        id: row.id,
        hmac_key: None,
        profile: row.profile_id,
        label: row.label,
        created_by,
        created_at: rfc3339(row.created_at),
        expires_at: rfc3339(row.expires_at),
        account: row.account_id,
    }
}

fn acme_profile<'a>(service: &'a AcmeService, id: &str) -> Result<&'a Profile, ServiceError> {
    let profile = service
        .authority
        .profiles
        .get(id)
        .ok_or_else(|| ServiceError::NotFound(format!("profile {id}")))?;
    if !profile.enrollment().acme {
        return Err(ServiceError::Invalid(format!(
            "profile {} does not serve ACME ([enrollment] acme = true in its file) \
             / このプロファイルは ACME を提供していません",
            profile.id()
        )));
    }
    Ok(profile)
}

impl AcmeService {
    /// `POST /api/v1/acme/eab`: a security officer mints a key with a fresh TOTP code; the
    /// answer is the only place the HMAC key appears.
    pub fn create_eab(
        &self,
        caller: &Caller,
        request: EabRequest,
    ) -> Result<EabView, ServiceError> {
        let outcome = self.create_eab_inner(caller, request);
        self.authority
            .accounts
            .guarded(caller, "acme.eab.create", "acme", outcome)
    }

    fn create_eab_inner(
        &self,
        caller: &Caller,
        request: EabRequest,
    ) -> Result<EabView, ServiceError> {
        caller.require(&[Role::SecurityOfficer])?;
        let profile = acme_profile(self, &request.profile)?;
        let label = request.label.trim().to_string();
        if label.is_empty() || label.chars().count() > 200 || ca_core::text::has_unsafe(&label) {
            return Err(ServiceError::Invalid(
                "label must be 1-200 printable characters / ラベルは 1〜200 文字".into(),
            ));
        }
        if request.names.is_empty() || request.names.len() > MAX_NAMES {
            return Err(ServiceError::Invalid(format!(
                "give 1-{MAX_NAMES} names / 名前を 1〜{MAX_NAMES} 個指定してください"
            )));
        }
        let mut patterns = Vec::new();
        for name in &request.names {
            let pattern = NamePattern::parse(name)?;
            if !profile.dns_name_allowed(&pattern.example()) {
                return Err(ServiceError::Invalid(format!(
                    "{} is outside profile {}'s allowed domains / プロファイルの許可ドメイン外です",
                    pattern.text(),
                    profile.id()
                )));
            }
            if !patterns.contains(&pattern) {
                patterns.push(pattern);
            }
        }
        let days = request.valid_days.unwrap_or(7);
        if days == 0 || days > MAX_VALID_DAYS {
            return Err(ServiceError::Invalid(format!(
                "valid_days must be 1-{MAX_VALID_DAYS}"
            )));
        }
        let mut secret = zeroize::Zeroizing::new([0u8; EAB_KEY_LEN]);
        self.authority
            .random
            .fill(secret.as_mut())
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let hmac_key = zeroize::Zeroizing::new(ca_core::jws::b64url(secret.as_ref()));
        let now = self.authority.now().as_secs() as i64;
        let row = EabKeyRow {
            id: new_ordered_id("eab", self.authority.clock.now_ms())?,
            profile_id: profile.id().to_string(),
            name_patterns: patterns
                .iter()
                .map(NamePattern::text)
                .collect::<Vec<_>>()
                .join("\n"),
            key_sealed: self.key.seal_text(secret.as_ref())?,
            label,
            created_by: caller.user_id.clone(),
            created_at: now,
            expires_at: now + i64::from(days) * 86_400,
            revoked_at: None,
            account_id: None,
        };
        let mut conn = self.authority.conn()?;
        crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let user = conn.user_row(&caller.user_id)?;
            self.authority
                .accounts
                .step_up(conn, &user, &request.totp)?;
            conn.insert_eab(&row)?;
            audit_log::append(
                conn,
                now as u64,
                &caller.username,
                "acme.eab.create",
                &row.id,
                json!({"profile": row.profile_id, "names": row.name_patterns.lines().collect::<Vec<_>>(),
                       "label": row.label, "expires_at": rfc3339(row.expires_at)}),
            )?;
            Ok(())
        })?;
        let mut shown = view(row, caller.username.clone(), now);
        shown.hmac_key = Some(hmac_key.to_string());
        Ok(shown)
    }

    /// `GET /api/v1/acme/eab`: the newest keys (never the keys themselves), for security
    /// officers, admins and auditors.
    pub fn list_eabs(
        &self,
        caller: &Caller,
        profile: Option<&str>,
    ) -> Result<Page<EabView>, ServiceError> {
        caller.require(&[Role::SecurityOfficer, Role::Admin, Role::Auditor])?;
        let now = self.authority.now().as_secs() as i64;
        let items: Vec<EabView> = self
            .authority
            .conn()?
            .eabs(profile, 1000)?
            .into_iter()
            .map(|(row, name)| view(row, name, now))
            .collect();
        Ok(Page {
            total: items.len() as i64,
            items,
            next: None,
        })
    }

    /// `POST /api/v1/acme/eab/{id}/revoke`: ends a key and deactivates the account it bound
    /// (its certificates stay valid until revoked or expired), with a fresh TOTP code.
    pub fn revoke_eab(
        &self,
        caller: &Caller,
        id: &str,
        totp: &str,
    ) -> Result<EabView, ServiceError> {
        let outcome = self.revoke_eab_inner(caller, id, totp);
        self.authority
            .accounts
            .guarded(caller, "acme.eab.revoke", id, outcome)
    }

    fn revoke_eab_inner(
        &self,
        caller: &Caller,
        id: &str,
        totp: &str,
    ) -> Result<EabView, ServiceError> {
        caller.require(&[Role::SecurityOfficer])?;
        let now = self.authority.now().as_secs() as i64;
        let mut conn = self.authority.conn()?;
        let row = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let row = conn
                .eab(id)?
                .ok_or_else(|| ServiceError::NotFound(format!("EAB key {id}")))?;
            let user = conn.user_row(&caller.user_id)?;
            self.authority.accounts.step_up(conn, &user, totp)?;
            if !conn.revoke_eab(id, now)? {
                return Err(ServiceError::Conflict("the key is already revoked".into()));
            }
            let accounts = conn.deactivate_accounts_of_eab(id)?;
            audit_log::append(
                conn,
                now as u64,
                &caller.username,
                "acme.eab.revoke",
                id,
                json!({"account": row.account_id, "accounts_deactivated": accounts}),
            )?;
            Ok(row)
        })?;
        let mut row = row;
        row.revoked_at = Some(now);
        let creator = conn.user_row(&row.created_by)?.username;
        Ok(view(row, creator, now))
    }

    /// The HMAC key of an EAB key row.
    pub(crate) fn eab_secret(
        &self,
        row: &EabKeyRow,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, ServiceError> {
        self.key
            .open_text(&row.key_sealed)
            .ok_or_else(|| ServiceError::Internal(format!("EAB key {} is damaged", row.id)))?
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_names_and_names_below() {
        let below = NamePattern::parse("*.EHR.hospital.example").unwrap();
        assert!(below.matches("a.ehr.hospital.example"));
        assert!(below.matches("x.y.ehr.hospital.example"));
        assert!(!below.matches("ehr.hospital.example"));
        assert!(!below.matches("evilehr.hospital.example"));
        let exact = NamePattern::parse("pacs.hospital.example").unwrap();
        assert!(exact.matches("pacs.hospital.example"));
        assert!(!exact.matches("a.pacs.hospital.example"));
        for bad in ["*", "*.com.", "a.*.b", "", "localhost", "a b.example"] {
            assert!(NamePattern::parse(bad).is_err(), "{bad}");
        }
    }
}
