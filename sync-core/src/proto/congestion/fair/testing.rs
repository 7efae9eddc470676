//! Samples and paths shared by the fair controller's tests: synthetic
//! feedback in virtual time, and controllers brought to a known mode.

use std::time::{Duration, Instant};

use super::{Fair, FairConfig};
use crate::proto::congestion::{mbit, Controller, PathSample};

/// A sample on a 100 ms path: queue, delivered rate, loss.
pub(super) fn sample(q_ms: f64, delivery: u64, loss: f64) -> PathSample {
    PathSample {
        queue_delay: Some(Duration::from_secs_f64(q_ms / 1000.0)),
        base_drop: Duration::ZERO,
        delivery_rate: delivery,
        arrival_rate: delivery,
        loss,
        srtt: Duration::from_millis(100),
        min_rtt: Duration::from_millis(100),
    }
}

/// [`sample`] on a path of round trip `rtt`.
pub(super) fn sample_on(rtt: Duration, q_ms: f64, delivery: u64) -> PathSample {
    PathSample {
        srtt: rtt,
        min_rtt: rtt,
        ..sample(q_ms, delivery, 0.0)
    }
}

/// A sample on a 200 ms path: queue, arrivals, loss (and what the
/// arrivals were corrected to for that loss).
pub(super) fn long_path(q_ms: f64, arrival: u64, loss: f64) -> PathSample {
    let rtt = Duration::from_millis(200);
    PathSample {
        queue_delay: Some(Duration::from_secs_f64(q_ms / 1000.0)),
        base_drop: Duration::ZERO,
        delivery_rate: (arrival as f64 / (1.0 - loss)) as u64,
        arrival_rate: arrival,
        loss,
        srtt: rtt,
        min_rtt: rtt,
    }
}

/// A loopback-like path (200 µs RTT): startup ended at 7 Gbit/s (a
/// receiver descheduled for a few milliseconds looks like a queue), then
/// feedback every 5 ms for `ms` with queueing delay `q_ms` and
/// `delivered(rate)` delivered. Returns the controller.
pub(super) fn after_early_exit(ms: u64, q_ms: f64, delivered: impl Fn(u64) -> u64) -> Fair {
    let rtt = Duration::from_micros(200);
    let mut c = Fair::new(FairConfig::default());
    let t0 = Instant::now();
    c.on_feedback(t0, &sample_on(rtt, 10.0, mbit(7000)));
    assert!(!c.in_startup());
    for i in 1..=ms / 5 {
        let s = sample_on(rtt, q_ms, delivered(c.rate()));
        c.on_feedback(t0 + Duration::from_millis(5 * i), &s);
    }
    c
}

/// Startup on a path that delivers `delivered` (10 ms of queue once
/// the rate reaches it), fed every 5 ms until startup ends; the probe
/// after it has just begun.
pub(super) fn through_startup(delivered: u64) -> (Fair, Instant) {
    let mut c = Fair::new(FairConfig::default());
    let t0 = Instant::now();
    let mut t = t0;
    while c.in_startup() {
        t += Duration::from_millis(5);
        let q = if c.rate() >= delivered { 10.0 } else { 0.0 };
        c.on_feedback(t, &sample(q, delivered.min(c.rate()), 0.0));
        assert!(t - t0 < Duration::from_secs(5), "startup never ended");
    }
    (c, t)
}

/// A controller on a 100 ms path whose bottleneck delivers `delivered`
/// to it, past startup and the base-delay probe that follows it, fed
/// every 5 ms; returns it and the time of its last feedback.
pub(super) fn past_startup(delivered: u64) -> (Fair, Instant) {
    let (mut c, mut t) = through_startup(delivered);
    // The probe: the queue drains, the rate comes back, and the queue
    // settles at 10 ms (below the target).
    for i in 0..60 {
        t += Duration::from_millis(5);
        let q = if i < 10 { 10.0 - i as f64 } else { 10.0 };
        c.on_feedback(t, &sample(q, delivered, 0.0));
    }
    assert!(c.probe.is_none(), "probe still on: {:?}", c.probe);
    (c, t)
}
