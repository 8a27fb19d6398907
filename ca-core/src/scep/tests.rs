use super::*;

#[test]
fn garbage_and_oversize_are_refused() {
    assert!(matches!(
        read_attributes(b"\x30\x03\x02\x01\x00"),
        Err(ScepFormatError::Malformed(_))
    ));
    assert!(matches!(
        read_attributes(&vec![0u8; MAX_MESSAGE_LEN + 1]),
        Err(ScepFormatError::TooLarge(_))
    ));
    assert_eq!(envelope_cipher(b"\x30\x00"), None);
}

#[test]
fn a_real_scepclient_message_reads_its_attributes() {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/scep/pkcsreq-scepclient-foreign-ra.der"
    ))
    .unwrap();
    let attributes = read_attributes(&body).unwrap();
    assert_eq!(attributes.message_type, MessageType::PkcsReq);
    assert!(!attributes.transaction_id.is_empty());
    assert_eq!(attributes.sender_nonce.len(), 16);
}

#[test]
fn a_cert_rep_carries_status_fail_info_and_echoed_nonce() {
    let key = rcgen::KeyPair::generate().unwrap();
    let ra = rcgen::CertificateParams::new(vec![])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let request = PkiAttributes {
        message_type: MessageType::PkcsReq,
        transaction_id: "T-1".into(),
        sender_nonce: vec![7; 16],
    };
    let der = cert_rep(
        &request,
        RepStatus::Failure(FailInfo::BadRequest),
        &[],
        &[9; 16],
        ra.der(),
        |_| Ok(vec![1, 2, 3]),
    )
    .unwrap();
    let info = ContentInfo::from_der(&der).unwrap();
    let signed: SignedData = info.content.decode_as().unwrap();
    let attrs = signed
        .signer_infos
        .0
        .iter()
        .next()
        .unwrap()
        .signed_attrs
        .clone()
        .unwrap();
    let value = |oid: &ObjectIdentifier| {
        attrs
            .iter()
            .find(|a| &a.oid == oid)
            .and_then(|a| a.values.iter().next().cloned())
            .unwrap()
    };
    assert_eq!(value(&PKI_STATUS).value(), b"2");
    assert_eq!(value(&FAIL_INFO).value(), b"2");
    assert_eq!(value(&TRANSACTION_ID).value(), b"T-1");
    assert_eq!(
        value(&RECIPIENT_NONCE)
            .decode_as::<OctetString>()
            .unwrap()
            .as_bytes(),
        &[7; 16]
    );
}

#[test]
fn a_degenerate_signed_data_holds_the_certificates() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = degenerate(&[cert.der()], &[]).unwrap();
    let info = ContentInfo::from_der(&der).unwrap();
    let signed: SignedData = info.content.decode_as().unwrap();
    assert_eq!(signed.certificates.unwrap().0.len(), 1);
    assert!(signed.signer_infos.0.is_empty());
}
