//! The CA hierarchy: a self-signed root, issuing CAs under it (or under an external root), and
//! the [`CertificateAuthority`] handle that issuance, CRL and OCSP code sign with.
//!
//! CA certificates carry basicConstraints (critical, with pathLenConstraint), keyUsage
//! keyCertSign + cRLSign (critical), SKI and AKI (RFC 5280 §4.2.1.1-3, §4.2.1.9), and optionally
//! name constraints (§4.2.1.10) limiting an issuing CA to one hospital's domains.

use std::sync::Arc;

use const_oid::db::rfc5280::{ID_CE_BASIC_CONSTRAINTS, ID_CE_SUBJECT_KEY_IDENTIFIER};
use der::asn1::{BitString, Ia5String, SetOfVec};
use der::{Decode, Encode};
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::constraints::name::GeneralSubtree;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    BasicConstraints, KeyUsage, KeyUsages, NameConstraints, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;
use x509_cert::{Certificate, TbsCertificate, Version};

use crate::clock::Clock;
use crate::error::CaError;
use crate::extensions::{
    authority_info_access, authority_key_identifier, crl_distribution_points, extension,
    key_identifier, subject_key_identifier,
};
use crate::lint::{self, Expectation, LintContext};
use crate::public_key;
use crate::random::RandomSource;
use crate::serial::random_serial;
use crate::signer::sign_tbs;
use crate::signer::SigningKey;
use crate::time::UnixTime;

pub use crate::time::BACKDATE_SECS;

/// Default root lifetime: 20 years.
pub const DEFAULT_ROOT_VALIDITY_SECS: u64 = 20 * 365 * 86_400;

/// Default issuing-CA lifetime: 10 years.
pub const DEFAULT_ISSUING_VALIDITY_SECS: u64 = 10 * 365 * 86_400;

/// Name constraints for an issuing CA (RFC 5280 §4.2.1.10): permitted subtrees only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameConstraintSpec {
    /// dNSName subtrees, e.g. `hospital.example`.
    pub permitted_dns: Vec<String>,
    /// rfc822Name subtrees (a domain), e.g. `hospital.example`.
    pub permitted_email: Vec<String>,
}

/// What a new CA certificate should say.
#[derive(Debug, Clone)]
pub struct CaSpec {
    /// Short identifier used in URLs (`/crl/<id>.crl`) and profiles.
    pub id: String,
    /// Subject distinguished name.
    pub subject: Name,
    /// Lifetime in seconds.
    pub validity_secs: u64,
    /// pathLenConstraint; `None` leaves the path unconstrained.
    pub path_len: Option<u8>,
    /// Optional name constraints.
    pub name_constraints: Option<NameConstraintSpec>,
}

/// A CA Mamori can sign with: its certificate, its key, and where relying parties find its CRL,
/// OCSP responder and certificate.
#[derive(Clone)]
pub struct CertificateAuthority {
    id: String,
    certificate: Certificate,
    der: Vec<u8>,
    key: Arc<dyn SigningKey>,
    key_id: Vec<u8>,
    not_before: UnixTime,
    not_after: UnixTime,
    public_url: Option<String>,
    delta_crls: bool,
    crl_partitions: u32,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("id", &self.id)
            .field(
                "subject",
                &self.certificate.tbs_certificate.subject.to_string(),
            )
            .finish_non_exhaustive()
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl CertificateAuthority {
    /// Wraps an existing CA certificate and its key, checking that they belong together and that
    /// the certificate is a CA certificate. `public_url` (e.g. `http://pki.hospital.example`) is
    /// the base of the CRL, OCSP and caIssuers URLs put into certificates it issues.
    pub fn new(
        id: &str,
        certificate_der: &[u8],
        key: Arc<dyn SigningKey>,
        public_url: Option<String>,
    ) -> Result<Self, CaError> {
        if !valid_id(id) {
            return Err(CaError::Subject(format!(
                "CA id {id:?}: use lower-case letters, digits and hyphens"
            )));
        }
        let certificate =
            Certificate::from_der(certificate_der).map_err(|e| CaError::Der(e.to_string()))?;
        let tbs = &certificate.tbs_certificate;
        if &tbs.subject_public_key_info != key.public_key_info() {
            return Err(CaError::KeyMismatch);
        }
        let basic = tbs
            .get::<BasicConstraints>()
            .map_err(|e| CaError::Der(e.to_string()))?;
        match basic {
            Some((_, bc)) if bc.ca => {}
            _ => return Err(CaError::NotACa("basicConstraints cA is not true".into())),
        }
        let usage = tbs
            .get::<KeyUsage>()
            .map_err(|e| CaError::Der(e.to_string()))?;
        match usage {
            Some((_, ku)) if ku.key_cert_sign() && ku.crl_sign() => {}
            _ => {
                return Err(CaError::NotACa(
                    "keyUsage lacks keyCertSign or cRLSign".into(),
                ))
            }
        }
        let key_id = match tbs
            .get::<SubjectKeyIdentifier>()
            .map_err(|e| CaError::Der(e.to_string()))?
        {
            Some((_, ski)) => ski.0.as_bytes().to_vec(),
            None => key_identifier(key.public_key_info()),
        };
        let public_url = public_url.map(|u| u.trim_end_matches('/').to_string());
        Ok(CertificateAuthority {
            id: id.to_string(),
            not_before: UnixTime::from_x509_time(&tbs.validity.not_before),
            not_after: UnixTime::from_x509_time(&tbs.validity.not_after),
            der: certificate_der.to_vec(),
            certificate,
            key,
            key_id,
            public_url,
            delta_crls: false,
            crl_partitions: 0,
        })
    }

    /// Whether this CA's signatures leave the process (its key is in an HSM): issuance then
    /// reserves before signing.
    pub fn signs_outside_process(&self) -> bool {
        self.key().signs_outside_process()
    }

    /// The CA's identifier.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The CA certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }
    /// The CA certificate's DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.der
    }
    /// The CA certificate as PEM.
    pub fn certificate_pem(&self) -> String {
        pem(&self.der)
    }
    /// The CA's subject name (the issuer of what it signs).
    pub fn subject(&self) -> &Name {
        &self.certificate.tbs_certificate.subject
    }
    /// The signing key.
    pub(crate) fn key(&self) -> &dyn SigningKey {
        self.key.as_ref()
    }
    /// The subject key identifier (also the OCSP issuer key hash for SHA-1).
    pub fn key_id(&self) -> &[u8] {
        &self.key_id
    }
    /// Start of the CA's validity.
    pub fn not_before(&self) -> UnixTime {
        self.not_before
    }
    /// End of the CA's validity; nothing it issues may outlive it.
    pub fn not_after(&self) -> UnixTime {
        self.not_after
    }
    /// The public base URL, if configured.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }
    /// `<base>/crl/<id>.crl`: where this CA's complete, unpartitioned CRL is published.
    pub fn crl_url(&self) -> Option<String> {
        self.crl_url_for(None)
    }
    /// Publishes delta CRLs: certificates it issues then carry freshestCRL (RFC 5280 §4.2.1.15).
    pub fn with_delta_crls(mut self, enabled: bool) -> Self {
        self.delta_crls = enabled;
        self
    }
    /// Whether this CA publishes delta CRLs.
    pub fn delta_crls(&self) -> bool {
        self.delta_crls
    }
    /// `<base>/crl/<id>-delta.crl`: where this CA's delta CRL is, when it publishes one.
    pub fn delta_crl_url(&self) -> Option<String> {
        self.delta_crl_url_for(None)
    }
    /// Splits this CA's CRL into `partitions` shards (0 or 1: one CRL). Each certificate it issues
    /// then names its shard's CRL in its CRL distribution point, and each shard's CRL carries an
    /// issuingDistributionPoint with that URL (RFC 5280 §5.2.5), so no relying party ever has to
    /// download the whole revocation list.
    pub fn with_crl_partitions(mut self, partitions: u32) -> Self {
        self.crl_partitions = if partitions > 1 { partitions } else { 0 };
        self
    }
    /// How many CRL shards this CA publishes new certificates into (0: partitioning is off).
    pub fn crl_partitions(&self) -> u32 {
        self.crl_partitions
    }
    /// The shard (1-based) a certificate with this serial goes into, when partitioning is on.
    /// Serials are random, so shards fill evenly.
    pub fn crl_partition_of(&self, serial: &SerialNumber) -> Option<u32> {
        if self.crl_partitions == 0 {
            return None;
        }
        let bytes = serial.as_bytes();
        let tail = bytes
            .iter()
            .rev()
            .take(4)
            .rev()
            .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        Some(tail % self.crl_partitions + 1)
    }
    /// The file name (without `.crl`) of a CRL of this CA: `<id>`, `<id>-p<k>` for shard k, with
    /// `-delta` appended for a delta CRL.
    pub fn crl_name(&self, partition: Option<u32>, delta: bool) -> String {
        let mut name = self.id.clone();
        if let Some(k) = partition {
            name.push_str(&format!("-p{k}"));
        }
        if delta {
            name.push_str("-delta");
        }
        name
    }
    /// `<base>/crl/<name>.crl` for the complete CRL covering `partition`.
    pub fn crl_url_for(&self, partition: Option<u32>) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|b| format!("{b}/crl/{}.crl", self.crl_name(partition, false)))
    }
    /// `<base>/crl/<name>-delta.crl` for the delta CRL covering `partition`, when deltas are on.
    pub fn delta_crl_url_for(&self, partition: Option<u32>) -> Option<String> {
        if !self.delta_crls {
            return None;
        }
        self.public_url
            .as_ref()
            .map(|b| format!("{b}/crl/{}.crl", self.crl_name(partition, true)))
    }
    /// Whether this is a self-signed root: its certificate's issuer is its subject and it
    /// verifies under its own key. A root issues CA certificates and its own delegated OCSP
    /// responder, so its CRL covers every kind of certificate (no issuingDistributionPoint).
    pub fn is_root(&self) -> bool {
        let tbs = &self.certificate.tbs_certificate;
        tbs.issuer == tbs.subject
            && tbs
                .get::<x509_cert::ext::pkix::AuthorityKeyIdentifier>()
                .ok()
                .flatten()
                .and_then(|(_, aki)| aki.key_identifier)
                .is_none_or(|id| id.as_bytes() == self.key_id.as_slice())
    }
    /// The issuingDistributionPoint URL a complete or delta CRL of `partition` names (RFC 5280
    /// §5.2.5, with onlyContainsUserCerts): an issuing CA's CRLs cover only the end-entity
    /// certificates it issues. `None` for a root, whose CRL must also cover the CA certificates
    /// it issues: an IDP with onlyContainsUserCerts made OpenSSL (`error 44: different CRL
    /// scope`), Java and nginx refuse the chain, and no IDP at all is what every relying party
    /// reads as "every certificate this issuer signed".
    pub fn crl_idp_url(&self, partition: Option<u32>) -> Option<String> {
        if self.is_root() {
            return None;
        }
        self.crl_url_for(partition)
    }
    /// `<base>/ocsp`: the OCSP responder for certificates this CA issues.
    pub fn ocsp_url(&self) -> Option<String> {
        self.public_url.as_ref().map(|b| format!("{b}/ocsp"))
    }
    /// `<base>/ca/<id>.crt`: this CA's certificate in DER (the AIA caIssuers target).
    pub fn ca_issuers_url(&self) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|b| format!("{b}/ca/{}.crt", self.id))
    }
}

/// PEM-encodes a DER certificate.
pub fn pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap_or_default()
}

fn ca_extensions(
    spec: &CaSpec,
    key_id: &[u8],
    issuer_key_id: &[u8],
    parent: Option<&CertificateAuthority>,
) -> Result<Vec<Extension>, der::Error> {
    let mut extensions = vec![
        extension(
            &BasicConstraints {
                ca: true,
                path_len_constraint: spec.path_len,
            },
            true,
        )?,
        extension(
            &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature),
            true,
        )?,
        subject_key_identifier(key_id)?,
        authority_key_identifier(issuer_key_id)?,
    ];
    if let Some(constraints) = &spec.name_constraints {
        let mut permitted = Vec::new();
        for dns in &constraints.permitted_dns {
            permitted.push(GeneralSubtree {
                base: GeneralName::DnsName(Ia5String::new(dns)?),
                minimum: 0,
                maximum: None,
            });
        }
        for domain in &constraints.permitted_email {
            permitted.push(GeneralSubtree {
                base: GeneralName::Rfc822Name(Ia5String::new(domain)?),
                minimum: 0,
                maximum: None,
            });
        }
        if !permitted.is_empty() {
            extensions.push(extension(
                &NameConstraints {
                    permitted_subtrees: Some(permitted),
                    excluded_subtrees: None,
                },
                true,
            )?);
        }
    }
    if let Some(parent) = parent {
        if let Some(url) = parent.crl_url() {
            extensions.push(crl_distribution_points(&url)?);
        }
        // The parent's OCSP responder too: relying parties that check the whole chain (nginx
        // `ssl_ocsp on`, Windows, strict PKIX) ask about this CA certificate as well.
        if let Some(aia) = authority_info_access(
            parent.ocsp_url().as_deref(),
            parent.ca_issuers_url().as_deref(),
        )? {
            extensions.push(aia);
        }
    }
    Ok(extensions)
}

fn validate_name_constraints(spec: &CaSpec) -> Result<(), CaError> {
    if let Some(nc) = &spec.name_constraints {
        for domain in nc.permitted_dns.iter().chain(nc.permitted_email.iter()) {
            let ok = !domain.is_empty()
                && domain.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !ok {
                return Err(CaError::Subject(format!(
                    "name constraint {domain:?} is not a domain"
                )));
            }
        }
    }
    Ok(())
}

fn build_ca(
    spec: &CaSpec,
    key: Arc<dyn SigningKey>,
    parent: Option<&CertificateAuthority>,
    public_url: Option<String>,
    clock: &dyn Clock,
    random: &dyn RandomSource,
) -> Result<CertificateAuthority, CaError> {
    if !valid_id(&spec.id) {
        return Err(CaError::Subject(format!(
            "CA id {:?}: use lower-case letters, digits and hyphens",
            spec.id
        )));
    }
    if spec.subject.is_empty() {
        return Err(CaError::Subject("a CA subject must not be empty".into()));
    }
    if spec.validity_secs < 86_400 {
        return Err(CaError::Validity("a CA must live at least one day".into()));
    }
    validate_name_constraints(spec)?;
    let now = clock.now();
    let not_before = now.minus(BACKDATE_SECS);
    let not_after = now.plus(spec.validity_secs);
    let key_id = key_identifier(key.public_key_info());
    let (issuer, issuer_key_id, signer): (Name, Vec<u8>, &dyn SigningKey) = match parent {
        Some(p) => {
            if not_after > p.not_after() {
                return Err(CaError::Validity(format!(
                    "the CA would end at {not_after}, after its parent's end {}",
                    p.not_after()
                )));
            }
            (p.subject().clone(), p.key_id().to_vec(), p.key())
        }
        None => (spec.subject.clone(), key_id.clone(), key.as_ref()),
    };
    let der_err = |e: der::Error| CaError::Der(e.to_string());
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: random_serial(random)
            .map_err(|_| CaError::Sign(crate::error::SignError::Backend))?,
        signature: signer.algorithm().identifier(),
        issuer,
        validity: Validity {
            not_before: not_before.to_x509_time()?,
            not_after: not_after.to_x509_time()?,
        },
        subject: spec.subject.clone(),
        subject_public_key_info: key.public_key_info().clone(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(ca_extensions(spec, &key_id, &issuer_key_id, parent).map_err(der_err)?),
    };
    let tbs_der = tbs.to_der().map_err(der_err)?;
    lint::lint(
        &tbs_der,
        &LintContext {
            issuer_subject: parent.map(|p| p.subject()),
            issuer_key_id: &issuer_key_id,
            issuer_not_before: parent.map(|p| p.not_before()),
            issuer_not_after: parent.map(|p| p.not_after()),
            signature_algorithm: signer.algorithm().identifier(),
            now,
            expectation: Expectation::Ca {
                path_len: spec.path_len,
            },
        },
    )?;
    let der = sign_tbs(&tbs_der, signer)?;
    CertificateAuthority::new(&spec.id, &der, key, public_url)
}

/// Creates a self-signed root CA; its serial is drawn from `random`.
pub fn create_root(
    spec: &CaSpec,
    key: Arc<dyn SigningKey>,
    public_url: Option<String>,
    clock: &dyn Clock,
    random: &dyn RandomSource,
) -> Result<CertificateAuthority, CaError> {
    build_ca(spec, key, None, public_url, clock, random)
}

/// Creates an issuing CA signed by `parent`; it may not outlive its parent.
pub fn create_issuing(
    spec: &CaSpec,
    key: Arc<dyn SigningKey>,
    parent: &CertificateAuthority,
    public_url: Option<String>,
    clock: &dyn Clock,
    random: &dyn RandomSource,
) -> Result<CertificateAuthority, CaError> {
    build_ca(spec, key, Some(parent), public_url, clock, random)
}

/// A PKCS#10 request for an issuing CA key, for an external root to sign. It asks for
/// basicConstraints cA=TRUE pathLen 0 and keyUsage keyCertSign + cRLSign.
pub fn issuing_ca_csr(subject: &Name, key: &dyn SigningKey) -> Result<Vec<u8>, CaError> {
    let der_err = |e: der::Error| CaError::Der(e.to_string());
    let requested = ExtensionReq(vec![
        extension(
            &BasicConstraints {
                ca: true,
                path_len_constraint: Some(0),
            },
            true,
        )
        .map_err(der_err)?,
        extension(
            &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature),
            true,
        )
        .map_err(der_err)?,
    ]);
    let attribute = Attribute::try_from(requested).map_err(der_err)?;
    let info = CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject: subject.clone(),
        public_key: key.public_key_info().clone(),
        attributes: SetOfVec::try_from(vec![attribute]).map_err(der_err)?,
    };
    let info_der = info.to_der().map_err(der_err)?;
    let signature = key.sign(&info_der)?;
    CertReq {
        info,
        algorithm: key.algorithm().identifier(),
        signature: BitString::from_bytes(&signature).map_err(der_err)?,
    }
    .to_der()
    .map_err(der_err)
}

/// Imports an issuing-CA certificate signed by an external root: checks that it holds `key`,
/// is a CA certificate, and verifies under `parent_der`'s key.
pub fn import_issuing(
    id: &str,
    certificate_der: &[u8],
    key: Arc<dyn SigningKey>,
    parent_der: &[u8],
    public_url: Option<String>,
) -> Result<CertificateAuthority, CaError> {
    let parent = Certificate::from_der(parent_der).map_err(|e| CaError::Der(e.to_string()))?;
    let certificate =
        Certificate::from_der(certificate_der).map_err(|e| CaError::Der(e.to_string()))?;
    let parent_is_ca = parent
        .tbs_certificate
        .get::<BasicConstraints>()
        .ok()
        .flatten()
        .is_some_and(|(_, bc)| bc.ca);
    if !parent_is_ca {
        return Err(CaError::NotACa("the parent is not a CA certificate".into()));
    }
    if certificate.tbs_certificate.issuer != parent.tbs_certificate.subject {
        return Err(CaError::BadSignature);
    }
    let parent_key = &parent.tbs_certificate.subject_public_key_info;
    let kind = public_key::classify(parent_key, 2048).map_err(|_| CaError::BadSignature)?;
    let tbs_der = certificate
        .tbs_certificate
        .to_der()
        .map_err(|e| CaError::Der(e.to_string()))?;
    let signature = certificate
        .signature
        .as_bytes()
        .ok_or(CaError::BadSignature)?;
    public_key::verify(
        parent_key,
        kind,
        &certificate.signature_algorithm,
        &tbs_der,
        signature,
    )
    .map_err(|_| CaError::BadSignature)?;
    let has_ski = certificate
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .any(|e| e.extn_id == ID_CE_SUBJECT_KEY_IDENTIFIER);
    let has_bc = certificate
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .any(|e| e.extn_id == ID_CE_BASIC_CONSTRAINTS && e.critical);
    if !has_bc {
        return Err(CaError::NotACa(
            "basicConstraints must be present and critical".into(),
        ));
    }
    if !has_ski {
        return Err(CaError::NotACa("subjectKeyIdentifier is missing".into()));
    }
    CertificateAuthority::new(id, certificate_der, key, public_url)
}
