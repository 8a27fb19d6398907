//! Subject and subjectAltName: SAN present and critical when the subject is empty, well-formed
//! values, a CN that repeats a SAN for TLS servers, and the final names re-checked against the
//! profile (RFC 5280 §4.1.2.6, §4.2.1.6).

use const_oid::db::rfc5280::ID_KP_SERVER_AUTH;
use const_oid::AssociatedOid;
use der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::TbsCertificate;

use super::{find, Expectation, Findings, LintContext};
use crate::name::{first_attribute, AttributeKind};

pub(super) fn check(tbs: &TbsCertificate, ctx: &LintContext<'_>, out: &mut Findings) {
    let san_ext = find(tbs, SubjectAltName::OID);
    let san = san_ext.and_then(|e| SubjectAltName::from_der(e.extn_value.as_bytes()).ok());
    match ctx.expectation {
        Expectation::Ca { .. } => {
            if tbs.subject.is_empty() {
                out.fail(
                    "e_ca_subject_not_empty",
                    "RFC 5280 §4.1.2.6",
                    "a CA's subject must not be empty",
                );
            }
        }
        Expectation::Leaf { profile, .. } => {
            let subject_empty = tbs.subject.is_empty();
            match (san_ext, &san) {
                (None, _) if subject_empty => out.fail(
                    "e_san_present",
                    "RFC 5280 §4.2.1.6",
                    "empty subject requires a subjectAltName",
                ),
                (Some(_), None) => out.fail(
                    "e_san_decodes",
                    "RFC 5280 §4.2.1.6",
                    "subjectAltName is malformed",
                ),
                (Some(ext), Some(names)) => {
                    if names.0.is_empty() {
                        out.fail(
                            "e_san_not_empty",
                            "RFC 5280 §4.2.1.6",
                            "subjectAltName must hold at least one name",
                        );
                    }
                    if ext.critical != subject_empty {
                        out.fail(
                            "e_san_criticality",
                            "RFC 5280 §4.2.1.6",
                            "subjectAltName is critical exactly when the subject is empty",
                        );
                    }
                    for name in &names.0 {
                        if let GeneralName::DnsName(dns) = name {
                            if dns.as_str().is_empty() || dns.as_str().contains(' ') {
                                out.fail(
                                    "e_san_dns_syntax",
                                    "RFC 5280 §4.2.1.6",
                                    "malformed dNSName",
                                );
                            }
                        }
                    }
                    if let Err(e) = profile.check_sans(&names.0) {
                        out.fail("e_san_profile", "profile san", e.to_string());
                    }
                }
                (None, _) => {}
            }
            if let Err(e) = profile.check_subject(&tbs.subject) {
                out.fail("e_subject_profile", "profile subject", e.to_string());
            }
            let server_auth = find(tbs, ExtendedKeyUsage::OID)
                .and_then(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok())
                .is_some_and(|eku| eku.0.contains(&ID_KP_SERVER_AUTH));
            if server_auth {
                if let Some(cn) = first_attribute(&tbs.subject, AttributeKind::CN) {
                    let in_san = san.as_ref().is_some_and(|s| {
                        s.0.iter().any(|n| matches!(n, GeneralName::DnsName(d) if d.as_str().eq_ignore_ascii_case(&cn)))
                    });
                    if !in_san {
                        out.fail(
                            "e_cn_in_san",
                            "CA/B BR §7.1.4.3",
                            "a TLS server's CN must repeat one of its DNS SANs",
                        );
                    }
                }
            }
        }
    }
}
