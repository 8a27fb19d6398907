//! The CSR of a request as an approver sees it: decoded, with what a reviewer must notice
//! (`ca_core::review`), plus the flags that need Mamori's own data — a subject or e-mail that
//! looks like an existing account or role, or like a valid staff certificate's holder.

use ca_core::csr::VerifiedCsr;
use ca_core::name::{first_attribute, AttributeKind};
use ca_core::review::{self, skeleton, CsrSummary, ReviewContext, ReviewFlag};
use ca_core::role::Role;

use crate::error::ServiceError;
use crate::ra::Authority;
use crate::store::request_rows::RequestRows;
use crate::store::vendor_rows::VendorRows;
use crate::store::DbConnection;

/// Staff certificates compared per name (enough to say "this person has one").
const STAFF_MATCHES: i64 = 3;

impl Authority {
    /// The decoded CSR of a request of `profile_id` by `requester`, flagged; `None` if the
    /// stored CSR no longer parses (it did when it was submitted).
    pub(crate) fn review_csr(
        &self,
        conn: &mut DbConnection,
        profile_id: &str,
        requester: &str,
        csr_der: &[u8],
        accounts: &[String],
    ) -> Result<Option<CsrSummary>, ServiceError> {
        let Ok(csr) = VerifiedCsr::parse_remembering(csr_der, 1024, &self.csr_signatures) else {
            return Ok(None);
        };
        let outsiders = self
            .profiles
            .get(profile_id)
            .is_some_and(|p| p.requester_roles().contains(&Role::Vendor));
        let domains = if self.config.group_domains.is_empty() {
            &self.config.hierarchy.permitted_dns
        } else {
            &self.config.group_domains
        };
        let mut summary = review::summarize(
            &csr,
            &ReviewContext {
                group_domains: domains,
                group_organization: &self.config.hierarchy.organization,
                group_profile: !outsiders,
            },
        );
        // Names a reviewer could take for someone they know: the CN and each e-mail's local
        // part, compared by skeleton with every account and role name.
        let cn = first_attribute(csr.subject(), AttributeKind::CN);
        let mut names: Vec<(String, String)> =
            cn.iter().map(|c| ("CN".into(), c.clone())).collect();
        for san in &summary.sans {
            if let Some(email) = san.strip_prefix("email:") {
                if let Some((local, _)) = email.split_once('@') {
                    names.push(("email".into(), local.to_string()));
                }
            }
        }
        let roles = Role::ALL;
        for (field, value) in &names {
            let shape = skeleton(value);
            if shape.is_empty() {
                continue;
            }
            if let Some(account) = accounts
                .iter()
                .find(|a| a.as_str() != requester && skeleton(a) == shape)
            {
                summary.flags.push(ReviewFlag {
                    code: "matches-account".into(),
                    field: field.clone(),
                    detail: format!("{field} {value} looks like the account {account}"),
                });
            }
            if let Some(role) = roles.iter().find(|r| skeleton(r.as_str()) == shape) {
                summary.flags.push(ReviewFlag {
                    code: "matches-role".into(),
                    field: field.clone(),
                    detail: format!("{field} {value} names the role {}", role.as_str()),
                });
            }
        }
        if let (Some(cn), false) = (&cn, profile_id == "staff") {
            let holders = conn.valid_staff_certificates_named(cn, STAFF_MATCHES)?;
            if !holders.is_empty() {
                summary.flags.push(ReviewFlag {
                    code: "matches-staff-certificate".into(),
                    field: "CN".into(),
                    detail: format!(
                        "CN {cn} is the name on valid staff certificate(s) {}",
                        holders.join(", ")
                    ),
                });
            }
        }
        Ok(Some(summary))
    }
}

/// Every account name, for [`Authority::review_csr`] to compare names against.
pub(crate) fn account_names(conn: &mut DbConnection) -> Result<Vec<String>, ServiceError> {
    Ok(conn.usernames()?)
}

impl Authority {
    /// For a profile that binds the subject to the requester's account: the CSR's O must be the
    /// account's registered organization, and every e-mail name in the account's domain.
    pub(crate) fn check_account_binding(
        &self,
        caller: &crate::accounts::Caller,
        profile: &ca_core::profile::Profile,
        csr: &VerifiedCsr,
    ) -> Result<(), ServiceError> {
        let mut conn = self.conn()?;
        let (organization, email_domain) = conn.registered_fields(&caller.user_id)?;
        if profile.organization_from_account() {
            let Some(registered) = organization else {
                return Err(ServiceError::Forbidden(format!(
                    "profile {} needs the organization registered on your account, and yours has none: ask an admin to register it",
                    profile.id()
                )));
            };
            let asked = first_attribute(csr.subject(), AttributeKind::O);
            if asked.as_deref() != Some(registered.as_str()) {
                return Err(ServiceError::Invalid(format!(
                    "O must be {registered:?}, the organization registered on your account (the CSR has {:?})",
                    asked.unwrap_or_default()
                )));
            }
            if let Some(limit) = profile.max_valid_per_organization() {
                let now = self.now().as_secs() as i64;
                let in_use = conn.organization_in_use(profile.id(), &registered, now)?;
                if in_use >= i64::from(limit) {
                    return Err(ServiceError::Conflict(format!(
                        "{} already holds or waits for {in_use} {} certificate(s), its limit \
                         (max_valid_per_organization = {limit}); let one end or revoke it first \
                         / この組織の同時有効数の上限 ({limit}) に達しています",
                        ca_core::text::escape_untrusted(&registered, 80),
                        profile.id()
                    )));
                }
            }
        }
        if profile.email_domain_from_account() {
            for san in csr.requested_sans() {
                if let x509_cert::ext::pkix::name::GeneralName::Rfc822Name(email) = san {
                    let domain = email
                        .as_str()
                        .rsplit_once('@')
                        .map(|(_, d)| d.to_ascii_lowercase());
                    if email_domain.is_none() || domain != email_domain {
                        return Err(ServiceError::Invalid(format!(
                            "e-mail {email} must be in the domain registered on your account ({})",
                            email_domain.as_deref().unwrap_or("none registered")
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
