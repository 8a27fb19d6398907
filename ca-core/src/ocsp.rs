//! OCSP (RFC 6960, RFC 9919): parsing requests and building signed responses.
//!
//! A request is parsed into [`ParsedRequest`]: each CertID (SHA-1, SHA-256, SHA-384 or SHA-512) and the nonce
//! (RFC 9654: 1..=128 octets). Statuses are looked up by the caller, who owns the data; this
//! module matches CertIDs to issuers ([`IssuerHashes`]) and builds the `BasicOCSPResponse`,
//! signed by the CA itself or by a delegated responder whose certificate is included.
//! The response is assembled from `x509-ocsp` types and signed through [`SigningKey`], so the
//! fast ring backend (or an HSM) signs it.

use const_oid::db::rfc5912::{ID_SHA_1, ID_SHA_256, ID_SHA_384, ID_SHA_512};
use const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE;
use der::asn1::{BitString, OctetString};
use der::{Decode, Encode};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;
use x509_ocsp::{
    CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, ResponderId, ResponseData,
    RevokedInfo, SingleResponse, Version,
};

use crate::crl::RevocationReason;
use crate::error::{OcspError, OcspRequestError};
use crate::extensions::key_identifier;
use crate::signer::SigningKey;
use crate::time::UnixTime;

/// The most CertIDs answered in one response.
pub const MAX_CERTS_PER_REQUEST: usize = 32;

/// The largest OCSP request accepted, in bytes.
pub const MAX_REQUEST_LEN: usize = 16 * 1024;

/// The CertID hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertIdHash {
    /// SHA-1 (what most clients send).
    Sha1,
    /// SHA-256 (what RFC 9919 recommends).
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl CertIdHash {
    /// Every CertID hash answered, SHA-1 first.
    pub const ALL: [CertIdHash; 4] = [
        CertIdHash::Sha1,
        CertIdHash::Sha256,
        CertIdHash::Sha384,
        CertIdHash::Sha512,
    ];

    /// The algorithm's OID.
    pub fn oid(self) -> const_oid::ObjectIdentifier {
        match self {
            CertIdHash::Sha1 => ID_SHA_1,
            CertIdHash::Sha256 => ID_SHA_256,
            CertIdHash::Sha384 => ID_SHA_384,
            CertIdHash::Sha512 => ID_SHA_512,
        }
    }

    /// The algorithm named by `oid`, if answered.
    pub fn from_oid(oid: &const_oid::ObjectIdentifier) -> Option<CertIdHash> {
        CertIdHash::ALL.into_iter().find(|h| h.oid() == *oid)
    }

    /// The digest length in octets.
    pub fn digest_len(self) -> usize {
        match self {
            CertIdHash::Sha1 => 20,
            CertIdHash::Sha256 => 32,
            CertIdHash::Sha384 => 48,
            CertIdHash::Sha512 => 64,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            CertIdHash::Sha1 => Sha1::digest(data).to_vec(),
            CertIdHash::Sha256 => Sha256::digest(data).to_vec(),
            CertIdHash::Sha384 => Sha384::digest(data).to_vec(),
            CertIdHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// A parsed OCSP request.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    /// Each certificate asked about, in request order.
    pub cert_ids: Vec<(CertIdHash, CertId)>,
    /// The nonce's value (the OCTET STRING's contents), if the request carried one.
    pub nonce: Option<Vec<u8>>,
}

/// Parses a DER OCSPRequest. Request signatures are not required and are ignored (RFC 6960
/// §4.1.2 leaves them optional; Mamori answers public status to anyone).
pub fn parse_request(der: &[u8]) -> Result<ParsedRequest, OcspRequestError> {
    if der.len() > MAX_REQUEST_LEN {
        return Err(OcspRequestError::Malformed(format!(
            "request of {} bytes exceeds {MAX_REQUEST_LEN}",
            der.len()
        )));
    }
    let request =
        OcspRequest::from_der(der).map_err(|e| OcspRequestError::Malformed(e.to_string()))?;
    let list = request.tbs_request.request_list;
    if list.is_empty() {
        return Err(OcspRequestError::Empty);
    }
    if list.len() > MAX_CERTS_PER_REQUEST {
        return Err(OcspRequestError::TooMany {
            count: list.len(),
            max: MAX_CERTS_PER_REQUEST,
        });
    }
    let mut cert_ids = Vec::with_capacity(list.len());
    for single in list {
        let id = single.req_cert;
        let Some(hash) = CertIdHash::from_oid(&id.hash_algorithm.oid) else {
            return Err(OcspRequestError::UnsupportedHash(id.hash_algorithm.oid));
        };
        let len = hash.digest_len();
        if id.issuer_name_hash.as_bytes().len() != len || id.issuer_key_hash.as_bytes().len() != len
        {
            return Err(OcspRequestError::Malformed(
                "CertID hash length does not match its algorithm".into(),
            ));
        }
        cert_ids.push((hash, id));
    }
    let mut nonce = None;
    for extension in request.tbs_request.request_extensions.iter().flatten() {
        if extension.extn_id == ID_PKIX_OCSP_NONCE {
            let value = OctetString::from_der(extension.extn_value.as_bytes())
                .map_err(|e| OcspRequestError::Malformed(format!("nonce: {e}")))?;
            let len = value.as_bytes().len();
            if !(1..=128).contains(&len) {
                return Err(OcspRequestError::NonceLength(len));
            }
            nonce = Some(value.as_bytes().to_vec());
        }
    }
    Ok(ParsedRequest { cert_ids, nonce })
}

/// An issuer's name and key hashes under every answered CertID hash, to recognise CertIDs that
/// name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerHashes {
    /// (name hash, key hash) in the order of [`CertIdHash::ALL`].
    hashes: [(Vec<u8>, Vec<u8>); 4],
}

impl IssuerHashes {
    /// Hashes an issuing CA's certificate (subject DER and subjectPublicKey bits, RFC 6960 §4.1.1).
    pub fn of(issuer: &Certificate) -> Result<Self, der::Error> {
        let name = issuer.tbs_certificate.subject.to_der()?;
        let key = issuer
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        Ok(IssuerHashes {
            hashes: CertIdHash::ALL.map(|h| (h.digest(&name), h.digest(key))),
        })
    }

    fn pair(&self, hash: CertIdHash) -> &(Vec<u8>, Vec<u8>) {
        &self.hashes[CertIdHash::ALL
            .iter()
            .position(|h| *h == hash)
            .unwrap_or_default()]
    }

    /// Whether `id` names this issuer.
    pub fn matches(&self, hash: CertIdHash, id: &CertId) -> bool {
        let (name, key) = self.pair(hash);
        id.issuer_name_hash.as_bytes() == name.as_slice()
            && id.issuer_key_hash.as_bytes() == key.as_slice()
    }

    /// A SHA-1 CertID for `serial` under this issuer (what most clients send; the pre-signed
    /// responses are keyed by it).
    pub fn cert_id(&self, serial: SerialNumber) -> Result<CertId, der::Error> {
        self.cert_id_with(CertIdHash::Sha1, serial)
    }

    /// The CertID for `serial` under this issuer with `hash`, encoded as OpenSSL, Java and
    /// Windows send it (the AlgorithmIdentifier with NULL parameters).
    pub fn cert_id_with(
        &self,
        hash: CertIdHash,
        serial: SerialNumber,
    ) -> Result<CertId, der::Error> {
        let (name, key) = self.pair(hash);
        Ok(CertId {
            hash_algorithm: spki::AlgorithmIdentifierOwned {
                oid: hash.oid(),
                parameters: Some(der::asn1::Null.into()),
            },
            issuer_name_hash: OctetString::new(name.clone())?,
            issuer_key_hash: OctetString::new(key.clone())?,
            serial_number: serial,
        })
    }
}

/// The tbsResponseData of a single-response compact response ([`split_response`]) with its
/// CertID replaced by `cert_id`, and the compact response's signatureAlgorithm. Everything else
/// (responder, producedAt, status, thisUpdate, nextUpdate) stays as signed, so a response for the
/// same certificate under another CertID hash needs only a signature over these bytes
/// ([`sign_variant`]), and [`assemble_variant`] rebuilds it from that signature alone: the
/// responder keeps about 80 bytes per certificate and hash instead of a second response.
pub fn variant_tbs<'c>(
    compact: &'c [u8],
    cert_id: &CertId,
) -> Result<(Vec<u8>, &'c [u8]), OcspError> {
    use crate::tlv::{expect, push_header, split};
    use der::Tag;
    // Spliced, not decoded and re-encoded: this runs for every answer under another hash, and
    // a decode of the ResponseData cost about as much as the rest of the request.
    let walk = |e: crate::tlv::TlvError| OcspError::Encode(e.0);
    let tbs = expect(compact, Tag::Sequence).map_err(walk)?;
    let algorithm = expect(tbs.rest, Tag::Sequence).map_err(walk)?;
    // version [0], responderID [1] or [2], producedAt: everything before `responses`, the
    // first SEQUENCE in tbsResponseData.
    let mut cursor = tbs.content;
    loop {
        let field = split(cursor).map_err(walk)?;
        if field.tag == Tag::Sequence {
            break;
        }
        cursor = field.rest;
    }
    let before = &tbs.content[..tbs.content.len() - cursor.len()];
    let responses = expect(cursor, Tag::Sequence).map_err(walk)?;
    let single = expect(responses.content, Tag::Sequence).map_err(walk)?;
    if !single.rest.is_empty() {
        return Err(OcspError::Encode("not a single response".into()));
    }
    let old_id = expect(single.content, Tag::Sequence).map_err(walk)?;
    let new_id = cert_id
        .to_der()
        .map_err(|e| OcspError::Encode(e.to_string()))?;
    let single_len = new_id.len() + old_id.rest.len();
    let mut single_der = Vec::with_capacity(single_len + 4);
    push_header(&mut single_der, Tag::Sequence, single_len).map_err(walk)?;
    single_der.extend_from_slice(&new_id);
    single_der.extend_from_slice(old_id.rest);
    let mut responses_der = Vec::with_capacity(single_der.len() + 4);
    push_header(&mut responses_der, Tag::Sequence, single_der.len()).map_err(walk)?;
    responses_der.extend_from_slice(&single_der);
    let content_len = before.len() + responses_der.len() + responses.rest.len();
    let mut out = Vec::with_capacity(content_len + 4 + algorithm.whole.len() + 80);
    push_header(&mut out, Tag::Sequence, content_len).map_err(walk)?;
    out.extend_from_slice(before);
    out.extend_from_slice(&responses_der);
    out.extend_from_slice(responses.rest);
    Ok((out, algorithm.whole))
}

/// Signs [`variant_tbs`] of `compact` for `cert_id`: the signature BIT STRING (tag and length
/// included) to keep. `key` must be the key that signed `compact`.
pub fn sign_variant(
    key: &dyn SigningKey,
    compact: &[u8],
    cert_id: &CertId,
) -> Result<Vec<u8>, OcspError> {
    let (tbs, _) = variant_tbs(compact, cert_id)?;
    crate::lint::ocsp::lint_response_data(&tbs, &key_identifier(key.public_key_info()))
        .map_err(OcspError::Lint)?;
    let signature = key.sign(&tbs)?;
    BitString::from_bytes(&signature)
        .and_then(|b| b.to_der())
        .map_err(|e| OcspError::Encode(e.to_string()))
}

/// The compact response for `cert_id` rebuilt from `compact` and the signature
/// [`sign_variant`] made: byte for byte what was signed, for [`expand_response`].
pub fn assemble_variant(
    compact: &[u8],
    cert_id: &CertId,
    signature: &[u8],
) -> Result<Vec<u8>, OcspError> {
    let (mut tbs, algorithm) = variant_tbs(compact, cert_id)?;
    tbs.extend_from_slice(algorithm);
    tbs.extend_from_slice(signature);
    Ok(tbs)
}

/// A certificate's status as the responder reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked (or on hold, with reason certificateHold).
    Revoked {
        /// When.
        revoked_at: UnixTime,
        /// Why; `Unspecified` is sent without a reason.
        reason: RevocationReason,
    },
    /// Not a certificate this responder knows.
    Unknown,
}

/// One answer in a response.
#[derive(Debug, Clone)]
pub struct SingleStatus {
    /// The CertID exactly as the client sent it.
    pub cert_id: CertId,
    /// The status.
    pub status: Status,
    /// thisUpdate.
    pub this_update: UnixTime,
    /// nextUpdate (RFC 9919 requires it).
    pub next_update: UnixTime,
}

/// Who signs responses: the CA's own key, or a delegated responder key with its certificate
/// (id-kp-OCSPSigning, issued by that CA), which is then included in every response.
pub struct ResponderIdentity<'a> {
    /// The signing key.
    pub key: &'a dyn SigningKey,
    /// The delegated responder certificate's DER; `None` when the CA signs itself.
    pub certificate: Option<&'a Certificate>,
}

/// The DER of an unsuccessful OCSPResponse (malformedRequest, internalError, tryLater,
/// unauthorized), which carries no responseBytes and no signature.
pub fn error_response(status: OcspResponseStatus) -> Vec<u8> {
    let response = OcspResponse {
        response_status: status,
        response_bytes: None,
    };
    response
        .to_der()
        .unwrap_or_else(|_| vec![0x30, 0x03, 0x0a, 0x01, 0x02])
}

/// The error status a request error maps to (RFC 6960 §2.3).
pub fn status_for(error: &OcspRequestError) -> OcspResponseStatus {
    match error {
        OcspRequestError::UnknownIssuer => OcspResponseStatus::Unauthorized,
        _ => OcspResponseStatus::MalformedRequest,
    }
}

fn single_response(single: &SingleStatus) -> Result<SingleResponse, OcspError> {
    let cert_status = match single.status {
        Status::Good => CertStatus::good(),
        Status::Unknown => CertStatus::unknown(),
        Status::Revoked { revoked_at, reason } => CertStatus::revoked(RevokedInfo {
            revocation_time: revoked_at.to_ocsp_time()?,
            revocation_reason: match reason {
                RevocationReason::Unspecified => None,
                other => Some(other.crl_reason()),
            },
        }),
    };
    Ok(SingleResponse {
        cert_id: single.cert_id.clone(),
        cert_status,
        this_update: single.this_update.to_ocsp_time()?,
        next_update: Some(single.next_update.to_ocsp_time()?),
        single_extensions: None,
    })
}

/// Builds and signs a successful OCSPResponse (DER) holding `statuses`, echoing `nonce` if given.
pub fn build_response(
    responder: &ResponderIdentity<'_>,
    statuses: &[SingleStatus],
    produced_at: UnixTime,
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, OcspError> {
    let compact = build_compact_response(responder.key, statuses, produced_at, nonce)?;
    let certs = match responder.certificate {
        Some(certificate) => certs_field(certificate)?,
        None => Vec::new(),
    };
    expand_response(&compact, &certs)
}

/// Builds and signs the signed part of a BasicOCSPResponse — tbsResponseData, signatureAlgorithm
/// and signature, as [`split_response`] gives them — for [`expand_response`] to wrap with a
/// responder certificate field encoded once. The tbsResponseData is encoded once and signed as it
/// lies: this is the per-request work of a responder that echoes nonces.
pub fn build_compact_response(
    key: &dyn SigningKey,
    statuses: &[SingleStatus],
    produced_at: UnixTime,
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, OcspError> {
    let encode = |e: der::Error| OcspError::Encode(e.to_string());
    let responses = statuses
        .iter()
        .map(single_response)
        .collect::<Result<Vec<_>, _>>()?;
    let response_extensions = match nonce {
        None => None,
        Some(value) => {
            let inner = OctetString::new(value)
                .and_then(|o| o.to_der())
                .map_err(encode)?;
            Some(vec![Extension {
                extn_id: ID_PKIX_OCSP_NONCE,
                critical: false,
                extn_value: OctetString::new(inner).map_err(encode)?,
            }])
        }
    };
    let key_hash = key_identifier(key.public_key_info());
    let data = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(key_hash.clone()).map_err(encode)?),
        produced_at: produced_at.to_ocsp_time()?,
        responses,
        response_extensions,
    };
    let mut compact = data.to_der().map_err(encode)?;
    // Lint before sign: the exact tbsResponseData.
    crate::lint::ocsp::lint_response_data(&compact, &key_hash).map_err(OcspError::Lint)?;
    let signature = key.sign(&compact)?;
    key.algorithm()
        .identifier()
        .encode_to_vec(&mut compact)
        .map_err(encode)?;
    BitString::from_bytes(&signature)
        .and_then(|b| b.encode_to_vec(&mut compact))
        .map_err(encode)?;
    Ok(compact)
}

/// Splits a successful OCSPResponse into its signed part and its responder certificates: the BasicOCSPResponse's
/// tbsResponseData, signatureAlgorithm and signature, as signed. The certificates lie outside the
/// signature, so a responder that holds a response for every certificate keeps this (about a
/// third of the size) and adds its certificate back with [`expand_response`] when it serves.
/// Returns the compact bytes and the certs field (empty when the response carries none).
pub fn split_response(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), OcspError> {
    let parts = ResponseParts::of(der)?;
    Ok((
        [parts.tbs, parts.algorithm, parts.signature].concat(),
        parts.certs.to_vec(),
    ))
}

/// The signature of a successful OCSPResponse (the BIT STRING, tag and length included), found
/// without decoding anything else. ECDSA signatures are randomised, so two responses with the
/// same signature are the same response: a cheap identity check.
pub fn response_signature(der: &[u8]) -> Result<&[u8], OcspError> {
    Ok(ResponseParts::of(der)?.signature)
}

/// The fields of a successful OCSPResponse's BasicOCSPResponse, each with its tag and length.
struct ResponseParts<'a> {
    tbs: &'a [u8],
    algorithm: &'a [u8],
    signature: &'a [u8],
    certs: &'a [u8],
}

impl<'a> ResponseParts<'a> {
    fn of(der: &'a [u8]) -> Result<ResponseParts<'a>, OcspError> {
        use crate::tlv::expect;
        use der::Tag;
        let walk = |e: crate::tlv::TlvError| OcspError::Encode(e.0);
        let outer = expect(der, Tag::Sequence).map_err(walk)?.content;
        let status = expect(outer, Tag::Enumerated).map_err(walk)?;
        if status.content != [0] {
            return Err(OcspError::Encode("not a successful response".into()));
        }
        let explicit = Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber::N0,
        };
        let bytes = expect(status.rest, explicit).map_err(walk)?.content;
        let bytes = expect(bytes, Tag::Sequence).map_err(walk)?.content;
        let oid = expect(bytes, Tag::ObjectIdentifier).map_err(walk)?;
        if oid.content != const_oid::db::rfc6960::ID_PKIX_OCSP_BASIC.as_bytes() {
            return Err(OcspError::Encode("not a basic OCSP response".into()));
        }
        let basic = expect(oid.rest, Tag::OctetString).map_err(walk)?.content;
        let basic = expect(basic, Tag::Sequence).map_err(walk)?.content;
        let tbs = expect(basic, Tag::Sequence).map_err(walk)?;
        let algorithm = expect(tbs.rest, Tag::Sequence).map_err(walk)?;
        let signature = expect(algorithm.rest, Tag::BitString).map_err(walk)?;
        Ok(ResponseParts {
            tbs: tbs.whole,
            algorithm: algorithm.whole,
            signature: signature.whole,
            certs: signature.rest,
        })
    }
}

/// The `certs [0] EXPLICIT SEQUENCE OF Certificate` field of a BasicOCSPResponse carrying one
/// responder certificate, for [`expand_response`].
pub fn certs_field(certificate: &Certificate) -> Result<Vec<u8>, OcspError> {
    der::asn1::ContextSpecific {
        tag_number: der::TagNumber::N0,
        tag_mode: der::TagMode::Explicit,
        value: vec![certificate.clone()],
    }
    .to_der()
    .map_err(|e| OcspError::Encode(e.to_string()))
}

/// Re-assembles the complete OCSPResponse from [`split_response`]'s bytes and a
/// [`certs_field`] (empty for a CA-signed response). The result is byte for byte the response
/// that was signed.
pub fn expand_response(compact: &[u8], certs: &[u8]) -> Result<Vec<u8>, OcspError> {
    use crate::tlv::push_header;
    use der::Tag;
    let walk = |e: crate::tlv::TlvError| OcspError::Encode(e.0);
    let oid = const_oid::db::rfc6960::ID_PKIX_OCSP_BASIC.as_bytes();
    let basic_len = compact.len() + certs.len();
    let mut basic_header = Vec::with_capacity(8);
    push_header(&mut basic_header, Tag::Sequence, basic_len).map_err(walk)?;
    let octet_len = basic_header.len() + basic_len;
    let mut octet_header = Vec::with_capacity(8);
    push_header(&mut octet_header, Tag::OctetString, octet_len).map_err(walk)?;
    let bytes_len = 2 + oid.len() + octet_header.len() + octet_len;
    let mut bytes_header = Vec::with_capacity(8);
    push_header(&mut bytes_header, Tag::Sequence, bytes_len).map_err(walk)?;
    let explicit = Tag::ContextSpecific {
        constructed: true,
        number: der::TagNumber::N0,
    };
    let explicit_len = bytes_header.len() + bytes_len;
    let mut explicit_header = Vec::with_capacity(8);
    push_header(&mut explicit_header, explicit, explicit_len).map_err(walk)?;
    let outer_len = 3 + explicit_header.len() + explicit_len;
    let mut out = Vec::with_capacity(outer_len + 8);
    push_header(&mut out, Tag::Sequence, outer_len).map_err(walk)?;
    out.extend_from_slice(&[0x0a, 0x01, 0x00]);
    out.extend_from_slice(&explicit_header);
    out.extend_from_slice(&bytes_header);
    push_header(&mut out, Tag::ObjectIdentifier, oid.len()).map_err(walk)?;
    out.extend_from_slice(oid);
    out.extend_from_slice(&octet_header);
    out.extend_from_slice(&basic_header);
    out.extend_from_slice(compact);
    out.extend_from_slice(certs);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_and_empty() {
        assert!(matches!(
            parse_request(b"\x30\x00"),
            Err(OcspRequestError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(b"garbage"),
            Err(OcspRequestError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(&vec![0u8; MAX_REQUEST_LEN + 1]),
            Err(OcspRequestError::Malformed(_))
        ));
    }

    #[test]
    fn error_responses_encode() {
        assert_eq!(
            error_response(OcspResponseStatus::MalformedRequest),
            vec![0x30, 0x03, 0x0a, 0x01, 0x01]
        );
        assert_eq!(
            error_response(OcspResponseStatus::Unauthorized),
            vec![0x30, 0x03, 0x0a, 0x01, 0x06]
        );
    }
}
