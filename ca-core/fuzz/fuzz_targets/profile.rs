//! Fuzzes profile loading (TOML parsing and validation).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ca_core::profile::Profile::from_toml("fuzz.toml", text);
    }
});
