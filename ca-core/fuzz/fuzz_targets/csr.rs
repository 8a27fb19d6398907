//! Fuzzes PKCS#10 parsing and verification, then applies a shipped profile's rules.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(csr) = ca_core::csr::VerifiedCsr::parse(data, 2048) {
        let profile = ca_core::profile::Profile::from_toml(
            "tls-server.toml",
            include_str!("../../../policies/tls-server.toml"),
        );
        if let Ok(profile) = profile {
            let _ = profile.check_subject(csr.subject());
            let _ = profile.check_sans(csr.requested_sans());
        }
    }
});
