//! Writes the request bodies of `bench/enroll.sh`.
//!
//! `enroll_load scep <ra.der> <key.pem> <csr.der> <out-dir> <count>`: SCEP PKCSReq messages,
//! each the same CSR (with its challengePassword) encrypted to the RA certificate with
//! AES-256-CBC and signed by a self-signed certificate for the CSR's key, under its own
//! transactionID, as SCEP clients send them.
//!
//! `enroll_load csrs <out-dir> <count> <profile>`: distinct P-256 CSRs (`CN=tablet-<i>`), each
//! as an EST body (`<i>.b64`) and a JSON API body (`<i>.json`), listed in `est.list` and
//! `json.list`.

use std::path::PathBuf;

use ca_core::scep::{pki_request, MessageType, PkiAttributes};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::PKey;
use openssl::stack::Stack;
use openssl::x509::X509;

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("scep") => scep(&args[1..]),
        Some("csrs") => csrs(&args[1..]),
        _ => Err("usage: enroll_load scep <ra.der> <key.pem> <csr.der> <out-dir> <count> | enroll_load csrs <out-dir> <count> <profile>".into()),
    }
}

fn csrs(args: &[String]) -> Result<(), Failure> {
    use base64::Engine;
    let [out, count, profile] = args else {
        return Err("usage: enroll_load csrs <out-dir> <count> <profile>".into());
    };
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)?;
    let (mut est, mut json) = (String::new(), String::new());
    for i in 0..count.parse::<usize>()? {
        let key = PKey::from_ec_key(openssl::ec::EcKey::generate(&group)?)?;
        let mut name = openssl::x509::X509NameBuilder::new()?;
        name.append_entry_by_text("O", "Mamori Hospital")?;
        name.append_entry_by_text("CN", &format!("tablet-{i}"))?;
        let mut req = openssl::x509::X509ReqBuilder::new()?;
        req.set_subject_name(&name.build())?;
        req.set_pubkey(&key)?;
        req.sign(&key, openssl::hash::MessageDigest::sha256())?;
        let req = req.build();
        let b64 = out.join(format!("{i}.b64"));
        std::fs::write(
            &b64,
            base64::engine::general_purpose::STANDARD.encode(req.to_der()?),
        )?;
        let body = serde_json::json!({
            "profile": profile,
            "csr": String::from_utf8(req.to_pem()?)?,
            "justification": "bench",
        });
        let path = out.join(format!("{i}.json"));
        std::fs::write(&path, body.to_string())?;
        est.push_str(&format!("{}\n", b64.display()));
        json.push_str(&format!("{}\n", path.display()));
    }
    std::fs::write(out.join("est.list"), est)?;
    std::fs::write(out.join("json.list"), json)?;
    Ok(())
}

fn scep(args: &[String]) -> Result<(), Failure> {
    let [ra, key, csr, out, count] = args else {
        return Err(
            "usage: enroll_load scep <ra.der> <key.pem> <csr.der> <out-dir> <count>".into(),
        );
    };
    let ra = X509::from_der(&std::fs::read(ra)?)?;
    let key = PKey::private_key_from_pem(&std::fs::read(key)?)?;
    let csr = std::fs::read(csr)?;
    let count: usize = count.parse()?;
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;

    let mut name = openssl::x509::X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "SCEP load client")?;
    let name = name.build();
    let mut builder = openssl::x509::X509Builder::new()?;
    builder.set_version(2)?;
    let mut serial = openssl::bn::BigNum::new()?;
    serial.rand(63, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(&key)?;
    let (from, until) = (
        openssl::asn1::Asn1Time::days_from_now(0)?,
        openssl::asn1::Asn1Time::days_from_now(1)?,
    );
    builder.set_not_before(&from)?;
    builder.set_not_after(&until)?;
    builder.sign(&key, openssl::hash::MessageDigest::sha256())?;
    let signer = builder.build().to_der()?;

    let mut recipients = Stack::<X509>::new()?;
    recipients.push(ra)?;
    let mut list = String::new();
    for i in 0..count {
        let envelope = Pkcs7::encrypt(
            &recipients,
            &csr,
            openssl::symm::Cipher::aes_256_cbc(),
            Pkcs7Flags::BINARY,
        )?
        .to_der()?;
        let mut nonce = [0u8; 16];
        openssl::rand::rand_bytes(&mut nonce)?;
        let attributes = PkiAttributes {
            message_type: MessageType::PkcsReq,
            transaction_id: format!("load-{}-{i}", std::process::id()),
            sender_nonce: nonce.to_vec(),
        };
        let message = pki_request(&attributes, &envelope, &signer, |data| {
            let mut s = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)
                .map_err(|e| e.to_string())?;
            s.sign_oneshot_to_vec(data).map_err(|e| e.to_string())
        })?;
        let path = out.join(format!("{i}.der"));
        std::fs::write(&path, message)?;
        list.push_str(&format!("{}\n", path.display()));
    }
    std::fs::write(out.join("list.txt"), list)?;
    Ok(())
}
