//! OCSP responses built and signed per second (one CertID, delegated responder key):
//! `cargo bench -p ca-core --bench ocsp`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use ca_core::ca::{self, CaSpec};
use ca_core::clock::SystemClock;
use ca_core::key::{KeyAlgorithm, SoftwareKey};
use ca_core::name::{build_name, AttributeKind};
use ca_core::ocsp::{
    build_response, parse_request, IssuerHashes, ResponderIdentity, SingleStatus, Status,
};
use ca_core::serial::random_serial;
use ca_core::time::UnixTime;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use der::Encode;

fn bench(c: &mut Criterion) {
    let key = Arc::new(
        SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &ca_core::random::OsRandom)
            .unwrap()
            .0,
    );
    let root = ca::create_root(
        &CaSpec {
            id: "root".into(),
            subject: build_name(&[(AttributeKind::CN, "Bench Root".into())]).unwrap(),
            validity_secs: 86_400 * 365,
            path_len: None,
            name_constraints: None,
        },
        key.clone(),
        None,
        &SystemClock,
        &ca_core::random::OsRandom,
    )
    .unwrap();
    let hashes = IssuerHashes::of(root.certificate()).unwrap();
    let cert_id = hashes
        .cert_id(random_serial(&ca_core::random::OsRandom).unwrap())
        .unwrap();
    let request = x509_ocsp::OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![x509_ocsp::Request {
                req_cert: cert_id.clone(),
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap();
    let now = UnixTime::now();
    let status = [SingleStatus {
        cert_id,
        status: Status::Good,
        this_update: now,
        next_update: now.plus(3600),
    }];
    let identity = ResponderIdentity {
        key: key.as_ref(),
        certificate: None,
    };
    let mut group = c.benchmark_group("ocsp");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_request", |b| {
        b.iter(|| parse_request(&request).unwrap())
    });
    group.bench_function("sign_response_p256", |b| {
        b.iter(|| build_response(&identity, &status, now, Some(&[7u8; 32])).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
