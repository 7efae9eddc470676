//! A shared rate limit for the daemon's connections (`max_rate`).
//!
//! One [`Pacer`] is shared by every connection of a daemon: each send or
//! receive books its bytes on a virtual clock advancing at the configured
//! rate, and sleeps until its bytes are due. Idle time earns a small burst
//! allowance, so short messages are not delayed after a pause. This module
//! only computes waits; the transport calls [`Pacer::take`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Credit an idle pacer can build up.
const BURST: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub struct Pacer {
    bytes_per_sec: f64,
    next: Mutex<Instant>,
}

impl Pacer {
    /// A pacer for `bits_per_sec` (at least 1).
    pub fn new(bits_per_sec: u64) -> Pacer {
        Pacer {
            bytes_per_sec: (bits_per_sec.max(1) as f64) / 8.0,
            next: Mutex::new(Instant::now()),
        }
    }

    /// How long the caller must wait before moving `bytes` at time `now`.
    pub fn book(&self, bytes: usize, now: Instant) -> Duration {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = now.checked_sub(BURST).unwrap_or(now);
        let start = (*next).max(earliest);
        *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec);
        next.saturating_duration_since(now)
    }

    /// Books `bytes` and sleeps until they are due.
    pub fn take(&self, bytes: usize) {
        let wait = self.book(bytes, Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn books_at_the_configured_rate() {
        let p = Pacer::new(8_000); // 1000 bytes/s
        let t0 = Instant::now() + Duration::from_secs(1);
        // Up to the burst allowance goes at once, then each 1000 bytes costs 1 s.
        assert!(p.book(50, t0).is_zero());
        let w = p.book(1000, t0);
        assert!(
            w > Duration::from_millis(900) && w <= Duration::from_secs(1),
            "{w:?}"
        );
        let w = p.book(1000, t0);
        assert!(
            w > Duration::from_millis(1900) && w <= Duration::from_secs(2),
            "{w:?}"
        );
        // Long after, the debt is gone.
        assert!(p.book(10, t0 + Duration::from_secs(10)).is_zero());
    }
}
