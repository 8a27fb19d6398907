//! Human-written durations in profiles and configuration: `90s`, `30m`, `8h`, `365d`.

use crate::error::DurationError;

/// Parses `<number><unit>` with unit `s`, `m`, `h` or `d` into seconds.
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| DurationError::MissingUnit(text.to_string()))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| DurationError::BadNumber(text.to_string()))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(DurationError::UnknownUnit(text.to_string())),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| DurationError::BadNumber(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert_eq!(parse_duration("30m").unwrap(), 1_800);
        assert_eq!(parse_duration("8h").unwrap(), 28_800);
        assert_eq!(parse_duration("365d").unwrap(), 31_536_000);
    }

    #[test]
    fn rejects_bad_text() {
        assert!(matches!(
            parse_duration("8"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_duration("8w"),
            Err(DurationError::UnknownUnit(_))
        ));
        assert!(matches!(
            parse_duration("h"),
            Err(DurationError::BadNumber(_))
        ));
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::BadNumber(_))
        ));
    }
}
