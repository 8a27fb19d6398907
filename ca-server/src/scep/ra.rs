//! The SCEP RA identities: one RSA key and certificate per issuing CA (profile `scep-ra`),
//! issued by that CA to Mamori itself; the key is made in the PKCS#11 token when one is
//! configured, else sealed at rest under a key derived from the CA passphrase; renewed within the profile's renewal window like the OCSP responders'. The
//! previous identity stays usable for opening requests a client encrypted before the renewal.

use std::sync::Arc;

use ca_core::csr::VerifiedCsr;
use ca_core::issuance::{IssuanceOptions, PreparedIssuance};
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use serde_json::json;

use super::message::RaIdentity;
use super::ra_key::RaKey;
use super::ScepService;
use crate::error::ServiceError;
use crate::store::audit_log;
use crate::store::enrollment_rows::EnrollmentRows;
use crate::store::models::ScepRaRow;

/// RSA modulus of RA keys.
const RA_RSA_BITS: u32 = 2048;

/// The label prefix of RA keys made in a token: `mamori-scep-ra-<ca>-<unix time>`.
const RA_LABEL: &str = "mamori-scep-ra-";

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

impl ScepService {
    fn identity_from_row(&self, row: &ScepRaRow) -> Result<RaIdentity, ServiceError> {
        let key = if row.key_sealed.starts_with(crate::custody::uri::SCHEME) {
            // Under a quorum the token opens only at activation: 503 locked until then.
            self.authority.require_unlocked()?;
            let key = self
                .authority
                .custody
                .load_rsa(&row.key_sealed)
                .map_err(|e| internal(format!("the SCEP RA key of {}: {e}", row.ca_id)))?;
            RaKey::Token(key)
        } else {
            let pkcs8 = self.key.open_text(&row.key_sealed).ok_or_else(|| {
                internal(format!("the SCEP RA key of {} is damaged", row.ca_id))
            })??;
            RaKey::Software(PKey::private_key_from_pkcs8(&pkcs8).map_err(internal)?)
        };
        let certificate = openssl::x509::X509::from_der(&row.certificate_der).map_err(internal)?;
        Ok(RaIdentity {
            certificate,
            der: row.certificate_der.clone(),
            key,
        })
    }

    /// Loads `ca_id`'s RA identity, or issues a new one when there is none or the current one
    /// is inside the `scep-ra` profile's renewal window (the old one is kept for decryption).
    pub fn ensure_ra(&self, ca_id: &str) -> Result<(), ServiceError> {
        let authority = &self.authority;
        let profile = authority
            .profiles
            .get("scep-ra")
            .ok_or_else(|| internal("the scep-ra profile is missing from the policies folder"))?;
        let now = authority.clock.now().as_secs() as i64;
        let window = profile.renewal().window_secs as i64;
        let mut conn = authority.conn()?;
        let stored = conn.scep_ra(ca_id)?;
        if let Some(row) = &stored {
            if row.not_after - window > now {
                let loaded = self
                    .identities
                    .read()
                    .ok()
                    .and_then(|m| m.get(ca_id).and_then(|v| v.first().map(|i| i.der.clone())));
                if loaded.as_deref() != Some(row.certificate_der.as_slice()) {
                    let identity = Arc::new(self.identity_from_row(row)?);
                    self.install(ca_id, identity);
                }
                return Ok(());
            }
        }
        authority.require_unlocked()?;
        let ca = authority
            .issuers
            .get(ca_id)
            .ok_or_else(|| ServiceError::NotFound(format!("CA {ca_id}")))?;
        // In the token when one is configured (generated there, never extractable); else a
        // software key sealed under the enrollment key.
        let label = format!("{RA_LABEL}{ca_id}-{now}");
        let key = if authority.custody.has_token() {
            let key = authority
                .custody
                .generate_rsa(&label, RA_RSA_BITS)
                .map_err(|e| internal(format!("the SCEP RA key of {ca_id}: {e}")))?;
            RaKey::Token(key)
        } else {
            RaKey::Software(
                PKey::from_rsa(Rsa::generate(RA_RSA_BITS).map_err(internal)?).map_err(internal)?,
            )
        };
        let mut name = openssl::x509::X509NameBuilder::new().map_err(internal)?;
        name.append_entry_by_text("O", &authority.config.hierarchy.organization)
            .map_err(internal)?;
        name.append_entry_by_text("CN", &format!("Mamori SCEP RA ({ca_id})"))
            .map_err(internal)?;
        let subject = name.build().to_der().map_err(internal)?;
        let csr_der = super::ra_key::csr(&subject, &key).map_err(internal)?;
        let csr = VerifiedCsr::parse(&csr_der, 2048)?;
        let profile = profile.for_issuer(ca_id);
        let prepared = PreparedIssuance::prepare(
            ca,
            &profile,
            &csr,
            &IssuanceOptions::default(),
            &*authority.clock,
            &*authority.random,
        )?;
        let (issued, serial) = crate::ca::reservation::reserve_and_sign(
            &mut conn,
            ca,
            prepared,
            profile.id(),
            None,
            now,
        )?;
        let key_sealed = match &key {
            RaKey::Software(key) => {
                let pkcs8 = zeroize::Zeroizing::new(key.private_key_to_pkcs8().map_err(internal)?);
                self.key.seal_text(&pkcs8)?
            }
            RaKey::Token(key) => key.uri().to_string(),
        };
        let row = ScepRaRow {
            ca_id: ca_id.to_string(),
            certificate_der: issued.der.clone(),
            key_sealed,
            not_after: issued.not_after.as_secs() as i64,
        };
        crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            crate::ca::reservation::mark_issued(conn, ca_id, &serial, &issued.der)?;
            conn.replace_scep_ra(&row)?;
            audit_log::append(
                conn,
                now as u64,
                "system",
                "certificate.issue",
                &format!("{ca_id}/{serial}"),
                json!({"profile": profile.id(), "purpose": "SCEP RA"}),
            )?;
            Ok(())
        })?;
        let certificate = openssl::x509::X509::from_der(&issued.der).map_err(internal)?;
        self.install(
            ca_id,
            Arc::new(RaIdentity {
                certificate,
                der: issued.der,
                key,
            }),
        );
        tracing::info!(ca.id = %ca_id, cert.serial = %serial, "SCEP RA certificate issued");
        if authority.custody.has_token() {
            self.destroy_old_token_keys(ca_id, profile.max_validity_secs(), now);
        }
        Ok(())
    }

    /// Destroys `ca_id`'s RA keys in the token made more than twice the RA certificate's
    /// validity before `now`: neither the current identity nor the one before it (kept for
    /// requests encrypted before a renewal) can be that old. A failure is logged, not fatal.
    fn destroy_old_token_keys(&self, ca_id: &str, validity_secs: u64, now: i64) {
        let before = (now.max(0) as u64).saturating_sub(2 * validity_secs);
        let prefix = format!("{RA_LABEL}{ca_id}-");
        let old = |label: &str| {
            label
                .strip_prefix(&prefix)
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|t| t < before)
        };
        match self
            .authority
            .custody
            .token()
            .and_then(|t| Ok(t.destroy_keys(old)?))
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                ca = ca_id,
                keys = n,
                "destroyed old SCEP RA keys in the token"
            ),
            Err(e) => tracing::warn!(ca = ca_id, error = %e, "old SCEP RA keys stay in the token"),
        }
    }

    /// Makes `identity` the current one of `ca_id`, keeping the one before it.
    fn install(&self, ca_id: &str, identity: Arc<RaIdentity>) {
        if let Ok(mut map) = self.identities.write() {
            let list = map.entry(ca_id.to_string()).or_default();
            list.retain(|i| i.der != identity.der);
            list.insert(0, identity);
            list.truncate(2);
        }
    }

    /// How many RA identities of `ca_id` open requests (the current one and the one before).
    pub fn ra_count(&self, ca_id: &str) -> usize {
        self.identities
            .read()
            .map(|m| m.get(ca_id).map_or(0, Vec::len))
            .unwrap_or(0)
    }

    /// `ca_id`'s RA identities, current first.
    pub(crate) fn identities(&self, ca_id: &str) -> Result<Vec<Arc<RaIdentity>>, ServiceError> {
        let list = self
            .identities
            .read()
            .ok()
            .and_then(|m| m.get(ca_id).cloned())
            .unwrap_or_default();
        if list.is_empty() {
            self.ensure_ra(ca_id)?;
            return self
                .identities
                .read()
                .ok()
                .and_then(|m| m.get(ca_id).cloned())
                .filter(|l| !l.is_empty())
                .ok_or_else(|| internal(format!("no SCEP RA for {ca_id}")));
        }
        Ok(list)
    }
}
