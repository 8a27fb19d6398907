//! End-to-end checks of ca-core's output with an implementation we did not write (OpenSSL):
//! chains for every shipped profile, CRL signature and entries, OCSP responses (CA-signed and
//! delegated; good, revoked, unknown). Everything produced is written to the artifacts folder
//! (`$MAMORI_ARTIFACTS_DIR`, default `target/pki-artifacts/`) for pkilint in CI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;

use ca_core::ca::{self, CaSpec, CertificateAuthority, NameConstraintSpec};
use ca_core::clock::{Clock, FixedClock, SystemClock};
use ca_core::crl::{
    build_crl, build_crl_from_base, raw_entries, CrlParams, RevocationReason, RevokedEntry,
};
use ca_core::csr::VerifiedCsr;
use ca_core::error::{CsrError, IssueError};
use ca_core::issuance::{IssuanceOptions, PreparedIssuance};
use ca_core::key::{KeyAlgorithm, SoftwareKey};
use ca_core::name::{build_name, AttributeKind};
use ca_core::ocsp::{self, IssuerHashes, ResponderIdentity, SingleStatus, Status};
use ca_core::profile::Profile;
use ca_core::random::OsRandom;
use ca_core::signer::SigningKey;
use ca_core::time::UnixTime;
use der::{Decode, Encode};
use openssl::ocsp::{
    OcspCertId, OcspCertStatus, OcspFlag, OcspRequest, OcspResponse, OcspRevokedStatus,
};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509Crl, X509StoreContext, X509VerifyResult, X509};

const BASE_URL: &str = "http://pki.hospital.example";

fn artifacts() -> PathBuf {
    let dir = std::env::var_os("MAMORI_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pki-artifacts")
        });
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_artifact(name: &str, der: &[u8]) {
    std::fs::write(artifacts().join(name), der).unwrap();
}

fn profile(id: &str) -> Profile {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../policies/{id}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    Profile::from_toml(&format!("{id}.toml"), &text).unwrap()
}

struct Hierarchy {
    root: CertificateAuthority,
    issuing: CertificateAuthority,
    /// The issuing CA's key, kept by the test (a CA hands its key to nobody).
    issuing_key: Arc<SoftwareKey>,
}

fn hierarchy(algorithm: KeyAlgorithm, issuing_validity: u64) -> Hierarchy {
    let clock = SystemClock;
    let (root_key, _) = SoftwareKey::generate(algorithm, &ca_core::random::OsRandom).unwrap();
    let root = ca::create_root(
        &CaSpec {
            id: "root".into(),
            subject: build_name(&[
                (AttributeKind::C, "JP".into()),
                (AttributeKind::O, "Mamori Hospital Group".into()),
                (AttributeKind::CN, "Mamori Root CA".into()),
            ])
            .unwrap(),
            validity_secs: ca::DEFAULT_ROOT_VALIDITY_SECS,
            path_len: Some(1),
            name_constraints: None,
        },
        Arc::new(root_key),
        Some(BASE_URL.into()),
        &clock,
        &OsRandom,
    )
    .unwrap();
    let issuing_key = Arc::new(
        SoftwareKey::generate(algorithm, &ca_core::random::OsRandom)
            .unwrap()
            .0,
    );
    let issuing = ca::create_issuing(
        &CaSpec {
            id: "issuing".into(),
            subject: build_name(&[
                (AttributeKind::C, "JP".into()),
                (AttributeKind::O, "Mamori Hospital Group".into()),
                (AttributeKind::CN, "Mamori Issuing CA 1".into()),
            ])
            .unwrap(),
            validity_secs: issuing_validity,
            path_len: Some(0),
            name_constraints: None,
        },
        issuing_key.clone(),
        &root,
        Some(BASE_URL.into()),
        &clock,
        &OsRandom,
    )
    .unwrap();
    Hierarchy {
        root,
        issuing,
        issuing_key,
    }
}

fn x509(der: &[u8]) -> X509 {
    X509::from_der(der).unwrap()
}

fn verify_chain(h: &Hierarchy, leaf_der: &[u8]) -> Result<(), X509VerifyResult> {
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(x509(h.root.certificate_der())).unwrap();
    let store = store.build();
    let mut chain = Stack::new().unwrap();
    chain.push(x509(h.issuing.certificate_der())).unwrap();
    let mut ctx = X509StoreContext::new().unwrap();
    let leaf = x509(leaf_der);
    ctx.init(&store, &leaf, &chain, |c| {
        let ok = c.verify_cert()?;
        Ok(if ok { Ok(()) } else { Err(c.error()) })
    })
    .unwrap()
}

fn ec_key() -> rcgen::KeyPair {
    rcgen::KeyPair::generate().unwrap()
}

fn csr_der(
    key: &rcgen::KeyPair,
    subject: &[(rcgen::DnType, &str)],
    sans: Vec<rcgen::SanType>,
) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (kind, value) in subject {
        params.distinguished_name.push(kind.clone(), *value);
    }
    params.subject_alt_names = sans;
    // A CSR may ask for anything; Mamori must ignore all of it but the SANs.
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    params.serialize_request(key).unwrap().der().to_vec()
}

fn uri(s: &str) -> rcgen::SanType {
    rcgen::SanType::URI(s.try_into().unwrap())
}
fn email(s: &str) -> rcgen::SanType {
    rcgen::SanType::Rfc822Name(s.try_into().unwrap())
}
fn dns(s: &str) -> rcgen::SanType {
    rcgen::SanType::DnsName(s.try_into().unwrap())
}

/// A CSR for each shipped profile that the profile accepts.
fn sample_csr(profile_id: &str, key: &rcgen::KeyPair) -> Vec<u8> {
    use rcgen::DnType::*;
    match profile_id {
        "ambulance-terminal" => csr_der(
            key,
            &[
                (OrganizationName, "Mamori Hospital Group"),
                (CommonName, "amb-0042"),
            ],
            vec![uri("urn:mamori:device:ambulance:0042")],
        ),
        "staff" => csr_der(
            key,
            &[
                (CommonName, "Hanako Yamada"),
                (CustomDnType(vec![2, 5, 4, 5]), "STAFF-12345"),
            ],
            vec![email("hanako.yamada@hospital.example")],
        ),
        "vendor-maintenance" | "vendor-day" => csr_der(
            key,
            &[
                (OrganizationName, "Acme Medical Systems"),
                (CommonName, "acme-field-engineer-7"),
            ],
            vec![],
        ),
        "tls-server" => csr_der(
            key,
            &[(CommonName, "ehr.hospital.example")],
            vec![
                dns("ehr.hospital.example"),
                dns("EHR-backup.hospital.example"),
            ],
        ),
        "ocsp-responder" => csr_der(
            key,
            &[
                (OrganizationName, "Mamori Hospital Group"),
                (CommonName, "Mamori OCSP Responder"),
            ],
            vec![],
        ),
        other => panic!("no sample for {other}"),
    }
}

fn issue(
    h: &Hierarchy,
    profile: &Profile,
    csr: &[u8],
    options: &IssuanceOptions,
) -> Result<Vec<u8>, IssueError> {
    let verified = VerifiedCsr::parse(csr, 2048)?;
    let prepared = PreparedIssuance::prepare(
        &h.issuing,
        profile,
        &verified,
        options,
        &SystemClock,
        &OsRandom,
    )?;
    Ok(prepared.sign(&h.issuing)?.der)
}

#[test]
fn every_shipped_profile_issues_a_certificate_openssl_verifies() {
    let h = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    write_artifact("root-ca.der", h.root.certificate_der());
    write_artifact("issuing-ca.der", h.issuing.certificate_der());
    for id in [
        "ambulance-terminal",
        "staff",
        "vendor-maintenance",
        "tls-server",
        "ocsp-responder",
    ]
    .into_iter()
    .enumerate()
    {
        let (n, id) = id;
        // As a group would configure it: a policy OID per profile under its own arc.
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../policies/{id}.toml"));
        let text = std::fs::read_to_string(&path).unwrap().replacen(
            "issuing_ca = \"issuing\"\n",
            &format!("issuing_ca = \"issuing\"\npolicy_oid = \"1.3.6.1.4.1.55555.1.{n}\"\n"),
            1,
        );
        let profile = Profile::from_toml(&format!("{id}.toml"), &text).unwrap();
        let key = ec_key();
        let now = UnixTime::now();
        let options = if profile.allows_requested_window() {
            IssuanceOptions {
                window: Some((now, now.plus(8 * 3600))),
            }
        } else {
            IssuanceOptions::default()
        };
        let der = issue(&h, &profile, &sample_csr(id, &key), &options).unwrap();
        write_artifact(&format!("cert-{id}.der"), &der);
        verify_chain(&h, &der)
            .unwrap_or_else(|e| panic!("{id}: openssl says {}", e.error_string()));
        let cert = x509(&der);
        // Nothing the CSR asked for beyond its SANs was copied.
        let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
        assert!(text.contains("CA:FALSE"), "{id}: {text}");
        assert!(!text.contains("Certificate Sign"), "{id}: {text}");
        // Each profile carries its own certificate policy, as OpenSSL reads it.
        let (policy, _) = profile.policy_oid().expect("configured above");
        assert!(text.contains(&format!("Policy: {policy}")), "{id}: {text}");
        assert_eq!(
            cert.serial_number().to_bn().unwrap().num_bits(),
            127,
            "{id}"
        );
        match id {
            "ambulance-terminal" => {
                assert!(text.contains("URI:urn:mamori:device:ambulance:0042"));
                assert!(text.contains("TLS Web Client Authentication"));
                assert!(text.contains("OCSP - URI:http://pki.hospital.example/ocsp"));
                assert!(text.contains("URI:http://pki.hospital.example/crl/issuing.crl"));
                assert!(
                    text.contains("CA Issuers - URI:http://pki.hospital.example/ca/issuing.crt")
                );
            }
            "staff" => {
                assert!(text.contains("email:hanako.yamada@hospital.example"));
                assert!(text.contains("E-mail Protection"));
            }
            "vendor-maintenance" => {
                let lifetime = cert.not_before().diff(cert.not_after()).unwrap();
                assert!(
                    lifetime.days == 0 && lifetime.secs <= 8 * 3600 + 60,
                    "{lifetime:?}"
                );
            }
            "tls-server" => {
                assert!(text.contains("DNS:ehr-backup.hospital.example"));
                assert!(text.contains("TLS Web Server Authentication"));
            }
            "ocsp-responder" => {
                assert!(text.contains("OCSP Signing"));
                assert!(text.contains("OCSP No Check"));
                assert!(!text.contains("CRL Distribution"));
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn p384_hierarchy_and_rsa_and_ed25519_subjects_verify() {
    let h = hierarchy(KeyAlgorithm::EcdsaP384, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    let profile = profile("vendor-maintenance");
    for alg in [&rcgen::PKCS_RSA_SHA256, &rcgen::PKCS_ED25519] {
        let key = if alg == &rcgen::PKCS_RSA_SHA256 {
            let rsa = openssl::rsa::Rsa::generate(3072).unwrap();
            let pkcs8 = openssl::pkey::PKey::from_rsa(rsa)
                .unwrap()
                .private_key_to_pkcs8()
                .unwrap();
            rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap()
        } else {
            rcgen::KeyPair::generate_for(alg).unwrap()
        };
        let now = UnixTime::now();
        let der = issue(
            &h,
            &profile,
            &sample_csr("vendor-maintenance", &key),
            &IssuanceOptions {
                window: Some((now, now.plus(3600))),
            },
        )
        .unwrap();
        verify_chain(&h, &der).unwrap();
        let text = String::from_utf8(x509(&der).to_text().unwrap()).unwrap();
        assert!(text.contains("ecdsa-with-SHA384"));
    }
}

#[test]
fn profile_refusals_are_typed_and_name_the_field() {
    let h = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    use rcgen::DnType::*;
    let key = ec_key();
    let amb = profile("ambulance-terminal");
    let tls = profile("tls-server");
    let vendor = profile("vendor-maintenance");
    let now = UnixTime::now();
    type Case<'p> = (
        &'static str,
        &'p Profile,
        Vec<u8>,
        IssuanceOptions,
        fn(&IssueError) -> bool,
    );
    let cases: Vec<Case> = vec![
        (
            "missing CN",
            &amb,
            csr_der(&key, &[], vec![uri("urn:mamori:device:ambulance:1")]),
            IssuanceOptions::default(),
            |e| matches!(e, IssueError::Csr(CsrError::SubjectAttributeMissing { attribute }) if attribute == "CN"),
        ),
        (
            "bad CN",
            &amb,
            csr_der(
                &key,
                &[(CommonName, "laptop-1")],
                vec![uri("urn:mamori:device:ambulance:1")],
            ),
            IssuanceOptions::default(),
            |e| matches!(e, IssueError::Csr(CsrError::SubjectAttributeValue { attribute, .. }) if attribute == "CN"),
        ),
        (
            "unknown attribute",
            &amb,
            csr_der(
                &key,
                &[(CommonName, "amb-1"), (LocalityName, "Tokyo")],
                vec![uri("urn:mamori:device:ambulance:1")],
            ),
            IssuanceOptions::default(),
            |e| matches!(e, IssueError::Csr(CsrError::SubjectAttributeNotAllowed { attribute }) if attribute == "L"),
        ),
        (
            "missing URI",
            &amb,
            csr_der(&key, &[(CommonName, "amb-1")], vec![]),
            IssuanceOptions::default(),
            |e| matches!(e, IssueError::Csr(CsrError::SanMissing { kind }) if kind == "uri"),
        ),
        (
            "wrong URI",
            &amb,
            csr_der(
                &key,
                &[(CommonName, "amb-1")],
                vec![uri("urn:mamori:device:car:1")],
            ),
            IssuanceOptions::default(),
            |e| matches!(e, IssueError::Csr(CsrError::SanValue { kind, .. }) if kind == "uri"),
        ),
        (
            "dns on device",
            &amb,
            csr_der(
                &key,
                &[(CommonName, "amb-1")],
                vec![
                    uri("urn:mamori:device:ambulance:1"),
                    dns("a.hospital.example"),
                ],
            ),
            IssuanceOptions::default(),
            |e| matches!(e, IssueError::Csr(CsrError::SanTypeNotAllowed { kind }) if kind == "dns"),
        ),
        (
            "foreign domain",
            &tls,
            csr_der(&key, &[], vec![dns("evil.example.com")]),
            IssuanceOptions::default(),
            |e| matches!(e, IssueError::Csr(CsrError::SanValue { kind, .. }) if kind == "dns"),
        ),
        (
            "too many SANs",
            &tls,
            csr_der(
                &key,
                &[],
                (0..21)
                    .map(|i| dns(&format!("h{i}.hospital.example")))
                    .collect(),
            ),
            IssuanceOptions::default(),
            |e| matches!(e, IssueError::Csr(CsrError::SanTooMany { max: 20, .. })),
        ),
        (
            "window too long",
            &vendor,
            sample_csr("vendor-maintenance", &key),
            IssuanceOptions {
                window: Some((now, now.plus(73 * 3600))),
            },
            |e| matches!(e, IssueError::Validity(_)),
        ),
        (
            "window not allowed",
            &amb,
            sample_csr("ambulance-terminal", &key),
            IssuanceOptions {
                window: Some((now, now.plus(3600))),
            },
            |e| matches!(e, IssueError::Validity(_)),
        ),
        (
            "window in the past",
            &vendor,
            sample_csr("vendor-maintenance", &key),
            IssuanceOptions {
                window: Some((now.minus(7200), now.minus(3600))),
            },
            |e| matches!(e, IssueError::Validity(_)),
        ),
    ];
    for (name, profile, csr, options, expected) in cases {
        let err = issue(&h, profile, &csr, &options).unwrap_err();
        assert!(expected(&err), "{name}: got {err}");
    }
    // Ed25519 is not allowed for devices; the error names the key type and the profile.
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let err = issue(
        &h,
        &amb,
        &sample_csr("ambulance-terminal", &ed),
        &IssuanceOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "key type ed25519 is not allowed by profile ambulance-terminal"
    );
    // RSA 2048 is below the vendor profile's 3072.
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let pkcs8 = openssl::pkey::PKey::from_rsa(rsa)
        .unwrap()
        .private_key_to_pkcs8()
        .unwrap();
    let rsa_key = rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap();
    let err = issue(
        &h,
        &vendor,
        &sample_csr("vendor-maintenance", &rsa_key),
        &IssuanceOptions {
            window: Some((now, now.plus(3600))),
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, IssueError::Csr(CsrError::PublicKey(_))),
        "{err}"
    );
}

#[test]
fn never_outlives_the_issuing_ca() {
    let h = hierarchy(KeyAlgorithm::EcdsaP256, 2 * 86_400);
    let key = ec_key();
    // Default validity (365d) is cut to the CA's end.
    let der = issue(
        &h,
        &profile("ambulance-terminal"),
        &sample_csr("ambulance-terminal", &key),
        &IssuanceOptions::default(),
    )
    .unwrap();
    let cert = x509(&der);
    let ca_cert = x509(h.issuing.certificate_der());
    assert!(cert.not_after() <= ca_cert.not_after());
    // An explicit window past the CA's end is refused.
    let vendor = profile("vendor-maintenance");
    let end = h.issuing.not_after();
    let err = issue(
        &h,
        &vendor,
        &sample_csr("vendor-maintenance", &key),
        &IssuanceOptions {
            window: Some((end.minus(3600), end.plus(3600))),
        },
    )
    .unwrap_err();
    assert!(matches!(err, IssueError::OutlivesIssuer { .. }), "{err}");
    // And an issuing CA may not outlive its root.
    let (k, _) =
        SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &ca_core::random::OsRandom).unwrap();
    let err = ca::create_issuing(
        &CaSpec {
            id: "too-long".into(),
            subject: build_name(&[(AttributeKind::CN, "Too Long".into())]).unwrap(),
            validity_secs: 30 * 365 * 86_400,
            path_len: Some(0),
            name_constraints: None,
        },
        Arc::new(k),
        &h.root,
        None,
        &SystemClock,
        &OsRandom,
    )
    .unwrap_err();
    assert!(err.to_string().contains("after its parent's end"), "{err}");
}

#[test]
fn pre_issuance_lint_refuses_tampered_tbs() {
    use ca_core::lint::{lint, Expectation, LintContext};
    use x509_cert::ext::pkix::{KeyUsage, KeyUsages};
    let h = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    let profile = profile("ambulance-terminal");
    let key = ec_key();
    let verified = VerifiedCsr::parse(&sample_csr("ambulance-terminal", &key), 2048).unwrap();
    let prepared = PreparedIssuance::prepare(
        &h.issuing,
        &profile,
        &verified,
        &IssuanceOptions::default(),
        &SystemClock,
        &OsRandom,
    )
    .unwrap();
    let ctx = LintContext {
        issuer_subject: Some(h.issuing.subject()),
        issuer_key_id: h.issuing.key_id(),
        issuer_not_before: Some(h.issuing.not_before()),
        issuer_not_after: Some(h.issuing.not_after()),
        signature_algorithm: h.issuing_key.as_ref().algorithm().identifier(),
        now: UnixTime::now(),
        expectation: Expectation::Leaf {
            profile: &profile,
            key_kind: verified.key_kind(),
            requested_window: false,
        },
    };
    assert!(lint(prepared.tbs_der(), &ctx).is_ok());
    let base = x509_cert::TbsCertificate::from_der(prepared.tbs_der()).unwrap();
    type Mutation = Box<dyn Fn(&mut x509_cert::TbsCertificate)>;
    let checks: Vec<(&str, Mutation)> = vec![
        (
            "e_extension_once",
            Box::new(|t| {
                let e = t.extensions.as_ref().unwrap()[0].clone();
                t.extensions.as_mut().unwrap().push(e);
            }),
        ),
        (
            "e_leaf_no_cert_sign",
            Box::new(|t| {
                let ku = ca_core::extensions::extension(
                    &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::DigitalSignature),
                    true,
                )
                .unwrap();
                t.extensions.as_mut().unwrap()[1] = ku;
            }),
        ),
        (
            "e_validity_within_issuer",
            Box::new(|t| {
                t.validity.not_after = UnixTime(4_000_000_000).to_x509_time().unwrap();
            }),
        ),
        (
            "e_aki_matches_issuer",
            Box::new(|t| {
                let ext = ca_core::extensions::authority_key_identifier(&[1; 20]).unwrap();
                let i = t
                    .extensions
                    .as_ref()
                    .unwrap()
                    .iter()
                    .position(|e| e.extn_id == ext.extn_id)
                    .unwrap();
                t.extensions.as_mut().unwrap()[i] = ext;
            }),
        ),
        (
            "e_serial_entropy",
            Box::new(|t| {
                t.serial_number = x509_cert::serial_number::SerialNumber::from(7u32);
            }),
        ),
        (
            "e_issuer_matches_ca",
            Box::new(|t| {
                t.issuer = build_name(&[(AttributeKind::CN, "Someone Else".into())]).unwrap();
            }),
        ),
        (
            "e_basic_constraints_critical",
            Box::new(|t| {
                t.extensions.as_mut().unwrap()[0].critical = false;
            }),
        ),
    ];
    for (check, mutate) in checks {
        let mut tbs = base.clone();
        mutate(&mut tbs);
        let failure = lint(&tbs.to_der().unwrap(), &ctx).unwrap_err();
        assert!(
            failure.findings.iter().any(|f| f.check == check),
            "{check}: {failure}"
        );
    }
}

#[test]
fn name_constraints_and_external_root() {
    // An issuing CA constrained to hospital.example, verified by openssl against a leaf inside.
    let h = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    let (k, _) =
        SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &ca_core::random::OsRandom).unwrap();
    let constrained = ca::create_issuing(
        &CaSpec {
            id: "issuing".into(),
            subject: build_name(&[
                (AttributeKind::O, "Mamori Hospital Group".into()),
                (AttributeKind::CN, "Constrained CA".into()),
            ])
            .unwrap(),
            validity_secs: 365 * 86_400,
            path_len: Some(0),
            name_constraints: Some(NameConstraintSpec {
                permitted_dns: vec!["hospital.example".into()],
                permitted_email: vec![],
            }),
        },
        Arc::new(k),
        &h.root,
        Some(BASE_URL.into()),
        &SystemClock,
        &OsRandom,
    )
    .unwrap();
    let text = String::from_utf8(x509(constrained.certificate_der()).to_text().unwrap()).unwrap();
    assert!(
        text.contains("Permitted:") && text.contains("DNS:hospital.example"),
        "{text}"
    );
    let hc = Hierarchy {
        root: h.root.clone(),
        issuing: constrained,
        issuing_key: h.issuing_key.clone(),
    };
    let der = issue(
        &hc,
        &profile("tls-server"),
        &sample_csr("tls-server", &ec_key()),
        &IssuanceOptions::default(),
    )
    .unwrap();
    verify_chain(&hc, &der).unwrap();

    // An external RSA root signs our issuing-CA CSR; we import the result.
    let root_key =
        openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(3072).unwrap()).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "External Root").unwrap();
    let name = name.build();
    let mut builder = openssl::x509::X509Builder::new().unwrap();
    builder.set_version(2).unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&name).unwrap();
    builder.set_pubkey(&root_key).unwrap();
    builder
        .set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&openssl::asn1::Asn1Time::days_from_now(3650).unwrap())
        .unwrap();
    builder
        .append_extension(
            openssl::x509::extension::BasicConstraints::new()
                .critical()
                .ca()
                .build()
                .unwrap(),
        )
        .unwrap();
    builder
        .sign(&root_key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    let external_root = builder.build();

    let (issuing_key, _) =
        SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &ca_core::random::OsRandom).unwrap();
    let subject = build_name(&[(AttributeKind::CN, "Imported Issuing CA".into())]).unwrap();
    let csr = ca::issuing_ca_csr(&subject, &issuing_key).unwrap();
    let req = openssl::x509::X509Req::from_der(&csr).unwrap();
    assert!(req.verify(&req.public_key().unwrap()).unwrap());
    let mut builder = openssl::x509::X509Builder::new().unwrap();
    builder.set_version(2).unwrap();
    builder.set_subject_name(req.subject_name()).unwrap();
    builder
        .set_issuer_name(external_root.subject_name())
        .unwrap();
    builder.set_pubkey(&req.public_key().unwrap()).unwrap();
    let serial = openssl::bn::BigNum::from_u32(4242)
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    builder.set_serial_number(&serial).unwrap();
    builder
        .set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&openssl::asn1::Asn1Time::days_from_now(1825).unwrap())
        .unwrap();
    builder
        .append_extension(
            openssl::x509::extension::BasicConstraints::new()
                .critical()
                .ca()
                .pathlen(0)
                .build()
                .unwrap(),
        )
        .unwrap();
    builder
        .append_extension(
            openssl::x509::extension::KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .digital_signature()
                .build()
                .unwrap(),
        )
        .unwrap();
    let ski = openssl::x509::extension::SubjectKeyIdentifier::new()
        .build(&builder.x509v3_context(Some(&external_root), None))
        .unwrap();
    builder.append_extension(ski).unwrap();
    builder
        .sign(&root_key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    let signed = builder.build().to_der().unwrap();
    let issuing_key = Arc::new(issuing_key);
    let imported = ca::import_issuing(
        "issuing",
        &signed,
        issuing_key.clone(),
        &external_root.to_der().unwrap(),
        Some(BASE_URL.into()),
    )
    .unwrap();
    assert_eq!(imported.id(), "issuing");
    // The wrong key, or the wrong parent, is refused.
    let (other, _) =
        SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &ca_core::random::OsRandom).unwrap();
    assert!(ca::import_issuing(
        "issuing",
        &signed,
        Arc::new(other),
        &external_root.to_der().unwrap(),
        None
    )
    .is_err());
    assert!(ca::import_issuing(
        "issuing",
        &signed,
        issuing_key,
        h.root.certificate_der(),
        None
    )
    .is_err());
}

struct Issued {
    der: Vec<u8>,
    serial: x509_cert::serial_number::SerialNumber,
}

fn issue_many(h: &Hierarchy, n: usize) -> Vec<Issued> {
    let profile = profile("ambulance-terminal");
    (0..n)
        .map(|_| {
            let key = ec_key();
            let verified =
                VerifiedCsr::parse(&sample_csr("ambulance-terminal", &key), 2048).unwrap();
            let prepared = PreparedIssuance::prepare(
                &h.issuing,
                &profile,
                &verified,
                &IssuanceOptions::default(),
                &SystemClock,
                &OsRandom,
            )
            .unwrap();
            let issued = prepared.sign(&h.issuing).unwrap();
            Issued {
                der: issued.der,
                serial: issued.serial,
            }
        })
        .collect()
}

#[test]
fn crl_verifies_and_lists_entries_with_reasons() {
    let h = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    let certs = issue_many(&h, 4);
    let now = UnixTime::now();
    let entries = vec![
        RevokedEntry {
            serial: certs[0].serial.clone(),
            revoked_at: now.minus(100),
            reason: RevocationReason::KeyCompromise,
            invalidity_date: Some(now.minus(86_400)),
        },
        RevokedEntry {
            serial: certs[1].serial.clone(),
            revoked_at: now.minus(50),
            reason: RevocationReason::CertificateHold,
            invalidity_date: None,
        },
        RevokedEntry {
            serial: certs[2].serial.clone(),
            revoked_at: now.minus(10),
            reason: RevocationReason::Unspecified,
            invalidity_date: None,
        },
    ];
    let params = CrlParams {
        this_update: now,
        next_update: now.plus(86_400),
        crl_number: 7,
        issuing_distribution_point: Some(h.issuing.crl_url().unwrap()),
        delta_base: None,
        freshest_crl: None,
    };
    let der = build_crl(&h.issuing, &params, &entries).unwrap();
    write_artifact("crl-issuing.der", &der);
    let crl = X509Crl::from_der(&der).unwrap();
    assert!(crl
        .verify(&x509(h.issuing.certificate_der()).public_key().unwrap())
        .unwrap());
    let revoked = crl.get_revoked().unwrap();
    assert_eq!(revoked.len(), 3);
    let text = {
        let out = std::process::Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-text"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        out.stdin.as_ref().unwrap().write_all(&der).unwrap();
        String::from_utf8(out.wait_with_output().unwrap().stdout).unwrap()
    };
    assert!(
        text.contains("X509v3 CRL Number: \n                7") || text.contains("CRL Number:"),
        "{text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.contains("Certificate Hold"), "{text}");
    assert!(text.contains("Invalidity Date"), "{text}");
    assert!(text.contains("Issuing Distribution Point"), "{text}");
    assert_eq!(
        text.matches("CRL Reason Code").count(),
        2,
        "unspecified carries no reasonCode: {text}"
    );

    // openssl refuses the revoked leaf with the CRL, accepts the one not listed.
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let root_pem = write("root.pem", h.root.certificate_pem().as_bytes());
    let issuing_pem = write("issuing.pem", h.issuing.certificate_pem().as_bytes());
    let crl_pem = write("crl.pem", &crl.to_pem().unwrap());
    let verify_with_crl = |leaf: &[u8]| {
        let leaf_pem = write("leaf.pem", &x509(leaf).to_pem().unwrap());
        let out = std::process::Command::new("openssl")
            .args(["verify", "-crl_check", "-CAfile"])
            .arg(&root_pem)
            .arg("-untrusted")
            .arg(&issuing_pem)
            .arg("-CRLfile")
            .arg(&crl_pem)
            .arg(&leaf_pem)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = verify_with_crl(&certs[0].der);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = verify_with_crl(&certs[3].der);
    assert!(ok, "{out}");

    // An empty CRL is valid too, and the window must be sane.
    let empty = build_crl(
        &h.issuing,
        &CrlParams {
            issuing_distribution_point: None,
            delta_base: None,
            freshest_crl: None,
            ..params.clone()
        },
        &[],
    )
    .unwrap();
    assert!(X509Crl::from_der(&empty).unwrap().get_revoked().is_none());
    assert!(build_crl(
        &h.issuing,
        &CrlParams {
            next_update: now,
            ..params
        },
        &[]
    )
    .is_err());
}

#[test]
fn ocsp_responses_verify_ca_signed_and_delegated() {
    let h = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    let certs = issue_many(&h, 2);
    let issuer = x509(h.issuing.certificate_der());
    let hashes = IssuerHashes::of(h.issuing.certificate()).unwrap();
    // Delegated responder certificate from the ocsp-responder profile.
    let (responder_key, responder_pkcs8) =
        SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &ca_core::random::OsRandom).unwrap();
    let rcgen_key = rcgen::KeyPair::try_from(responder_pkcs8.as_slice()).unwrap();
    let responder_der = issue(
        &h,
        &profile("ocsp-responder"),
        &sample_csr("ocsp-responder", &rcgen_key),
        &IssuanceOptions::default(),
    )
    .unwrap();
    let responder_cert = x509_cert::Certificate::from_der(&responder_der).unwrap();
    let unknown_serial = ca_core::serial::random_serial(&ca_core::random::OsRandom).unwrap();

    // A real request from openssl: three certificates, SHA-1 CertIDs, with a nonce.
    let mut request = OcspRequest::new().unwrap();
    for c in &certs {
        request
            .add_id(
                OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), &x509(&c.der), &issuer)
                    .unwrap(),
            )
            .unwrap();
    }
    let mut unknown_builder = openssl::x509::X509Builder::new().unwrap();
    unknown_builder
        .set_serial_number(
            &openssl::bn::BigNum::from_slice(unknown_serial.as_bytes())
                .unwrap()
                .to_asn1_integer()
                .unwrap(),
        )
        .unwrap();
    unknown_builder
        .set_issuer_name(issuer.subject_name())
        .unwrap();
    unknown_builder
        .set_subject_name(issuer.subject_name())
        .unwrap();
    let unknown_cert = unknown_builder.build();
    request
        .add_id(
            OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), &unknown_cert, &issuer)
                .unwrap(),
        )
        .unwrap();
    let request_der = {
        // openssl's crate cannot add a nonce; add one by re-encoding with x509-ocsp.
        let mut parsed = x509_ocsp::OcspRequest::from_der(&request.to_der().unwrap()).unwrap();
        let nonce = der::asn1::OctetString::new([7u8; 32].to_vec())
            .unwrap()
            .to_der()
            .unwrap();
        parsed.tbs_request.request_extensions = Some(vec![x509_cert::ext::Extension {
            extn_id: const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: der::asn1::OctetString::new(nonce).unwrap(),
        }]);
        parsed.to_der().unwrap()
    };
    let parsed = ocsp::parse_request(&request_der).unwrap();
    assert_eq!(parsed.cert_ids.len(), 3);
    assert_eq!(parsed.nonce.as_deref(), Some(&[7u8; 32][..]));
    assert!(parsed
        .cert_ids
        .iter()
        .all(|(hash, id)| hashes.matches(*hash, id)));

    let now = UnixTime::now();
    let statuses: Vec<SingleStatus> = parsed
        .cert_ids
        .iter()
        .map(|(_, id)| {
            let status = if id.serial_number == certs[0].serial {
                Status::Good
            } else if id.serial_number == certs[1].serial {
                Status::Revoked {
                    revoked_at: now.minus(30),
                    reason: RevocationReason::KeyCompromise,
                }
            } else {
                Status::Unknown
            };
            SingleStatus {
                cert_id: id.clone(),
                status,
                this_update: now,
                next_update: now.plus(3600),
            }
        })
        .collect();

    let ca_signed = ocsp::build_response(
        &ResponderIdentity {
            key: h.issuing_key.as_ref(),
            certificate: None,
        },
        &statuses,
        now,
        parsed.nonce.as_deref(),
    )
    .unwrap();
    let delegated = ocsp::build_response(
        &ResponderIdentity {
            key: &responder_key,
            certificate: Some(&responder_cert),
        },
        &statuses,
        now,
        None,
    )
    .unwrap();
    write_artifact("ocsp-ca-signed.der", &ca_signed);
    write_artifact("ocsp-delegated.der", &delegated);
    // A responder may hold responses without its certificate and add it back when serving:
    // the result is byte for byte what was signed.
    let (compact, responder_certs) = ocsp::split_response(&delegated).unwrap();
    assert!(
        compact.len() * 2 < delegated.len(),
        "{} of {}",
        compact.len(),
        delegated.len()
    );
    assert_eq!(responder_certs, ocsp::certs_field(&responder_cert).unwrap());
    assert_eq!(
        ocsp::expand_response(&compact, &responder_certs).unwrap(),
        delegated
    );
    let signature = ocsp::response_signature(&delegated).unwrap();
    assert!(compact.ends_with(signature) && signature[0] == 0x03);
    assert_eq!(
        ocsp::response_signature(&ocsp::expand_response(&compact, &responder_certs).unwrap())
            .unwrap(),
        signature
    );
    let (compact, responder_certs) = ocsp::split_response(&ca_signed).unwrap();
    assert!(responder_certs.is_empty());
    assert_ne!(ocsp::response_signature(&ca_signed).unwrap(), signature);
    assert_eq!(ocsp::expand_response(&compact, &[]).unwrap(), ca_signed);
    assert!(ocsp::split_response(&ocsp::error_response(
        x509_ocsp::OcspResponseStatus::TryLater
    ))
    .is_err());
    assert!(ocsp::split_response(b"\x30\x03\x0a\x01").is_err());

    for (name, der) in [("ca-signed", &ca_signed), ("delegated", &delegated)] {
        let response = OcspResponse::from_der(der).unwrap();
        assert_eq!(
            response.status(),
            openssl::ocsp::OcspResponseStatus::SUCCESSFUL
        );
        let basic = response.basic().unwrap();
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(x509(h.root.certificate_der())).unwrap();
        let store = store.build();
        let mut untrusted = Stack::new().unwrap();
        untrusted.push(issuer.clone()).unwrap();
        basic
            .verify(&untrusted, &store, OcspFlag::empty())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let id = |c: &X509| {
            OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), c, &issuer).unwrap()
        };
        let good = basic.find_status(&id(&x509(&certs[0].der))).unwrap();
        assert_eq!(good.status, OcspCertStatus::GOOD, "{name}");
        good.check_validity(300, None).unwrap();
        let revoked = basic.find_status(&id(&x509(&certs[1].der))).unwrap();
        assert_eq!(revoked.status, OcspCertStatus::REVOKED, "{name}");
        assert_eq!(revoked.reason, OcspRevokedStatus::KEY_COMPROMISE, "{name}");
        let unknown = basic.find_status(&id(&unknown_cert)).unwrap();
        assert_eq!(unknown.status, OcspCertStatus::UNKNOWN, "{name}");
    }
    // The nonce is echoed on the CA-signed response.
    let echoed = x509_ocsp::OcspResponse::from_der(&ca_signed).unwrap();
    let basic =
        x509_ocsp::BasicOcspResponse::from_der(echoed.response_bytes.unwrap().response.as_bytes())
            .unwrap();
    assert_eq!(basic.nonce().unwrap().0.as_bytes(), &[7u8; 32]);

    // The openssl CLI agrees (as relying parties would run it).
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let resp = write("resp.der", &delegated);
    let issuer_pem = write("issuing.pem", h.issuing.certificate_pem().as_bytes());
    let root_pem = write("root.pem", h.root.certificate_pem().as_bytes());
    let leaf_pem = write("leaf.pem", &x509(&certs[1].der).to_pem().unwrap());
    let out = std::process::Command::new("openssl")
        .args(["ocsp", "-respin"])
        .arg(&resp)
        .arg("-issuer")
        .arg(&issuer_pem)
        .arg("-cert")
        .arg(&leaf_pem)
        .arg("-CAfile")
        .arg(&root_pem)
        .arg("-verify_other")
        .arg(&issuer_pem)
        .arg("-no_nonce")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Response verify OK"), "{stdout}{stderr}");
    assert!(stdout.contains(": revoked"), "{stdout}");
    assert!(stdout.contains("Reason: keyCompromise"), "{stdout}");
}

#[test]
fn ocsp_request_errors() {
    use ca_core::error::OcspRequestError;
    assert!(matches!(
        ocsp::parse_request(&[0x30, 0x03, 0x30, 0x01, 0x00]),
        Err(OcspRequestError::Malformed(_))
    ));
    let mut request = x509_ocsp::OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![],
            request_extensions: None,
        },
        optional_signature: None,
    };
    assert_eq!(
        ocsp::parse_request(&request.to_der().unwrap()).unwrap_err(),
        OcspRequestError::Empty
    );
    let h = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    let hashes = IssuerHashes::of(h.issuing.certificate()).unwrap();
    let id = hashes
        .cert_id(ca_core::serial::random_serial(&ca_core::random::OsRandom).unwrap())
        .unwrap();
    request.tbs_request.request_list = vec![
        x509_ocsp::Request {
            req_cert: id.clone(),
            single_request_extensions: None
        };
        33
    ];
    assert!(matches!(
        ocsp::parse_request(&request.to_der().unwrap()),
        Err(OcspRequestError::TooMany { count: 33, .. })
    ));
    request.tbs_request.request_list.truncate(1);
    let nonce = der::asn1::OctetString::new(vec![1u8; 129])
        .unwrap()
        .to_der()
        .unwrap();
    request.tbs_request.request_extensions = Some(vec![x509_cert::ext::Extension {
        extn_id: const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE,
        critical: false,
        extn_value: der::asn1::OctetString::new(nonce).unwrap(),
    }]);
    assert_eq!(
        ocsp::parse_request(&request.to_der().unwrap()).unwrap_err(),
        OcspRequestError::NonceLength(129)
    );
    // A CertID for another issuer does not match.
    let other = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    let other_hashes = IssuerHashes::of(other.issuing.certificate()).unwrap();
    assert!(!other_hashes.matches(ocsp::CertIdHash::Sha1, &id));
    let _ = FixedClock(UnixTime(0)).now();
}

#[test]
fn delta_crl_is_used_by_openssl() {
    let h = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    let certs = issue_many(&h, 4);
    let now = UnixTime::now();
    let delta_url = format!("{BASE_URL}/crl/issuing-delta.crl");
    // Base (number 10): A revoked, C on hold.
    let base = build_crl(
        &h.issuing,
        &CrlParams {
            this_update: now.minus(60),
            next_update: now.plus(86_400),
            crl_number: 10,
            issuing_distribution_point: None,
            delta_base: None,
            freshest_crl: Some(delta_url.clone()),
        },
        &[
            RevokedEntry {
                serial: certs[0].serial.clone(),
                revoked_at: now.minus(120),
                reason: RevocationReason::Superseded,
                invalidity_date: None,
            },
            RevokedEntry {
                serial: certs[2].serial.clone(),
                revoked_at: now.minus(120),
                reason: RevocationReason::CertificateHold,
                invalidity_date: None,
            },
        ],
    )
    .unwrap();
    // Delta (number 11, base 10): B newly revoked, C released from hold.
    let delta = build_crl(
        &h.issuing,
        &CrlParams {
            this_update: now,
            next_update: now.plus(3600),
            crl_number: 11,
            issuing_distribution_point: None,
            delta_base: Some(10),
            freshest_crl: None,
        },
        &[
            RevokedEntry {
                serial: certs[1].serial.clone(),
                revoked_at: now.minus(10),
                reason: RevocationReason::KeyCompromise,
                invalidity_date: None,
            },
            RevokedEntry {
                serial: certs[2].serial.clone(),
                revoked_at: now.minus(5),
                reason: RevocationReason::RemoveFromCrl,
                invalidity_date: None,
            },
        ],
    )
    .unwrap();
    write_artifact("crl-issuing-base.der", &base);
    write_artifact("crl-issuing-delta.der", &delta);
    let issuer_key = x509(h.issuing.certificate_der()).public_key().unwrap();
    for der in [&base, &delta] {
        assert!(X509Crl::from_der(der).unwrap().verify(&issuer_key).unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let root = write("root.pem", h.root.certificate_pem().as_bytes());
    let issuing = write("issuing.pem", h.issuing.certificate_pem().as_bytes());
    let crls = write(
        "crls.pem",
        &[
            X509Crl::from_der(&base).unwrap().to_pem().unwrap(),
            X509Crl::from_der(&delta).unwrap().to_pem().unwrap(),
        ]
        .concat(),
    );
    let text = |der: &[u8]| {
        let p = write("t.der", der);
        String::from_utf8(
            std::process::Command::new("openssl")
                .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
                .arg(&p)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
    };
    assert!(
        text(&delta).contains("Delta CRL Indicator: critical"),
        "{}",
        text(&delta)
    );
    assert!(text(&delta).contains("Remove From CRL"));
    assert!(text(&base).contains("Freshest CRL"), "{}", text(&base));
    let verify = |leaf: &[u8], deltas: bool| {
        let leaf = write("leaf.pem", &x509(leaf).to_pem().unwrap());
        let mut cmd = std::process::Command::new("openssl");
        // Without -extended_crl, OpenSSL scores a delta CRL like a complete one and may pick it
        // instead of the base; relying parties that use deltas pass both flags.
        cmd.args(["verify", "-crl_check", "-extended_crl"]);
        if deltas {
            cmd.arg("-use_deltas");
        }
        let out = cmd
            .arg("-CAfile")
            .arg(&root)
            .arg("-untrusted")
            .arg(&issuing)
            .arg("-CRLfile")
            .arg(&crls)
            .arg(&leaf)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // A: revoked in the base.
    let (ok, out) = verify(&certs[0].der, true);
    assert!(!ok, "{out}");
    // B: revoked only in the delta — openssl sees it with -use_deltas, not without.
    let (ok, out) = verify(&certs[1].der, true);
    assert!(!ok && out.contains("revoked"), "{out}");
    assert!(
        verify(&certs[1].der, false).0,
        "without deltas only the base counts"
    );
    // C: on hold in the base, released in the delta.
    let (ok, out) = verify(&certs[2].der, true);
    assert!(ok, "released from hold: {out}");
    // D: on neither.
    assert!(verify(&certs[3].der, true).0);
}

fn openssl_verify_with_crl(h: &Hierarchy, leaf: &[u8], crl_der: &[u8]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let root = write("root.pem", h.root.certificate_pem().as_bytes());
    let issuing = write("issuing.pem", h.issuing.certificate_pem().as_bytes());
    let crl = write(
        "crl.pem",
        &X509Crl::from_der(crl_der).unwrap().to_pem().unwrap(),
    );
    let leaf = write("leaf.pem", &x509(leaf).to_pem().unwrap());
    let out = std::process::Command::new("openssl")
        .args(["verify", "-crl_check", "-CAfile"])
        .arg(&root)
        .arg("-untrusted")
        .arg(&issuing)
        .arg("-CRLfile")
        .arg(&crl)
        .arg(&leaf)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn partitioned_crls_scope_each_certificate_to_its_shard() {
    let h = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    let h = Hierarchy {
        root: h.root,
        issuing: h.issuing.with_crl_partitions(4),
        issuing_key: h.issuing_key,
    };
    // Issue until shard 1 holds three certificates and some other shard holds one.
    let mut mine = Vec::new();
    let mut other = Vec::new();
    for _ in 0..200 {
        if mine.len() >= 3 && !other.is_empty() {
            break;
        }
        for cert in issue_many(&h, 1) {
            let shard = h.issuing.crl_partition_of(&cert.serial).unwrap();
            assert!((1..=4).contains(&shard));
            let text = x509(&cert.der).to_text().unwrap();
            let text = String::from_utf8(text).unwrap();
            assert!(
                text.contains(&format!("{BASE_URL}/crl/issuing-p{shard}.crl")),
                "the CRL distribution point names the shard: {text}"
            );
            if shard == 1 {
                mine.push(cert);
            } else {
                other.push(cert);
            }
        }
    }
    assert!(mine.len() >= 3 && !other.is_empty());
    let now = UnixTime::now();
    let params = |number: u64| CrlParams {
        this_update: now,
        next_update: now.plus(86_400),
        crl_number: number,
        issuing_distribution_point: h.issuing.crl_url_for(Some(1)),
        delta_base: None,
        freshest_crl: None,
    };
    // Shard 1's CRL: A on hold.
    let base = build_crl(
        &h.issuing,
        &params(1),
        &[RevokedEntry {
            serial: mine[0].serial.clone(),
            revoked_at: now.minus(60),
            reason: RevocationReason::CertificateHold,
            invalidity_date: None,
        }],
    )
    .unwrap();
    // The next one, built from the first without re-encoding it: A now revoked for key
    // compromise (its hold entry replaced), B superseded.
    let replaced = [mine[0].serial.as_bytes().to_vec()].into_iter().collect();
    let next = build_crl_from_base(
        &h.issuing,
        &params(2),
        &base,
        &replaced,
        &[
            RevokedEntry {
                serial: mine[0].serial.clone(),
                revoked_at: now.minus(10),
                reason: RevocationReason::KeyCompromise,
                invalidity_date: None,
            },
            RevokedEntry {
                serial: mine[1].serial.clone(),
                revoked_at: now.minus(5),
                reason: RevocationReason::Superseded,
                invalidity_date: None,
            },
        ],
    )
    .unwrap();
    write_artifact("crl-issuing-partition.der", &next);
    let crl = X509Crl::from_der(&next).unwrap();
    assert!(crl
        .verify(&x509(h.issuing.certificate_der()).public_key().unwrap())
        .unwrap());
    let serials: Vec<Vec<u8>> = raw_entries(&next)
        .unwrap()
        .map(|e| e.unwrap().serial.to_vec())
        .collect();
    assert_eq!(
        serials,
        vec![
            mine[0].serial.as_bytes().to_vec(),
            mine[1].serial.as_bytes().to_vec()
        ]
    );
    let text = {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.der");
        std::fs::write(&p, &next).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
            .arg(&p)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(text.contains("Key Compromise") && text.contains("Superseded"));
    assert!(
        !text.contains("Certificate Hold"),
        "the hold entry was replaced: {text}"
    );
    assert!(
        text.contains(&format!("{BASE_URL}/crl/issuing-p1.crl")),
        "{text}"
    );

    let (ok, out) = openssl_verify_with_crl(&h, &mine[0].der, &next);
    assert!(!ok && out.contains("revoked"), "{out}");
    let (ok, out) = openssl_verify_with_crl(&h, &mine[1].der, &next);
    assert!(!ok && out.contains("revoked"), "{out}");
    let (ok, out) = openssl_verify_with_crl(&h, &mine[2].der, &next);
    assert!(ok, "not revoked in its shard: {out}");
    // A certificate of another shard is out of this CRL's scope: openssl will not use it.
    let (ok, out) = openssl_verify_with_crl(&h, &other[0].der, &next);
    assert!(!ok && !out.contains("revoked"), "{out}");
}

#[test]
fn crl_from_base_keeps_every_other_entry_byte_for_byte() {
    let h = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    let now = UnixTime::now();
    let entries: Vec<RevokedEntry> = (1u32..=1000)
        .map(|i| RevokedEntry {
            serial: x509_cert::serial_number::SerialNumber::new(&(i * 7919).to_be_bytes()).unwrap(),
            revoked_at: now.minus(u64::from(i)),
            reason: if i % 3 == 0 {
                RevocationReason::KeyCompromise
            } else {
                RevocationReason::CertificateHold
            },
            invalidity_date: None,
        })
        .collect();
    let params = CrlParams {
        this_update: now,
        next_update: now.plus(3600),
        crl_number: 3,
        issuing_distribution_point: h.issuing.crl_url(),
        delta_base: None,
        freshest_crl: None,
    };
    let base = build_crl(&h.issuing, &params, &entries).unwrap();
    // Release every tenth (removed, not re-added).
    let released: std::collections::HashSet<Vec<u8>> = entries
        .iter()
        .step_by(10)
        .map(|e| e.serial.as_bytes().to_vec())
        .collect();
    let next = build_crl_from_base(
        &h.issuing,
        &CrlParams {
            crl_number: 4,
            ..params.clone()
        },
        &base,
        &released,
        &[],
    )
    .unwrap();
    let kept: Vec<RevokedEntry> = entries
        .iter()
        .filter(|e| !released.contains(e.serial.as_bytes()))
        .cloned()
        .collect();
    let expected = build_crl(
        &h.issuing,
        &CrlParams {
            crl_number: 4,
            ..params
        },
        &kept,
    )
    .unwrap();
    // Same TBS (signatures differ: ECDSA is randomised).
    let tbs = |der: &[u8]| {
        x509_cert::crl::CertificateList::from_der(der)
            .unwrap()
            .tbs_cert_list
            .to_der()
            .unwrap()
    };
    assert_eq!(tbs(&next), tbs(&expected));
    assert_eq!(
        X509Crl::from_der(&next)
            .unwrap()
            .get_revoked()
            .unwrap()
            .len(),
        900
    );
    assert!(matches!(
        build_crl_from_base(
            &h.issuing,
            &params_for_error(now),
            b"\x30\x03\x02\x01",
            &released,
            &[]
        ),
        Err(ca_core::error::CrlError::Parse(_))
    ));
}

fn params_for_error(now: UnixTime) -> CrlParams {
    CrlParams {
        this_update: now,
        next_update: now.plus(60),
        crl_number: 1,
        issuing_distribution_point: None,
        delta_base: None,
        freshest_crl: None,
    }
}

#[test]
fn crl_written_in_place_matches_and_refuses_a_changed_entry_set() {
    use ca_core::crl::{build_crl_with, encode_entry};
    use ca_core::error::CrlError;
    let h = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    let now = UnixTime::now();
    let entries: Vec<RevokedEntry> = (1u32..=500)
        .map(|i| RevokedEntry {
            serial: x509_cert::serial_number::SerialNumber::new(&(i * 104_729).to_be_bytes())
                .unwrap(),
            revoked_at: now.minus(u64::from(i)),
            reason: RevocationReason::KeyCompromise,
            invalidity_date: None,
        })
        .collect();
    let params = CrlParams {
        this_update: now,
        next_update: now.plus(3600),
        crl_number: 9,
        issuing_distribution_point: h.issuing.crl_url(),
        delta_base: None,
        freshest_crl: None,
    };
    // First pass: the length of the encoded entries; second: written into the CRL's own buffer.
    let mut scratch = Vec::new();
    let total: usize = entries
        .iter()
        .map(|e| {
            scratch.clear();
            encode_entry(e, &mut scratch).unwrap();
            scratch.len()
        })
        .sum();
    let in_place = build_crl_with(&h.issuing, &params, total, |out: &mut Vec<u8>| {
        for e in &entries {
            encode_entry(e, out)?;
        }
        Ok::<(), CrlError>(())
    })
    .unwrap();
    let expected = build_crl(&h.issuing, &params, &entries).unwrap();
    let tbs = |der: &[u8]| {
        x509_cert::crl::CertificateList::from_der(der)
            .unwrap()
            .tbs_cert_list
            .to_der()
            .unwrap()
    };
    assert_eq!(tbs(&in_place), tbs(&expected));
    let crl = X509Crl::from_der(&in_place).unwrap();
    assert!(crl
        .verify(&x509(h.issuing.certificate_der()).public_key().unwrap())
        .unwrap());
    assert_eq!(crl.get_revoked().unwrap().len(), 500);
    // One entry fewer between the passes: refused, never signed with a wrong length.
    let refused = build_crl_with(&h.issuing, &params, total, |out: &mut Vec<u8>| {
        for e in &entries[1..] {
            encode_entry(e, out)?;
        }
        Ok::<(), CrlError>(())
    });
    assert!(matches!(refused, Err(CrlError::EntriesChanged { .. })));
}

/// A pre-signed SHA-1 response re-signed under SHA-256, SHA-384 and SHA-512 CertIDs
/// (`ocsp::sign_variant`) and rebuilt from the signature alone (`ocsp::assemble_variant`) is a
/// response OpenSSL verifies and finds the certificate's status in, under that hash.
#[test]
fn ocsp_variants_under_other_certid_hashes_verify() {
    let h = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    let certs = issue_many(&h, 1);
    let issuer = x509(h.issuing.certificate_der());
    let leaf = x509(&certs[0].der);
    let hashes = IssuerHashes::of(h.issuing.certificate()).unwrap();
    let now = UnixTime::now();
    let status = Status::Revoked {
        revoked_at: now.minus(10),
        reason: RevocationReason::KeyCompromise,
    };
    let compact = ocsp::build_compact_response(
        h.issuing_key.as_ref(),
        &[SingleStatus {
            cert_id: hashes.cert_id(certs[0].serial.clone()).unwrap(),
            status,
            this_update: now,
            next_update: now.plus(3600),
        }],
        now,
        None,
    )
    .unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(x509(h.root.certificate_der())).unwrap();
    let store = store.build();
    let mut untrusted = Stack::new().unwrap();
    untrusted.push(issuer.clone()).unwrap();
    for (hash, digest) in [
        (
            ocsp::CertIdHash::Sha256,
            openssl::hash::MessageDigest::sha256(),
        ),
        (
            ocsp::CertIdHash::Sha384,
            openssl::hash::MessageDigest::sha384(),
        ),
        (
            ocsp::CertIdHash::Sha512,
            openssl::hash::MessageDigest::sha512(),
        ),
    ] {
        // What OpenSSL sends is what the responder recognises and rebuilds.
        let mut request = OcspRequest::new().unwrap();
        request
            .add_id(OcspCertId::from_cert(digest, &leaf, &issuer).unwrap())
            .unwrap();
        let parsed = ocsp::parse_request(&request.to_der().unwrap()).unwrap();
        let (got_hash, id) = &parsed.cert_ids[0];
        assert_eq!(*got_hash, hash);
        assert!(hashes.matches(hash, id));
        let canonical = hashes.cert_id_with(hash, certs[0].serial.clone()).unwrap();
        assert_eq!(&canonical, id, "{hash:?}: canonical CertID encoding");
        // The spliced tbsResponseData is what decoding, swapping the CertID and encoding
        // again would give.
        let (spliced, _) = ocsp::variant_tbs(&compact, &canonical).unwrap();
        let original = ca_core::tlv::expect(&compact, der::Tag::Sequence).unwrap();
        let mut data = x509_ocsp::ResponseData::from_der(original.whole).unwrap();
        data.responses[0].cert_id = canonical.clone();
        assert_eq!(spliced, data.to_der().unwrap(), "{hash:?}");
        let signature = ocsp::sign_variant(h.issuing_key.as_ref(), &compact, &canonical).unwrap();
        assert!(signature.len() < 80, "{} bytes kept", signature.len());
        let rebuilt = ocsp::assemble_variant(&compact, &canonical, &signature).unwrap();
        assert_eq!(
            ocsp::assemble_variant(&compact, &canonical, &signature).unwrap(),
            rebuilt,
            "rebuilding is deterministic"
        );
        let der = ocsp::expand_response(&rebuilt, &[]).unwrap();
        let response = OcspResponse::from_der(&der).unwrap();
        let basic = response.basic().unwrap();
        basic
            .verify(&untrusted, &store, OcspFlag::empty())
            .unwrap_or_else(|e| panic!("{hash:?}: {e}"));
        let found = basic
            .find_status(&OcspCertId::from_cert(digest, &leaf, &issuer).unwrap())
            .unwrap();
        assert_eq!(found.status, OcspCertStatus::REVOKED, "{hash:?}");
        assert_eq!(found.reason, OcspRevokedStatus::KEY_COMPROMISE, "{hash:?}");
        // A signature made for another CertID does not verify here.
        let other = hashes
            .cert_id_with(hash, issue_many(&h, 1)[0].serial.clone())
            .unwrap();
        let forged = ocsp::assemble_variant(&compact, &other, &signature).unwrap();
        let forged = OcspResponse::from_der(&ocsp::expand_response(&forged, &[]).unwrap()).unwrap();
        assert!(forged
            .basic()
            .unwrap()
            .verify(&untrusted, &store, OcspFlag::empty())
            .is_err());
    }
}

/// The root's CRL covers the CA certificates it issues (no issuingDistributionPoint, so no
/// onlyContainsUserCerts), and the issuing CA certificate names the root's OCSP responder and
/// CRL: `openssl verify -crl_check_all` accepts a good leaf with both CRLs (it failed with
/// "error 44: different CRL scope" when every CRL said onlyContainsUserCerts).
#[test]
fn root_crl_covers_ca_certificates_and_issuing_ca_names_root_ocsp() {
    let h = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    assert!(h.root.is_root() && !h.issuing.is_root());
    assert_eq!(h.root.crl_idp_url(None), None);
    assert_eq!(
        h.issuing.crl_idp_url(None).as_deref(),
        Some("http://pki.hospital.example/crl/issuing.crl")
    );
    let issuing_text =
        String::from_utf8(x509(h.issuing.certificate_der()).to_text().unwrap()).unwrap();
    assert!(
        issuing_text.contains("OCSP - URI:http://pki.hospital.example/ocsp"),
        "{issuing_text}"
    );
    assert!(issuing_text.contains("URI:http://pki.hospital.example/crl/root.crl"));
    let certs = issue_many(&h, 1);
    let now = UnixTime::now();
    let crl_for = |ca: &CertificateAuthority| {
        ca_core::crl::build_crl(
            ca,
            &CrlParams {
                this_update: now,
                next_update: now.plus(86_400),
                crl_number: 1,
                issuing_distribution_point: ca.crl_idp_url(None),
                delta_base: None,
                freshest_crl: None,
            },
            &[],
        )
        .unwrap()
    };
    let root_crl = crl_for(&h.root);
    let issuing_crl = crl_for(&h.issuing);
    write_artifact("crl-root.der", &root_crl);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p.display().to_string()
    };
    let root_pem = write("root.pem", h.root.certificate_pem().as_bytes());
    let issuing_pem = write("issuing.pem", h.issuing.certificate_pem().as_bytes());
    let leaf_pem = write("leaf.pem", &x509(&certs[0].der).to_pem().unwrap());
    let root_crl_pem = write(
        "root.crl",
        &X509Crl::from_der(&root_crl).unwrap().to_pem().unwrap(),
    );
    let issuing_crl_pem = write(
        "issuing.crl",
        &X509Crl::from_der(&issuing_crl).unwrap().to_pem().unwrap(),
    );
    let out = std::process::Command::new("openssl")
        .args([
            "verify",
            "-crl_check_all",
            "-CAfile",
            &root_pem,
            "-untrusted",
            &issuing_pem,
        ])
        .args([
            "-CRLfile",
            &root_crl_pem,
            "-CRLfile",
            &issuing_crl_pem,
            &leaf_pem,
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains(": OK"), "{text}");
}

#[test]
fn a_no_rev_avail_certificate_has_no_revocation_pointers_and_the_lint_keeps_it_so() {
    use ca_core::lint::{lint, Expectation, LintContext};
    let h = hierarchy(KeyAlgorithm::EcdsaP256, ca::DEFAULT_ISSUING_VALIDITY_SECS);
    let profile = profile("vendor-day");
    let key = ec_key();
    let verified = VerifiedCsr::parse(&sample_csr("vendor-day", &key), 2048).unwrap();
    let prepared = PreparedIssuance::prepare(
        &h.issuing,
        &profile,
        &verified,
        &IssuanceOptions::default(),
        &SystemClock,
        &OsRandom,
    )
    .unwrap();
    let tbs = x509_cert::TbsCertificate::from_der(prepared.tbs_der()).unwrap();
    let ids: Vec<_> = tbs
        .extensions
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.extn_id)
        .collect();
    assert!(ids.contains(&ca_core::extensions::ID_CE_NO_REV_AVAIL));
    assert!(!ids.contains(&const_oid::db::rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS));
    let ctx = LintContext {
        issuer_subject: Some(h.issuing.subject()),
        issuer_key_id: h.issuing.key_id(),
        issuer_not_before: Some(h.issuing.not_before()),
        issuer_not_after: Some(h.issuing.not_after()),
        signature_algorithm: h.issuing_key.as_ref().algorithm().identifier(),
        now: UnixTime::now(),
        expectation: Expectation::Leaf {
            profile: &profile,
            key_kind: verified.key_kind(),
            requested_window: false,
        },
    };
    assert!(lint(prepared.tbs_der(), &ctx).is_ok());
    // A CRL pointer added beside it, the extension made critical, or dropped: each refused.
    let with = |f: &dyn Fn(&mut x509_cert::TbsCertificate)| {
        let mut t = tbs.clone();
        f(&mut t);
        lint(&t.to_der().unwrap(), &ctx).unwrap_err().to_string()
    };
    let crl = with(&|t| {
        t.extensions.as_mut().unwrap().push(
            ca_core::extensions::crl_distribution_points("http://pki.example/issuing.crl").unwrap(),
        )
    });
    assert!(crl.contains("e_no_rev_avail_without_pointers"), "{crl}");
    let critical = with(&|t| {
        for e in t.extensions.as_mut().unwrap() {
            if e.extn_id == ca_core::extensions::ID_CE_NO_REV_AVAIL {
                e.critical = true;
            }
        }
    });
    assert!(
        critical.contains("e_no_rev_avail_non_critical_null"),
        "{critical}"
    );
    let dropped = with(&|t| {
        t.extensions
            .as_mut()
            .unwrap()
            .retain(|e| e.extn_id != ca_core::extensions::ID_CE_NO_REV_AVAIL)
    });
    assert!(dropped.contains("e_no_rev_avail_as_profile"), "{dropped}");
}
