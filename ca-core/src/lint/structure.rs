//! Version, serial number, signature algorithm, issuer name, and extension hygiene.

use std::collections::HashSet;

use const_oid::db::rfc5280::{
    ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_BASIC_CONSTRAINTS, ID_CE_CRL_DISTRIBUTION_POINTS,
    ID_CE_EXT_KEY_USAGE, ID_CE_FRESHEST_CRL, ID_CE_KEY_USAGE, ID_CE_NAME_CONSTRAINTS,
    ID_CE_SUBJECT_ALT_NAME, ID_CE_SUBJECT_KEY_IDENTIFIER, ID_PE_AUTHORITY_INFO_ACCESS,
};
use const_oid::db::rfc6960::ID_PKIX_OCSP_NOCHECK;
use x509_cert::{TbsCertificate, Version};

use super::{extensions, Findings, LintContext};

pub(super) fn check(tbs: &TbsCertificate, ctx: &LintContext<'_>, out: &mut Findings) {
    if tbs.version != Version::V3 {
        out.fail(
            "e_version_v3",
            "RFC 5280 §4.1.2.1",
            "certificates with extensions must be v3",
        );
    }
    let serial = tbs.serial_number.as_bytes();
    if serial.len() > 20 {
        out.fail(
            "e_serial_length",
            "RFC 5280 §4.1.2.2",
            "serial number longer than 20 octets",
        );
    }
    if serial.len() < 8 {
        out.fail(
            "e_serial_entropy",
            "RFC 5280 §4.1.2.2, BR §7.1",
            "serial number shorter than 64 bits",
        );
    }
    if serial.first().is_some_and(|b| b & 0x80 != 0) || serial.iter().all(|b| *b == 0) {
        out.fail(
            "e_serial_positive",
            "RFC 5280 §4.1.2.2",
            "serial number must be positive",
        );
    }
    if tbs.signature != ctx.signature_algorithm {
        out.fail(
            "e_signature_algorithm_matches_issuer",
            "RFC 5280 §4.1.2.3",
            "TBS signature algorithm differs from the issuer key's",
        );
    }
    match ctx.issuer_subject {
        Some(issuer) if &tbs.issuer != issuer => out.fail(
            "e_issuer_matches_ca",
            "RFC 5280 §4.1.2.4",
            "issuer name differs from the CA's subject",
        ),
        None if tbs.issuer != tbs.subject => out.fail(
            "e_root_self_issued",
            "RFC 5280 §4.1.2.4",
            "a root's issuer must equal its subject",
        ),
        _ => {}
    }
    if tbs.issuer.is_empty() {
        out.fail(
            "e_issuer_not_empty",
            "RFC 5280 §4.1.2.4",
            "issuer name must not be empty",
        );
    }
    if tbs.issuer_unique_id.is_some() || tbs.subject_unique_id.is_some() {
        out.fail(
            "e_no_unique_ids",
            "RFC 5280 §4.1.2.8",
            "conforming CAs must not generate unique identifiers",
        );
    }
    let known = [
        ID_CE_BASIC_CONSTRAINTS,
        ID_CE_KEY_USAGE,
        ID_CE_EXT_KEY_USAGE,
        ID_CE_SUBJECT_ALT_NAME,
        ID_CE_SUBJECT_KEY_IDENTIFIER,
        ID_CE_AUTHORITY_KEY_IDENTIFIER,
        ID_CE_CRL_DISTRIBUTION_POINTS,
        ID_PE_AUTHORITY_INFO_ACCESS,
        ID_CE_NAME_CONSTRAINTS,
        ID_PKIX_OCSP_NOCHECK,
        ID_CE_FRESHEST_CRL,
        const_oid::db::rfc5280::ID_CE_CERTIFICATE_POLICIES,
        crate::extensions::ID_CE_NO_REV_AVAIL,
    ];
    let mut seen = HashSet::new();
    for extension in extensions(tbs) {
        if !seen.insert(extension.extn_id) {
            out.fail(
                "e_extension_once",
                "RFC 5280 §4.2",
                format!("extension {} appears more than once", extension.extn_id),
            );
        }
        if !known.contains(&extension.extn_id) {
            out.fail(
                "e_extension_known",
                "profile",
                format!("extension {} is not one Mamori issues", extension.extn_id),
            );
        }
    }
    no_rev_avail(tbs, ctx, out);
    if tbs.extensions.as_ref().is_some_and(|e| e.is_empty()) {
        out.fail(
            "e_extensions_not_empty",
            "RFC 5280 §4.1",
            "an empty extensions field must be omitted",
        );
    }
}

/// noRevAvail (RFC 9608 §2): non-critical NULL, only in end-entity certificates, and never
/// beside a CRL distribution point, a Freshest CRL or an OCSP pointer; present exactly when the
/// profile asks for it.
fn no_rev_avail(tbs: &TbsCertificate, ctx: &LintContext<'_>, out: &mut Findings) {
    use der::Decode;
    use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, BasicConstraints};
    let all = extensions(tbs);
    let found = all
        .iter()
        .find(|e| e.extn_id == crate::extensions::ID_CE_NO_REV_AVAIL);
    if let super::Expectation::Leaf { profile, .. } = &ctx.expectation {
        if profile.no_revocation_available() != found.is_some() {
            out.fail(
                "e_no_rev_avail_as_profile",
                "profile",
                "noRevAvail must be present exactly when the profile sets no_revocation_available",
            );
        }
    }
    let Some(extension) = found else {
        return;
    };
    if extension.critical || der::asn1::Null::from_der(extension.extn_value.as_bytes()).is_err() {
        out.fail(
            "e_no_rev_avail_non_critical_null",
            "RFC 9608 §2",
            "noRevAvail must be a non-critical NULL",
        );
    }
    let is_ca = all
        .iter()
        .find(|e| e.extn_id == ID_CE_BASIC_CONSTRAINTS)
        .and_then(|e| BasicConstraints::from_der(e.extn_value.as_bytes()).ok())
        .is_some_and(|b| b.ca);
    if is_ca {
        out.fail(
            "e_no_rev_avail_end_entity",
            "RFC 9608 §2",
            "noRevAvail belongs in end-entity certificates only",
        );
    }
    let ocsp = all
        .iter()
        .find(|e| e.extn_id == ID_PE_AUTHORITY_INFO_ACCESS)
        .and_then(|e| AuthorityInfoAccessSyntax::from_der(e.extn_value.as_bytes()).ok())
        .is_some_and(|aia| {
            aia.0
                .iter()
                .any(|a| a.access_method == const_oid::db::rfc5280::ID_AD_OCSP)
        });
    let crl = all
        .iter()
        .any(|e| e.extn_id == ID_CE_CRL_DISTRIBUTION_POINTS || e.extn_id == ID_CE_FRESHEST_CRL);
    if ocsp || crl {
        out.fail(
            "e_no_rev_avail_without_pointers",
            "RFC 9608 §2",
            "a noRevAvail certificate must carry no CRL distribution point, Freshest CRL or OCSP URL",
        );
    }
}
