//! Request and response bodies of the JSON API (`/api/v1/`): ca-server serializes what it answers
//! and deserializes what it is sent from these types, and ca-cli does the reverse with the same
//! ones, so the two cannot drift apart unnoticed. Never database rows.

use serde::{Deserialize, Serialize};

/// A Unix time as the API shows times: RFC 3339, UTC.
pub fn rfc3339(secs: i64) -> String {
    ca_core::time::UnixTime(secs.max(0) as u64).to_rfc3339()
}

/// `POST /api/v1/login`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Current TOTP code.
    pub totp: String,
}

/// A successful login.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    /// Bearer token for `Authorization: Bearer ...`.
    pub token: String,
    /// Absolute expiry (RFC 3339); sessions also end after the idle time.
    pub expires_at: String,
    /// Who logged in.
    pub user: UserView,
    /// The password was set by an admin: nothing but `POST /passwd` (and `/me`, `/logout`)
    /// answers until it is changed.
    #[serde(default)]
    pub password_change_required: bool,
}

/// `POST /api/v1/passwd`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    /// The current password.
    pub current_password: String,
    /// The new one (at least 12 characters, not the current one).
    pub new_password: String,
}

/// A user as the API shows it.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct UserView {
    /// User name.
    pub username: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
    /// Step-up is locked after too many wrong codes (another officer or an admin unlocks it).
    #[serde(default)]
    pub step_up_locked: bool,
    /// Until when logins are locked after failed attempts (RFC 3339), if they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
    /// The organization registered on the account, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The e-mail domain registered on the account, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_domain: Option<String>,
    /// Created or reset, and waiting for its holder to enrol (`ca-cli enrol`).
    #[serde(default)]
    pub enrolment_pending: bool,
    /// The password is checked by the directory (`[directory]`).
    #[serde(default)]
    pub directory: bool,
}

/// `POST /api/v1/users`: asks for a new account; it is created when the account policy's
/// approvers have approved (`policies/accounts.toml`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// New user's name.
    pub username: String,
    /// Roles to grant.
    pub roles: Vec<String>,
    /// The organization registered on the account (a vendor's company; profiles with
    /// `organization_from_account` require the CSR's O to be exactly this).
    #[serde(default)]
    pub organization: Option<String>,
    /// The e-mail domain registered on the account (profiles with `domain_from_account`).
    #[serde(default)]
    pub email_domain: Option<String>,
    /// The holder signs in with their directory password (`[directory]`, LDAP or Active
    /// Directory); Mamori keeps only their TOTP secret.
    #[serde(default)]
    pub directory: bool,
    /// The requesting admin's fresh TOTP code.
    pub totp: String,
    /// Why, for the approvers and the audit trail.
    #[serde(default)]
    pub comment: String,
}

/// A new TOTP secret after enrolment: the URI is shown once.
#[derive(Debug, Serialize, Deserialize)]
pub struct TotpEnrolment {
    /// The user.
    pub user: UserView,
    /// `otpauth://totp/...` for an authenticator app.
    pub totp_uri: String,
}

/// `POST /api/v1/enrol` (no session): a created or reset account's holder sets their own
/// password and gets their own TOTP secret with the one-time code (both halves).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The account.
    pub username: String,
    /// The enrolment code: the requester's half, then the approver's half.
    pub code: String,
    /// The password to set (at least 12 characters); left out (empty) for a directory
    /// account, whose password the directory keeps.
    #[serde(default)]
    pub new_password: String,
}

/// `PUT /api/v1/users/{username}/roles`: asks for a role change (applied when approved).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRolesRequest {
    /// The complete new set of roles.
    pub roles: Vec<String>,
    /// The requesting admin's fresh TOTP code.
    pub totp: String,
    /// Why, for the approvers and the audit trail.
    #[serde(default)]
    pub comment: String,
}

/// A change to an account under four eyes.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct AccountChangeView {
    /// Id (`ac-...`).
    pub id: String,
    /// `create`, `roles`, `reset` (new password and TOTP by enrolment) or `enable`.
    pub kind: String,
    /// The account concerned.
    pub target: String,
    /// The roles the change sets (create, roles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The account's roles when the change was asked for (roles, reset, enable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub current_roles: Vec<String>,
    /// The organization a created account is registered for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The e-mail domain a created account is registered for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_domain: Option<String>,
    /// The new account signs in with its directory password (a create).
    #[serde(default)]
    pub directory: bool,
    /// The admin who asked.
    pub requester: String,
    /// `pending`, `applied`, `rejected` or `expired`.
    pub status: String,
    /// Approvals needed.
    pub approvals_required: u32,
    /// Decisions so far.
    pub decisions: Vec<AccountChangeDecisionView>,
    /// The requester's reason.
    pub comment: String,
    /// When it was asked for (RFC 3339).
    pub created_at: String,
    /// When it stops waiting (RFC 3339).
    pub expires_at: String,
    /// Only in the answer to the admin who asked (their half) and to the approver whose
    /// approval applied a create or reset (theirs): one half of the enrolment code, to hand to
    /// the account's holder in person. Never stored in clear, never shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolment_code_part: Option<String>,
}

/// One decision on an account change.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct AccountChangeDecisionView {
    /// Who decided.
    pub approver: String,
    /// `approve` or `reject`.
    pub verdict: String,
    /// Their comment.
    pub comment: String,
    /// When (RFC 3339).
    pub decided_at: String,
}

/// `GET /api/v1/account-changes` query.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountChangeQuery {
    /// Only changes in this status (`pending`, `applied`, `rejected`, `expired`).
    #[serde(default)]
    pub status: Option<String>,
}

/// A profile as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProfileView {
    /// Id.
    pub id: String,
    /// Description.
    pub description: String,
    /// Roles that may request.
    pub requester_roles: Vec<String>,
    /// Approvals needed.
    pub approvals: u32,
    /// Roles that may approve.
    pub approver_roles: Vec<String>,
    /// Default validity in seconds.
    pub default_validity_secs: u64,
    /// Maximum validity in seconds.
    pub max_validity_secs: u64,
    /// Whether a request may name its validity window.
    pub requested_window: bool,
    /// Subject attributes the profile allows, in certificate order.
    pub subject: Vec<AttributeRuleView>,
    /// SAN types the profile allows.
    pub san: Vec<SanRuleView>,
}

/// One allowed subject attribute.
#[derive(Debug, Serialize, Deserialize)]
pub struct AttributeRuleView {
    /// CN, O, OU, C, L, ST, serialNumber, UID.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether the CSR must carry it.
    pub required: bool,
    /// The anchored pattern values must match.
    pub pattern: Option<String>,
}

/// One allowed SAN type.
#[derive(Debug, Serialize, Deserialize)]
pub struct SanRuleView {
    /// dns, uri, email, ip.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether at least one is needed.
    pub required: bool,
    /// How many at most.
    pub max: usize,
    /// The anchored pattern values must match.
    pub pattern: Option<String>,
    /// Domains names must fall under.
    pub allowed_domains: Vec<String>,
}

/// `POST /api/v1/requests`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// Profile id.
    pub profile: String,
    /// PKCS#10 CSR in PEM.
    pub csr: String,
    /// Why the certificate is needed.
    pub justification: String,
    /// Vendor maintenance: the work-order reference.
    pub work_order: Option<String>,
    /// Requested start of validity (RFC 3339), e.g. a maintenance window.
    pub not_before: Option<String>,
    /// Requested end of validity (RFC 3339).
    pub not_after: Option<String>,
}

/// `POST /api/v1/requests/{id}/approve` and `/reject`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// A fresh TOTP code (step-up, even when logged in).
    pub totp: String,
    /// The approver's comment.
    #[serde(default)]
    pub comment: String,
}

/// One decision on a request.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct DecisionView {
    /// Approver.
    pub approver: String,
    /// approve or reject.
    pub verdict: String,
    /// Comment.
    pub comment: String,
    /// When (RFC 3339).
    pub decided_at: String,
}

/// A request as the API shows it.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct RequestView {
    /// Id.
    pub id: String,
    /// Profile.
    pub profile: String,
    /// Requester's user name.
    pub requester: String,
    /// pending, approved, issued, rejected, expired or failed.
    pub status: String,
    /// Justification.
    pub justification: String,
    /// Work order, if any.
    pub work_order: Option<String>,
    /// Requested window start.
    pub not_before: Option<String>,
    /// Requested window end.
    pub not_after: Option<String>,
    /// Approvals so far.
    pub approvals: u32,
    /// Approvals needed in all.
    pub approvals_required: u32,
    /// Decisions so far.
    pub decisions: Vec<DecisionView>,
    /// Issuing CA once issued.
    pub ca: Option<String>,
    /// Serial (hex) once issued.
    pub serial: Option<String>,
    /// Why issuance failed, if it did.
    pub failure: Option<String>,
    /// Submitted (RFC 3339).
    pub created_at: String,
    /// The CSR decoded — subject, SANs, key — with what a reviewer must notice (`flags`).
    pub csr: Option<ca_core::review::CsrSummary>,
    /// Valid certificates (`<ca>/<serial>`, newest first, at most 10) that already carried this
    /// subject under this profile when the request was submitted or shown: under a profile
    /// with `duplicates = "supersede"` they are revoked as superseded once this one is issued.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<String>,
}

/// A certificate as the API shows it.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct CertificateView {
    /// Issuing CA id.
    pub ca: String,
    /// Serial (hex).
    pub serial: String,
    /// Profile.
    pub profile: String,
    /// Subject (RFC 4514).
    pub subject: String,
    /// valid, revoked or hold.
    pub status: String,
    /// Start of validity.
    pub not_before: String,
    /// End of validity.
    pub not_after: String,
    /// When revoked or held.
    pub revoked_at: Option<String>,
    /// Revocation reason.
    pub revocation_reason: Option<String>,
    /// Request it came from.
    pub request_id: Option<String>,
    /// Its subjectAltNames (`dns:`, `email:`, `uri:`, `ip:`); in `GET .../{ca}/{serial}` only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sans: Vec<String>,
    /// Its key (`ECDSA P-256`, `RSA 3072`, ...); in `GET .../{ca}/{serial}` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// `POST /api/v1/certificates/{ca}/{serial}/revoke`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// key-compromise, cessation-of-operation, superseded, affiliation-changed,
    /// privilege-withdrawn, ca-compromise or unspecified.
    pub reason: String,
    /// When the key is known or suspected to have been compromised (RFC 3339).
    pub invalidity_date: Option<String>,
    /// A fresh TOTP code.
    pub totp: String,
    /// Comment for the audit trail.
    #[serde(default)]
    pub comment: String,
}

/// `POST .../hold`, `.../release` and `/users/{name}/unlock`: a step-up code and a comment.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpRequest {
    /// A fresh TOTP code.
    pub totp: String,
    /// Comment for the audit trail.
    #[serde(default)]
    pub comment: String,
}

/// One audit entry.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct AuditView {
    /// Sequence number.
    pub seq: u64,
    /// When (RFC 3339).
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// Details (JSON).
    pub details: serde_json::Value,
    /// Previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
    /// When, in Unix seconds (what the hash covers; `at` is the same time for people).
    #[serde(default)]
    pub at_unix: u64,
}

/// `GET /api/v1/audit/verify`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuditVerifyView {
    /// Whether the whole chain verifies.
    pub ok: bool,
    /// Entries checked.
    pub entries: usize,
    /// Where it breaks, if it does.
    pub broken_at: Option<u64>,
    /// Why.
    pub reason: Option<String>,
    /// Signed checkpoints (stored in the database) the chain matched.
    #[serde(default)]
    pub checkpoints: usize,
}

/// `GET /api/v1/requests` query. Lists are pages, newest first: the answer is the page (a JSON
/// array) with `X-Total-Count` (how many match in all) and, when more follow, a
/// `Link: <...>; rel="next"` header (RFC 8288) whose URL carries the `cursor` of the next page.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestListQuery {
    /// pending, approved, issued, rejected, expired, failed, cancelled.
    pub status: Option<String>,
    /// Profile id.
    pub profile: Option<String>,
    /// The requester's user name.
    pub requester: Option<String>,
    /// Page size (1-1000, default 500).
    pub limit: Option<u32>,
    /// Where the page starts (from the previous page's `Link`).
    pub cursor: Option<String>,
}

/// `GET /api/v1/certificates` query (paged like [`RequestListQuery`]).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateListQuery {
    /// Profile id.
    pub profile: Option<String>,
    /// valid, revoked, hold.
    pub status: Option<String>,
    /// Only those expiring within this many days.
    pub expiring_within_days: Option<u64>,
    /// Text the subject contains, any case (a name, a staff number, a device id).
    pub subject: Option<String>,
    /// Text a subjectAltName contains, any case (`gw.hospital.example`, `10.0.0.1`, an e-mail
    /// address, a device URI).
    pub san: Option<String>,
    /// A staff number: the subject's serialNumber, exactly (any case).
    pub staff_id: Option<String>,
    /// The serial's first hex digits.
    pub serial: Option<String>,
    /// The requester's user name.
    pub requester: Option<String>,
    /// Page size (1-1000, default 1000).
    pub limit: Option<u32>,
    /// Where the page starts (from the previous page's `Link`).
    pub cursor: Option<String>,
}

/// `GET /api/v1/audit` query: newest first, or oldest first from `after` (or with
/// `order=asc`), paged like [`RequestListQuery`].
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditListQuery {
    /// Oldest first, entries after this sequence number.
    pub after: Option<u64>,
    /// `desc` (newest first, the default without `after`) or `asc`.
    pub order: Option<String>,
    /// Page size (1-1000, default 100).
    pub limit: Option<u32>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this actor's.
    pub actor: Option<String>,
    /// Only on this target.
    pub target: Option<String>,
    /// Only at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only at or before this time (RFC 3339).
    pub until: Option<String>,
    /// Where the page starts (from the previous page's `Link`).
    pub cursor: Option<String>,
}

/// Percent-encodes a query value: everything but unreserved characters (RFC 3986 §2.3). The
/// server writes its `Link` cursors with it and ca-cli its filters.
pub fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// What the public listener's `/audit/checkpoints` serves and what an auditor keeps: the audit
/// key and the newest signed checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointFile {
    /// The audit key's public half, PEM (`PUBLIC KEY`).
    pub audit_key: String,
    /// Checkpoints, oldest first.
    pub checkpoints: Vec<ca_core::audit::Checkpoint>,
}

/// Parses RFC 3339 (`2026-11-23T09:00:00Z` or with an offset like `+09:00`) into Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.len() < 20 || !text.is_ascii() {
        return None;
    }
    let (date, rest) = text.split_at(10);
    let mut parts = date.split('-');
    let year: u16 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let hour: u8 = rest.get(0..2)?.parse().ok()?;
    let minute: u8 = rest.get(3..5)?.parse().ok()?;
    let second: u8 = rest.get(6..8)?.parse().ok()?;
    if rest.get(2..3)? != ":" || rest.get(5..6)? != ":" {
        return None;
    }
    let mut zone = &rest[8..];
    if let Some(stripped) = zone.strip_prefix('.') {
        let digits = stripped.chars().take_while(|c| c.is_ascii_digit()).count();
        zone = &stripped[digits..];
    }
    let offset: i64 = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = match zone.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let h: i64 = zone.get(1..3)?.parse().ok()?;
            let m: i64 = zone.get(4..6)?.parse().ok()?;
            if zone.len() != 6 || zone.get(3..4)? != ":" || h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let dt = ca_core::der::DateTime::new(year, month, day, hour, minute, second).ok()?;
    let secs = dt.unix_duration().as_secs() as i64 - offset;
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_with_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T09:00:00+09:00"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-11-23T09:00:00.123Z"),
            Some(1_795_424_400)
        );
        assert_eq!(parse_rfc3339("2026-13-23T09:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2026-11-23T09:00:00+9"), None);
    }
}

/// `POST /api/v1/enrollment-codes`: a one-time enrollment code ("challenge password") for a
/// device that enrolls itself through SCEP or EST.
#[derive(Debug, Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The profile the device enrolls under (one with `[enrollment] scep` or `est`).
    pub profile: String,
    /// A pattern (regular expression, whole value) the subject's CN must match, e.g.
    /// `ipad-ward3-[0-9]+`; none: any CN the profile allows.
    #[serde(default)]
    pub cn_pattern: Option<String>,
    /// A pattern every subjectAltName (as `dns:`, `uri:`, `email:`, `ip:` plus the value) must
    /// match; none: any the profile allows.
    #[serde(default)]
    pub san_pattern: Option<String>,
    /// Minutes the code stays valid (1-1440; default 60).
    #[serde(default)]
    pub valid_minutes: Option<u32>,
}

/// An enrollment code as the API shows it. `code` is present only in the answer that creates it.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct ChallengeView {
    /// Id (`chl-...`), for listing and revoking.
    pub id: String,
    /// The code itself: shown once, stored only as its SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Profile.
    pub profile: String,
    /// CN pattern.
    pub cn_pattern: Option<String>,
    /// SAN pattern.
    pub san_pattern: Option<String>,
    /// Who minted it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// Until when it may be used (RFC 3339).
    pub expires_at: String,
    /// unused, used or expired.
    pub state: String,
    /// The request it was used for.
    pub request_id: Option<String>,
}

/// `POST /api/v1/renew` on the enrollment listener (authenticated by the current certificate
/// over mutual TLS).
#[derive(Debug, Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// PKCS#10 CSR in PEM: the same subject and subjectAltNames as the current certificate.
    pub csr: String,
}

/// The answer to a renewal: issued (with the certificate and chain) or waiting for approval.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct RenewView {
    /// The renewal's request id (poll `GET /api/v1/renew/{id}` with the same certificate).
    pub request: String,
    /// issued, pending, rejected, expired or failed.
    pub status: String,
    /// The new certificate followed by its chain up to the root (PEM), once issued.
    pub certificate_pem: Option<String>,
    /// Issuing CA and serial of the new certificate, once issued.
    pub serial: Option<String>,
    /// The new certificate's notAfter (RFC 3339), once issued.
    pub not_after: Option<String>,
}

/// `POST /api/v1/acme/eab`: an External Account Binding key for one ACME client (a service
/// owner's server), minted by a security officer with a fresh second factor.
#[derive(Debug, Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct EabRequest {
    /// The profile whose ACME directory the account uses (one with `[enrollment] acme`).
    pub profile: String,
    /// The DNS names the account may order: exact names (`ehr.hospital.example`) or
    /// `*.` patterns (`*.ehr.hospital.example`: any name below that domain). Each must be
    /// allowed by the profile.
    pub names: Vec<String>,
    /// Who or what the key is for (shown in lists and the audit log).
    pub label: String,
    /// Days the key may be used to register (1-90; default 7). The account it registers
    /// lives until the key is revoked.
    #[serde(default)]
    pub valid_days: Option<u32>,
    /// A current TOTP code of the caller (step-up).
    pub totp: String,
}

/// An EAB key as the API shows it; `hmac_key` only in the answer that creates it.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct EabView {
    /// The key id (the ACME client's `--eab-kid`).
    pub id: String,
    /// The HMAC key, base64url (the ACME client's `--eab-hmac-key`): shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_key: Option<String>,
    /// Profile.
    pub profile: String,
    /// Name patterns.
    pub names: Vec<String>,
    /// Label.
    pub label: String,
    /// Who minted it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// Until when it may register an account (RFC 3339).
    pub expires_at: String,
    /// unused, bound, expired or revoked.
    pub state: String,
    /// The account it registered.
    pub account: Option<String>,
    /// The profile's ACME directory path.
    pub directory_path: String,
}

/// `POST /api/v1/acme/eab/{id}/revoke`: the caller's TOTP code.
#[derive(Debug, Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct EabRevokeRequest {
    /// A current TOTP code of the caller (step-up).
    pub totp: String,
}

/// `POST /api/v1/activate`: one custodian's share of the activation secret, opened by
/// `ca-cli activate` from their share file with their own passphrase.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    /// The share set the file belongs to.
    pub set: String,
    /// The share's index.
    pub index: u8,
    /// The share's value (base64).
    pub value: String,
    /// A fresh TOTP code of the custodian.
    pub totp: String,
}

/// `GET|POST /api/v1/activate`: where k-of-n activation stands.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct ActivationView {
    /// Whether the CA keys are still closed.
    pub locked: bool,
    /// Distinct shares given since start.
    pub shares_given: usize,
    /// Shares needed.
    pub threshold: usize,
    /// The current share set.
    pub set: String,
}

/// `PUT /api/v1/me/contact`: where the signed-in person's notices go (waiting approvals, their
/// certificates' expiry and revocation), with a fresh TOTP code; `email` null removes it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    /// The address, or null.
    pub email: Option<String>,
    /// A fresh TOTP code.
    pub totp: String,
}

/// `GET|PUT /api/v1/me/contact`.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct ContactView {
    /// The address notices go to, if any.
    pub email: Option<String>,
}

/// One notice in the outbox (`GET /api/v1/notifications`).
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct NotificationView {
    /// Its id (a webhook's `Mamori-Delivery`).
    pub id: String,
    /// `certificate.expiring`, `request.waiting`, `certificate.revoked`, `certificate.held`.
    pub event: String,
    /// `email` or `webhook:<name>`.
    pub channel: String,
    /// The address or the webhook's name.
    pub recipient: String,
    /// The e-mail subject.
    pub subject: String,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued (RFC 3339).
    pub created_at: String,
    /// When it was sent.
    pub sent_at: Option<String>,
    /// When it is tried next (pending only).
    pub next_attempt_at: Option<String>,
}

/// `POST /api/v1/break-glass`: a security officer issues alone in an emergency, with a fresh
/// TOTP code; the certificate is short-lived, every officer is told at once, and two others
/// must review it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassRequest {
    /// A profile whose `[break_glass]` allows it.
    pub profile: String,
    /// PEM PKCS#10.
    pub csr: String,
    /// What the emergency is (10-2000 characters), for the reviewers and the audit trail.
    pub emergency: String,
    /// A fresh TOTP code.
    pub totp: String,
}

/// `POST /api/v1/break-glass/{id}/review`: another officer's verdict, with a fresh TOTP code.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassReviewRequest {
    /// `confirm` (the emergency was real) or `misuse` (revokes the certificate at once).
    pub verdict: String,
    /// Why (required for `misuse`).
    #[serde(default)]
    pub comment: String,
    /// A fresh TOTP code.
    pub totp: String,
}

/// One review of a break-glass issuance.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct BreakGlassReviewView {
    /// The reviewing officer.
    pub reviewer: String,
    /// `confirm` or `misuse`.
    pub verdict: String,
    /// Their comment.
    pub comment: String,
    /// When (RFC 3339).
    pub at: String,
}

/// A break-glass issuance.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct BreakGlassView {
    /// The request's id.
    pub id: String,
    /// Its profile.
    pub profile: String,
    /// The officer who issued it.
    pub officer: String,
    /// The emergency they stated.
    pub emergency: String,
    /// When (RFC 3339).
    pub issued_at: String,
    /// The review deadline.
    pub review_due: String,
    /// `awaiting-review`, `confirmed`, `misuse`, `overdue` or `revoked-unreviewed`.
    pub status: String,
    /// Confirmations needed from other officers.
    pub reviews_needed: u32,
    /// The reviews so far.
    pub reviews: Vec<BreakGlassReviewView>,
    /// The certificate's CA and serial.
    pub ca: Option<String>,
    /// Its serial.
    pub serial: Option<String>,
}

/// One leaver: their certificates are found by staff id (the subject's serialNumber) and/or
/// e-mail address (a subjectAltName); their account, if named, is disabled.
#[derive(Debug, Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Leaver {
    /// Staff id (exact, any case).
    #[serde(default)]
    pub staff_id: Option<String>,
    /// E-mail address (exact, any case).
    #[serde(default)]
    pub email: Option<String>,
    /// The account to disable.
    #[serde(default)]
    pub username: Option<String>,
}

/// `POST /api/v1/staff/leave`: leavers and movers, one or an HR export's worth (at most 1000),
/// with one fresh TOTP code; `dry_run` reports what would happen and changes nothing.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaveRequest {
    /// The leavers.
    pub leavers: Vec<Leaver>,
    /// `affiliation-changed` (the default: left or moved) or `cessation-of-operation`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Report only.
    #[serde(default)]
    pub dry_run: bool,
    /// A fresh TOTP code (not needed for a dry run).
    #[serde(default)]
    pub totp: String,
}

/// What was (or would be) done for one certificate.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct LeaveAction {
    /// Issuing CA.
    pub ca: String,
    /// Serial.
    pub serial: String,
    /// Subject.
    pub subject: String,
    /// Profile.
    pub profile: String,
    /// `revoked`, `would-revoke`, `already-revoked` or `skipped-no-rev-avail`.
    pub action: String,
}

/// The outcome for one leaver.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct LeaverReport {
    /// As asked.
    pub staff_id: Option<String>,
    /// As asked.
    pub email: Option<String>,
    /// As asked.
    pub username: Option<String>,
    /// The certificates found.
    pub certificates: Vec<LeaveAction>,
    /// `disabled`, `would-disable`, `already-disabled`, `not-found` or null.
    pub account: Option<String>,
    /// Why this leaver could not be handled (the others still were).
    pub error: Option<String>,
}

/// `POST /api/v1/staff/leave`'s answer.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct LeaveReport {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// One per leaver, in order.
    pub leavers: Vec<LeaverReport>,
    /// Certificates revoked (or, dry, that would be).
    pub revoked: u32,
    /// Accounts disabled (or, dry, that would be).
    pub disabled: u32,
}

/// One vendor certificate in the monthly export (`GET /api/v1/vendor-certificates?month=`),
/// for the access-log review the MHLW guideline asks of remote maintenance.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct VendorCertificateView {
    /// Issuing CA.
    pub ca: String,
    /// Serial.
    pub serial: String,
    /// Profile.
    pub profile: String,
    /// Subject.
    pub subject: String,
    /// The vendor's registered organisation.
    pub organization: Option<String>,
    /// The vendor account that asked.
    pub requester: String,
    /// The work order.
    pub work_order: Option<String>,
    /// The stated reason.
    pub justification: String,
    /// Validity start (RFC 3339).
    pub not_before: String,
    /// Validity end.
    pub not_after: String,
    /// When it was issued.
    pub issued_at: String,
    /// `valid`, `revoked`, `hold`.
    pub status: String,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// The officers who approved it, in order.
    pub approvers: Vec<String>,
}
