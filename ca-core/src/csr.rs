//! PKCS#10 certificate signing requests (RFC 2986): bytes in, [`VerifiedCsr`] out.
//!
//! Parsing checks the structure, the version, the public key (see [`crate::public_key`]) and the
//! signature over the exact `certificationRequestInfo` bytes received (proof of possession). Of
//! the requested extensions only the subjectAltName is read, and only as a wish that the profile
//! then filters; every other requested extension is ignored.

use const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME;
use const_oid::db::rfc5912::ID_EXTENSION_REQ;
use der::{Decode, Header, Reader, SliceReader};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::request::CertReq;

use crate::error::CsrError;
use crate::public_key::{self, PublicKeyKind, VerifyFailure};
use crate::signature_memo::SignatureMemo;

/// The largest CSR accepted, in bytes (DER or PEM).
pub const MAX_CSR_LEN: usize = 64 * 1024;

/// A CSR whose structure and signature have been checked.
#[derive(Debug, Clone)]
pub struct VerifiedCsr {
    der: Vec<u8>,
    subject: Name,
    public_key: SubjectPublicKeyInfoOwned,
    key_kind: PublicKeyKind,
    requested_sans: Vec<GeneralName>,
}

impl VerifiedCsr {
    /// Parses PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`) or DER and verifies it.
    /// RSA keys shorter than `min_rsa_bits` are refused.
    pub fn parse(input: &[u8], min_rsa_bits: usize) -> Result<Self, CsrError> {
        Self::check(input, min_rsa_bits, None)
    }

    /// As [`VerifiedCsr::parse`], but the signature of a CSR whose exact bytes `memo` saw verify
    /// before is not checked again (a device enroller re-issuing known terminals sends the same
    /// CSR each time; the signature check is most of a CSR's cost). Everything else is checked
    /// every time, and only signatures that verified are remembered.
    pub fn parse_remembering(
        input: &[u8],
        min_rsa_bits: usize,
        memo: &SignatureMemo,
    ) -> Result<Self, CsrError> {
        Self::check(input, min_rsa_bits, Some(memo))
    }

    fn check(
        input: &[u8],
        min_rsa_bits: usize,
        memo: Option<&SignatureMemo>,
    ) -> Result<Self, CsrError> {
        if input.len() > MAX_CSR_LEN {
            return Err(CsrError::TooLarge {
                size: input.len(),
                max: MAX_CSR_LEN,
            });
        }
        let der = to_der(input)?;
        let request = CertReq::from_der(&der).map_err(|e| CsrError::Der(e.to_string()))?;
        if request.info.version != x509_cert::request::Version::V1 {
            return Err(CsrError::Version);
        }
        let key_kind = public_key::classify(&request.info.public_key, min_rsa_bits)?;
        let info_bytes = info_tlv(&der)?;
        let signature = request.signature.as_bytes().ok_or(CsrError::BadSignature)?;
        let seen = memo.map(|m| (m, SignatureMemo::key_of(&der)));
        if !seen.as_ref().is_some_and(|(m, key)| m.contains(key)) {
            public_key::verify(
                &request.info.public_key,
                key_kind,
                &request.algorithm,
                info_bytes,
                signature,
            )
            .map_err(|e| match e {
                VerifyFailure::UnsupportedAlgorithm => {
                    CsrError::UnsupportedSignatureAlgorithm(request.algorithm.oid)
                }
                VerifyFailure::BadSignature => CsrError::BadSignature,
            })?;
            if let Some((memo, key)) = seen {
                memo.insert(key);
            }
        }
        let requested_sans = requested_sans(&request)?;
        Ok(VerifiedCsr {
            der,
            subject: request.info.subject,
            public_key: request.info.public_key,
            key_kind,
            requested_sans,
        })
    }

    /// The CSR's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
    /// The requested subject (to be checked against a profile).
    pub fn subject(&self) -> &Name {
        &self.subject
    }
    /// The public key to certify.
    pub fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.public_key
    }
    /// The key's classification.
    pub fn key_kind(&self) -> PublicKeyKind {
        self.key_kind
    }
    /// SANs the CSR asks for (to be checked against a profile).
    pub fn requested_sans(&self) -> &[GeneralName] {
        &self.requested_sans
    }
    /// The CSR's signature algorithm (for information only).
    pub fn signature_algorithm(&self) -> Option<AlgorithmIdentifierOwned> {
        CertReq::from_der(&self.der).ok().map(|r| r.algorithm)
    }
}

fn to_der(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    let trimmed = input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|start| &input[start..])
        .unwrap_or_default();
    if trimmed.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(trimmed).map_err(|_| CsrError::NotPemOrDer)?;
        let (label, der) = der::pem::decode_vec(text.trim_end().as_bytes())
            .map_err(|e| CsrError::Der(e.to_string()))?;
        if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
            return Err(CsrError::NotPemOrDer);
        }
        Ok(der)
    } else if trimmed.first() == Some(&0x30) {
        Ok(trimmed.to_vec())
    } else {
        Err(CsrError::NotPemOrDer)
    }
}

/// The raw `certificationRequestInfo` TLV: the bytes the signature covers.
fn info_tlv(der: &[u8]) -> Result<&[u8], CsrError> {
    let mut reader = SliceReader::new(der).map_err(|e| CsrError::Der(e.to_string()))?;
    Header::decode(&mut reader).map_err(|e| CsrError::Der(e.to_string()))?;
    reader.tlv_bytes().map_err(|e| CsrError::Der(e.to_string()))
}

fn requested_sans(request: &CertReq) -> Result<Vec<GeneralName>, CsrError> {
    let mut sans = Vec::new();
    for attribute in request.info.attributes.iter() {
        if attribute.oid != ID_EXTENSION_REQ {
            continue;
        }
        for value in attribute.values.iter() {
            let extensions: Vec<Extension> =
                value.decode_as().map_err(|_| CsrError::ExtensionRequest)?;
            for extension in extensions {
                if extension.extn_id == ID_CE_SUBJECT_ALT_NAME {
                    let san = SubjectAltName::from_der(extension.extn_value.as_bytes())
                        .map_err(|_| CsrError::ExtensionRequest)?;
                    sans.extend(san.0);
                }
            }
        }
    }
    Ok(sans)
}

/// Builds a DER PKCS#10 request for `subject` and `sans`, signed by `key`: how Mamori requests
/// certificates for keys it holds itself (its OCSP responder, its API listener) and how the CLI
/// makes CSRs for EC keys.
pub fn build_csr(
    subject: &Name,
    sans: Vec<GeneralName>,
    key: &dyn crate::signer::SigningKey,
) -> Result<Vec<u8>, CsrError> {
    use der::asn1::{BitString, SetOfVec};
    use der::Encode;
    use x509_cert::attr::Attribute;
    use x509_cert::request::{CertReqInfo, ExtensionReq};
    let der_err = |e: der::Error| CsrError::Der(e.to_string());
    let mut attributes = Vec::new();
    if !sans.is_empty() {
        let extension = crate::extensions::extension(&SubjectAltName(sans), subject.is_empty())
            .map_err(der_err)?;
        attributes.push(Attribute::try_from(ExtensionReq(vec![extension])).map_err(der_err)?);
    }
    let info = CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject: subject.clone(),
        public_key: key.public_key_info().clone(),
        attributes: SetOfVec::try_from(attributes).map_err(der_err)?,
    };
    let info_der = info.to_der().map_err(der_err)?;
    let signature = key.sign(&info_der).map_err(|_| CsrError::BadSignature)?;
    CertReq {
        info,
        algorithm: key.algorithm().identifier(),
        signature: BitString::from_bytes(&signature).map_err(der_err)?,
    }
    .to_der()
    .map_err(der_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(params: rcgen::CertificateParams, key: &rcgen::KeyPair) -> Vec<u8> {
        params.serialize_request(key).unwrap().der().to_vec()
    }

    #[test]
    fn parses_pem_and_der_and_reads_sans() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["ehr.hospital.example".to_string()]).unwrap();
        let der = csr(params.clone(), &key);
        let verified = VerifiedCsr::parse(&der, 2048).unwrap();
        assert_eq!(verified.key_kind(), PublicKeyKind::EcdsaP256);
        assert_eq!(verified.requested_sans().len(), 1);
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        assert!(VerifiedCsr::parse(pem.as_bytes(), 2048).is_ok());
    }

    #[test]
    fn built_csrs_verify_and_carry_sans() {
        let (key, _) = crate::key::SoftwareKey::generate(
            crate::key::KeyAlgorithm::EcdsaP384,
            &crate::random::OsRandom,
        )
        .unwrap();
        let name =
            crate::name::build_name(&[(crate::name::AttributeKind::CN, "x".into())]).unwrap();
        let san = GeneralName::DnsName(der::asn1::Ia5String::new("a.example").unwrap());
        let der = build_csr(&name, vec![san.clone()], &key).unwrap();
        let csr = VerifiedCsr::parse(&der, 2048).unwrap();
        assert_eq!(csr.requested_sans(), &[san]);
        assert_eq!(csr.key_kind(), PublicKeyKind::EcdsaP384);
        assert!(openssl::x509::X509Req::from_der(&der).is_ok());
    }

    #[test]
    fn rejects_bad_signature() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut der = csr(
            rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap(),
            &key,
        );
        let last = der.len() - 3;
        der[last] ^= 0x01;
        assert!(matches!(
            VerifiedCsr::parse(&der, 2048),
            Err(CsrError::BadSignature)
        ));
    }

    #[test]
    fn a_remembered_signature_is_not_checked_again_and_a_bad_one_never_remembered() {
        let key = rcgen::KeyPair::generate().unwrap();
        let der = csr(
            rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap(),
            &key,
        );
        let mut forged = der.clone();
        let last = forged.len() - 3;
        forged[last] ^= 0x01;
        let memo = SignatureMemo::new(16);
        for _ in 0..2 {
            assert!(matches!(
                VerifiedCsr::parse_remembering(&forged, 2048, &memo),
                Err(CsrError::BadSignature)
            ));
        }
        assert!(memo.is_empty(), "a failed check is not remembered");
        let first = VerifiedCsr::parse_remembering(&der, 2048, &memo).unwrap();
        assert!(memo.contains(&SignatureMemo::key_of(&der)));
        let again = VerifiedCsr::parse_remembering(&der, 2048, &memo).unwrap();
        assert_eq!(first.der(), again.der());
        assert_eq!(first.subject(), again.subject());
        assert!(matches!(
            VerifiedCsr::parse_remembering(&forged, 2048, &memo),
            Err(CsrError::BadSignature)
        ));
        // The other checks still run on a remembered CSR.
        assert!(matches!(
            VerifiedCsr::parse_remembering(&der[..der.len() - 1], 2048, &memo),
            Err(CsrError::Der(_))
        ));
    }

    #[test]
    fn rejects_garbage_truncation_and_oversize() {
        assert!(matches!(
            VerifiedCsr::parse(b"hello", 2048),
            Err(CsrError::NotPemOrDer)
        ));
        let key = rcgen::KeyPair::generate().unwrap();
        let der = csr(
            rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap(),
            &key,
        );
        assert!(matches!(
            VerifiedCsr::parse(&der[..der.len() / 2], 2048),
            Err(CsrError::Der(_))
        ));
        assert!(matches!(
            VerifiedCsr::parse(&vec![0x30; MAX_CSR_LEN + 1], 2048),
            Err(CsrError::TooLarge { .. })
        ));
        assert!(matches!(
            VerifiedCsr::parse(
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                2048
            ),
            Err(CsrError::NotPemOrDer)
        ));
    }

    #[test]
    fn rejects_deeply_nested_asn1() {
        let mut der = Vec::new();
        for _ in 0..100 {
            der.insert(0, 0x80);
            der.insert(0, 0x30);
        }
        assert!(VerifiedCsr::parse(&der, 2048).is_err());
    }

    #[test]
    fn rejects_weak_rsa() {
        let rsa = openssl::rsa::Rsa::generate(1024).unwrap();
        let pkey = openssl::pkey::PKey::from_rsa(rsa).unwrap();
        let mut req = openssl::x509::X509ReqBuilder::new().unwrap();
        req.set_pubkey(&pkey).unwrap();
        req.sign(&pkey, openssl::hash::MessageDigest::sha256())
            .unwrap();
        let der = req.build().to_der().unwrap();
        assert!(matches!(
            VerifiedCsr::parse(&der, 2048),
            Err(CsrError::PublicKey(
                crate::error::PublicKeyError::RsaTooSmall { bits: 1024, .. }
            ))
        ));
    }
}
