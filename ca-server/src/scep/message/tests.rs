use super::*;

#[test]
fn a_degenerate_signed_data_carries_the_certificates_openssl_reads() {
    let key = rcgen_free_cert();
    let der = degenerate(&[&key], &[]).unwrap();
    let p7 = Pkcs7::from_der(&der).unwrap();
    let pem = p7.to_pem().unwrap();
    assert!(String::from_utf8(pem).unwrap().contains("BEGIN PKCS7"));
    let certs = p7.signed().unwrap().certificates().unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs.get(0).unwrap().to_der().unwrap(), key);
}

#[test]
fn garbage_and_oversize_are_refused_before_any_crypto() {
    assert!(matches!(
        parse(b"\x30\x03\x02\x01\x00", &[]),
        Err(ScepError::Malformed(_))
    ));
    assert!(matches!(
        parse(&vec![0u8; MAX_MESSAGE_LEN + 1], &[]),
        Err(ScepError::TooLarge(_))
    ));
}

/// A self-signed RSA certificate made with OpenSSL (DER).
fn rcgen_free_cert() -> Vec<u8> {
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
