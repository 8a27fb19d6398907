//! SCEP pkiMessages and the envelopes inside them (`ca_core::scep`): what the SCEP listener
//! reads from anyone before a signature is checked. Must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ca_core::scep::read_attributes(data);
    let _ = ca_core::scep::envelope_cipher(data);
    let _ = ca_core::scep::issuer_and_serial(data);
});
