//! Base-delay probes: draining the queue to empty so that every flow
//! through it measures the path's true base delay.
//!
//! Queueing delay is measured against the lowest one-way delay seen, and a
//! flow that starts behind another's standing queue takes part of that
//! queue for the path. It then steers the real queue past the target, the
//! earlier flow drains for it, and the newcomer ends up with nearly all of
//! the link (9 : 86 Mbit/s on a 20 ms, 100 Mbit/s path with a queue of one
//! BDP). So after startup, and then whenever the queue has not read empty
//! for [`probe_every`](super::FairConfig::probe_every), every flow drains
//! the queue until it is empty (LEDBAT++'s initial and periodic
//! slowdowns). Flows through one bottleneck see the same queue go empty,
//! during the other flows' probes too, so their clocks line up and later
//! probes drain the queue together.
//!
//! Owns the probe's state machine ([`BaseProbe`]) and its schedule. It
//! sets the rate only while a probe holds it low or refills it; it never
//! changes the base delay itself (the receiver measures that).

use std::time::{Duration, Instant};

use super::config::PROBE_MIN_RTT;
use super::{Fair, Feedback};

/// One drain of the queue to empty.
#[derive(Clone, Copy, Debug)]
pub(super) struct BaseProbe {
    since: Instant,
    stage: Stage,
    refill: Refill,
    /// The latest fall of the base delay during the probe: this flow
    /// started behind another's standing queue, and its prediction (made
    /// against the wrong base) cannot be trusted to find the empty queue.
    last_fall: Option<Instant>,
    /// The deepest queue seen since the probe began, and when: the drain
    /// is measured from there.
    peak: (Instant, f64),
    /// The rate to drain from and refill to.
    rate0: f64,
    /// The highest delivered rate seen in the probe's first round trip
    /// (what was sent before it), at least the busy rate it began with.
    first_rtt_rate0: f64,
}

#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Sending at [`probe_share`](super::FairConfig::probe_share) of the
    /// rate until the queue is empty.
    Draining,
    /// Refilled at this time, when the queue was (predicted) empty by the
    /// time the refill reaches it; falls of the base are still watched.
    Refilled(Instant),
}

/// When a probe whose base was right refills.
#[derive(Clone, Copy, Debug)]
enum Refill {
    /// The probe after startup: the queue's depth is unknown (the
    /// overshoot is still arriving), so when it is predicted empty.
    WhenEmpty,
    /// A periodic probe: at this time, from the predicted queue at its
    /// start and the rate given up
    /// ([`probe_hold`](super::FairConfig::probe_hold)).
    At(Instant),
}

impl Fair {
    /// Runs the base-delay probe, if one is on; true when it set the rate.
    /// A flow whose base was right refills when the queue is predicted
    /// empty by the time the refill reaches it (after startup), or after
    /// the time the queue takes to drain (periodic); one that sees the base
    /// fall meanwhile (it was wrong) drains on until the falls stop and its
    /// queue reads empty, and pays for that with a round trip of partly
    /// idle link.
    pub(super) fn probe_base(&mut self, f: &Feedback) -> bool {
        let Some(mut p) = self.probe else {
            return false;
        };
        let (now, s, q_obs) = (f.now, f.sample, f.q);
        let c = &self.config;
        let rtt = s.srtt.max(PROBE_MIN_RTT);
        if now >= p.since + rtt * c.probe_rtts + c.probe_grace {
            self.probe = None;
            return false;
        }
        let target = c.target_queue_delay.as_secs_f64();
        let empty = target * c.probe_empty;
        // While the queue is still busy, what arrives is the bottleneck's
        // rate (this flow's share of it): the rate to refill to. After the
        // first round trip that share is partly this flow's own halved
        // rate coming back, and following it all the way down would halve
        // the refill rate every round trip for as long as another flow
        // keeps the queue busy (`probe_floor`).
        if q_obs >= target * c.busy_queue && f.delivered > 0.0 {
            let rate0 = if now < p.since + rtt {
                p.first_rtt_rate0 = p.first_rtt_rate0.max(f.delivered);
                f.delivered
            } else {
                f.delivered.max(p.first_rtt_rate0 * c.probe_floor)
            };
            self.busy_rate = rate0;
            p.rate0 = rate0;
        }
        let fell = s.base_drop >= c.probe_fall;
        if fell {
            p.last_fall = Some(now);
        }
        if q_obs >= p.peak.1 {
            p.peak = (now, q_obs);
        }
        // The queue a measurement's age plus the time a new rate takes to
        // reach the queue from now (together the queue itself plus the
        // base round trip, wherever the bottleneck is on the path), along
        // the drain measured since the peak. The steady state's trend
        // window still holds startup's rise here and would refill late.
        let since_peak = now.saturating_duration_since(p.peak.0).as_secs_f64();
        let q_pred = if since_peak > 0.0 {
            let slope = (q_obs - p.peak.1) / since_peak;
            q_obs + slope * (q_obs + s.min_rtt.as_secs_f64())
        } else {
            q_obs
        };
        let low = p.rate0 * c.probe_share;
        match p.stage {
            Stage::Draining => {
                let drained = match (p.last_fall, p.refill) {
                    (Some(fall), _) => q_obs <= empty && now >= fall + rtt,
                    (None, Refill::At(until)) => now >= until,
                    (None, Refill::WhenEmpty) => q_pred <= empty,
                };
                if drained {
                    self.rate = self.rate.max(p.rate0);
                    p.stage = Stage::Refilled(now);
                } else {
                    self.rate = self.rate.min(low);
                }
            }
            Stage::Refilled(_) if fell => {
                p.stage = Stage::Draining;
                self.rate = self.rate.min(low);
            }
            Stage::Refilled(t) => {
                // Refilled: the steady state steers again, while falls are
                // watched for a few more round trips.
                self.probe = (now < t + rtt * c.probe_watch_rtts).then_some(p);
                return false;
            }
        }
        self.probe = Some(p);
        true
    }

    /// Starts a base-delay probe when one is due: once when the first
    /// startup ends (`first_startup`: this feedback began in it), then
    /// whenever the queue `q` has not read empty for
    /// [`probe_every`](super::FairConfig::probe_every) (or
    /// [`probe_every_rtts`](super::FairConfig::probe_every_rtts) round
    /// trips, if longer).
    pub(super) fn schedule_probe(
        &mut self,
        now: Instant,
        q: f64,
        srtt: Duration,
        first_startup: bool,
    ) {
        let c = &self.config;
        let target = c.target_queue_delay.as_secs_f64();
        if q < target * c.probe_empty || self.probe.is_some() {
            self.queue_emptied = Some(now);
        }
        if self.in_startup() || self.probe.is_some() {
            return;
        }
        let refill = if first_startup {
            Refill::WhenEmpty
        } else {
            let every = c.probe_every.max(srtt * c.probe_every_rtts);
            let due = self.queue_emptied.is_some_and(|t| now >= t + every);
            if !due || self.busy_rate <= 0.0 {
                return;
            }
            let drain = self.queue.predicted / (1.0 - c.probe_share) * c.probe_hold;
            let hold = Duration::from_secs_f64(drain) + c.probe_hold_margin;
            let floor = (srtt * c.probe_min_hold_rtts).min(c.probe_min_hold_cap);
            Refill::At(now + hold.max(floor))
        };
        self.queue_emptied = Some(now);
        let rate0 = if self.busy_rate > 0.0 {
            self.busy_rate
        } else {
            self.rate
        };
        self.probe = Some(BaseProbe {
            since: now,
            stage: Stage::Draining,
            refill,
            last_fall: None,
            peak: (now, 0.0),
            rate0,
            first_rtt_rate0: rate0,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::{Duration, Instant};

    use super::super::testing::{past_startup, sample, sample_on, through_startup};
    use super::super::{Fair, FairConfig};
    use crate::proto::congestion::{mbit, Controller, PathSample};

    #[test]
    fn the_queue_is_drained_once_after_startup() {
        let mut c = Fair::new(FairConfig::default());
        let t0 = Instant::now();
        let mut t = t0;
        while c.in_startup() {
            t += Duration::from_millis(5);
            let q = if c.rate() >= mbit(900) { 10.0 } else { 0.0 };
            c.on_feedback(t, &sample(q, mbit(900).min(c.rate()), 0.0));
        }
        // The queue seen still grows (the overshoot is a round trip
        // away): the rate is half the bottleneck's until it is predicted
        // empty, then all of it again.
        t += Duration::from_millis(5);
        c.on_feedback(t, &sample(14.0, mbit(900), 0.0));
        assert!(c.rate() <= mbit(450), "rate {}", c.rate());
        let mut q = 14.0;
        while c.rate() <= mbit(450) {
            t += Duration::from_millis(5);
            q = (q - 1.5f64).max(0.0);
            c.on_feedback(t, &sample(q, mbit(900), 0.0));
            assert!(q > 0.0, "not refilled before the queue read empty");
        }
        assert!(c.rate() >= mbit(900), "rate {}", c.rate());
    }

    #[test]
    fn a_flow_that_started_behind_a_queue_drains_until_the_base_stops_falling() {
        let (mut c, mut t) = through_startup(mbit(300));
        // Draining, this flow sees its lowest delay fall: the queue it
        // took for part of the path was another flow's. It stays at half
        // its rate while the falls go on (the queue reads empty against
        // the base as it falls), and a round trip after the last one.
        let mut last_fall = t;
        for i in 0..20 {
            t += Duration::from_millis(5);
            let s = PathSample {
                base_drop: Duration::from_millis(1),
                ..sample(0.0, mbit(300), 0.0)
            };
            c.on_feedback(t, &s);
            last_fall = t;
            assert!(c.rate() <= mbit(150), "refilled while falling ({i})");
        }
        while c.rate() <= mbit(150) {
            t += Duration::from_millis(5);
            c.on_feedback(t, &sample(0.0, mbit(300), 0.0));
            assert!(t - last_fall < Duration::from_millis(300), "never refilled");
        }
        assert!(
            t - last_fall >= Duration::from_millis(100),
            "refilled early"
        );
    }

    #[test]
    fn a_queue_that_never_empties_is_drained_every_few_seconds() {
        let (mut c, mut t) = past_startup(mbit(900));
        t += Duration::from_millis(5);
        c.on_feedback(t, &sample(0.0, mbit(900), 0.0));
        let quiet_until = t + FairConfig::default().probe_every;
        // 10 ms of queue, below target, never empty: after `probe_every`
        // the rate halves, and comes back once the predicted queue (10 ms)
        // has drained at the rate given up, 1.5 times over: 35 ms.
        let probed = loop {
            t += Duration::from_millis(5);
            c.on_feedback(t, &sample(10.0, mbit(900), 0.0));
            if c.rate() <= mbit(455) {
                break t;
            }
            assert!(t < quiet_until + Duration::from_millis(100), "no probe");
        };
        assert!(probed >= quiet_until, "probed early");
        while c.rate() <= mbit(455) {
            t += Duration::from_millis(5);
            c.on_feedback(t, &sample(10.0, mbit(900), 0.0));
        }
        let held = t - probed;
        assert!(
            (Duration::from_millis(30)..Duration::from_millis(50)).contains(&held),
            "held {held:?}"
        );
        assert!(c.rate() >= mbit(900), "rate {}", c.rate());
    }

    #[test]
    fn a_periodic_probe_lasts_two_round_trips_on_a_short_path() {
        // 2 ms of queue that never reads empty, on a 12 ms path: the hold
        // worked out from the queue (drained at the rate given up, 1.5
        // times over, plus 5 ms) would be 11 ms, less than the round trip
        // this flow needs to see its own drain arrive. It holds for two.
        let rtt = Duration::from_millis(12);
        let (mut c, mut t) = past_startup(mbit(90));
        let steady = sample_on(rtt, 2.0, mbit(90));
        let give_up = t + FairConfig::default().probe_every + Duration::from_secs(1);
        let probed = loop {
            t += Duration::from_millis(1);
            c.on_feedback(t, &steady);
            if c.rate() <= mbit(46) {
                break t;
            }
            assert!(t < give_up, "no probe");
        };
        while c.rate() <= mbit(46) {
            t += Duration::from_millis(1);
            c.on_feedback(t, &steady);
        }
        // (The rate falls at the feedback after the one that starts it.)
        let held = t - probed + Duration::from_millis(1);
        assert!(
            (2 * rtt..2 * rtt + Duration::from_millis(3)).contains(&held),
            "held {held:?}"
        );
    }

    #[test]
    fn a_probe_behind_another_flows_queue_does_not_follow_its_own_rate_down() {
        // Startup ends at 100 Mbit/s; the probe after it waits for the
        // queue to empty, but another flow keeps 10 ms of it, and what
        // arrives is this flow's own rate, halved by the probe a round
        // trip earlier. Taking that as the rate to refill to halved it
        // again every round trip, down to the floor of 1 Mbit/s.
        let (mut c, mut t) = through_startup(mbit(100));
        let start = t;
        let mut lowest = u64::MAX;
        // What arrives was sent a round trip (100 ms, 20 feedbacks) ago.
        let mut sent = VecDeque::from(vec![mbit(100); 20]);
        while t < start + Duration::from_secs(1) {
            t += Duration::from_millis(5);
            sent.push_back(c.rate());
            let arrived = sent.pop_front().unwrap_or_default();
            c.on_feedback(t, &sample(10.0, arrived, 0.0));
            assert!(c.probe.is_some(), "probe ended");
            lowest = lowest.min(c.rate());
        }
        // Half of a quarter of the 100 Mbit/s delivered before the probe.
        assert!(lowest >= mbit(12), "fell to {lowest}");
    }

    #[test]
    fn a_queue_that_empties_now_and_then_is_not_probed() {
        let (mut c, mut t) = past_startup(mbit(900));
        let start = t;
        let every = FairConfig::default().probe_every;
        while t < start + 3 * every {
            t += Duration::from_millis(5);
            // Empty for 5 ms once a second.
            let q = if (t - start).as_millis() % 1000 < 5 {
                0.0
            } else {
                10.0
            };
            c.on_feedback(t, &sample(q, mbit(900), 0.0));
            assert!(c.rate() > mbit(800), "probed: rate {}", c.rate());
        }
    }
}
