//! ACME orders, authorizations and challenges (RFC 8555 §7.4, §7.5): orders for DNS names the
//! profile allows and the account's EAB key covers, validation in the background, finalize
//! through the RA's issuance (approved once, when the key was minted), download with the
//! chain, and revocation by the ordering account or the certificate's key.

use std::sync::Arc;

use ca_core::crl::RevocationReason;
use ca_core::csr::VerifiedCsr;
use ca_core::jws::Jwk;
use serde_json::{json, Value};
use x509_cert::ext::pkix::name::GeneralName;

use super::eab::patterns_of;
use super::{AcmeError, AcmeService, Authenticated, Base};
use crate::error::ServiceError;
use crate::ra::{OnStore, Requester, Submission, Submitted};
use crate::store::acme_rows::AcmeRows;
use crate::store::ids::new_ordered_id;
use crate::store::models::{AcmeAccountRow, AcmeAuthorizationRow, AcmeOrderRow};
use crate::store::request_rows::RequestRows;

/// Seconds an order and its authorizations stay usable.
const ORDER_SECS: i64 = 7 * 86_400;
/// Most identifiers per order.
const MAX_IDENTIFIERS: usize = 20;
/// The challenge types offered for every DNS name.
pub const CHALLENGE_TYPES: [&str; 2] = ["http-01", "tls-alpn-01"];

fn identifiers_of(order: &AcmeOrderRow) -> Vec<String> {
    serde_json::from_str(&order.identifiers).unwrap_or_default()
}

fn authz_status(row: &AcmeAuthorizationRow, now: i64) -> &str {
    match row.status.as_str() {
        "pending" | "processing" if row.expires_at <= now => "expired",
        "processing" => "pending",
        other => other,
    }
}

fn challenge_view(base: &Base, row: &AcmeAuthorizationRow, kind: &str) -> Value {
    let mine = row.challenge_type.as_deref() == Some(kind);
    let status = match (mine, row.status.as_str()) {
        (true, "processing") => "processing",
        (true, "valid") => "valid",
        (true, "invalid") => "invalid",
        _ => "pending",
    };
    let mut view = json!({
        "type": kind,
        "url": base.url(&format!("chall/{}/{kind}", row.id)),
        "status": status,
        "token": row.token,
    });
    if mine {
        if let Some(at) = row.validated_at {
            view["validated"] = json!(crate::api::rfc3339(at));
        }
        if let Some(error) = row
            .error
            .as_deref()
            .and_then(|e| serde_json::from_str::<Value>(e).ok())
        {
            view["error"] = error;
        }
    }
    view
}

fn authz_view(base: &Base, row: &AcmeAuthorizationRow, now: i64) -> Value {
    let challenges: Vec<Value> = CHALLENGE_TYPES
        .iter()
        .map(|kind| challenge_view(base, row, kind))
        .collect();
    json!({
        "identifier": {"type": "dns", "value": row.identifier},
        "status": authz_status(row, now),
        "expires": crate::api::rfc3339(row.expires_at),
        "challenges": challenges,
    })
}

/// The public key of a certificate as a JWK, to compare with a revocation's signer.
fn jwk_of_certificate(der: &[u8]) -> Option<Jwk> {
    let cert = openssl::x509::X509::from_der(der).ok()?;
    let key = cert.public_key().ok()?;
    match key.id() {
        openssl::pkey::Id::EC => {
            let ec = key.ec_key().ok()?;
            let nid = ec.group().curve_name()?;
            let (crv, size) = match nid {
                openssl::nid::Nid::X9_62_PRIME256V1 => ("P-256", 32),
                openssl::nid::Nid::SECP384R1 => ("P-384", 48),
                _ => return None,
            };
            let mut ctx = openssl::bn::BigNumContext::new().ok()?;
            let (mut x, mut y) = (
                openssl::bn::BigNum::new().ok()?,
                openssl::bn::BigNum::new().ok()?,
            );
            ec.public_key()
                .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
                .ok()?;
            Some(Jwk::Ec {
                crv: crv.into(),
                x: x.to_vec_padded(size).ok()?,
                y: y.to_vec_padded(size).ok()?,
            })
        }
        openssl::pkey::Id::RSA => {
            let rsa = key.rsa().ok()?;
            Some(Jwk::Rsa {
                n: rsa.n().to_vec(),
                e: rsa.e().to_vec(),
            })
        }
        openssl::pkey::Id::ED25519 => Some(Jwk::Ed25519 {
            x: key.raw_public_key().ok()?,
        }),
        _ => None,
    }
}

/// What a finalize hands from its checks to its issuance.
pub struct Finalizing {
    /// The order.
    pub order_id: String,
    /// The submitted issuance.
    pub submitted: Submitted,
}

impl AcmeService {
    fn owned_order(
        &self,
        request: &Authenticated,
        id: &str,
    ) -> Result<(AcmeOrderRow, AcmeAccountRow), AcmeError> {
        let account = request.account()?.clone();
        let order = self
            .authority
            .conn()?
            .acme_order(id)?
            .filter(|o| o.account_id == account.id)
            .ok_or_else(|| AcmeError::new("malformed", 404, "no such order"))?;
        Ok((order, account))
    }

    /// The order's current status, moving pending to ready or invalid as its authorizations
    /// settle, and anything unfinished past its expiry to invalid.
    fn settle_order(
        &self,
        order: &mut AcmeOrderRow,
    ) -> Result<Vec<AcmeAuthorizationRow>, AcmeError> {
        let now = self.authority.now().as_secs() as i64;
        let mut conn = self.authority.conn()?;
        let authorizations = conn.order_authorizations(&order.id)?;
        let next = match order.status.as_str() {
            "pending" | "ready" if order.expires_at <= now => Some("invalid"),
            "pending" => {
                let states: Vec<&str> = authorizations
                    .iter()
                    .map(|a| authz_status(a, now))
                    .collect();
                if states.iter().all(|s| *s == "valid") {
                    Some("ready")
                } else if states.iter().any(|s| !matches!(*s, "valid" | "pending")) {
                    Some("invalid")
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(next) = next {
            let error = (next == "invalid").then(|| {
                json!({"type": "urn:ietf:params:acme:error:unauthorized",
                       "detail": "an authorization failed or expired", "status": 403})
                .to_string()
            });
            if conn.move_order(&order.id, &order.status, next, error.as_deref())? {
                order.status = next.into();
                order.error = error;
            } else if let Some(fresh) = conn.acme_order(&order.id)? {
                *order = fresh;
            }
        }
        Ok(authorizations)
    }

    fn order_view(&self, base: &Base, order: &mut AcmeOrderRow) -> Result<Value, AcmeError> {
        let authorizations = self.settle_order(order)?;
        let identifiers: Vec<Value> = identifiers_of(order)
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        let mut view = json!({
            "status": order.status,
            "expires": crate::api::rfc3339(order.expires_at),
            "identifiers": identifiers,
            "authorizations": authorizations.iter().map(|a| base.url(&format!("authz/{}", a.id))).collect::<Vec<_>>(),
            "finalize": base.url(&format!("order/{}/finalize", order.id)),
        });
        if order.status == "valid" {
            view["certificate"] = json!(base.url(&format!("cert/{}", order.id)));
        }
        if let Some(replaces) = &order.replaces {
            view["replaces"] = json!(replaces);
        }
        if let Some(error) = order
            .error
            .as_deref()
            .and_then(|e| serde_json::from_str::<Value>(e).ok())
        {
            view["error"] = error;
        }
        Ok(view)
    }

    /// `newOrder`: DNS names only, each allowed by the profile and covered by the account's
    /// EAB key; one authorization per name.
    pub fn new_order(
        &self,
        base: &Base,
        request: Authenticated,
    ) -> Result<(String, Value), AcmeError> {
        let account = request.account()?.clone();
        let payload = request.json()?;
        if payload.get("notBefore").is_some() || payload.get("notAfter").is_some() {
            return Err(AcmeError::malformed(
                "notBefore and notAfter are set by the profile, not the order",
            ));
        }
        let items = payload
            .get("identifiers")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty() && l.len() <= MAX_IDENTIFIERS)
            .ok_or_else(|| {
                AcmeError::malformed(format!("identifiers must list 1-{MAX_IDENTIFIERS} names"))
            })?;
        let profile = self.profile(&base.profile)?;
        let mut conn = self.authority.conn()?;
        let eab = conn
            .eab(&account.eab_id)?
            .ok_or_else(|| ServiceError::Internal("the account's EAB key is gone".into()))?;
        if eab.revoked_at.is_some() {
            return Err(AcmeError::unauthorized("the account's EAB key is revoked"));
        }
        let patterns = patterns_of(&eab);
        let mut names: Vec<String> = Vec::new();
        for item in items {
            let kind = item.get("type").and_then(Value::as_str);
            let value = item.get("value").and_then(Value::as_str).unwrap_or("");
            if kind != Some("dns") {
                return Err(AcmeError::new(
                    "unsupportedIdentifier",
                    400,
                    "only dns identifiers are issued",
                ));
            }
            let name = value.to_ascii_lowercase();
            let shown = ca_core::text::escape_untrusted(value, 80);
            if name.starts_with("*.") {
                return Err(AcmeError::new(
                    "rejectedIdentifier",
                    400,
                    format!("{shown}: wildcard names are not issued"),
                ));
            }
            if !profile.dns_name_allowed(&name) {
                return Err(AcmeError::new(
                    "rejectedIdentifier",
                    400,
                    format!(
                        "{shown} is not under profile {}'s allowed domains",
                        profile.id()
                    ),
                ));
            }
            if !patterns.iter().any(|p| p.matches(&name)) {
                return Err(AcmeError::new(
                    "rejectedIdentifier",
                    400,
                    format!("{shown} is outside this account's External Account Binding scope"),
                ));
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let replaces = match payload.get("replaces") {
            None => None,
            Some(Value::String(id)) => {
                let (ca, serial) = self.certificate_of_cert_id(id)?;
                let row = conn
                    .certificate(&ca, &serial)?
                    .ok_or_else(|| AcmeError::malformed("replaces names an unknown certificate"))?;
                let owner = match &row.request_id {
                    Some(r) => conn.order_of_request(r)?,
                    None => None,
                };
                if owner.is_none_or(|(_, a)| a.id != account.id) {
                    return Err(AcmeError::unauthorized(
                        "replaces names a certificate this account did not order",
                    ));
                }
                if conn.order_replacing(id)?.is_some() {
                    return Err(AcmeError::new(
                        "alreadyReplaced",
                        409,
                        "another order already replaces this certificate",
                    ));
                }
                Some(id.clone())
            }
            Some(_) => return Err(AcmeError::malformed("replaces must be a string")),
        };
        let now = self.authority.now().as_secs() as i64;
        let now_ms = self.authority.clock.now_ms();
        let order = AcmeOrderRow {
            id: new_ordered_id("ord", now_ms)?,
            account_id: account.id.clone(),
            status: "pending".into(),
            identifiers: serde_json::to_string(&names)
                .map_err(|e| ServiceError::Internal(e.to_string()))?,
            expires_at: now + ORDER_SECS,
            created_at: now,
            request_id: None,
            error: None,
            replaces,
        };
        let mut authorizations = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let mut token = [0u8; 32];
            self.authority
                .random
                .fill(&mut token)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            authorizations.push(AcmeAuthorizationRow {
                id: format!("{}-{i}", new_ordered_id("authz", now_ms)?),
                order_id: order.id.clone(),
                identifier: name.clone(),
                status: "pending".into(),
                token: ca_core::jws::b64url(&token),
                expires_at: order.expires_at,
                challenge_type: None,
                validated_at: None,
                error: None,
            });
        }
        crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            conn.insert_order(&order, &authorizations)?;
            Ok(())
        })?;
        drop(conn);
        let mut order = order;
        let view = self.order_view(base, &mut order)?;
        Ok((base.url(&format!("order/{}", order.id)), view))
    }

    /// `POST /order/{id}` (POST-as-GET).
    pub fn order(&self, base: &Base, id: &str, request: Authenticated) -> Result<Value, AcmeError> {
        let (mut order, _) = self.owned_order(&request, id)?;
        self.order_view(base, &mut order)
    }

    fn owned_authorization(
        &self,
        request: &Authenticated,
        id: &str,
    ) -> Result<AcmeAuthorizationRow, AcmeError> {
        let account = request.account()?;
        self.authority
            .conn()?
            .acme_authorization(id)?
            .filter(|(_, order)| order.account_id == account.id)
            .map(|(authz, _)| authz)
            .ok_or_else(|| AcmeError::new("malformed", 404, "no such authorization"))
    }

    /// `POST /authz/{id}`: the authorization, or its deactivation by the client.
    pub fn authorization(
        &self,
        base: &Base,
        id: &str,
        request: Authenticated,
    ) -> Result<Value, AcmeError> {
        let mut authz = self.owned_authorization(&request, id)?;
        let now = self.authority.now().as_secs() as i64;
        if !request.is_get() {
            let payload = request.json()?;
            if payload.get("status").and_then(Value::as_str) != Some("deactivated") {
                return Err(AcmeError::malformed(
                    "an authorization can only be deactivated",
                ));
            }
            let from = authz.status.clone();
            if matches!(from.as_str(), "pending" | "valid") {
                let mut changed = authz.clone();
                changed.status = "deactivated".into();
                if self
                    .authority
                    .conn()?
                    .settle_authorization(id, &from, &changed)?
                {
                    authz = changed;
                }
            }
        }
        Ok(authz_view(base, &authz, now))
    }

    /// `POST /chall/{authz}/{type}`: `{}` starts the validation (in the background; the
    /// client polls), an empty payload shows the challenge. Answers the challenge and the
    /// authorization's URL (Link rel="up").
    pub fn challenge(
        self: &Arc<Self>,
        base: &Base,
        authz_id: &str,
        kind: &str,
        request: Authenticated,
    ) -> Result<(Value, String), AcmeError> {
        if !CHALLENGE_TYPES.contains(&kind) {
            return Err(AcmeError::new("malformed", 404, "no such challenge"));
        }
        let mut authz = self.owned_authorization(&request, authz_id)?;
        let up = base.url(&format!("authz/{authz_id}"));
        let now = self.authority.now().as_secs() as i64;
        if !request.is_get() && authz_status(&authz, now) == "pending" && authz.status == "pending"
        {
            let account = request.account()?;
            let slot = self.validation_slot().ok_or_else(|| {
                AcmeError::new(
                    "rateLimited",
                    503,
                    "too many validations are running; retry shortly",
                )
            })?;
            let mut processing = authz.clone();
            processing.status = "processing".into();
            processing.challenge_type = Some(kind.to_string());
            if self
                .authority
                .conn()?
                .settle_authorization(authz_id, "pending", &processing)?
            {
                authz = processing.clone();
                let key_authorization = format!("{}.{}", authz.token, account.key_thumbprint);
                let service = self.clone();
                std::thread::Builder::new()
                    .name("acme-validation".into())
                    .spawn(move || {
                        let _slot = slot;
                        service.run_validation(processing, key_authorization);
                    })
                    .map_err(|e| ServiceError::Internal(e.to_string()))?;
            }
        }
        Ok((challenge_view(base, &authz, kind), up))
    }

    /// Validates one authorization and records the outcome.
    fn run_validation(&self, mut authz: AcmeAuthorizationRow, key_authorization: String) {
        let kind = authz.challenge_type.clone().unwrap_or_default();
        let outcome = super::validate::validate(
            &kind,
            &authz.identifier,
            &authz.token,
            &key_authorization,
            &self.authority.config,
            &self.resolve,
        );
        let now = self.authority.now().as_secs() as i64;
        match &outcome {
            Ok(()) => {
                authz.status = "valid".into();
                authz.validated_at = Some(now);
            }
            Err(problem) => {
                authz.status = "invalid".into();
                authz.error = Some(problem.body().to_string());
            }
        }
        tracing::info!(authz = %authz.id, name = %authz.identifier, challenge = %kind,
            valid = outcome.is_ok(), "ACME validation finished");
        let recorded = self
            .authority
            .conn()
            .and_then(|mut c| Ok(c.settle_authorization(&authz.id, "processing", &authz)?));
        if let Err(e) = recorded {
            tracing::error!(error = %e, authz = %authz.id, "recording an ACME validation failed");
        }
    }

    /// `finalize`, first half: the order is ready and belongs to the account, the CSR names
    /// exactly the order's names; then the issuance is submitted (approved: the EAB key's
    /// officer approved the account's scope) and the order moves to processing.
    pub fn finalize(
        &self,
        base: &Base,
        id: &str,
        request: Authenticated,
    ) -> Result<Finalizing, AcmeError> {
        let (mut order, account) = self.owned_order(&request, id)?;
        self.settle_order(&mut order)?;
        if order.status != "ready" {
            return Err(AcmeError::new(
                "orderNotReady",
                403,
                format!("the order is {}, not ready", order.status),
            ));
        }
        let payload = request.json()?;
        let csr_text = payload
            .get("csr")
            .and_then(Value::as_str)
            .ok_or_else(|| AcmeError::malformed("the payload has no csr"))?;
        let csr_der = ca_core::jws::b64url_decode(csr_text)
            .map_err(|_| AcmeError::new("badCSR", 400, "the csr is not base64url DER"))?;
        let profile = self.profile(&base.profile)?;
        let csr = VerifiedCsr::parse_remembering(
            &csr_der,
            profile.min_rsa_bits(),
            &self.authority.csr_signatures,
        )
        .map_err(|e| AcmeError::new("badCSR", 400, e.to_string()))?;
        let mut wanted = identifiers_of(&order);
        wanted.sort();
        let mut named: Vec<String> = Vec::new();
        for san in csr.requested_sans() {
            match san {
                GeneralName::DnsName(n) => {
                    let n = n.as_str().to_ascii_lowercase();
                    if !named.contains(&n) {
                        named.push(n);
                    }
                }
                _ => {
                    return Err(AcmeError::new(
                        "badCSR",
                        400,
                        "the CSR may name only the order's DNS names",
                    ))
                }
            }
        }
        named.sort();
        if named != wanted {
            return Err(AcmeError::new(
                "badCSR",
                400,
                format!("the CSR names {named:?}; the order is for {wanted:?}"),
            ));
        }
        let mut conn = self.authority.conn()?;
        let eab = conn
            .eab(&account.eab_id)?
            .ok_or_else(|| ServiceError::Internal("the account's EAB key is gone".into()))?;
        if eab.revoked_at.is_some() {
            return Err(AcmeError::unauthorized("the account's EAB key is revoked"));
        }
        let officer = conn.user_row(&eab.created_by)?;
        if !conn.move_order(&order.id, "ready", "processing", None)? {
            return Err(AcmeError::new(
                "orderNotReady",
                403,
                "the order is being finalized",
            ));
        }
        drop(conn);
        let order_id = order.id.clone();
        let hook: OnStore = Arc::new(move |conn, request_id, _now| {
            if conn.order_issued(&order_id, request_id)? {
                Ok(())
            } else {
                Err(ServiceError::Conflict(
                    "the order was finalized twice".into(),
                ))
            }
        });
        let requester = Requester {
            user_id: officer.id.clone(),
            username: officer.username.clone(),
            actor: format!("acme:{}", account.id),
        };
        let submitted = self.authority.submit_checked(
            &requester,
            profile,
            &csr,
            Submission {
                justification: format!(
                    "ACME order {} by account {} (EAB key {} minted by {}: {})",
                    order.id, account.id, eab.id, officer.username, eab.label
                ),
                work_order: None,
                window: None,
                on_store: Some(hook),
                approved: true,
                duplicates: ca_core::profile::DuplicatePolicy::Allow,
            },
        );
        match submitted {
            Ok(submitted) => Ok(Finalizing {
                order_id: order.id,
                submitted,
            }),
            Err(e) => {
                self.unfinalize(&order.id);
                Err(match e {
                    ServiceError::Internal(_) => e.into(),
                    other => AcmeError::new("badCSR", 400, other.to_string()),
                })
            }
        }
    }

    /// A finalize whose issuance failed: the order is ready again for a corrected CSR.
    pub fn unfinalize(&self, order_id: &str) {
        if let Ok(mut conn) = self.authority.conn() {
            let _ = conn.move_order(order_id, "processing", "ready", None);
        }
    }

    /// `POST /cert/{order}`: the certificate and the issuing CA's chain below the root
    /// (`application/pem-certificate-chain`).
    pub fn certificate(&self, id: &str, request: Authenticated) -> Result<String, AcmeError> {
        let (order, _) = self.owned_order(&request, id)?;
        let request_id = order
            .request_id
            .filter(|_| order.status == "valid")
            .ok_or_else(|| AcmeError::new("malformed", 404, "the order has no certificate"))?;
        let mut conn = self.authority.conn()?;
        let row = conn
            .request(&request_id)?
            .ok_or_else(|| ServiceError::Internal("the order's request is gone".into()))?;
        let (Some(ca), Some(serial)) = (row.ca_id, row.certificate_serial) else {
            return Err(AcmeError::new(
                "malformed",
                404,
                "the certificate is not issued yet",
            ));
        };
        let der = conn
            .certificate_der(&ca, &serial)?
            .ok_or_else(|| AcmeError::new("malformed", 404, "the certificate is not issued yet"))?;
        let mut pem = pem_block(&der);
        let chain = self.authority.issuers.certificates().chain_der(&ca);
        // The chain up to, not including, the root: relying parties hold the root already.
        for cert in chain.iter().take(chain.len().saturating_sub(1)) {
            pem.push_str(&pem_block(cert));
        }
        Ok(pem)
    }

    /// `revokeCert`: by the account that ordered the certificate, or signed by the
    /// certificate's own key (RFC 8555 §7.6).
    pub fn revoke(&self, request: Authenticated) -> Result<(), AcmeError> {
        let payload = request.json()?;
        let der = payload
            .get("certificate")
            .and_then(Value::as_str)
            .and_then(|c| ca_core::jws::b64url_decode(c).ok())
            .ok_or_else(|| AcmeError::malformed("certificate must be base64url DER"))?;
        let reason = match payload.get("reason") {
            None => RevocationReason::Unspecified,
            Some(v) => match v.as_u64() {
                Some(0) => RevocationReason::Unspecified,
                Some(1) => RevocationReason::KeyCompromise,
                Some(3) => RevocationReason::AffiliationChanged,
                Some(4) => RevocationReason::Superseded,
                Some(5) => RevocationReason::CessationOfOperation,
                _ => {
                    return Err(AcmeError::new(
                        "badRevocationReason",
                        400,
                        "reasons 0, 1, 3, 4 and 5 are accepted",
                    ))
                }
            },
        };
        use der::Decode;
        let cert = x509_cert::Certificate::from_der(&der)
            .map_err(|_| AcmeError::malformed("the certificate does not parse"))?;
        let ca = self
            .authority
            .ca_named(&cert.tbs_certificate.issuer)
            .ok_or_else(|| AcmeError::new("malformed", 404, "not a certificate of this CA"))?;
        let serial = ca_core::serial::serial_hex(&cert.tbs_certificate.serial_number);
        let mut conn = self.authority.conn()?;
        let row = conn
            .certificate(&ca, &serial)?
            .filter(|r| r.der.as_deref() == Some(der.as_slice()))
            .ok_or_else(|| AcmeError::new("malformed", 404, "not a certificate of this CA"))?;
        let by_key = jwk_of_certificate(&der).as_ref() == Some(&request.key);
        let owner = match (&request.account, &row.request_id) {
            (Some(_), Some(r)) => conn.order_of_request(r)?,
            _ => None,
        };
        let by_account = match (&request.account, &owner) {
            (Some(account), Some((_, orderer))) => orderer.id == account.id,
            _ => false,
        };
        let (actor, how) = if by_account {
            let account = request.account()?;
            (format!("acme:{}", account.id), "ordering account")
        } else if by_key {
            (format!("acme:certificate-key:{serial}"), "certificate key")
        } else {
            return Err(AcmeError::unauthorized(
                "the request is signed by neither the ordering account nor the certificate's key",
            ));
        };
        drop(conn);
        let revoked = self.authority.revoke_for_protocol(
            &ca,
            &serial,
            reason,
            &actor,
            json!({"via": "acme", "authorized_by": how}),
        )?;
        if !revoked {
            return Err(AcmeError::new(
                "alreadyRevoked",
                400,
                "the certificate is already revoked",
            ));
        }
        Ok(())
    }
}

/// One certificate as PEM.
fn pem_block(der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
