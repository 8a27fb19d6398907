//! Building X.509 extensions as RustCrypto types (RFC 5280 §4.2), and the few Mamori needs that
//! the formats crates do not define (id-pkix-ocsp-nocheck, RFC 6960 §4.2.2.2.1).

use const_oid::db::rfc5280::{ID_AD_CA_ISSUERS, ID_AD_OCSP};
use const_oid::db::rfc6960::ID_PKIX_OCSP_NOCHECK;
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{Ia5String, Null, OctetString};
use der::Encode;
use sha1::{Digest, Sha1};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, CrlDistributionPoints,
    SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;

/// The curve OID named in an id-ecPublicKey AlgorithmIdentifier's parameters.
pub fn curve_of(algorithm: &AlgorithmIdentifierOwned) -> Option<ObjectIdentifier> {
    algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
}

/// Wraps an encodable extension value (RFC 5280 §4.1: `extnValue OCTET STRING`).
pub fn extension<T: Encode + AssociatedOid>(
    value: &T,
    critical: bool,
) -> Result<Extension, der::Error> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// Key identifier by RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING value.
/// The same value is the OCSP `KeyHash` (RFC 6960 §4.2.1).
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec()
}

/// subjectKeyIdentifier, non-critical (RFC 5280 §4.2.1.2).
pub fn subject_key_identifier(key_id: &[u8]) -> Result<Extension, der::Error> {
    extension(&SubjectKeyIdentifier(OctetString::new(key_id)?), false)
}

/// authorityKeyIdentifier with keyIdentifier only, non-critical (RFC 5280 §4.2.1.1).
pub fn authority_key_identifier(issuer_key_id: &[u8]) -> Result<Extension, der::Error> {
    extension(
        &AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(issuer_key_id)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
        false,
    )
}

/// A single URI GeneralName.
pub fn uri_name(uri: &str) -> Result<GeneralName, der::Error> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(uri)?))
}

/// cRLDistributionPoints with one fullName URI, non-critical (RFC 5280 §4.2.1.13).
pub fn crl_distribution_points(url: &str) -> Result<Extension, der::Error> {
    extension(
        &CrlDistributionPoints(vec![DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![uri_name(url)?])),
            reasons: None,
            crl_issuer: None,
        }]),
        false,
    )
}

/// freshestCRL naming one delta-CRL URI, non-critical (RFC 5280 §4.2.1.15).
pub fn freshest_crl(url: &str) -> Result<Extension, der::Error> {
    extension(
        &x509_cert::ext::pkix::FreshestCrl(vec![DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![uri_name(url)?])),
            reasons: None,
            crl_issuer: None,
        }]),
        false,
    )
}

/// authorityInfoAccess with optional OCSP and caIssuers URIs, non-critical (RFC 5280 §4.2.2.1).
pub fn authority_info_access(
    ocsp: Option<&str>,
    ca_issuers: Option<&str>,
) -> Result<Option<Extension>, der::Error> {
    let mut access = Vec::new();
    if let Some(url) = ocsp {
        access.push(AccessDescription {
            access_method: ID_AD_OCSP,
            access_location: uri_name(url)?,
        });
    }
    if let Some(url) = ca_issuers {
        access.push(AccessDescription {
            access_method: ID_AD_CA_ISSUERS,
            access_location: uri_name(url)?,
        });
    }
    if access.is_empty() {
        return Ok(None);
    }
    extension(&AuthorityInfoAccessSyntax(access), false).map(Some)
}

/// id-pkix-ocsp-nocheck (NULL), non-critical (RFC 6960 §4.2.2.2.1).
pub fn ocsp_no_check() -> Result<Extension, der::Error> {
    Ok(Extension {
        extn_id: ID_PKIX_OCSP_NOCHECK,
        critical: false,
        extn_value: OctetString::new(Null.to_der()?)?,
    })
}
