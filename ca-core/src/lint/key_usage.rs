//! basicConstraints, keyUsage and extendedKeyUsage: present, critical where required, fitting the
//! key type and the profile (RFC 5280 §4.2.1.3, §4.2.1.9, §4.2.1.12; RFC 8813 §3 for EC keys).

use const_oid::AssociatedOid;
use der::Decode;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::TbsCertificate;

use super::{find, Expectation, Findings, LintContext};
use crate::profile::KeyUsageName;
use crate::public_key::KeyType;

pub(super) fn check(tbs: &TbsCertificate, ctx: &LintContext<'_>, out: &mut Findings) {
    let basic = find(tbs, BasicConstraints::OID);
    let basic_value = basic.and_then(|e| BasicConstraints::from_der(e.extn_value.as_bytes()).ok());
    let usage_ext = find(tbs, KeyUsage::OID);
    let usage = usage_ext.and_then(|e| KeyUsage::from_der(e.extn_value.as_bytes()).ok());
    match (basic, &basic_value) {
        (Some(ext), Some(_)) if !ext.critical => out.fail(
            "e_basic_constraints_critical",
            "RFC 5280 §4.2.1.9",
            "basicConstraints must be critical",
        ),
        (None, _) | (_, None) => out.fail(
            "e_basic_constraints_present",
            "RFC 5280 §4.2.1.9",
            "basicConstraints is missing or malformed",
        ),
        _ => {}
    }
    match (usage_ext, &usage) {
        (Some(ext), Some(_)) if !ext.critical => out.fail(
            "e_key_usage_critical",
            "RFC 5280 §4.2.1.3",
            "keyUsage should be critical",
        ),
        (None, _) | (_, None) => out.fail(
            "e_key_usage_present",
            "RFC 5280 §4.2.1.3",
            "keyUsage is missing or malformed",
        ),
        _ => {}
    }
    let eku = find(tbs, ExtendedKeyUsage::OID);
    if let Some(ext) = eku {
        if ext.critical {
            out.fail(
                "e_eku_not_critical",
                "profile",
                "extendedKeyUsage is issued non-critical",
            );
        }
    }
    match ctx.expectation {
        Expectation::Ca { path_len } => {
            if let Some(bc) = &basic_value {
                if !bc.ca || bc.path_len_constraint != path_len {
                    out.fail(
                        "e_ca_basic_constraints",
                        "RFC 5280 §4.2.1.9",
                        "CA certificate needs cA TRUE with the configured pathLenConstraint",
                    );
                }
            }
            if let Some(ku) = &usage {
                if !ku.key_cert_sign() || !ku.crl_sign() {
                    out.fail(
                        "e_ca_key_usage",
                        "RFC 5280 §4.2.1.3",
                        "CA certificate needs keyCertSign and cRLSign",
                    );
                }
            }
            if eku.is_some() {
                out.fail(
                    "e_ca_no_eku",
                    "profile",
                    "CA certificates carry no extendedKeyUsage",
                );
            }
        }
        Expectation::Leaf {
            profile, key_kind, ..
        } => {
            if let Some(bc) = &basic_value {
                if bc.ca || bc.path_len_constraint.is_some() {
                    out.fail(
                        "e_leaf_not_ca",
                        "RFC 5280 §4.2.1.9",
                        "end-entity certificate must have cA FALSE and no pathLenConstraint",
                    );
                }
            }
            if let Some(ku) = &usage {
                if ku.key_cert_sign() || ku.crl_sign() {
                    out.fail(
                        "e_leaf_no_cert_sign",
                        "RFC 5280 §4.2.1.3",
                        "end-entity certificate must not have keyCertSign or cRLSign",
                    );
                }
                let key_type = key_kind.key_type();
                let forbidden: &[(KeyUsages, &str)] = match key_type {
                    KeyType::Rsa => &[
                        (KeyUsages::KeyAgreement, "keyAgreement"),
                        (KeyUsages::EncipherOnly, "encipherOnly"),
                        (KeyUsages::DecipherOnly, "decipherOnly"),
                    ],
                    KeyType::EcdsaP256 | KeyType::EcdsaP384 => &[
                        (KeyUsages::KeyEncipherment, "keyEncipherment"),
                        (KeyUsages::DataEncipherment, "dataEncipherment"),
                    ],
                    KeyType::Ed25519 => &[
                        (KeyUsages::KeyEncipherment, "keyEncipherment"),
                        (KeyUsages::DataEncipherment, "dataEncipherment"),
                        (KeyUsages::KeyAgreement, "keyAgreement"),
                    ],
                };
                for (flag, name) in forbidden {
                    if ku.0.contains(*flag) {
                        out.fail(
                            "e_key_usage_fits_key",
                            "RFC 8813 §3, RFC 8410 §5, RFC 4055",
                            format!("{name} does not fit a {} key", key_type.as_str()),
                        );
                    }
                }
                let expected = profile
                    .key_usage()
                    .iter()
                    .filter(|u| u.fits(key_type))
                    .fold(
                        x509_cert::ext::pkix::KeyUsage(Default::default()).0,
                        |acc, u: &KeyUsageName| acc | u.flag(),
                    );
                if ku.0 != expected {
                    out.fail(
                        "e_key_usage_matches_profile",
                        "profile key_usage",
                        "keyUsage differs from the profile",
                    );
                }
            }
            match eku.and_then(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok()) {
                None if profile.extended_key_usage().is_empty() && eku.is_none() => {}
                None => out.fail(
                    "e_eku_present",
                    "profile extended_key_usage",
                    "extendedKeyUsage is missing",
                ),
                Some(_) if profile.extended_key_usage().is_empty() => out.fail(
                    "e_eku_matches_profile",
                    "profile extended_key_usage",
                    "extendedKeyUsage present where the profile names none",
                ),
                Some(value) => {
                    let expected: Vec<_> = profile
                        .extended_key_usage()
                        .iter()
                        .map(|e| e.oid())
                        .collect();
                    if value.0 != expected {
                        out.fail(
                            "e_eku_matches_profile",
                            "profile extended_key_usage",
                            "extendedKeyUsage differs from the profile",
                        );
                    }
                }
            }
        }
    }
}
