//! Subject and authority key identifiers (RFC 5280 §4.2.1.1, §4.2.1.2).

use der::Decode;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};
use x509_cert::TbsCertificate;

use super::{find, Findings, LintContext};
use crate::extensions::key_identifier;

pub(super) fn check(tbs: &TbsCertificate, ctx: &LintContext<'_>, out: &mut Findings) {
    use const_oid::AssociatedOid;
    match find(tbs, SubjectKeyIdentifier::OID) {
        None => out.fail(
            "e_ski_present",
            "RFC 5280 §4.2.1.2",
            "subjectKeyIdentifier is missing",
        ),
        Some(ext) => {
            if ext.critical {
                out.fail(
                    "e_ski_not_critical",
                    "RFC 5280 §4.2.1.2",
                    "subjectKeyIdentifier must not be critical",
                );
            }
            match SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes()) {
                Ok(ski) if ski.0.as_bytes() == key_identifier(&tbs.subject_public_key_info) => {}
                _ => out.fail(
                    "e_ski_matches_key",
                    "RFC 5280 §4.2.1.2",
                    "subjectKeyIdentifier does not match the subject key",
                ),
            }
        }
    }
    match find(tbs, AuthorityKeyIdentifier::OID) {
        None => out.fail(
            "e_aki_present",
            "RFC 5280 §4.2.1.1",
            "authorityKeyIdentifier is missing",
        ),
        Some(ext) => {
            if ext.critical {
                out.fail(
                    "e_aki_not_critical",
                    "RFC 5280 §4.2.1.1",
                    "authorityKeyIdentifier must not be critical",
                );
            }
            match AuthorityKeyIdentifier::from_der(ext.extn_value.as_bytes()) {
                Ok(aki)
                    if aki.key_identifier.as_ref().map(|k| k.as_bytes())
                        == Some(ctx.issuer_key_id) => {}
                _ => out.fail(
                    "e_aki_matches_issuer",
                    "RFC 5280 §4.2.1.1",
                    "authorityKeyIdentifier does not match the issuer's key identifier",
                ),
            }
        }
    }
}
