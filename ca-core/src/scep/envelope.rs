//! The parts of a pkiMessage's EnvelopedData (RFC 8894 §3.2.2, RFC 5652 §6) that opening it
//! with a key Mamori cannot hand to OpenSSL needs: the RSA-encrypted content key of the
//! recipient that is the RA certificate, the content cipher with its IV, and the ciphertext.
//! Nothing is decrypted here.

use cms::content_info::ContentInfo;
use cms::enveloped_data::{EnvelopedData, RecipientIdentifier, RecipientInfo};
use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Decode, Encode};
use x509_cert::Certificate;

use super::{malformed, ScepFormatError, DES_CBC};

const ID_ENVELOPED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// The content ciphers SCEP clients use (RFC 8894 §3.5.2), all CBC with the IV as the
/// algorithm's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCipher {
    /// AES-128-CBC.
    Aes128Cbc,
    /// AES-192-CBC.
    Aes192Cbc,
    /// AES-256-CBC.
    Aes256Cbc,
    /// DES-EDE3-CBC.
    DesEde3Cbc,
    /// Single DES-CBC (only where the operator allows it).
    DesCbc,
}

impl ContentCipher {
    fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        Some(match oid.to_string().as_str() {
            "2.16.840.1.101.3.4.1.2" => ContentCipher::Aes128Cbc,
            "2.16.840.1.101.3.4.1.22" => ContentCipher::Aes192Cbc,
            "2.16.840.1.101.3.4.1.42" => ContentCipher::Aes256Cbc,
            "1.2.840.113549.3.7" => ContentCipher::DesEde3Cbc,
            _ if oid == DES_CBC => ContentCipher::DesCbc,
            _ => return None,
        })
    }

    /// The content key's length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            ContentCipher::Aes128Cbc => 16,
            ContentCipher::Aes192Cbc | ContentCipher::DesEde3Cbc => 24,
            ContentCipher::Aes256Cbc => 32,
            ContentCipher::DesCbc => 8,
        }
    }

    /// The IV's length in bytes (the cipher's block).
    pub fn iv_len(self) -> usize {
        match self {
            ContentCipher::DesEde3Cbc | ContentCipher::DesCbc => 8,
            _ => 16,
        }
    }
}

/// What opening an envelope for one recipient takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTransport {
    /// The content key, RSAES-PKCS1-v1_5-encrypted to the recipient.
    pub encrypted_key: Vec<u8>,
    /// The content cipher.
    pub cipher: ContentCipher,
    /// Its IV.
    pub iv: Vec<u8>,
    /// The encrypted content.
    pub ciphertext: Vec<u8>,
}

/// The key transport in `envelope` (a DER ContentInfo holding an EnvelopedData) addressed to
/// `recipient_der` (a certificate, named by its issuer and serial number); an error when the
/// envelope is malformed, is not for that certificate, or uses a cipher SCEP does not.
pub fn key_transport(
    envelope: &[u8],
    recipient_der: &[u8],
) -> Result<KeyTransport, ScepFormatError> {
    let recipient = Certificate::from_der(recipient_der).map_err(malformed)?;
    let info = ContentInfo::from_der(envelope).map_err(malformed)?;
    if info.content_type != ID_ENVELOPED_DATA {
        return Err(malformed("the messageData is not an EnvelopedData"));
    }
    let enveloped =
        EnvelopedData::from_der(&info.content.to_der().map_err(malformed)?).map_err(malformed)?;
    let tbs = &recipient.tbs_certificate;
    let encrypted_key = enveloped
        .recip_infos
        .0
        .iter()
        .find_map(|r| match r {
            RecipientInfo::Ktri(k) if k.key_enc_alg.oid == RSA_ENCRYPTION => match &k.rid {
                RecipientIdentifier::IssuerAndSerialNumber(id)
                    if id.issuer == tbs.issuer && id.serial_number == tbs.serial_number =>
                {
                    Some(k.enc_key.as_bytes().to_vec())
                }
                _ => None,
            },
            _ => None,
        })
        .ok_or_else(|| malformed("the envelope is not encrypted to the RA certificate"))?;
    let content = &enveloped.encrypted_content;
    let cipher = ContentCipher::from_oid(content.content_enc_alg.oid).ok_or_else(|| {
        malformed(format!(
            "content cipher {} is not one SCEP uses",
            content.content_enc_alg.oid
        ))
    })?;
    let iv = content
        .content_enc_alg
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<OctetString>().ok())
        .map(|o| o.as_bytes().to_vec())
        .filter(|iv| iv.len() == cipher.iv_len())
        .ok_or_else(|| malformed("the content cipher's IV is missing or of the wrong length"))?;
    let ciphertext = content
        .encrypted_content
        .as_ref()
        .map(|c| c.as_bytes().to_vec())
        .filter(|c| !c.is_empty())
        .ok_or_else(|| malformed("the envelope has no encrypted content"))?;
    Ok(KeyTransport {
        encrypted_key,
        cipher,
        iv,
        ciphertext,
    })
}

#[cfg(test)]
mod tests {
    use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::{Padding, Rsa};
    use openssl::stack::Stack;
    use openssl::symm::Cipher;
    use openssl::x509::X509;

    use super::*;

    fn identity(cn: &str) -> (PKey<Private>, X509) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut cert = openssl::x509::X509Builder::new().unwrap();
        cert.set_version(2).unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(&name).unwrap();
        cert.set_pubkey(&key).unwrap();
        let serial = openssl::bn::BigNum::from_u32(7).unwrap().to_asn1_integer();
        cert.set_serial_number(&serial.unwrap()).unwrap();
        let now = openssl::asn1::Asn1Time::days_from_now(0).unwrap();
        let later = openssl::asn1::Asn1Time::days_from_now(1).unwrap();
        cert.set_not_before(&now).unwrap();
        cert.set_not_after(&later).unwrap();
        cert.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        (key, cert.build())
    }

    fn envelope(to: &X509, cipher: Cipher, plain: &[u8]) -> Vec<u8> {
        let mut recipients = Stack::new().unwrap();
        recipients.push(to.clone()).unwrap();
        Pkcs7::encrypt(&recipients, plain, cipher, Pkcs7Flags::BINARY)
            .unwrap()
            .to_der()
            .unwrap()
    }

    #[test]
    fn an_openssl_envelope_opens_with_its_parts() {
        let (key, cert) = identity("RA");
        let plain = b"a CSR would be here".to_vec();
        for (cipher, want) in [
            (Cipher::aes_256_cbc(), ContentCipher::Aes256Cbc),
            (Cipher::aes_128_cbc(), ContentCipher::Aes128Cbc),
            (Cipher::des_ede3_cbc(), ContentCipher::DesEde3Cbc),
        ] {
            let der = envelope(&cert, cipher, &plain);
            let parts = key_transport(&der, &cert.to_der().unwrap()).unwrap();
            assert_eq!(parts.cipher, want);
            assert_eq!(parts.iv.len(), want.iv_len());
            let rsa = key.rsa().unwrap();
            let mut cek = vec![0; rsa.size() as usize];
            let n = rsa
                .private_decrypt(&parts.encrypted_key, &mut cek, Padding::PKCS1)
                .unwrap();
            assert_eq!(n, want.key_len());
            let opened =
                openssl::symm::decrypt(cipher, &cek[..n], Some(&parts.iv), &parts.ciphertext)
                    .unwrap();
            assert_eq!(opened, plain);
        }
    }

    #[test]
    fn an_envelope_for_another_certificate_or_garbage_is_refused() {
        let (_, ra) = identity("RA");
        let (_, other) = identity("someone else");
        let der = envelope(&other, Cipher::aes_256_cbc(), b"x");
        let err = key_transport(&der, &ra.to_der().unwrap()).unwrap_err();
        assert!(err.to_string().contains("not encrypted to the RA"), "{err}");
        assert!(key_transport(b"\x30\x00", &ra.to_der().unwrap()).is_err());
        assert!(key_transport(&der, b"not a certificate").is_err());
    }
}
