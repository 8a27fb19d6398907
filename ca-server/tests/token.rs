//! CA keys in a PKCS#11 token, on SoftHSM2: generated inside it non-extractable, signing
//! certificates, CRLs and OCSP responses that openssl verifies, found again by URI, and
//! refused with a wrong PIN, a wrong token or a missing key. Skips with a printed reason where
//! SoftHSM2 is not installed (CI installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use ca_core::ca::{self, CaSpec};
use ca_core::clock::SystemClock;
use ca_core::key::{KeyAlgorithm, SoftwareKey};
use ca_core::name::{build_name, AttributeKind};
use ca_core::random::OsRandom;
use ca_server::custody::keys::{self_test, Custody};
use ca_server::custody::softhsm;
use ca_server::custody::uri::KeyUri;

fn spec(id: &str, cn: &str, path_len: u8) -> CaSpec {
    CaSpec {
        id: id.into(),
        subject: build_name(&[(AttributeKind::CN, cn.into())]).unwrap(),
        validity_secs: ca::DEFAULT_ISSUING_VALIDITY_SECS,
        path_len: Some(path_len),
        name_constraints: None,
    }
}

fn openssl(args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ca_keys_live_in_the_token_and_sign_what_openssl_verifies() {
    let module = match softhsm::module() {
        Ok(m) => m,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let token = softhsm::create(dir.path(), "mamori-unit", "4321").unwrap();
    // This test is its own process (an integration test file): the variable reaches only it.
    std::env::set_var("SOFTHSM2_CONF", &token.conf);
    assert_eq!(token.config.module, module);

    let custody = Custody::new(Some(token.config.clone()));
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384] {
        let key = custody
            .generate(&format!("k-{}", algorithm.as_str()), algorithm)
            .unwrap();
        self_test(&key).unwrap();
        let t = custody.token().unwrap();
        assert!(
            t.never_extractable(&key).unwrap(),
            "sensitive, never extractable"
        );
    }

    // A software root certifies an issuing CA whose key is in the token.
    let (root_key, _) = SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &OsRandom).unwrap();
    // The root outlives the issuing CA as in production (the same validity failed whenever a
    // second ticked between the two: the issuing CA would have ended a second after its root).
    let root = ca::create_root(
        &CaSpec {
            validity_secs: ca::DEFAULT_ROOT_VALIDITY_SECS,
            ..spec("root", "Token Test Root", 1)
        },
        Arc::new(root_key),
        None,
        &SystemClock,
        &OsRandom,
    )
    .unwrap();
    let key = custody
        .generate("issuing", KeyAlgorithm::EcdsaP256)
        .unwrap();
    let uri = key.uri().to_string();
    assert!(
        uri.starts_with("pkcs11:token=mamori-unit;object=issuing;id=%"),
        "{uri}"
    );
    let issuing = ca::create_issuing(
        &spec("issuing", "Token Test Issuing", 0),
        Arc::new(key),
        &root,
        None,
        &SystemClock,
        &OsRandom,
    )
    .unwrap();
    // Issuance reserves the serial before a token signs (the signature leaves the process).
    assert!(issuing.signs_outside_process() && !root.signs_outside_process());
    std::fs::write(dir.path().join("root.pem"), root.certificate_pem()).unwrap();
    std::fs::write(dir.path().join("issuing.pem"), issuing.certificate_pem()).unwrap();
    let root_pem = dir.path().join("root.pem").display().to_string();
    let issuing_pem = dir.path().join("issuing.pem").display().to_string();
    assert!(openssl(&["verify", "-CAfile", &root_pem, &issuing_pem]).contains(": OK"));

    // Found again by its URI (a new Custody: what a restart does), it is the same key.
    let again = Custody::new(Some(token.config.clone()));
    let reloaded = again.load(&uri, "unused").unwrap();
    let issuing_cert =
        <x509_cert::Certificate as der::Decode>::from_der(issuing.certificate_der()).unwrap();
    assert_eq!(
        reloaded.public_key_info(),
        &issuing_cert.tbs_certificate.subject_public_key_info
    );

    // What the token signs verifies: a CRL with openssl crl -verify.
    let now = ca_core::clock::Clock::now(&SystemClock);
    let params = ca_core::crl::CrlParams {
        this_update: now,
        next_update: now.plus(3600),
        crl_number: 1,
        issuing_distribution_point: None,
        delta_base: None,
        freshest_crl: None,
    };
    let crl = ca_core::crl::build_crl(&issuing, &params, []).unwrap();
    std::fs::write(dir.path().join("crl.der"), &crl).unwrap();
    let crl_path = dir.path().join("crl.der").display().to_string();
    let out = std::process::Command::new("openssl")
        .args([
            "crl",
            "-inform",
            "DER",
            "-in",
            &crl_path,
            "-CAfile",
            &issuing_pem,
            "-noout",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verify OK"),
        "{out:?}"
    );

    // Old responder keys are destroyed by label, both halves; the others stay.
    let t = custody.token().unwrap();
    let slot = t.slot_id();
    custody
        .generate("mamori-ocsp-issuing-100", KeyAlgorithm::EcdsaP256)
        .unwrap();
    let kept = custody
        .generate("mamori-ocsp-issuing-200", KeyAlgorithm::EcdsaP256)
        .unwrap();
    assert_eq!(
        t.destroy_keys(|label| label == "mamori-ocsp-issuing-100")
            .unwrap(),
        2
    );
    assert_eq!(
        t.destroy_keys(|label| label == "mamori-ocsp-issuing-100")
            .unwrap(),
        0
    );
    self_test(&kept).unwrap();
    drop((t, kept));

    // PKCS#11 keeps one sign-in per process while any session is open: close them all (what
    // a fresh start is) before trying a wrong PIN.
    drop((custody, again, reloaded, issuing, root));
    // Refusals: a wrong PIN, a key in another token, a key that is not there, no [pkcs11].
    let mut wrong_pin = token.config.clone();
    std::fs::write(wrong_pin.pin_file.as_ref().unwrap(), "0000\n").unwrap();
    let err = Custody::new(Some(wrong_pin.clone()))
        .load(&uri, "")
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("PIN"), "{err}");
    std::fs::write(wrong_pin.pin_file.as_ref().unwrap(), "4321\n").unwrap();
    wrong_pin.token_label = "elsewhere".into();
    let err = Custody::new(Some(wrong_pin))
        .load(&uri, "")
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("no token labelled"), "{err}");
    let mut missing = KeyUri::parse(&uri).unwrap();
    missing.id = vec![1, 2, 3];
    let fresh = Custody::new(Some(token.config.clone()));
    let err = fresh
        .load(&missing.to_string(), "")
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("no such key"), "{err}");
    // A slot given in the configuration must hold the token.
    let mut in_slot = token.config.clone();
    in_slot.slot = Some(slot);
    Custody::new(Some(in_slot.clone())).load(&uri, "").unwrap();
    in_slot.slot = Some(slot + 1);
    let err = Custody::new(Some(in_slot))
        .load(&uri, "")
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("in slot {}", slot + 1)),
        "{err}"
    );
    let err = Custody::new(None).load(&uri, "").map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("configure [pkcs11]"), "{err}");
}
