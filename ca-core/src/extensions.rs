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

/// id-ce-noRevAvail (RFC 9608 §2).
pub const ID_CE_NO_REV_AVAIL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.56");

/// noRevAvail (NULL), non-critical (RFC 9608 §2): the CA publishes no revocation information
/// for the certificate, so relying parties skip revocation checking.
pub fn no_rev_avail() -> Result<Extension, der::Error> {
    Ok(Extension {
        extn_id: ID_CE_NO_REV_AVAIL,
        critical: false,
        extn_value: OctetString::new(Null.to_der()?)?,
    })
}

/// Whether the certificate `der` carries noRevAvail: it cannot be revoked or held (relying
/// parties do not look for revocation information for it).
pub fn declares_no_rev_avail(der: &[u8]) -> bool {
    use der::Decode;
    x509_cert::Certificate::from_der(der).is_ok_and(|c| {
        c.tbs_certificate
            .extensions
            .unwrap_or_default()
            .iter()
            .any(|e| e.extn_id == ID_CE_NO_REV_AVAIL)
    })
}

/// The DER content octets of the OID written `text` (dotted decimal). Every arc must fit in 32
/// bits: UUID OIDs (`2.25.<uuid>`, ITU-T X.667) are refused, because pkilint (pyasn1) fails them
/// as FATAL and Windows' CryptoAPI, which NPS and Schannel validate with, handles 32-bit arcs
/// only. (Checked here, before `const_oid`, whose parser panics on such arcs.)
pub fn oid_content(text: &str) -> Result<Vec<u8>, String> {
    let arcs: Vec<u128> = text
        .split('.')
        .map(|a| {
            if a.is_empty()
                || !a.chars().all(|c| c.is_ascii_digit())
                || (a.len() > 1 && a.starts_with('0'))
            {
                return Err(format!("{text:?} is not a dotted-decimal OID"));
            }
            a.parse::<u128>()
                .ok()
                .filter(|v| *v <= u128::from(u32::MAX))
                .ok_or_else(|| {
                    format!(
                        "{text:?}: arc {a} is larger than 32 bits, which pkilint and Windows refuse; \
                         use an arc under your organization's IANA Private Enterprise Number"
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    if arcs.len() < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39) {
        return Err(format!("{text:?} is not a valid OID"));
    }
    let first = arcs[0]
        .checked_mul(40)
        .and_then(|v| v.checked_add(arcs[1]))
        .ok_or_else(|| format!("{text:?}: arc too large"))?;
    let mut out = Vec::new();
    for arc in std::iter::once(first).chain(arcs[2..].iter().copied()) {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            groups.push((rest & 0x7f) as u8 | 0x80);
            rest >>= 7;
        }
        out.extend(groups.iter().rev());
    }
    if out.len() > 127 {
        return Err(format!("{text:?} is too long"));
    }
    Ok(out)
}

/// certificatePolicies (RFC 5280 §4.2.1.4), non-critical: one PolicyInformation naming the OID
/// whose content octets are `oid_content` ([`oid_content`]), without qualifiers.
pub fn certificate_policies(oid_content: &[u8]) -> Result<Extension, der::Error> {
    let len = u8::try_from(oid_content.len()).map_err(|_| der::ErrorKind::Overlength)?;
    let mut oid = vec![0x06, len];
    oid.extend_from_slice(oid_content);
    let information = sequence(&oid)?;
    let policies = sequence(&information)?;
    Ok(Extension {
        extn_id: const_oid::db::rfc5280::ID_CE_CERTIFICATE_POLICIES,
        critical: false,
        extn_value: OctetString::new(policies)?,
    })
}

fn sequence(content: &[u8]) -> Result<Vec<u8>, der::Error> {
    let mut out = Vec::with_capacity(content.len() + 4);
    der::Header::new(der::Tag::Sequence, content.len())?.encode_to_vec(&mut out)?;
    out.extend_from_slice(content);
    Ok(out)
}

#[cfg(test)]
mod oid_tests {
    use super::*;

    #[test]
    fn oids_encode_like_openssl_and_big_arcs_are_refused() {
        // A UUID OID (X.667's example): a 128-bit arc, refused.
        let refused = oid_content("2.25.329800735698586629295641978511506172918").unwrap_err();
        assert!(refused.contains("32 bits"), "{refused}");
        assert!(oid_content("1.3.6.1.4.1.4294967296.1").is_err());
        // `openssl asn1parse -genstr OID:1.3.6.1.4.1.4294967295.1` gives 06 0B and these.
        assert_eq!(
            oid_content("1.3.6.1.4.1.4294967295.1").unwrap(),
            [0x2b, 0x06, 0x01, 0x04, 0x01, 0x8f, 0xff, 0xff, 0xff, 0x7f, 0x01]
        );
        let content = oid_content("1.3.6.1.4.1.55555.1.2").unwrap();
        assert_eq!(
            oid_content("1.2.840.113549").unwrap(),
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]
        );
        assert!(oid_content("3.1").is_err());
        assert!(oid_content("1.40").is_err());
        assert!(oid_content("1.2.x").is_err());
        assert!(oid_content("1.02").is_err());
        assert!(certificate_policies(&content).is_ok());
    }
}
