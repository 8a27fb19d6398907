//! Login attempts per client address: a fixed one-minute window per address, so that one
//! machine cannot try passwords against many accounts (per-account lockout stops the opposite).
//! Held in memory: each instance limits on its own, which is what a limit per address needs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Counts login attempts per address and window.
#[derive(Debug)]
pub struct LoginLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (u64, u32)>>,
}

impl LoginLimiter {
    /// At most `per_minute` attempts per address per minute (0: no limit).
    pub fn new(per_minute: u32) -> Self {
        LoginLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt from `address` at `now` (Unix seconds). `Err(seconds)` when the address
    /// is over its limit: how long until the window ends.
    pub fn attempt(&self, address: IpAddr, now: u64) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let window = now / 60;
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        if windows.len() > 100_000 {
            windows.retain(|_, (w, _)| *w == window);
        }
        let entry = windows.entry(address).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= self.per_minute {
            return Err(60 - now % 60);
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_address_per_minute() {
        let limiter = LoginLimiter::new(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let b: IpAddr = "192.0.2.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for _ in 0..3 {
            assert_eq!(limiter.attempt(a, 120), Ok(()));
        }
        assert_eq!(limiter.attempt(a, 130), Err(50));
        assert_eq!(
            limiter.attempt(b, 130),
            Ok(()),
            "another address has its own budget"
        );
        assert_eq!(
            limiter.attempt(a, 180),
            Ok(()),
            "a new minute starts afresh"
        );
        assert_eq!(LoginLimiter::new(0).attempt(a, 1), Ok(()));
    }
}
