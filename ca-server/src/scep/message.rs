//! SCEP's cryptography around `ca_core::scep`'s formats: a pkiMessage's signature is verified
//! and its envelope opened with OpenSSL's PKCS#7 (the signer among the message's certificates,
//! the envelope with the RA key it was encrypted to); a CertRep's certificates are encrypted to
//! the requester with OpenSSL and the reply signed with the RA's RSA key (in software or in the
//! token, `ra_key`). Nothing here touches the database.

use ca_core::scep::{self as format, PkiAttributes, RepStatus};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;

pub use ca_core::scep::{degenerate, issuer_and_serial, FailInfo, MessageType, MAX_MESSAGE_LEN};

/// Why a pkiMessage was refused before a signed reply could be made.
#[derive(Debug, thiserror::Error)]
pub enum ScepError {
    /// Not DER, not a SignedData, missing SCEP's attributes, or too large.
    #[error(transparent)]
    Format(#[from] format::ScepFormatError),
    /// The client's signature does not verify.
    #[error("the SCEP message's signature does not verify")]
    BadSignature,
    /// Building a reply failed.
    #[error("building the SCEP reply: {0}")]
    Build(String),
}

fn build(e: impl std::fmt::Display) -> ScepError {
    ScepError::Build(e.to_string())
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
    /// The RSA key (software, or in the token).
    pub key: super::ra_key::RaKey,
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
    /// messageType, transactionID, senderNonce.
    pub attributes: PkiAttributes,
    /// The certificate that signed the message (self-signed for a first enrollment).
    pub signer: X509,
    /// Its DER.
    pub signer_der: Vec<u8>,
    /// The decrypted messageData: a CSR (PKCSReq, RenewalReq), IssuerAndSubject (CertPoll) or
    /// IssuerAndSerialNumber (GetCert, GetCRL); `Err` when no RA key opens it.
    pub content: Result<Vec<u8>, FailInfo>,
}

/// Verifies and opens a pkiMessage with the first RA identity whose certificate it was
/// encrypted to (the current one, or the previous one after a renewal).
pub fn parse(body: &[u8], ras: &[&RaIdentity]) -> Result<PkiRequest, ScepError> {
    let attributes = format::read_attributes(body)?;
    // The signature, by OpenSSL over the same bytes: the signer must be among the message's
    // certificates; with NOVERIFY it is not chain-checked (a first enrollment signs with a
    // self-signed certificate; a renewal's is checked against the database by the caller).
    let p7 = Pkcs7::from_der(body).map_err(|_| ScepError::BadSignature)?;
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
        attributes,
        signer,
        signer_der,
        content,
    })
}

fn open_envelope(envelope: &[u8], ras: &[&RaIdentity]) -> Result<Vec<u8>, FailInfo> {
    if format::envelope_cipher(envelope) == Some(format::DES_CBC) && !legacy::single_des_allowed() {
        return Err(FailInfo::BadAlg);
    }
    ras.iter()
        .find_map(|ra| ra.key.open(envelope, &ra.certificate, &ra.der))
        .ok_or(FailInfo::BadMessageCheck)
}

/// OpenSSL's legacy provider, loaded once when single DES is allowed (RFC 8894 §3.5.2 lets old
/// clients fall back to it; Debian's micromdm `scepclient` 2.1 always uses it).
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

/// The CertRep answering `request`: on success the certificates are encrypted to the
/// requester's signing certificate (AES-256-CBC, RSA key transport), then everything is signed
/// by the RA with the SCEP attributes. `nonce` is the reply's fresh senderNonce.
pub fn cert_rep(
    request: &PkiRequest,
    reply: Reply,
    ra: &RaIdentity,
    nonce: &[u8],
) -> Result<Vec<u8>, ScepError> {
    let (status, content) = match reply {
        Reply::Success(degenerate) => match encrypt_to(&request.signer, &degenerate) {
            Ok(envelope) => (RepStatus::Success, envelope),
            // A signer key OpenSSL cannot encrypt to (not RSA): SCEP has no other way back.
            Err(_) => (RepStatus::Failure(FailInfo::BadAlg), Vec::new()),
        },
        Reply::Pending => (RepStatus::Pending, Vec::new()),
        Reply::Failure(info) => (RepStatus::Failure(info), Vec::new()),
    };
    let sign = |data: &[u8]| ra.key.sign_sha256(data);
    Ok(format::cert_rep(
        &request.attributes,
        status,
        &content,
        nonce,
        &ra.der,
        sign,
    )?)
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
