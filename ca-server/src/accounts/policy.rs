//! `policies/accounts.toml`: who approves changes to accounts (creation, role changes,
//! credential resets, re-enabling) and how long a change and an enrolment code stay open. Four
//! eyes cannot be switched off: at least one approval by someone other than the admin who asks.

use std::path::Path;

use anyhow::{bail, Context};
use ca_core::role::Role;
use serde::Deserialize;

/// The file's name inside the policies folder (the profile loader skips it).
pub const FILE_NAME: &str = "accounts.toml";

/// The account-change approval policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPolicy {
    /// Approvals needed from people other than the requester and the account concerned.
    pub approvals: u32,
    /// Roles whose holders may approve.
    pub approver_roles: Vec<Role>,
    /// How long a change waits for its approvals.
    pub max_wait_secs: u64,
    /// How long a new or reset account's enrolment code works.
    pub enrolment_validity_secs: u64,
}

impl Default for AccountPolicy {
    fn default() -> Self {
        AccountPolicy {
            approvals: 1,
            approver_roles: vec![Role::Admin, Role::SecurityOfficer],
            max_wait_secs: 72 * 3600,
            enrolment_validity_secs: 72 * 3600,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    approvals: u32,
    approver_roles: Vec<String>,
    #[serde(default)]
    max_wait: Option<String>,
    #[serde(default)]
    enrolment_validity: Option<String>,
}

impl AccountPolicy {
    /// Reads `<dir>/accounts.toml`, or the defaults (one approval by an admin or a security
    /// officer, 72 h) when the file is absent.
    pub fn load(dir: &Path) -> anyhow::Result<AccountPolicy> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return Ok(AccountPolicy::default());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{}", path.display()))
    }

    /// Parses and checks the policy text.
    pub fn parse(text: &str) -> anyhow::Result<AccountPolicy> {
        let file: File = toml::from_str(text)?;
        if !(1..=5).contains(&file.approvals) {
            bail!("approvals: 1 to 5 (four eyes cannot be switched off)");
        }
        let mut approver_roles = Vec::new();
        for name in &file.approver_roles {
            match Role::parse(name) {
                Some(role @ (Role::Admin | Role::SecurityOfficer)) => approver_roles.push(role),
                Some(_) => bail!("approver_roles: only admin and security-officer may approve account changes, not {name}"),
                None => bail!("approver_roles: unknown role {name}"),
            }
        }
        if approver_roles.is_empty() {
            bail!("approver_roles: name at least one of admin, security-officer");
        }
        let duration = |field: &str, value: &Option<String>, default: u64| -> anyhow::Result<u64> {
            let Some(text) = value else {
                return Ok(default);
            };
            let secs = ca_core::duration::parse_duration(text)
                .map_err(|e| anyhow::anyhow!("{field}: {e}"))?;
            if !(600..=30 * 86_400).contains(&secs) {
                bail!("{field}: between 10 minutes and 30 days");
            }
            Ok(secs)
        };
        let defaults = AccountPolicy::default();
        Ok(AccountPolicy {
            approvals: file.approvals,
            approver_roles,
            max_wait_secs: duration("max_wait", &file.max_wait, defaults.max_wait_secs)?,
            enrolment_validity_secs: duration(
                "enrolment_validity",
                &file.enrolment_validity,
                defaults.enrolment_validity_secs,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_policy_parses() {
        let text = include_str!("../../../policies/accounts.toml");
        let policy = AccountPolicy::parse(text).unwrap();
        assert_eq!(policy.approvals, 1);
        assert_eq!(
            policy.approver_roles,
            vec![Role::Admin, Role::SecurityOfficer]
        );
        assert_eq!(policy.max_wait_secs, 72 * 3600);
    }

    #[test]
    fn four_eyes_cannot_be_switched_off_or_given_to_requesters() {
        assert!(AccountPolicy::parse("approvals = 0\napprover_roles = [\"admin\"]").is_err());
        assert!(AccountPolicy::parse("approvals = 1\napprover_roles = []").is_err());
        assert!(AccountPolicy::parse("approvals = 1\napprover_roles = [\"vendor\"]").is_err());
        assert!(AccountPolicy::parse("approvals = 1\napprover_roles = [\"root\"]").is_err());
        assert!(AccountPolicy::parse(
            "approvals = 1\napprover_roles = [\"admin\"]\nmax_wait = \"1s\""
        )
        .is_err());
        assert!(
            AccountPolicy::parse("approvals = 1\napprover_roles = [\"admin\"]\nextra = 1").is_err()
        );
        let two = AccountPolicy::parse(
            "approvals = 2\napprover_roles = [\"security-officer\"]\nenrolment_validity = \"24h\"",
        )
        .unwrap();
        assert_eq!(two.approvals, 2);
        assert_eq!(two.enrolment_validity_secs, 86_400);
    }
}
