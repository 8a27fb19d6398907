//! SCEP's message formats (RFC 8894 §3) as RustCrypto `cms` types, free of cryptography: the
//! signed attributes of a received pkiMessage, the content encryption algorithm of its
//! envelope, degenerate certs-only SignedData (SCEP's GetCACert and CertRep content, EST's
//! answers), and the SignedData of a CertRep around a signature the caller makes. ca-server
//! verifies, decrypts and signs with OpenSSL around these.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::revocation::{RevocationInfoChoice, RevocationInfoChoices};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, OctetString, PrintableString, SetOfVec};
use der::{Decode, Encode, Tag, Tagged};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;

/// The largest pkiMessage accepted (a CSR with its envelope and signature is a few KiB).
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const MESSAGE_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.2");
const PKI_STATUS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.3");
const FAIL_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.4");
const SENDER_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.5");
const RECIPIENT_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.6");
const TRANSACTION_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.7");
/// Single DES-CBC, which old SCEP clients still use for the envelope.
pub const DES_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.7");

/// Why a pkiMessage could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScepFormatError {
    /// Not DER, not a SignedData, or missing what SCEP requires.
    #[error("malformed SCEP message: {0}")]
    Malformed(String),
    /// Larger than [`MAX_MESSAGE_LEN`].
    #[error("SCEP message too large ({0} bytes; at most {MAX_MESSAGE_LEN})")]
    TooLarge(usize),
    /// Encoding a reply failed.
    #[error("encoding a SCEP reply: {0}")]
    Encode(String),
}

fn malformed(e: impl std::fmt::Display) -> ScepFormatError {
    ScepFormatError::Malformed(e.to_string())
}

fn encode(e: impl std::fmt::Display) -> ScepFormatError {
    ScepFormatError::Encode(e.to_string())
}

/// SCEP message types (RFC 8894 §3.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// The server's reply.
    CertRep,
    /// Renewal, signed with the current certificate.
    RenewalReq,
    /// Enrollment.
    PkcsReq,
    /// Polling for a pending request (GetCertInitial).
    CertPoll,
    /// A certificate by issuer and serial.
    GetCert,
    /// The CRL of an issuer.
    GetCrl,
}

impl MessageType {
    /// The messageType attribute's text.
    pub fn code(self) -> &'static str {
        match self {
            MessageType::CertRep => "3",
            MessageType::RenewalReq => "17",
            MessageType::PkcsReq => "19",
            MessageType::CertPoll => "20",
            MessageType::GetCert => "21",
            MessageType::GetCrl => "22",
        }
    }

    /// The type a messageType attribute names.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "3" => MessageType::CertRep,
            "17" => MessageType::RenewalReq,
            "19" => MessageType::PkcsReq,
            "20" => MessageType::CertPoll,
            "21" => MessageType::GetCert,
            "22" => MessageType::GetCrl,
            _ => return None,
        })
    }
}

/// failInfo values (RFC 8894 §3.2.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    /// Unrecognized or unsupported algorithm.
    BadAlg,
    /// Integrity check (signature, decryption) failed.
    BadMessageCheck,
    /// Transaction not permitted or supported.
    BadRequest,
    /// No certificate could be identified matching the criteria.
    BadCertId,
}

impl FailInfo {
    /// The failInfo attribute's text.
    pub fn code(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "0",
            FailInfo::BadMessageCheck => "1",
            FailInfo::BadRequest => "2",
            FailInfo::BadCertId => "4",
        }
    }
}

/// A received SignedData, read only as far as SCEP needs: the signer's attributes. Certificates
/// and identifiers stay undecoded `Any` here (OpenSSL reads and checks them): clients write
/// serial numbers that strict DER refuses (certmonger's self-signed certificates), and the
/// signature check does not depend on them.
#[derive(Debug, der::Sequence)]
struct ReceivedSignedData {
    version: Any,
    digest_algorithms: Any,
    encap_content_info: Any,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    certificates: Option<der::asn1::SequenceOf<Any, 16>>,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    crls: Option<der::asn1::SequenceOf<Any, 16>>,
    signer_infos: ReceivedSignerInfos,
}

/// SignerInfos ::= SET OF SignerInfo, kept in the order received.
#[derive(Debug)]
struct ReceivedSignerInfos(Vec<ReceivedSignerInfo>);

impl ReceivedSignerInfos {
    fn as_slice(&self) -> &[ReceivedSignerInfo] {
        &self.0
    }
}

impl<'a> der::DecodeValue<'a> for ReceivedSignerInfos {
    fn decode_value<R: der::Reader<'a>>(reader: &mut R, header: der::Header) -> der::Result<Self> {
        use der::Reader;
        reader.read_nested(header.length, |reader| {
            let mut infos = Vec::new();
            while !reader.is_finished() {
                if infos.len() == 4 {
                    return Err(reader.error(der::ErrorKind::Overlength));
                }
                infos.push(ReceivedSignerInfo::decode(reader)?);
            }
            Ok(ReceivedSignerInfos(infos))
        })
    }
}

impl der::EncodeValue for ReceivedSignerInfos {
    fn value_len(&self) -> der::Result<der::Length> {
        self.0
            .iter()
            .try_fold(der::Length::ZERO, |len, info| len + info.encoded_len()?)
    }

    fn encode_value(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        self.0.iter().try_for_each(|info| info.encode(writer))
    }
}

impl der::FixedTag for ReceivedSignerInfos {
    const TAG: Tag = Tag::Set;
}

/// A SignerInfo with its signed attributes decoded and the rest left as received.
#[derive(Debug, der::Sequence)]
struct ReceivedSignerInfo {
    version: Any,
    sid: Any,
    digest_alg: Any,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    signed_attrs: Option<der::asn1::SequenceOf<Attribute, 32>>,
    signature_algorithm: Any,
    signature: OctetString,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    unsigned_attrs: Option<der::asn1::SequenceOf<Any, 16>>,
}

/// A SCEP attribute's single value.
fn attribute<'a>(attrs: &'a [Attribute], oid: &ObjectIdentifier) -> Option<&'a Any> {
    attrs
        .iter()
        .find(|a| &a.oid == oid)
        .and_then(|a| a.values.iter().next())
}

fn printable(any: &Any) -> Result<String, ScepFormatError> {
    // Clients write PrintableString; a few send UTF8String.
    match any.tag() {
        Tag::PrintableString | Tag::Utf8String | Tag::Ia5String => {
            String::from_utf8(any.value().to_vec()).map_err(malformed)
        }
        other => Err(malformed(format!("expected a string, found {other}"))),
    }
}

/// What a pkiMessage says about itself, before any signature is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiAttributes {
    /// messageType.
    pub message_type: MessageType,
    /// transactionID.
    pub transaction_id: String,
    /// senderNonce, echoed as the reply's recipientNonce.
    pub sender_nonce: Vec<u8>,
}

/// Reads a pkiMessage's SCEP attributes (its one signer's signed attributes). The caller still
/// verifies the signature over the same bytes before trusting them.
pub fn read_attributes(body: &[u8]) -> Result<PkiAttributes, ScepFormatError> {
    if body.len() > MAX_MESSAGE_LEN {
        return Err(ScepFormatError::TooLarge(body.len()));
    }
    let info = ContentInfo::from_der(body).map_err(malformed)?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(malformed("not a SignedData"));
    }
    let signed: ReceivedSignedData = info.content.decode_as().map_err(malformed)?;
    let signer_info = match signed.signer_infos.as_slice() {
        [one] => one,
        _ => return Err(malformed("a pkiMessage has exactly one signer")),
    };
    let attrs = signer_info
        .signed_attrs
        .as_ref()
        .ok_or_else(|| malformed("no signed attributes"))?;
    let attrs: Vec<Attribute> = attrs.iter().cloned().collect();
    let _ = (&signed.version, &signed.certificates, &signed.crls);
    let text = |oid, name: &str| -> Result<String, ScepFormatError> {
        printable(attribute(&attrs, oid).ok_or_else(|| malformed(format!("no {name}")))?)
    };
    let message_type = MessageType::parse(&text(&MESSAGE_TYPE, "messageType")?)
        .ok_or_else(|| malformed("unknown messageType"))?;
    let transaction_id = text(&TRANSACTION_ID, "transactionID")?;
    if transaction_id.is_empty() || transaction_id.len() > 128 {
        return Err(malformed("transactionID must be 1-128 characters"));
    }
    let sender_nonce = attribute(&attrs, &SENDER_NONCE)
        .ok_or_else(|| malformed("no senderNonce"))?
        .decode_as::<OctetString>()
        .map_err(malformed)?
        .as_bytes()
        .to_vec();
    if sender_nonce.len() > 64 {
        return Err(malformed("senderNonce longer than 64 bytes"));
    }
    Ok(PkiAttributes {
        message_type,
        transaction_id,
        sender_nonce,
    })
}

/// Read only as far as the algorithm: clients encode the encrypted content itself as BER
/// (Go's pkcs7 writes it constructed), which `cms`'s strict EnvelopedData refuses.
pub fn envelope_cipher(envelope: &[u8]) -> Option<ObjectIdentifier> {
    let info = ContentInfo::from_der(envelope).ok()?;
    let mut reader = der::SliceReader::new(info.content.value()).ok()?;
    let _version = Any::decode(&mut reader).ok()?;
    let _recipients = Any::decode(&mut reader).ok()?;
    let header = der::Header::decode(&mut reader).ok()?;
    if header.tag != Tag::Sequence {
        return None;
    }
    let _content_type = ObjectIdentifier::decode(&mut reader).ok()?;
    let algorithm = AlgorithmIdentifierOwned::decode(&mut reader).ok()?;
    Some(algorithm.oid)
}

/// The issuer and serial a GetCert or GetCRL names.
pub fn issuer_and_serial(content: &[u8]) -> Option<IssuerAndSerialNumber> {
    IssuerAndSerialNumber::from_der(content).ok()
}

/// A degenerate certs-only SignedData (RFC 8894 §3.4, RFC 7030 §4.1.3) holding `certificates`
/// (DER) and `crls` (DER), as a ContentInfo.
pub fn degenerate(certificates: &[&[u8]], crls: &[&[u8]]) -> Result<Vec<u8>, ScepFormatError> {
    let certs = certificates
        .iter()
        .map(|der| {
            x509_cert::Certificate::from_der(der)
                .map(CertificateChoices::Certificate)
                .map_err(encode)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let crls = crls
        .iter()
        .map(|der| {
            x509_cert::crl::CertificateList::from_der(der)
                .map(RevocationInfoChoice::Crl)
                .map_err(encode)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: if certs.is_empty() {
            None
        } else {
            Some(CertificateSet::try_from(certs).map_err(encode)?)
        },
        crls: if crls.is_empty() {
            None
        } else {
            Some(RevocationInfoChoices(
                SetOfVec::try_from(crls).map_err(encode)?,
            ))
        },
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    content_info(&signed)
}

fn content_info(signed: &SignedData) -> Result<Vec<u8>, ScepFormatError> {
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(signed).map_err(encode)?,
    }
    .to_der()
    .map_err(encode)
}

fn attr(oid: ObjectIdentifier, value: Any) -> Result<Attribute, ScepFormatError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(encode)?,
    })
}

fn printable_any(text: &str) -> Result<Any, ScepFormatError> {
    Any::encode_from(&PrintableString::new(text).map_err(encode)?).map_err(encode)
}

fn octets_any(bytes: &[u8]) -> Result<Any, ScepFormatError> {
    Any::encode_from(&OctetString::new(bytes).map_err(encode)?).map_err(encode)
}

/// What a CertRep says, with the envelope already made (empty unless a success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepStatus {
    /// pkiStatus SUCCESS.
    Success,
    /// pkiStatus PENDING.
    Pending,
    /// pkiStatus FAILURE with this failInfo.
    Failure(FailInfo),
}

/// The CertRep SignedData (a ContentInfo): `content` (the EnvelopedData for the requester, or
/// empty) with SCEP's attributes, signed by the RA certificate `ra_der` through `sign`, which
/// gets the DER of the signed attributes and returns an RSA PKCS#1 v1.5 SHA-256 signature.
pub fn cert_rep(
    request: &PkiAttributes,
    status: RepStatus,
    content: &[u8],
    nonce: &[u8],
    ra_der: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, ScepFormatError> {
    let (status, fail) = match status {
        RepStatus::Success => ("0", None),
        RepStatus::Pending => ("3", None),
        RepStatus::Failure(info) => ("2", Some(info)),
    };
    let mut attrs = vec![
        attr(MESSAGE_TYPE, printable_any(MessageType::CertRep.code())?)?,
        attr(TRANSACTION_ID, printable_any(&request.transaction_id)?)?,
        attr(PKI_STATUS, printable_any(status)?)?,
        attr(SENDER_NONCE, octets_any(nonce)?)?,
        attr(RECIPIENT_NONCE, octets_any(&request.sender_nonce)?)?,
    ];
    if let Some(info) = fail {
        attrs.push(attr(FAIL_INFO, printable_any(info.code())?)?);
    }
    signed_message(attrs, content, ra_der, sign)
}

/// A client's pkiMessage (PKCSReq, RenewalReq, CertPoll, ...): `content` (the EnvelopedData
/// for the RA) with SCEP's attributes, signed by `signer_der` through `sign` (RSA PKCS#1 v1.5,
/// SHA-256). What SCEP clients send; Mamori builds one only to load-test and to test itself.
pub fn pki_request(
    attributes: &PkiAttributes,
    content: &[u8],
    signer_der: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, ScepFormatError> {
    let attrs = vec![
        attr(MESSAGE_TYPE, printable_any(attributes.message_type.code())?)?,
        attr(TRANSACTION_ID, printable_any(&attributes.transaction_id)?)?,
        attr(SENDER_NONCE, octets_any(&attributes.sender_nonce)?)?,
    ];
    signed_message(attrs, content, signer_der, sign)
}

/// A SignedData over `content` with `attrs` (plus contentType and messageDigest) as signed
/// attributes, signed by the holder of the certificate `signer_der` through `sign`, as a
/// ContentInfo.
fn signed_message(
    mut attrs: Vec<Attribute>,
    content: &[u8],
    signer_der: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, ScepFormatError> {
    attrs.push(attr(
        ID_CONTENT_TYPE,
        Any::encode_from(&ID_DATA).map_err(encode)?,
    )?);
    attrs.push(attr(
        ID_MESSAGE_DIGEST,
        octets_any(Sha256::digest(content).as_slice())?,
    )?);
    let signed_attrs = SetOfVec::try_from(attrs).map_err(encode)?;
    // The signature covers the attributes DER-encoded as a SET OF (RFC 5652 §5.4).
    let to_sign = signed_attrs.to_der().map_err(encode)?;
    let signature = sign(&to_sign).map_err(ScepFormatError::Encode)?;
    let signer_certificate = x509_cert::Certificate::from_der(signer_der).map_err(encode)?;
    let sha256 = AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: signer_certificate.tbs_certificate.issuer.clone(),
            serial_number: signer_certificate.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        signature: OctetString::new(signature).map_err(encode)?,
        unsigned_attrs: None,
    };
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256]).map_err(encode)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: Some(octets_any(content)?),
        },
        certificates: Some(
            CertificateSet::try_from(vec![CertificateChoices::Certificate(signer_certificate)])
                .map_err(encode)?,
        ),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info]).map_err(encode)?),
    };
    content_info(&signed)
}

pub mod envelope;

#[cfg(test)]
mod tests;
