//! Failed-login rate limiting per client IP: after `max_failures` within `window`, the IP is
//! locked out for `lockout`. Shared by all protocols, so an attacker cannot rotate between
//! SMTP AUTH, IMAP and POP3 to get more guesses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bounds the table so a flood of distinct IPs cannot exhaust memory.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

/// Counts failures per IP and locks out IPs that fail too often.
#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    lockout: Duration,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

impl FailureLimiter {
    /// `max_failures` within `window` lock the IP out for `lockout`.
    pub fn new(max_failures: u32, window: Duration, lockout: Duration) -> FailureLimiter {
        FailureLimiter {
            max_failures,
            window,
            lockout,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(remaining)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match table.get(&ip).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt.
    pub fn failure(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_TRACKED && !table.contains_key(&ip) {
            let window = self.window;
            table.retain(|_, e| {
                now.duration_since(e.window_start) < window
                    || e.locked_until.is_some_and(|u| u > now)
            });
        }
        let e = table.entry(ip).or_insert(Entry {
            failures: 0,
            window_start: now,
            locked_until: None,
        });
        if now.duration_since(e.window_start) > self.window {
            *e = Entry {
                failures: 0,
                window_start: now,
                locked_until: None,
            };
        }
        e.failures += 1;
        if e.failures >= self.max_failures {
            e.locked_until = Some(now + self.lockout);
            e.failures = 0;
            e.window_start = now;
            tracing::warn!(%ip, "authentication locked out after repeated failures");
        }
    }

    /// Clears the failure count after a successful login.
    pub fn success(&self, ip: IpAddr) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_out_after_max_failures() {
        let l = FailureLimiter::new(3, Duration::from_secs(60), Duration::from_secs(30));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        l.failure(ip);
        l.failure(ip);
        assert!(l.check(ip).is_ok());
        l.failure(ip);
        let left = l.check(ip).unwrap_err();
        assert!(left > Duration::from_secs(25) && left <= Duration::from_secs(30));
        assert!(l.check(other).is_ok());
        l.success(ip);
        assert!(l.check(ip).is_ok());
    }
}
