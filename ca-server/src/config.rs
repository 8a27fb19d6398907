//! Configuration: one TOML file, every key overridable by `MAMORI_<KEY>` in the environment.
//!
//! `MAMORI_DATA_DIR`, `MAMORI_DATABASE_URL`, `MAMORI_HTTP_ADDR` (public listener: CRL, OCSP, CA
//! certificates, health, metrics), `MAMORI_API_ADDR` (HTTPS API), `MAMORI_PUBLIC_URL` (base of
//! the CRL/OCSP/caIssuers URLs put into certificates), and so on for every key below.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not parse or has unknown keys.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// An environment variable or key has a bad value.
    #[error("config key {key}: {reason}")]
    Invalid {
        /// The key (or `MAMORI_<KEY>`).
        key: String,
        /// Why.
        reason: String,
    },
}

/// The CA hierarchy `ca-server init` creates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HierarchyConfig {
    /// Organization name in CA subjects.
    pub organization: String,
    /// Two-letter country code.
    pub country: String,
    /// Root CA common name.
    pub root_name: String,
    /// Issuing CA common name.
    pub issuing_name: String,
    /// Permitted DNS name constraints on the issuing CA (empty: none).
    pub permitted_dns: Vec<String>,
    /// Key algorithm: `ecdsa-p256` or `ecdsa-p384`.
    pub key_algorithm: ca_core::key::KeyAlgorithm,
}

impl Default for HierarchyConfig {
    fn default() -> Self {
        HierarchyConfig {
            organization: "Mamori Hospital Group".into(),
            country: "JP".into(),
            root_name: "Mamori Root CA".into(),
            issuing_name: "Mamori Issuing CA 1".into(),
            permitted_dns: Vec::new(),
            key_algorithm: ca_core::key::KeyAlgorithm::EcdsaP256,
        }
    }
}

/// The service's configuration after defaults and environment overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Folder for the SQLite database, dev credentials and backups.
    pub data_dir: PathBuf,
    /// `sqlite://<path>` or `postgres://...`; default `sqlite://<data_dir>/mamori.db`.
    pub database_url: Option<String>,
    /// Public plain-HTTP listener (CRL, OCSP, CA certificates, health, metrics).
    pub http_addr: String,
    /// HTTPS API listener.
    pub api_addr: String,
    /// Base URL relying parties reach the public listener at; goes into certificates.
    pub public_url: String,
    /// Folder of certificate profiles.
    pub policies_dir: PathBuf,
    /// DNS names and IP addresses in the API listener's certificate.
    pub api_tls_names: Vec<String>,
    /// The group's own domains: request views flag e-mail addresses and DNS names outside them
    /// (empty: `[hierarchy] permitted_dns`).
    pub group_domains: Vec<String>,
    /// PEM certificate chain for the API listener (instead of one from Mamori's own CA).
    pub api_tls_cert: Option<PathBuf>,
    /// PEM private key for `api_tls_cert`.
    pub api_tls_key: Option<PathBuf>,
    /// Require API clients to present a certificate from Mamori's root.
    pub api_require_client_cert: bool,
    /// HTTPS listener for devices (EST, `/api/v1/renew`, SCEP), which asks for a TLS client
    /// certificate without requiring one; off unless set, e.g. `0.0.0.0:8444`. A listener of
    /// its own so that browsers on the API listener are never asked for a certificate.
    pub enroll_addr: Option<String>,
    /// Plain-HTTP listener for SCEP only (its messages are signed and encrypted; many SCEP
    /// clients speak only HTTP); off unless set, e.g. `0.0.0.0:8081`.
    pub scep_http_addr: Option<String>,
    /// Open SCEP requests encrypted with single DES (off: they get a signed badAlg failure).
    /// Only for old clients that ignore GetCACaps' AES, such as Debian's micromdm
    /// `scepclient` 2.1; loads OpenSSL's legacy provider.
    pub scep_allow_single_des: bool,
    /// Port ACME http-01 validation connects to (RFC 8555 §8.3 says 80; a test's responder
    /// listens elsewhere).
    pub acme_http01_port: u16,
    /// Port ACME tls-alpn-01 validation connects to (RFC 8737 says 443).
    pub acme_tls_alpn01_port: u16,
    /// Where ACME validation connects for names under a domain, instead of asking DNS:
    /// `domain=address` pairs separated by commas, e.g. `hospital.example=10.0.0.5` for a
    /// split-horizon network (or `localhost`-style tests: `hospital.example=127.0.0.1`).
    pub acme_resolve: String,
    /// Seconds an ACME validation connection may take (connect, TLS, answer) in all.
    pub acme_validation_timeout_secs: u64,
    /// Seconds a session may sit idle.
    pub session_idle_secs: u64,
    /// Seconds a session lives at most.
    pub session_absolute_secs: u64,
    /// Failed logins before the account locks.
    pub lockout_threshold: u32,
    /// Seconds an account stays locked.
    pub lockout_secs: u64,
    /// Wrong step-up codes (approve, reject, revoke, hold, release) an account may send in a
    /// row; then its step-up is locked until another security officer or an admin lifts it.
    pub step_up_max_failures: u32,
    /// Wrong step-up codes one session may send; then the session is ended (the next login
    /// needs password and TOTP again, under the login lockout).
    pub step_up_session_failures: u32,
    /// How far ahead (days) a maintenance window may start.
    pub max_window_start_days: u64,
    /// Seconds between signed audit checkpoints while the chain grows (also on demand).
    pub audit_checkpoint_secs: u64,
    /// Seconds after an account is created or its TOTP reset during which it cannot approve
    /// (0: none), so that an account an admin just made cannot supply a second approval.
    pub approval_cooling_off_secs: u64,
    /// Login attempts allowed per client address per minute (0: no limit). Behind a reverse
    /// proxy every client shares the proxy's address: raise it there, or limit at the proxy.
    pub login_attempts_per_minute: u32,
    /// Seconds between an issuing CA's CRL's thisUpdate and nextUpdate.
    pub crl_validity_secs: u64,
    /// Seconds between the root's CRL's thisUpdate and nextUpdate. The root revokes rarely (an
    /// issuing CA, its own OCSP responder) and, once offline, signs at ceremonies only: relying
    /// parties keep its CRL this long. Republished at half of it and on every revocation.
    pub root_crl_validity_secs: u64,
    /// Publish delta CRLs (RFC 5280 §5.2.4) at `/crl/<ca>-delta.crl` as well. Every revocation
    /// republishes the complete CRL too (so a client that ignores deltas never trusts a revoked
    /// certificate past the next fetch), and each delta lists every change since the complete CRL
    /// of the last scheduled rebuild, so a client holding that one fetches only the delta.
    pub delta_crls: bool,
    /// Seconds between a delta CRL's thisUpdate and nextUpdate.
    pub delta_crl_validity_secs: u64,
    /// Split each issuing CA's CRL into this many shards (0 or 1: one CRL). Certificates issued
    /// afterwards name their shard `/crl/<ca>-p<k>.crl` in their CRL distribution point; those
    /// issued before keep `/crl/<ca>.crl`. Raising or lowering it never moves a certificate.
    pub crl_partitions: u32,
    /// Seconds between an OCSP response's thisUpdate and nextUpdate.
    pub ocsp_validity_secs: u64,
    /// Largest API request body, in bytes.
    pub max_body_bytes: usize,
    /// Threads each API worker runs database and signing work on; more requests wait their
    /// turn. Fewer threads, each kept busy, beat one thread per request parked on the database
    /// writer (+6 % issuance at 16 connections on two cores, `bench/RESULTS.md`).
    pub api_blocking_threads: usize,
    /// Seconds between upkeep runs (CRL and OCSP refresh, responder renewal, request expiry).
    pub maintenance_interval_secs: u64,
    /// Certificates of each CA one upkeep checks for a missing OCSP response (and the most it
    /// signs for them); the next upkeep resumes after the last one checked.
    pub ocsp_sweep_chunk: u32,
    /// Below this many free bytes on the data disk, `/healthz` reports unhealthy.
    pub min_free_disk_bytes: u64,
    /// OCSP requests with a nonce: `ignore` (default: answer from the pre-signed cache) or
    /// `echo` (sign a fresh response echoing the nonce).
    pub ocsp_nonce: NonceMode,
    /// The CA hierarchy.
    pub hierarchy: HierarchyConfig,
    /// A PKCS#11 token for the issuing CA's key (`[pkcs11]`: module, token_label, pin_file);
    /// without it the key is a PKCS#8 file encrypted under the CA passphrase.
    pub pkcs11: Option<crate::token_config::TokenConfig>,
    /// Notices by e-mail and webhook (`[notify]`): expiries, waiting approvals, revocations.
    pub notify: crate::notify_config::NotifyConfig,
    /// The LDAP or Active Directory server that checks directory accounts' passwords
    /// (`[directory]`).
    pub directory: Option<crate::directory_config::DirectoryConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("mamori-data"),
            database_url: None,
            http_addr: "127.0.0.1:8080".into(),
            api_addr: "127.0.0.1:8443".into(),
            public_url: "http://127.0.0.1:8080".into(),
            policies_dir: PathBuf::from("policies"),
            api_tls_names: vec!["localhost".into(), "127.0.0.1".into()],
            group_domains: Vec::new(),
            api_tls_cert: None,
            api_tls_key: None,
            api_require_client_cert: false,
            enroll_addr: None,
            scep_http_addr: None,
            scep_allow_single_des: false,
            acme_http01_port: 80,
            acme_tls_alpn01_port: 443,
            acme_resolve: String::new(),
            acme_validation_timeout_secs: 10,
            session_idle_secs: 30 * 60,
            session_absolute_secs: 12 * 3600,
            lockout_threshold: 5,
            step_up_max_failures: 5,
            step_up_session_failures: 3,
            max_window_start_days: 30,
            audit_checkpoint_secs: 300,
            approval_cooling_off_secs: 86_400,
            lockout_secs: 15 * 60,
            login_attempts_per_minute: 20,
            crl_validity_secs: 24 * 3600,
            root_crl_validity_secs: 30 * 24 * 3600,
            ocsp_validity_secs: 3600,
            delta_crls: false,
            delta_crl_validity_secs: 3600,
            crl_partitions: 0,
            max_body_bytes: 256 * 1024,
            api_blocking_threads: 8,
            maintenance_interval_secs: 60,
            ocsp_sweep_chunk: 20_000,
            min_free_disk_bytes: 64 * 1024 * 1024,
            ocsp_nonce: NonceMode::Ignore,
            hierarchy: HierarchyConfig::default(),
            pkcs11: None,
            directory: None,
            notify: crate::notify_config::NotifyConfig {
                retry_secs: 60,
                max_attempts: 8,
                scan_secs: 60,
                ..Default::default()
            },
        }
    }
}

fn env(key: &str) -> Option<String> {
    std::env::var(format!("MAMORI_{}", key.to_ascii_uppercase())).ok()
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Invalid {
        key: format!("MAMORI_{}", key.to_ascii_uppercase()),
        reason: format!("{value:?} is not valid"),
    })
}

/// One `acme_resolve` entry: names equal to or under `domain` are validated at `address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOverride {
    /// The domain (lower case).
    pub domain: String,
    /// Where validation connects.
    pub address: std::net::IpAddr,
}

impl Config {
    /// `acme_resolve` read as pairs (checked when the configuration loads).
    pub fn acme_resolve_overrides(&self) -> Result<Vec<ResolveOverride>, ConfigError> {
        let mut out = Vec::new();
        for entry in self
            .acme_resolve
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let invalid = |reason: &str| ConfigError::Invalid {
                key: "acme_resolve".into(),
                reason: format!("{entry}: {reason}"),
            };
            let (domain, address) = entry
                .split_once('=')
                .ok_or_else(|| invalid("write domain=address"))?;
            let domain = domain.trim().to_ascii_lowercase();
            if !ca_core::profile::valid_dns_name(&domain) {
                return Err(invalid("not a domain name"));
            }
            let address = address
                .trim()
                .parse()
                .map_err(|_| invalid("not an IP address"))?;
            out.push(ResolveOverride { domain, address });
        }
        Ok(out)
    }

    /// Reads `path` (if given), applies `MAMORI_*` environment overrides, and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.display().to_string(),
                    message: e.to_string().trim().replace('\n', " "),
                })?
            }
        };
        config.apply_env()?;
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self) -> Result<(), ConfigError> {
        if let Some(module) = env("pkcs11_module").filter(|v| !v.is_empty()) {
            self.pkcs11 = Some(crate::token_config::TokenConfig {
                module: PathBuf::from(module),
                token_label: env("pkcs11_token_label").unwrap_or_default(),
                slot: match env("pkcs11_slot").filter(|v| !v.is_empty()) {
                    Some(v) => Some(parse("pkcs11_slot", &v)?),
                    None => None,
                },
                pin_file: env("pkcs11_pin_file").map(PathBuf::from),
            });
        }
        self.apply_table_env()?;
        if let Some(v) = env("data_dir") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("database_url") {
            self.database_url = Some(v);
        }
        if let Some(v) = env("http_addr") {
            self.http_addr = v;
        }
        if let Some(v) = env("api_addr") {
            self.api_addr = v;
        }
        if let Some(v) = env("enroll_addr") {
            self.enroll_addr = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = env("scep_http_addr") {
            self.scep_http_addr = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = env("public_url") {
            self.public_url = v;
        }
        if let Some(v) = env("policies_dir") {
            self.policies_dir = PathBuf::from(v);
        }
        if let Some(v) = env("api_tls_names") {
            self.api_tls_names = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = env("group_domains") {
            self.group_domains = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = env("api_tls_cert") {
            self.api_tls_cert = Some(PathBuf::from(v));
        }
        if let Some(v) = env("api_tls_key") {
            self.api_tls_key = Some(PathBuf::from(v));
        }
        if let Some(v) = env("acme_http01_port") {
            self.acme_http01_port = parse("acme_http01_port", &v)?;
        }
        if let Some(v) = env("acme_tls_alpn01_port") {
            self.acme_tls_alpn01_port = parse("acme_tls_alpn01_port", &v)?;
        }
        if let Some(v) = env("acme_resolve") {
            self.acme_resolve = v;
        }
        if let Some(v) = env("acme_validation_timeout_secs") {
            self.acme_validation_timeout_secs = parse("acme_validation_timeout_secs", &v)?;
        }
        if let Some(v) = env("scep_allow_single_des") {
            self.scep_allow_single_des = parse("scep_allow_single_des", &v)?;
        }
        if let Some(v) = env("api_require_client_cert") {
            self.api_require_client_cert = parse("api_require_client_cert", &v)?;
        }
        if let Some(v) = env("session_idle_secs") {
            self.session_idle_secs = parse("session_idle_secs", &v)?;
        }
        if let Some(v) = env("session_absolute_secs") {
            self.session_absolute_secs = parse("session_absolute_secs", &v)?;
        }
        if let Some(v) = env("step_up_max_failures") {
            self.step_up_max_failures = parse("step_up_max_failures", &v)?;
        }
        if let Some(v) = env("step_up_session_failures") {
            self.step_up_session_failures = parse("step_up_session_failures", &v)?;
        }
        if let Some(v) = env("approval_cooling_off_secs") {
            self.approval_cooling_off_secs = parse("approval_cooling_off_secs", &v)?;
        }
        if let Some(v) = env("audit_checkpoint_secs") {
            self.audit_checkpoint_secs = parse("audit_checkpoint_secs", &v)?;
        }
        if let Some(v) = env("max_window_start_days") {
            self.max_window_start_days = parse("max_window_start_days", &v)?;
        }
        if let Some(v) = env("lockout_threshold") {
            self.lockout_threshold = parse("lockout_threshold", &v)?;
        }
        if let Some(v) = env("login_attempts_per_minute") {
            self.login_attempts_per_minute = parse("login_attempts_per_minute", &v)?;
        }
        if let Some(v) = env("lockout_secs") {
            self.lockout_secs = parse("lockout_secs", &v)?;
        }
        if let Some(v) = env("crl_validity_secs") {
            self.crl_validity_secs = parse("crl_validity_secs", &v)?;
        }
        if let Some(v) = env("root_crl_validity_secs") {
            self.root_crl_validity_secs = parse("root_crl_validity_secs", &v)?;
        }
        if let Some(v) = env("ocsp_validity_secs") {
            self.ocsp_validity_secs = parse("ocsp_validity_secs", &v)?;
        }
        if let Some(v) = env("ocsp_nonce") {
            self.ocsp_nonce = match v.trim() {
                "ignore" => NonceMode::Ignore,
                "echo" => NonceMode::Echo,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "MAMORI_OCSP_NONCE".into(),
                        reason: format!("{v:?} is not ignore or echo"),
                    })
                }
            };
        }
        if let Some(v) = env("delta_crls") {
            self.delta_crls = parse("delta_crls", &v)?;
        }
        if let Some(v) = env("crl_partitions") {
            self.crl_partitions = parse("crl_partitions", &v)?;
        }
        if let Some(v) = env("delta_crl_validity_secs") {
            self.delta_crl_validity_secs = parse("delta_crl_validity_secs", &v)?;
        }
        if let Some(v) = env("maintenance_interval_secs") {
            self.maintenance_interval_secs = parse("maintenance_interval_secs", &v)?;
        }
        if let Some(v) = env("min_free_disk_bytes") {
            self.min_free_disk_bytes = parse("min_free_disk_bytes", &v)?;
        }
        if let Some(v) = env("ocsp_sweep_chunk") {
            self.ocsp_sweep_chunk = parse("ocsp_sweep_chunk", &v)?;
        }
        if let Some(v) = env("max_body_bytes") {
            self.max_body_bytes = parse("max_body_bytes", &v)?;
        }
        if let Some(v) = env("api_blocking_threads") {
            self.api_blocking_threads = parse("api_blocking_threads", &v)?;
        }
        Ok(())
    }

    fn apply_table_env(&mut self) -> Result<(), ConfigError> {
        self.notify
            .apply_env(env)
            .map_err(|(key, reason)| ConfigError::Invalid { key, reason })?;
        self.directory =
            crate::directory_config::DirectoryConfig::apply_env(self.directory.take(), env)
                .map_err(|(key, reason)| ConfigError::Invalid { key, reason })?;
        Ok(())
    }

    fn validate_tables(&self) -> Result<(), ConfigError> {
        if let Some(directory) = &self.directory {
            directory
                .validate()
                .map_err(|(key, reason)| ConfigError::Invalid { key, reason })?;
        }
        self.notify
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid { key, reason })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.acme_resolve_overrides()?;
        self.validate_tables()?;
        if let Some(token) = &self.pkcs11 {
            if token.token_label.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    key: "pkcs11.token_label".into(),
                    reason: "name the token (MAMORI_PKCS11_TOKEN_LABEL)".into(),
                });
            }
        }
        if self.acme_validation_timeout_secs == 0 || self.acme_validation_timeout_secs > 120 {
            return Err(ConfigError::Invalid {
                key: "acme_validation_timeout_secs".into(),
                reason: "must be 1-120".into(),
            });
        }
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        };
        let optional = [
            ("enroll_addr", self.enroll_addr.as_ref()),
            ("scep_http_addr", self.scep_http_addr.as_ref()),
        ];
        let set = optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v)));
        for (key, addr) in [("http_addr", &self.http_addr), ("api_addr", &self.api_addr)]
            .into_iter()
            .chain(set)
        {
            addr.parse::<std::net::SocketAddr>().map_err(|_| {
                invalid(
                    key,
                    "must be host:port with an IP address, e.g. 127.0.0.1:8080",
                )
            })?;
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return Err(invalid("public_url", "must start with http:// or https://"));
        }
        if self
            .public_url
            .trim_end_matches('/')
            .contains(char::is_whitespace)
        {
            return Err(invalid("public_url", "must not contain spaces"));
        }
        if self.session_idle_secs == 0 || self.session_absolute_secs < self.session_idle_secs {
            return Err(invalid(
                "session_absolute_secs",
                "must be at least session_idle_secs, which must be positive",
            ));
        }
        if self.crl_validity_secs < 600 {
            return Err(invalid("crl_validity_secs", "must be at least 600"));
        }
        if !(600..=400 * 86_400).contains(&self.root_crl_validity_secs) {
            return Err(invalid(
                "root_crl_validity_secs",
                "must be at least 600 and at most 400 days",
            ));
        }
        if self.delta_crl_validity_secs < 60
            || self.delta_crl_validity_secs > self.crl_validity_secs
        {
            return Err(invalid(
                "delta_crl_validity_secs",
                "must be at least 60 and at most crl_validity_secs",
            ));
        }
        if !(1..=1024).contains(&self.api_blocking_threads) {
            return Err(invalid("api_blocking_threads", "must be 1-1024"));
        }
        if self.crl_partitions > 1024 {
            return Err(invalid("crl_partitions", "must be at most 1024"));
        }
        if self.ocsp_validity_secs < 10 {
            return Err(invalid(
                "ocsp_validity_secs",
                "must be at least 10 (an hour or more is usual)",
            ));
        }
        if self.maintenance_interval_secs == 0 || self.maintenance_interval_secs > 3600 {
            return Err(invalid("maintenance_interval_secs", "must be 1 to 3600"));
        }
        if !(100..=1_000_000).contains(&self.ocsp_sweep_chunk) {
            return Err(invalid("ocsp_sweep_chunk", "must be 100-1000000"));
        }
        if !(1..=100).contains(&self.step_up_max_failures) {
            return Err(invalid("step_up_max_failures", "must be 1-100"));
        }
        if !(1..=100).contains(&self.step_up_session_failures) {
            return Err(invalid("step_up_session_failures", "must be 1-100"));
        }
        if !(10..=86_400).contains(&self.audit_checkpoint_secs) {
            return Err(invalid("audit_checkpoint_secs", "must be 10-86400"));
        }
        if !(1..=3650).contains(&self.max_window_start_days) {
            return Err(invalid("max_window_start_days", "must be 1-3650"));
        }
        if self.lockout_threshold == 0 {
            return Err(invalid("lockout_threshold", "must be at least 1"));
        }
        if self.api_tls_cert.is_some() != self.api_tls_key.is_some() {
            return Err(invalid(
                "api_tls_cert",
                "api_tls_cert and api_tls_key go together",
            ));
        }
        if let Some(url) = &self.database_url {
            crate::store::backend_path(url).map_err(|e| invalid("database_url", &e.to_string()))?;
        }
        Ok(())
    }

    /// The database URL, defaulting to SQLite in the data folder.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("mamori.db").display()))
    }

    /// The public base URL without a trailing slash.
    pub fn public_base(&self) -> String {
        self.public_url.trim_end_matches('/').to_string()
    }
}

/// Whether requests with a nonce get a freshly signed response echoing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NonceMode {
    /// Default: answer from the pre-signed cache without a nonce (RFC 9919, like RFC 5019 before it, permits it).
    /// Signing per request would let anyone spend the responder's CPU at will, and the
    /// responders relying parties use (Windows, Java, VPN gateways) do not send nonces.
    #[default]
    Ignore,
    /// Sign a fresh response echoing the nonce (RFC 9654).
    Echo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "colour = 1\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
        std::fs::write(&path, "http_addr = \"nowhere\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("http_addr"), "{err}");
        std::fs::write(&path, "database_url = \"mysql://x\"\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
        std::fs::write(&path, "api_blocking_threads = 0\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("api_blocking_threads"), "{err}");
        std::fs::write(&path, "api_blocking_threads = 4\n").unwrap();
        assert_eq!(Config::load(Some(&path)).unwrap().api_blocking_threads, 4);
    }

    #[test]
    fn default_database_is_sqlite_in_data_dir() {
        let config = Config {
            data_dir: PathBuf::from("/tmp/m"),
            ..Config::default()
        };
        assert_eq!(config.database_url(), "sqlite:///tmp/m/mamori.db");
    }
}
