//! Database rows. These never leave `store`/`authority`; the API has its own types (`api.rs`).
#![allow(missing_docs)]

use diesel::prelude::*;

use super::schema::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cas)]
pub struct CaRow {
    pub id: String,
    pub parent_id: Option<String>,
    pub certificate_der: Vec<u8>,
    pub key_pem: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub totp_secret_enc: Vec<u8>,
    pub roles: String,
    pub disabled: bool,
    pub failed_logins: i32,
    pub locked_until: Option<i64>,
    pub last_totp_step: i64,
    pub created_at: i64,
    /// Wrong step-up codes since the last right one.
    pub step_up_failures: i32,
    /// When step-up was locked for too many wrong codes (until another officer lifts it).
    pub step_up_locked_at: Option<i64>,
    /// The organization registered on the account (a vendor's company).
    pub organization: Option<String>,
    /// The e-mail domain registered on the account.
    pub email_domain: Option<String>,
    /// The password was set by someone else: the next sign-in must change it.
    pub must_change_password: bool,
    /// When someone else last set the account's password or TOTP secret (creation, reset).
    pub credentials_set_at: i64,
}

/// A directory account: its password is checked by `[directory]`, never a local hash.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = directory_accounts)]
#[diesel(treat_none_as_null = true)]
pub struct DirectoryAccountRow {
    pub user_id: String,
    /// Where the directory last found the person.
    pub dn: Option<String>,
    /// The roles their groups allowed at the last sign-in or sync, as a comma list (`None`: no
    /// mapping applies); a session holds only granted roles also listed here.
    pub roles: Option<String>,
    /// When the directory last vouched for the person.
    pub checked_at: i64,
}

/// An account waiting for its holder to enrol (created or reset under four eyes).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = enrolments)]
pub struct EnrolmentRow {
    pub user_id: String,
    /// The SHA-256 of each half of the one-time code, `hex:hex`.
    pub code_hash: String,
    /// When the code stops working.
    pub expires_at: i64,
    /// Wrong codes so far (at the limit the enrolment is void).
    pub failures: i32,
}

/// A change to an account waiting for (or past) four-eyes approval.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = account_changes)]
pub struct AccountChangeRow {
    pub id: String,
    /// `create`, `roles`, `reset` or `enable`.
    pub kind: String,
    /// The account's user name.
    pub target: String,
    /// JSON: roles, organization, e-mail domain (what the change sets).
    pub payload: String,
    pub requester_id: String,
    pub requester: String,
    /// `pending`, `applied`, `rejected`, `expired`.
    pub status: String,
    pub approvals_required: i32,
    /// SHA-256 of the requester's half of the enrolment code (create and reset).
    pub requester_half_hash: Option<String>,
    pub comment: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub updated_at: i64,
}

/// One person's decision on an account change.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = account_change_decisions)]
pub struct AccountChangeDecisionRow {
    pub change_id: String,
    pub approver_id: String,
    pub approver: String,
    /// `approve` or `reject`.
    pub verdict: String,
    pub comment: String,
    pub decided_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub token_hash: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_seen: i64,
    pub expires_at: i64,
    /// Wrong step-up codes in this session.
    pub step_up_failures: i32,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = requests)]
// NULL for None, not DEFAULT: SQLite then takes several rows in one INSERT (see group_commit).
#[diesel(treat_none_as_default_value = false)]
pub struct RequestRow {
    pub id: String,
    pub profile_id: String,
    pub requester_id: String,
    pub csr_der: Vec<u8>,
    pub justification: String,
    pub work_order: Option<String>,
    pub window_start: Option<i64>,
    pub window_end: Option<i64>,
    pub status: String,
    pub ca_id: Option<String>,
    pub certificate_serial: Option<String>,
    pub failure: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = decisions)]
pub struct DecisionRow {
    pub request_id: String,
    pub approver_id: String,
    pub approver_roles: String,
    pub verdict: String,
    pub second_factor: bool,
    pub comment: String,
    pub decided_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = certificates)]
// NULL for None, not DEFAULT: SQLite then takes several rows in one INSERT (see group_commit).
#[diesel(treat_none_as_default_value = false)]
pub struct CertificateRow {
    pub ca_id: String,
    pub serial: String,
    pub request_id: Option<String>,
    pub profile_id: String,
    pub subject: String,
    /// The exact TBS while `reserved`; empty once `der`, which holds it, is stored.
    pub tbs_der: Vec<u8>,
    pub der: Option<Vec<u8>>,
    pub not_before: i64,
    pub not_after: i64,
    pub status: String,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<String>,
    pub invalidity_date: Option<i64>,
    pub created_at: i64,
    pub status_changed_ms: i64,
    pub crl_partition: Option<i32>,
}

/// A certificate's subjectAltNames as one searchable line (`dns:a.example ip:10.0.0.1`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = certificate_names)]
pub struct CertificateNamesRow {
    pub ca_id: String,
    pub serial: String,
    pub names: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = published_crls)]
pub struct PublishedCrlRow {
    pub name: String,
    pub ca_id: String,
    pub crl_partition: Option<i32>,
    pub base_number: Option<i64>,
    pub crl_number: i64,
    pub this_update: i64,
    pub next_update: i64,
    pub der_len: i64,
    /// For a complete CRL: the cRLNumber of the complete CRL its deltas are based on.
    pub delta_base_number: Option<i64>,
    /// For a complete CRL: that base's thisUpdate (deltas list the changes since).
    pub delta_base_this_update: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ocsp_responders)]
pub struct ResponderRow {
    pub ca_id: String,
    pub certificate_der: Vec<u8>,
    pub key_pem: String,
    pub not_after: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = settings)]
pub struct SettingRow {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ocsp_responses)]
pub struct OcspResponseRow {
    pub ca_id: String,
    pub serial: String,
    pub der: Vec<u8>,
    pub this_update: i64,
    pub next_update: i64,
    pub updated_ms: i64,
    /// The storing process's `ocsp` service's origin; 0 for older rows.
    pub origin: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = enrollment_challenges)]
pub struct ChallengeRow {
    pub id: String,
    pub code_sha256: String,
    pub profile_id: String,
    pub cn_pattern: Option<String>,
    pub san_pattern: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = scep_transactions)]
pub struct ScepTransactionRow {
    pub transaction_id: String,
    pub signer_sha256: String,
    pub csr_key_sha256: String,
    pub request_id: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = scep_ra)]
pub struct ScepRaRow {
    pub ca_id: String,
    pub certificate_der: Vec<u8>,
    pub key_sealed: String,
    pub not_after: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = renewals)]
pub struct RenewalRow {
    pub request_id: String,
    pub old_ca_id: String,
    pub old_serial: String,
    pub revoke_old_at: Option<i64>,
    pub done: bool,
}

/// An ACME External Account Binding key (its HMAC key sealed).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = acme_eab_keys)]
pub struct EabKeyRow {
    pub id: String,
    pub profile_id: String,
    /// Name patterns, one per line.
    pub name_patterns: String,
    pub key_sealed: String,
    pub label: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub account_id: Option<String>,
}

/// An ACME account.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = acme_accounts)]
pub struct AcmeAccountRow {
    pub id: String,
    pub profile_id: String,
    pub key_thumbprint: String,
    /// The account key as RFC 7638 canonical JSON.
    pub jwk: String,
    pub eab_id: String,
    pub status: String,
    /// Contact URLs, a JSON array.
    pub contact: String,
    pub created_at: i64,
}

/// An ACME order.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = acme_orders)]
pub struct AcmeOrderRow {
    pub id: String,
    pub account_id: String,
    pub status: String,
    /// DNS names, a JSON array.
    pub identifiers: String,
    pub expires_at: i64,
    pub created_at: i64,
    pub request_id: Option<String>,
    /// A problem document (JSON) when the order is invalid.
    pub error: Option<String>,
    pub replaces: Option<String>,
}

/// An ACME authorization of one DNS name.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = acme_authorizations)]
pub struct AcmeAuthorizationRow {
    pub id: String,
    pub order_id: String,
    pub identifier: String,
    pub status: String,
    pub token: String,
    pub expires_at: i64,
    pub challenge_type: Option<String>,
    pub validated_at: Option<i64>,
    /// A problem document (JSON) when validation failed.
    pub error: Option<String>,
}

/// A notice in the outbox (`notifications`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = notifications)]
pub struct NotificationRow {
    pub id: String,
    pub event_key: String,
    pub event: String,
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub claimed_until: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// A break-glass issuance (`break_glass`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = break_glass)]
pub struct BreakGlassRow {
    pub request_id: String,
    pub profile_id: String,
    pub officer_id: String,
    pub emergency: String,
    pub issued_at: i64,
    pub review_due: i64,
    pub reviews_needed: i32,
    pub revoke_unreviewed: bool,
    pub status: String,
    pub closed_at: Option<i64>,
}

/// One officer's review of a break-glass issuance (`break_glass_reviews`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = break_glass_reviews)]
pub struct BreakGlassReviewRow {
    pub request_id: String,
    pub reviewer_id: String,
    pub verdict: String,
    pub comment: String,
    pub reviewed_at: i64,
}
