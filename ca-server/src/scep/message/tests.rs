use super::*;
use openssl::pkey::PKey;

#[test]
fn a_degenerate_signed_data_carries_the_certificates_openssl_reads() {
    let cert = self_signed();
    let der = degenerate(&[&cert], &[]).unwrap();
    let p7 = Pkcs7::from_der(&der).unwrap();
    let certs = p7.signed().unwrap().certificates().unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs.get(0).unwrap().to_der().unwrap(), cert);
}

#[test]
fn garbage_is_refused_before_any_crypto() {
    assert!(matches!(
        parse(b"\x30\x03\x02\x01\x00", &[]),
        Err(ScepError::Format(_))
    ));
}

#[test]
fn a_real_message_for_another_ra_fails_the_envelope_not_the_signature() {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/scep/pkcsreq-scepclient-foreign-ra.der"
    ))
    .unwrap();
    let request = parse(&body, &[]).unwrap();
    // Single DES, not allowed in this process: badAlg, whoever it was for.
    assert_eq!(request.content.unwrap_err(), FailInfo::BadAlg);
}

/// A self-signed RSA certificate made with OpenSSL (DER).
fn self_signed() -> Vec<u8> {
    let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "test").unwrap();
    let name = name.build();
    let mut builder = openssl::x509::X509Builder::new().unwrap();
    builder.set_version(2).unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&name).unwrap();
    builder.set_pubkey(&key).unwrap();
    builder
        .set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    builder
        .sign(&key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    builder.build().to_der().unwrap()
}
