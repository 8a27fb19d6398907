//! The directory client: finds a directory account's holder in LDAP or Active Directory,
//! checks their password with a simple bind over StartTLS or LDAPS, and reads their groups.
//! Mamori never stores a directory password; the TOTP second factor stays Mamori's own.

use std::collections::BTreeSet;
use std::time::Duration;

use ca_core::role::Role;
use ldap3::{ldap_escape, LdapConn, LdapConnSettings, Scope, SearchEntry};
use zeroize::Zeroizing;

use crate::directory_config::{DirectoryConfig, DirectoryTls};
use crate::notify_config::read_secret_file;

/// LDAP's resultCode for a wrong password, a locked or a disabled account (RFC 4511).
const INVALID_CREDENTIALS: u32 = 49;

/// Why the directory gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The configuration cannot be used (a secret or CA file).
    #[error("directory configuration: {0}")]
    Config(String),
    /// The directory could not be reached or refused the search account.
    #[error("the directory did not answer: {0}")]
    Unreachable(String),
}

/// A person as the directory knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryPerson {
    /// Their entry's DN.
    pub dn: String,
    /// The DNs of their groups (`memberOf` and the group search), normalized.
    pub groups: BTreeSet<String>,
}

/// The directory's answer to a sign-in.
#[derive(Debug)]
pub enum PasswordCheck {
    /// The password is right and the person enabled.
    Accepted(DirectoryPerson),
    /// No enabled person of that name (absent, disabled, locked, or several entries match).
    NoSuchPerson,
    /// The person exists but the directory refused the password (or an empty one was given).
    WrongPassword,
}

/// A configured directory.
pub struct Directory {
    config: DirectoryConfig,
    bind_password: Option<Zeroizing<String>>,
    roots: Vec<native_tls::Certificate>,
}

impl Directory {
    /// Reads the search account's password and the extra roots.
    pub fn open(config: &DirectoryConfig) -> Result<Directory, DirectoryError> {
        let bind_password = match &config.bind_password_file {
            Some(path) => {
                Some(read_secret_file(path).map_err(|e| DirectoryError::Config(e.to_string()))?)
            }
            None => None,
        };
        let mut roots = Vec::new();
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| DirectoryError::Config(format!("{}: {e}", path.display())))?;
            roots.push(native_tls::Certificate::from_pem(&pem).map_err(|e| {
                DirectoryError::Config(format!("{}: not a PEM certificate: {e}", path.display()))
            })?);
        }
        Ok(Directory {
            config: config.clone(),
            bind_password,
            roots,
        })
    }

    /// Seconds between checks of the directory accounts with open sessions.
    pub fn sync_secs(&self) -> u64 {
        self.config.sync_secs
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs)
    }

    /// A connection, TLS up before anything is sent (unless `tls = "none"` on this host).
    fn connect(&self) -> Result<LdapConn, DirectoryError> {
        let unreachable = |e: ldap3::LdapError| DirectoryError::Unreachable(e.to_string());
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.timeout());
        let tls = self.config.effective_tls();
        if tls != DirectoryTls::None {
            let mut connector = native_tls::TlsConnector::builder();
            for root in &self.roots {
                connector.add_root_certificate(root.clone());
            }
            let connector = connector
                .build()
                .map_err(|e| DirectoryError::Config(format!("TLS: {e}")))?;
            settings = settings
                .set_connector(connector)
                .set_starttls(tls == DirectoryTls::Starttls);
        }
        LdapConn::with_settings(settings, &self.config.url).map_err(unreachable)
    }

    /// Binds as the search account (or stays anonymous without one).
    fn search_connection(&self) -> Result<LdapConn, DirectoryError> {
        let mut ldap = self.connect()?;
        if let (Some(dn), Some(password)) = (&self.config.bind_dn, &self.bind_password) {
            ldap.with_timeout(self.timeout())
                .simple_bind(dn, password)
                .and_then(|r| r.success())
                .map_err(|e| {
                    DirectoryError::Unreachable(format!("the search account's bind: {e}"))
                })?;
        }
        Ok(ldap)
    }

    /// The enabled person named `username`, with their groups; `None` when the user filter
    /// finds no entry or more than one.
    pub fn find(&self, username: &str) -> Result<Option<DirectoryPerson>, DirectoryError> {
        let mut ldap = self.search_connection()?;
        let found = self.find_on(&mut ldap, username);
        let _ = ldap.unbind();
        found
    }

    fn find_on(
        &self,
        ldap: &mut LdapConn,
        username: &str,
    ) -> Result<Option<DirectoryPerson>, DirectoryError> {
        let failed = |e: ldap3::LdapError| DirectoryError::Unreachable(format!("search: {e}"));
        let filter = self
            .config
            .user_filter
            .replace("{username}", &ldap_escape(username));
        let (entries, _) = ldap
            .with_timeout(self.timeout())
            .search(
                &self.config.user_base,
                Scope::Subtree,
                &filter,
                vec!["memberOf"],
            )
            .and_then(|r| r.success())
            .map_err(failed)?;
        let mut entries = entries.into_iter();
        let (Some(entry), None) = (entries.next(), entries.next()) else {
            return Ok(None);
        };
        let entry = SearchEntry::construct(entry);
        let mut groups: BTreeSet<String> = entry
            .attrs
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("memberOf"))
            .flat_map(|(_, values)| values.iter().map(|v| normalize_dn(v)))
            .collect();
        if let Some(base) = &self.config.group_base {
            let filter = self
                .config
                .group_filter
                .replace("{dn}", &ldap_escape(&entry.dn));
            let (found, _) = ldap
                .with_timeout(self.timeout())
                .search(base, Scope::Subtree, &filter, vec!["1.1"])
                .and_then(|r| r.success())
                .map_err(failed)?;
            groups.extend(
                found
                    .into_iter()
                    .map(|g| normalize_dn(&SearchEntry::construct(g).dn)),
            );
        }
        Ok(Some(DirectoryPerson {
            dn: entry.dn,
            groups,
        }))
    }

    /// Checks `password` for `username`: finds the enabled person, then binds as them on a
    /// connection of their own. An empty password is refused before any bind: LDAP treats a
    /// simple bind with a DN and no password as an anonymous bind that succeeds (RFC 4513
    /// §5.1.2).
    pub fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<PasswordCheck, DirectoryError> {
        let Some(person) = self.find(username)? else {
            return Ok(PasswordCheck::NoSuchPerson);
        };
        if password.is_empty() {
            return Ok(PasswordCheck::WrongPassword);
        }
        let mut ldap = self.connect()?;
        let bound = ldap
            .with_timeout(self.timeout())
            .simple_bind(&person.dn, password)
            .map_err(|e| DirectoryError::Unreachable(format!("bind: {e}")))?;
        let _ = ldap.unbind();
        match bound.rc {
            0 => Ok(PasswordCheck::Accepted(person)),
            INVALID_CREDENTIALS => Ok(PasswordCheck::WrongPassword),
            rc => Err(DirectoryError::Unreachable(format!(
                "bind answered {rc}: {}",
                bound.text
            ))),
        }
    }

    /// The roles `person`'s groups allow; `None` when no role is mapped (the directory then
    /// checks passwords and presence only).
    pub fn allowed_roles(&self, person: &DirectoryPerson) -> Option<Vec<Role>> {
        if self.config.roles.is_empty() {
            return None;
        }
        Some(
            self.config
                .roles
                .iter()
                .filter(|(_, groups)| {
                    groups
                        .iter()
                        .any(|g| person.groups.contains(&normalize_dn(g)))
                })
                .filter_map(|(role, _)| Role::parse(role))
                .collect(),
        )
    }
}

/// A DN compared as directories compare them for our purposes: case-insensitively and without
/// the spaces people put after commas and around `=`.
pub fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            rdn.split('=')
                .map(|part| part.trim())
                .collect::<Vec<_>>()
                .join("=")
        })
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

/// The roles a session holds: the granted ones, limited to those the directory allowed when
/// it has a say (`directory_roles` is `Some`).
pub fn effective_roles(granted: &[Role], directory_roles: Option<&[Role]>) -> Vec<Role> {
    match directory_roles {
        None => granted.to_vec(),
        Some(allowed) => granted
            .iter()
            .filter(|r| allowed.contains(r))
            .copied()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_compare_without_case_or_spaces() {
        assert_eq!(
            normalize_dn("CN=PKI Officers, OU=Groups, DC=Example,DC=org"),
            "cn=pki officers,ou=groups,dc=example,dc=org"
        );
        assert_eq!(normalize_dn("cn = a ,dc= b"), "cn=a,dc=b");
    }

    #[test]
    fn the_directory_narrows_granted_roles_and_never_adds_one() {
        let granted = [Role::SecurityOfficer, Role::StaffRequester];
        assert_eq!(effective_roles(&granted, None), granted.to_vec());
        assert_eq!(
            effective_roles(&granted, Some(&[Role::StaffRequester, Role::Admin])),
            vec![Role::StaffRequester]
        );
        assert!(effective_roles(&granted, Some(&[])).is_empty());
    }

    #[test]
    fn mapped_groups_allow_their_roles() {
        let config: DirectoryConfig = toml::from_str(
            "url = \"ldaps://dc1\"\nuser_base = \"dc=x\"\n[roles]\n\
             security-officer = [\"cn=PKI-Officers,dc=x\"]\nstaff-requester = [\"cn=staff,dc=x\"]\n",
        )
        .unwrap();
        let directory = Directory {
            config,
            bind_password: None,
            roots: Vec::new(),
        };
        let person = DirectoryPerson {
            dn: "uid=a,dc=x".into(),
            groups: [normalize_dn("cn=pki-officers, dc=x")]
                .into_iter()
                .collect(),
        };
        assert_eq!(
            directory.allowed_roles(&person),
            Some(vec![Role::SecurityOfficer])
        );
    }
}
