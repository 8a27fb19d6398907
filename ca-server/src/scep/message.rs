//! SCEP's messages (RFC 8894 §3): a pkiMessage is a CMS SignedData, signed by the client,
//! whose content is an EnvelopedData encrypted to the RA certificate; a CertRep is the same
//! shape the other way. Signatures and envelopes go through OpenSSL's PKCS#7 (verify, decrypt,
//! encrypt); the SignedData around a reply and its SCEP attributes are RustCrypto `cms` types,
//! signed with the RA's RSA key. Nothing here touches the database.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::revocation::{RevocationInfoChoice, RevocationInfoChoices};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, OctetString, PrintableString, SetOfVec};
use der::{Decode, Encode, Tag, Tagged};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use sha2::{Digest, Sha256};
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;

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

/// Why a pkiMessage was refused before a signed reply could be made.
#[derive(Debug, thiserror::Error)]
pub enum ScepError {
    /// Not DER, not a SignedData, or missing what SCEP requires.
    #[error("malformed SCEP message: {0}")]
    Malformed(String),
    /// The client's signature does not verify.
    #[error("the SCEP message's signature does not verify")]
    BadSignature,
    /// Larger than [`MAX_MESSAGE_LEN`].
    #[error("SCEP message too large ({0} bytes; at most {MAX_MESSAGE_LEN})")]
    TooLarge(usize),
    /// Building a reply failed.
    #[error("building the SCEP reply: {0}")]
    Build(String),
}

fn malformed(e: impl std::fmt::Display) -> ScepError {
    ScepError::Malformed(e.to_string())
}

fn build(e: impl std::fmt::Display) -> ScepError {
    ScepError::Build(e.to_string())
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
    fn parse(text: &str) -> Option<Self> {
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
    fn code(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "0",
            FailInfo::BadMessageCheck => "1",
            FailInfo::BadRequest => "2",
            FailInfo::BadCertId => "4",
        }
    }
}

/// What a CertRep says.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Issued: a degenerate certs-only SignedData (or one with a CRL) for the requester.
    Success(Vec<u8>),
    /// Waiting for approval; the client polls with CertPoll.
    Pending,
    /// Refused.
    Failure(FailInfo),
}

/// The RA's certificate and key: what clients encrypt to and what signs replies.
pub struct RaIdentity {
    /// The certificate.
    pub certificate: X509,
    /// Its DER.
    pub der: Vec<u8>,
    /// The RSA key.
    pub key: PKey<Private>,
}

impl std::fmt::Debug for RaIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaIdentity(..)")
    }
}

/// A verified pkiMessage: attributes, the signer's certificate, and the decrypted messageData
/// (or why it could not be decrypted: the reply is then a signed failure).
#[derive(Debug)]
pub struct PkiRequest {
    /// messageType.
    pub message_type: MessageType,
    /// transactionID.
    pub transaction_id: String,
    /// senderNonce, echoed as the reply's recipientNonce.
    pub sender_nonce: Vec<u8>,
    /// The certificate that signed the message (self-signed for a first enrollment).
    pub signer: X509,
    /// Its DER.
    pub signer_der: Vec<u8>,
    /// The decrypted messageData: a CSR (PKCSReq, RenewalReq), IssuerAndSubject (CertPoll) or
    /// IssuerAndSerialNumber (GetCert, GetCRL); `Err` when no RA key opens it.
    pub content: Result<Vec<u8>, FailInfo>,
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

fn printable(any: &Any) -> Result<String, ScepError> {
    // Clients write PrintableString; a few send UTF8String.
    match any.tag() {
        Tag::PrintableString | Tag::Utf8String | Tag::Ia5String => {
            String::from_utf8(any.value().to_vec()).map_err(malformed)
        }
        other => Err(malformed(format!("expected a string, found {other}"))),
    }
}

/// Verifies and opens a pkiMessage with the first RA identity whose certificate it was
/// encrypted to (the current one, or the previous one after a renewal).
pub fn parse(body: &[u8], ras: &[&RaIdentity]) -> Result<PkiRequest, ScepError> {
    if body.len() > MAX_MESSAGE_LEN {
        return Err(ScepError::TooLarge(body.len()));
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
    let text = |oid, name: &str| -> Result<String, ScepError> {
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

    // The signature, by OpenSSL over the same bytes: the signer must be among the message's
    // certificates; with NOVERIFY it is not chain-checked (a first enrollment signs with a
    // self-signed certificate; a renewal's is checked against the database by the caller).
    let p7 = Pkcs7::from_der(body).map_err(malformed)?;
    let none = Stack::<X509>::new().map_err(build)?;
    let signers = p7
        .signers(&none, Pkcs7Flags::empty())
        .map_err(|_| ScepError::BadSignature)?;
    let signer = signers
        .iter()
        .next()
        .ok_or(ScepError::BadSignature)?
        .to_owned();
    let store = X509StoreBuilder::new().map_err(build)?.build();
    let mut envelope = Vec::new();
    p7.verify(
        &none,
        &store,
        None,
        Some(&mut envelope),
        Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
    )
    .map_err(|_| ScepError::BadSignature)?;
    let signer_der = signer.to_der().map_err(build)?;

    let content = open_envelope(&envelope, ras);
    Ok(PkiRequest {
        message_type,
        transaction_id,
        sender_nonce,
        signer,
        signer_der,
        content,
    })
}

/// Single DES (RFC 8894 §3.5.2 lets old clients fall back to it; Debian's micromdm
/// `scepclient` 2.1 always uses it): opened only where `scep_allow_single_des` is set.
const DES_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.7");

/// The content encryption algorithm of an EnvelopedData (ContentInfo), if it parses.
/// Read only as far as the algorithm: clients encode the encrypted content itself as BER
/// (Go's pkcs7 writes it constructed), which `cms`'s strict EnvelopedData refuses.
fn envelope_cipher(envelope: &[u8]) -> Option<ObjectIdentifier> {
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

fn open_envelope(envelope: &[u8], ras: &[&RaIdentity]) -> Result<Vec<u8>, FailInfo> {
    if envelope_cipher(envelope) == Some(DES_CBC) && !legacy::single_des_allowed() {
        return Err(FailInfo::BadAlg);
    }
    let p7 = Pkcs7::from_der(envelope).map_err(|_| FailInfo::BadMessageCheck)?;
    for ra in ras {
        if let Ok(plain) = p7.decrypt(&ra.key, &ra.certificate, Pkcs7Flags::BINARY) {
            return Ok(plain);
        }
    }
    Err(FailInfo::BadMessageCheck)
}

/// OpenSSL's legacy provider, loaded once when single DES is allowed.
pub mod legacy {
    use std::sync::OnceLock;

    static LEGACY: OnceLock<Option<openssl::provider::Provider>> = OnceLock::new();

    /// Loads the legacy provider (beside the default one) so that single-DES envelopes open;
    /// an error when OpenSSL has none.
    pub fn allow_single_des() -> Result<(), openssl::error::ErrorStack> {
        if LEGACY.get().is_some() {
            return Ok(());
        }
        let provider = openssl::provider::Provider::try_load(None, "legacy", true)?;
        let _ = LEGACY.set(Some(provider));
        Ok(())
    }

    /// Whether single-DES envelopes are opened.
    pub fn single_des_allowed() -> bool {
        LEGACY.get().is_some_and(Option::is_some)
    }
}

/// The issuer and serial a GetCert or GetCRL names.
pub fn issuer_and_serial(content: &[u8]) -> Option<IssuerAndSerialNumber> {
    IssuerAndSerialNumber::from_der(content).ok()
}

/// A degenerate certs-only SignedData (RFC 8894 §3.4, RFC 7030 §4.1.3) holding `certificates`
/// (DER) and `crls` (DER), as a ContentInfo.
pub fn degenerate(certificates: &[&[u8]], crls: &[&[u8]]) -> Result<Vec<u8>, ScepError> {
    let certs = certificates
        .iter()
        .map(|der| {
            x509_cert::Certificate::from_der(der)
                .map(CertificateChoices::Certificate)
                .map_err(build)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let crls = crls
        .iter()
        .map(|der| {
            x509_cert::crl::CertificateList::from_der(der)
                .map(RevocationInfoChoice::Crl)
                .map_err(build)
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
            Some(CertificateSet::try_from(certs).map_err(build)?)
        },
        crls: if crls.is_empty() {
            None
        } else {
            Some(RevocationInfoChoices(
                SetOfVec::try_from(crls).map_err(build)?,
            ))
        },
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    content_info(&signed)
}

fn content_info(signed: &SignedData) -> Result<Vec<u8>, ScepError> {
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(signed).map_err(build)?,
    }
    .to_der()
    .map_err(build)
}

fn attr(oid: ObjectIdentifier, value: Any) -> Result<Attribute, ScepError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(build)?,
    })
}

fn printable_any(text: &str) -> Result<Any, ScepError> {
    Any::encode_from(&PrintableString::new(text).map_err(build)?).map_err(build)
}

fn octets_any(bytes: &[u8]) -> Result<Any, ScepError> {
    Any::encode_from(&OctetString::new(bytes).map_err(build)?).map_err(build)
}

/// The CertRep answering `request`: on success the certificates are encrypted to the
/// requester's signing certificate (AES-256-CBC, RSA key transport), then everything is signed
/// by the RA with the SCEP attributes. `nonce` is the reply's fresh senderNonce.
pub fn cert_rep(
    request: &PkiRequest,
    reply: Reply,
    ra: &RaIdentity,
    nonce: &[u8],
) -> Result<Vec<u8>, ScepError> {
    let (status, fail, inner) = match reply {
        Reply::Success(degenerate) => ("0", None, Some(degenerate)),
        Reply::Pending => ("3", None, None),
        Reply::Failure(info) => ("2", Some(info), None),
    };
    let (status, fail, content) = match inner {
        None => (status, fail, Vec::new()),
        Some(degenerate) => match encrypt_to(&request.signer, &degenerate) {
            Ok(envelope) => (status, fail, envelope),
            // A signer key OpenSSL cannot encrypt to (not RSA): SCEP has no other way back.
            Err(_) => ("2", Some(FailInfo::BadAlg), Vec::new()),
        },
    };
    let mut attrs = vec![
        attr(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA).map_err(build)?)?,
        attr(
            ID_MESSAGE_DIGEST,
            octets_any(Sha256::digest(&content).as_slice())?,
        )?,
        attr(MESSAGE_TYPE, printable_any("3")?)?,
        attr(TRANSACTION_ID, printable_any(&request.transaction_id)?)?,
        attr(PKI_STATUS, printable_any(status)?)?,
        attr(SENDER_NONCE, octets_any(nonce)?)?,
        attr(RECIPIENT_NONCE, octets_any(&request.sender_nonce)?)?,
    ];
    if let Some(info) = fail {
        attrs.push(attr(FAIL_INFO, printable_any(info.code())?)?);
    }
    let signed_attrs = SetOfVec::try_from(attrs).map_err(build)?;
    // The signature covers the attributes DER-encoded as a SET OF (RFC 5652 §5.4).
    let to_sign = signed_attrs.to_der().map_err(build)?;
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &ra.key)
        .map_err(build)?;
    let signature = signer.sign_oneshot_to_vec(&to_sign).map_err(build)?;
    let ra_certificate = x509_cert::Certificate::from_der(&ra.der).map_err(build)?;
    let sha256 = AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: ra_certificate.tbs_certificate.issuer.clone(),
            serial_number: ra_certificate.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        signature: OctetString::new(signature).map_err(build)?,
        unsigned_attrs: None,
    };
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256]).map_err(build)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: Some(octets_any(&content)?),
        },
        certificates: Some(
            CertificateSet::try_from(vec![CertificateChoices::Certificate(ra_certificate)])
                .map_err(build)?,
        ),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info]).map_err(build)?),
    };
    content_info(&signed)
}

fn encrypt_to(recipient: &X509, plain: &[u8]) -> Result<Vec<u8>, ScepError> {
    let rsa = recipient
        .public_key()
        .ok()
        .and_then(|k| k.rsa().ok())
        .is_some();
    if !rsa {
        return Err(build("the requester's key is not RSA"));
    }
    let mut recipients = Stack::<X509>::new().map_err(build)?;
    recipients.push(recipient.clone()).map_err(build)?;
    Pkcs7::encrypt(
        &recipients,
        plain,
        openssl::symm::Cipher::aes_256_cbc(),
        Pkcs7Flags::BINARY,
    )
    .and_then(|p7| p7.to_der())
    .map_err(build)
}

#[cfg(test)]
mod tests;
