//! The OCSP service (RFC 6960, RFC 9919) for every CA, the root included: the delegated
//! responder certificates Mamori issues and renews itself (one per CA, each issued by that CA),
//! pre-signed responses for every unexpired certificate (stored in `ocsp_responses` under their
//! SHA-1 CertID and cached in memory), re-signed at once on revoke, hold and release and refreshed
//! at half their validity. A SHA-256, SHA-384 or SHA-512 CertID is answered from the same cached
//! response, re-signed once under that CertID and kept with it. Fresh signing only where a
//! request needs it (a nonce when `ocsp_nonce = "echo"`, several CertIDs, or an unusual CertID
//! encoding). It owns its cache and responder keys; the public listener holds it without the RA
//! or the accounts.
//!
//! `cache` holds what is served, `presign` signs and stores responses, `answer` answers requests,
//! `refresh` keeps the cache current (upkeep, polling other instances), `responder_cert` issues
//! and loads the responder certificates.

mod answer;
mod cache;
mod presign;
mod refresh;
mod responder_cert;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use ca_core::clock::Clock;
use ca_core::crl::RevocationReason;
use ca_core::ocsp::{IssuerHashes, Status};
use ca_core::random::RandomSource;
use ca_core::serial::parse_serial_hex;

use ca_core::profile::Profile;
use ca_core::time::UnixTime;
use cache::serial_key;

pub use answer::OcspAnswer;
pub(crate) use cache::SignedResponse;
pub use cache::{CachedResponse, OcspCache};
pub(crate) use presign::insert_response;
pub use responder_cert::{reseal_responder_keys, Responder};

use crate::ca::CaCertificates;
use crate::config::Config;
use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::secrets::DataKey;

use crate::store::checkout::{checkout, Held};
use crate::store::ocsp_rows::OcspRows;
use crate::store::status::CertificateStatus;
use crate::store::{DbConnection, DbPool};

/// The OCSP service's state.
pub struct OcspService {
    pool: DbPool,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// Where renewed responder keys and their certificates' serials come from.
    random: Arc<dyn RandomSource>,
    ocsp_cache: OcspCache,
    responders: RwLock<HashMap<String, Arc<Responder>>>,
    issuer_hashes: Vec<(String, IssuerHashes)>,
    /// A random number drawn at start that marks the OCSP responses this process stores
    /// (`ocsp_responses.origin`), so that its polls of the shared database skip them.
    origin: i64,
    ocsp_only: bool,
    root_id: String,
    responder_profile: Option<Profile>,
    /// Opens stored responder keys and seals renewed ones (derived from the CA passphrase, which
    /// this service never holds: the passphrase would open the CA keys too).
    responder_key: DataKey,
    /// With a token configured, responder keys are made and kept in it.
    custody: Arc<crate::custody::keys::Custody>,
}

/// What [`OcspService::new`] needs.
pub struct OcspParts {
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
    /// Every CA certificate (the service answers for each).
    pub certificates: Arc<CaCertificates>,
    /// The `ocsp-responder` profile (a CA instance renews responder certificates with it).
    pub responder_profile: Option<Profile>,
    /// The key that seals responder keys ([`DataKey::derive_with_responder_key`]).
    pub responder_key: DataKey,
    /// An OCSP-only instance: never issues a responder certificate.
    pub ocsp_only: bool,
    /// The PKCS#11 token responder keys are made in, when configured.
    pub custody: Arc<crate::custody::keys::Custody>,
}

impl OcspService {
    /// The service for every CA certificate in `issuers`.
    pub fn new(parts: OcspParts) -> Result<OcspService, ServiceError> {
        let mut issuer_hashes = Vec::new();
        // Every CA, the root too: relying parties that check the whole chain ask about the
        // issuing CA's certificate, which the root's delegated responder answers for.
        for (id, der) in parts.certificates.all() {
            let certificate = <x509_cert::Certificate as ca_core::der::Decode>::from_der(der)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            issuer_hashes.push((
                id.clone(),
                IssuerHashes::of(&certificate)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?,
            ));
        }
        Ok(OcspService {
            pool: parts.pool,
            config: parts.config,
            metrics: parts.metrics,
            clock: parts.clock,
            random: parts.random,
            ocsp_cache: OcspCache::default(),
            responders: RwLock::new(HashMap::new()),
            issuer_hashes,
            origin: new_origin()?,
            ocsp_only: parts.ocsp_only,
            root_id: parts.certificates.root_id().to_string(),
            responder_profile: parts.responder_profile,
            responder_key: parts.responder_key,
            custody: parts.custody,
        })
    }

    /// Ids of the CAs it answers for.
    pub fn ca_ids(&self) -> Vec<String> {
        self.issuer_hashes
            .iter()
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// How many responses the cache holds.
    pub fn cached_responses(&self) -> usize {
        self.ocsp_cache.len()
    }

    /// Whether this is an OCSP-only instance (no CA keys).
    pub fn ocsp_only(&self) -> bool {
        self.ocsp_only
    }

    /// An OCSP-only instance's upkeep: load (or wait for) each CA's responder certificate, and
    /// with `sign_responses` re-sign what is missing or stale.
    pub fn maintain_only(&self, sign_responses: bool) -> Result<(), ServiceError> {
        let root_id = self.root_id.clone();
        for id in &self.ca_ids() {
            match self.ensure_responder(id, None) {
                // A database from before the root had a delegated responder: the CA instance
                // issues one at its next start; until then the root's certificates get tryLater
                // here.
                Err(e) if *id == root_id => {
                    tracing::warn!(error = %e, "no OCSP responder for the root yet")
                }
                other => other?,
            }
        }
        if sign_responses {
            if let Err(e) = self.refresh_responses() {
                tracing::warn!(error = %e, "refreshing OCSP responses failed");
            }
        }
        Ok(())
    }

    fn conn(&self) -> Result<Held, ServiceError> {
        Ok(checkout(&self.pool)?)
    }

    fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// The thisUpdate and producedAt of a response signed now: the clock's time, but never
    /// before a response this process signed already nor before `floor` (the response it
    /// replaces), so a clock stepped back never makes a newer response look older than the one
    /// a relying party holds.
    fn signing_time(&self, floor: u64) -> UnixTime {
        let now = self.now().as_secs().max(floor);
        let previous = self
            .ocsp_cache
            .signed_up_to
            .fetch_max(now, std::sync::atomic::Ordering::SeqCst);
        UnixTime(now.max(previous))
    }

    fn ca_index(&self, ca_id: &str) -> Option<u16> {
        self.issuer_hashes
            .iter()
            .position(|(id, _)| id == ca_id)
            .map(|i| i as u16)
    }

    /// The current status of one certificate, from the database.
    pub(crate) fn status_of(
        &self,
        conn: &mut DbConnection,
        ca_id: &str,
        serial: &str,
    ) -> Result<Status, ServiceError> {
        let Some(stored) = conn.certificate_status(ca_id, serial)? else {
            return Ok(Status::Unknown);
        };
        Ok(match stored.status {
            Some(CertificateStatus::Valid) => Status::Good,
            Some(status) if status.is_revoked() => Status::Revoked {
                revoked_at: UnixTime(stored.revoked_at.unwrap_or(0).max(0) as u64),
                reason: stored
                    .reason
                    .as_deref()
                    .and_then(RevocationReason::parse)
                    .unwrap_or(RevocationReason::Unspecified),
            },
            _ => Status::Unknown,
        })
    }

    fn cached(&self, ca_id: &str, serial: &str) -> Option<Arc<CachedResponse>> {
        let index = self.ca_index(ca_id)?;
        let key = serial_key(parse_serial_hex(serial)?.as_bytes())?;
        self.ocsp_cache.map.read().ok()?.get(&(index, key)).cloned()
    }

    fn responder(&self, ca_id: &str) -> Result<Arc<Responder>, ServiceError> {
        self.responders
            .read()
            .ok()
            .and_then(|m| m.get(ca_id).cloned())
            .ok_or_else(|| ServiceError::Internal(format!("no OCSP responder for {ca_id}")))
    }
}

fn new_origin() -> Result<i64, ServiceError> {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&crate::secrets::random_bytes(8)?);
    Ok((u64::from_be_bytes(bytes) >> 1).max(1) as i64)
}
