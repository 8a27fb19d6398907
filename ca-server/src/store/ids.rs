//! Identifiers for stored records.

use crate::error::ServiceError;

/// A random identifier: `prefix-` and 96 random bits in hex.
pub fn new_id(prefix: &str) -> Result<String, ServiceError> {
    Ok(format!(
        "{prefix}-{}",
        hex::encode(crate::secrets::random_bytes(12)?)
    ))
}

/// A random identifier that sorts by creation time: the milliseconds since the epoch in hex,
/// then 96 random bits. Request ids are the key of a table that grows with every issuance; keys
/// in time order add to the end of its index instead of a random page each (whole seconds were
/// too coarse: a second's thousands of ids landed on random pages among their own).
pub fn new_ordered_id(prefix: &str, now_ms: u64) -> Result<String, ServiceError> {
    Ok(format!(
        "{prefix}-{:012x}{}",
        now_ms,
        hex::encode(crate::secrets::random_bytes(12)?)
    ))
}

/// The id of a certificate request (`req-` and hex), checked where it enters from a URL so that
/// services never look up arbitrary text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    /// Checks the form; any other text is answered "no such request", like an unknown id.
    pub fn parse(text: &str) -> Result<Self, ServiceError> {
        let hex = text.strip_prefix("req-").unwrap_or("");
        if hex.is_empty() || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ServiceError::NotFound(format!("request {text}")));
        }
        Ok(RequestId(text.to_string()))
    }

    /// An id read from the database (trusted).
    pub fn from_row(id: String) -> Self {
        RequestId(id)
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A certificate serial in the stored form: lower-case hex of a positive INTEGER of at most 20
/// octets (RFC 5280 §4.1.2.2), as URLs, the database and the audit log write it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Serial(String);

impl Serial {
    /// Parses hex in either case, refusing anything that is not a valid serial.
    pub fn parse(text: &str) -> Result<Self, ServiceError> {
        ca_core::serial::parse_serial_hex(text)
            .map(|s| Serial(ca_core::serial::serial_hex(&s)))
            .ok_or_else(|| ServiceError::Invalid("serial must be hex".into()))
    }

    /// The serial as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_ids_sort_by_millisecond_and_differ_within_one() {
        let a = new_ordered_id("req", 1_700_000_000_000).unwrap();
        let b = new_ordered_id("req", 1_700_000_000_000).unwrap();
        let c = new_ordered_id("req", 1_700_000_000_001).unwrap();
        assert_ne!(a, b);
        assert!(a < c && b < c, "{a} {b} {c}");
        assert!(a.starts_with("req-018bcfe56800"), "{a}");
        assert_eq!(a.len(), "req-".len() + 12 + 24);
        // Ids of the earlier whole-second form sort before every id of this form.
        assert!("req-006553f100ffffffffffffffffffffffff" < a.as_str());
    }

    #[test]
    fn request_ids_and_serials_are_checked_where_they_enter() {
        let id = new_ordered_id("req", 1_700_000_000_000).unwrap();
        assert_eq!(RequestId::parse(&id).unwrap().as_str(), id);
        for bad in ["", "req-", "req-xyz", "user-00ff", "req-00ff'--"] {
            assert!(
                matches!(RequestId::parse(bad), Err(ServiceError::NotFound(_))),
                "{bad}"
            );
        }
        assert_eq!(Serial::parse("4A0b").unwrap().as_str(), "4a0b");
        assert!(matches!(Serial::parse("zz"), Err(ServiceError::Invalid(_))));
        assert!(Serial::parse("80").is_err(), "negative");
    }
}
