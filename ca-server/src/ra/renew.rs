//! Renewal by the current certificate: a certificate Mamori issued, presented over mutual TLS
//! (`POST /api/v1/renew`, EST `simplereenroll`) or signing a SCEP RenewalReq, asks for its
//! successor: same subject and subjectAltNames, a new key unless the profile allows the same,
//! inside the profile's renewal window (and grace after expiry, off by default). The successor
//! is filed under the predecessor's requester; the predecessor is revoked as superseded after
//! the profile's overlap (`renewal.revoke_old_after`), by upkeep.

use std::sync::Arc;

use ca_core::csr::VerifiedCsr;
use ca_core::der::{Decode, Encode};
use ca_core::profile::{DuplicatePolicy, Profile};
use ca_core::serial::serial_hex;

use super::submit::{OnStore, Requester, Submission};
use super::{Authority, Submitted};
use crate::api::*;
use crate::error::ServiceError;
use crate::store::enrollment_rows::EnrollmentRows;
use crate::store::models::{CertificateRow, RenewalRow};
use crate::store::request_rows::RequestRows;
use crate::store::status::{CertificateStatus, RequestStatus};

/// A certificate a client presented, found in the database exactly as presented.
#[derive(Debug)]
pub(crate) struct Presented {
    /// Its row.
    pub row: CertificateRow,
    /// It, decoded.
    pub certificate: x509_cert::Certificate,
}

impl Presented {
    /// `<ca>/<serial>`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.row.ca_id, self.row.serial)
    }

    /// Refuses a certificate past its notAfter by more than `grace` seconds.
    pub fn require_unexpired(&self, now: i64, grace: u64) -> Result<(), ServiceError> {
        if now > self.row.not_after + grace as i64 {
            return Err(ServiceError::Forbidden(format!(
                "certificate {} expired at {}; enroll the device again / 証明書の期限が切れています",
                self.reference(),
                rfc3339(self.row.not_after)
            )));
        }
        Ok(())
    }

    /// The account the certificate's own request was filed under, as the requester of its
    /// successor; the audit names the certificate as actor.
    pub fn requester(&self, authority: &Authority, via: &str) -> Result<Requester, ServiceError> {
        let mut conn = authority.conn()?;
        let request = self
            .row
            .request_id
            .as_deref()
            .map(|id| conn.request(id))
            .transpose()?
            .flatten()
            .ok_or_else(|| {
                ServiceError::Forbidden(format!(
                    "certificate {} was not issued through a request (an internal or imported \
                     certificate) and cannot renew itself",
                    self.reference()
                ))
            })?;
        let user = conn.user_row(&request.requester_id)?;
        Ok(Requester {
            user_id: user.id,
            username: user.username,
            actor: format!("{via}:{}", self.reference()),
        })
    }
}

/// A subject's attributes as (type, text), sorted: issuance writes them in the profile's
/// order and string types, so a CSR that lists them otherwise (certmonger writes CN first)
/// still names the same subject.
fn subject_attributes(name: &x509_cert::name::Name) -> Vec<(String, Option<String>)> {
    let mut attributes: Vec<(String, Option<String>)> = ca_core::name::name_attributes(name)
        .map(|a| (a.oid.to_string(), ca_core::name::attribute_text(&a.value)))
        .collect();
    attributes.sort();
    attributes
}

impl Authority {
    /// Finds a presented certificate (DER): issued by one of Mamori's CAs, stored with exactly
    /// these bytes, and valid (not revoked, not on hold).
    pub(crate) fn presented_certificate(&self, der: &[u8]) -> Result<Presented, ServiceError> {
        let unknown = || {
            ServiceError::Forbidden(
                "the certificate presented was not issued by this Mamori / 発行元が違う証明書です"
                    .into(),
            )
        };
        let certificate = x509_cert::Certificate::from_der(der).map_err(|_| unknown())?;
        let ca_id = self
            .ca_named(&certificate.tbs_certificate.issuer)
            .filter(|id| self.issuers.get(id).is_some())
            .ok_or_else(unknown)?;
        let serial = serial_hex(&certificate.tbs_certificate.serial_number);
        let row = self
            .conn()?
            .certificate(&ca_id, &serial)?
            .filter(|row| row.der.as_deref() == Some(der))
            .ok_or_else(unknown)?;
        match CertificateStatus::of_row(&row.status)? {
            CertificateStatus::Valid => {}
            other => {
                return Err(ServiceError::Forbidden(format!(
                    "certificate {ca_id}/{serial} is {} and cannot renew or enroll \
                     / この証明書は失効または保留中です",
                    other.as_str()
                )))
            }
        }
        Ok(Presented { row, certificate })
    }

    /// Renews the presented certificate (`current_der`) with `csr_der`: checks the profile's
    /// renewal rule and the CSR, then submits the successor (at once, or waiting for approvals
    /// where the profile's renewal requires them). `extra` runs in the successor's commit.
    pub fn renew(
        &self,
        current_der: &[u8],
        csr_der: &[u8],
        via: &str,
        extra: Option<OnStore>,
    ) -> Result<Submitted, ServiceError> {
        let current = self.presented_certificate(current_der)?;
        let profile: &Profile = self.profiles.get(&current.row.profile_id).ok_or_else(|| {
            ServiceError::Forbidden(format!(
                "certificate {} belongs to profile {}, which is no longer loaded",
                current.reference(),
                current.row.profile_id
            ))
        })?;
        let rule = profile.renewal();
        if !rule.allowed || profile.requester_roles().is_empty() {
            return Err(ServiceError::Forbidden(format!(
                "profile {} does not allow renewal / このプロファイルは更新できません",
                profile.id()
            )));
        }
        let now = self.now().as_secs() as i64;
        let opens = current.row.not_after - rule.window_secs as i64;
        if now < opens {
            return Err(ServiceError::Forbidden(format!(
                "renewal of {} opens at {} ({} days before expiry) / 更新期間はまだ始まっていません",
                current.reference(),
                rfc3339(opens),
                rule.window_secs / 86_400
            )));
        }
        current.require_unexpired(now, rule.grace_secs)?;
        let csr =
            VerifiedCsr::parse_remembering(csr_der, profile.min_rsa_bits(), &self.csr_signatures)?;
        let tbs = &current.certificate.tbs_certificate;
        let same_subject = subject_attributes(csr.subject()) == subject_attributes(&tbs.subject);
        if !same_subject {
            return Err(ServiceError::Invalid(format!(
                "a renewal keeps the subject: the CSR asks for {}, the certificate has {} \
                 / 更新では主体を変えられません",
                csr.subject(),
                tbs.subject
            )));
        }
        let mut asked: Vec<String> = csr
            .requested_sans()
            .iter()
            .map(|n| {
                let (field, value) = ca_core::name::general_name_text(n);
                format!("{field}:{value}")
            })
            .collect();
        let mut held = ca_core::name::subject_alt_names(tbs).unwrap_or_default();
        asked.sort();
        held.sort();
        if asked != held {
            return Err(ServiceError::Invalid(format!(
                "a renewal keeps the subjectAltNames: the CSR asks for [{}], the certificate has \
                 [{}] / 更新では SAN を変えられません",
                asked.join(", "),
                held.join(", ")
            )));
        }
        let same_key = csr.public_key().to_der().ok() == tbs.subject_public_key_info.to_der().ok();
        if same_key && !rule.reuse_key {
            return Err(ServiceError::Invalid(format!(
                "profile {} renews with a new key: generate one for the CSR / 新しい鍵が必要です",
                profile.id()
            )));
        }
        let requester = current.requester(self, via)?;
        let (old_ca, old_serial) = (current.row.ca_id.clone(), current.row.serial.clone());
        let revoke_after = rule.revoke_old_after_secs;
        let record: OnStore = Arc::new(move |conn, request_id, now| {
            conn.insert_renewal(&RenewalRow {
                request_id: request_id.to_string(),
                old_ca_id: old_ca.clone(),
                old_serial: old_serial.clone(),
                revoke_old_at: revoke_after.map(|s| now + s as i64),
                done: false,
            })?;
            Ok(())
        });
        tracing::info!(cert.serial = %current.row.serial, profile.id = %profile.id(), via, "renewal");
        self.submit_checked(
            &requester,
            profile,
            &csr,
            Submission {
                justification: format!("renewal of {} through {via}", current.reference()),
                work_order: None,
                window: None,
                on_store: super::enrollment::chain_hooks(extra, Some(record)),
                approved: !rule.requires_approval,
                duplicates: DuplicatePolicy::Allow,
            },
        )
    }

    /// `GET /api/v1/renew/{id}`: a renewal's state, asked by the certificate it renews.
    pub fn renewal_status(
        &self,
        current_der: &[u8],
        request_id: &str,
    ) -> Result<RenewView, ServiceError> {
        let current = self.presented_certificate(current_der).or_else(|e| {
            // The predecessor may already be superseded once its successor is out: it may
            // still ask for the successor it renewed into.
            self.superseded_presenter(current_der).ok_or(e)
        })?;
        let mut conn = self.conn()?;
        let renewal = conn
            .renewal(request_id)?
            .filter(|r| r.old_ca_id == current.row.ca_id && r.old_serial == current.row.serial)
            .ok_or_else(|| ServiceError::NotFound(format!("renewal {request_id}")))?;
        self.renew_view(&renewal.request_id)
    }

    fn superseded_presenter(&self, der: &[u8]) -> Option<Presented> {
        let certificate = x509_cert::Certificate::from_der(der).ok()?;
        let serial = serial_hex(&certificate.tbs_certificate.serial_number);
        let mut conn = self.conn().ok()?;
        self.issuers.ids().into_iter().find_map(|ca| {
            conn.certificate(&ca, &serial)
                .ok()
                .flatten()
                .filter(|row| row.der.as_deref() == Some(der))
                .map(|row| Presented {
                    row,
                    certificate: certificate.clone(),
                })
        })
    }

    /// A renewal's (or any device request's) state with its certificate and chain once issued.
    pub fn renew_view(&self, request_id: &str) -> Result<RenewView, ServiceError> {
        let mut conn = self.conn()?;
        let request = conn
            .request(request_id)?
            .ok_or_else(|| ServiceError::NotFound(format!("request {request_id}")))?;
        let mut view = RenewView {
            request: request.id.clone(),
            status: request.status.clone(),
            certificate_pem: None,
            serial: None,
            not_after: None,
        };
        if RequestStatus::of_row(&request.status)? == RequestStatus::Issued {
            if let (Some(ca), Some(serial)) = (&request.ca_id, &request.certificate_serial) {
                let row = conn
                    .certificate(ca, serial)?
                    .ok_or_else(|| ServiceError::Internal("issued certificate missing".into()))?;
                let der = row
                    .der
                    .ok_or_else(|| ServiceError::Internal("issued certificate missing".into()))?;
                let mut pem = ca_core::ca::pem(&der);
                pem.push_str(&self.chain_pem(ca).unwrap_or_default());
                view.certificate_pem = Some(pem);
                view.serial = Some(format!("{ca}/{serial}"));
                view.not_after = Some(rfc3339(row.not_after));
            }
        }
        Ok(view)
    }

    /// Upkeep: revokes, as superseded, the predecessors whose overlap has passed and whose
    /// successor was issued; forgets renewals that never issued.
    pub(crate) fn retire_renewed(&self) -> Result<(), ServiceError> {
        let now = self.now().as_secs() as i64;
        let due = self.conn()?.due_renewals(now, 1000)?;
        for renewal in due {
            let status = self
                .conn()?
                .request(&renewal.request_id)?
                .map(|r| RequestStatus::of_row(&r.status))
                .transpose()?;
            match status {
                Some(RequestStatus::Issued) => {
                    self.supersede(
                        &[(renewal.old_ca_id.clone(), renewal.old_serial.clone())],
                        &renewal.request_id,
                    )?;
                }
                Some(RequestStatus::Pending | RequestStatus::Approved) => continue,
                _ => {}
            }
            let id = renewal.request_id.clone();
            self.writer.run(move |w| {
                w.conn.finish_renewal(&id)?;
                Ok(())
            })?;
            tracing::info!(request.id = %renewal.request_id, old = %format!("{}/{}", renewal.old_ca_id, renewal.old_serial), "renewal's predecessor retired");
        }
        Ok(())
    }
}
