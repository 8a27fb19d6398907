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

/// A clock that stands still until a test moves it: session expiry, TOTP steps and request
/// expiry are tested by advancing it, never by sleeping.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    /// A clock showing `at`.
    pub fn at(at: UnixTime) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicU64::new(
            at.as_secs().saturating_mul(1000),
        ))
    }

    /// Moves the clock `secs` seconds on.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(
            secs.saturating_mul(1000),
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    /// Steps the clock `secs` seconds back, as an NTP correction or a wrong manual setting
    /// does to a real server.
    pub fn rewind(&self, secs: u64) {
        let _ = self.0.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |ms| Some(ms.saturating_sub(secs.saturating_mul(1000))),
        );
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.now_ms() / 1000)
    }

    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
