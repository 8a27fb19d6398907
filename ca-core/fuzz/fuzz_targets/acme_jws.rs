//! ACME request bodies (`ca_core::jws`): what the ACME listener reads from anyone before a
//! signature is checked: the flattened JWS, its protected header and jwk, the External Account
//! Binding inside a newAccount payload. Must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(jws) = ca_core::jws::UnverifiedJws::parse(data) {
        let key = match &jws.header.signer {
            ca_core::jws::Signer::Key(k) => k.clone(),
            ca_core::jws::Signer::Account(_) => return,
        };
        let _ = key.thumbprint();
        if let Ok(payload) = jws.verify(&key) {
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&payload) {
                if let Some(eab) = value.get("externalAccountBinding") {
                    let _ = ca_core::jws::eab_key_id(eab, "https://x/acme/p/new-account", &key);
                    let _ = ca_core::jws::verify_eab_mac(eab, b"0123456789abcdef0123456789abcdef");
                }
            }
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = ca_core::jws::Jwk::from_value(&value);
    }
});
