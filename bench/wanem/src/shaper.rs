//! The bottleneck: a link of fixed rate with a drop-tail queue in front.
//!
//! There is no queue of packets here, only a virtual link clock: a packet
//! arriving at `now` starts serialising at `max(now, link_free)` and has
//! left the link `len * 8 / rate` later, which becomes the new
//! `link_free`. The backlog is `link_free - now`, in time; a bound in bytes
//! is converted to time at the link rate. Times are nanoseconds on the
//! caller's clock; nothing here reads a clock.

use crate::config::QueueLimit;

/// Rate limit and drop-tail queue of one direction.
#[derive(Debug, Clone)]
pub struct Shaper {
    /// Bits per second; `None` sends every packet the moment it arrives.
    rate_bps: Option<u64>,
    /// The largest backlog accepted, in nanoseconds at the link rate.
    limit_ns: u64,
    /// When the last accepted packet has finished serialising.
    link_free: u64,
    /// Serialisation time not yet accounted in whole nanoseconds, in
    /// units of 1/rate ns, so long runs keep the exact rate.
    remainder: u64,
}

const NANOS: u128 = 1_000_000_000;

impl Shaper {
    pub fn new(rate_bps: Option<u64>, limit: QueueLimit) -> Shaper {
        let limit_ns = match (limit, rate_bps) {
            (_, None) => 0,
            (QueueLimit::Time(d), Some(_)) => d.as_nanos() as u64,
            (QueueLimit::Bytes(b), Some(rate)) => (b as u128 * 8 * NANOS / rate as u128) as u64,
        };
        Shaper {
            rate_bps,
            limit_ns,
            link_free: 0,
            remainder: 0,
        }
    }

    /// Offers a packet of `len` bytes at `now`. Returns when its last bit
    /// leaves the link, or `None` if the queue is full (drop-tail). A
    /// packet arriving at an idle link is always accepted.
    pub fn handle_packet(&mut self, now: u64, len: usize) -> Option<u64> {
        let Some(rate) = self.rate_bps else {
            return Some(now);
        };
        let backlog = self.link_free.saturating_sub(now);
        let bits = len as u128 * 8 * NANOS + self.remainder as u128;
        let tx = (bits / rate as u128) as u64;
        if backlog > 0 && backlog + tx > self.limit_ns {
            return None;
        }
        self.remainder = (bits % rate as u128) as u64;
        self.link_free = self.link_free.max(now) + tx;
        Some(self.link_free)
    }

    /// The backlog at `now`: time until the link is idle.
    pub fn backlog_ns(&self, now: u64) -> u64 {
        self.link_free.saturating_sub(now)
    }

    /// The backlog at `now` in bytes at the link rate.
    pub fn backlog_bytes(&self, now: u64) -> u64 {
        match self.rate_bps {
            Some(rate) => (self.backlog_ns(now) as u128 * rate as u128 / 8 / NANOS) as u64,
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: u64 = 1_000_000;

    fn shaper(rate: u64, limit: QueueLimit) -> Shaper {
        Shaper::new(Some(rate), limit)
    }

    #[test]
    fn unlimited_sends_at_once() {
        let mut s = Shaper::new(None, QueueLimit::Bytes(1));
        assert_eq!(s.handle_packet(5, 1500), Some(5));
        assert_eq!(s.handle_packet(5, 1500), Some(5));
        assert_eq!(s.backlog_bytes(5), 0);
    }

    #[test]
    fn serialises_back_to_back_on_the_link_clock() {
        // 1500 B at 300 Mbit/s take 40 us.
        let mut s = shaper(300_000_000, QueueLimit::Time(Duration::from_millis(100)));
        assert_eq!(s.handle_packet(0, 1500), Some(40_000));
        assert_eq!(s.handle_packet(0, 1500), Some(80_000));
        // A packet after the link went idle starts at its arrival.
        assert_eq!(s.handle_packet(1_000_000, 1500), Some(1_040_000));
        assert_eq!(s.backlog_ns(1_000_000), 40_000);
        assert_eq!(s.backlog_bytes(1_000_000), 1500);
    }

    #[test]
    fn keeps_the_exact_rate_over_long_runs() {
        // 1500 B at 7 Mbit/s is 1714285.71 ns: the remainder must carry.
        let mut s = shaper(7_000_000, QueueLimit::Time(Duration::from_secs(100)));
        let mut last = 0;
        for _ in 0..7000 {
            last = s.handle_packet(0, 1500).unwrap();
        }
        // 7000 x 12000 bits at 7 Mbit/s = 12 s exactly.
        assert!(last.abs_diff(12_000 * MS) <= 1, "{last}");
    }

    #[test]
    fn drop_tail_bounds_the_backlog_in_time() {
        // 10 ms at 1 Gbit/s = 1.25 MB = 833 packets of 1500 B.
        let mut s = shaper(1_000_000_000, QueueLimit::Time(Duration::from_millis(10)));
        let accepted = (0..2000)
            .filter(|_| s.handle_packet(0, 1500).is_some())
            .count();
        assert_eq!(accepted, 833);
        assert!(s.backlog_ns(0) <= 10 * MS);
        // Once the link has drained some, packets fit again.
        assert!(s.handle_packet(MS, 1500).is_some());
    }

    #[test]
    fn drop_tail_bounds_the_backlog_in_bytes() {
        let mut s = shaper(100_000_000, QueueLimit::Bytes(15_000));
        let accepted = (0..100)
            .filter(|_| s.handle_packet(0, 1500).is_some())
            .count();
        assert_eq!(accepted, 10);
        assert_eq!(s.backlog_bytes(0), 15_000);
    }

    #[test]
    fn a_tiny_queue_still_passes_one_packet_at_a_time() {
        let mut s = shaper(1_000_000, QueueLimit::Bytes(100));
        assert!(s.handle_packet(0, 1500).is_some());
        assert!(s.handle_packet(0, 1500).is_none());
        assert!(s.handle_packet(12 * MS, 1500).is_some());
    }

    #[test]
    fn sustained_overload_delivers_the_link_rate() {
        // Offer 400 Mbit/s to a 300 Mbit/s link for one second.
        let mut s = shaper(300_000_000, QueueLimit::Time(Duration::from_millis(100)));
        let gap = 1500 * 8 * 1_000_000_000 / 400_000_000; // 30 us
        let mut delivered = 0u64;
        for i in 0..(1_000_000_000 / gap) {
            if let Some(done) = s.handle_packet(i * gap, 1500) {
                delivered += (done <= 1_000_000_000) as u64 * 1500 * 8;
            }
        }
        let rate = delivered as f64;
        assert!((rate - 300e6).abs() / 300e6 < 0.001, "{rate}");
    }
}
