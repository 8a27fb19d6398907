//! The registration authority: the workflow, free of HTTP — who may request what, the approval
//! rules, issuance (store the serial and TBS → sign → store the certificate, update the request
//! and audit in one transaction), revocation decisions, request and certificate views, audit
//! queries. It composes the other services: it asks `accounts` who a caller is and checks
//! step-up codes there, signs through `ca`'s issuers, and has `ocsp` and `crl` re-sign and
//! republish. Handlers call these and map the errors.
//!
//! `submit` (requests and issuance), `decide` (approvals, expiry), `views` (requests and
//! certificates as the API shows them), `revocation` (revoke, hold, release), `audit` (audit
//! queries), `audit_checkpoint` (signed checkpoints), `review` (the decoded CSR a reviewer sees).

mod activate;
pub mod audit;
pub mod audit_checkpoint;
mod break_glass;
mod challenge;
mod decide;
mod enrollment;
mod leavers;
mod notices;
mod renew;
pub mod review;
mod revocation;
mod submit;
mod vendors;
mod views;

pub use enrollment::DeviceProof;
pub use revocation::StatusChange;
pub use submit::{Issuing, Submitted};
pub(crate) use submit::{OnStore, Requester, Submission};

use std::collections::BTreeMap;
use std::sync::Arc;

use ca_core::ca::CertificateAuthority;
use ca_core::clock::Clock;
use ca_core::key::SoftwareKey;
use ca_core::profile::Profile;
use ca_core::random::RandomSource;
use ca_core::signature_memo::SignatureMemo;
use ca_core::time::UnixTime;
use zeroize::Zeroizing;

use crate::accounts::{Accounts, AccountsParts};
use crate::api::*;
use crate::ca::{CaCertificates, Issuers};
use crate::config::Config;
use crate::crl::CrlService;
use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::ocsp::{OcspParts, OcspService};
use crate::secrets::DataKey;
use crate::store::checkout::{checkout, Held};
use crate::store::group_commit::GroupCommit;
use crate::store::DbPool;

/// One page of a list: its items, how many match in all, and the cursor of the next page
/// (`None` on the last).
#[derive(Debug)]
pub struct Page<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// How many match the filters in all.
    pub total: i64,
    /// Where the next page starts.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// A page of nothing.
    pub fn empty() -> Self {
        Page {
            items: Vec::new(),
            total: 0,
            next: None,
        }
    }
}

/// A page size asked for: 1-1000, `default` when none.
pub(crate) fn page_limit(asked: Option<u32>, default: i64) -> Result<i64, ServiceError> {
    match asked {
        None => Ok(default),
        Some(n @ 1..=1000) => Ok(i64::from(n)),
        Some(n) => Err(ServiceError::Invalid(format!(
            "limit must be 1-1000 (got {n})"
        ))),
    }
}

/// The running CA service.
pub struct Authority {
    /// Configuration.
    pub config: Config,
    pub(crate) pool: DbPool,
    /// The CAs (the only holder of CA keys) and every CA certificate.
    pub issuers: Arc<Issuers>,
    pub(crate) profiles: BTreeMap<String, Profile>,
    /// OCSP: responder certificates, pre-signed responses, answers.
    pub ocsp: Arc<OcspService>,
    /// CRLs: publication and the published files.
    pub crls: Arc<CrlService>,
    /// An OCSP-only instance: no API, no CA keys, only the delegated responder keys.
    pub(crate) ocsp_only: bool,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Where serials come from.
    pub(crate) random: Arc<dyn RandomSource>,
    /// The group-commit writer the issuance path's writes go through.
    writer: Arc<GroupCommit>,
    /// CSRs whose signature verified before (a re-issued terminal resends the same CSR).
    pub(crate) csr_signatures: SignatureMemo,
    /// The key that signs audit checkpoints (`None` on an OCSP-only instance).
    pub(crate) audit_key: Option<SoftwareKey>,
    /// Users, sessions, step-up, account administration.
    pub accounts: Arc<Accounts>,
    /// The key that seals the SCEP RA keys, until the SCEP service takes it.
    enrollment_key: std::sync::Mutex<Option<DataKey>>,
    /// The key that seals ACME EAB keys, until the ACME service takes it.
    acme_key: std::sync::Mutex<Option<DataKey>>,
    /// Under a k-of-n quorum: whether the CA keys are open yet, and the shares given.
    pub(crate) activation: Option<Arc<crate::custody::quorum::Activation>>,
    /// The PKCS#11 token, when configured: where the SCEP RA keys are made.
    pub(crate) custody: Arc<crate::custody::keys::Custody>,
    /// Notices by e-mail and webhook (`[notify]`).
    pub notifier: Arc<crate::notify::Notifier>,
}

/// How many verified CSR signatures an instance remembers (about 200 KiB).
const CSR_SIGNATURES_REMEMBERED: usize = 4096;

/// Pieces `Authority::assemble` needs; built by `bootstrap`.
pub struct Parts {
    /// Configuration.
    pub config: Config,
    /// Database pool.
    pub pool: DbPool,
    /// Data key.
    pub data_key: DataKey,
    /// The CA passphrase: used while assembling (the audit key) and dropped with the parts;
    /// no service keeps it.
    pub passphrase: Zeroizing<String>,
    /// Seals the OCSP responders' keys.
    pub responder_key: DataKey,
    /// Seals the SCEP RA keys (handed on to the SCEP service).
    pub enrollment_key: Option<DataKey>,
    /// Seals ACME EAB keys (handed on to the ACME service).
    pub acme_key: Option<DataKey>,
    /// The clock every service reads (the system's; a test's `ManualClock`).
    pub clock: Arc<dyn Clock>,
    /// The random source serials, keys and TOTP secrets are drawn from (the system's; a
    /// test's `SeededRandom`).
    pub random: Arc<dyn RandomSource>,
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
    pub account_policy: crate::accounts::policy::AccountPolicy,
    /// The PKCS#11 token, when configured (one per process: its sign-in is process-wide).
    pub custody: Arc<crate::custody::keys::Custody>,
    /// Under a k-of-n quorum: the locked CA keys and the shares given so far.
    pub activation: Option<Arc<crate::custody::quorum::Activation>>,
}

impl Authority {
    /// Builds the service from its parts and makes sure every issuing CA has a current OCSP
    /// responder and a published CRL.
    pub fn assemble(parts: Parts) -> Result<Authority, ServiceError> {
        let clock = parts.clock;
        let random = parts.random;
        let metrics = Arc::new(Metrics::default());
        let shared_config = Arc::new(parts.config.clone());
        let certificates = Arc::new(CaCertificates::new(parts.root_id, parts.ca_certificates));
        let issuers = Arc::new(Issuers::new(parts.cas, certificates.clone()));
        let ocsp = Arc::new(OcspService::new(OcspParts {
            pool: parts.pool.clone(),
            config: shared_config.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            random: random.clone(),
            certificates,
            responder_profile: parts.profiles.get("ocsp-responder").cloned(),
            responder_key: parts.responder_key,
            ocsp_only: parts.ocsp_only,
            custody: parts.custody.clone(),
        })?);
        let crls = Arc::new(CrlService::new(
            parts.pool.clone(),
            shared_config.clone(),
            clock.clone(),
        ));
        let audit_key = if parts.ocsp_only {
            None
        } else {
            let mut conn = parts.pool.get()?;
            Some(crate::ra::audit_checkpoint::load_or_create_key(
                &mut conn,
                &parts.passphrase,
                &*random,
            )?)
        };
        let writer = Arc::new(
            GroupCommit::start(&parts.config.database_url())
                .map_err(|e| ServiceError::Internal(e.to_string()))?,
        );
        let accounts = Arc::new(Accounts::new(AccountsParts {
            pool: parts.pool.clone(),
            config: shared_config,
            metrics: metrics.clone(),
            clock: clock.clone(),
            random: random.clone(),
            data_key: parts.data_key,
            account_policy: parts.account_policy,
            writer: writer.clone(),
            directory: match &parts.config.directory {
                Some(config) => Some(Arc::new(
                    crate::accounts::directory::Directory::open(config)
                        .map_err(|e| ServiceError::Invalid(e.to_string()))?,
                )),
                None => None,
            },
        }));
        let notifier = Arc::new(crate::notify::Notifier::new(
            &parts.config.notify,
            parts.pool.clone(),
            clock.clone(),
            metrics.clone(),
        )?);
        let authority = Authority {
            notifier,
            config: parts.config,
            pool: parts.pool,
            issuers,
            profiles: parts.profiles,
            ocsp,
            crls,
            ocsp_only: parts.ocsp_only,
            metrics,
            clock,
            random,
            writer,
            csr_signatures: SignatureMemo::new(CSR_SIGNATURES_REMEMBERED),
            audit_key,
            accounts,
            enrollment_key: std::sync::Mutex::new(parts.enrollment_key),
            acme_key: std::sync::Mutex::new(parts.acme_key),
            activation: parts.activation,
            custody: parts.custody,
        };
        authority
            .metrics
            .locked
            .store(authority.locked(), std::sync::atomic::Ordering::Relaxed);
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
        if self.locked() {
            // No CA key yet: keep answering OCSP with the stored responders; CRLs and
            // responder renewals wait for activation (the stored CRLs keep being served).
            for id in &self.issuers.ids() {
                if let Err(e) = self.ocsp.ensure_responder(id, None) {
                    tracing::warn!(ca = %id, error = %e, "locked: no current OCSP responder");
                }
            }
            if sign_responses {
                self.ocsp.refresh_responses()?;
                self.ocsp.poll_responses()?;
            }
            return Ok(());
        }
        for id in &self.issuers.ids() {
            self.ocsp.ensure_responder(id, Some(&self.issuers))?;
            self.crls.publisher(&self.issuers).maintain_crls(id)?;
        }
        // A CA whose key is not here (an offline root): its delegated responder, certified in
        // a ceremony, answers for the certificates it issued; its CRL comes from the ceremony.
        for id in self.issuers.certificates().all().keys() {
            if self.issuers.get(id).is_none() {
                if let Err(e) = self.ocsp.ensure_responder(id, None) {
                    tracing::warn!(ca = %id, error = %e, "no current OCSP responder for an offline CA: import a ceremony's renewal");
                }
            }
        }
        self.expire_requests()?;
        self.retire_renewed()?;
        if let Err(e) = self.break_glass_upkeep() {
            tracing::warn!(error = %e, "break-glass review upkeep failed");
        }
        if let Err(e) = self.checkpoint_audit(false) {
            tracing::warn!(error = %e, "signing an audit checkpoint failed");
        }
        if sign_responses {
            self.ocsp.refresh_responses()?;
            self.ocsp.poll_responses()?;
        }
        Ok(())
    }

    /// Hands the key that seals SCEP RA keys to the SCEP service (once).
    pub fn take_enrollment_key(&self) -> Option<DataKey> {
        self.enrollment_key.lock().ok()?.take()
    }

    /// Hands the key that seals ACME EAB keys to the ACME service (once).
    pub fn take_acme_key(&self) -> Option<DataKey> {
        self.acme_key.lock().ok()?.take()
    }

    /// The issuing CAs that profiles serving SCEP name.
    pub fn scep_issuing_cas(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .profiles
            .values()
            .filter(|p| p.enrollment().scep)
            .map(|p| p.issuing_ca().to_string())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The id of the CA whose certificate's subject is `issuer`.
    pub fn ca_named(&self, issuer: &x509_cert::name::Name) -> Option<String> {
        use ca_core::der::{Decode, Encode};
        let wanted = issuer.to_der().ok()?;
        self.issuers
            .certificates()
            .all()
            .iter()
            .find_map(|(id, der)| {
                let cert = x509_cert::Certificate::from_der(der).ok()?;
                (cert.tbs_certificate.subject.to_der().ok()? == wanted).then(|| id.clone())
            })
    }

    /// An issued certificate (DER) by issuer name and serial (SCEP GetCert).
    pub fn certificate_by_issuer_serial(
        &self,
        ias: &cms::cert::IssuerAndSerialNumber,
    ) -> Option<Vec<u8>> {
        use crate::store::request_rows::RequestRows;
        let ca = self.ca_named(&ias.issuer)?;
        let serial = ca_core::serial::serial_hex(&ias.serial_number);
        self.conn()
            .ok()?
            .certificate_der(&ca, &serial)
            .ok()
            .flatten()
    }

    /// The current complete CRL (DER) of the CA named `issuer` (SCEP GetCRL).
    pub fn crl_by_issuer(&self, issuer: &x509_cert::name::Name) -> Option<Vec<u8>> {
        let ca = self.ca_named(issuer)?;
        self.crls.crl(&ca).ok().map(|c| c.der.to_vec())
    }

    /// The group-commit writer's counters.
    pub fn writer_stats(&self) -> &Arc<crate::store::group_commit::Stats> {
        self.writer.stats()
    }

    /// A pooled connection.
    pub fn conn(&self) -> Result<Held, ServiceError> {
        Ok(checkout(&self.pool)?)
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

    /// The chain from `id` up to the root, leaf-most first.
    pub fn chain_pem(&self, id: &str) -> Option<String> {
        self.issuers.certificates().chain_pem(id)
    }

    // ---- requests ----
}

/// What a locked server answers where a CA key is needed.
pub const LOCKED: &str = "the CA is locked until its custodians activate it (ca-cli activate) / \
CA は管理者による起動（ca-cli activate）までロックされています";

impl Authority {
    /// Whether the CA keys wait for k-of-n activation.
    pub fn locked(&self) -> bool {
        self.activation.as_ref().is_some_and(|a| !a.unlocked())
    }

    /// Refuses with 503 "locked" while the CA keys wait for activation.
    pub fn require_unlocked(&self) -> Result<(), ServiceError> {
        if self.locked() {
            return Err(ServiceError::Unavailable(LOCKED.into()));
        }
        Ok(())
    }
}
