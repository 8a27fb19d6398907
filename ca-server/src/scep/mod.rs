//! SCEP (RFC 8894) for MDM-managed tablets, Windows and network devices: the RA identities
//! (`ra`), the messages (`message`), and what each operation does with the RA's workflow —
//! enrollment with a one-time code, renewal signed by the current certificate, polling,
//! GetCert and GetCRL. It holds the key that seals the RA keys; the HTTP side is
//! `http::scep`.

pub mod message;
mod ra;
pub mod ra_key;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use crate::error::ServiceError;
use crate::ra::{Authority, DeviceProof, OnStore, Submitted};
use crate::secrets::DataKey;
use crate::store::enrollment_rows::EnrollmentRows;
use crate::store::models::ScepTransactionRow;
use crate::store::request_rows::RequestRows;
use crate::store::status::RequestStatus;
use message::{FailInfo, MessageType, PkiRequest, RaIdentity, Reply};

/// The capabilities `GetCACaps` announces (RFC 8894 §3.5.2).
pub const CAPABILITIES: &str = "AES\nPOSTPKIOperation\nRenewal\nSHA-256\nSCEPStandard\n";

/// The challengePassword attribute of a PKCS#10 request (RFC 2985).
const CHALLENGE_PASSWORD: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.7");

/// The SCEP service.
pub struct ScepService {
    authority: Arc<Authority>,
    /// Seals the RA keys at rest.
    key: DataKey,
    /// RA identities by CA, current first.
    identities: RwLock<BTreeMap<String, Vec<Arc<RaIdentity>>>>,
    /// When upkeep last looked at the stored RA identities (seconds, the authority's clock).
    checked_at: std::sync::atomic::AtomicU64,
}

/// Seconds between upkeep's looks at the stored RA identities (another instance's renewal is
/// picked up within this; the renewal window is 30 days).
const RA_CHECK_SECS: u64 = 30;

/// A verified message's outcome before the reply is signed: a reply now, or an issuance whose
/// commit the caller awaits first.
pub enum Step {
    /// Reply at once.
    Reply(Box<PkiRequest>, Reply),
    /// A submission: await it, then reply with [`ScepService::after_submission`].
    Submitted(Box<PkiRequest>, Submitted),
}

impl ScepService {
    /// The SCEP service over `authority`, taking the key that seals RA keys from it.
    pub fn new(authority: Arc<Authority>) -> Result<Self, ServiceError> {
        let key = authority
            .take_enrollment_key()
            .ok_or_else(|| ServiceError::Internal("the SCEP RA sealing key is gone".into()))?;
        if authority.config.scep_allow_single_des {
            message::legacy::allow_single_des().map_err(|e| {
                ServiceError::Internal(format!(
                    "scep_allow_single_des: OpenSSL's legacy provider: {e}"
                ))
            })?;
            tracing::warn!(
                "SCEP requests encrypted with single DES are accepted (scep_allow_single_des)"
            );
        }
        Ok(ScepService {
            authority,
            key,
            identities: RwLock::new(BTreeMap::new()),
            checked_at: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Upkeep: an RA identity for every issuing CA a SCEP profile names, renewed in its window.
    /// Looks at most every 30 s, so that a one-second upkeep tick costs no connection.
    pub fn maintain(&self) -> Result<(), ServiceError> {
        use std::sync::atomic::Ordering;
        if self.authority.locked() {
            // Issuing an RA certificate needs the CA key; the stored identities keep serving.
            return Ok(());
        }
        let now = self.authority.clock.now().as_secs();
        let last = self.checked_at.load(Ordering::Relaxed);
        if last != 0 && now < last + RA_CHECK_SECS {
            return Ok(());
        }
        self.checked_at.store(now, Ordering::Relaxed);
        for ca in self.authority.scep_issuing_cas() {
            self.ensure_ra(&ca)?;
        }
        Ok(())
    }

    /// `GetCACert` for a profile: the RA certificate, then the issuing CA's chain up to the root
    /// (a degenerate SignedData).
    pub fn ca_certificates(&self, profile_id: &str) -> Result<Vec<u8>, ServiceError> {
        let profile = self.authority.enrollment_profile(profile_id, "scep")?;
        let ra = self.identities(profile.issuing_ca())?;
        let chain = self
            .authority
            .issuers
            .certificates()
            .chain_der(profile.issuing_ca());
        let mut certs: Vec<&[u8]> = vec![&ra[0].der];
        certs.extend(chain.iter().map(Vec::as_slice));
        message::degenerate(&certs, &[]).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// `PKIOperation`, first half (blocking: signature checks, decryption, the workflow).
    pub fn handle(&self, profile_id: &str, body: &[u8]) -> Result<Step, ServiceError> {
        let profile = self.authority.enrollment_profile(profile_id, "scep")?;
        let ras = self.identities(profile.issuing_ca())?;
        let refs: Vec<&RaIdentity> = ras.iter().map(|r| r.as_ref()).collect();
        let request =
            message::parse(body, &refs).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let content = match &request.content {
            Ok(c) => c.clone(),
            Err(fail) => {
                let fail = *fail;
                return Ok(Step::Reply(Box::new(request), Reply::Failure(fail)));
            }
        };
        let signer_sha256 = signer_hash(&request)?;
        let reply = match request.attributes.message_type {
            MessageType::PkcsReq | MessageType::RenewalReq => {
                // A retry regenerates its CSR (certmonger does) for the same key: the key
                // identifies it, not the CSR's bytes.
                let csr_key_sha256 = csr_key_hash(&content).ok_or_else(|| {
                    ServiceError::Invalid("the SCEP request's CSR does not parse".into())
                });
                let csr_key_sha256 = match csr_key_sha256 {
                    Ok(hash) => hash,
                    Err(_) => {
                        return Ok(Step::Reply(
                            Box::new(request),
                            Reply::Failure(FailInfo::BadRequest),
                        ))
                    }
                };
                let earlier = self
                    .authority
                    .conn()?
                    .scep_transaction(&request.attributes.transaction_id, &signer_sha256)?;
                if let Some(earlier) = earlier {
                    // A retry (or a replay) of the same transaction: its state, nothing new.
                    let reply = if earlier.csr_key_sha256 == csr_key_sha256 {
                        self.state_of(&earlier.request_id)?
                    } else {
                        Reply::Failure(FailInfo::BadRequest)
                    };
                    return Ok(Step::Reply(Box::new(request), reply));
                }
                let record = transaction_hook(
                    &request.attributes.transaction_id,
                    &signer_sha256,
                    &csr_key_sha256,
                );
                let ours = self
                    .authority
                    .presented_certificate(&request.signer_der)
                    .is_ok();
                let submitted =
                    if request.attributes.message_type == MessageType::RenewalReq || ours {
                        self.authority
                            .renew(&request.signer_der, &content, "scep", Some(record))
                    } else {
                        let code = challenge_password(&content).unwrap_or_default();
                        self.authority.enroll_device(
                            profile,
                            &DeviceProof::Code(code),
                            &content,
                            "scep",
                            Some(record),
                        )
                    };
                match submitted {
                    Ok(s) => return Ok(Step::Submitted(Box::new(request), s)),
                    Err(ServiceError::Internal(e)) => return Err(ServiceError::Internal(e)),
                    Err(ServiceError::Conflict(m)) if m == DUPLICATE_TRANSACTION => {
                        self.state_of_transaction(&request)?
                    }
                    Err(e) => {
                        // A copy sent at the same moment may have used the code up: its answer.
                        // (The lookup's connection goes back before state_of takes one.)
                        let copy = self
                            .authority
                            .conn()?
                            .scep_transaction(&request.attributes.transaction_id, &signer_sha256)?;
                        match copy {
                            Some(t) if t.csr_key_sha256 == csr_key_sha256 => {
                                self.state_of(&t.request_id)?
                            }
                            _ => {
                                tracing::info!(scep.transaction = %request.attributes.transaction_id, error = %e, "SCEP request refused");
                                Reply::Failure(FailInfo::BadRequest)
                            }
                        }
                    }
                }
            }
            MessageType::CertPoll => {
                let transaction = self
                    .authority
                    .conn()?
                    .scep_transaction(&request.attributes.transaction_id, &signer_sha256)?;
                match transaction {
                    Some(t) => self.state_of(&t.request_id)?,
                    None => Reply::Failure(FailInfo::BadCertId),
                }
            }
            MessageType::GetCert => match message::issuer_and_serial(&content)
                .and_then(|ias| self.authority.certificate_by_issuer_serial(&ias))
            {
                Some(der) => Reply::Success(self.certs_only(&[&der])?),
                None => Reply::Failure(FailInfo::BadCertId),
            },
            MessageType::GetCrl => match message::issuer_and_serial(&content)
                .and_then(|ias| self.authority.crl_by_issuer(&ias.issuer))
            {
                Some(crl) => Reply::Success(
                    message::degenerate(&[], &[&crl])
                        .map_err(|e| ServiceError::Internal(e.to_string()))?,
                ),
                None => Reply::Failure(FailInfo::BadCertId),
            },
            MessageType::CertRep => Reply::Failure(FailInfo::BadRequest),
        };
        Ok(Step::Reply(Box::new(request), reply))
    }

    /// The reply for a request once its submission is stored (issued or pending).
    pub fn after_submission(
        &self,
        request: &PkiRequest,
        result: Result<ca_api::RequestView, ServiceError>,
    ) -> Result<Reply, ServiceError> {
        match result {
            Ok(view) => self.state_of(&view.id),
            Err(ServiceError::Internal(e)) => Err(ServiceError::Internal(e)),
            Err(ServiceError::Conflict(m)) if m == DUPLICATE_TRANSACTION => {
                self.state_of_transaction(request)
            }
            Err(e) => {
                tracing::info!(error = %e, "SCEP request refused at commit");
                Ok(Reply::Failure(FailInfo::BadRequest))
            }
        }
    }

    /// The signed CertRep (blocking: encryption and an RSA signature).
    pub fn reply(
        &self,
        profile_id: &str,
        request: &PkiRequest,
        reply: Reply,
    ) -> Result<Vec<u8>, ServiceError> {
        let profile = self.authority.enrollment_profile(profile_id, "scep")?;
        let ras = self.identities(profile.issuing_ca())?;
        let mut nonce = [0u8; 16];
        crate::secrets::random_bytes(16)
            .map(|b| nonce.copy_from_slice(&b))
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        message::cert_rep(request, reply, &ras[0], &nonce)
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    fn certs_only(&self, certs: &[&[u8]]) -> Result<Vec<u8>, ServiceError> {
        message::degenerate(certs, &[]).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// The state of the request a transaction made (stored by a message sent at the same time).
    fn state_of_transaction(&self, request: &PkiRequest) -> Result<Reply, ServiceError> {
        let signer = signer_hash(request)?;
        let transaction = self
            .authority
            .conn()?
            .scep_transaction(&request.attributes.transaction_id, &signer)?;
        match transaction {
            Some(t) => self.state_of(&t.request_id),
            None => Ok(Reply::Failure(FailInfo::BadRequest)),
        }
    }

    /// A request's state as a SCEP reply.
    fn state_of(&self, request_id: &str) -> Result<Reply, ServiceError> {
        let view = self.authority.renew_view(request_id)?;
        Ok(match RequestStatus::of_row(&view.status)? {
            RequestStatus::Pending | RequestStatus::Approved => Reply::Pending,
            RequestStatus::Issued => {
                let der = view
                    .serial
                    .as_deref()
                    .and_then(|s| s.split_once('/'))
                    .and_then(|(ca, serial)| {
                        self.authority
                            .conn()
                            .ok()?
                            .certificate_der(ca, serial)
                            .ok()
                            .flatten()
                    })
                    .ok_or_else(|| ServiceError::Internal("issued certificate missing".into()))?;
                Reply::Success(self.certs_only(&[&der])?)
            }
            _ => Reply::Failure(FailInfo::BadRequest),
        })
    }
}

/// What a transaction hook answers when the same transaction was stored meanwhile (the same
/// message sent twice at once): the caller answers with the first one's request.
pub const DUPLICATE_TRANSACTION: &str = "this transaction is already being answered";

/// Records the SCEP transaction in the request's own commit.
pub(crate) fn transaction_hook(
    transaction_id: &str,
    signer_sha256: &str,
    csr_key_sha256: &str,
) -> OnStore {
    let (t, s, c) = (
        transaction_id.to_string(),
        signer_sha256.to_string(),
        csr_key_sha256.to_string(),
    );
    Arc::new(move |conn, request_id, now| {
        let stored = conn.insert_scep_transaction(&ScepTransactionRow {
            transaction_id: t.clone(),
            signer_sha256: s.clone(),
            csr_key_sha256: c.clone(),
            request_id: request_id.to_string(),
            created_at: now,
        })?;
        if stored {
            Ok(())
        } else {
            Err(ServiceError::Conflict(DUPLICATE_TRANSACTION.into()))
        }
    })
}

/// The SHA-256 (hex) of the signer's SubjectPublicKeyInfo. A client is its key: certmonger
/// signs each retry with a new self-signed certificate for the same key (and the same
/// transactionID, RFC 8894 §3.2.1.1).
fn signer_hash(request: &PkiRequest) -> Result<String, ServiceError> {
    let key = request
        .signer
        .public_key()
        .and_then(|k| k.public_key_to_der())
        .map_err(|e| ServiceError::Invalid(format!("the signer's key: {e}")))?;
    Ok(hex::encode(Sha256::digest(&key)))
}

/// The SHA-256 (hex) of a CSR's SubjectPublicKeyInfo.
fn csr_key_hash(csr_der: &[u8]) -> Option<String> {
    use ca_core::der::{Decode, Encode};
    let request = x509_cert::request::CertReq::from_der(csr_der).ok()?;
    let spki = request.info.public_key.to_der().ok()?;
    Some(hex::encode(Sha256::digest(&spki)))
}

/// The challengePassword a CSR carries, if any.
pub fn challenge_password(csr_der: &[u8]) -> Option<String> {
    use ca_core::der::Decode;
    let request = x509_cert::request::CertReq::from_der(csr_der).ok()?;
    let attribute = request
        .info
        .attributes
        .iter()
        .find(|a| a.oid == CHALLENGE_PASSWORD)?;
    let value = attribute.values.iter().next()?;
    ca_core::name::attribute_text(value)
}
