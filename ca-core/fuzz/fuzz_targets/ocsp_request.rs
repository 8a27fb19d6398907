//! Fuzzes OCSP request parsing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ca_core::ocsp::parse_request(data);
});
