//! Revocation decisions: revoke, hold and release with step-up. The OCSP response that reports
//! a change is signed and stored in the change's own transaction; the CRL is republished before
//! the call answers (or by the upkeep, when it cannot be written then).

use ca_core::crl::RevocationReason;
use ca_core::role::Role;
use ca_core::time::UnixTime;
use serde_json::json;

use crate::accounts::Caller;
use crate::api::*;
use crate::error::ServiceError;
use crate::store::audit_log;
use crate::store::ids::Serial;
use crate::store::request_rows::{RequestRows, StatusWrite};
use crate::store::status::CertificateStatus;

use super::Authority;

impl Authority {
    /// Revoke (any reason), hold, or release, with a fresh TOTP code; republishes the CRL.
    pub fn change_status(
        &self,
        caller: &Caller,
        ca: &str,
        serial: &Serial,
        change: StatusChange,
        code: &str,
        comment: &str,
    ) -> Result<CertificateView, ServiceError> {
        let action = match change {
            StatusChange::Revoke { .. } => "certificate.revoke",
            StatusChange::Hold => "certificate.hold",
            StatusChange::Release => "certificate.release",
        };
        let target = format!("{ca}/{serial}");
        let outcome = self.change_status_inner(caller, ca, serial, change, code, comment);
        self.accounts.guarded(caller, action, &target, outcome)
    }

    fn change_status_inner(
        &self,
        caller: &Caller,
        ca: &str,
        serial: &Serial,
        change: StatusChange,
        code: &str,
        comment: &str,
    ) -> Result<CertificateView, ServiceError> {
        caller.require(&[Role::SecurityOfficer])?;
        self.require_unlocked()?;
        if self.issuers.get(ca).is_none() && self.issuers.certificates().der(ca).is_some() {
            return Err(ServiceError::Conflict(format!(
                "CA {ca}'s key is offline: revoke its certificates in a ceremony ([[revoke]] in the script) and import its CRL"
            )));
        }
        if comment.len() > 2000 {
            return Err(ServiceError::Invalid(
                "comment must be at most 2000 characters".into(),
            ));
        }
        let mut conn = self.conn()?;
        let now = self.now();
        let (view, partition, changed, response) =
            crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
                let row = self.visible_certificate(conn, caller, ca, serial)?;
                let user = conn.user_row(&caller.user_id)?;
                let current = CertificateStatus::of_row(&row.status)?;
                if !matches!(change, StatusChange::Release) {
                    refuse_no_rev_avail(&row)?;
                }
                let (status, reason, at, invalidity, action) = match change {
                    StatusChange::Revoke {
                        reason,
                        invalidity_date,
                    } => {
                        if current == CertificateStatus::Revoked {
                            return Err(ServiceError::Conflict(
                                "the certificate is already revoked".into(),
                            ));
                        }
                        if reason == RevocationReason::CertificateHold {
                            return Err(ServiceError::Invalid(
                                "use hold for certificateHold".into(),
                            ));
                        }
                        if invalidity_date.is_some_and(|d| d > now) {
                            return Err(ServiceError::Invalid(
                                "invalidity_date cannot be in the future".into(),
                            ));
                        }
                        (
                            CertificateStatus::Revoked,
                            Some(reason.as_str().to_string()),
                            Some(now.as_secs() as i64),
                            invalidity_date.map(|d| d.as_secs() as i64),
                            "certificate.revoke",
                        )
                    }
                    StatusChange::Hold => {
                        if current != CertificateStatus::Valid {
                            return Err(ServiceError::Conflict(format!(
                                "only valid certificates can be held (this one is {})",
                                row.status
                            )));
                        }
                        (
                            CertificateStatus::Hold,
                            Some("certificate-hold".to_string()),
                            Some(now.as_secs() as i64),
                            None,
                            "certificate.hold",
                        )
                    }
                    StatusChange::Release => {
                        if current != CertificateStatus::Hold {
                            return Err(ServiceError::Conflict(format!(
                                "only held certificates can be released (this one is {})",
                                row.status
                            )));
                        }
                        (
                            CertificateStatus::Valid,
                            None,
                            None,
                            None,
                            "certificate.release",
                        )
                    }
                };
                self.accounts.step_up(conn, &user, code)?;
                let changed_ms = crate::store::now_ms();
                conn.set_certificate_status(
                    &row.ca_id,
                    &row.serial,
                    &StatusWrite {
                        status,
                        reason: reason.as_deref(),
                        revoked_at: at,
                        invalidity_date: invalidity,
                        changed_ms,
                    },
                )?;
                audit_log::append(
                    conn,
                    now.as_secs(),
                    &caller.username,
                    action,
                    &format!("{}/{}", row.ca_id, row.serial),
                    json!({"reason": reason, "comment": comment}),
                )?;
                // The OCSP response that reports the change commits with it.
                let response =
                    self.ocsp
                        .sign_in_transaction(conn, &row.ca_id, &row.serial, changed_ms)?;
                let mut updated = row.clone();
                updated.status = status.as_str().into();
                updated.revocation_reason = reason;
                updated.revoked_at = at;
                Ok((
                    Self::certificate_view(&updated),
                    row.crl_partition.map(|k| k.max(0) as u32),
                    updated,
                    response,
                ))
            })?;
        if let Some(response) = &response {
            self.ocsp.cache_signed(response);
        }
        drop(conn);
        if !matches!(change, StatusChange::Release) {
            self.metrics
                .revoked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // The connection went back to the pool (above) before the CRL publisher takes its own:
        // a request holding two while it waits for a third let four concurrent revocations
        // exhaust a pool of eight (CI stop 32).
        self.publish_after_change(ca, partition, &caller.username, serial.as_str());
        if !matches!(change, StatusChange::Release) {
            self.notify_status(&changed, now);
        }
        Ok(view)
    }

    /// Revokes the certificates `old` as superseded by request `request_id`'s new one (a
    /// `duplicates = "supersede"` profile), each with its audit entry and its re-signed OCSP
    /// response in one transaction, then republishes their CRL scopes. One that is no longer
    /// valid is left alone.
    pub(crate) fn supersede(
        &self,
        old: &[(String, String)],
        request_id: &str,
    ) -> Result<(), ServiceError> {
        let mut conn = self.conn()?;
        let now = self.now().as_secs();
        let mut scopes: Vec<(String, Option<u32>)> = Vec::new();
        for (ca, serial) in old {
            let changed =
                crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
                    let changed_ms = crate::store::now_ms();
                    if !conn.supersede_if_valid(ca, serial, now as i64, changed_ms)? {
                        return Ok(None);
                    }
                    audit_log::append(
                        conn,
                        now,
                        "system",
                        "certificate.supersede",
                        &format!("{ca}/{serial}"),
                        json!({"reason": "superseded", "by_request": request_id}),
                    )?;
                    Ok(Some(
                        self.ocsp
                            .sign_in_transaction(conn, ca, serial, changed_ms)?,
                    ))
                })?;
            let Some(response) = changed else {
                continue;
            };
            if let Some(response) = &response {
                self.ocsp.cache_signed(response);
            }
            self.metrics
                .revoked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let partition = conn
                .certificate(ca, serial)?
                .and_then(|row| row.crl_partition)
                .map(|k| k.max(0) as u32);
            if !scopes.contains(&(ca.clone(), partition)) {
                scopes.push((ca.clone(), partition));
            }
        }
        drop(conn);
        for (ca, partition) in scopes {
            self.publish_after_change(&ca, partition, "system", request_id);
        }
        Ok(())
    }

    /// Revokes one certificate for a protocol that authenticated the request itself (ACME's
    /// revokeCert, signed by the account that ordered it or by the certificate's own key):
    /// no step-up, `actor` names the account in the audit entry. Returns false when it was
    /// already revoked.
    pub(crate) fn revoke_for_protocol(
        &self,
        ca: &str,
        serial: &str,
        reason: RevocationReason,
        actor: &str,
        detail: serde_json::Value,
    ) -> Result<bool, ServiceError> {
        self.require_unlocked()?;
        let mut conn = self.conn()?;
        let now = self.now().as_secs();
        let partition = crate::store::write_transaction::<_, ServiceError, _>(&mut conn, |conn| {
            let row = conn
                .certificate(ca, serial)?
                .ok_or_else(|| ServiceError::NotFound(format!("certificate {ca}/{serial}")))?;
            if CertificateStatus::of_row(&row.status)? == CertificateStatus::Revoked {
                return Ok(None);
            }
            refuse_no_rev_avail(&row)?;
            let changed_ms = crate::store::now_ms();
            conn.set_certificate_status(
                ca,
                serial,
                &StatusWrite {
                    status: CertificateStatus::Revoked,
                    reason: Some(reason.as_str()),
                    revoked_at: Some(now as i64),
                    invalidity_date: None,
                    changed_ms,
                },
            )?;
            let mut detail = detail.clone();
            detail["reason"] = json!(reason.as_str());
            audit_log::append(
                conn,
                now,
                actor,
                "certificate.revoke",
                &format!("{ca}/{serial}"),
                detail,
            )?;
            let response = self
                .ocsp
                .sign_in_transaction(conn, ca, serial, changed_ms)?;
            Ok(Some((row.crl_partition.map(|k| k.max(0) as u32), response)))
        })?;
        let Some((partition, response)) = partition else {
            return Ok(false);
        };
        if let Some(response) = &response {
            self.ocsp.cache_signed(response);
        }
        self.metrics
            .revoked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        drop(conn);
        self.publish_after_change(ca, partition, actor, serial);
        Ok(true)
    }

    /// Republishes the CRL scope of a status change that is already durable and reported by
    /// OCSP. A CRL that cannot be written now (a full disk, a database gone mid-call) is
    /// republished by the upkeep, which finds the change newer than the CRL; the caller is told
    /// what happened (done) instead of an error that would read "nothing was changed".
    /// `target` names the change in the log (a serial, or the request that superseded).
    fn publish_after_change(&self, ca: &str, partition: Option<u32>, actor: &str, target: &str) {
        if let Err(e) = self
            .crls
            .publisher(&self.issuers)
            .publish_change(ca, partition, actor)
        {
            tracing::warn!(ca = %ca, target = %target, error = %e,
                "the status change is stored and OCSP reports it; its CRL waits for the upkeep");
        }
    }
}

/// A 409 for a certificate that carries noRevAvail (RFC 9608): relying parties look for no
/// revocation information for it, so a revocation would protect nothing and only mislead.
pub(crate) fn refuse_no_rev_avail(
    row: &crate::store::models::CertificateRow,
) -> Result<(), ServiceError> {
    if row
        .der
        .as_deref()
        .is_some_and(ca_core::extensions::declares_no_rev_avail)
    {
        return Err(ServiceError::Conflict(format!(
            "the certificate carries noRevAvail (RFC 9608): relying parties check no revocation for it, so revoking it would protect nothing. Remove the holder's access instead (disable the account, end the VPN session); it expires at {}. / この証明書は失効情報なし (noRevAvail) のため失効できません。アカウントの無効化や VPN 接続の切断で対処してください。",
            UnixTime(row.not_after.max(0) as u64)
        )));
    }
    Ok(())
}

/// A change of a certificate's revocation status.
#[derive(Debug, Clone, Copy)]
pub enum StatusChange {
    /// Revoke for good.
    Revoke {
        /// Why.
        reason: RevocationReason,
        /// When the key was compromised.
        invalidity_date: Option<UnixTime>,
    },
    /// certificateHold.
    Hold,
    /// Release from hold.
    Release,
}
