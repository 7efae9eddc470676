//! Path measurements the sender keeps: round-trip time and base one-way delay.
//!
//! Owns the estimators only (RFC 6298 smoothing for RTT; LEDBAT's bucketed
//! minimum, RFC 6817 §3.4.2, for the base delay). It never reads a clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// RTT samples above this are treated as garbage (clock wrap, bad echo).
pub const MAX_RTT_SAMPLE: Duration = Duration::from_secs(60);

/// Smoothed RTT and its variation (RFC 6298 §2).
#[derive(Clone, Copy, Debug)]
pub struct RttEstimator {
    srtt: Duration,
    rttvar: Duration,
    min: Option<Duration>,
    latest: Duration,
    has_sample: bool,
}

impl RttEstimator {
    /// Starts from a guess used until the first sample.
    pub fn new(initial: Duration) -> Self {
        RttEstimator {
            srtt: initial,
            rttvar: initial / 2,
            min: None,
            latest: initial,
            has_sample: false,
        }
    }

    /// Folds in one sample; implausible ones are ignored.
    pub fn update(&mut self, sample: Duration) {
        if sample > MAX_RTT_SAMPLE {
            return;
        }
        self.min = Some(self.min.map_or(sample, |m| m.min(sample)));
        self.latest = sample;
        if !self.has_sample {
            self.srtt = sample;
            self.rttvar = sample / 2;
            self.has_sample = true;
            return;
        }
        let diff = self.srtt.abs_diff(sample);
        self.rttvar = (self.rttvar * 3 + diff) / 4;
        self.srtt = (self.srtt * 7 + sample) / 8;
    }

    pub fn srtt(&self) -> Duration {
        self.srtt
    }

    /// The most recent sample (the initial guess before any).
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// Lowest sample seen.
    pub fn min(&self) -> Option<Duration> {
        self.min
    }

    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    pub fn has_sample(&self) -> bool {
        self.has_sample
    }
}

/// Length of one base-delay bucket.
const BASE_BUCKET: Duration = Duration::from_secs(60);
/// Buckets kept: the base delay is the minimum over the last ten minutes, so
/// clock drift between the hosts and route changes are forgotten slowly.
const BASE_BUCKETS: usize = 10;

/// Minimum one-way delay over a sliding window of buckets.
#[derive(Clone, Debug, Default)]
pub struct BaseDelay {
    buckets: VecDeque<(Instant, i64)>,
}

impl BaseDelay {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a (relative) one-way delay sample in microseconds; returns how
    /// far it lowered the base delay (zero when it did not, or when it is
    /// the first sample).
    pub fn update(&mut self, now: Instant, owd_us: i64) -> Duration {
        let before = self.base();
        match self.buckets.back_mut() {
            Some((start, min)) if now.saturating_duration_since(*start) < BASE_BUCKET => {
                *min = (*min).min(owd_us);
            }
            _ => {
                self.buckets.push_back((now, owd_us));
                if self.buckets.len() > BASE_BUCKETS {
                    self.buckets.pop_front();
                }
            }
        }
        match (before, self.base()) {
            (Some(b), Some(a)) if b > a => Duration::from_micros((b - a) as u64),
            _ => Duration::ZERO,
        }
    }

    /// The base delay, if any sample arrived.
    pub fn base(&self) -> Option<i64> {
        self.buckets.iter().map(|&(_, m)| m).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_converges_and_ignores_garbage() {
        let mut r = RttEstimator::new(Duration::from_millis(100));
        r.update(Duration::from_secs(3600));
        assert!(!r.has_sample());
        for _ in 0..50 {
            r.update(Duration::from_millis(20));
        }
        assert!(r.srtt().abs_diff(Duration::from_millis(20)) < Duration::from_micros(100));
    }

    #[test]
    fn base_delay_forgets_old_minimum() {
        let t0 = Instant::now();
        let mut b = BaseDelay::new();
        b.update(t0, 100);
        b.update(t0 + Duration::from_secs(1), 500);
        assert_eq!(b.base(), Some(100));
        for i in 1..=BASE_BUCKETS as u64 {
            b.update(t0 + BASE_BUCKET * i as u32, 400);
        }
        assert_eq!(b.base(), Some(400));
    }

    #[test]
    fn base_delay_reports_how_far_a_sample_lowered_it() {
        let t0 = Instant::now();
        let mut b = BaseDelay::new();
        let us = Duration::from_micros;
        assert_eq!(b.update(t0, 900), us(0), "the first sample lowers nothing");
        assert_eq!(b.update(t0, 950), us(0));
        assert_eq!(b.update(t0, 600), us(300));
        // An old minimum ageing out raises the base: not a fall either.
        for i in 1..=BASE_BUCKETS as u64 {
            assert_eq!(b.update(t0 + BASE_BUCKET * i as u32, 700), us(0));
        }
        assert_eq!(b.base(), Some(700));
        assert_eq!(b.update(t0 + BASE_BUCKET * 11, 650), us(50));
    }
}
