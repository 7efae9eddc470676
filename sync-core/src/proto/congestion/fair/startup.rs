//! Startup: finding the path's rate by doubling, first and resumed.
//!
//! Owns the startup mode's data ([`Startup`]), its growth between and at
//! feedback, its exit when the queue reaches half the target, the doubling
//! period for the path's round trip, and the steady state's quiet stretch
//! that resumes it. It never drains a queue or reacts to loss: the steady
//! state (`steady.rs`) and the loss rules (`loss.rs`) do.

use std::time::{Duration, Instant};

use super::config::MIN_SPAN_SECS;
use super::steady::Steady;
use super::{Fair, Feedback, Mode};

/// The startup mode's data.
#[derive(Clone, Copy, Debug)]
pub(super) struct Startup {
    /// Resumed from the steady state after a quiet stretch (not the first
    /// startup): it doubles no faster than every
    /// [`reprobe_rtts`](super::FairConfig::reprobe_rtts) round trips, and
    /// ends at its first shallow-buffer overflow.
    pub(super) resumed: bool,
    /// When growth was last applied.
    last_tick: Option<Instant>,
    /// The rate at the last feedback: the base of the blind-growth cap.
    blind_base: f64,
}

impl Startup {
    /// The first startup, from the initial `rate`.
    pub(super) fn first(rate: f64) -> Self {
        Startup {
            resumed: false,
            last_tick: None,
            blind_base: rate,
        }
    }
}

impl Fair {
    /// Takes the path's latest round trip: a resumed startup is paced by it,
    /// and a short path doubles every
    /// [`startup_rtts`](super::FairConfig::startup_rtts) round trips
    /// (within the configured doubling periods).
    pub(super) fn observe_rtt(&mut self, srtt: Duration) {
        self.srtt = srtt;
        if !srtt.is_zero() {
            self.doubling = (srtt * self.config.startup_rtts)
                .min(self.config.startup_doubling)
                .max(self.config.min_startup_doubling);
        }
    }

    /// Startup growth for the time since the last tick, capped at
    /// [`max_blind_growth`](super::FairConfig::max_blind_growth) times the
    /// rate at the last feedback.
    pub(super) fn grow(&mut self, now: Instant) {
        let Mode::Startup(startup) = &mut self.mode else {
            return;
        };
        let c = &self.config;
        let dt = match startup.last_tick {
            Some(t) if now > t => (now - t).min(c.max_step).as_secs_f64(),
            Some(_) => return,
            None => 0.0,
        };
        startup.last_tick = Some(now);
        let mut doubling = self.doubling;
        if startup.resumed {
            doubling = doubling.max(self.srtt * c.reprobe_rtts);
        }
        let doubling = doubling.as_secs_f64().max(MIN_SPAN_SECS);
        self.rate = (self.rate * (std::f64::consts::LN_2 * dt / doubling).exp())
            .min(startup.blind_base * c.max_blind_growth)
            .clamp(c.min_rate as f64, c.max_rate as f64);
    }

    /// Startup at a feedback: ends when the queue (`q`) reaches
    /// [`startup_exit`](super::FairConfig::startup_exit) of the target, at
    /// what the receiver received (the bottleneck rate, once a queue
    /// exists); otherwise grows, and the cap's base moves up.
    pub(super) fn startup_step(&mut self, f: &Feedback, q: f64) {
        if q >= f.target * self.config.startup_exit {
            self.mode = Mode::Steady(Steady::new(true));
            if f.delivered > 0.0 {
                self.rate = self.rate.min(f.delivered);
                self.busy_rate = f.delivered;
            }
            return;
        }
        self.grow(f.now);
        if let Mode::Startup(startup) = &mut self.mode {
            startup.blind_base = self.rate;
        }
    }

    /// The start of the steady state's quiet stretch, if this feedback
    /// continues one: a queue (`q`, predicted or measured, whichever is
    /// deeper) below [`reprobe_quiet`](super::FairConfig::reprobe_quiet)
    /// of the target, with the path delivering all that is sent.
    pub(super) fn quiet_stretch(
        &self,
        f: &Feedback,
        q: f64,
        since: Option<Instant>,
    ) -> Option<Instant> {
        let quiet = q < f.target * self.config.reprobe_quiet;
        if !quiet || f.delivered < self.config.reprobe_delivered * self.rate {
            return None;
        }
        Some(since.unwrap_or(f.now))
    }

    /// True when a quiet stretch begun at `since` has lasted
    /// [`reprobe_doublings`](super::FairConfig::reprobe_doublings) doubling
    /// periods (and a few round trips): the path has room (startup ended on
    /// a scheduling hiccup, or a competing flow left) that additive
    /// increase would take seconds to find on a fast path.
    pub(super) fn path_has_room(&self, now: Instant, since: Instant, srtt: Duration) -> bool {
        let c = &self.config;
        let needed = (self.doubling * c.reprobe_doublings).max(srtt * c.reprobe_min_rtts);
        now.saturating_duration_since(since) >= needed
    }

    /// Resumes startup from the current rate.
    pub(super) fn resume_startup(&mut self, now: Instant) {
        self.mode = Mode::Startup(Startup {
            resumed: true,
            last_tick: Some(now),
            blind_base: self.rate,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::testing::{after_early_exit, sample, sample_on};
    use super::super::{Fair, FairConfig, MAX_BLIND_GROWTH};
    use crate::proto::congestion::{mbit, Controller};

    #[test]
    fn startup_reaches_a_gigabit_within_a_second_without_queueing() {
        let mut c = Fair::new(FairConfig::default());
        let t0 = Instant::now();
        let mut t = t0;
        while c.rate() < mbit(1000) {
            t += Duration::from_millis(10);
            c.on_feedback(t, &sample(0.0, c.rate(), 0.0));
            assert!(t - t0 < Duration::from_secs(1), "too slow: {}", c.rate());
        }
        assert!(c.in_startup());
    }

    #[test]
    fn startup_grows_between_feedback_but_not_without_bound() {
        let mut c = Fair::new(FairConfig::default());
        let t0 = Instant::now();
        c.on_tick(t0);
        let doubling = FairConfig::default().startup_doubling;
        for i in 1..=10 {
            c.on_tick(t0 + doubling * i / 10);
        }
        let doubled = c.rate() as f64 / mbit(100) as f64;
        assert!((1.9..2.1).contains(&doubled), "{doubled}");
        for i in 11..=500 {
            c.on_tick(t0 + doubling * i / 10);
        }
        assert_eq!(c.rate(), (mbit(100) as f64 * MAX_BLIND_GROWTH) as u64);
    }

    #[test]
    fn startup_doubles_faster_on_a_short_path_but_not_on_a_long_one() {
        // Time for startup to reach 10 Gbit/s with feedback every 5 ms.
        let ramp = |rtt: Duration| {
            let mut c = Fair::new(FairConfig::default());
            let t0 = Instant::now();
            let mut t = t0;
            while c.rate() < mbit(10_000) {
                t += Duration::from_millis(5);
                c.on_feedback(t, &sample_on(rtt, 0.0, c.rate()));
                assert!(t - t0 < Duration::from_secs(2), "stuck at {}", c.rate());
            }
            t - t0
        };
        // Loopback: 10 ms doublings, 100 Mbit/s to 10 Gbit/s in about 70 ms.
        let short = ramp(Duration::from_micros(200));
        assert!(short <= Duration::from_millis(100), "{short:?}");
        // 100 ms: the configured 70 ms doubling, about half a second.
        let long = ramp(Duration::from_millis(100));
        assert!(long >= Duration::from_millis(400), "{long:?}");
        // 5 ms: six round trips, 30 ms.
        let mid = ramp(Duration::from_millis(5));
        assert!(mid > short && mid < long, "{short:?} {mid:?} {long:?}");
    }

    #[test]
    fn a_quiet_path_is_probed_again_instead_of_crawled_up() {
        // Everything sent arrives and no queue forms: within 100 ms the
        // rate doubles (additive increase alone would add 25 Mbit/s).
        let c = after_early_exit(100, 0.0, |rate| rate);
        assert!(c.rate() > 2 * mbit(7000), "rate {}", c.rate());
    }

    #[test]
    fn no_probe_with_a_queue_or_when_the_sender_falls_short_of_its_rate() {
        // A queue of a third of the target: the path is full (or shared).
        let c = after_early_exit(500, 5.0, |rate| rate);
        assert!(
            !c.in_startup() && c.rate() < mbit(7200),
            "rate {}",
            c.rate()
        );
        // No queue, but only 80 % of the rate delivered: the sender is the
        // limit (short of CPU); probing would only let the rate run away.
        let c = after_early_exit(500, 0.0, |rate| rate * 8 / 10);
        assert!(
            !c.in_startup() && c.rate() < mbit(7200),
            "rate {}",
            c.rate()
        );
    }

    #[test]
    fn a_resumed_startup_on_a_long_path_grows_a_quarter_a_round_trip() {
        // 100 ms path, a quiet queue after startup: startup resumes, but
        // doubles only every three round trips (the first one doubles
        // every 70 ms).
        let rtt = Duration::from_millis(100);
        let mut c = Fair::new(FairConfig::default());
        let mut t = Instant::now();
        c.on_feedback(t, &sample_on(rtt, 10.0, mbit(900)));
        assert!(!c.in_startup());
        let step = Duration::from_millis(5);
        let mut waited = Duration::ZERO;
        while !c.in_startup() {
            t += step;
            waited += step;
            c.on_feedback(t, &sample_on(rtt, 0.0, c.rate()));
            assert!(waited < Duration::from_secs(5), "never resumed");
        }
        let from = c.rate();
        for _ in 0..60 {
            t += step;
            c.on_feedback(t, &sample_on(rtt, 0.0, c.rate()));
        }
        let grown = c.rate() as f64 / from as f64;
        assert!((1.8..2.2).contains(&grown), "grew {grown:.2}x in 300 ms");
    }
}
