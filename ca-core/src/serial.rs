//! Certificate serial numbers (RFC 5280 §4.1.2.2): CA certificates get 126 bits from the
//! operating system's CSPRNG; leaf certificates get a seven-octet prefix holding the time to the
//! millisecond followed by 72 bits from the CSPRNG (CA/Browser Forum BR §7.1 asks for at least
//! 64), so that the serials a CA issues sort by time and the database's serial-keyed indexes grow
//! at their end instead of touching a random page for every certificate. Whole seconds were too
//! coarse: thousands of serials a second landed on random pages among that second's own.
//! The random octets come from the caller's [`RandomSource`].

use x509_cert::serial_number::SerialNumber;

use crate::error::KeyError;
use crate::random::RandomSource;

/// Octets in a Mamori serial number.
pub const SERIAL_LEN: usize = 16;

/// Draws a fresh serial: 16 octets, positive (top bit clear), never with a leading zero octet, so
/// the DER INTEGER is always exactly 16 octets and at most 20 (RFC 5280 §4.1.2.2).
pub fn random_serial(random: &dyn RandomSource) -> Result<SerialNumber, KeyError> {
    let mut bytes = [0u8; SERIAL_LEN];
    random.fill(&mut bytes)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes).map_err(|_| KeyError::Random)
}

/// Octets of CSPRNG output in a [`time_ordered_serial`].
pub const RANDOM_OCTETS: usize = 9;

/// Draws a fresh leaf serial: `0x40`, the milliseconds since the epoch in six big-endian octets
/// (wrapping in the year 10889, which only costs ordering), then [`RANDOM_OCTETS`] octets from
/// the CSPRNG — 16 octets, positive, without a leading zero octet, like [`random_serial`].
/// Serials drawn in the same millisecond are in random order among themselves.
pub fn time_ordered_serial(
    now_ms: u64,
    random: &dyn RandomSource,
) -> Result<SerialNumber, KeyError> {
    let mut bytes = [0u8; SERIAL_LEN];
    bytes[0] = 0x40;
    bytes[1..7].copy_from_slice(&now_ms.to_be_bytes()[2..]);
    random.fill(&mut bytes[SERIAL_LEN - RANDOM_OCTETS..])?;
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
    use crate::random::{OsRandom, SeededRandom};
    use der::Encode;

    #[test]
    fn serials_are_positive_sixteen_octets_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let serial = random_serial(&OsRandom).unwrap();
            let der = serial.to_der().unwrap();
            assert_eq!(der[1] as usize, SERIAL_LEN);
            assert!(der[2] & 0x80 == 0 && der[2] != 0);
            assert!(seen.insert(serial_hex(&serial)));
        }
    }

    #[test]
    fn time_ordered_serials_sort_by_millisecond_and_keep_seventy_two_random_bits() {
        let mut seen = std::collections::HashSet::new();
        let mut last = String::new();
        for ms in [
            1_700_000_000_000u64,
            1_700_000_000_001,
            1_700_000_001_000,
            4_000_000_000_000,
            (1 << 48) - 1,
        ] {
            let mut tails = std::collections::HashSet::new();
            for _ in 0..200 {
                let serial = time_ordered_serial(ms, &OsRandom).unwrap();
                let der = serial.to_der().unwrap();
                assert_eq!(der[1] as usize, SERIAL_LEN);
                assert_eq!(der[2], 0x40);
                assert_eq!(&der[3..9], &ms.to_be_bytes()[2..]);
                let hex = serial_hex(&serial);
                assert!(hex > last, "{hex} sorts before {last}");
                assert!(seen.insert(hex.clone()));
                tails.insert(hex[hex.len() - 2 * RANDOM_OCTETS..].to_string());
            }
            assert_eq!(tails.len(), 200, "random tails repeat");
            last = format!(
                "{:f<32}",
                &serial_hex(&time_ordered_serial(ms, &OsRandom).unwrap())[..14]
            );
        }
    }

    #[test]
    fn a_seeded_source_gives_the_same_serials() {
        let (a, b) = (SeededRandom::new([7; 32]), SeededRandom::new([7; 32]));
        assert_eq!(random_serial(&a).unwrap(), random_serial(&b).unwrap());
        assert_eq!(
            time_ordered_serial(1_700_000_000_000, &a).unwrap(),
            time_ordered_serial(1_700_000_000_000, &b).unwrap()
        );
    }

    #[test]
    fn hex_round_trips() {
        let serial = random_serial(&OsRandom).unwrap();
        assert_eq!(parse_serial_hex(&serial_hex(&serial)).unwrap(), serial);
        assert!(parse_serial_hex("zz").is_none());
        assert!(parse_serial_hex("ff").is_none());
    }
}
