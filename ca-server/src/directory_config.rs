//! The `[directory]` configuration table: the LDAP or Active Directory server that checks the
//! passwords of directory accounts, how to find a person and their groups there, and which
//! groups allow which roles (read by `config`, used by `accounts::directory`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// `[directory]`: absent, every account signs in with its Mamori password.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// `ldap://host[:port]` (with StartTLS unless `tls = "none"`) or `ldaps://host[:port]`.
    pub url: String,
    /// How the connection is protected: `starttls` (default for `ldap://`), `ldaps` (implied
    /// by `ldaps://`), or `none` (only for a directory on this host: passwords cross in clear).
    #[serde(default)]
    pub tls: Option<DirectoryTls>,
    /// Extra trusted roots in PEM (the directory's own CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The account Mamori searches with; without it, searches are anonymous.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// That account's password, in a file of mode 0600.
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Where people are searched (subtree).
    pub user_base: String,
    /// Finds one enabled person; `{username}` is replaced by the escaped user name.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// Where groups are searched (subtree); without it only the person's `memberOf` counts.
    #[serde(default)]
    pub group_base: Option<String>,
    /// Finds the person's groups; `{dn}` is replaced by their escaped DN.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// Seconds to wait for the directory per operation.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Seconds between checks that directory accounts with open sessions are still enabled
    /// and still in their groups.
    #[serde(default = "default_sync_secs")]
    pub sync_secs: u64,
    /// Role → the group DNs that allow it. With any entry, a directory account holds only the
    /// roles Mamori granted it (under four eyes) that one of its groups also allows.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
}

fn default_user_filter() -> String {
    "(&(objectClass=inetOrgPerson)(uid={username})(!(pwdAccountLockedTime=*)))".into()
}

fn default_group_filter() -> String {
    "(&(objectClass=groupOfNames)(member={dn}))".into()
}

fn default_timeout_secs() -> u64 {
    5
}

fn default_sync_secs() -> u64 {
    300
}

/// How the LDAP connection is protected.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryTls {
    /// `ldap://` upgraded with StartTLS before anything is sent.
    Starttls,
    /// TLS from the first byte (`ldaps://`, port 636).
    Ldaps,
    /// No TLS: only for a directory on this host.
    None,
}

impl DirectoryConfig {
    /// The protection in force: as configured, else by the URL's scheme.
    pub fn effective_tls(&self) -> DirectoryTls {
        match self.tls {
            Some(tls) => tls,
            None if self.url.starts_with("ldaps://") => DirectoryTls::Ldaps,
            None => DirectoryTls::Starttls,
        }
    }

    /// `[directory]` from `MAMORI_DIRECTORY_*` (url, tls, ca_file, bind_dn, bind_password_file,
    /// user_base, user_filter, group_base, group_filter, timeout_secs, sync_secs) over what the
    /// file said; role mappings come only from the file.
    pub fn apply_env(
        current: Option<DirectoryConfig>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<DirectoryConfig>, (String, String)> {
        let get = |key: &str| env(&format!("directory_{key}")).filter(|v| !v.is_empty());
        let mut config = match (current, get("url")) {
            (Some(mut c), url) => {
                if let Some(url) = url {
                    c.url = url;
                }
                c
            }
            (None, Some(url)) => DirectoryConfig {
                url,
                tls: None,
                ca_file: None,
                bind_dn: None,
                bind_password_file: None,
                user_base: String::new(),
                user_filter: default_user_filter(),
                group_base: None,
                group_filter: default_group_filter(),
                timeout_secs: default_timeout_secs(),
                sync_secs: default_sync_secs(),
                roles: BTreeMap::new(),
            },
            (None, None) => return Ok(None),
        };
        if let Some(v) = get("tls") {
            config.tls = Some(match v.as_str() {
                "starttls" => DirectoryTls::Starttls,
                "ldaps" => DirectoryTls::Ldaps,
                "none" => DirectoryTls::None,
                _ => return Err(("directory_tls".into(), "starttls, ldaps or none".into())),
            });
        }
        let number = |key: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| (format!("directory_{key}"), "not a number".to_string()))
        };
        if let Some(v) = get("timeout_secs") {
            config.timeout_secs = number("timeout_secs", v)?;
        }
        if let Some(v) = get("sync_secs") {
            config.sync_secs = number("sync_secs", v)?;
        }
        config.ca_file = get("ca_file").map(PathBuf::from).or(config.ca_file);
        config.bind_dn = get("bind_dn").or(config.bind_dn);
        config.bind_password_file = get("bind_password_file")
            .map(PathBuf::from)
            .or(config.bind_password_file);
        config.user_base = get("user_base").unwrap_or(config.user_base);
        config.user_filter = get("user_filter").unwrap_or(config.user_filter);
        config.group_base = get("group_base").or(config.group_base);
        config.group_filter = get("group_filter").unwrap_or(config.group_filter);
        Ok(Some(config))
    }

    /// Checks the URL against the protection, that filters carry their placeholder, that the
    /// search account has its password, and that every mapped role exists.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let invalid = |key: &str, reason: &str| (format!("directory.{key}"), reason.to_string());
        let (scheme, rest) = self
            .url
            .split_once("://")
            .ok_or_else(|| invalid("url", "must be ldap://host[:port] or ldaps://host[:port]"))?;
        let host = rest
            .trim_end_matches('/')
            .rsplit_once(':')
            .map_or(rest.trim_end_matches('/'), |(h, _)| h);
        match (scheme, self.effective_tls()) {
            ("ldap", DirectoryTls::Starttls) | ("ldaps", DirectoryTls::Ldaps) => {}
            ("ldap", DirectoryTls::None) => {
                if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
                    return Err(invalid(
                        "tls",
                        "\"none\" only for a directory on this host: passwords would cross the \
                         network in clear; use starttls or ldaps",
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    "url",
                    "ldap:// goes with starttls or none, ldaps:// with ldaps",
                ))
            }
        }
        if self.user_base.trim().is_empty() {
            return Err(invalid(
                "user_base",
                "say where people are (MAMORI_DIRECTORY_USER_BASE)",
            ));
        }
        if !self.user_filter.contains("{username}") {
            return Err(invalid("user_filter", "must contain {username}"));
        }
        if self.group_base.is_some() && !self.group_filter.contains("{dn}") {
            return Err(invalid("group_filter", "must contain {dn}"));
        }
        if self.bind_dn.is_some() != self.bind_password_file.is_some() {
            return Err(invalid(
                "bind_password_file",
                "give bind_dn and bind_password_file together",
            ));
        }
        if !(1..=120).contains(&self.timeout_secs) {
            return Err(invalid("timeout_secs", "must be 1-120"));
        }
        if !(1..=86_400).contains(&self.sync_secs) {
            return Err(invalid("sync_secs", "must be 1-86400"));
        }
        for (role, groups) in &self.roles {
            if ca_core::role::Role::parse(role).is_none() {
                return Err(invalid("roles", &format!("unknown role {role:?}")));
            }
            if groups.iter().any(|g| !g.contains('=')) {
                return Err(invalid("roles", "name groups by their DN (cn=...,dc=...)"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> DirectoryConfig {
        #[derive(Deserialize)]
        struct File {
            directory: DirectoryConfig,
        }
        toml::from_str::<File>(text).unwrap().directory
    }

    #[test]
    fn clear_text_binds_are_refused_beyond_this_host() {
        let base = "user_base = \"ou=people,dc=example,dc=org\"\n";
        let c = parsed(&format!(
            "[directory]\nurl = \"ldap://dc1.example.org\"\n{base}"
        ));
        assert_eq!(c.effective_tls(), DirectoryTls::Starttls);
        c.validate().unwrap();
        let c = parsed(&format!(
            "[directory]\nurl = \"ldap://dc1.example.org\"\ntls = \"none\"\n{base}"
        ));
        assert!(c.validate().unwrap_err().1.contains("clear"));
        let c = parsed(&format!(
            "[directory]\nurl = \"ldap://127.0.0.1:3899\"\ntls = \"none\"\n{base}"
        ));
        c.validate().unwrap();
        let c = parsed(&format!(
            "[directory]\nurl = \"ldaps://dc1.example.org\"\ntls = \"starttls\"\n{base}"
        ));
        assert!(c.validate().is_err());
    }

    #[test]
    fn mappings_name_known_roles_and_filters_their_placeholders() {
        let c = parsed(
            "[directory]\nurl = \"ldaps://dc1\"\nuser_base = \"dc=x\"\n\
             [directory.roles]\nsecurity-officer = [\"cn=pki,dc=x\"]\n",
        );
        c.validate().unwrap();
        let c = parsed(
            "[directory]\nurl = \"ldaps://dc1\"\nuser_base = \"dc=x\"\n\
             [directory.roles]\nwizard = [\"cn=pki,dc=x\"]\n",
        );
        assert!(c.validate().unwrap_err().1.contains("wizard"));
        let c = parsed(
            "[directory]\nurl = \"ldaps://dc1\"\nuser_base = \"dc=x\"\nuser_filter = \"(uid=x)\"\n",
        );
        assert!(c.validate().is_err());
        let c = parsed(
            "[directory]\nurl = \"ldaps://dc1\"\nuser_base = \"dc=x\"\nbind_dn = \"cn=m,dc=x\"\n",
        );
        assert!(c.validate().is_err());
    }

    #[test]
    fn the_environment_names_a_directory_and_overrides_the_file() {
        let env = |key: &str| match key {
            "directory_url" => Some("ldap://127.0.0.1:389".to_string()),
            "directory_tls" => Some("none".to_string()),
            "directory_user_base" => Some("ou=people,dc=x".to_string()),
            "directory_sync_secs" => Some("2".to_string()),
            _ => None,
        };
        let c = DirectoryConfig::apply_env(None, env).unwrap().unwrap();
        assert_eq!(c.sync_secs, 2);
        assert_eq!(c.effective_tls(), DirectoryTls::None);
        c.validate().unwrap();
        assert!(DirectoryConfig::apply_env(None, |_| None)
            .unwrap()
            .is_none());
    }
}
