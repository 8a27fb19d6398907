//! Certificate serial numbers: 127 bits from the operating system's CSPRNG (RFC 5280 §4.1.2.2;
//! CA/Browser Forum BR §7.1 asks for at least 64).

use ring::rand::{SecureRandom, SystemRandom};
use x509_cert::serial_number::SerialNumber;

use crate::error::KeyError;

/// Octets in a Mamori serial number.
pub const SERIAL_LEN: usize = 16;

/// Draws a fresh serial: 16 octets, positive (top bit clear), never with a leading zero octet, so
/// the DER INTEGER is always exactly 16 octets and at most 20 (RFC 5280 §4.1.2.2).
pub fn random_serial() -> Result<SerialNumber, KeyError> {
    let mut bytes = [0u8; SERIAL_LEN];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KeyError::Random)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes).map_err(|_| KeyError::Random)
}

/// Lower-case hex of a serial's magnitude, the form used in URLs, logs and the database.
pub fn serial_hex(serial: &SerialNumber) -> String {
    hex::encode(serial.as_bytes())
}

/// Parses hex (as written by [`serial_hex`]) back into a serial.
pub fn parse_serial_hex(text: &str) -> Option<SerialNumber> {
    let bytes = hex::decode(text.trim()).ok()?;
    if bytes.is_empty() || bytes.len() > 20 || bytes[0] & 0x80 != 0 {
        return None;
    }
    SerialNumber::new(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;

    #[test]
    fn serials_are_positive_sixteen_octets_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let serial = random_serial().unwrap();
            let der = serial.to_der().unwrap();
            assert_eq!(der[1] as usize, SERIAL_LEN);
            assert!(der[2] & 0x80 == 0 && der[2] != 0);
            assert!(seen.insert(serial_hex(&serial)));
        }
    }

    #[test]
    fn hex_round_trips() {
        let serial = random_serial().unwrap();
        assert_eq!(parse_serial_hex(&serial_hex(&serial)).unwrap(), serial);
        assert!(parse_serial_hex("zz").is_none());
        assert!(parse_serial_hex("ff").is_none());
    }
}
