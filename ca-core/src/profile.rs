//! Certificate profiles: what `policies/*.toml` say ([`ProfileConfig`]) and what Mamori trusts
//! after validation ([`Profile`]).
//!
//! A profile decides everything about a certificate that is not the requester's key: which CA
//! issues it, key types, validity, which subject attributes and SANs are allowed (with patterns),
//! key usage and EKU, who may request it, how many approvers of which roles must approve, and
//! renewal. Unknown fields are errors; every validation error names the file and the field.
//! `policies/README.md` documents each field.

use std::collections::HashSet;
use std::net::IpAddr;

use const_oid::db::rfc5280::{
    ID_KP_CLIENT_AUTH, ID_KP_CODE_SIGNING, ID_KP_EMAIL_PROTECTION, ID_KP_OCSP_SIGNING,
    ID_KP_SERVER_AUTH, ID_KP_TIME_STAMPING,
};
use const_oid::ObjectIdentifier;
use regex::Regex;
use serde::{Deserialize, Serialize};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::name::Name;

use crate::duration::parse_duration;
use crate::error::{CsrError, ProfileError};
use crate::name::{attribute_text, name_attributes, AttributeKind};
use crate::public_key::KeyType;
use crate::role::Role;

/// Key usage bits a leaf profile may grant (RFC 5280 §4.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum KeyUsageName {
    /// digitalSignature.
    DigitalSignature,
    /// nonRepudiation / contentCommitment.
    ContentCommitment,
    /// keyEncipherment (granted to RSA keys only).
    KeyEncipherment,
    /// dataEncipherment (granted to RSA keys only).
    DataEncipherment,
    /// keyAgreement (granted to ECDSA keys only).
    KeyAgreement,
}

impl KeyUsageName {
    /// The bit in the KeyUsage BIT STRING.
    pub fn flag(self) -> KeyUsages {
        match self {
            KeyUsageName::DigitalSignature => KeyUsages::DigitalSignature,
            KeyUsageName::ContentCommitment => KeyUsages::NonRepudiation,
            KeyUsageName::KeyEncipherment => KeyUsages::KeyEncipherment,
            KeyUsageName::DataEncipherment => KeyUsages::DataEncipherment,
            KeyUsageName::KeyAgreement => KeyUsages::KeyAgreement,
        }
    }

    /// Whether this usage makes sense for a key of `key_type`.
    pub fn fits(self, key_type: KeyType) -> bool {
        match self {
            KeyUsageName::DigitalSignature | KeyUsageName::ContentCommitment => true,
            KeyUsageName::KeyEncipherment | KeyUsageName::DataEncipherment => {
                key_type == KeyType::Rsa
            }
            KeyUsageName::KeyAgreement => {
                matches!(key_type, KeyType::EcdsaP256 | KeyType::EcdsaP384)
            }
        }
    }
}

/// Extended key usages a profile may grant (RFC 5280 §4.2.1.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ExtendedKeyUsageName {
    /// id-kp-serverAuth.
    ServerAuth,
    /// id-kp-clientAuth.
    ClientAuth,
    /// id-kp-emailProtection.
    EmailProtection,
    /// id-kp-codeSigning.
    CodeSigning,
    /// id-kp-timeStamping.
    TimeStamping,
    /// id-kp-OCSPSigning (delegated OCSP responders only).
    OcspSigning,
}

impl ExtendedKeyUsageName {
    /// The purpose OID.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            ExtendedKeyUsageName::ServerAuth => ID_KP_SERVER_AUTH,
            ExtendedKeyUsageName::ClientAuth => ID_KP_CLIENT_AUTH,
            ExtendedKeyUsageName::EmailProtection => ID_KP_EMAIL_PROTECTION,
            ExtendedKeyUsageName::CodeSigning => ID_KP_CODE_SIGNING,
            ExtendedKeyUsageName::TimeStamping => ID_KP_TIME_STAMPING,
            ExtendedKeyUsageName::OcspSigning => ID_KP_OCSP_SIGNING,
        }
    }
}

/// `[validity]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidityConfig {
    /// Validity when the request names none, e.g. `365d`.
    pub default: String,
    /// The longest validity ever issued, e.g. `72h`.
    pub max: String,
    /// Whether a request may name its own window (notBefore/notAfter), e.g. a maintenance window.
    #[serde(default)]
    pub requested_window: bool,
}

/// One `[[subject.attributes]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeRuleConfig {
    /// The attribute (CN, O, OU, C, L, ST, serialNumber, UID).
    #[serde(rename = "type")]
    pub kind: AttributeKind,
    /// Whether the CSR must carry it.
    #[serde(default)]
    pub required: bool,
    /// A regular expression the whole value must match.
    pub pattern: Option<String>,
}

/// `[subject]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectConfig {
    /// Allowed attributes, in the order they are written into the certificate.
    #[serde(default)]
    pub attributes: Vec<AttributeRuleConfig>,
    /// O must equal the organization registered on the requester's account (a vendor's
    /// company), so a vendor cannot ask for the hospital group's name or another vendor's.
    #[serde(default)]
    pub organization_from_account: bool,
}

/// One SAN type's rule as written (`[san.dns]`, `[san.uri]`, `[san.email]`, `[san.ip]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanRuleConfig {
    /// Whether at least one name of this type is required.
    #[serde(default)]
    pub required: bool,
    /// The most names of this type.
    #[serde(default = "default_san_max")]
    pub max: usize,
    /// A regular expression each whole value must match.
    pub pattern: Option<String>,
    /// DNS and email: the domains names must equal or fall under.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Email: the domain must be the one registered on the requester's account.
    #[serde(default)]
    pub domain_from_account: bool,
}

fn default_san_max() -> usize {
    1
}

/// `[san]` as written; a type that is absent is not allowed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanConfig {
    /// dNSName rule.
    pub dns: Option<SanRuleConfig>,
    /// uniformResourceIdentifier rule.
    pub uri: Option<SanRuleConfig>,
    /// rfc822Name rule.
    pub email: Option<SanRuleConfig>,
    /// iPAddress rule.
    pub ip: Option<SanRuleConfig>,
}

/// `[approval]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConfig {
    /// How many distinct approvers must approve (0 issues at once).
    pub approvals: u32,
    /// Roles whose holders may approve.
    #[serde(default)]
    pub approver_roles: Vec<Role>,
    /// Whether each decision needs a fresh second factor.
    #[serde(default = "default_true")]
    pub second_factor: bool,
    /// Whether the requester is excluded from deciding (must stay true).
    #[serde(default = "default_true")]
    pub exclude_requester: bool,
    /// How long a request may wait for approval before it expires, e.g. `24h`.
    pub max_wait: String,
}

/// `[renewal]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalConfig {
    /// Whether certificates of this profile may be renewed.
    pub allowed: bool,
    /// How long before expiry renewal opens, e.g. `30d`.
    #[serde(default = "default_renewal_window")]
    pub window: String,
    /// Whether the renewed certificate may keep the same key.
    #[serde(default)]
    pub reuse_key: bool,
    /// Whether renewal needs the approval rule again.
    #[serde(default = "default_true")]
    pub requires_approval: bool,
    /// Revoke the renewed certificate (reason superseded) this long after its successor is
    /// issued, e.g. `7d` (the overlap a device needs to switch); unset: it simply expires.
    #[serde(default)]
    pub revoke_old_after: Option<String>,
    /// How long after expiry a certificate may still renew itself, e.g. `7d` (default none: an
    /// expired certificate needs a new enrollment).
    #[serde(default)]
    pub grace_after_expiry: Option<String>,
}

/// `[enrollment]` as written: which device enrollment protocols serve this profile.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentConfig {
    /// Serve SCEP (RFC 8894) at `/scep/<profile>`.
    #[serde(default)]
    pub scep: bool,
    /// Serve EST (RFC 7030) at `/.well-known/est/<profile>/`.
    #[serde(default)]
    pub est: bool,
    /// Serve ACME (RFC 8555) at `/acme/<profile>/directory` to accounts bound with an
    /// External Account Binding key a security officer minted.
    #[serde(default)]
    pub acme: bool,
    /// Profiles whose valid certificates (a manufacturer's or a bootstrap certificate) authorize
    /// an EST `simpleenroll` under this profile over TLS client authentication, instead of a
    /// one-time code.
    #[serde(default)]
    pub bootstrap_profiles: Vec<String>,
    /// Hex SHA-256 of a static challenge password every device of this profile may use (off
    /// by default: one-time codes are the rule). Only its hash is written down.
    #[serde(default)]
    pub static_challenge_sha256: Option<String>,
    /// The account a static challenge's requests are filed under (a device enroller).
    #[serde(default)]
    pub static_challenge_owner: Option<String>,
}

fn default_true() -> bool {
    true
}

fn default_renewal_window() -> String {
    "30d".to_string()
}

/// What issuing for a subject that already has a valid certificate under the same profile does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DuplicatePolicy {
    /// Issue, and report the existing certificates with the request.
    #[default]
    Allow,
    /// Refuse the request while a valid certificate exists (revoke it first).
    Refuse,
    /// Issue, then revoke the existing certificates with reason superseded.
    Supersede,
}

/// A profile file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Identifier; must equal the file name without `.toml`.
    pub id: String,
    /// What the profile is for.
    pub description: String,
    /// The id of the issuing CA.
    pub issuing_ca: String,
    /// Allowed key types.
    pub key_types: Vec<KeyType>,
    /// Minimum RSA modulus (at least 2048).
    #[serde(default = "default_min_rsa_bits")]
    pub min_rsa_bits: usize,
    /// Roles that may request; empty means only Mamori itself issues (internal profiles).
    #[serde(default)]
    pub requester_roles: Vec<Role>,
    /// Key usage bits.
    pub key_usage: Vec<KeyUsageName>,
    /// Extended key usages.
    pub extended_key_usage: Vec<ExtendedKeyUsageName>,
    /// Add id-pkix-ocsp-nocheck (OCSP responder certificates only).
    #[serde(default)]
    pub ocsp_no_check: bool,
    /// Add CRL distribution point and OCSP URL (off for the OCSP responder's own certificate).
    #[serde(default = "default_true")]
    pub revocation_info: bool,
    /// Add noRevAvail (RFC 9608) and leave out every revocation pointer: for certificates of
    /// at most 24 hours, which expire before a revocation would reach relying parties (the
    /// proposal for vendors' one-day maintenance windows). Such certificates are never revoked.
    #[serde(default)]
    pub no_revocation_available: bool,
    /// The certificate policy OID written into every certificate of this profile
    /// (certificatePolicies, RFC 5280 §4.2.1.4), so relying parties can tell profiles apart,
    /// e.g. a VPN gateway that must not take a vendor's certificate for a staff member's.
    #[serde(default)]
    pub policy_oid: Option<String>,
    /// Validity rule.
    pub validity: ValidityConfig,
    /// Subject rule.
    #[serde(default)]
    pub subject: SubjectConfig,
    /// SAN rules.
    #[serde(default)]
    pub san: SanConfig,
    /// Approval rule.
    pub approval: ApprovalConfig,
    /// Renewal rule.
    pub renewal: RenewalConfig,
    /// Device enrollment (SCEP, EST); none by default.
    #[serde(default)]
    pub enrollment: EnrollmentConfig,
    /// A second certificate for the same subject: `allow` (the default, reported),
    /// `refuse`, or `supersede` (the older ones are revoked as superseded once the new one is
    /// stored).
    #[serde(default)]
    pub duplicates: DuplicatePolicy,
    /// Notices about this profile's certificates; none by default.
    #[serde(default)]
    pub notify: NotifyRuleConfig,
    /// Break-glass issuance: a security officer alone, in an emergency; off by default.
    #[serde(default)]
    pub break_glass: Option<BreakGlassConfig>,
    /// The most certificates of this profile one organisation (the requester account's
    /// registered organisation) may hold valid or waiting at once; no limit by default.
    #[serde(default)]
    pub max_valid_per_organization: Option<u32>,
}

/// `[break_glass]` in a profile (MHLW guideline 6.0: emergency access prepared, and reviewed).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassConfig {
    /// Whether a security officer may issue alone, with TOTP and a stated emergency.
    pub allowed: bool,
    /// The certificate's validity (short: `8h` by default; at most the profile's max).
    #[serde(default = "default_break_glass_validity")]
    pub max_validity: String,
    /// How long the other officers have to review it (`24h` by default).
    #[serde(default = "default_break_glass_review")]
    pub review_within: String,
    /// How many other officers must confirm it (at least 2).
    #[serde(default = "default_break_glass_reviews")]
    pub reviews: u32,
    /// Revoke it when the review time passes without enough confirmations.
    #[serde(default)]
    pub revoke_unreviewed: bool,
}

fn default_break_glass_validity() -> String {
    "8h".into()
}

fn default_break_glass_review() -> String {
    "24h".into()
}

fn default_break_glass_reviews() -> u32 {
    2
}

/// A validated `[break_glass]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassRule {
    /// The certificate's validity, seconds.
    pub validity_secs: u64,
    /// The review deadline after issuance, seconds.
    pub review_secs: u64,
    /// Confirmations needed from officers other than the issuer.
    pub reviews: u32,
    /// Revoke when the deadline passes unreviewed.
    pub revoke_unreviewed: bool,
}

/// `[notify]` in a profile.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyRuleConfig {
    /// Days before expiry at which the owner and the security mailbox are told, e.g.
    /// `[30, 7, 1]`: each threshold once per certificate.
    #[serde(default)]
    pub expiry_days: Vec<u32>,
}

fn default_min_rsa_bits() -> usize {
    2048
}

/// A validated subject attribute rule.
#[derive(Debug, Clone)]
pub struct AttributeRule {
    /// The attribute.
    pub kind: AttributeKind,
    /// Whether it is required.
    pub required: bool,
    /// Anchored pattern.
    pub pattern: Option<Regex>,
}

/// A validated SAN rule.
#[derive(Debug, Clone)]
pub struct SanRule {
    /// Whether at least one is required.
    pub required: bool,
    /// The most allowed.
    pub max: usize,
    /// Anchored pattern.
    pub pattern: Option<Regex>,
    /// Allowed domains (lower-case).
    pub allowed_domains: Vec<String>,
    /// The domain must be the one registered on the requester's account (e-mail only).
    pub domain_from_account: bool,
}

/// A validated approval rule; the `approval` module applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRule {
    /// Distinct approvals needed.
    pub approvals: u32,
    /// Roles that may approve.
    pub approver_roles: Vec<Role>,
    /// Fresh second factor with each decision.
    pub second_factor: bool,
    /// Seconds a request may wait.
    pub max_wait_secs: u64,
}

/// A validated renewal rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalRule {
    /// Renewal allowed at all.
    pub allowed: bool,
    /// Seconds before expiry that renewal opens.
    pub window_secs: u64,
    /// Same key allowed.
    pub reuse_key: bool,
    /// Approval needed again.
    pub requires_approval: bool,
    /// Seconds after the successor's issuance at which the renewed certificate is revoked.
    pub revoke_old_after_secs: Option<u64>,
    /// Seconds after expiry during which renewal is still allowed (0: none).
    pub grace_secs: u64,
}

/// A validated enrollment rule: which protocols serve the profile and how devices prove they
/// may enroll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnrollmentRule {
    /// SCEP served.
    pub scep: bool,
    /// EST served.
    pub est: bool,
    /// ACME served.
    pub acme: bool,
    /// Profiles whose certificates authorize EST enrollment.
    pub bootstrap_profiles: Vec<String>,
    /// SHA-256 of the static challenge, when one is configured.
    pub static_challenge_sha256: Option<[u8; 32]>,
    /// The account static-challenge requests are filed under.
    pub static_challenge_owner: Option<String>,
}

/// The longest validity a noRevAvail profile may give (RFC 9608's short-lived certificates;
/// the issue's one-day maintenance window).
pub const NO_REV_AVAIL_MAX_SECS: u64 = 24 * 3600;

/// A profile Mamori trusts: every field validated.
#[derive(Debug, Clone)]
pub struct Profile {
    id: String,
    description: String,
    issuing_ca: String,
    key_types: Vec<KeyType>,
    min_rsa_bits: usize,
    requester_roles: Vec<Role>,
    key_usage: Vec<KeyUsageName>,
    extended_key_usage: Vec<ExtendedKeyUsageName>,
    ocsp_no_check: bool,
    revocation_info: bool,
    no_revocation_available: bool,
    policy_oid: Option<(String, Vec<u8>)>,
    organization_from_account: bool,
    default_validity_secs: u64,
    max_validity_secs: u64,
    requested_window: bool,
    subject: Vec<AttributeRule>,
    dns: Option<SanRule>,
    uri: Option<SanRule>,
    email: Option<SanRule>,
    ip: Option<SanRule>,
    approval: ApprovalRule,
    renewal: RenewalRule,
    enrollment: EnrollmentRule,
    duplicates: DuplicatePolicy,
    expiry_days: Vec<u32>,
    break_glass: Option<BreakGlassRule>,
    max_valid_per_organization: Option<u32>,
}

fn invalid(file: &str, field: &str, reason: impl Into<String>) -> ProfileError {
    ProfileError::Invalid {
        file: file.to_string(),
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn anchored(
    file: &str,
    field: &str,
    pattern: &Option<String>,
) -> Result<Option<Regex>, ProfileError> {
    match pattern {
        None => Ok(None),
        Some(p) => Regex::new(&format!("^(?:{p})$"))
            .map(Some)
            .map_err(|e| invalid(file, field, format!("invalid regular expression: {e}"))),
    }
}

/// Whether `name` is a lower-case host or domain name: labels of 1-63 letters, digits and
/// inner hyphens, 253 octets at most, no wildcard.
pub fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

impl SanRule {
    fn from_config(file: &str, field: &str, config: &SanRuleConfig) -> Result<Self, ProfileError> {
        if config.max == 0 {
            return Err(invalid(file, &format!("{field}.max"), "must be at least 1"));
        }
        if config.max > 100 {
            return Err(invalid(
                file,
                &format!("{field}.max"),
                "must be at most 100",
            ));
        }
        let mut allowed_domains = Vec::new();
        for domain in &config.allowed_domains {
            let lower = domain.to_ascii_lowercase();
            if !valid_dns_name(&lower) {
                return Err(invalid(
                    file,
                    &format!("{field}.allowed_domains"),
                    format!("{domain:?} is not a DNS domain"),
                ));
            }
            allowed_domains.push(lower);
        }
        Ok(SanRule {
            required: config.required,
            max: config.max,
            pattern: anchored(file, &format!("{field}.pattern"), &config.pattern)?,
            allowed_domains,
            domain_from_account: config.domain_from_account,
        })
    }

    fn domain_allowed(&self, domain: &str) -> bool {
        self.allowed_domains.is_empty()
            || self
                .allowed_domains
                .iter()
                .any(|d| domain == d || domain.ends_with(&format!(".{d}")))
    }
}

impl Profile {
    /// Parses and validates a profile. `file` names the source in every error; when it ends in
    /// `.toml` its stem must equal the profile id.
    pub fn from_toml(file: &str, text: &str) -> Result<Profile, ProfileError> {
        let config: ProfileConfig = toml::from_str(text).map_err(|e| ProfileError::Parse {
            file: file.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        Profile::from_config(file, config)
    }

    /// Validates a parsed profile.
    pub fn from_config(file: &str, config: ProfileConfig) -> Result<Profile, ProfileError> {
        let id_ok = !config.id.is_empty()
            && config.id.len() <= 63
            && config
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !config.id.starts_with('-');
        if !id_ok {
            return Err(invalid(
                file,
                "id",
                "use 1-63 lower-case letters, digits and hyphens",
            ));
        }
        let stem = std::path::Path::new(file)
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".toml"));
        if let Some(stem) = stem {
            if stem != config.id {
                return Err(invalid(
                    file,
                    "id",
                    format!("id {:?} must equal the file name {stem:?}", config.id),
                ));
            }
        }
        if config.description.trim().is_empty() {
            return Err(invalid(file, "description", "must not be empty"));
        }
        if config.issuing_ca.trim().is_empty() {
            return Err(invalid(file, "issuing_ca", "must name a CA"));
        }
        if config.key_types.is_empty() {
            return Err(invalid(
                file,
                "key_types",
                "must allow at least one key type",
            ));
        }
        if config.min_rsa_bits < crate::public_key::MIN_RSA_BITS {
            return Err(invalid(file, "min_rsa_bits", "must be at least 2048"));
        }
        if config.key_usage.is_empty() {
            return Err(invalid(file, "key_usage", "must grant at least one usage"));
        }
        // Only an internal profile (the SCEP RA's: its key signs replies and opens requests,
        // which no extended key usage names) may leave it out.
        if config.extended_key_usage.is_empty() && !config.requester_roles.is_empty() {
            return Err(invalid(
                file,
                "extended_key_usage",
                "must grant at least one extended key usage",
            ));
        }
        let mut seen_eku = HashSet::new();
        for eku in &config.extended_key_usage {
            if !seen_eku.insert(*eku) {
                return Err(invalid(file, "extended_key_usage", "lists a usage twice"));
            }
        }
        let ocsp_signing = config
            .extended_key_usage
            .contains(&ExtendedKeyUsageName::OcspSigning);
        if config.ocsp_no_check && !ocsp_signing {
            return Err(invalid(
                file,
                "ocsp_no_check",
                "only OCSP responder profiles (extended_key_usage ocsp-signing) may set it",
            ));
        }
        if ocsp_signing && config.extended_key_usage.len() > 1 {
            return Err(invalid(
                file,
                "extended_key_usage",
                "ocsp-signing must not be combined with other usages",
            ));
        }
        if ocsp_signing && !config.requester_roles.is_empty() {
            return Err(invalid(
                file,
                "requester_roles",
                "OCSP responder certificates are issued by Mamori itself; leave it empty",
            ));
        }
        let default_validity_secs = parse_duration(&config.validity.default)
            .map_err(|e| invalid(file, "validity.default", e.to_string()))?;
        let max_validity_secs = parse_duration(&config.validity.max)
            .map_err(|e| invalid(file, "validity.max", e.to_string()))?;
        if default_validity_secs == 0 || max_validity_secs == 0 {
            return Err(invalid(file, "validity", "durations must be positive"));
        }
        if default_validity_secs > max_validity_secs {
            return Err(invalid(
                file,
                "validity.default",
                "must not exceed validity.max",
            ));
        }
        if max_validity_secs > 825 * 86_400 {
            return Err(invalid(file, "validity.max", "must not exceed 825d"));
        }
        let break_glass = match config.break_glass.as_ref().filter(|b| b.allowed) {
            None => None,
            Some(b) => {
                let validity_secs = parse_duration(&b.max_validity)
                    .map_err(|e| invalid(file, "break_glass.max_validity", e.to_string()))?;
                let review_secs = parse_duration(&b.review_within)
                    .map_err(|e| invalid(file, "break_glass.review_within", e.to_string()))?;
                if validity_secs == 0 || validity_secs > max_validity_secs {
                    return Err(invalid(
                        file,
                        "break_glass.max_validity",
                        "must be positive and within validity.max",
                    ));
                }
                if review_secs == 0 || review_secs > 7 * 86_400 {
                    return Err(invalid(
                        file,
                        "break_glass.review_within",
                        "must be positive and at most 7d",
                    ));
                }
                if b.reviews < 2 {
                    return Err(invalid(
                        file,
                        "break_glass.reviews",
                        "at least two other officers review an emergency issuance",
                    ));
                }
                if config.requester_roles.is_empty() || config.no_revocation_available {
                    return Err(invalid(
                        file,
                        "break_glass",
                        "only for profiles people request, whose certificates can be revoked",
                    ));
                }
                Some(BreakGlassRule {
                    validity_secs,
                    review_secs,
                    reviews: b.reviews,
                    revoke_unreviewed: b.revoke_unreviewed,
                })
            }
        };
        if let Some(limit) = config.max_valid_per_organization {
            if limit == 0 || !config.subject.organization_from_account {
                return Err(invalid(
                    file,
                    "max_valid_per_organization",
                    "must be at least 1, in a profile with subject.organization_from_account",
                ));
            }
        }
        let mut expiry_days = config.notify.expiry_days.clone();
        if expiry_days
            .iter()
            .any(|d| *d == 0 || u64::from(*d) * 86_400 > max_validity_secs)
        {
            return Err(invalid(
                file,
                "notify.expiry_days",
                "each must be at least 1 and within validity.max",
            ));
        }
        expiry_days.sort_unstable_by(|a, b| b.cmp(a));
        expiry_days.dedup();
        if config.no_revocation_available {
            if max_validity_secs > NO_REV_AVAIL_MAX_SECS {
                return Err(invalid(
                    file,
                    "no_revocation_available",
                    "only for certificates of at most 24 hours: set validity.max to 24h or less",
                ));
            }
            if ocsp_signing || config.requester_roles.is_empty() {
                return Err(invalid(
                    file,
                    "no_revocation_available",
                    "only for certificates people request (not OCSP responders or Mamori's own)",
                ));
            }
            if config.renewal.allowed {
                return Err(invalid(
                    file,
                    "no_revocation_available",
                    "a certificate nobody can revoke must not be renewed by its holder; set renewal.allowed = false",
                ));
            }
            if config.duplicates == DuplicatePolicy::Supersede {
                return Err(invalid(
                    file,
                    "duplicates",
                    "supersede revokes the older certificate, which noRevAvail certificates cannot be",
                ));
            }
        }

        let mut subject = Vec::new();
        let mut seen = HashSet::new();
        for (i, rule) in config.subject.attributes.iter().enumerate() {
            let field = format!("subject.attributes[{i}]");
            if !seen.insert(rule.kind) {
                return Err(invalid(
                    file,
                    &field,
                    format!("{} listed twice", rule.kind.as_str()),
                ));
            }
            subject.push(AttributeRule {
                kind: rule.kind,
                required: rule.required,
                pattern: anchored(file, &format!("{field}.pattern"), &rule.pattern)?,
            });
        }
        let rule = |name: &str, c: &Option<SanRuleConfig>| {
            c.as_ref()
                .map(|c| SanRule::from_config(file, &format!("san.{name}"), c))
                .transpose()
        };
        let dns = rule("dns", &config.san.dns)?;
        let uri = rule("uri", &config.san.uri)?;
        let email = rule("email", &config.san.email)?;
        let ip = rule("ip", &config.san.ip)?;
        if uri.as_ref().is_some_and(|r| r.pattern.is_none()) {
            return Err(invalid(file, "san.uri.pattern", "URI names need a pattern"));
        }
        if email
            .as_ref()
            .is_some_and(|r| r.allowed_domains.is_empty() && r.pattern.is_none())
        {
            return Err(invalid(
                file,
                "san.email",
                "email names need allowed_domains or a pattern",
            ));
        }
        if dns
            .as_ref()
            .is_some_and(|r| r.allowed_domains.is_empty() && r.pattern.is_none())
        {
            return Err(invalid(
                file,
                "san.dns",
                "DNS names need allowed_domains or a pattern",
            ));
        }
        let any_required_subject = subject.iter().any(|r| r.required);
        let any_required_san = [&dns, &uri, &email, &ip]
            .iter()
            .any(|r| r.as_ref().is_some_and(|r| r.required));
        if !any_required_subject && !any_required_san {
            return Err(invalid(
                file,
                "subject",
                "the profile must require at least one subject attribute or one SAN",
            ));
        }

        let approval = &config.approval;
        if !approval.exclude_requester {
            return Err(invalid(
                file,
                "approval.exclude_requester",
                "requesters can never approve their own request; remove the field or set it to true",
            ));
        }
        if approval.approvals > 0 && approval.approver_roles.is_empty() {
            return Err(invalid(
                file,
                "approval.approver_roles",
                "approvals need at least one approver role",
            ));
        }
        if approval.approvals > 10 {
            return Err(invalid(file, "approval.approvals", "must be at most 10"));
        }
        if approval
            .approver_roles
            .iter()
            .any(|r| matches!(r, Role::Vendor | Role::Auditor))
        {
            return Err(invalid(
                file,
                "approval.approver_roles",
                "vendors and auditors cannot approve",
            ));
        }
        let max_wait_secs = parse_duration(&approval.max_wait)
            .map_err(|e| invalid(file, "approval.max_wait", e.to_string()))?;
        if max_wait_secs == 0 {
            return Err(invalid(file, "approval.max_wait", "must be positive"));
        }
        let renewal_window = parse_duration(&config.renewal.window)
            .map_err(|e| invalid(file, "renewal.window", e.to_string()))?;
        let optional_duration = |value: &Option<String>, field: &str| {
            value
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| invalid(file, field, e.to_string()))
        };
        let revoke_old_after_secs =
            optional_duration(&config.renewal.revoke_old_after, "renewal.revoke_old_after")?;
        let grace_secs = optional_duration(
            &config.renewal.grace_after_expiry,
            "renewal.grace_after_expiry",
        )?
        .unwrap_or(0);
        let enrollment = &config.enrollment;
        let static_challenge_sha256 = match &enrollment.static_challenge_sha256 {
            None => None,
            Some(text) => {
                let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
                let Some(bytes) = bytes else {
                    return Err(invalid(
                        file,
                        "enrollment.static_challenge_sha256",
                        "must be 64 hex digits (sha256sum of the challenge)",
                    ));
                };
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&bytes);
                Some(hash)
            }
        };
        if static_challenge_sha256.is_some() != enrollment.static_challenge_owner.is_some() {
            return Err(invalid(
                file,
                "enrollment.static_challenge_owner",
                "a static challenge needs the account its requests are filed under, and only then",
            ));
        }
        if enrollment.acme && config.san.dns.is_none() {
            return Err(invalid(
                file,
                "enrollment.acme",
                "ACME validates DNS names: the profile needs a [san.dns] rule",
            ));
        }
        if (enrollment.scep || enrollment.est) && !config.renewal.allowed {
            return Err(invalid(
                file,
                "renewal.allowed",
                "devices that enroll themselves must be able to renew: set renewal.allowed",
            ));
        }

        let policy_oid = match &config.policy_oid {
            None => None,
            Some(text) => {
                let text = text.trim().to_string();
                let content = crate::extensions::oid_content(&text)
                    .map_err(|e| invalid(file, "policy_oid", e))?;
                Some((text, content))
            }
        };
        if config
            .san
            .dns
            .as_ref()
            .is_some_and(|r| r.domain_from_account)
            || config
                .san
                .uri
                .as_ref()
                .is_some_and(|r| r.domain_from_account)
            || config
                .san
                .ip
                .as_ref()
                .is_some_and(|r| r.domain_from_account)
        {
            return Err(invalid(
                file,
                "san.domain_from_account",
                "only [san.email] can take its domain from the account",
            ));
        }
        Ok(Profile {
            id: config.id,
            description: config.description,
            issuing_ca: config.issuing_ca,
            key_types: config.key_types,
            min_rsa_bits: config.min_rsa_bits,
            requester_roles: config.requester_roles,
            key_usage: config.key_usage,
            extended_key_usage: config.extended_key_usage,
            ocsp_no_check: config.ocsp_no_check,
            revocation_info: config.revocation_info && !config.no_revocation_available,
            no_revocation_available: config.no_revocation_available,
            policy_oid,
            organization_from_account: config.subject.organization_from_account,
            default_validity_secs,
            max_validity_secs,
            requested_window: config.validity.requested_window,
            subject,
            dns,
            uri,
            email,
            ip,
            approval: ApprovalRule {
                approvals: approval.approvals,
                approver_roles: approval.approver_roles.clone(),
                second_factor: approval.second_factor,
                max_wait_secs,
            },
            renewal: RenewalRule {
                allowed: config.renewal.allowed,
                window_secs: renewal_window,
                reuse_key: config.renewal.reuse_key,
                requires_approval: config.renewal.requires_approval,
                revoke_old_after_secs,
                grace_secs,
            },
            enrollment: EnrollmentRule {
                scep: enrollment.scep,
                est: enrollment.est,
                acme: enrollment.acme,
                bootstrap_profiles: enrollment.bootstrap_profiles.clone(),
                static_challenge_sha256,
                static_challenge_owner: enrollment.static_challenge_owner.clone(),
            },
            duplicates: config.duplicates,
            expiry_days,
            break_glass,
            max_valid_per_organization: config.max_valid_per_organization,
        })
    }

    /// The profile id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// What it is for.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The issuing CA's id.
    pub fn issuing_ca(&self) -> &str {
        &self.issuing_ca
    }
    /// The certificate policy OID certificates of this profile carry, if any: its dotted text
    /// and its DER content octets. Kept as octets because UUID OIDs (`2.25.<128-bit>`) have an
    /// arc larger than `const_oid` holds.
    pub fn policy_oid(&self) -> Option<(&str, &[u8])> {
        self.policy_oid
            .as_ref()
            .map(|(text, content)| (text.as_str(), content.as_slice()))
    }
    /// What a second certificate for the same subject does.
    pub fn duplicates(&self) -> DuplicatePolicy {
        self.duplicates
    }
    /// The most certificates one organisation may hold valid or waiting at once.
    pub fn max_valid_per_organization(&self) -> Option<u32> {
        self.max_valid_per_organization
    }

    /// The break-glass rule, when the profile allows it.
    pub fn break_glass(&self) -> Option<&BreakGlassRule> {
        self.break_glass.as_ref()
    }

    /// This profile as a break-glass issuance uses it: validity (default and max) cut to the
    /// rule's, no requested window. `None` when the profile does not allow break-glass.
    pub fn for_break_glass(&self) -> Option<Profile> {
        let rule = self.break_glass.as_ref()?;
        let mut profile = self.clone();
        profile.default_validity_secs = rule.validity_secs;
        profile.max_validity_secs = rule.validity_secs;
        profile.requested_window = false;
        Some(profile)
    }

    /// Days before expiry at which notices go out, largest first (`[notify] expiry_days`).
    pub fn expiry_days(&self) -> &[u32] {
        &self.expiry_days
    }
    /// Whether O must be the organization registered on the requester's account.
    pub fn organization_from_account(&self) -> bool {
        self.organization_from_account
    }
    /// Whether e-mail names must be in the domain registered on the requester's account.
    pub fn email_domain_from_account(&self) -> bool {
        self.email.as_ref().is_some_and(|r| r.domain_from_account)
    }
    /// The same profile issued by another CA: Mamori's delegated OCSP responders follow one
    /// profile (`ocsp-responder`) under the issuing CA and under the root.
    pub fn for_issuer(&self, ca_id: &str) -> Profile {
        Profile {
            issuing_ca: ca_id.to_string(),
            ..self.clone()
        }
    }
    /// Allowed key types.
    pub fn key_types(&self) -> &[KeyType] {
        &self.key_types
    }
    /// Minimum RSA bits.
    pub fn min_rsa_bits(&self) -> usize {
        self.min_rsa_bits
    }
    /// Roles that may request.
    pub fn requester_roles(&self) -> &[Role] {
        &self.requester_roles
    }
    /// Whether a person holding `roles` may request this profile.
    pub fn may_request(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.requester_roles.contains(r))
    }
    /// Key usage bits as configured.
    pub fn key_usage(&self) -> &[KeyUsageName] {
        &self.key_usage
    }
    /// Extended key usages.
    pub fn extended_key_usage(&self) -> &[ExtendedKeyUsageName] {
        &self.extended_key_usage
    }
    /// Whether to add id-pkix-ocsp-nocheck.
    pub fn ocsp_no_check(&self) -> bool {
        self.ocsp_no_check
    }
    /// Whether to add CRL DP and OCSP URL.
    pub fn revocation_info(&self) -> bool {
        self.revocation_info
    }
    /// Whether to add noRevAvail (RFC 9608): then no revocation pointer is added.
    pub fn no_revocation_available(&self) -> bool {
        self.no_revocation_available
    }
    /// Default validity in seconds.
    pub fn default_validity_secs(&self) -> u64 {
        self.default_validity_secs
    }
    /// Maximum validity in seconds.
    pub fn max_validity_secs(&self) -> u64 {
        self.max_validity_secs
    }
    /// Whether requests may name their own window.
    pub fn allows_requested_window(&self) -> bool {
        self.requested_window
    }
    /// Subject rules in certificate order.
    pub fn subject_rules(&self) -> &[AttributeRule] {
        &self.subject
    }
    /// The approval rule.
    pub fn approval(&self) -> &ApprovalRule {
        &self.approval
    }
    /// The renewal rule.
    pub fn renewal(&self) -> &RenewalRule {
        &self.renewal
    }
    /// The device enrollment rule.
    pub fn enrollment(&self) -> &EnrollmentRule {
        &self.enrollment
    }
    /// The rule for a SAN type (`dns`, `uri`, `email`, `ip`), if that type is allowed.
    pub fn san_rule(&self, kind: &str) -> Option<&SanRule> {
        match kind {
            "dns" => self.dns.as_ref(),
            "uri" => self.uri.as_ref(),
            "email" => self.email.as_ref(),
            "ip" => self.ip.as_ref(),
            _ => None,
        }
    }

    /// Whether the profile would issue a certificate naming the DNS name `name` (lower case):
    /// a valid non-wildcard name, under an allowed domain, matching the pattern. ACME asks
    /// before it validates anything, so that validation traffic only goes to such names.
    pub fn dns_name_allowed(&self, name: &str) -> bool {
        self.dns.as_ref().is_some_and(|rule| {
            valid_dns_name(name)
                && rule.domain_allowed(name)
                && rule.pattern.as_ref().is_none_or(|p| p.is_match(name))
        })
    }

    /// Checks a requested subject against the subject rules and returns the attributes to write,
    /// in profile order.
    pub fn check_subject(&self, subject: &Name) -> Result<Vec<(AttributeKind, String)>, CsrError> {
        let mut values: Vec<(AttributeKind, String)> = Vec::new();
        for atv in name_attributes(subject) {
            let kind = AttributeKind::from_oid(&atv.oid).ok_or_else(|| {
                CsrError::SubjectAttributeNotAllowed {
                    attribute: atv.oid.to_string(),
                }
            })?;
            let rule = self
                .subject
                .iter()
                .find(|r| r.kind == kind)
                .ok_or_else(|| CsrError::SubjectAttributeNotAllowed {
                    attribute: kind.as_str().to_string(),
                })?;
            if values.iter().any(|(k, _)| *k == kind) {
                return Err(CsrError::SubjectAttributeRepeated {
                    attribute: kind.as_str().to_string(),
                });
            }
            let text =
                attribute_text(&atv.value).ok_or_else(|| CsrError::SubjectAttributeEncoding {
                    attribute: kind.as_str().to_string(),
                })?;
            let pattern_ok = rule.pattern.as_ref().is_none_or(|p| p.is_match(&text));
            let encodable = crate::name::encode_attribute(kind, &text).is_ok();
            if !pattern_ok || !encodable {
                return Err(CsrError::SubjectAttributeValue {
                    attribute: kind.as_str().to_string(),
                    value: text,
                });
            }
            values.push((kind, text));
        }
        for rule in &self.subject {
            if rule.required && !values.iter().any(|(k, _)| *k == rule.kind) {
                return Err(CsrError::SubjectAttributeMissing {
                    attribute: rule.kind.as_str().to_string(),
                });
            }
        }
        let order = |k: &AttributeKind| self.subject.iter().position(|r| r.kind == *k);
        values.sort_by_key(|(k, _)| order(k));
        Ok(values)
    }

    /// Checks requested SANs against the SAN rules; returns them normalised (DNS and email
    /// domains lower-cased, duplicates removed).
    pub fn check_sans(&self, requested: &[GeneralName]) -> Result<Vec<GeneralName>, CsrError> {
        let mut out: Vec<GeneralName> = Vec::new();
        let mut counts = [("dns", 0usize), ("uri", 0), ("email", 0), ("ip", 0)];
        for name in requested {
            let (kind, value) = match name {
                GeneralName::DnsName(s) => ("dns", s.as_str().to_string()),
                GeneralName::UniformResourceIdentifier(s) => ("uri", s.as_str().to_string()),
                GeneralName::Rfc822Name(s) => ("email", s.as_str().to_string()),
                GeneralName::IpAddress(o) => {
                    let bytes = o.as_bytes();
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(bytes).map(IpAddr::from).ok(),
                        16 => <[u8; 16]>::try_from(bytes).map(IpAddr::from).ok(),
                        _ => None,
                    };
                    let text = ip
                        .map(|i| i.to_string())
                        .ok_or_else(|| CsrError::SanValue {
                            kind: "ip".into(),
                            value: hex::encode(bytes),
                            reason: "not an IPv4 or IPv6 address".into(),
                        })?;
                    ("ip", text)
                }
                _ => {
                    return Err(CsrError::SanTypeNotAllowed {
                        kind: "other".into(),
                    })
                }
            };
            let rule = self
                .san_rule(kind)
                .ok_or_else(|| CsrError::SanTypeNotAllowed {
                    kind: kind.to_string(),
                })?;
            let refuse = |reason: &str| CsrError::SanValue {
                kind: kind.to_string(),
                value: value.clone(),
                reason: reason.to_string(),
            };
            let normalised = match kind {
                "dns" => {
                    let lower = value.to_ascii_lowercase();
                    if !valid_dns_name(&lower) {
                        return Err(refuse("not a valid DNS name (wildcards are not issued)"));
                    }
                    if !rule.domain_allowed(&lower) {
                        return Err(refuse("not under an allowed domain"));
                    }
                    GeneralName::DnsName(
                        der::asn1::Ia5String::new(&lower).map_err(|_| refuse("not IA5"))?,
                    )
                }
                "email" => {
                    let (local, domain) = value
                        .rsplit_once('@')
                        .ok_or_else(|| refuse("not an email address"))?;
                    let domain = domain.to_ascii_lowercase();
                    let local_ok = !local.is_empty()
                        && local.len() <= 64
                        && local.chars().all(|c| c.is_ascii_graphic() && c != '@');
                    if !local_ok || !valid_dns_name(&domain) {
                        return Err(refuse("not an email address"));
                    }
                    if !rule.domain_allowed(&domain) {
                        return Err(refuse("not under an allowed domain"));
                    }
                    let text = format!("{local}@{domain}");
                    GeneralName::Rfc822Name(
                        der::asn1::Ia5String::new(&text).map_err(|_| refuse("not IA5"))?,
                    )
                }
                "uri" => {
                    let scheme_ok = value.split_once(':').is_some_and(|(s, rest)| {
                        !s.is_empty()
                            && !rest.is_empty()
                            && s.chars()
                                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                    });
                    if !scheme_ok
                        || value
                            .chars()
                            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
                    {
                        return Err(refuse("not an absolute URI"));
                    }
                    name.clone()
                }
                _ => name.clone(),
            };
            let check_value = match kind {
                "dns" | "email" => value.to_ascii_lowercase(),
                _ => value.clone(),
            };
            if let Some(pattern) = &rule.pattern {
                if !pattern.is_match(&check_value) {
                    return Err(refuse("does not match the profile's pattern"));
                }
            }
            if out.contains(&normalised) {
                continue;
            }
            if let Some(c) = counts.iter_mut().find(|(k, _)| *k == kind) {
                c.1 += 1;
                if c.1 > rule.max {
                    return Err(CsrError::SanTooMany {
                        kind: kind.to_string(),
                        count: requested.len(),
                        max: rule.max,
                    });
                }
            }
            out.push(normalised);
        }
        for (kind, count) in counts {
            if count == 0 && self.san_rule(kind).is_some_and(|r| r.required) {
                return Err(CsrError::SanMissing {
                    kind: kind.to_string(),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
id = "t"
description = "test"
issuing_ca = "issuing"
key_types = ["ecdsa-p256"]
key_usage = ["digital-signature"]
extended_key_usage = ["client-auth"]
requester_roles = ["device-enroller"]
[validity]
default = "30d"
max = "90d"
[[subject.attributes]]
type = "CN"
required = true
pattern = "[a-z0-9-]{1,32}"
[san.dns]
allowed_domains = ["hospital.example"]
max = 2
[approval]
approvals = 0
max_wait = "1h"
[renewal]
allowed = false
"#;

    fn load(text: &str) -> Result<Profile, ProfileError> {
        Profile::from_toml("t.toml", text)
    }

    #[test]
    fn loads_minimal() {
        let p = load(MINIMAL).unwrap();
        assert_eq!(p.id(), "t");
        assert_eq!(p.max_validity_secs(), 90 * 86_400);
    }

    #[test]
    fn unknown_field_is_an_error_naming_the_file() {
        let err = load(&MINIMAL.replace("key_types", "colour = \"red\"\nkey_types")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("t.toml:"), "{text}");
        assert!(text.contains("unknown field `colour`"), "{text}");
    }

    #[test]
    fn invalid_fields_are_named() {
        let cases = [
            (
                "default = \"30d\"",
                "default = \"300d\"",
                "validity.default",
            ),
            (
                "max_wait = \"1h\"",
                "max_wait = \"1y\"",
                "approval.max_wait",
            ),
            (
                "pattern = \"[a-z0-9-]{1,32}\"",
                "pattern = \"[\"",
                "subject.attributes[0].pattern",
            ),
            ("id = \"t\"", "id = \"other\"", "id"),
            ("approvals = 0", "approvals = 1", "approval.approver_roles"),
            (
                "approvals = 0",
                "approvals = 0\nexclude_requester = false",
                "approval.exclude_requester",
            ),
            (
                "[\"hospital.example\"]",
                "[\"bad domain\"]",
                "san.dns.allowed_domains",
            ),
        ];
        for (from, to, field) in cases {
            let err = load(&MINIMAL.replace(from, to)).unwrap_err();
            match err {
                ProfileError::Invalid { field: f, .. } => assert_eq!(f, field, "{to}"),
                other => panic!("{to}: {other}"),
            }
        }
    }

    #[test]
    fn checks_dns_sans() {
        let p = load(MINIMAL).unwrap();
        let dns = |s: &str| GeneralName::DnsName(der::asn1::Ia5String::new(s).unwrap());
        assert_eq!(
            p.check_sans(&[dns("EHR.Hospital.Example")]).unwrap(),
            vec![dns("ehr.hospital.example")]
        );
        assert!(matches!(
            p.check_sans(&[dns("evil.example")]),
            Err(CsrError::SanValue { .. })
        ));
        assert!(matches!(
            p.check_sans(&[dns("*.hospital.example")]),
            Err(CsrError::SanValue { .. })
        ));
        assert!(matches!(
            p.check_sans(&[
                dns("a.hospital.example"),
                dns("b.hospital.example"),
                dns("c.hospital.example")
            ]),
            Err(CsrError::SanTooMany { max: 2, .. })
        ));
        let uri =
            GeneralName::UniformResourceIdentifier(der::asn1::Ia5String::new("urn:x").unwrap());
        assert!(matches!(
            p.check_sans(&[uri]),
            Err(CsrError::SanTypeNotAllowed { .. })
        ));
    }

    #[test]
    fn no_revocation_available_is_for_a_day_at_most_and_drops_revocation_pointers() {
        let day = MINIMAL
            .replace("default = \"30d\"", "default = \"8h\"")
            .replace("max = \"90d\"", "max = \"24h\"")
            .replace("[validity]", "no_revocation_available = true\n[validity]");
        let p = load(&day).unwrap();
        assert!(p.no_revocation_available());
        assert!(!p.revocation_info());
        let refused = [
            (day.replace("max = \"24h\"", "max = \"25h\""), "24 hours"),
            (
                day.replace("allowed = false", "allowed = true"),
                "renewal.allowed",
            ),
            (
                day.replace("[validity]", "duplicates = \"supersede\"\n[validity]"),
                "supersede",
            ),
            (
                day.replace(
                    "requester_roles = [\"device-enroller\"]",
                    "requester_roles = []",
                ),
                "people request",
            ),
        ];
        for (text, why) in refused {
            let err = load(&text).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn break_glass_needs_two_reviewers_and_a_validity_within_the_profile() {
        let with = |table: &str| load(&format!("{MINIMAL}\n[break_glass]\n{table}"));
        let rule = with("allowed = true\nmax_validity = \"8h\"\nrevoke_unreviewed = true")
            .unwrap()
            .break_glass()
            .cloned()
            .unwrap();
        assert_eq!(rule.validity_secs, 8 * 3600);
        assert_eq!(rule.review_secs, 24 * 3600);
        assert_eq!(rule.reviews, 2);
        let variant = with("allowed = true").unwrap().for_break_glass().unwrap();
        assert_eq!(variant.max_validity_secs(), 8 * 3600);
        assert!(with("allowed = false").unwrap().break_glass().is_none());
        for (table, field) in [
            ("allowed = true\nreviews = 1", "break_glass.reviews"),
            (
                "allowed = true\nmax_validity = \"100d\"",
                "break_glass.max_validity",
            ),
            (
                "allowed = true\nreview_within = \"30d\"",
                "break_glass.review_within",
            ),
        ] {
            match with(table).unwrap_err() {
                ProfileError::Invalid { field: f, .. } => assert_eq!(f, field, "{table}"),
                other => panic!("{table}: {other}"),
            }
        }
    }
}
