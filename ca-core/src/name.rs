//! Distinguished-name attributes Mamori reads from CSRs and writes into certificates.
//!
//! Subjects are rebuilt attribute by attribute from validated strings, never copied from a CSR:
//! DirectoryString attributes as UTF8String, `C` and `serialNumber` as PrintableString
//! (RFC 5280 §4.1.2.4 and Appendix A).

use const_oid::db::rfc4519::{CN, COUNTRY_NAME, L, O, OU, SERIAL_NUMBER, ST, UID};
use const_oid::ObjectIdentifier;
use der::asn1::{Ia5StringRef, PrintableStringRef, SetOfVec, Utf8StringRef};
use der::{Any, Tag, Tagged};
use serde::{Deserialize, Serialize};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

/// A subject attribute type Mamori knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AttributeKind {
    /// countryName (2.5.4.6), two letters, PrintableString.
    C,
    /// stateOrProvinceName (2.5.4.8).
    ST,
    /// localityName (2.5.4.7).
    L,
    /// organizationName (2.5.4.10).
    O,
    /// organizationalUnitName (2.5.4.11).
    OU,
    /// commonName (2.5.4.3).
    CN,
    /// serialNumber (2.5.4.5), e.g. a staff or device id; PrintableString.
    #[serde(rename = "serialNumber")]
    SerialNumber,
    /// userId (0.9.2342.19200300.100.1.1).
    UID,
}

impl AttributeKind {
    /// Every kind, in the order subjects are written.
    pub const ALL: [AttributeKind; 8] = [
        AttributeKind::C,
        AttributeKind::ST,
        AttributeKind::L,
        AttributeKind::O,
        AttributeKind::OU,
        AttributeKind::CN,
        AttributeKind::SerialNumber,
        AttributeKind::UID,
    ];

    /// The attribute's OID.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            AttributeKind::C => COUNTRY_NAME,
            AttributeKind::ST => ST,
            AttributeKind::L => L,
            AttributeKind::O => O,
            AttributeKind::OU => OU,
            AttributeKind::CN => CN,
            AttributeKind::SerialNumber => SERIAL_NUMBER,
            AttributeKind::UID => UID,
        }
    }

    /// The short name used in profiles and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeKind::C => "C",
            AttributeKind::ST => "ST",
            AttributeKind::L => "L",
            AttributeKind::O => "O",
            AttributeKind::OU => "OU",
            AttributeKind::CN => "CN",
            AttributeKind::SerialNumber => "serialNumber",
            AttributeKind::UID => "UID",
        }
    }

    /// The kind with this OID, if Mamori knows it.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.oid() == *oid)
    }

    /// The upper bound on the value's length (RFC 5280 Appendix A `ub-*`).
    pub fn max_len(self) -> usize {
        match self {
            AttributeKind::C => 2,
            AttributeKind::CN | AttributeKind::O | AttributeKind::OU => 64,
            AttributeKind::ST | AttributeKind::L => 128,
            AttributeKind::SerialNumber => 64,
            AttributeKind::UID => 256,
        }
    }

    fn printable(self) -> bool {
        matches!(self, AttributeKind::C | AttributeKind::SerialNumber)
    }
}

/// Reads an attribute value as text if it is a UTF8String, PrintableString or IA5String.
pub fn attribute_text(value: &Any) -> Option<String> {
    let bytes = value.value();
    match value.tag() {
        Tag::Utf8String => Utf8StringRef::new(bytes)
            .ok()
            .map(|s| s.as_str().to_string()),
        Tag::PrintableString => PrintableStringRef::new(bytes)
            .ok()
            .map(|s| s.as_str().to_string()),
        Tag::Ia5String => Ia5StringRef::new(bytes)
            .ok()
            .map(|s| s.as_str().to_string()),
        _ => None,
    }
}

/// Whether every character may appear in a PrintableString (X.680 §41.4).
pub fn is_printable(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c))
}

/// Encodes one attribute value the way Mamori writes it.
pub fn encode_attribute(kind: AttributeKind, value: &str) -> Result<AttributeTypeAndValue, String> {
    if value.is_empty() || value.chars().count() > kind.max_len() {
        return Err(format!(
            "{} must be 1 to {} characters",
            kind.as_str(),
            kind.max_len()
        ));
    }
    let any = if kind.printable() {
        if !is_printable(value) {
            return Err(format!("{} must be a PrintableString", kind.as_str()));
        }
        Any::from(PrintableStringRef::new(value).map_err(|e| e.to_string())?)
    } else {
        Any::from(Utf8StringRef::new(value).map_err(|e| e.to_string())?)
    };
    Ok(AttributeTypeAndValue {
        oid: kind.oid(),
        value: any,
    })
}

/// Builds a Name with one attribute per RDN, in the given order.
pub fn build_name(attributes: &[(AttributeKind, String)]) -> Result<Name, String> {
    let mut rdns = Vec::with_capacity(attributes.len());
    for (kind, value) in attributes {
        let atv = encode_attribute(*kind, value)?;
        let set = SetOfVec::try_from(vec![atv]).map_err(|e| e.to_string())?;
        rdns.push(RelativeDistinguishedName(set));
    }
    Ok(RdnSequence(rdns))
}

/// Every (OID, value) pair of a Name, flattened.
pub fn name_attributes(name: &Name) -> impl Iterator<Item = &AttributeTypeAndValue> {
    name.0.iter().flat_map(|rdn| rdn.0.iter())
}

/// The value of the first attribute of `kind` in `name`, as text.
pub fn first_attribute(name: &Name, kind: AttributeKind) -> Option<String> {
    name_attributes(name)
        .find(|atv| atv.oid == kind.oid())
        .and_then(|atv| attribute_text(&atv.value))
}

/// One subjectAltName as `(type, text)`: `("dns", "gw.hospital.example")`, `("ip", "10.0.0.1")`,
/// `("email", ...)`, `("uri", ...)`; other forms are named but not decoded.
pub fn general_name_text(name: &GeneralName) -> (&'static str, String) {
    match name {
        GeneralName::DnsName(d) => ("dns", d.to_string()),
        GeneralName::Rfc822Name(e) => ("email", e.to_string()),
        GeneralName::UniformResourceIdentifier(u) => ("uri", u.to_string()),
        GeneralName::IpAddress(ip) => {
            let bytes = ip.as_bytes();
            let text = match bytes.len() {
                4 => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
                16 => {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(bytes);
                    std::net::Ipv6Addr::from(octets).to_string()
                }
                _ => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            };
            ("ip", text)
        }
        _ => ("other", "(unsupported name form)".into()),
    }
}

/// Every subjectAltName of a certificate body as `type:text` ([`general_name_text`]), in order;
/// `None` when the extension does not decode.
pub fn subject_alt_names(tbs: &x509_cert::TbsCertificate) -> Option<Vec<String>> {
    use der::Decode;
    let mut sans = Vec::new();
    for extension in tbs.extensions.iter().flatten() {
        if extension.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME {
            let names =
                x509_cert::ext::pkix::SubjectAltName::from_der(extension.extn_value.as_bytes())
                    .ok()?;
            for name in &names.0 {
                let (field, value) = general_name_text(name);
                sans.push(format!("{field}:{value}"));
            }
        }
    }
    Some(sans)
}

/// The subjectAltNames of a DER certificate body (TBSCertificate) or of a whole certificate, as
/// one searchable line (`dns:a.example uri:urn:...`); `None` when neither decodes.
pub fn searchable_names(der: &[u8]) -> Option<String> {
    use der::Decode;
    let tbs = match x509_cert::TbsCertificate::from_der(der) {
        Ok(tbs) => tbs,
        Err(_) => x509_cert::Certificate::from_der(der).ok()?.tbs_certificate,
    };
    Some(subject_alt_names(&tbs)?.join(" "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn searchable_names_read_a_certificate_or_its_body() {
        use der::{Decode, Encode};
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["gw.hospital.example".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("10.0.0.1".parse().unwrap()));
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let expected = "dns:gw.hospital.example ip:10.0.0.1";
        assert_eq!(searchable_names(&der).as_deref(), Some(expected));
        let tbs = x509_cert::Certificate::from_der(&der)
            .unwrap()
            .tbs_certificate
            .to_der()
            .unwrap();
        assert_eq!(searchable_names(&tbs).as_deref(), Some(expected));
        assert_eq!(searchable_names(b"not DER"), None);
    }

    use super::*;
    use der::Encode;

    #[test]
    fn builds_and_reads_names() {
        let name = build_name(&[
            (AttributeKind::C, "JP".into()),
            (AttributeKind::O, "病院グループ".into()),
            (AttributeKind::CN, "Issuing CA".into()),
        ])
        .unwrap();
        assert!(name.to_der().is_ok());
        assert_eq!(
            first_attribute(&name, AttributeKind::O).unwrap(),
            "病院グループ"
        );
        let c = name_attributes(&name).next().unwrap();
        assert_eq!(c.value.tag(), Tag::PrintableString);
    }

    #[test]
    fn rejects_bad_country() {
        assert!(build_name(&[(AttributeKind::C, "JPN".into())]).is_err());
        assert!(build_name(&[(AttributeKind::SerialNumber, "a_b".into())]).is_err());
    }
}
