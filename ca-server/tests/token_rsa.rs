//! The SCEP RA's RSA key in a PKCS#11 token (SoftHSM2): generated inside it non-extractable,
//! it signs what openssl verifies (a PKCS#10 request, a message) and opens envelopes OpenSSL
//! encrypted to its certificate (AES and 3DES); a tampered content key opens nothing. Skips
//! with a printed reason where SoftHSM2 is not installed (CI installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use ca_server::custody::keys::Custody;
use ca_server::custody::softhsm;
use ca_server::scep::ra_key::{self, RaKey};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::PKey;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::{X509Builder, X509NameBuilder, X509Req, X509};

/// A certificate for `spki` (DER) issued by a throwaway software CA.
fn certify(spki: &[u8], subject: &openssl::x509::X509NameRef) -> X509 {
    let ca = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let mut issuer = X509NameBuilder::new().unwrap();
    issuer.append_entry_by_text("CN", "test CA").unwrap();
    let issuer = issuer.build();
    let mut cert = X509Builder::new().unwrap();
    cert.set_version(2).unwrap();
    cert.set_subject_name(subject).unwrap();
    cert.set_issuer_name(&issuer).unwrap();
    cert.set_pubkey(&PKey::public_key_from_der(spki).unwrap())
        .unwrap();
    let serial = openssl::bn::BigNum::from_u32(4242).unwrap();
    cert.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    cert.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    cert.sign(&ca, openssl::hash::MessageDigest::sha256())
        .unwrap();
    cert.build()
}

#[test]
fn the_scep_ra_key_in_the_token_signs_and_opens_envelopes() {
    if let Err(why) = softhsm::module() {
        println!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let token = softhsm::create(dir.path(), "mamori-ra", "2468").unwrap();
    // This test is its own process (an integration test file): the variable reaches only it.
    std::env::set_var("SOFTHSM2_CONF", &token.conf);
    let custody = Custody::new(Some(token.config.clone()));
    let key = custody
        .generate_rsa("mamori-scep-ra-issuing-1", 2048)
        .unwrap();
    let uri = key.uri().to_string();
    assert!(uri.starts_with("pkcs11:token=mamori-ra;object=mamori-scep-ra-issuing-1;id="));
    let tok = custody.token().unwrap();
    let ra = RaKey::Token(custody.load_rsa(&uri).unwrap());

    // The request it makes for its certificate verifies with openssl.
    let mut subject = X509NameBuilder::new().unwrap();
    subject
        .append_entry_by_text("CN", "Mamori SCEP RA (issuing)")
        .unwrap();
    let subject = subject.build();
    let csr = ra_key::csr(&subject.to_der().unwrap(), &ra).unwrap();
    let req = X509Req::from_der(&csr).unwrap();
    assert!(req.verify(&req.public_key().unwrap()).unwrap());
    let spki = ra.public_key_der().unwrap();
    assert_eq!(req.public_key().unwrap().public_key_to_der().unwrap(), spki);
    let public = PKey::public_key_from_der(&spki).unwrap();
    assert_eq!(public.bits(), 2048);

    // A signature over a message verifies with the public half.
    let signature = ra.sign_sha256(b"a CertRep's signed attributes").unwrap();
    let mut verifier =
        openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &public).unwrap();
    assert!(verifier
        .verify_oneshot(&signature, b"a CertRep's signed attributes")
        .unwrap());

    // Envelopes OpenSSL encrypts to the certificate open in the token.
    let cert = certify(&spki, &subject);
    let der = cert.to_der().unwrap();
    let mut to = Stack::new().unwrap();
    to.push(cert.clone()).unwrap();
    let plain = b"PKCS#10 request bytes".to_vec();
    for cipher in [
        Cipher::aes_256_cbc(),
        Cipher::aes_128_cbc(),
        Cipher::des_ede3_cbc(),
    ] {
        let envelope = Pkcs7::encrypt(&to, &plain, cipher, Pkcs7Flags::BINARY)
            .unwrap()
            .to_der()
            .unwrap();
        assert_eq!(ra.open(&envelope, &cert, &der).as_deref(), Some(&plain[..]));
        // One bit of the encrypted content key flipped: the token's decryption fails (or
        // gives another key), a random key stands in, and the request does not open.
        let parts = ca_core::scep::envelope::key_transport(&envelope, &der).unwrap();
        let at = envelope
            .windows(parts.encrypted_key.len())
            .position(|w| w == parts.encrypted_key.as_slice())
            .unwrap();
        let mut tampered = envelope.clone();
        tampered[at + 17] ^= 0x01;
        assert_ne!(ra.open(&tampered, &cert, &der).as_deref(), Some(&plain[..]));
    }
    // An envelope for another certificate does not open.
    let other = certify(
        &PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap())
            .unwrap()
            .public_key_to_der()
            .unwrap(),
        &subject,
    );
    let mut to_other = Stack::new().unwrap();
    to_other.push(other).unwrap();
    let envelope = Pkcs7::encrypt(&to_other, &plain, Cipher::aes_256_cbc(), Pkcs7Flags::BINARY)
        .unwrap()
        .to_der()
        .unwrap();
    assert_eq!(ra.open(&envelope, &cert, &der), None);

    // Old keys are destroyed by label, both halves.
    assert_eq!(
        tok.destroy_keys(|label| label == "mamori-scep-ra-issuing-1")
            .unwrap(),
        2
    );
    assert!(custody.load_rsa(&uri).is_err());
}
