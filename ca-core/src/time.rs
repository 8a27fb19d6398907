//! Seconds since the Unix epoch, and their encodings as ASN.1 times.
//!
//! RFC 5280 §4.1.2.5: dates through 2049 are encoded as UTCTime, from 2050 on as GeneralizedTime.
//! RFC 6960 uses GeneralizedTime throughout.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::asn1::{GeneralizedTime, UtcTime};
use der::DateTime;
use x509_cert::time::Time;
use x509_ocsp::OcspGeneralizedTime;

use crate::error::TimeError;

/// An instant, in whole seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// The operating system's current time.
    pub fn now() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        UnixTime(secs)
    }

    /// Seconds since the epoch.
    pub fn as_secs(self) -> u64 {
        self.0
    }

    /// This instant plus `secs` seconds (saturating).
    pub fn plus(self, secs: u64) -> Self {
        UnixTime(self.0.saturating_add(secs))
    }

    /// This instant minus `secs` seconds (saturating at the epoch).
    pub fn minus(self, secs: u64) -> Self {
        UnixTime(self.0.saturating_sub(secs))
    }

    fn date_time(self) -> Result<DateTime, TimeError> {
        DateTime::from_unix_duration(Duration::from_secs(self.0)).map_err(|_| TimeError::OutOfRange)
    }

    /// The RFC 5280 encoding: UTCTime through 2049, GeneralizedTime from 2050.
    pub fn to_x509_time(self) -> Result<Time, TimeError> {
        let dt = self.date_time()?;
        if dt.year() < 2050 {
            Ok(Time::UtcTime(
                UtcTime::from_date_time(dt).map_err(|_| TimeError::OutOfRange)?,
            ))
        } else {
            Ok(Time::GeneralTime(GeneralizedTime::from_date_time(dt)))
        }
    }

    /// The RFC 6960 encoding (GeneralizedTime, whole seconds, Zulu).
    pub fn to_ocsp_time(self) -> Result<OcspGeneralizedTime, TimeError> {
        Ok(OcspGeneralizedTime::from(GeneralizedTime::from_date_time(
            self.date_time()?,
        )))
    }

    /// The GeneralizedTime encoding (used by invalidityDate, RFC 5280 §5.3.2).
    pub fn to_generalized_time(self) -> Result<GeneralizedTime, TimeError> {
        Ok(GeneralizedTime::from_date_time(self.date_time()?))
    }

    /// Reads an X.509 time.
    pub fn from_x509_time(time: &Time) -> Self {
        UnixTime(time.to_unix_duration().as_secs())
    }

    /// RFC 3339 text, for logs and JSON.
    pub fn to_rfc3339(self) -> String {
        match self.date_time() {
            Ok(dt) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minutes(),
                dt.seconds()
            ),
            Err(_) => format!("@{}", self.0),
        }
    }
}

impl std::fmt::Display for UnixTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Seconds a CA or leaf certificate's notBefore is set back, to absorb clock skew.
pub const BACKDATE_SECS: u64 = 60;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_time_before_2050_generalized_after() {
        // 2049-12-31T23:59:59Z
        let t = UnixTime(2_524_607_999).to_x509_time().unwrap();
        assert!(matches!(t, Time::UtcTime(_)));
        // 2050-01-01T00:00:00Z
        let t = UnixTime(2_524_608_000).to_x509_time().unwrap();
        assert!(matches!(t, Time::GeneralTime(_)));
    }

    #[test]
    fn round_trips_through_x509_time() {
        let t = UnixTime(1_800_000_000);
        assert_eq!(UnixTime::from_x509_time(&t.to_x509_time().unwrap()), t);
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(UnixTime(0).to_rfc3339(), "1970-01-01T00:00:00Z");
    }
}
