//! The queue estimate: the queueing delay the controller steers by.
//!
//! Owns the readings of the bottleneck's queue (the last one, the deepest
//! ever, a short history) and the Smith predictor (Smith 1957) that
//! extrapolates them over the feedback's dead time. It never sets a rate:
//! the control law in `steady.rs` and the loss rules in `loss.rs` read it.
//! Delays are in seconds (f64), as the control law computes with them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::config::MIN_SPAN_SECS;
use crate::proto::congestion::PathSample;

#[derive(Debug)]
pub(super) struct QueueEstimate {
    /// Recent (time, measured queueing delay), for its trend.
    history: VecDeque<(Instant, f64)>,
    /// The last queueing delay measured.
    last: f64,
    /// Highest queueing delay seen: a buffer's depth, if it overflowed
    /// below the target.
    pub(super) deepest: f64,
    /// The last predicted queue.
    pub(super) predicted: f64,
}

impl QueueEstimate {
    pub(super) fn new() -> Self {
        QueueEstimate {
            history: VecDeque::new(),
            last: 0.0,
            deepest: 0.0,
            predicted: 0.0,
        }
    }

    /// The queueing delay a sample reports. A feedback interval in which
    /// none of this flow's datagrams arrived carries no delay sample: no
    /// news, not an empty queue, so the last reading stands. (A flow under
    /// about 2 Mbit/s gets such feedback every other time, and taking them
    /// as empty refilled it and restarted its probe clock mid-queue.)
    pub(super) fn observe(&mut self, s: &PathSample) -> f64 {
        let q = s.queue_delay.map_or(self.last, |d| d.as_secs_f64());
        self.last = q;
        q
    }

    /// Counts `q` towards the deepest queue seen.
    pub(super) fn record_depth(&mut self, q: f64) {
        self.deepest = self.deepest.max(q);
    }

    /// The queueing delay a round trip from now, extrapolated from the
    /// measured one `q` (which is a round trip old) along its trend over
    /// the last half RTT (at least `min_window`); `q` itself when
    /// `extrapolate` is false (startup, whose queue jumps) or the history
    /// spans under a millisecond. Steering by the measurement alone reacts
    /// an RTT late — past the target on the way up, and on the way down
    /// refilling only after the queue ran dry and the link idled — by an
    /// amount that grows with the RTT. The trend is the shared queue's,
    /// the same for every flow through it, so flows predict alike and
    /// still converge (a prediction from a flow's own sending rate against
    /// its own share would not: each would see a different queue).
    pub(super) fn predict(
        &mut self,
        now: Instant,
        q: f64,
        srtt: Duration,
        min_window: Duration,
        extrapolate: bool,
    ) -> f64 {
        let window = (srtt / 2).max(min_window);
        self.history.push_back((now, q));
        while self.history.len() > 2 && self.history[1].0 + window <= now {
            self.history.pop_front();
        }
        let (t0, q0) = self.history[0];
        let dt = now.saturating_duration_since(t0).as_secs_f64();
        self.predicted = if !extrapolate || dt < MIN_SPAN_SECS {
            q
        } else {
            let slope = (q - q0) / dt;
            (q + slope * srtt.as_secs_f64()).clamp(0.0, self.deepest.max(q))
        };
        self.predicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(50);

    /// Feeds `queue(ms)` every 5 ms for `ms` milliseconds on a path of
    /// `rtt`; returns the last prediction.
    fn feed(e: &mut QueueEstimate, rtt: Duration, ms: u64, queue: impl Fn(u64) -> f64) -> f64 {
        let t0 = Instant::now();
        let mut predicted = 0.0;
        for t in (0..=ms).step_by(5) {
            let q = queue(t);
            e.record_depth(q);
            predicted = e.predict(t0 + Duration::from_millis(t), q, rtt, WINDOW, true);
        }
        predicted
    }

    #[test]
    fn a_rising_queue_is_predicted_a_round_trip_ahead() {
        // 1 ms of queue more every 10 ms, on a 100 ms path: 10 ms ahead of
        // the last reading, which the deepest reading does not cap.
        let mut e = QueueEstimate::new();
        e.deepest = 1.0;
        let p = feed(&mut e, Duration::from_millis(100), 200, |t| t as f64 * 1e-4);
        assert!((p - 0.03).abs() < 1e-9, "{p}");
    }

    #[test]
    fn a_draining_queue_is_predicted_no_lower_than_empty() {
        let mut e = QueueEstimate::new();
        let p = feed(&mut e, Duration::from_millis(200), 100, |t| {
            0.02 - t as f64 * 2e-4
        });
        assert_eq!(p, 0.0);
    }

    #[test]
    fn no_prediction_beyond_the_deepest_queue_or_in_startup() {
        let mut e = QueueEstimate::new();
        let rising = |t| t as f64 * 1e-4;
        let p = feed(&mut e, Duration::from_millis(100), 200, rising);
        assert_eq!(p, 0.02, "above the deepest queue ever seen");
        let now = Instant::now() + Duration::from_millis(205);
        let q = e.predict(now, 0.0205, Duration::from_millis(100), WINDOW, false);
        assert_eq!(q, 0.0205);
    }

    #[test]
    fn a_feedback_without_a_delay_sample_keeps_the_last_reading() {
        let mut e = QueueEstimate::new();
        let mut s = PathSample {
            queue_delay: Some(Duration::from_millis(7)),
            base_drop: Duration::ZERO,
            delivery_rate: 0,
            arrival_rate: 0,
            loss: 0.0,
            srtt: Duration::from_millis(10),
            min_rtt: Duration::from_millis(10),
        };
        assert_eq!(e.observe(&s), 0.007);
        s.queue_delay = None;
        assert_eq!(e.observe(&s), 0.007);
    }
}
