//! The fair controller: delay-based, loss-tolerant, FASP-like rate control.
//!
//! Owns the sending rate when the path is shared; never sends, never reads
//! a clock (time is a parameter). The signal is *queueing delay* — the
//! one-way delay above the lowest ever seen — not loss, so random loss on a
//! long path (radio, a dirty fibre) does not slow us down as it does TCP;
//! only a queue that grows past [`FairConfig::target_queue_delay`] does.
//! The design follows the delay target of LEDBAT (RFC 6817) and Swift
//! (SIGCOMM '20), with rate rather than window as the actuator, as FASP
//! does. The controller is in one of two modes (`Mode`):
//!
//! * **Startup** (`startup.rs`): the rate doubles every
//!   [`FairConfig::startup_doubling`] of time — not per RTT, and not only
//!   when feedback arrives — so a 1 Gbit/s path is filled within about half
//!   a second whatever the RTT. On a short path it doubles faster, every
//!   [`STARTUP_RTTS`] round trips but not faster than
//!   [`FairConfig::min_startup_doubling`]: there the delay signal comes back
//!   within a fraction of a doubling, so the overshoot stays as small as on
//!   a long path. Without any feedback the rate grows at most
//!   [`MAX_BLIND_GROWTH`]-fold. Startup ends when queueing delay reaches
//!   half the target (or loss is heavy); the rate then drops to what the
//!   receiver actually received, which is the bottleneck rate once a queue
//!   exists. When the steady state's queue stays nearly empty for a while
//!   although the path delivers all that is sent, startup *resumes* from
//!   the current rate, doubling no faster than every
//!   [`FairConfig::reprobe_rtts`] round trips: the path has room that
//!   additive increase would take seconds to find on a fast path.
//! * **Steady state** (`steady.rs`): below the flow's target the rate grows
//!   *additively*, scaled by how far below target we are; above it, the
//!   rate is pinned to the delivered rate less a drain term that empties
//!   the excess queue over a few RTTs. The delivered rate is shared among
//!   flows in proportion to their rates, so this is a multiplicative
//!   decrease; additive increase with multiplicative decrease is what makes
//!   two flows converge to equal shares (Chiu & Jain 1989), and pinning to
//!   the delivered rate instead of cutting blindly keeps the bottleneck
//!   busy. When the queue has drained below half the target the rate is
//!   brought straight back (*refill*) to what the bottleneck delivered the
//!   last time it was busy: crawling back would waste long paths.
//!
//! Beside the modes, each concept in its own file:
//!
//! * `queue_estimate.rs`: the queue measured is a round trip old, so the
//!   steady state steers by the delay extrapolated one round trip along its
//!   recent trend (a Smith predictor). Without it the drain overshoots and
//!   the refill comes after the queue ran dry: on a 200 ms path the link
//!   idled for tens of milliseconds after every drain.
//! * `base_probe.rs`: a flow that starts behind another's standing queue
//!   takes part of that queue for the path's base delay, then holds the
//!   real queue above the other's target and starves it (9 : 86 Mbit/s on
//!   a 20 ms, 100 Mbit/s path). So once after startup (LEDBAT++'s initial
//!   slowdown), and again whenever the queue has not read empty for
//!   [`FairConfig::probe_every`], a flow sends at half its rate until the
//!   queue has drained; flows through one bottleneck see the same queue
//!   empty, so their probes fall into step and drain it together.
//! * `flow_share.rs`: with one target for all, any split of the link that
//!   holds the queue at the target is at rest. A flow's target is lower the
//!   faster it sends, so at any one queue the faster flow drains and the
//!   slower grows; and a flow that delivers less at each drain than at the
//!   last gives up a fifth more, as CUBIC's fast convergence does.
//! * `loss.rs`: loss only counts when it is heavy
//!   ([`FairConfig::heavy_loss`]), or when it comes with a *full shallow
//!   buffer*: the queue never got to the flow's own target but sits at the
//!   deepest ever seen, so overflow is the only congestion signal left.
//!   Heavy loss while a deep buffer sits at its deepest is that buffer
//!   overflowing (a startup overshoot): the delivered rate is then taken as
//!   it arrived, not corrected for that loss.
//! * `config.rs`: every tunable, with the reason for its value.
//!
//! The default target is **15 ms** of queueing delay for a flow sending 1
//! Gbit/s; slower flows hold a little more, up to 18 ms at 350 Mbit/s and
//! below; faster ones less, 2 ms per doubling, down to 7.5 ms at 13 Gbit/s.

mod base_probe;
mod config;
mod flow_share;
mod loss;
mod queue_estimate;
mod startup;
mod steady;
#[cfg(test)]
mod testing;

use std::time::{Duration, Instant};

use super::{Controller, PathSample};
use base_probe::BaseProbe;
use config::MIN_TARGET_SECS;
pub use config::{FairConfig, MAX_BLIND_GROWTH, STARTUP_RTTS};
use flow_share::FlowShare;
use loss::LossState;
use queue_estimate::QueueEstimate;
use startup::Startup;
use steady::Steady;

/// What the controller is doing; the data each mode keeps lives in it.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Doubling the rate until the queue (or loss) says the path is full.
    Startup(Startup),
    /// Holding the queue near the flow's target.
    Steady(Steady),
}

/// Controller state. Besides the mode, the fields are estimates and clocks
/// that carry over from one mode to the other.
#[derive(Debug)]
pub struct Fair {
    config: FairConfig,
    rate: f64,
    mode: Mode,
    /// Delivered rate last measured while the bottleneck queue was busy:
    /// what a drain pins to and a refill restores.
    busy_rate: f64,
    /// When feedback was last applied (the additive increase's clock).
    last_feedback: Option<Instant>,
    /// The latest smoothed round trip (paces a resumed startup), and
    /// startup's doubling period for this path.
    srtt: Duration,
    doubling: Duration,
    queue: QueueEstimate,
    loss: LossState,
    /// Set while a base-delay probe runs (it can outlast a mode: one that
    /// is refilled and only watching may see startup resume).
    probe: Option<BaseProbe>,
    /// Last time the queue read (nearly) empty, or a probe began: the
    /// periodic probe's clock.
    queue_emptied: Option<Instant>,
    share: FlowShare,
}

impl Fair {
    pub fn new(config: FairConfig) -> Self {
        let min = config.min_rate.max(1);
        let max = config.max_rate.max(min);
        let config = FairConfig {
            min_rate: min,
            max_rate: max,
            ..config
        };
        let rate = config.initial_rate.clamp(min, max) as f64;
        Fair {
            rate,
            mode: Mode::Startup(Startup::first(rate)),
            busy_rate: 0.0,
            last_feedback: None,
            srtt: Duration::ZERO,
            doubling: config.startup_doubling,
            queue: QueueEstimate::new(),
            loss: LossState::default(),
            probe: None,
            queue_emptied: None,
            share: FlowShare::default(),
            config,
        }
    }

    /// True while in startup, first or resumed (for tests and stats).
    pub fn in_startup(&self) -> bool {
        matches!(self.mode, Mode::Startup(_))
    }

    /// Seconds since the last feedback (at most
    /// [`FairConfig::max_step`]; none for a repeated or earlier time).
    fn feedback_step(&mut self, now: Instant) -> f64 {
        let dt = match self.last_feedback {
            Some(t) if now > t => (now - t).min(self.config.max_step).as_secs_f64(),
            _ => 0.0,
        };
        self.last_feedback = Some(now.max(self.last_feedback.unwrap_or(now)));
        dt
    }

    /// Reads a feedback message: its queue (the last reading if it has
    /// none), its loss, and what the bottleneck delivered.
    fn read<'a>(&mut self, now: Instant, s: &'a PathSample, dt: f64) -> Feedback<'a> {
        let target = self
            .config
            .target_queue_delay
            .as_secs_f64()
            .max(MIN_TARGET_SECS);
        let q = self.queue.observe(s);
        let loss = if s.loss.is_finite() {
            s.loss.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let (delivered, overflowing) = self.delivered_rate(now, q, loss, s, target);
        Feedback {
            now,
            sample: s,
            dt,
            target,
            q,
            loss,
            delivered,
            overflowing,
        }
    }

    /// Leaves startup for the steady state, if still in it (loss ends a
    /// startup as it is; a steady state keeps its drain).
    fn settle(&mut self) {
        if self.in_startup() {
            self.mode = Mode::Steady(Steady::new(false));
        }
    }

    /// The control law by queueing delay, when loss did not set the rate:
    /// startup's growth and exit, or (unless a base-delay probe holds the
    /// rate) the steady state's drain, refill and growth.
    fn steer_by_delay(&mut self, f: &Feedback, quiet_since: Option<Instant>) {
        let startup = self.in_startup();
        let window = self.config.min_trend_window;
        let q = self
            .queue
            .predict(f.now, f.q, f.sample.srtt, window, !startup);
        if let Mode::Steady(steady) = &mut self.mode {
            if f.q < f.target {
                steady.startup_overshoot = false;
            }
        }
        if startup {
            self.startup_step(f, q);
        } else if !self.probe_base(f) {
            self.steer(f, q, quiet_since);
        }
    }
}

/// One feedback message, as the control law reads it.
struct Feedback<'a> {
    now: Instant,
    sample: &'a PathSample,
    /// Seconds since the previous one (see [`Fair::feedback_step`]).
    dt: f64,
    /// The configured target queueing delay (seconds, at least 0.1 ms).
    target: f64,
    /// Queueing delay measured (seconds), a round trip old.
    q: f64,
    /// Loss fraction, 0.0..=1.0.
    loss: f64,
    /// What the bottleneck delivered to this flow (bytes/s).
    delivered: f64,
    /// The loss is the bottleneck's own queue overflowing (`loss.rs`).
    overflowing: bool,
}

impl Controller for Fair {
    fn on_feedback(&mut self, now: Instant, s: &PathSample) {
        let dt = self.feedback_step(now);
        // Taken before the mode changes: the probe after the first startup
        // is scheduled by the feedback that ends it, and a quiet stretch
        // lasts only if the control law below continues it.
        let first_startup = matches!(self.mode, Mode::Startup(st) if !st.resumed);
        let quiet_since = steady::take_quiet_since(&mut self.mode);
        // The overflow test in `read` compares with the deepest queue
        // before this one counts towards it.
        let f = self.read(now, s, dt);
        self.observe_rtt(s.srtt);
        self.queue.record_depth(f.q);
        if !self.cut_for_loss(&f) {
            self.steer_by_delay(&f, quiet_since);
        }
        self.schedule_probe(now, f.q, s.srtt, first_startup);
        self.rate = self
            .rate
            .clamp(self.config.min_rate as f64, self.config.max_rate as f64);
    }

    fn on_tick(&mut self, now: Instant) {
        if self.in_startup() {
            self.grow(now);
        }
    }

    fn rate(&self) -> u64 {
        self.rate as u64
    }
}

#[cfg(test)]
mod tests {
    use super::steady::Drain;
    use super::testing::{past_startup, sample};
    use super::*;

    #[test]
    fn startup_ends_in_the_steady_state_draining_its_own_overshoot() {
        let (c, _) = super::testing::through_startup(crate::proto::congestion::mbit(300));
        let Mode::Steady(steady) = c.mode else {
            panic!("still in startup");
        };
        assert!(steady.startup_overshoot);
        assert!(matches!(steady.drain, Drain::Filling { .. }));
    }

    #[test]
    fn a_loss_cut_keeps_the_steady_states_drain() {
        // Draining a queue above target, heavy loss cuts the rate: the
        // drain goes on (a refill needs the queue below half the target).
        let rate = crate::proto::congestion::mbit(300);
        let (mut c, mut t) = past_startup(rate);
        for _ in 0..10 {
            t += Duration::from_millis(5);
            c.on_feedback(t, &sample(25.0, rate, 0.0));
        }
        assert!(matches!(c.mode, Mode::Steady(s) if matches!(s.drain, Drain::Draining)));
        let before = c.rate();
        t += Duration::from_millis(200);
        c.on_feedback(t, &sample(25.0, rate, 0.5));
        assert!(c.rate() < before * 8 / 10, "{} after {before}", c.rate());
        assert!(matches!(c.mode, Mode::Steady(s) if matches!(s.drain, Drain::Draining)));
    }
}
