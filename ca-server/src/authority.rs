//! The workflow, free of HTTP: who may do what, the approval rules, issuance (store the serial and
//! TBS → sign → store the certificate, update the request and audit in one transaction),
//! revocation, CRL publication and OCSP answers. Handlers call these and map the errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use ca_core::approval::{self, ApprovalState, Decision, PendingRequest, UserId, Verdict};
use ca_core::ca::CertificateAuthority;
use ca_core::clock::{Clock, SystemClock};
use ca_core::crl::RevocationReason;
use ca_core::csr::VerifiedCsr;
use ca_core::issuance::{IssuanceOptions, PreparedIssuance};
use ca_core::key::SoftwareKey;
use ca_core::profile::Profile;
use ca_core::role::Role;
use ca_core::serial::{parse_serial_hex, serial_hex};
use ca_core::signature_memo::SignatureMemo;
use ca_core::time::UnixTime;
use ca_core::totp::TotpSecret;
use diesel::prelude::*;
use serde_json::json;
use sha2::Digest;
use zeroize::Zeroizing;

use crate::api::*;
use crate::ca::{CaCertificates, Issuers};
use crate::crl::CrlService;
use crate::ocsp::{OcspParts, OcspService};
use crate::audit_log;
use crate::auth;
use crate::config::Config;
use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::secrets::DataKey;
use crate::store::group_commit::{Committing, GroupCommit};
use crate::store::models::*;
use crate::store::schema::*;
use crate::store::{Conn, DbConnection, DbPool};

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

    pub(crate) fn require(&self, roles: &[Role]) -> Result<(), ServiceError> {
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

    fn sees_everything(&self) -> bool {
        self.has_any(&[Role::Admin, Role::SecurityOfficer, Role::Auditor])
    }
}

/// The running CA service.
pub struct Authority {
    /// Configuration.
    pub config: Config,
    pub(crate) pool: DbPool,
    pub(crate) data_key: DataKey,
    /// The CAs (the only holder of CA keys) and every CA certificate.
    pub issuers: Arc<Issuers>,
    pub(crate) profiles: BTreeMap<String, Profile>,
    /// OCSP: responder certificates, pre-signed responses, answers.
    pub ocsp: Arc<OcspService>,
    /// CRLs: publication and the published files.
    pub crls: Arc<CrlService>,
    /// Login attempts per client address.
    pub login_limiter: crate::rate_limit::LoginLimiter,
    /// An OCSP-only instance: no API, no CA keys, only the delegated responder keys.
    pub(crate) ocsp_only: bool,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The group-commit writer the issuance path's writes go through.
    writer: GroupCommit,
    /// CSRs whose signature verified before (a re-issued terminal resends the same CSR).
    pub(crate) csr_signatures: SignatureMemo,
    /// The key that signs audit checkpoints (`None` on an OCSP-only instance).
    pub(crate) audit_key: Option<SoftwareKey>,
    /// Sessions confirmed in the database within the last second.
    pub(crate) sessions: crate::session_cache::SessionCache,
    /// Who approves account changes (`policies/accounts.toml`).
    pub(crate) account_policy: crate::account_policy::AccountPolicy,
}

/// How many verified CSR signatures an instance remembers (about 200 KiB).
const CSR_SIGNATURES_REMEMBERED: usize = 4096;

/// Roles parsed from the stored comma list.
pub fn parse_roles(text: &str) -> Vec<Role> {
    text.split(',')
        .filter_map(|r| Role::parse(r.trim()))
        .collect()
}

pub(crate) fn roles_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn rfc3339(secs: i64) -> String {
    UnixTime(secs.max(0) as u64).to_rfc3339()
}

/// A positive, non-zero random 63-bit number for [`Authority::origin`] (0 marks older rows).
pub(crate) fn new_id(prefix: &str) -> Result<String, ServiceError> {
    Ok(format!(
        "{prefix}-{}",
        hex::encode(crate::secrets::random_bytes(12)?)
    ))
}

/// A random identifier that sorts by creation time: the milliseconds since the epoch in hex,
/// then 96 random bits. Request ids are the key of a table that grows with every issuance; keys
/// in time order add to the end of its index instead of a random page each (whole seconds were
/// too coarse: a second's thousands of ids landed on random pages among their own).
fn new_ordered_id(prefix: &str, now_ms: u64) -> Result<String, ServiceError> {
    Ok(format!(
        "{prefix}-{:012x}{}",
        now_ms,
        hex::encode(crate::secrets::random_bytes(12)?)
    ))
}

/// The audit entry of a stored request.
fn submit_entry(row: &RequestRow, actor: &str, now: i64) -> audit_log::Entry {
    audit_log::Entry::new(
        now as u64,
        actor,
        "request.submit",
        &row.id,
        json!({"profile": row.profile_id, "work_order": row.work_order}),
    )
}

/// A certificate signed for a request, with its first OCSP response and audit entry, waiting
/// for the commit that stores them.
#[derive(Debug)]
struct SignedIssuance {
    der: Vec<u8>,
    response: Option<crate::ocsp::SignedResponse>,
    entry: audit_log::Entry,
}

/// What [`Authority::submit`] hands back.
#[derive(Debug)]
pub enum Submitted {
    /// A request stored to wait for its approvals.
    Stored(Box<RequestView>),
    /// A request whose profile needs no approval: signed, and queued for the one commit that
    /// stores it; [`Issuing::done`] waits for that commit.
    Issuing(Box<Issuing>),
}

/// An issuance queued for its commit (see [`Submitted`]).
#[derive(Debug)]
pub struct Issuing {
    commit: Committing<()>,
    signed: SignedIssuance,
    ca_id: String,
    profile_id: String,
    serial: String,
    view: RequestView,
}

impl Issuing {
    /// Waits for the commit, then caches the certificate's first OCSP response and counts the
    /// issuance; the request's view. Nothing signed leaves the process before the commit.
    pub async fn done(self, authority: &Authority) -> Result<RequestView, ServiceError> {
        self.commit.durable().await?;
        authority.issued(&self.signed, &self.ca_id, &self.profile_id, &self.serial);
        Ok(self.view)
    }
}

/// Pieces `Authority::assemble` needs; built by `bootstrap`.
pub struct Parts {
    /// Configuration.
    pub config: Config,
    /// Database pool.
    pub pool: DbPool,
    /// Data key.
    pub data_key: DataKey,
    /// The CA passphrase (kept to encrypt renewed responder keys).
    pub passphrase: Zeroizing<String>,
    /// Every CA, by id.
    pub cas: BTreeMap<String, CertificateAuthority>,
    /// The root's id.
    pub root_id: String,
    /// Profiles by id.
    pub profiles: BTreeMap<String, Profile>,
    /// Every CA certificate (DER) by id.
    pub ca_certificates: BTreeMap<String, Vec<u8>>,
    /// OCSP-only mode.
    pub ocsp_only: bool,
    /// Who approves account changes.
    pub account_policy: crate::account_policy::AccountPolicy,
}

impl Authority {
    /// Builds the service from its parts and makes sure every issuing CA has a current OCSP
    /// responder and a published CRL.
    pub fn assemble(parts: Parts) -> Result<Authority, ServiceError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let metrics = Arc::new(Metrics::default());
        let shared_config = Arc::new(parts.config.clone());
        let certificates = Arc::new(CaCertificates::new(parts.root_id, parts.ca_certificates));
        let issuers = Arc::new(Issuers::new(parts.cas, certificates.clone()));
        let ocsp = Arc::new(OcspService::new(OcspParts {
            pool: parts.pool.clone(),
            config: shared_config.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            certificates,
            responder_profile: parts.profiles.get("ocsp-responder").cloned(),
            passphrase: parts.passphrase.clone(),
            ocsp_only: parts.ocsp_only,
        })?);
        let crls = Arc::new(CrlService::new(
            parts.pool.clone(),
            shared_config,
            clock.clone(),
        ));
        let audit_key = if parts.ocsp_only {
            None
        } else {
            let mut conn = parts.pool.get()?;
            Some(crate::audit_checkpoint::load_or_create_key(
                &mut conn,
                &parts.passphrase,
            )?)
        };
        let writer = GroupCommit::start(&parts.config.database_url())
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let login_limiter =
            crate::rate_limit::LoginLimiter::new(parts.config.login_attempts_per_minute);
        let authority = Authority {
            config: parts.config,
            pool: parts.pool,
            data_key: parts.data_key,
            issuers,
            profiles: parts.profiles,
            ocsp,
            crls,
            login_limiter,
            ocsp_only: parts.ocsp_only,
            metrics,
            clock,
            writer,
            csr_signatures: SignatureMemo::new(CSR_SIGNATURES_REMEMBERED),
            audit_key,
            sessions: crate::session_cache::SessionCache::default(),
            account_policy: parts.account_policy,
        };
        authority.upkeep(false)?;
        authority.ocsp.poll_responses()?;
        Ok(authority)
    }

    /// Periodic upkeep: renew OCSP responders near expiry, republish CRLs well before
    /// nextUpdate (at half their validity), expire stale requests, sign missing or stale OCSP
    /// responses.
    pub fn maintain(&self) -> Result<(), ServiceError> {
        self.upkeep(true)
    }

    /// The upkeep; at start (`sign_responses` false) it leaves the signing of missing or stale
    /// OCSP responses to the first periodic run, which starts at once: a responder with a backlog
    /// of thousands serves from the database (cache misses are signed on demand) instead of
    /// staying unready until the backlog is signed.
    fn upkeep(&self, sign_responses: bool) -> Result<(), ServiceError> {
        if self.ocsp_only {
            return self.ocsp.maintain_only(sign_responses);
        }
        for id in &self.issuers.ids() {
            self.ocsp.ensure_responder(id, Some(&self.issuers))?;
            self.crls.publisher(&self.issuers).maintain_crls(id)?;
        }
        self.expire_requests()?;
        if let Err(e) = self.checkpoint_audit(false) {
            tracing::warn!(error = %e, "signing an audit checkpoint failed");
        }
        if sign_responses {
            self.ocsp.refresh_responses()?;
            self.ocsp.poll_responses()?;
        }
        Ok(())
    }

    /// The group-commit writer's counters.
    pub fn writer_stats(&self) -> &Arc<crate::store::group_commit::Stats> {
        self.writer.stats()
    }

    /// A pooled connection.
    pub fn conn(&self) -> Result<Conn, ServiceError> {
        Ok(self.pool.get()?)
    }

    pub(crate) fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// The loaded profiles.
    pub fn profiles(&self) -> Vec<ProfileView> {
        self.profiles
            .values()
            .map(|p| ProfileView {
                id: p.id().to_string(),
                description: p.description().to_string(),
                requester_roles: p.requester_roles().iter().map(|r| r.to_string()).collect(),
                approvals: p.approval().approvals,
                approver_roles: p
                    .approval()
                    .approver_roles
                    .iter()
                    .map(|r| r.to_string())
                    .collect(),
                default_validity_secs: p.default_validity_secs(),
                max_validity_secs: p.max_validity_secs(),
                requested_window: p.allows_requested_window(),
                subject: p
                    .subject_rules()
                    .iter()
                    .map(|r| AttributeRuleView {
                        kind: r.kind.as_str().to_string(),
                        required: r.required,
                        pattern: r.pattern.as_ref().map(|x| x.as_str().to_string()),
                    })
                    .collect(),
                san: ["dns", "uri", "email", "ip"]
                    .iter()
                    .filter_map(|k| {
                        p.san_rule(k).map(|r| SanRuleView {
                            kind: k.to_string(),
                            required: r.required,
                            max: r.max,
                            pattern: r.pattern.as_ref().map(|x| x.as_str().to_string()),
                            allowed_domains: r.allowed_domains.clone(),
                        })
                    })
                    .collect(),
            })
            .collect()
    }

    /// A CA certificate's DER by id.
    pub fn ca_certificate_der(&self, id: &str) -> Option<&[u8]> {
        self.issuers.certificates().der(id)
    }

    /// The chain from `id` up to the root, leaf-most first.
    pub fn chain_pem(&self, id: &str) -> Option<String> {
        self.issuers.certificates().chain_pem(id)
    }

    // ---- people ----

    pub(crate) fn user_by_name(
        &self,
        conn: &mut DbConnection,
        name: &str,
    ) -> Result<Option<UserRow>, ServiceError> {
        Ok(users::table
            .filter(users::username.eq(name))
            .select(UserRow::as_select())
            .first(conn)
            .optional()?)
    }

    pub(crate) fn user_view(row: &UserRow) -> UserView {
        UserView {
            username: row.username.clone(),
            roles: parse_roles(&row.roles)
                .iter()
                .map(|r| r.to_string())
                .collect(),
            disabled: row.disabled,
            step_up_locked: row.step_up_locked_at.is_some(),
            locked_until: row.locked_until.map(rfc3339),
            organization: row.organization.clone(),
            email_domain: row.email_domain.clone(),
            enrolment_pending: false,
        }
    }

    /// Checks a TOTP code for `user` and records its step so it is accepted once. Call inside a
    /// transaction.
    pub(crate) fn consume_totp(
        &self,
        conn: &mut DbConnection,
        user: &UserRow,
        code: &str,
    ) -> Result<bool, ServiceError> {
        let secret_bytes = self.data_key.open(&user.totp_secret_enc)?;
        let secret = TotpSecret::from_bytes(&secret_bytes);
        let Some(step) = secret.verify(code, self.now().as_secs()) else {
            return Ok(false);
        };
        let step = step as i64;
        let updated = diesel::update(
            users::table
                .filter(users::id.eq(&user.id))
                .filter(users::last_totp_step.lt(step)),
        )
        .set(users::last_totp_step.eq(step))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// Creates a user with a password and TOTP secret the caller chooses: only `ca-server dev`'s
    /// trial accounts (`actor` "system"), never through the API, where accounts enrol their own.
    /// Returns the TOTP enrolment URI, shown once.
    pub(crate) fn create_dev_user(
        &self,
        conn: &mut DbConnection,
        actor: &str,
        username: &str,
        password: &str,
        roles: &[Role],
        registered: (Option<String>, Option<String>),
    ) -> Result<TotpEnrolment, ServiceError> {
        auth::check_username(username).map_err(ServiceError::Invalid)?;
        let (organization, email_domain) = crate::review::registered_fields(registered)?;
        auth::check_password_policy(password).map_err(ServiceError::Invalid)?;
        if roles.is_empty() {
            return Err(ServiceError::Invalid(
                "a user needs at least one role".into(),
            ));
        }
        let hash = auth::hash_password(password)?;
        let secret = TotpSecret::generate().map_err(|e| ServiceError::Internal(e.to_string()))?;
        let sealed = self.data_key.seal(secret.as_bytes())?;
        let now = self.now().as_secs() as i64;
        let row = UserRow {
            id: new_id("u")?,
            username: username.to_string(),
            password_hash: hash,
            totp_secret_enc: sealed,
            roles: roles_text(roles),
            disabled: false,
            failed_logins: 0,
            locked_until: None,
            last_totp_step: 0,
            created_at: now,
            step_up_failures: 0,
            step_up_locked_at: None,
            organization,
            email_domain,
            must_change_password: false,
            // A trial account made at start-up is nobody's sock puppet: no cooling-off.
            credentials_set_at: 0,
        };
        crate::store::write_transaction::<_, ServiceError, _>(&mut *conn, |conn| {
            if self.user_by_name(conn, username)?.is_some() {
                return Err(ServiceError::Conflict(format!(
                    "user {username} already exists"
                )));
            }
            diesel::insert_into(users::table)
                .values(&row)
                .execute(conn)?;
            audit_log::append(
                conn,
                now as u64,
                actor,
                "user.create",
                username,
                json!({"roles": roles_text(roles), "organization": row.organization, "email_domain": row.email_domain}),
            )?;
            Ok(())
        })?;
        Ok(TotpEnrolment {
            user: Self::user_view(&row),
            totp_uri: secret.otpauth_uri("Mamori", username).to_string(),
        })
    }

    /// `GET /users` (admin, auditor).
    pub fn list_users(&self, caller: &Caller) -> Result<Vec<UserView>, ServiceError> {
        caller.require(&[Role::Admin, Role::Auditor])?;
        let mut conn = self.conn()?;
        let rows: Vec<UserRow> = users::table
            .order(users::username.asc())
            .select(UserRow::as_select())
            .load(&mut conn)?;
        let enrolling: std::collections::HashSet<String> = enrolments::table
            .select(enrolments::user_id)
            .load::<String>(&mut conn)?
            .into_iter()
            .collect();
        Ok(rows
            .iter()
            .map(|row| UserView {
                enrolment_pending: enrolling.contains(&row.id),
                ..Self::user_view(row)
            })
            .collect())
    }

    /// `POST /users/{name}/disable` (admin with step-up; never oneself). Immediate, without a
    /// second person: disabling only takes power away, and a leaver must lose it at once.
    pub fn disable_user(
        &self,
        caller: &Caller,
        username: &str,
        body: &StepUpRequest,
    ) -> Result<UserView, ServiceError> {
        let outcome = self.disable_user_inner(caller, username, body);
        self.guarded(caller, "user.disable", username, outcome)
    }

    fn disable_user_inner(
        &self,
        caller: &Caller,
        username: &str,
        body: &StepUpRequest,
    ) -> Result<UserView, ServiceError> {
        caller.require(&[Role::Admin])?;
        if username == caller.username {
            return Err(ServiceError::Forbidden(
                "admins cannot disable themselves".into(),
            ));
        }
        let now = self.now().as_secs();
        let mut conn = self.conn()?;
        let outcome = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let me: UserRow = users::table
                .find(&caller.user_id)
                .select(UserRow::as_select())
                .first(conn)?;
            self.step_up(conn, &me, &body.totp)?;
            let mut user = self
                .user_by_name(conn, username)?
                .ok_or_else(|| ServiceError::NotFound(format!("user {username}")))?;
            diesel::update(users::table.find(&user.id))
                .set(users::disabled.eq(true))
                .execute(conn)?;
            diesel::delete(sessions::table.filter(sessions::user_id.eq(&user.id))).execute(conn)?;
            // A disabled person's pending requests go with them: a vendor let go must not get a
            // certificate from a request officers approve later.
            let pending: Vec<String> = requests::table
                .filter(requests::requester_id.eq(&user.id))
                .filter(requests::status.eq("pending"))
                .select(requests::id)
                .load(conn)?;
            diesel::update(requests::table.filter(requests::id.eq_any(&pending)))
                .set((
                    requests::status.eq("cancelled"),
                    requests::updated_at.eq(now as i64),
                ))
                .execute(conn)?;
            audit_log::append(
                conn,
                now,
                &caller.username,
                "user.disable",
                username,
                json!({"cancelled_requests": pending, "comment": body.comment}),
            )?;
            for id in &pending {
                audit_log::append(
                    conn,
                    now,
                    &caller.username,
                    "request.cancel",
                    id,
                    json!({"reason": "requester disabled", "requester": username}),
                )?;
            }
            user.disabled = true;
            Ok(Self::user_view(&user))
        });
        self.ending_sessions(outcome)
    }

    // ---- sessions ----

    /// Logs in with password and TOTP. Every failure answers the same; repeated failures lock
    /// the account for `lockout_secs`.
    pub fn login(&self, request: &LoginRequest) -> Result<LoginResponse, ServiceError> {
        let now = self.now().as_secs() as i64;
        let mut conn = self.conn()?;
        let user = self.user_by_name(&mut conn, &request.username)?;
        let Some(user) = user else {
            let _ = auth::verify_password(&request.password, auth::dummy_hash());
            self.metrics
                .login_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Whatever was typed as a user name is data, never an actor: kept as a hash to
            // correlate attempts and a short escaped form to read (no control or bidi
            // characters reach a terminal or log).
            let digest = hex::encode(&sha2::Sha256::digest(request.username.as_bytes())[..8]);
            let shown = ca_core::text::escape_untrusted(&request.username, 32);
            audit_log::append(
                &mut conn,
                now as u64,
                "(unknown user)",
                "login.failed",
                &format!("unknown:{digest}"),
                json!({"reason": "unknown user", "name": shown, "name_sha256_64": digest}),
            )?;
            return Err(ServiceError::InvalidCredentials);
        };
        let password_ok = auth::verify_password(&request.password, &user.password_hash);
        let result = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            // Concurrent attempts on one account take turns from here: the no-op UPDATE takes
            // the row's lock on PostgreSQL (SQLite's write transaction is already exclusive),
            // and the row is read again after it, so each attempt counts on the last one's
            // count and sees its lock. Read before the transaction, 40 parallel wrong
            // passwords left the count at 4 and the account unlocked.
            diesel::update(users::table.find(&user.id))
                .set(users::failed_logins.eq(users::failed_logins))
                .execute(conn)?;
            let user: UserRow = users::table
                .find(&user.id)
                .select(UserRow::as_select())
                .first(conn)?;
            let locked = user.locked_until.is_some_and(|t| t > now);
            let enrolling = enrolments::table
                .find(&user.id)
                .count()
                .get_result::<i64>(conn)?
                > 0;
            let totp_ok = password_ok
                && !locked
                && !user.disabled
                && !enrolling
                && self.consume_totp(conn, &user, &request.totp)?;
            if !totp_ok {
                let failures = user.failed_logins + 1;
                let lock = if failures as u32 >= self.config.lockout_threshold {
                    Some(now + self.config.lockout_secs as i64)
                } else {
                    user.locked_until
                };
                diesel::update(users::table.find(&user.id))
                    .set((
                        users::failed_logins.eq(if lock != user.locked_until {
                            0
                        } else {
                            failures
                        }),
                        users::locked_until.eq(lock),
                    ))
                    .execute(conn)?;
                let reason = if user.disabled {
                    "disabled"
                } else if enrolling {
                    "enrolment pending"
                } else if locked {
                    "locked"
                } else if !password_ok {
                    "password"
                } else {
                    "second factor"
                };
                audit_log::append(
                    conn,
                    now as u64,
                    &user.username,
                    "login.failed",
                    &user.username,
                    json!({"reason": reason, "locked": lock.is_some_and(|t| t > now)}),
                )?;
                return Ok(None);
            }
            diesel::update(users::table.find(&user.id))
                .set((
                    users::failed_logins.eq(0),
                    users::locked_until.eq(None::<i64>),
                ))
                .execute(conn)?;
            let (token, hash) = auth::new_token()?;
            let expires = now + self.config.session_absolute_secs as i64;
            diesel::insert_into(sessions::table)
                .values(SessionRow {
                    token_hash: hash,
                    user_id: user.id.clone(),
                    created_at: now,
                    last_seen: now,
                    expires_at: expires,
                    step_up_failures: 0,
                })
                .execute(conn)?;
            audit_log::append(
                conn,
                now as u64,
                &user.username,
                "login.ok",
                &user.username,
                json!({}),
            )?;
            Ok(Some((token, expires)))
        })?;
        match result {
            Some((token, expires)) => Ok(LoginResponse {
                token,
                expires_at: rfc3339(expires),
                user: Self::user_view(&user),
                password_change_required: user.must_change_password,
            }),
            None => {
                self.metrics
                    .login_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(ServiceError::InvalidCredentials)
            }
        }
    }

    /// Passes on the outcome of a change that ends or narrows sessions (logout, roles, disable,
    /// second-factor reset) after forgetting every cached session, so that no call on this
    /// instance is answered for a session the change ended once the change has answered.
    fn ending_sessions<T>(&self, outcome: Result<T, ServiceError>) -> Result<T, ServiceError> {
        self.sessions.invalidate();
        outcome
    }

    /// Resolves a bearer token; refreshes its idle timer. A session confirmed in the database
    /// less than a second ago is taken from [`crate::session_cache`] (its expiry still checked).
    pub fn authenticate(&self, token: &str) -> Result<Caller, ServiceError> {
        if token.len() != 43 {
            return Err(ServiceError::Unauthenticated);
        }
        let hash = auth::token_hash(token);
        let now_ms = crate::store::now_ms().max(0) as u64;
        let now = (now_ms / 1000) as i64;
        // Activity is recorded in steps of a thirtieth of the idle timeout (at most a minute),
        // through the group-commit writer: a session in use writes about once a minute, not
        // once a second with a write transaction of its own that, on SQLite, waited for the
        // writer's lock while every other call of that second did the same.
        let step = (self.config.session_idle_secs / 30).min(60) as i64;
        let idle = self.config.session_idle_secs as i64;
        // A session that expired since it was read, or whose activity is due to be recorded,
        // goes the database path below (which deletes an expired one).
        if let Some(cached) = self.sessions.get(&hash, now_ms) {
            if cached.expires_at > now
                && cached.last_seen + idle > now
                && now <= cached.last_seen + step
            {
                return Ok(cached.caller);
            }
        }
        let generation = self.sessions.generation();
        let mut conn = self.conn()?;
        // The primary key finds at most one row; `load`, not `first`, because SQLite re-prepares
        // a statement whose LIMIT is a bound parameter each time, and this runs per API call.
        let found: Option<(SessionRow, UserRow)> = sessions::table
            .inner_join(users::table.on(users::id.eq(sessions::user_id)))
            .filter(sessions::token_hash.eq(&hash))
            .select((SessionRow::as_select(), UserRow::as_select()))
            .load(&mut conn)?
            .pop();
        let Some((session, user)) = found else {
            return Err(ServiceError::Unauthenticated);
        };
        let idle_expired = session.last_seen + idle <= now;
        if session.expires_at <= now || idle_expired || user.disabled {
            diesel::delete(sessions::table.find(&hash)).execute(&mut conn)?;
            return Err(ServiceError::Unauthenticated);
        }
        let mut last_seen = session.last_seen;
        if now > session.last_seen + step {
            drop(conn);
            let key = hash.clone();
            self.writer.run(move |w| {
                diesel::update(
                    sessions::table
                        .find(&key)
                        .filter(sessions::last_seen.lt(now)),
                )
                .set(sessions::last_seen.eq(now))
                .execute(w.conn)?;
                Ok(())
            })?;
            last_seen = now;
        }
        let caller = Caller {
            user_id: user.id,
            username: user.username,
            roles: parse_roles(&user.roles),
            session: hash.clone(),
            must_change_password: user.must_change_password,
        };
        self.sessions.insert(
            hash,
            crate::session_cache::CachedSession {
                caller: caller.clone(),
                expires_at: session.expires_at,
                last_seen,
                checked_ms: now_ms,
            },
            generation,
        );
        Ok(caller)
    }

    /// Ends a session.
    pub fn logout(&self, caller: &Caller, token: &str) -> Result<(), ServiceError> {
        let now = self.now().as_secs();
        let mut conn = self.conn()?;
        let outcome = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            diesel::delete(sessions::table.find(auth::token_hash(token))).execute(conn)?;
            audit_log::append(
                conn,
                now,
                &caller.username,
                "logout",
                &caller.username,
                json!({}),
            )?;
            Ok(())
        });
        self.ending_sessions(outcome)
    }

    // ---- requests ----

    /// `POST /requests`: checks the CSR against the profile now (so errors come back at once)
    /// and stores the request to wait for its approvals; when the profile needs none, signs the
    /// certificate at once and queues the commit that stores everything
    /// ([`Submitted::Issuing`]; the caller awaits [`Issuing::done`]).
    pub fn submit(
        &self,
        caller: &Caller,
        request: SubmitRequest,
    ) -> Result<Submitted, ServiceError> {
        let profile = self
            .profiles
            .get(&request.profile)
            .ok_or_else(|| ServiceError::NotFound(format!("profile {}", request.profile)))?;
        if !profile.may_request(&caller.roles) {
            return Err(ServiceError::Forbidden(format!(
                "your roles may not request profile {}",
                profile.id()
            )));
        }
        let justification = request.justification.trim();
        if justification.is_empty() || justification.len() > 2000 {
            return Err(ServiceError::Invalid(
                "justification must be 1-2000 characters".into(),
            ));
        }
        let work_order = request
            .work_order
            .as_deref()
            .map(str::trim)
            .filter(|w| !w.is_empty());
        if let Some(w) = work_order {
            if w.len() > 128 {
                return Err(ServiceError::Invalid(
                    "work_order must be at most 128 characters".into(),
                ));
            }
        }
        if profile.allows_requested_window() && work_order.is_none() {
            return Err(ServiceError::Invalid(format!(
                "profile {} needs a work_order reference",
                profile.id()
            )));
        }
        let window = match (&request.not_before, &request.not_after) {
            (None, None) => None,
            (Some(start), Some(end)) => {
                let start = parse_rfc3339(start)
                    .ok_or_else(|| ServiceError::Invalid("not_before is not RFC 3339".into()))?;
                let end = parse_rfc3339(end)
                    .ok_or_else(|| ServiceError::Invalid("not_after is not RFC 3339".into()))?;
                let horizon = self.config.max_window_start_days;
                if start > self.now().as_secs() + horizon * 86_400 {
                    return Err(ServiceError::Invalid(format!(
                        "not_before must be within {horizon} days (max_window_start_days); \
                         request the window nearer the work"
                    )));
                }
                Some((UnixTime(start), UnixTime(end)))
            }
            _ => {
                return Err(ServiceError::Invalid(
                    "give both not_before and not_after, or neither".into(),
                ))
            }
        };
        let csr = VerifiedCsr::parse_remembering(
            request.csr.as_bytes(),
            profile.min_rsa_bits(),
            &self.csr_signatures,
        )?;
        if profile.organization_from_account() || profile.email_domain_from_account() {
            self.check_account_binding(caller, profile, &csr)?;
        }
        let ca = self.issuing_ca(profile)?;
        // The profile, the window and the lint all pass before anything is stored; a profile
        // without approvals issues this very preparation.
        let prepared =
            PreparedIssuance::prepare(ca, profile, &csr, &IssuanceOptions { window }, &*self.clock)?;
        let now = self.now().as_secs() as i64;
        let approved_now = profile.approval().approvals == 0;
        let row = RequestRow {
            id: new_ordered_id("req", self.clock.now_ms())?,
            profile_id: profile.id().to_string(),
            requester_id: caller.user_id.clone(),
            csr_der: csr.der().to_vec(),
            justification: justification.to_string(),
            work_order: work_order.map(str::to_string),
            window_start: window.map(|w| w.0.as_secs() as i64),
            window_end: window.map(|w| w.1.as_secs() as i64),
            status: if approved_now { "approved" } else { "pending" }.into(),
            ca_id: None,
            certificate_serial: None,
            failure: None,
            created_at: now,
            updated_at: now,
        };
        let mut view = row.clone();
        if approved_now {
            let (serial, commit, signed) =
                self.issue_at_once(row, ca, profile, prepared, &caller.username, now)?;
            // What issue_at_once stores, without reading the row back.
            view.status = "issued".into();
            view.ca_id = Some(ca.id().to_string());
            view.certificate_serial = Some(serial.clone());
            return Ok(Submitted::Issuing(Box::new(Issuing {
                commit,
                signed,
                ca_id: ca.id().to_string(),
                profile_id: profile.id().to_string(),
                serial,
                view: self.view_of(view, caller.username.clone(), &[]),
            })));
        }
        let entry = submit_entry(&row, &caller.username, now);
        self.writer.run(move |w| {
            diesel::insert_into(requests::table)
                .values(&row)
                .execute(w.conn)?;
            w.audit(entry.clone());
            Ok(())
        })?;
        let view = self.view_of(view, caller.username.clone(), &[]);
        Ok(Submitted::Stored(Box::new(view)))
    }

    fn issuing_ca(&self, profile: &Profile) -> Result<&CertificateAuthority, ServiceError> {
        self.issuers.get(profile.issuing_ca()).ok_or_else(|| {
            ServiceError::Internal(format!(
                "profile {} names unknown CA {}",
                profile.id(),
                profile.issuing_ca()
            ))
        })
    }

    /// Issues an approved request: reserve serial + TBS, sign, then store the certificate,
    /// mark the request issued and audit, in one transaction.
    fn issue_approved(
        &self,
        conn: &mut DbConnection,
        request_id: &str,
        actor: &str,
    ) -> Result<(), ServiceError> {
        let row: RequestRow = requests::table
            .find(request_id)
            .select(RequestRow::as_select())
            .first(conn)?;
        if row.status != "approved" {
            return Ok(());
        }
        let profile = self
            .profiles
            .get(&row.profile_id)
            .ok_or_else(|| ServiceError::Internal("profile vanished".into()))?;
        let ca = self.issuing_ca(profile)?;
        let window = row
            .window_start
            .zip(row.window_end)
            .map(|(s, e)| (UnixTime(s as u64), UnixTime(e as u64)));
        let now = self.now().as_secs() as i64;
        let prepared = VerifiedCsr::parse_remembering(
            &row.csr_der,
            profile.min_rsa_bits(),
            &self.csr_signatures,
        )
        .map_err(ServiceError::from)
        .and_then(|csr| {
            Ok(PreparedIssuance::prepare(
                ca,
                profile,
                &csr,
                &IssuanceOptions { window },
                &*self.clock,
            )?)
        });
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                let message = e.to_string();
                crate::store::write_transaction::<_, ServiceError, _>(&mut *conn, |conn| {
                    diesel::update(requests::table.find(request_id))
                        .set((
                            requests::status.eq("failed"),
                            requests::failure.eq(&message),
                            requests::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    audit_log::append(
                        conn,
                        now as u64,
                        actor,
                        "request.failed",
                        request_id,
                        json!({"error": message}),
                    )?;
                    Ok(())
                })?;
                return Ok(());
            }
        };
        let serial =
            crate::ca::reservation::reserve(conn, ca, &prepared, profile.id(), Some(&row.id), now)?;
        self.finish_issue(request_id, ca, profile, prepared, &serial, actor, now)
    }

    /// Signs the certificate and its first OCSP response (good), and builds the audit entry of
    /// the issuance; nothing is stored yet.
    #[allow(clippy::too_many_arguments)]
    fn sign_issuance(
        &self,
        request_id: &str,
        ca: &CertificateAuthority,
        profile: &Profile,
        prepared: PreparedIssuance,
        serial: &str,
        actor: &str,
        now: i64,
    ) -> Result<SignedIssuance, ServiceError> {
        let issued = prepared.sign(ca)?;
        let response = match self.ocsp.sign_response(ca.id(), serial, ca_core::ocsp::Status::Good) {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(error = %e, cert.serial = %serial, "pre-signing the OCSP response failed; upkeep will retry");
                None
            }
        };
        let details = json!({"request": request_id, "profile": profile.id(), "subject": issued.subject, "not_after": issued.not_after.to_rfc3339()});
        let entry = audit_log::Entry::new(
            now as u64,
            actor,
            "certificate.issue",
            &format!("{}/{serial}", ca.id()),
            details,
        );
        Ok(SignedIssuance {
            der: issued.der,
            // Shared with the queued write, which stores it, then cached from here once durable.
            response,
            entry,
        })
    }

    /// After the commit that stored an issuance: caches its OCSP response, counts and logs it.
    fn issued(&self, signed: &SignedIssuance, ca_id: &str, profile_id: &str, serial: &str) {
        if let Some(response) = &signed.response {
            self.ocsp.cache_signed(response);
        }
        self.metrics
            .issued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(cert.serial = %serial, ca.id = %ca_id, profile.id = %profile_id, "certificate issued");
    }

    /// Issues a request whose profile needs no approval, with one durable commit: signs the
    /// certificate and its first OCSP response, then stores the request (already issued), the
    /// certificate, the response and both audit entries together (sharing the commit with other
    /// writes through the group-commit writer). Nothing signed leaves the process before that
    /// commit: if it fails, the caller gets the error and the certificate is dropped unseen.
    /// Returns the serial (hex) and the queued commit, which the caller awaits
    /// ([`Issuing::done`]).
    fn issue_at_once(
        &self,
        mut request: RequestRow,
        ca: &CertificateAuthority,
        profile: &Profile,
        prepared: PreparedIssuance,
        actor: &str,
        now: i64,
    ) -> Result<(String, Committing<()>, SignedIssuance), ServiceError> {
        let mut certificate =
            crate::ca::reservation::reservation(ca, &prepared, profile.id(), Some(&request.id), now);
        let serial = certificate.serial.clone();
        let signed = self.sign_issuance(&request.id, ca, profile, prepared, &serial, actor, now)?;
        certificate.der = Some(signed.der.clone());
        // As after a reservation: the stored certificate holds its TBS.
        certificate.tbs_der = Vec::new();
        certificate.status = "valid".into();
        let submitted = submit_entry(&request, actor, now);
        request.status = "issued".into();
        request.ca_id = Some(ca.id().to_string());
        request.certificate_serial = Some(serial.clone());
        let entry = signed.entry.clone();
        let response = signed.response.as_ref().map(|r| r.row.clone());
        // Inserted with the batch's other new rows, one statement per table (a new serial has no
        // response to replace).
        let commit = self.writer.queue(move |w| {
            w.add_request(request.clone());
            w.audit(submitted.clone());
            w.add_certificate(certificate.clone());
            w.audit(entry.clone());
            if let Some(row) = &response {
                w.add_response(row.clone());
            }
            Ok(())
        })?;
        Ok((serial, commit, signed))
    }

    /// Signs a reserved certificate and its first OCSP response (good), then in one commit (shared
    /// with other issuances through the group-commit writer) stores the certificate, marks the
    /// request issued, appends the audit entry and stores the OCSP response.
    #[allow(clippy::too_many_arguments)]
    fn finish_issue(
        &self,
        request_id: &str,
        ca: &CertificateAuthority,
        profile: &Profile,
        prepared: PreparedIssuance,
        serial: &str,
        actor: &str,
        now: i64,
    ) -> Result<(), ServiceError> {
        let signed = self.sign_issuance(request_id, ca, profile, prepared, serial, actor, now)?;
        let (ca_id, serial_owned) = (ca.id().to_string(), serial.to_string());
        let request_id = request_id.to_string();
        let (der, entry, response) = (
            signed.der.clone(),
            signed.entry.clone(),
            signed.response.as_ref().map(|r| r.row.clone()),
        );
        self.writer.run(move |w| {
            crate::ca::reservation::mark_issued(w.conn, &ca_id, &serial_owned, &der)?;
            let updated = diesel::update(
                requests::table
                    .find(&request_id)
                    .filter(requests::status.eq("approved")),
            )
            .set((
                requests::status.eq("issued"),
                requests::ca_id.eq(&ca_id),
                requests::certificate_serial.eq(&serial_owned),
                requests::updated_at.eq(now),
            ))
            .execute(w.conn)?;
            if updated != 1 {
                return Err(ServiceError::Conflict(
                    "request changed while issuing".into(),
                ));
            }
            w.audit(entry.clone());
            if let Some(row) = &response {
                // The certificate was reserved until now, so it has no response to replace.
                crate::ocsp::insert_response(w.conn, row)?;
            }
            Ok(())
        })?;
        self.issued(&signed, ca.id(), profile.id(), serial);
        Ok(())
    }

    fn decisions_of(
        &self,
        conn: &mut DbConnection,
        request_id: &str,
    ) -> Result<Vec<(DecisionRow, String)>, ServiceError> {
        Ok(decisions::table
            .inner_join(users::table.on(users::id.eq(decisions::approver_id)))
            .filter(decisions::request_id.eq(request_id))
            .order(decisions::decided_at.asc())
            .select((DecisionRow::as_select(), users::username))
            .load(conn)?)
    }

    fn core_decisions(rows: &[(DecisionRow, String)]) -> Vec<Decision> {
        rows.iter()
            .map(|(d, _)| Decision {
                approver: UserId(d.approver_id.clone()),
                approver_roles: parse_roles(&d.approver_roles),
                verdict: if d.verdict == "approve" {
                    Verdict::Approve
                } else {
                    Verdict::Reject
                },
                second_factor_verified: d.second_factor,
                at: UnixTime(d.decided_at.max(0) as u64),
            })
            .collect()
    }

    /// `POST /requests/{id}/approve|reject`: a fresh TOTP code in the same call; the approval
    /// rules decide; the last needed approval issues at once.
    pub fn decide(
        &self,
        caller: &Caller,
        request_id: &str,
        verdict: Verdict,
        body: &DecisionRequest,
    ) -> Result<RequestView, ServiceError> {
        let action = match verdict {
            Verdict::Approve => "request.approve",
            Verdict::Reject => "request.reject",
        };
        let outcome = self.decide_inner(caller, request_id, verdict, body);
        self.guarded(caller, action, request_id, outcome)
    }

    fn decide_inner(
        &self,
        caller: &Caller,
        request_id: &str,
        verdict: Verdict,
        body: &DecisionRequest,
    ) -> Result<RequestView, ServiceError> {
        if body.comment.len() > 2000 {
            return Err(ServiceError::Invalid(
                "comment must be at most 2000 characters".into(),
            ));
        }
        let mut conn = self.conn()?;
        self.expire_one(&mut conn, request_id)?;
        let now = self.now();
        let issue_now = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let row: RequestRow = requests::table
                .find(request_id)
                .select(RequestRow::as_select())
                .first(conn)
                .optional()?
                .ok_or_else(|| ServiceError::NotFound(format!("request {request_id}")))?;
            let profile = self
                .profiles
                .get(&row.profile_id)
                .ok_or_else(|| ServiceError::Internal("profile vanished".into()))?;
            let rule = profile.approval();
            if !caller.has_any(&rule.approver_roles) {
                let names: Vec<&str> = rule.approver_roles.iter().map(|r| r.as_str()).collect();
                return Err(ServiceError::Forbidden(format!(
                    "approving requires one of the roles: {}",
                    names.join(", ")
                )));
            }
            if row.status != "pending" {
                return Err(ca_core::error::ApprovalError::NotPending(row.status.clone()).into());
            }
            let requester_disabled: bool = users::table
                .find(&row.requester_id)
                .select(users::disabled)
                .first(conn)
                .optional()?
                .unwrap_or(true);
            if requester_disabled {
                return Err(ServiceError::Conflict(
                    "the requester's account is disabled: the request cannot be decided".into(),
                ));
            }
            let user: UserRow = users::table
                .find(&caller.user_id)
                .select(UserRow::as_select())
                .first(conn)?;
            self.check_cooling_off(&user, now.as_secs() as i64)?;
            let pending = PendingRequest {
                requester: UserId(row.requester_id.clone()),
                submitted_at: UnixTime(row.created_at.max(0) as u64),
            };
            let existing = Self::core_decisions(&self.decisions_of(conn, request_id)?);
            // Rule checks that need no code come first, so a self-approval never burns a code.
            let provisional = Decision {
                approver: UserId(caller.user_id.clone()),
                approver_roles: caller.roles.clone(),
                verdict,
                second_factor_verified: true,
                at: now,
            };
            approval::check_decision(rule, &pending, &existing, &provisional, now)?;
            self.step_up(conn, &user, &body.totp)?;
            let decision = DecisionRow {
                request_id: request_id.to_string(),
                approver_id: caller.user_id.clone(),
                approver_roles: roles_text(&caller.roles),
                verdict: if verdict == Verdict::Approve {
                    "approve".into()
                } else {
                    "reject".into()
                },
                second_factor: true,
                comment: body.comment.clone(),
                decided_at: now.as_secs() as i64,
            };
            diesel::insert_into(decisions::table)
                .values(&decision)
                .execute(conn)?;
            let action = if verdict == Verdict::Approve {
                "request.approve"
            } else {
                "request.reject"
            };
            audit_log::append(
                conn,
                now.as_secs(),
                &caller.username,
                action,
                request_id,
                json!({"comment": body.comment, "second_factor": true}),
            )?;
            let mut all = existing;
            all.push(Decision {
                second_factor_verified: true,
                ..provisional
            });
            match approval::evaluate(rule, &pending, &all, now) {
                ApprovalState::Approved => {
                    let flipped = diesel::update(
                        requests::table
                            .find(request_id)
                            .filter(requests::status.eq("pending")),
                    )
                    .set((
                        requests::status.eq("approved"),
                        requests::updated_at.eq(now.as_secs() as i64),
                    ))
                    .execute(conn)?;
                    Ok(flipped == 1)
                }
                ApprovalState::Rejected { .. } => {
                    diesel::update(requests::table.find(request_id))
                        .set((
                            requests::status.eq("rejected"),
                            requests::updated_at.eq(now.as_secs() as i64),
                        ))
                        .execute(conn)?;
                    Ok(false)
                }
                _ => Ok(false),
            }
        })?;
        if issue_now {
            self.issue_approved(&mut conn, request_id, &caller.username)?;
        }
        self.request_view(&mut conn, request_id)
    }

    fn expire_one(&self, conn: &mut DbConnection, request_id: &str) -> Result<(), ServiceError> {
        let row: Option<RequestRow> = requests::table
            .find(request_id)
            .select(RequestRow::as_select())
            .first(conn)
            .optional()?;
        let Some(row) = row else { return Ok(()) };
        if row.status != "pending" {
            return Ok(());
        }
        let Some(profile) = self.profiles.get(&row.profile_id) else {
            return Ok(());
        };
        let now = self.now();
        if now.as_secs() as i64 > row.created_at + profile.approval().max_wait_secs as i64 {
            crate::store::write_transaction::<_, ServiceError, _>(&mut *conn, |conn| {
                let n = diesel::update(
                    requests::table
                        .find(request_id)
                        .filter(requests::status.eq("pending")),
                )
                .set((
                    requests::status.eq("expired"),
                    requests::updated_at.eq(now.as_secs() as i64),
                ))
                .execute(conn)?;
                if n == 1 {
                    audit_log::append(
                        conn,
                        now.as_secs(),
                        "system",
                        "request.expire",
                        request_id,
                        json!({}),
                    )?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Expires every pending request past its profile's `max_wait`.
    pub fn expire_requests(&self) -> Result<(), ServiceError> {
        let mut conn = self.conn()?;
        let pending: Vec<String> = requests::table
            .filter(requests::status.eq("pending"))
            .select(requests::id)
            .load(&mut conn)?;
        for id in pending {
            self.expire_one(&mut conn, &id)?;
        }
        Ok(())
    }

    fn request_view(
        &self,
        conn: &mut DbConnection,
        request_id: &str,
    ) -> Result<RequestView, ServiceError> {
        let accounts = crate::review::account_names(conn)?;
        self.request_view_among(conn, request_id, &accounts)
    }

    /// [`Authority::request_view`] with the account names its review compares against read
    /// once by the caller (a list reads them once, not once per request).
    fn request_view_among(
        &self,
        conn: &mut DbConnection,
        request_id: &str,
        accounts: &[String],
    ) -> Result<RequestView, ServiceError> {
        let (row, requester): (RequestRow, String) = requests::table
            .inner_join(users::table.on(users::id.eq(requests::requester_id)))
            .filter(requests::id.eq(request_id))
            .select((RequestRow::as_select(), users::username))
            .first(conn)
            .optional()?
            .ok_or_else(|| ServiceError::NotFound(format!("request {request_id}")))?;
        let decisions = self.decisions_of(conn, request_id)?;
        let profile_id = row.profile_id.clone();
        let csr_der = row.csr_der.clone();
        let mut view = self.view_of(row, requester, &decisions);
        view.csr = self.review_csr(conn, &profile_id, &view.requester, &csr_der, accounts)?;
        Ok(view)
    }

    /// The API view of a request row, its requester's name and its decisions.
    fn view_of(
        &self,
        row: RequestRow,
        requester: String,
        decisions: &[(DecisionRow, String)],
    ) -> RequestView {
        let required = self
            .profiles
            .get(&row.profile_id)
            .map(|p| p.approval().approvals)
            .unwrap_or(0);
        RequestView {
            approvals: decisions
                .iter()
                .filter(|(d, _)| d.verdict == "approve")
                .count() as u32,
            approvals_required: required,
            decisions: decisions
                .iter()
                .map(|(d, name)| DecisionView {
                    approver: name.clone(),
                    verdict: d.verdict.clone(),
                    comment: d.comment.clone(),
                    decided_at: rfc3339(d.decided_at),
                })
                .collect(),
            id: row.id,
            profile: row.profile_id,
            requester,
            status: row.status,
            justification: row.justification,
            work_order: row.work_order,
            not_before: row.window_start.map(rfc3339),
            not_after: row.window_end.map(rfc3339),
            ca: row.ca_id,
            serial: row.certificate_serial,
            failure: row.failure,
            created_at: rfc3339(row.created_at),
            csr: None,
        }
    }

    /// `GET /requests/{id}`: requesters see their own; officers, admins and auditors all.
    pub fn get_request(
        &self,
        caller: &Caller,
        request_id: &str,
    ) -> Result<RequestView, ServiceError> {
        let mut conn = self.conn()?;
        self.expire_one(&mut conn, request_id)?;
        let owner: Option<String> = requests::table
            .find(request_id)
            .select(requests::requester_id)
            .first(&mut conn)
            .optional()?;
        match owner {
            Some(owner) if owner == caller.user_id || caller.sees_everything() => {
                self.request_view(&mut conn, request_id)
            }
            _ => Err(ServiceError::NotFound(format!("request {request_id}"))),
        }
    }

    /// `GET /requests?status=&profile=`.
    pub fn list_requests(
        &self,
        caller: &Caller,
        status: Option<&str>,
        profile: Option<&str>,
    ) -> Result<Vec<RequestView>, ServiceError> {
        self.expire_requests()?;
        let mut conn = self.conn()?;
        let mut query = requests::table
            .select(requests::id)
            .order(requests::created_at.desc())
            .limit(500)
            .into_boxed();
        if let Some(s) = status {
            query = query.filter(requests::status.eq(s.to_string()));
        }
        if let Some(p) = profile {
            query = query.filter(requests::profile_id.eq(p.to_string()));
        }
        if !caller.sees_everything() {
            query = query.filter(requests::requester_id.eq(caller.user_id.clone()));
        }
        let ids: Vec<String> = query.load(&mut conn)?;
        let accounts = crate::review::account_names(&mut conn)?;
        ids.iter()
            .map(|id| self.request_view_among(&mut conn, id, &accounts))
            .collect()
    }

    /// `GET /requests/{id}/certificate`: the issued certificate with its chain, in PEM.
    pub fn request_certificate(
        &self,
        caller: &Caller,
        request_id: &str,
    ) -> Result<String, ServiceError> {
        let view = self.get_request(caller, request_id)?;
        let (Some(ca), Some(serial)) = (view.ca, view.serial) else {
            return Err(ServiceError::Conflict(format!(
                "request {request_id} is {} and has no certificate",
                view.status
            )));
        };
        let mut conn = self.conn()?;
        let der: Option<Vec<u8>> = certificates::table
            .find((&ca, &serial))
            .select(certificates::der)
            .first(&mut conn)?;
        let der =
            der.ok_or_else(|| ServiceError::Internal("issued certificate without DER".into()))?;
        let mut pem = ca_core::ca::pem(&der);
        pem.push_str(&self.chain_pem(&ca).unwrap_or_default());
        Ok(pem)
    }

    // ---- certificates ----

    fn certificate_view(row: &CertificateRow) -> CertificateView {
        CertificateView {
            ca: row.ca_id.clone(),
            serial: row.serial.clone(),
            profile: row.profile_id.clone(),
            subject: row.subject.clone(),
            status: row.status.clone(),
            not_before: rfc3339(row.not_before),
            not_after: rfc3339(row.not_after),
            revoked_at: row.revoked_at.map(rfc3339),
            revocation_reason: row.revocation_reason.clone(),
            request_id: row.request_id.clone(),
        }
    }

    fn visible_certificate(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        ca: &str,
        serial: &str,
    ) -> Result<CertificateRow, ServiceError> {
        let serial = parse_serial_hex(serial)
            .map(|s| serial_hex(&s))
            .ok_or_else(|| ServiceError::Invalid("serial must be hex".into()))?;
        let not_found = || ServiceError::NotFound(format!("certificate {ca}/{serial}"));
        let row: CertificateRow = certificates::table
            .find((ca, &serial))
            .select(CertificateRow::as_select())
            .first(conn)
            .optional()?
            .ok_or_else(not_found)?;
        if row.status == "reserved" {
            return Err(not_found());
        }
        if caller.sees_everything() {
            return Ok(row);
        }
        let owner: Option<String> = match &row.request_id {
            Some(id) => requests::table
                .find(id)
                .select(requests::requester_id)
                .first(conn)
                .optional()?,
            None => None,
        };
        if owner.as_deref() == Some(caller.user_id.as_str()) {
            Ok(row)
        } else {
            Err(not_found())
        }
    }

    /// `GET /certificates?profile=&status=&expiring_within_days=`.
    pub fn list_certificates(
        &self,
        caller: &Caller,
        profile: Option<&str>,
        status: Option<&str>,
        expiring_within_days: Option<u64>,
    ) -> Result<Vec<CertificateView>, ServiceError> {
        if let Some(s) = status {
            if !matches!(s, "valid" | "revoked" | "hold") {
                return Err(ServiceError::Invalid(format!(
                    "status must be valid, revoked or hold (got {s:?})"
                )));
            }
        }
        if let Some(p) = profile {
            if !self.profiles.contains_key(p) && p != "ocsp-responder" && p != "issuing-ca" {
                return Err(ServiceError::Invalid(format!("no profile named {p:?}")));
            }
        }
        let mut conn = self.conn()?;
        let mut query = certificates::table
            .filter(certificates::status.ne("reserved"))
            .order(certificates::created_at.desc())
            .limit(1000)
            .select(CertificateRow::as_select())
            .into_boxed();
        if let Some(p) = profile {
            query = query.filter(certificates::profile_id.eq(p.to_string()));
        }
        if let Some(s) = status {
            query = query.filter(certificates::status.eq(s.to_string()));
        }
        if let Some(days) = expiring_within_days {
            let now = self.now().as_secs() as i64;
            query = query
                .filter(certificates::not_after.le(now + days.min(10_000) as i64 * 86_400))
                .filter(certificates::not_after.gt(now));
        }
        if !caller.sees_everything() {
            let own: Vec<String> = requests::table
                .filter(requests::requester_id.eq(&caller.user_id))
                .select(requests::id)
                .load(&mut conn)?;
            query = query.filter(certificates::request_id.eq_any(own));
        }
        let rows: Vec<CertificateRow> = query.load(&mut conn)?;
        Ok(rows.iter().map(Self::certificate_view).collect())
    }

    /// `GET /certificates/{ca}/{serial}`.
    pub fn get_certificate(
        &self,
        caller: &Caller,
        ca: &str,
        serial: &str,
    ) -> Result<(CertificateView, Vec<u8>), ServiceError> {
        let mut conn = self.conn()?;
        let row = self.visible_certificate(&mut conn, caller, ca, serial)?;
        Ok((Self::certificate_view(&row), row.der.unwrap_or_default()))
    }

    /// Revoke (any reason), hold, or release, with a fresh TOTP code; republishes the CRL.
    pub fn change_status(
        &self,
        caller: &Caller,
        ca: &str,
        serial: &str,
        change: StatusChange,
        code: &str,
        comment: &str,
    ) -> Result<CertificateView, ServiceError> {
        let action = match change {
            StatusChange::Revoke { .. } => "certificate.revoke",
            StatusChange::Hold => "certificate.hold",
            StatusChange::Release => "certificate.release",
        };
        let target = format!("{ca}/{serial}");
        let outcome = self.change_status_inner(caller, ca, serial, change, code, comment);
        self.guarded(caller, action, &target, outcome)
    }

    fn change_status_inner(
        &self,
        caller: &Caller,
        ca: &str,
        serial: &str,
        change: StatusChange,
        code: &str,
        comment: &str,
    ) -> Result<CertificateView, ServiceError> {
        caller.require(&[Role::SecurityOfficer])?;
        if comment.len() > 2000 {
            return Err(ServiceError::Invalid(
                "comment must be at most 2000 characters".into(),
            ));
        }
        let mut conn = self.conn()?;
        let now = self.now();
        let (view, partition) =
            crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
                let row = self.visible_certificate(conn, caller, ca, serial)?;
                let user: UserRow = users::table
                    .find(&caller.user_id)
                    .select(UserRow::as_select())
                    .first(conn)?;
                let (status, reason, at, invalidity, action) = match change {
                    StatusChange::Revoke {
                        reason,
                        invalidity_date,
                    } => {
                        if row.status == "revoked" {
                            return Err(ServiceError::Conflict(
                                "the certificate is already revoked".into(),
                            ));
                        }
                        if reason == RevocationReason::CertificateHold {
                            return Err(ServiceError::Invalid(
                                "use hold for certificateHold".into(),
                            ));
                        }
                        if invalidity_date.is_some_and(|d| d > now) {
                            return Err(ServiceError::Invalid(
                                "invalidity_date cannot be in the future".into(),
                            ));
                        }
                        (
                            "revoked",
                            Some(reason.as_str().to_string()),
                            Some(now.as_secs() as i64),
                            invalidity_date.map(|d| d.as_secs() as i64),
                            "certificate.revoke",
                        )
                    }
                    StatusChange::Hold => {
                        if row.status != "valid" {
                            return Err(ServiceError::Conflict(format!(
                                "only valid certificates can be held (this one is {})",
                                row.status
                            )));
                        }
                        (
                            "hold",
                            Some("certificate-hold".to_string()),
                            Some(now.as_secs() as i64),
                            None,
                            "certificate.hold",
                        )
                    }
                    StatusChange::Release => {
                        if row.status != "hold" {
                            return Err(ServiceError::Conflict(format!(
                                "only held certificates can be released (this one is {})",
                                row.status
                            )));
                        }
                        ("valid", None, None, None, "certificate.release")
                    }
                };
                self.step_up(conn, &user, code)?;
                diesel::update(certificates::table.find((&row.ca_id, &row.serial)))
                    .set((
                        certificates::status.eq(status),
                        certificates::revocation_reason.eq(&reason),
                        certificates::revoked_at.eq(at),
                        certificates::invalidity_date.eq(invalidity),
                        certificates::status_changed_ms.eq(crate::store::now_ms()),
                    ))
                    .execute(conn)?;
                audit_log::append(
                    conn,
                    now.as_secs(),
                    &caller.username,
                    action,
                    &format!("{}/{}", row.ca_id, row.serial),
                    json!({"reason": reason, "comment": comment}),
                )?;
                let mut updated = row.clone();
                updated.status = status.into();
                updated.revocation_reason = reason;
                updated.revoked_at = at;
                Ok((
                    Self::certificate_view(&updated),
                    row.crl_partition.map(|k| k.max(0) as u32),
                ))
            })?;
        if !matches!(change, StatusChange::Release) {
            self.metrics
                .revoked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let mut conn = self.conn()?;
        self.ocsp.presign(&mut conn, &view.ca, &view.serial)?;
        self.crls
            .publisher(&self.issuers)
            .publish_change(ca, partition, &caller.username)?;
        Ok(view)
    }

    // ---- audit ----

    /// `GET /audit` (auditor, admin): entries after `after`, at most `limit`.
    pub fn audit(
        &self,
        caller: &Caller,
        after: u64,
        limit: u32,
        action: Option<&str>,
    ) -> Result<Vec<AuditView>, ServiceError> {
        caller.require(&[Role::Auditor, Role::Admin])?;
        let mut conn = self.conn()?;
        use crate::store::schema::audit_log as log;
        let mut query = log::table
            .filter(log::seq.gt(after.min(i64::MAX as u64) as i64))
            .order(log::seq.asc())
            .limit(i64::from(limit.clamp(1, 1000)))
            .select(AuditRow::as_select())
            .into_boxed();
        if let Some(a) = action {
            query = query.filter(log::action.eq(a.to_string()));
        }
        let rows: Vec<AuditRow> = query.load(&mut conn)?;
        Ok(rows
            .into_iter()
            .map(|r| AuditView {
                seq: r.seq as u64,
                at: rfc3339(r.at),
                actor: r.actor,
                action: r.action,
                target: r.target,
                details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
                prev_hash: r.prev_hash,
                hash: r.hash,
                at_unix: r.at.max(0) as u64,
            })
            .collect())
    }

    /// `GET /audit/verify` (auditor, admin).
    pub fn audit_verify(&self, caller: &Caller) -> Result<AuditVerifyView, ServiceError> {
        caller.require(&[Role::Auditor, Role::Admin])?;
        let mut conn = self.conn()?;
        let chain = audit_log::load_chain(&mut conn)?;
        if let Err(b) = ca_core::audit::verify_chain(&chain) {
            return Ok(AuditVerifyView {
                ok: false,
                entries: 0,
                broken_at: Some(b.seq),
                reason: Some(b.reason.to_string()),
                checkpoints: 0,
            });
        }
        Ok(match self.verify_stored_checkpoints(&mut conn, &chain)? {
            Ok(matched) => AuditVerifyView {
                ok: true,
                entries: chain.len(),
                broken_at: None,
                reason: None,
                checkpoints: matched,
            },
            Err(failure) => AuditVerifyView {
                ok: false,
                entries: chain.len(),
                broken_at: Some(match failure {
                    ca_core::audit::CheckpointFailure::BadSignature(s)
                    | ca_core::audit::CheckpointFailure::Rewritten(s)
                    | ca_core::audit::CheckpointFailure::Truncated { seq: s, .. } => s,
                }),
                reason: Some(failure.to_string()),
                checkpoints: 0,
            },
        })
    }
}

/// A change of a certificate's revocation status.
#[derive(Debug, Clone, Copy)]
pub enum StatusChange {
    /// Revoke for good.
    Revoke {
        /// Why.
        reason: RevocationReason,
        /// When the key was compromised.
        invalidity_date: Option<UnixTime>,
    },
    /// certificateHold.
    Hold,
    /// Release from hold.
    Release,
}

pub(crate) fn parse_role_list(names: &[String]) -> Result<Vec<Role>, ServiceError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_ids_sort_by_millisecond_and_differ_within_one() {
        let a = new_ordered_id("req", 1_700_000_000_000).unwrap();
        let b = new_ordered_id("req", 1_700_000_000_000).unwrap();
        let c = new_ordered_id("req", 1_700_000_000_001).unwrap();
        assert_ne!(a, b);
        assert!(a < c && b < c, "{a} {b} {c}");
        assert!(a.starts_with("req-018bcfe56800"), "{a}");
        assert_eq!(a.len(), "req-".len() + 12 + 24);
        // Ids of the earlier whole-second form sort before every id of this form.
        assert!("req-006553f100ffffffffffffffffffffffff" < a.as_str());
    }
}
