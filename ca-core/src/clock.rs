//! Time, passed in rather than read from the system, so that every time-dependent rule can be
//! tested with a fixed clock.

use crate::time::UnixTime;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> UnixTime;

    /// The current time in milliseconds since the epoch, for orderings finer than a second
    /// (leaf serials); a clock without a finer source answers its whole seconds.
    fn now_ms(&self) -> u64 {
        self.now().as_secs().saturating_mul(1000)
    }
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        UnixTime::now()
    }

    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that always answers the same instant; for tests and for replaying decisions.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub UnixTime);

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        self.0
    }
}
