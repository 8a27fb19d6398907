//! ACME (RFC 8555, with RFC 9773 renewal information) for profiles with `[enrollment] acme`:
//! accounts bound by an External Account Binding key a security officer minted for a profile
//! and name patterns, orders for those names only, http-01 and tls-alpn-01 validation to names
//! the profile allows, and issuance through the RA's workflow without a second approval (the
//! officer approved the service owner once, when minting the key).
//!
//! This module owns the protocol's state and checks; `http::acme` only moves bytes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ca_core::jws::{Jwk, JwsError, Signer, UnverifiedJws};
use serde_json::{json, Value};

use crate::config::ResolveOverride;
use crate::error::ServiceError;
use crate::ra::Authority;
use crate::secrets::DataKey;
use crate::store::acme_rows::AcmeRows;
use crate::store::models::AcmeAccountRow;

pub mod account;
pub mod eab;
pub mod issue;
pub mod order;
pub mod renewal_info;
pub mod validate;

/// Seconds a nonce stays usable.
const NONCE_SECS: i64 = 3600;
/// Validations in flight at once per instance; more get `rateLimited`.
const MAX_VALIDATIONS: usize = 64;

/// An ACME problem document (RFC 8555 §6.7, RFC 9457): an `urn:ietf:params:acme:error:` type,
/// an HTTP status and a detail that never carries secrets.
#[derive(Debug, Clone)]
pub struct AcmeError {
    /// The error type after `urn:ietf:params:acme:error:`.
    pub kind: &'static str,
    /// HTTP status.
    pub status: u16,
    /// What went wrong.
    pub detail: String,
    /// Extra members (`algorithms` for badSignatureAlgorithm).
    pub extra: Option<Value>,
}

impl AcmeError {
    /// A problem of `kind` with `status`.
    pub fn new(kind: &'static str, status: u16, detail: impl Into<String>) -> AcmeError {
        AcmeError {
            kind,
            status,
            detail: detail.into(),
            extra: None,
        }
    }

    /// `malformed` (400).
    pub fn malformed(detail: impl Into<String>) -> AcmeError {
        AcmeError::new("malformed", 400, detail)
    }

    /// `unauthorized` (403).
    pub fn unauthorized(detail: impl Into<String>) -> AcmeError {
        AcmeError::new("unauthorized", 403, detail)
    }

    /// The problem document.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "type": format!("urn:ietf:params:acme:error:{}", self.kind),
            "detail": self.detail,
            "status": self.status,
        });
        if let (Some(Value::Object(extra)), Some(object)) = (&self.extra, body.as_object_mut()) {
            for (k, v) in extra {
                object.insert(k.clone(), v.clone());
            }
        }
        body
    }
}

impl From<JwsError> for AcmeError {
    fn from(e: JwsError) -> AcmeError {
        match e {
            JwsError::Malformed(_) => AcmeError::malformed(e.to_string()),
            JwsError::BadAlgorithm(_) => AcmeError {
                extra: Some(json!({"algorithms": ca_core::jws::Algorithm::NAMES})),
                ..AcmeError::new("badSignatureAlgorithm", 400, e.to_string())
            },
            JwsError::BadKey(_) => AcmeError::new("badPublicKey", 400, e.to_string()),
            JwsError::BadSignature => AcmeError::malformed(e.to_string()),
        }
    }
}

impl From<ServiceError> for AcmeError {
    fn from(e: ServiceError) -> AcmeError {
        match &e {
            ServiceError::NotFound(_) => AcmeError::new("malformed", 404, e.to_string()),
            ServiceError::Unauthenticated | ServiceError::Forbidden(_) => {
                AcmeError::unauthorized(e.to_string())
            }
            ServiceError::Csr(_) | ServiceError::Issue(_) => {
                AcmeError::new("badCSR", 400, e.to_string())
            }
            ServiceError::Invalid(_) => AcmeError::malformed(e.to_string()),
            ServiceError::Conflict(_) => AcmeError::new("malformed", 409, e.to_string()),
            ServiceError::Unavailable(_) => AcmeError::new("serverInternal", 503, e.to_string()),
            ServiceError::Internal(detail) => {
                tracing::error!(error = %detail, "ACME request failed inside");
                AcmeError::new("serverInternal", 500, "internal error")
            }
            _ => AcmeError::unauthorized(e.to_string()),
        }
    }
}

impl From<diesel::result::Error> for AcmeError {
    fn from(e: diesel::result::Error) -> AcmeError {
        AcmeError::from(ServiceError::from(e))
    }
}

/// The URLs of one profile's directory as the client reached it (`https://<host>/acme/<p>`).
#[derive(Debug, Clone)]
pub struct Base {
    /// `https://<host>/acme/<profile>`.
    pub root: String,
    /// The profile id.
    pub profile: String,
}

impl Base {
    /// The URL of `path` under the directory's root.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.root)
    }
    /// An account's URL (its `kid`).
    pub fn account_url(&self, id: &str) -> String {
        self.url(&format!("account/{id}"))
    }
}

/// A request whose JWS verified: who signed and what they sent.
#[derive(Debug)]
pub struct Authenticated {
    /// The account, when the JWS named one by `kid` (or when a `jwk` is an account's key).
    pub account: Option<AcmeAccountRow>,
    /// The key that signed.
    pub key: Jwk,
    /// The payload bytes (empty for POST-as-GET).
    pub payload: Vec<u8>,
    /// The header's `url`.
    pub url: String,
}

impl Authenticated {
    /// The account, or `accountDoesNotExist`.
    pub fn account(&self) -> Result<&AcmeAccountRow, AcmeError> {
        self.account
            .as_ref()
            .ok_or_else(|| AcmeError::new("accountDoesNotExist", 400, "no such account"))
    }
    /// Whether the request is a POST-as-GET (empty payload).
    pub fn is_get(&self) -> bool {
        self.payload.is_empty()
    }
    /// The payload as a JSON object.
    pub fn json(&self) -> Result<Value, AcmeError> {
        let value: Value = serde_json::from_slice(&self.payload)
            .map_err(|_| AcmeError::malformed("the payload is not JSON"))?;
        if !value.is_object() {
            return Err(AcmeError::malformed("the payload is not a JSON object"));
        }
        Ok(value)
    }
}

/// The ACME service: one per server, shared by every profile's directory.
pub struct AcmeService {
    pub(crate) authority: Arc<Authority>,
    /// Seals EAB HMAC keys at rest.
    key: DataKey,
    resolve: Vec<ResolveOverride>,
    validations: AtomicUsize,
    /// When upkeep last forgot expired nonces (seconds, the authority's clock).
    purged_at: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for AcmeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AcmeService(..)")
    }
}

impl AcmeService {
    /// Builds the service with the key that seals EAB keys (taken from the authority).
    pub fn new(authority: Arc<Authority>) -> Result<AcmeService, ServiceError> {
        let key = authority
            .take_acme_key()
            .ok_or_else(|| ServiceError::Internal("the ACME key was already taken".into()))?;
        let resolve = authority
            .config
            .acme_resolve_overrides()
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(AcmeService {
            authority,
            key,
            resolve,
            validations: AtomicUsize::new(0),
            purged_at: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The profile of a directory, if it serves ACME.
    pub fn profile(&self, id: &str) -> Result<&ca_core::profile::Profile, AcmeError> {
        self.authority
            .profiles
            .get(id)
            .filter(|p| p.enrollment().acme)
            .ok_or_else(|| {
                AcmeError::new(
                    "malformed",
                    404,
                    format!(
                        "no ACME directory for {}",
                        ca_core::text::escape_untrusted(id, 64)
                    ),
                )
            })
    }

    /// The directory object (RFC 8555 §7.1.1, RFC 9773 §4).
    pub fn directory(&self, base: &Base) -> Result<Value, AcmeError> {
        let profile = self.profile(&base.profile)?;
        Ok(json!({
            "newNonce": base.url("new-nonce"),
            "newAccount": base.url("new-account"),
            "newOrder": base.url("new-order"),
            "revokeCert": base.url("revoke-cert"),
            "keyChange": base.url("key-change"),
            "renewalInfo": base.url("renewal-info"),
            "meta": {
                "externalAccountRequired": true,
                "website": "https://mamori.dev/",
                "profiles": { profile.id(): profile.description() },
            },
        }))
    }

    /// A fresh nonce, stored so that any instance can take it once.
    pub fn new_nonce(&self) -> Result<String, AcmeError> {
        let mut bytes = [0u8; 16];
        self.authority
            .random
            .fill(&mut bytes)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let nonce = ca_core::jws::b64url(&bytes);
        let now = self.authority.now().as_secs() as i64;
        self.authority
            .conn()?
            .insert_nonce(&nonce, now + NONCE_SECS)?;
        Ok(nonce)
    }

    /// Reads and verifies a JWS request sent to `url`: its shape, its `url`, its nonce (used up
    /// here), and its signature by the named account's key (`kid`) or by the `jwk` it carries
    /// (only where `jwk_allowed`: newAccount, revokeCert).
    pub fn authenticate(
        &self,
        base: &Base,
        url: &str,
        body: &[u8],
        jwk_allowed: bool,
    ) -> Result<Authenticated, AcmeError> {
        self.profile(&base.profile)?;
        let jws = UnverifiedJws::parse(body)?;
        if jws.header.url != url {
            return Err(AcmeError::unauthorized(
                "the JWS url is not the URL the request was sent to",
            ));
        }
        let nonce = jws
            .header
            .nonce
            .clone()
            .ok_or_else(|| AcmeError::new("badNonce", 400, "the JWS has no nonce"))?;
        let now = self.authority.now().as_secs() as i64;
        let mut conn = self.authority.conn()?;
        if nonce.len() > 64 || !conn.take_nonce(&nonce, now)? {
            return Err(AcmeError::new(
                "badNonce",
                400,
                "the nonce is unknown, used or expired",
            ));
        }
        let (account, key) = match &jws.header.signer {
            Signer::Key(jwk) => {
                if !jwk_allowed {
                    return Err(AcmeError::malformed(
                        "this request must be signed by an account (kid)",
                    ));
                }
                let account = conn.account_by_key(&base.profile, &jwk.thumbprint())?;
                (account, jwk.clone())
            }
            Signer::Account(kid) => {
                let prefix = base.account_url("");
                let id = kid
                    .strip_prefix(&prefix)
                    .filter(|id| !id.is_empty() && id.len() <= 64)
                    .ok_or_else(|| {
                        AcmeError::new(
                            "accountDoesNotExist",
                            400,
                            "the kid is not an account of this directory",
                        )
                    })?;
                let account = conn
                    .acme_account(id)?
                    .filter(|a| a.profile_id == base.profile)
                    .ok_or_else(|| AcmeError::new("accountDoesNotExist", 400, "no such account"))?;
                if account.status != "valid" {
                    return Err(AcmeError::unauthorized(format!(
                        "the account is {}",
                        account.status
                    )));
                }
                let key = Jwk::from_value(
                    &serde_json::from_str(&account.jwk)
                        .map_err(|e| ServiceError::Internal(e.to_string()))?,
                )?;
                (Some(account), key)
            }
        };
        drop(conn);
        let url = jws.header.url.clone();
        let payload = jws.verify(&key)?;
        Ok(Authenticated {
            account,
            key,
            payload,
            url,
        })
    }

    /// Takes a validation slot; `None` when too many run already.
    fn validation_slot(self: &Arc<Self>) -> Option<ValidationSlot> {
        let before = self.validations.fetch_add(1, Ordering::SeqCst);
        if before >= MAX_VALIDATIONS {
            self.validations.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(ValidationSlot(self.clone()))
    }

    /// Upkeep: forgets expired nonces, at most once a minute.
    pub fn maintain(&self) -> Result<(), ServiceError> {
        let now = self.authority.now().as_secs();
        if now < self.purged_at.load(Ordering::Relaxed) + 60 {
            return Ok(());
        }
        self.purged_at.store(now, Ordering::Relaxed);
        self.authority.conn()?.purge_nonces(now as i64)?;
        Ok(())
    }
}

/// One running validation; frees its slot when dropped.
struct ValidationSlot(Arc<AcmeService>);

impl Drop for ValidationSlot {
    fn drop(&mut self) {
        self.0.validations.fetch_sub(1, Ordering::SeqCst);
    }
}
