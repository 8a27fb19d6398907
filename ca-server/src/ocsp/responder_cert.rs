//! The delegated responder certificates: loaded from the database, and issued or renewed by a
//! CA instance within the ocsp-responder profile's renewal window.

use std::sync::Arc;

use ca_core::ca::CertificateAuthority;
use ca_core::csr::VerifiedCsr;
use ca_core::issuance::{IssuanceOptions, PreparedIssuance};
use ca_core::key::SoftwareKey;
use ca_core::ocsp;
use ca_core::profile::Profile;
use ca_core::time::UnixTime;
use diesel::prelude::*;
use serde_json::json;

use super::OcspService;
use crate::ca::Issuers;
use crate::error::ServiceError;
use crate::store::audit_log;
use crate::store::models::*;
use crate::store::schema::*;
use crate::store::DbConnection;

/// The delegated OCSP responder of one CA.
pub struct Responder {
    /// Its key.
    pub key: SoftwareKey,
    /// The BasicOCSPResponse `certs` field carrying its certificate (ocsp-responder profile),
    /// encoded once ([`ca_core::ocsp::certs_field`]) and added to every response it signs;
    /// the OCSP cache's shared copy, so a response cached as signed points at it for free.
    pub certs_field: actix_web::web::Bytes,
    /// When it expires.
    pub not_after: UnixTime,
}

impl OcspService {
    pub(super) fn responder_from_row(&self, row: &ResponderRow) -> Result<Responder, ServiceError> {
        let key = SoftwareKey::from_encrypted(row.key_pem.as_bytes(), self.passphrase.as_bytes())
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
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
        let stored: Option<ResponderRow> = ocsp_responders::table
            .find(ca_id)
            .select(ResponderRow::as_select())
            .first(&mut conn)
            .optional()?;
        let responder = match stored {
            Some(row) if row.not_after as u64 > now.as_secs() + window => self.responder_from_row(&row)?,
            // An OCSP-only instance holds no CA key: it keeps the current responder until the CA
            // instance renews it (within the renewal window).
            Some(row) if self.ocsp_only && row.not_after as u64 > now.as_secs() => self.responder_from_row(&row)?,
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

    pub(super) fn issue_responder(
        &self,
        conn: &mut DbConnection,
        ca: &CertificateAuthority,
        profile: &Profile,
    ) -> Result<Responder, ServiceError> {
        let ca_id = ca.id();
        let internal = |e: String| ServiceError::Internal(e);
        let (key, pkcs8) = SoftwareKey::generate(ca_core::key::KeyAlgorithm::EcdsaP256)
            .map_err(|e| internal(e.to_string()))?;
        let key_pem = ca_core::key::encrypt_pkcs8(&pkcs8, self.passphrase.as_bytes())
            .map_err(|e| internal(e.to_string()))?;
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
        let csr_der = ca_core::csr::build_csr(&subject, vec![], &key)?;
        let csr = VerifiedCsr::parse(&csr_der, 2048)?;
        // One profile for every CA's responder: under the root it is the root that signs.
        let profile = &profile.for_issuer(ca_id);
        let prepared = PreparedIssuance::prepare(
            ca,
            profile,
            &csr,
            &IssuanceOptions::default(),
            &*self.clock,
        )?;
        let now = self.now().as_secs() as i64;
        let (issued, serial) =
            crate::ca::reservation::reserve_and_sign(conn, ca, prepared, profile.id(), None, now)?;
        crate::store::write_transaction::<_, ServiceError, _>(&mut *conn, |conn| {
            crate::ca::reservation::mark_issued(conn, ca_id, &serial, &issued.der)?;
            diesel::delete(ocsp_responders::table.find(ca_id)).execute(conn)?;
            diesel::insert_into(ocsp_responders::table)
                .values(ResponderRow {
                    ca_id: ca_id.to_string(),
                    certificate_der: issued.der.clone(),
                    key_pem,
                    not_after: issued.not_after.as_secs() as i64,
                })
                .execute(conn)?;
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
