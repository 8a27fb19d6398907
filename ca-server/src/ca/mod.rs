//! The CA service: the only holder of CA private keys. It hands out a CA only for signing a
//! prepared (profile-checked, linted) certificate, a CRL or a responder certificate; the CA
//! certificates, which every listener may publish, are kept apart in [`CaCertificates`].

pub mod reservation;

use std::collections::BTreeMap;
use std::sync::Arc;

use ca_core::ca::CertificateAuthority;

/// Every CA certificate in the database (DER by id) and the root's id: public data.
pub struct CaCertificates {
    root_id: String,
    certificates: BTreeMap<String, Vec<u8>>,
}

impl CaCertificates {
    /// The certificates by id, with the root's id.
    pub fn new(root_id: String, certificates: BTreeMap<String, Vec<u8>>) -> CaCertificates {
        CaCertificates {
            root_id,
            certificates,
        }
    }

    /// The root's id.
    pub fn root_id(&self) -> &str {
        &self.root_id
    }

    /// Every CA certificate (DER) by id.
    pub fn all(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.certificates
    }

    /// One CA certificate (DER).
    pub fn der(&self, id: &str) -> Option<&[u8]> {
        self.certificates.get(id).map(Vec::as_slice)
    }

    /// A CA certificate and, for one below the root, the root's, as DER.
    pub fn chain_der(&self, id: &str) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = self.certificates.get(id).cloned().into_iter().collect();
        if id != self.root_id {
            out.extend(self.certificates.get(&self.root_id).cloned());
        }
        out
    }

    /// A CA certificate and, for one below the root, the root's, as PEM.
    pub fn chain_pem(&self, id: &str) -> Option<String> {
        let mut out = ca_core::ca::pem(self.certificates.get(id)?);
        if id != self.root_id {
            out.push_str(&ca_core::ca::pem(self.certificates.get(&self.root_id)?));
        }
        Some(out)
    }
}

/// The CAs whose keys this instance holds (none on an OCSP-only instance).
pub struct Issuers {
    cas: BTreeMap<String, CertificateAuthority>,
    certificates: Arc<CaCertificates>,
}

impl Issuers {
    /// Wraps the decrypted CAs.
    pub fn new(
        cas: BTreeMap<String, CertificateAuthority>,
        certificates: Arc<CaCertificates>,
    ) -> Issuers {
        Issuers { cas, certificates }
    }

    /// The CA with this id, if this instance holds its key.
    pub fn get(&self, id: &str) -> Option<&CertificateAuthority> {
        self.cas.get(id)
    }

    /// Ids of the CAs whose keys this instance holds.
    pub fn ids(&self) -> Vec<String> {
        self.cas.keys().cloned().collect()
    }

    /// The CA certificates (public).
    pub fn certificates(&self) -> &Arc<CaCertificates> {
        &self.certificates
    }
}
