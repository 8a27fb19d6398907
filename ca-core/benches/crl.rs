//! CRL build-and-sign time for 10k and 1M entries: `cargo bench -p ca-core --bench crl`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use ca_core::ca::{self, CaSpec};
use ca_core::clock::SystemClock;
use ca_core::crl::{build_crl, CrlParams, RevocationReason, RevokedEntry};
use ca_core::key::{KeyAlgorithm, SoftwareKey};
use ca_core::name::{build_name, AttributeKind};
use ca_core::serial::random_serial;
use ca_core::time::UnixTime;
use criterion::{criterion_group, criterion_main, Criterion};

fn entries(n: usize) -> Vec<RevokedEntry> {
    let now = UnixTime::now();
    (0..n)
        .map(|i| RevokedEntry {
            serial: random_serial(&ca_core::random::OsRandom).unwrap(),
            revoked_at: now.minus(i as u64 % 86_400),
            reason: if i % 3 == 0 {
                RevocationReason::KeyCompromise
            } else {
                RevocationReason::Unspecified
            },
            invalidity_date: None,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let (key, _) =
        SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &ca_core::random::OsRandom).unwrap();
    let root = ca::create_root(
        &CaSpec {
            id: "root".into(),
            subject: build_name(&[(AttributeKind::CN, "Bench Root".into())]).unwrap(),
            validity_secs: 86_400 * 365,
            path_len: None,
            name_constraints: None,
        },
        Arc::new(key),
        None,
        &SystemClock,
        &ca_core::random::OsRandom,
    )
    .unwrap();
    let now = UnixTime::now();
    let params = CrlParams {
        this_update: now,
        next_update: now.plus(86_400),
        crl_number: 1,
        issuing_distribution_point: None,
        delta_base: None,
        freshest_crl: None,
    };
    let mut group = c.benchmark_group("crl");
    group.sample_size(10);
    for n in [10_000usize, 1_000_000] {
        let list = entries(n);
        group.bench_function(format!("build_and_sign_{n}"), |b| {
            b.iter(|| build_crl(&root, &params, &list).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
