//! The steady state: holding the queue near the flow's target.
//!
//! Owns the steady mode's data ([`Steady`], [`Drain`]) and its control law
//! by the predicted queue: above the flow's target, the rate is pinned to
//! the busy rate less a drain term; below half of it, the rate is refilled
//! to the busy rate; below the target, it grows additively. It never
//! probes the base delay (`base_probe.rs`) or reacts to loss (`loss.rs`);
//! those run first and may take the feedback for themselves.

use std::time::{Duration, Instant};

use super::config::MIN_SPAN_SECS;
use super::{Fair, Feedback, Mode};

/// The steady mode's data.
#[derive(Clone, Copy, Debug)]
pub(super) struct Steady {
    /// From the end of startup until its queue first read below the
    /// target: loss with an overflowing queue is this flow's own
    /// overshoot, drained by delay, not cut for.
    pub(super) startup_overshoot: bool,
    pub(super) drain: Drain,
}

/// Whether a drain is on. A drain begins when the predicted queue passes
/// the flow's target and ends when it falls below
/// [`refill_below`](super::FairConfig::refill_below) of it, so that the
/// yield at a drain's start ([`flow_share`](super::flow_share)) happens
/// once per drain.
#[derive(Clone, Copy, Debug)]
pub(super) enum Drain {
    Draining,
    /// Not draining; since when the queue has stayed quiet with the path
    /// delivering all that is sent (see
    /// [`Fair::path_has_room`](super::Fair::path_has_room)).
    Filling {
        quiet_since: Option<Instant>,
    },
}

impl Steady {
    /// The steady state as a startup leaves it; `startup_overshoot` when
    /// the startup ended on its queue (not on loss).
    pub(super) fn new(startup_overshoot: bool) -> Self {
        Steady {
            startup_overshoot,
            drain: Drain::Filling { quiet_since: None },
        }
    }
}

/// Takes the quiet stretch out of the mode at each feedback: any branch of
/// the control law but a continued quiet stretch ends it.
pub(super) fn take_quiet_since(mode: &mut Mode) -> Option<Instant> {
    match mode {
        Mode::Steady(Steady {
            drain: Drain::Filling { quiet_since },
            ..
        }) => quiet_since.take(),
        _ => None,
    }
}

impl Fair {
    /// The steady state's control law at one feedback, steering by the
    /// predicted queue `q`. What arrives while the queue is busy is the
    /// bottleneck's rate (this flow's share of it), capped for a round
    /// trip after a yield: the busy rate that drains pin to.
    pub(super) fn steer(&mut self, f: &Feedback, q: f64, quiet_since: Option<Instant>) {
        let st = self.flow_target(f.target);
        if f.q >= f.target * self.config.busy_queue && f.delivered > 0.0 {
            self.busy_rate = self.since_yield(f.now, f.delivered);
        }
        if q > st {
            self.drain(f, q, st);
        } else {
            self.fill(f, q, st, quiet_since);
        }
    }

    /// Above the flow's target `st`: the rate is pinned to the busy rate
    /// less a term that drains the excess over
    /// [`min_drain_time`](super::FairConfig::min_drain_time) (and a few
    /// base RTTs), so the bottleneck never runs dry while draining.
    fn drain(&mut self, f: &Feedback, q: f64, st: f64) {
        if let Mode::Steady(steady) = &mut self.mode {
            if let Drain::Filling { .. } = steady.drain {
                steady.drain = Drain::Draining;
                self.yield_if_losing_share(f.now, f.sample.srtt);
            }
        }
        if self.busy_rate > 0.0 {
            let c = &self.config;
            let drain_time = c
                .min_drain_time
                .max(f.sample.min_rtt * c.drain_rtts)
                .as_secs_f64()
                .max(MIN_SPAN_SECS);
            let drain = ((q - st) / drain_time).min(c.max_drain);
            self.rate = self.rate.min(self.busy_rate * (1.0 - drain));
        }
    }

    /// At or below the flow's target `st`: resumes startup after a long
    /// quiet stretch, refills to the busy rate once the queue is below
    /// half the target, and grows additively, the less the nearer the
    /// queue is to the target.
    fn fill(&mut self, f: &Feedback, q: f64, st: f64, quiet_since: Option<Instant>) {
        let mut quiet = self.quiet_stretch(f, q.max(f.q), quiet_since);
        if let Some(since) = quiet {
            if self.path_has_room(f.now, since, f.sample.srtt) {
                self.resume_startup(f.now);
                quiet = None;
            }
        }
        let refill = q < st * self.config.refill_below;
        if let Mode::Steady(steady) = &mut self.mode {
            if refill || matches!(steady.drain, Drain::Filling { .. }) {
                steady.drain = Drain::Filling { quiet_since: quiet };
            }
        }
        if refill {
            self.rate = self.rate.max(self.busy_rate);
        }
        let headroom = 1.0 - q / st;
        self.rate += self.additive_increase(st, f.sample.min_rtt, f.delivered) * f.dt * headroom;
    }

    /// The steady state's growth per second with no queue, for a flow
    /// steering at `st` seconds of queue over a base round trip of `rtt`:
    /// [`additive_increase`](super::FairConfig::additive_increase), or less
    /// on a long path ([`ai_reference_rate`](super::FairConfig::ai_reference_rate)),
    /// plus a share of the rate above
    /// [`high_rate_from`](super::FairConfig::high_rate_from) while the path
    /// carries that rate (`delivered` at least
    /// [`high_rate_delivered`](super::FairConfig::high_rate_delivered) of
    /// it; a sender short of CPU would otherwise let its rate run away from
    /// what it can send).
    pub(super) fn additive_increase(&self, st: f64, rtt: Duration, delivered: f64) -> f64 {
        let c = &self.config;
        let ai = c.additive_increase as f64;
        let above = if delivered >= c.high_rate_delivered * self.rate {
            (self.rate - c.high_rate_from as f64).max(0.0)
        } else {
            0.0
        };
        // Both caps scale with `st / rtt^2` (none without a round trip).
        let r = rtt.as_secs_f64();
        let per_rate = if r > 0.0 { st / (r * r) } else { f64::INFINITY };
        ai.min(c.ai_reference_rate as f64 * per_rate)
            + c.high_rate_growth.min(c.high_rate_overshoot * per_rate) * above
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::testing::{long_path, past_startup, sample, sample_on};
    use super::super::{Fair, FairConfig, Mode, Steady};
    use crate::proto::congestion::{mbit, Controller, PathSample};

    #[test]
    fn queue_above_target_pins_rate_below_delivery() {
        let mut c = Fair::new(FairConfig::default());
        let t0 = Instant::now();
        c.on_feedback(t0, &sample(40.0, mbit(50), 0.0));
        c.on_feedback(t0 + Duration::from_millis(10), &sample(40.0, mbit(50), 0.0));
        assert!(!c.in_startup());
        assert!(c.rate() < mbit(50), "rate {}", c.rate());
    }

    #[test]
    fn a_draining_queue_is_refilled_before_it_runs_dry() {
        let bottleneck = mbit(1000);
        let mut c = Fair::new(FairConfig::default());
        let mut t = Instant::now();
        let step = Duration::from_millis(5);
        c.on_feedback(t, &long_path(10.0, bottleneck, 0.0));
        assert!(!c.in_startup());
        // A standing queue of 100 ms: the rate is pinned below the
        // bottleneck's, and the queue drains by 1 ms every 5 ms.
        let mut q = 100.0;
        while q > 30.0 {
            t += step;
            c.on_feedback(t, &long_path(q, bottleneck, 0.0));
            q -= 1.0;
        }
        // The queue measured is a round trip old: 30 ms measured is about
        // empty by now, and the rate must be back to the bottleneck's.
        assert!(
            c.rate() as f64 >= 0.95 * bottleneck as f64,
            "rate {} with the queue about empty",
            c.rate()
        );
    }

    #[test]
    fn a_feedback_without_a_delay_sample_is_not_an_empty_queue() {
        // Draining a queue above target, the flow hears a feedback in
        // which none of its datagrams arrived (a slow flow does, every
        // other time): it must not refill as if the queue had emptied.
        let (mut c, mut t) = past_startup(mbit(300));
        for _ in 0..10 {
            t += Duration::from_millis(5);
            c.on_feedback(t, &sample(25.0, mbit(300), 0.0));
        }
        let draining = c.rate();
        assert!(draining < mbit(300), "not draining: {draining}");
        t += Duration::from_millis(5);
        let silent = PathSample {
            queue_delay: None,
            ..sample(0.0, mbit(300), 0.0)
        };
        c.on_feedback(t, &silent);
        assert!(c.rate() <= draining, "{} after {draining}", c.rate());
    }

    #[test]
    fn additive_increase_is_capped_on_long_paths_only() {
        // Steady state with 5 ms of queue (below target, above a quarter
        // of it, so no re-probe) and everything sent delivered: one second
        // of additive increase from 100 Mbit/s.
        let growth = |rtt_ms: u64| {
            let mut c = Fair::new(FairConfig::default());
            c.mode = Mode::Steady(Steady::new(false));
            let rtt = Duration::from_millis(rtt_ms);
            let mut t = Instant::now();
            c.on_feedback(t, &sample_on(rtt, 5.0, c.rate()));
            let start = c.rate();
            for _ in 0..100 {
                t += Duration::from_millis(10);
                c.on_feedback(t, &sample_on(rtt, 5.0, c.rate()));
            }
            assert!(!c.in_startup() && c.probe.is_none());
            (c.rate() - start) as f64 * 8e-6
        };
        let (short, medium, long) = (growth(20), growth(100), growth(200));
        // 250 Mbit/s per second at (1 - 5/18) of the way below target.
        assert!((170.0..190.0).contains(&short), "{short}");
        assert_eq!(medium, short);
        // Capped at 200 Mbit/s x 18 ms / (200 ms)^2 = 90 Mbit/s per second.
        assert!((55.0..75.0).contains(&long), "{long}");
    }
}
