//! CA signatures and issuances per second with the issuing key in a PKCS#11 token (SoftHSM2)
//! against the same work with a software key, in one sitting:
//! `cargo bench -p ca-server --bench token`. Skips with a message where SoftHSM2 is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use ca_core::ca::{self, CaSpec, CertificateAuthority};
use ca_core::clock::SystemClock;
use ca_core::csr::{build_csr, VerifiedCsr};
use ca_core::issuance::{IssuanceOptions, PreparedIssuance};
use ca_core::key::{KeyAlgorithm, SoftwareKey};
use ca_core::name::{build_name, AttributeKind};
use ca_core::profile::Profile;
use ca_core::random::OsRandom;
use ca_core::signer::SigningKey;
use ca_server::custody::keys::Custody;
use ca_server::custody::softhsm;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn issuing(key: Arc<dyn SigningKey>, root: &CertificateAuthority) -> CertificateAuthority {
    ca::create_issuing(
        &CaSpec {
            id: "issuing".into(),
            subject: build_name(&[(AttributeKind::CN, "Bench Issuing".into())]).unwrap(),
            validity_secs: ca::DEFAULT_ISSUING_VALIDITY_SECS,
            path_len: Some(0),
            name_constraints: None,
        },
        key,
        root,
        None,
        &SystemClock,
        &OsRandom,
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    if let Err(why) = softhsm::module() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let token = softhsm::create(dir.path(), "mamori-bench", "1357").unwrap();
    std::env::set_var("SOFTHSM2_CONF", &token.conf);
    let custody = Custody::new(Some(token.config.clone()));
    let in_token: Arc<dyn SigningKey> = Arc::new(
        custody
            .generate("bench-issuing", KeyAlgorithm::EcdsaP256)
            .unwrap(),
    );
    let software: Arc<dyn SigningKey> = Arc::new(
        SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &OsRandom)
            .unwrap()
            .0,
    );

    let message = vec![0x5a_u8; 400]; // about a leaf certificate's TBS
    let mut group = c.benchmark_group("ca_signature_p256");
    group.throughput(Throughput::Elements(1));
    group.bench_function("software", |b| b.iter(|| software.sign(&message).unwrap()));
    group.bench_function("softhsm2", |b| b.iter(|| in_token.sign(&message).unwrap()));
    group.finish();

    let (root_key, _) = SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &OsRandom).unwrap();
    let root = ca::create_root(
        &CaSpec {
            id: "root".into(),
            subject: build_name(&[(AttributeKind::CN, "Bench Root".into())]).unwrap(),
            validity_secs: ca::DEFAULT_ROOT_VALIDITY_SECS,
            path_len: Some(1),
            name_constraints: None,
        },
        Arc::new(root_key),
        None,
        &SystemClock,
        &OsRandom,
    )
    .unwrap();
    let root_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/tls-server.toml");
    let profile = Profile::from_toml(
        "tls-server.toml",
        &std::fs::read_to_string(root_dir).unwrap(),
    )
    .unwrap();
    let (leaf_key, _) = SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &OsRandom).unwrap();
    let subject = build_name(&[(AttributeKind::CN, "ehr.hospital.example".into())]).unwrap();
    let san = x509_cert::ext::pkix::name::GeneralName::DnsName(
        der::asn1::Ia5String::new("ehr.hospital.example").unwrap(),
    );
    let csr =
        VerifiedCsr::parse(&build_csr(&subject, vec![san], &leaf_key).unwrap(), 2048).unwrap();
    let mut group = c.benchmark_group("issuance_tls_server");
    group.throughput(Throughput::Elements(1));
    for (name, key) in [
        ("software", software.clone()),
        ("softhsm2", in_token.clone()),
    ] {
        let ca = issuing(key, &root);
        group.bench_function(name, |b| {
            b.iter(|| {
                PreparedIssuance::prepare(
                    &ca,
                    &profile,
                    &csr,
                    &IssuanceOptions::default(),
                    &SystemClock,
                    &OsRandom,
                )
                .unwrap()
                .sign(&ca)
                .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
