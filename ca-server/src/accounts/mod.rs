//! The accounts service: users, passwords, TOTP, sessions and their cache, step-up, account
//! administration under four eyes and self-enrolment. It owns the data key that seals TOTP
//! secrets; the RA asks it who a caller is and whether a step-up code is right, and nothing
//! here reaches a CA key.

pub mod changes;
pub mod credentials;
pub mod directory;
mod directory_signin;
pub mod enrolment;
pub mod local;
pub mod password;
pub mod policy;
pub mod rate_limit;
pub mod session_cache;
mod sessions;
pub mod step_up;
mod users;

use std::sync::Arc;

use ca_core::clock::Clock;
use ca_core::random::RandomSource;
use ca_core::role::Role;
use ca_core::time::UnixTime;

use crate::config::Config;
use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::secrets::DataKey;
use crate::store::checkout::{checkout, Held};
use crate::store::group_commit::GroupCommit;
use crate::store::DbPool;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// User id.
    pub user_id: String,
    /// User name.
    pub username: String,
    /// Roles.
    pub roles: Vec<Role>,
    /// The session's token hash (wrong step-up codes are counted per session too).
    pub session: String,
    /// The password was set by an admin and must be changed before anything else.
    pub must_change_password: bool,
}

impl Caller {
    /// Whether the caller holds any of `roles`.
    pub fn has_any(&self, roles: &[Role]) -> bool {
        self.roles.iter().any(|r| roles.contains(r))
    }

    /// Refuses a caller without any of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ServiceError> {
        if self.has_any(roles) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ServiceError::Forbidden(format!(
                "requires one of the roles: {}",
                names.join(", ")
            )))
        }
    }

    /// Officers, admins and auditors see every request and certificate.
    pub fn sees_everything(&self) -> bool {
        self.has_any(&[Role::Admin, Role::SecurityOfficer, Role::Auditor])
    }
}

/// The accounts service's state.
pub struct Accounts {
    pool: DbPool,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// Where TOTP secrets come from.
    random: Arc<dyn RandomSource>,
    /// Seals TOTP secrets at rest.
    data_key: DataKey,
    /// Sessions confirmed in the database within the last second.
    sessions: session_cache::SessionCache,
    /// Login attempts per client address.
    pub login_limiter: rate_limit::LoginLimiter,
    /// Who approves account changes (`policies/accounts.toml`).
    account_policy: policy::AccountPolicy,
    /// Session activity is written through the group-commit writer.
    writer: Arc<GroupCommit>,
    /// The LDAP / Active Directory server that checks directory accounts' passwords.
    directory: Option<Arc<directory::Directory>>,
}

/// What [`Accounts::new`] needs.
pub struct AccountsParts {
    /// Database pool.
    pub pool: DbPool,
    /// Configuration.
    pub config: Arc<Config>,
    /// Shared counters.
    pub metrics: Arc<Metrics>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The random source.
    pub random: Arc<dyn RandomSource>,
    /// Seals TOTP secrets.
    pub data_key: DataKey,
    /// The account-change policy.
    pub account_policy: policy::AccountPolicy,
    /// The group-commit writer.
    pub writer: Arc<GroupCommit>,
    /// The directory of `[directory]`, opened.
    pub directory: Option<Arc<directory::Directory>>,
}

impl Accounts {
    /// The service.
    pub fn new(parts: AccountsParts) -> Accounts {
        Accounts {
            login_limiter: rate_limit::LoginLimiter::new(parts.config.login_attempts_per_minute),
            pool: parts.pool,
            config: parts.config,
            metrics: parts.metrics,
            clock: parts.clock,
            random: parts.random,
            data_key: parts.data_key,
            sessions: session_cache::SessionCache::default(),
            account_policy: parts.account_policy,
            writer: parts.writer,
            directory: parts.directory,
        }
    }

    fn conn(&self) -> Result<Held, ServiceError> {
        Ok(checkout(&self.pool)?)
    }

    /// The current time on the injected clock.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// Counts one sign-in or enrolment attempt from `ip` (the API's and the console's alike);
    /// refuses with the seconds to wait when there were too many this minute.
    pub fn count_attempt(&self, ip: std::net::IpAddr) -> Result<(), ServiceError> {
        self.login_limiter
            .attempt(ip, self.now().as_secs())
            .map_err(ServiceError::TooManyAttempts)
    }

    /// Forgets every cached session (after a change that ends or narrows sessions).
    pub fn invalidate_sessions(&self) {
        self.sessions.invalidate();
    }
}

/// Roles parsed from the stored comma list.
pub fn parse_roles(text: &str) -> Vec<Role> {
    text.split(',')
        .filter_map(|r| Role::parse(r.trim()))
        .collect()
}

/// Roles as stored: a comma list.
pub fn roles_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Roles named in an API request; an unknown name is refused.
pub fn parse_role_list(names: &[String]) -> Result<Vec<Role>, ServiceError> {
    let mut roles = Vec::new();
    for name in names {
        let role = Role::parse(name)
            .ok_or_else(|| ServiceError::Invalid(format!("unknown role {name:?}")))?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(roles)
}

/// The organization and e-mail domain to register on a new account, checked: an organization
/// of 1-64 characters without control, bidi or zero-width characters; a lower-case DNS domain.
pub fn registered_fields(
    (organization, email_domain): (Option<String>, Option<String>),
) -> Result<(Option<String>, Option<String>), ServiceError> {
    let organization = organization
        .map(|o| o.trim().to_string())
        .filter(|o| !o.is_empty());
    if let Some(o) = &organization {
        if o.chars().count() > 64 || ca_core::text::has_unsafe(o) {
            return Err(ServiceError::Invalid(
                "organization must be 1-64 characters without control characters".into(),
            ));
        }
    }
    let email_domain = email_domain
        .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|d| !d.is_empty());
    if let Some(d) = &email_domain {
        if !d.contains('.') || !ca_core::profile::valid_dns_name(d) {
            return Err(ServiceError::Invalid(format!(
                "email_domain {d:?} is not a DNS domain"
            )));
        }
    }
    Ok((organization, email_domain))
}
