//! ACME orders, authorizations and challenges (RFC 8555 §7.4, §7.5): orders for DNS names the
//! profile allows and the account's EAB key covers, and validation in the background.
//! Finalize, download and revocation are in `issue.rs`.

use std::sync::Arc;

use serde_json::{json, Value};

use super::eab::patterns_of;
use super::{AcmeError, AcmeService, Authenticated, Base};
use crate::error::ServiceError;
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

/// The EAB key an account was registered with, refused once revoked (its orders stop).
pub(super) fn live_eab(
    conn: &mut crate::store::DbConnection,
    account: &AcmeAccountRow,
) -> Result<crate::store::models::EabKeyRow, AcmeError> {
    let eab = conn
        .eab(&account.eab_id)?
        .ok_or_else(|| ServiceError::Internal("the account's EAB key is gone".into()))?;
    if eab.revoked_at.is_some() {
        return Err(AcmeError::unauthorized("the account's EAB key is revoked"));
    }
    Ok(eab)
}

pub(super) fn identifiers_of(order: &AcmeOrderRow) -> Vec<String> {
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

impl AcmeService {
    pub(super) fn owned_order(
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
    pub(super) fn settle_order(
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
        let eab = live_eab(&mut conn, &account)?;
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
        self.order_of_account(base, id, request.account()?)
    }

    /// An order of `account` as the client sees it (after finalize, the answer to it).
    pub fn order_of_account(
        &self,
        base: &Base,
        id: &str,
        account: &AcmeAccountRow,
    ) -> Result<Value, AcmeError> {
        let mut order = self
            .authority
            .conn()?
            .acme_order(id)?
            .filter(|o| o.account_id == account.id)
            .ok_or_else(|| AcmeError::new("malformed", 404, "no such order"))?;
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
}
