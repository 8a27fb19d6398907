//! ACME issuance (RFC 8555 §7.4, §7.6): finalize through the RA's issuance (approved once,
//! when the EAB key was minted), certificate download with the chain, and revocation by the
//! ordering account or the certificate's own key.

use std::sync::Arc;

use ca_core::crl::RevocationReason;
use ca_core::csr::VerifiedCsr;
use ca_core::jws::Jwk;
use serde_json::{json, Value};
use x509_cert::ext::pkix::name::GeneralName;

use super::order::{identifiers_of, live_eab};
use super::{AcmeError, AcmeService, Authenticated, Base};
use crate::error::ServiceError;
use crate::ra::{OnStore, Requester, Submission, Submitted};
use crate::store::acme_rows::AcmeRows;
use crate::store::request_rows::RequestRows;

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
        // RFC 8555 §7.4: a name in the subject must be one of the order's names too.
        use ca_core::name::{attribute_text, name_attributes, AttributeKind};
        for atv in name_attributes(csr.subject()) {
            if atv.oid != AttributeKind::CN.oid() {
                continue;
            }
            let cn = attribute_text(&atv.value).map(|t| t.to_ascii_lowercase());
            if !cn.as_ref().is_some_and(|cn| wanted.contains(cn)) {
                return Err(AcmeError::new(
                    "badCSR",
                    400,
                    "the CSR's common name must be one of the order's names",
                ));
            }
        }
        if named != wanted {
            return Err(AcmeError::new(
                "badCSR",
                400,
                format!("the CSR names {named:?}; the order is for {wanted:?}"),
            ));
        }
        let mut conn = self.authority.conn()?;
        let eab = live_eab(&mut conn, &account)?;
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
