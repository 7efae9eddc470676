//! Receiver back-pressure: a rate ceiling from the receiver's write queue.
//!
//! Owns one signal — how full the receiver's queue of blocks waiting for
//! the disk is, and how fast that disk absorbs them — and turns it into a
//! ceiling on the sending rate. It is separate from the path controllers on
//! purpose: a slow disk says nothing about the network, and datagrams the
//! receiver had to drop because its queue was full are not network loss.
//! Once the queue passes [`HIGH_FILL`], the ceiling is pinned below the
//! measured sink rate so the queue drains; below [`LOW_FILL`] the ceiling
//! lifts again, and it disappears once it no longer binds.

use std::time::{Duration, Instant};

/// Queue fill (fraction) at which the ceiling is (re)applied.
pub const HIGH_FILL: f64 = 0.5;
/// Queue fill under which the ceiling is relaxed.
pub const LOW_FILL: f64 = 0.25;
/// Share of the sink rate the ceiling is set to, so the queue drains.
const DRAIN_SHARE: f64 = 0.85;
/// Relative growth of the ceiling per round trip (at least 10 ms) while
/// the queue is low: a disk whose speed swings (many small files, then a
/// large one) is followed within a few round trips, and one round trip of
/// overshoot fits in the queue above [`HIGH_FILL`].
const RELAX_PER_RTT: f64 = 0.25;

/// The ceiling's state.
#[derive(Clone, Debug, Default)]
pub struct BackPressure {
    ceiling: Option<f64>,
    last_cut: Option<Instant>,
    last_update: Option<Instant>,
}

impl BackPressure {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one report: `fill` is 0.0..=1.0, `sink_rate` bytes/s (0 =
    /// unknown), `rate` the sender's current effective rate.
    pub fn on_report(
        &mut self,
        now: Instant,
        fill: f64,
        sink_rate: u64,
        rate: u64,
        srtt: Duration,
    ) {
        let dt = self.last_update.map_or(0.0, |t| {
            now.saturating_duration_since(t)
                .min(Duration::from_millis(100))
                .as_secs_f64()
        });
        self.last_update = Some(now);
        let fill = if fill.is_finite() {
            fill.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let wait = srtt.max(Duration::from_millis(10));
        if fill >= HIGH_FILL {
            if self
                .last_cut
                .is_none_or(|t| now.saturating_duration_since(t) >= wait)
            {
                let base = if sink_rate > 0 {
                    sink_rate as f64
                } else {
                    rate as f64 * 0.5
                };
                let c = (base * DRAIN_SHARE).min(self.ceiling.unwrap_or(f64::MAX));
                self.ceiling = Some(c.max(1.0));
                self.last_cut = Some(now);
            }
        } else if fill < LOW_FILL {
            if let Some(c) = self.ceiling {
                let grown = c * (1.0 + RELAX_PER_RTT * dt / wait.as_secs_f64());
                // Gone once it is well above what the controller asks for.
                self.ceiling = (grown < rate as f64 * 2.0).then_some(grown);
            }
        }
    }

    /// The ceiling in bytes/s, if one applies.
    pub fn ceiling(&self) -> Option<u64> {
        self.ceiling.map(|c| c as u64)
    }

    /// `rate` limited by the ceiling.
    pub fn limit(&self, rate: u64) -> u64 {
        self.ceiling().map_or(rate, |c| rate.min(c.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_pins_below_sink_rate_and_empty_queue_lifts() {
        let mut bp = BackPressure::new();
        let t0 = Instant::now();
        let rtt = Duration::from_millis(50);
        bp.on_report(t0, 0.1, 1000, 100_000, rtt);
        assert_eq!(bp.ceiling(), None);
        bp.on_report(t0, 0.6, 1000, 100_000, rtt);
        assert_eq!(bp.limit(100_000), 850);
        let mut t = t0;
        for _ in 0..600 {
            t += Duration::from_millis(10);
            bp.on_report(t, 0.0, 1000, 2000, rtt);
        }
        assert_eq!(bp.ceiling(), None);
    }

    #[test]
    fn a_ceiling_set_in_a_slow_spell_lifts_within_round_trips() {
        // A burst of small files slows the disk, then large files let it
        // run again: the ceiling must not keep the sender slow for seconds.
        let mut bp = BackPressure::new();
        let mut t = Instant::now();
        let rtt = Duration::from_millis(10);
        bp.on_report(t, 0.9, 10_000_000, 400_000_000, rtt);
        assert_eq!(bp.limit(400_000_000), 8_500_000);
        for _ in 0..30 {
            t += rtt;
            bp.on_report(t, 0.0, 10_000_000, bp.limit(400_000_000), rtt);
        }
        // 30 round trips (0.3 s) of an empty queue: 25 % per round trip.
        assert!(bp.limit(400_000_000) >= 400_000_000, "{:?}", bp.ceiling());
        // A slow path relaxes in its own round trips, not in 10 ms steps.
        let mut slow = BackPressure::new();
        let rtt = Duration::from_millis(200);
        slow.on_report(t, 0.9, 10_000_000, 400_000_000, rtt);
        for _ in 0..10 {
            t += Duration::from_millis(20);
            slow.on_report(t, 0.0, 10_000_000, 400_000_000, rtt);
        }
        let c = slow.ceiling().expect("still applies");
        assert!((9_000_000..12_000_000).contains(&c), "{c}");
    }
}
