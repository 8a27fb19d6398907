//! The delegated responder certificates: loaded from the database, and issued or renewed by a
//! CA instance within the ocsp-responder profile's renewal window.

use std::sync::Arc;

use ca_core::ca::CertificateAuthority;
use ca_core::csr::VerifiedCsr;
use ca_core::issuance::{IssuanceOptions, PreparedIssuance};
use ca_core::key::SoftwareKey;
use ca_core::ocsp;
use ca_core::profile::Profile;
use ca_core::signer::SigningKey;
use ca_core::time::UnixTime;

use serde_json::json;

use super::OcspService;
use crate::ca::Issuers;
use crate::error::ServiceError;
use crate::secrets::DataKey;
use crate::store::audit_log;
use crate::store::models::*;
use crate::store::ocsp_rows::OcspRows;

use crate::store::DbConnection;

/// How a sealed responder key is stored in `ocsp_responders.key_pem`
/// ([`DataKey::seal_text`] over the PKCS#8 DER).
const SEALED: &str = crate::secrets::SEALED_TEXT;

fn seal_key(key: &DataKey, pkcs8: &[u8]) -> Result<String, ServiceError> {
    Ok(key.seal_text(pkcs8)?)
}

/// Reseals responder keys stored before they were sealed (PKCS#8 encrypted under the CA
/// passphrase) under the responder key, at start while the passphrase is at hand; returns how
/// many. Every instance of a group runs this version from then on: an older one cannot open
/// a sealed key.
pub fn reseal_responder_keys(
    conn: &mut DbConnection,
    passphrase: &str,
    responder_key: &DataKey,
) -> Result<usize, ServiceError> {
    let rows = conn.responders()?;
    let mut resealed = 0;
    for row in rows.iter().filter(|r| {
        !r.key_pem.starts_with(SEALED) && !r.key_pem.starts_with(crate::custody::uri::SCHEME)
    }) {
        let pkcs8 = ca_core::key::decrypt_pkcs8(row.key_pem.as_bytes(), passphrase.as_bytes())
            .map_err(|e| ServiceError::Internal(format!("responder key of {}: {e}", row.ca_id)))?;
        let sealed = seal_key(responder_key, &pkcs8)?;
        resealed += conn.reseal_responder(&row.ca_id, &row.key_pem, sealed)?;
    }
    Ok(resealed)
}

/// The label prefix of responder keys made in a token: `mamori-ocsp-<ca>-<unix time>`.
const RESPONDER_LABEL: &str = "mamori-ocsp-";

/// The delegated OCSP responder of one CA.
pub struct Responder {
    /// Its key: sealed software key, or a key in the PKCS#11 token.
    pub key: Arc<dyn SigningKey>,
    /// The BasicOCSPResponse `certs` field carrying its certificate (ocsp-responder profile),
    /// encoded once ([`ca_core::ocsp::certs_field`]) and added to every response it signs;
    /// the OCSP cache's shared copy, so a response cached as signed points at it for free.
    pub certs_field: actix_web::web::Bytes,
    /// When it expires.
    pub not_after: UnixTime,
}

impl OcspService {
    fn responder_from_row(&self, row: &ResponderRow) -> Result<Responder, ServiceError> {
        let key = self.open_responder_key(row)?;
        let certificate =
            <x509_cert::Certificate as ca_core::der::Decode>::from_der(&row.certificate_der)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let certs_field =
            ocsp::certs_field(&certificate).map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(Responder {
            key,
            certs_field: self.ocsp_cache.intern(certs_field),
            not_after: UnixTime(row.not_after.max(0) as u64),
        })
    }

    fn open_responder_key(&self, row: &ResponderRow) -> Result<Arc<dyn SigningKey>, ServiceError> {
        if row.key_pem.starts_with(crate::custody::uri::SCHEME) {
            return self.custody.load(&row.key_pem, "").map_err(|e| {
                ServiceError::Internal(format!("the responder key of {}: {e}", row.ca_id))
            });
        }
        let pkcs8 = self.responder_key.open_text(&row.key_pem).ok_or_else(|| {
            ServiceError::Internal(format!(
                "the responder key of {} is not sealed; start a CA instance to reseal it",
                row.ca_id
            ))
        })??;
        let key = SoftwareKey::from_pkcs8_der(&pkcs8)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(Arc::new(key))
    }

    /// Loads `ca_id`'s current responder, or with the CA (`issuers`, on a CA instance) issues a
    /// new one when none is past the renewal window.
    pub fn ensure_responder(
        &self,
        ca_id: &str,
        issuers: Option<&Issuers>,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let window = self
            .responder_profile
            .as_ref()
            .map(|p| p.renewal().window_secs)
            .unwrap_or(3 * 86_400);
        if let Ok(map) = self.responders.read() {
            if map
                .get(ca_id)
                .is_some_and(|r| r.not_after.as_secs() > now.as_secs() + window)
            {
                return Ok(());
            }
        }
        let mut conn = self.conn()?;
        let stored = conn.responder(ca_id)?;
        let responder = match stored {
            Some(row) if row.not_after as u64 > now.as_secs() + window => self.responder_from_row(&row)?,
            // An OCSP-only instance holds no CA key: it keeps the current responder until the CA
            // instance renews it (within the renewal window).
            // So does a locked CA instance (no issuers given) until its custodians activate it.
            Some(row) if (self.ocsp_only || issuers.is_none()) && row.not_after as u64 > now.as_secs() => self.responder_from_row(&row)?,
            _ if self.ocsp_only => {
                return Err(ServiceError::Internal(format!(
                    "no current OCSP responder certificate for {ca_id} in the database; start a CA instance first"
                )))
            }
            _ => {
                let profile = self.responder_profile.as_ref().ok_or_else(|| {
                    ServiceError::Internal("the ocsp-responder profile is missing".into())
                })?;
                let ca = issuers
                    .and_then(|i| i.get(ca_id))
                    .ok_or_else(|| ServiceError::NotFound(format!("CA {ca_id}")))?;
                self.issue_responder(&mut conn, ca, profile)?
            }
        };
        if let Ok(mut map) = self.responders.write() {
            map.insert(ca_id.to_string(), Arc::new(responder));
        }
        Ok(())
    }

    fn issue_responder(
        &self,
        conn: &mut DbConnection,
        ca: &CertificateAuthority,
        profile: &Profile,
    ) -> Result<Responder, ServiceError> {
        let ca_id = ca.id();
        let internal = |e: String| ServiceError::Internal(e);
        // With a token, the responder's key is made in it (labelled with the CA and the time,
        // so that keys of long-replaced responders can be found and destroyed); otherwise a
        // software key sealed under the responder key.
        let (key, key_pem): (Arc<dyn SigningKey>, String) = if self.custody.has_token() {
            let label = format!("{RESPONDER_LABEL}{ca_id}-{}", self.now().as_secs());
            let key = self
                .custody
                .generate(&label, ca_core::key::KeyAlgorithm::EcdsaP256)
                .map_err(|e| internal(format!("a responder key in the token: {e}")))?;
            let uri = key.uri().to_string();
            (Arc::new(key), uri)
        } else {
            let (key, pkcs8) =
                SoftwareKey::generate(ca_core::key::KeyAlgorithm::EcdsaP256, &*self.random)
                    .map_err(|e| internal(e.to_string()))?;
            (Arc::new(key), seal_key(&self.responder_key, &pkcs8)?)
        };
        let subject = ca_core::name::build_name(&[
            (
                ca_core::name::AttributeKind::O,
                self.config.hierarchy.organization.clone(),
            ),
            (
                ca_core::name::AttributeKind::CN,
                format!("Mamori OCSP Responder ({ca_id})"),
            ),
        ])
        .map_err(internal)?;
        let csr_der = ca_core::csr::build_csr(&subject, vec![], &*key)?;
        let csr = VerifiedCsr::parse(&csr_der, 2048)?;
        // One profile for every CA's responder: under the root it is the root that signs.
        let profile = &profile.for_issuer(ca_id);
        let prepared = PreparedIssuance::prepare(
            ca,
            profile,
            &csr,
            &IssuanceOptions::default(),
            &*self.clock,
            &*self.random,
        )?;
        let now = self.now().as_secs() as i64;
        let (issued, serial) =
            crate::ca::reservation::reserve_and_sign(conn, ca, prepared, profile.id(), None, now)?;
        crate::store::write_transaction::<_, ServiceError, _>(&mut *conn, |conn| {
            crate::ca::reservation::mark_issued(conn, ca_id, &serial, &issued.der)?;
            conn.replace_responder(ResponderRow {
                ca_id: ca_id.to_string(),
                certificate_der: issued.der.clone(),
                key_pem: key_pem.clone(),
                not_after: issued.not_after.as_secs() as i64,
            })?;
            audit_log::append(
                conn,
                now as u64,
                "system",
                "certificate.issue",
                &format!("{ca_id}/{serial}"),
                json!({"profile": profile.id(), "purpose": "OCSP responder"}),
            )?;
            Ok(())
        })?;
        if self.custody.has_token() {
            self.destroy_old_token_keys(ca_id, profile);
        }
        let certificate = <x509_cert::Certificate as ca_core::der::Decode>::from_der(&issued.der)
            .map_err(|e| internal(e.to_string()))?;
        let certs_field = ocsp::certs_field(&certificate).map_err(|e| internal(e.to_string()))?;
        Ok(Responder {
            key,
            certs_field: self.ocsp_cache.intern(certs_field),
            not_after: issued.not_after,
        })
    }
}

impl OcspService {
    /// Destroys `ca_id`'s responder keys in the token made more than twice the responder
    /// certificate's validity ago: no instance can still sign with them (each reloads its
    /// responder before the certificate expires). A failure is logged, not fatal: the keys
    /// only take room.
    fn destroy_old_token_keys(&self, ca_id: &str, profile: &Profile) {
        let before = self
            .now()
            .as_secs()
            .saturating_sub(2 * profile.max_validity_secs());
        let prefix = format!("{RESPONDER_LABEL}{ca_id}-");
        let old = |label: &str| {
            label
                .strip_prefix(&prefix)
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|t| t < before)
        };
        match self.custody.token().and_then(|t| Ok(t.destroy_keys(old)?)) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                ca = ca_id,
                keys = n,
                "destroyed old OCSP responder keys in the token"
            ),
            Err(e) => {
                tracing::warn!(ca = ca_id, error = %e, "old OCSP responder keys stay in the token")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use ca_core::key::{encrypt_pkcs8, KeyAlgorithm};

    use super::*;
    use crate::store::schema::*;
    use diesel::prelude::*;

    #[test]
    fn keys_from_before_sealing_are_resealed_once_and_open_with_the_responder_key() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let pool = crate::store::open(&url, 2).unwrap();
        let mut conn = pool.get().unwrap();
        // The row's CA is not in this database: only the key column matters here.
        diesel::connection::SimpleConnection::batch_execute(
            &mut *conn,
            "PRAGMA foreign_keys = OFF",
        )
        .unwrap();
        let passphrase = "the CA passphrase";
        let (_, responder_key) =
            DataKey::derive_with_responder_key(passphrase, b"0123456789abcdef").unwrap();
        let (_, pkcs8) =
            SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &ca_core::random::OsRandom).unwrap();
        let legacy =
            encrypt_pkcs8(&pkcs8, passphrase.as_bytes(), &ca_core::random::OsRandom).unwrap();
        diesel::insert_into(ocsp_responders::table)
            .values(ResponderRow {
                ca_id: "issuing".into(),
                certificate_der: vec![],
                key_pem: legacy,
                not_after: 0,
            })
            .execute(&mut conn)
            .unwrap();
        assert_eq!(
            reseal_responder_keys(&mut conn, passphrase, &responder_key).unwrap(),
            1
        );
        assert_eq!(
            reseal_responder_keys(&mut conn, passphrase, &responder_key).unwrap(),
            0,
            "a sealed key is left alone"
        );
        let stored: String = ocsp_responders::table
            .find("issuing")
            .select(ocsp_responders::key_pem)
            .first(&mut conn)
            .unwrap();
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(stored.strip_prefix(SEALED).unwrap())
            .unwrap();
        assert_eq!(
            responder_key.open(&sealed).unwrap().as_slice(),
            pkcs8.as_slice()
        );
        assert!(!stored.contains("PRIVATE KEY"), "{stored}");
    }
}
