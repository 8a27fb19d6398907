//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): 6 digits, 30-second steps,
//! HMAC-SHA1 (what authenticator apps implement), one step of drift either way.
//!
//! Verification returns the time step that matched; callers store it and refuse any code whose
//! step is not newer than the last one accepted, so a code is accepted once.

use ring::hmac;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::KeyError;
use crate::random::RandomSource;

/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Bytes in a generated secret (160 bits, RFC 4226 §4 recommends at least 128).
pub const SECRET_LEN: usize = 20;

/// A TOTP shared secret; zeroized on drop, never printed.
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    /// A fresh secret drawn from `random`.
    pub fn generate(random: &dyn RandomSource) -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_LEN]);
        random.fill(&mut bytes)?;
        Ok(TotpSecret(bytes))
    }

    /// Wraps raw secret bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        TotpSecret(Zeroizing::new(bytes.to_vec()))
    }

    /// Parses base32 (RFC 4648, no padding needed, case-insensitive).
    pub fn from_base32(text: &str) -> Option<Self> {
        base32_decode(text).map(|b| TotpSecret(Zeroizing::new(b)))
    }

    /// The raw bytes (to encrypt for storage).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Base32 without padding, as authenticator apps expect.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32_encode(&self.0))
    }

    /// The `otpauth://totp/...` URI for enrolment (QR code or manual entry).
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Zeroizing<String> {
        let issuer = percent(issuer);
        let account = percent(account);
        Zeroizing::new(format!(
            "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            self.to_base32().as_str()
        ))
    }

    /// The secret an [`TotpSecret::otpauth_uri`] carries (its `secret=` parameter), for the
    /// tools and tests that read one back.
    pub fn from_otpauth_uri(uri: &str) -> Option<Self> {
        let query = uri.split_once('?')?.1;
        let value = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("secret="))?;
        Self::from_base32(value)
    }

    /// The code for time step `step`.
    pub fn code_at_step(&self, step: u64) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.0);
        let tag = hmac::sign(&key, &step.to_be_bytes());
        let digest = tag.as_ref();
        let offset = (digest[digest.len() - 1] & 0x0f) as usize;
        let binary = (u32::from(digest[offset] & 0x7f) << 24)
            | (u32::from(digest[offset + 1]) << 16)
            | (u32::from(digest[offset + 2]) << 8)
            | u32::from(digest[offset + 3]);
        format!(
            "{:0width$}",
            binary % 10u32.pow(DIGITS),
            width = DIGITS as usize
        )
    }

    /// The code for Unix time `now`.
    pub fn code_at(&self, now: u64) -> String {
        self.code_at_step(now / STEP_SECS)
    }

    /// Checks `code` at `now` with one step of drift; returns the matching step. Compares in
    /// constant time and never says why a code failed.
    pub fn verify(&self, code: &str, now: u64) -> Option<u64> {
        let code = code.trim();
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = now / STEP_SECS;
        let mut matched = None;
        for step in [current.saturating_sub(1), current, current + 1] {
            let expected = self.code_at_step(step);
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && matched.is_none() {
                matched = Some(step);
            }
        }
        matched
    }
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for byte in data {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text
        .trim_end_matches('=')
        .chars()
        .filter(|c| !c.is_whitespace())
    {
        let value = ALPHABET
            .iter()
            .position(|a| *a as char == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 column (8-digit codes; we compare the last 6 digits).
    #[test]
    fn rfc6238_test_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890");
        for (time, code8) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(secret.code_at(time), code8[2..], "t={time}");
        }
    }

    #[test]
    fn accepts_one_step_of_drift_only() {
        let secret = TotpSecret::generate(&crate::random::OsRandom).unwrap();
        let now = 1_800_000_000;
        assert_eq!(secret.verify(&secret.code_at(now), now), Some(now / 30));
        assert!(secret.verify(&secret.code_at(now - 30), now).is_some());
        assert!(secret.verify(&secret.code_at(now + 30), now).is_some());
        assert!(secret.verify(&secret.code_at(now - 90), now).is_none());
        assert!(secret.verify("12345", now).is_none());
        assert!(secret.verify("abcdef", now).is_none());
    }

    #[test]
    fn base32_round_trips_and_uri_is_well_formed() {
        let secret = TotpSecret::generate(&crate::random::OsRandom).unwrap();
        let b32 = secret.to_base32();
        assert_eq!(
            TotpSecret::from_base32(&b32).unwrap().as_bytes(),
            secret.as_bytes()
        );
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        let uri = secret.otpauth_uri("Mamori", "alice@hospital");
        assert!(uri.starts_with("otpauth://totp/Mamori:alice%40hospital?secret="));
        assert!(uri.ends_with("&issuer=Mamori&algorithm=SHA1&digits=6&period=30"));
        assert!(TotpSecret::from_base32("!!").is_none());
        assert_eq!(
            TotpSecret::from_otpauth_uri(&uri).unwrap().as_bytes(),
            secret.as_bytes()
        );
        assert!(TotpSecret::from_otpauth_uri("otpauth://totp/x?issuer=y").is_none());
    }
}
