//! Login attempts per client address: a fixed one-minute window per address, so that one
//! machine cannot try passwords against many accounts (per-account lockout stops the opposite).
//! Held in memory: each instance limits on its own, which is what a limit per address needs.
//! IPv6 clients are counted per /64 (one host usually holds a whole /64 and can pick any
//! address in it); IPv4-mapped IPv6 addresses count as their IPv4 address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Counts login attempts per address and window.
#[derive(Debug)]
pub struct LoginLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (u64, u32)>>,
}

/// The key an address is counted under: an IPv4 address itself, an IPv6 address's /64.
pub fn limit_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
    }
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
        let entry = windows.entry(limit_key(address)).or_insert((window, 0));
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

    #[test]
    fn ipv6_addresses_share_their_64() {
        let limiter = LoginLimiter::new(2);
        let parse = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert_eq!(limiter.attempt(parse("2001:db8:1:2::1"), 0), Ok(()));
        assert_eq!(limiter.attempt(parse("2001:db8:1:2:ffff::9"), 0), Ok(()));
        assert!(
            limiter
                .attempt(parse("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 0)
                .is_err(),
            "a third address of the same /64 is over the limit"
        );
        assert_eq!(limiter.attempt(parse("2001:db8:1:3::1"), 0), Ok(()));
        assert_eq!(limit_key(parse("::ffff:192.0.2.7")), parse("192.0.2.7"));
    }
}
