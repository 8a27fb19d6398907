//! ACME accounts (RFC 8555 §7.3): creation with an External Account Binding, lookup by key,
//! contact updates, deactivation and key rollover.

use ca_core::jws::{FlattenedJws, Jwk, Signer, UnverifiedJws};
use serde_json::{json, Value};

use super::{AcmeError, AcmeService, Authenticated, Base};
use crate::error::ServiceError;
use crate::store::acme_rows::AcmeRows;
use crate::store::audit_log;
use crate::store::ids::new_ordered_id;
use crate::store::models::AcmeAccountRow;

/// Most contact URLs per account.
const MAX_CONTACTS: usize = 8;

/// What an account request answers: the account's URL, whether it was created, its object.
#[derive(Debug)]
pub struct AccountAnswer {
    /// The account URL (`Location`).
    pub location: String,
    /// 201 when created, 200 otherwise.
    pub created: bool,
    /// The account object.
    pub body: Value,
}

fn view(base: &Base, row: &AcmeAccountRow) -> Value {
    let contact: Value = serde_json::from_str(&row.contact).unwrap_or_else(|_| json!([]));
    json!({
        "status": row.status,
        "contact": contact,
        "orders": base.url(&format!("account/{}/orders", row.id)),
        "createdAt": crate::api::rfc3339(row.created_at),
    })
}

/// Checks a `contact` member: up to eight `mailto:` URLs of printable text (stored, never
/// contacted by Mamori itself).
fn contacts(value: Option<&Value>) -> Result<String, AcmeError> {
    let list = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(AcmeError::malformed("contact must be an array")),
    };
    if list.len() > MAX_CONTACTS {
        return Err(AcmeError::malformed(format!(
            "at most {MAX_CONTACTS} contacts"
        )));
    }
    let mut out = Vec::new();
    for item in list {
        let text = item
            .as_str()
            .ok_or_else(|| AcmeError::malformed("contacts are strings"))?;
        let address = text.strip_prefix("mailto:").ok_or_else(|| {
            AcmeError::new(
                "unsupportedContact",
                400,
                "only mailto: contacts are accepted",
            )
        })?;
        if address.is_empty()
            || address.len() > 254
            || !address.contains('@')
            || address.contains(',')
            || ca_core::text::has_unsafe(address)
            || address.chars().any(char::is_whitespace)
        {
            return Err(AcmeError::new(
                "invalidContact",
                400,
                "a contact is not a single e-mail address",
            ));
        }
        out.push(Value::String(text.to_string()));
    }
    Ok(Value::Array(out).to_string())
}

impl AcmeService {
    /// `newAccount`: returns an existing account of the key, or creates one bound to an EAB key
    /// the profile's officer minted (RFC 8555 §7.3, §7.3.4).
    pub fn new_account(
        &self,
        base: &Base,
        request: Authenticated,
    ) -> Result<AccountAnswer, AcmeError> {
        let payload = request.json()?;
        if let Some(existing) = &request.account {
            if existing.status != "valid" {
                return Err(AcmeError::unauthorized(format!(
                    "the account is {}",
                    existing.status
                )));
            }
            return Ok(AccountAnswer {
                location: base.account_url(&existing.id),
                created: false,
                body: view(base, existing),
            });
        }
        if payload.get("onlyReturnExisting").and_then(Value::as_bool) == Some(true) {
            return Err(AcmeError::new(
                "accountDoesNotExist",
                400,
                "no account has this key",
            ));
        }
        let eab = payload.get("externalAccountBinding").ok_or_else(|| {
            AcmeError::new(
                "externalAccountRequired",
                400,
                "accounts need an External Account Binding key from a security officer \
                 (ca-cli acme eab create)",
            )
        })?;
        let contact = contacts(payload.get("contact"))?;
        let kid = ca_core::jws::eab_key_id(eab, &request.url, &request.key)?;
        let profile = base.profile.clone();
        let mut conn = self.authority.conn()?;
        let row = conn
            .eab(&kid)?
            .filter(|r| r.profile_id == profile)
            .ok_or_else(|| AcmeError::unauthorized("unknown External Account Binding key"))?;
        let secret = self.eab_secret(&row)?;
        ca_core::jws::verify_eab_mac(eab, &secret)
            .map_err(|_| AcmeError::unauthorized("the External Account Binding does not verify"))?;
        let now = self.authority.now().as_secs() as i64;
        if row.revoked_at.is_some() || row.expires_at <= now || row.account_id.is_some() {
            return Err(AcmeError::unauthorized(
                "the External Account Binding key is used, expired or revoked",
            ));
        }
        let account = AcmeAccountRow {
            id: new_ordered_id("acct", self.authority.clock.now_ms())?,
            profile_id: profile,
            key_thumbprint: request.key.thumbprint(),
            jwk: request.key.canonical_json(),
            eab_id: row.id.clone(),
            status: "valid".into(),
            contact,
            created_at: now,
        };
        crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            if !conn.bind_eab(&row.id, &account.id, now)? {
                return Err(ServiceError::Forbidden(
                    "the External Account Binding key is already used".into(),
                ));
            }
            conn.insert_account(&account)?;
            audit_log::append(
                conn,
                now as u64,
                &format!("acme:{}", account.id),
                "acme.account.create",
                &account.id,
                json!({"profile": account.profile_id, "eab": row.id, "label": row.label,
                       "key_thumbprint": account.key_thumbprint}),
            )?;
            Ok(())
        })?;
        Ok(AccountAnswer {
            location: base.account_url(&account.id),
            created: true,
            body: view(base, &account),
        })
    }

    /// `POST /account/{id}`: the account (POST-as-GET), a contact update, or deactivation.
    pub fn update_account(
        &self,
        base: &Base,
        id: &str,
        request: Authenticated,
    ) -> Result<AccountAnswer, AcmeError> {
        let account = request.account()?.clone();
        if account.id != id {
            return Err(AcmeError::unauthorized("this is not your account"));
        }
        let mut account = account;
        if !request.is_get() {
            let payload = request.json()?;
            let now = self.authority.now().as_secs();
            let mut conn = self.authority.conn()?;
            if let Some(contact) = payload.get("contact") {
                account.contact = contacts(Some(contact))?;
                conn.set_account_contact(&account.id, &account.contact)?;
            }
            match payload.get("status").and_then(Value::as_str) {
                None => {}
                Some("deactivated") => {
                    crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
                        conn.set_account_status(&account.id, "deactivated")?;
                        audit_log::append(
                            conn,
                            now,
                            &format!("acme:{}", account.id),
                            "acme.account.deactivate",
                            &account.id,
                            json!({}),
                        )?;
                        Ok(())
                    })?;
                    account.status = "deactivated".into();
                }
                Some(_) => {
                    return Err(AcmeError::malformed(
                        "an account's status can only become deactivated",
                    ))
                }
            }
        }
        Ok(AccountAnswer {
            location: base.account_url(&account.id),
            created: false,
            body: view(base, &account),
        })
    }

    /// `POST /account/{id}/orders`: the account's order URLs, newest first.
    pub fn account_orders(
        &self,
        base: &Base,
        id: &str,
        request: Authenticated,
    ) -> Result<Value, AcmeError> {
        let account = request.account()?;
        if account.id != id {
            return Err(AcmeError::unauthorized("this is not your account"));
        }
        let ids = self.authority.conn()?.account_orders(id, 1000)?;
        let urls: Vec<String> = ids
            .iter()
            .map(|o| base.url(&format!("order/{o}")))
            .collect();
        Ok(json!({ "orders": urls }))
    }

    /// `keyChange` (RFC 8555 §7.3.5): the outer JWS by the account, the inner by the new key
    /// naming the account and its old key.
    pub fn key_change(&self, base: &Base, request: Authenticated) -> Result<Value, AcmeError> {
        let account = request.account()?.clone();
        let inner: FlattenedJws = serde_json::from_slice(&request.payload)
            .map_err(|_| AcmeError::malformed("the payload is not a flattened JWS"))?;
        let inner = UnverifiedJws::from_flattened(&inner)?;
        if inner.header.url != request.url {
            return Err(AcmeError::malformed(
                "the inner JWS's url differs from the outer one's",
            ));
        }
        let Signer::Key(new_key) = inner.header.signer.clone() else {
            return Err(AcmeError::malformed("the inner JWS must carry the new jwk"));
        };
        let payload = inner.verify(&new_key)?;
        let payload: Value = serde_json::from_slice(&payload)
            .map_err(|_| AcmeError::malformed("the inner payload is not JSON"))?;
        if payload.get("account").and_then(Value::as_str)
            != Some(base.account_url(&account.id).as_str())
        {
            return Err(AcmeError::malformed(
                "the inner payload names another account",
            ));
        }
        let old = payload
            .get("oldKey")
            .ok_or_else(|| AcmeError::malformed("the inner payload has no oldKey"))?;
        if Jwk::from_value(old)? != request.key {
            return Err(AcmeError::malformed("oldKey is not the account's key"));
        }
        let mut conn = self.authority.conn()?;
        if let Some(other) = conn.account_by_key(&base.profile, &new_key.thumbprint())? {
            return Err(AcmeError {
                extra: Some(json!({"location": base.account_url(&other.id)})),
                ..AcmeError::new("malformed", 409, "the new key belongs to another account")
            });
        }
        let now = self.authority.now().as_secs();
        crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            conn.set_account_key(&account.id, &new_key.thumbprint(), &new_key.canonical_json())?;
            audit_log::append(
                conn,
                now,
                &format!("acme:{}", account.id),
                "acme.account.key-change",
                &account.id,
                json!({"old_thumbprint": account.key_thumbprint, "new_thumbprint": new_key.thumbprint()}),
            )?;
            Ok(())
        })
        .map_err(|e| match e {
            ServiceError::Internal(d) if d.to_lowercase().contains("unique") => {
                AcmeError::new("malformed", 409, "the new key belongs to another account")
            }
            other => other.into(),
        })?;
        let mut account = account;
        account.key_thumbprint = new_key.thumbprint();
        Ok(view(base, &account))
    }
}
