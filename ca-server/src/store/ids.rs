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
}
