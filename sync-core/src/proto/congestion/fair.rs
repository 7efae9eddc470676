//! The fair controller: delay-based, loss-tolerant, FASP-like rate control.
//!
//! Owns the sending rate when the path is shared. The signal is *queueing
//! delay* — the one-way delay above the lowest ever seen — not loss, so
//! random loss on a long path (radio, a dirty fibre) does not slow us down
//! as it does TCP; only a queue that grows past
//! [`FairConfig::target_queue_delay`] does. The design follows the delay
//! target of LEDBAT (RFC 6817) and Swift (SIGCOMM '20), with rate rather
//! than window as the actuator, as FASP does:
//!
//! * **Startup**: the rate doubles every [`FairConfig::startup_doubling`] of
//!   time — not per RTT, and not only when feedback arrives — so a
//!   1 Gbit/s path is filled within about half a second whatever the RTT.
//!   On a short path it doubles faster, every [`STARTUP_RTTS`] round trips
//!   but not faster than [`FairConfig::min_startup_doubling`]: there the
//!   delay signal comes back within a fraction of a doubling, so the
//!   overshoot stays as small as on a long path, and a 10 Gbit/s LAN or
//!   loopback is filled in tens of milliseconds instead of half a second.
//!   Without any feedback the rate grows at most [`MAX_BLIND_GROWTH`]-fold. Startup ends when queueing delay reaches half
//!   the target (or loss is heavy); the rate then drops to what the receiver
//!   actually received, which is the bottleneck rate once a queue exists.
//! * **Steady state**: below the target, the rate grows *additively*
//!   ([`FairConfig::additive_increase`] per second, scaled by how far below
//!   target we are). Above it, the rate is pinned to the delivered rate less
//!   a drain term that empties the excess queue over a few RTTs; the
//!   delivered rate is shared among flows in proportion to their rates, so
//!   this is a multiplicative decrease. Additive increase with
//!   multiplicative decrease is what makes two flows converge to equal
//!   shares (Chiu & Jain 1989); pinning to the delivered rate instead of
//!   cutting blindly keeps the bottleneck busy and the queue near target.
//! * **Refill**: when the queue has drained below half the target, the rate
//!   is brought straight back to (nearly) what the bottleneck delivered the
//!   last time it was busy, instead of climbing there additively: crawling
//!   back would waste the link on long paths.
//! * **Re-probe**: when the queue stays below a quarter of the target for
//!   four startup doublings (`REPROBE_DOUBLINGS`) while the path delivers all
//!   that is sent, startup resumes from the current rate: the path has room
//!   (startup ended on a scheduling hiccup, or a competing flow left) that
//!   additive increase would take seconds to find on a fast path. A
//!   re-probe into a buffer known to be shallower than the target ends at
//!   its first overflow (as a steady state's shallow-buffer cut does):
//!   the delay rule that ends a startup never fires there. So does the
//!   first startup, once its loss at such a full buffer is more than
//!   random loss explains ([`OVERFLOW_LOSS`]).
//! * **Prediction**: the queueing delay measured is a round trip old, so
//!   the steady state steers by the delay extrapolated one round trip along
//!   its recent trend (a Smith predictor). Without it the drain overshoots
//!   and the refill comes after the queue ran dry, both by an amount that
//!   grows with the RTT: on a 200 ms path the link idled for tens of
//!   milliseconds after every drain.
//! * **Loss** only counts when it is heavy ([`FairConfig::heavy_loss`]), or
//!   when it comes with a *full shallow buffer*: the queue never got to the
//!   target but sits at the highest delay ever seen, so the buffer is
//!   smaller than the target and overflow is the only congestion signal
//!   left. Random loss with a queue below its maximum is ignored. Heavy
//!   loss while a deep buffer sits at its deepest is that buffer
//!   overflowing (a startup overshoot): the delivered rate is then taken
//!   as it arrived, not corrected for that loss, and the flow's own
//!   overshoot is drained by delay alone.
//!
//! The default target is **15 ms** of queueing delay: big enough to ride
//! out scheduling jitter of end hosts and keep the bottleneck busy, small
//! enough that interactive traffic sharing the link stays usable.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{mbit, Controller, PathSample};

/// Configuration of [`Fair`]. Rates are datagram bytes per second.
#[derive(Clone, Debug, PartialEq)]
pub struct FairConfig {
    /// Queueing delay the controller steers towards.
    pub target_queue_delay: Duration,
    /// Rate before any feedback arrives.
    pub initial_rate: u64,
    /// Floor: never slower than this.
    pub min_rate: u64,
    /// Ceiling: never faster than this (the user's bandwidth cap).
    pub max_rate: u64,
    /// Startup doubles the rate once per this much time (at most).
    pub startup_doubling: Duration,
    /// Startup on a short path doubles no faster than once per this.
    pub min_startup_doubling: Duration,
    /// Steady-state growth in bytes/s per second, with no queue.
    pub additive_increase: u64,
    /// The excess queue is drained over at least this long (and at least
    /// two base RTTs), so the bottleneck never runs dry while draining.
    pub min_drain_time: Duration,
    /// Loss fraction treated as congestion even without queueing delay.
    pub heavy_loss: f64,
}

impl Default for FairConfig {
    fn default() -> Self {
        FairConfig {
            target_queue_delay: Duration::from_millis(15),
            initial_rate: mbit(100),
            min_rate: mbit(1),
            max_rate: mbit(100_000),
            startup_doubling: Duration::from_millis(70),
            min_startup_doubling: Duration::from_millis(10),
            additive_increase: mbit(250),
            min_drain_time: Duration::from_millis(100),
            heavy_loss: 0.25,
        }
    }
}

/// Most of the delivered rate the drain term may take away at once.
const MAX_DRAIN: f64 = 0.2;
/// Share of the last busy delivery rate the refill restores.
const REFILL_SHARE: f64 = 1.0;
/// Most the startup rate may grow past the rate at the last feedback, so a
/// silent receiver (or a very long path) does not let it run away. The
/// first feedback takes a round trip: 4 held a 200 ms path at 400 Mbit/s
/// for the last 65 ms before it, 8 lets it double on until then.
pub const MAX_BLIND_GROWTH: f64 = 8.0;
/// Loss that counts as congestion when the bottleneck buffer is shallow.
const SHALLOW_LOSS: f64 = 0.02;
/// Multiplicative decrease on shallow-buffer overflow.
const SHALLOW_CUT: f64 = 0.9;
/// Startup doubles at most once per this many round trips. Fewer made the
/// simulated 10 ms path (a buffer of one BDP, shallower than the queueing
/// target) overflow at the end of startup: 2 round trips plus a feedback
/// interval cost it 6 points of goodput, 6 round trips gained 0.4.
pub const STARTUP_RTTS: u32 = 6;
/// Loss that, with the queue at its deepest, is taken for the queue
/// overflowing (random loss behind the bottleneck stays well below it).
const OVERFLOW_LOSS: f64 = 0.1;
/// Shortest stretch over which the queue's trend is measured. Shorter ones
/// follow the jumps of a shallow buffer's sawtooth and of a newcomer's
/// startup: at 10 ms, two flows on a 40 ms path shared 0.78 : 1 instead of
/// 0.88 : 1.
const MIN_TREND_WINDOW: Duration = Duration::from_millis(50);
/// Steady state goes back to startup when the queue stayed below a quarter
/// of the target, with everything sent delivered, for this many startup
/// doubling periods (and at least two round trips): the path has room that
/// additive increase would take seconds to find. On loopback a receiver
/// descheduled for a few milliseconds ends startup at a fraction of what the
/// path carries, and 250 Mbit/s per second then needs half a minute to
/// climb from 7 to 15 Gbit/s. A shared bottleneck keeps its queue near the
/// target. In the simulator it never fires on the 100 and 200 ms paths
/// (their figures did not move); on the 10 ms path it does after drains,
/// and gained 0.6-0.8 points there.
const REPROBE_DOUBLINGS: u32 = 4;
/// Share of the sending rate the path must deliver for the quiet to count:
/// a sender that cannot reach its own rate learns nothing from probing.
const REPROBE_DELIVERED: f64 = 0.9;
/// Longest gap between two feedback samples that still counts as elapsed
/// time; longer gaps (a stalled control channel) must not produce a jump.
const MAX_STEP: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Startup,
    Steady,
}

/// Controller state.
#[derive(Debug)]
pub struct Fair {
    config: FairConfig,
    rate: f64,
    phase: Phase,
    last_update: Option<Instant>,
    last_loss_cut: Option<Instant>,
    /// Delivered rate last measured while the bottleneck queue was busy.
    busy_rate: f64,
    /// Highest queueing delay seen (seconds): a buffer's depth, if it
    /// overflowed below the target.
    max_q: f64,
    /// Startup: when growth was last applied, and the rate at the last
    /// feedback (the base of the blind-growth cap).
    last_tick: Option<Instant>,
    rate_at_feedback: f64,
    /// Startup's doubling period for this path, once a round trip is known.
    doubling: Duration,
    /// Until then, loss is the bottleneck's own queue overflowing: what
    /// arrived is what it forwarded, with no correction for loss.
    overflow_until: Option<Instant>,
    /// From the end of startup until its queue first drained below target.
    draining_startup: bool,
    /// Recent (time, measured queueing delay), for its trend.
    queue_history: VecDeque<(Instant, f64)>,
    /// Steady state: since when the queue has stayed nearly empty while
    /// the path delivered all we sent (see [`REPROBE_DOUBLINGS`]).
    quiet_since: Option<Instant>,
    /// A startup has been resumed since the first one ended.
    reprobed: bool,
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
        let doubling = config.startup_doubling;
        Fair {
            rate: config.initial_rate.clamp(min, max) as f64,
            config,
            phase: Phase::Startup,
            last_update: None,
            last_loss_cut: None,
            busy_rate: 0.0,
            max_q: 0.0,
            last_tick: None,
            rate_at_feedback: 0.0,
            doubling,
            overflow_until: None,
            queue_history: VecDeque::new(),
            draining_startup: false,
            quiet_since: None,
            reprobed: false,
        }
    }

    /// Startup growth for the time since the last tick.
    fn grow(&mut self, now: Instant) {
        let dt = match self.last_tick {
            Some(t) if now > t => (now - t).min(MAX_STEP).as_secs_f64(),
            Some(_) => return,
            None => 0.0,
        };
        self.last_tick = Some(now);
        if self.rate_at_feedback == 0.0 {
            self.rate_at_feedback = self.rate;
        }
        let doubling = self.doubling.as_secs_f64().max(1e-3);
        self.rate = (self.rate * (std::f64::consts::LN_2 * dt / doubling).exp())
            .min(self.rate_at_feedback * MAX_BLIND_GROWTH)
            .clamp(self.config.min_rate as f64, self.config.max_rate as f64);
    }

    /// The queueing delay a round trip from now, extrapolated from the
    /// measured one (which is a round trip old) along its trend over the
    /// last half RTT: a Smith predictor (Smith 1957) for the feedback's
    /// dead time. Steering by the measurement alone reacts an RTT late —
    /// past the target on the way up, and on the way down refilling only
    /// after the queue ran dry and the link idled — by an amount that grows
    /// with the RTT. The trend is the shared queue's, the same for every
    /// flow through it, so flows predict alike and still converge (a
    /// prediction from a flow's own sending rate against its own share
    /// would not: each would see a different queue).
    fn predict_queue(&mut self, now: Instant, q: f64, srtt: Duration) -> f64 {
        let window = (srtt / 2).max(MIN_TREND_WINDOW);
        self.queue_history.push_back((now, q));
        while self.queue_history.len() > 2 && self.queue_history[1].0 + window <= now {
            self.queue_history.pop_front();
        }
        let (t0, q0) = self.queue_history[0];
        let dt = now.saturating_duration_since(t0).as_secs_f64();
        if self.phase == Phase::Startup || dt < 1e-3 {
            return q;
        }
        let slope = (q - q0) / dt;
        (q + slope * srtt.as_secs_f64()).clamp(0.0, self.max_q.max(q))
    }

    /// Tracks the quiet stretches of the steady state; true when one has
    /// lasted long enough to probe the path again ([`REPROBE_DOUBLINGS`]).
    /// `quiet_since` is the stretch so far (taken out of `self` by the
    /// caller, so that any other branch of the control law ends it).
    fn path_has_room(
        &mut self,
        now: Instant,
        quiet_since: Option<Instant>,
        quiet: bool,
        delivered: f64,
        srtt: Duration,
    ) -> bool {
        if !quiet || delivered < REPROBE_DELIVERED * self.rate {
            return false;
        }
        let since = quiet_since.unwrap_or(now);
        let needed = (self.doubling * REPROBE_DOUBLINGS).max(2 * srtt);
        if now.saturating_duration_since(since) < needed {
            self.quiet_since = Some(since);
            return false;
        }
        true
    }

    /// True while still in startup (for tests and stats).
    pub fn in_startup(&self) -> bool {
        self.phase == Phase::Startup
    }
}

impl Controller for Fair {
    fn on_feedback(&mut self, now: Instant, s: &PathSample) {
        let dt = match self.last_update {
            Some(t) if now > t => (now - t).min(MAX_STEP).as_secs_f64(),
            Some(_) => 0.0,
            None => 0.0,
        };
        self.last_update = Some(now.max(self.last_update.unwrap_or(now)));
        let quiet_since = self.quiet_since.take();
        let target = self.config.target_queue_delay.as_secs_f64().max(1e-4);
        let q = s.queue_delay.map_or(0.0, |d| d.as_secs_f64());
        let loss = if s.loss.is_finite() {
            s.loss.clamp(0.0, 1.0)
        } else {
            0.0
        };
        // Heavy loss while a deep queue (one that held more than the
        // target) sits at its deepest is that queue overflowing in front
        // of the bottleneck — a startup overshoot — not loss behind it: the
        // bottleneck forwarded what arrived, and correcting for that loss
        // would overstate its rate (and the refill would overflow it
        // again). The loss estimate lags, so the doubt lasts an RTT.
        if loss > OVERFLOW_LOSS && self.max_q >= target && q >= 0.9 * self.max_q {
            self.overflow_until = Some(now + s.srtt);
        }
        let overflowing = self.overflow_until.is_some_and(|t| now < t);
        let delivered = if overflowing {
            s.arrival_rate as f64
        } else {
            s.delivery_rate as f64
        };

        // Loss as congestion, at most once per RTT: heavy loss (a policer,
        // no buffer at all), or loss while a buffer shallower than the
        // target sits at its deepest (overflow is the only signal left).
        if !s.srtt.is_zero() {
            self.doubling = (s.srtt * STARTUP_RTTS)
                .min(self.config.startup_doubling)
                .max(self.config.min_startup_doubling);
        }
        let rtt = s.srtt.max(Duration::from_millis(10));
        let may_cut = self
            .last_loss_cut
            .is_none_or(|t| now.saturating_duration_since(t) >= rtt);
        self.max_q = self.max_q.max(q);
        let shallow_full = self.max_q < target && self.max_q > 0.0 && q >= 0.8 * self.max_q;
        // The overflow of this flow's own startup is drained by the delay
        // rule below; cutting for its loss as well would empty the queue
        // and idle the link. (Another flow's overshoot still cuts, which
        // is what makes room for a newcomer.)
        if loss > self.config.heavy_loss && may_cut && !(overflowing && self.draining_startup) {
            self.rate *= 1.0 - loss / 2.0;
            self.busy_rate = self.busy_rate.min(self.rate);
            self.phase = Phase::Steady;
            self.last_loss_cut = Some(now);
        } else if shallow_full
            && loss > SHALLOW_LOSS
            && (self.phase == Phase::Steady || self.reprobed || loss > OVERFLOW_LOSS)
        {
            // Startup into a buffer shallower than the target ends here
            // too: the delay rule that ends a startup never fires there,
            // and on a short path startup would double on until loss
            // turned heavy. A re-probe (the buffer's depth known) ends at
            // its first overflow; the first startup once the loss is more
            // than random loss explains (OVERFLOW_LOSS).
            self.phase = Phase::Steady;
            if may_cut {
                let base = if delivered > 0.0 {
                    self.rate.min(delivered)
                } else {
                    self.rate
                };
                self.rate = base * SHALLOW_CUT;
                // The refill must not undo the cut: what was delivered
                // through an overflowing buffer overstates its capacity.
                self.busy_rate = self.busy_rate.min(self.rate);
                self.last_loss_cut = Some(now);
            }
        } else {
            // Control acts on the predicted queue; the delivered rate is
            // a bottleneck rate only if the queue was busy when measured.
            let q_obs = q;
            let q = self.predict_queue(now, q, s.srtt);
            if q_obs < target {
                self.draining_startup = false;
            }
            match self.phase {
                Phase::Startup if q >= target / 2.0 => {
                    self.phase = Phase::Steady;
                    self.draining_startup = true;
                    if delivered > 0.0 {
                        self.rate = self.rate.min(delivered);
                        self.busy_rate = delivered;
                    }
                }
                Phase::Startup => {
                    self.grow(now);
                    self.rate_at_feedback = self.rate;
                }
                Phase::Steady if q > target => {
                    if q_obs >= target / 2.0 && delivered > 0.0 {
                        self.busy_rate = delivered;
                    }
                    if self.busy_rate > 0.0 {
                        let drain_time = self
                            .config
                            .min_drain_time
                            .max(2 * s.min_rtt)
                            .as_secs_f64()
                            .max(1e-3);
                        let drain = ((q - target) / drain_time).min(MAX_DRAIN);
                        self.rate = self.rate.min(self.busy_rate * (1.0 - drain));
                    }
                }
                Phase::Steady => {
                    if q_obs >= target / 2.0 && delivered > 0.0 {
                        self.busy_rate = delivered;
                    }
                    let quiet = q.max(q_obs) < target / 4.0;
                    if self.path_has_room(now, quiet_since, quiet, delivered, s.srtt) {
                        self.phase = Phase::Startup;
                        self.reprobed = true;
                        self.rate_at_feedback = self.rate;
                        self.last_tick = Some(now);
                    }
                    if q < target / 2.0 {
                        self.rate = self.rate.max(self.busy_rate * REFILL_SHARE);
                    }
                    let headroom = 1.0 - q / target;
                    self.rate += self.config.additive_increase as f64 * dt * headroom;
                }
            }
        }
        self.rate = self
            .rate
            .clamp(self.config.min_rate as f64, self.config.max_rate as f64);
    }

    fn on_tick(&mut self, now: Instant) {
        if self.phase == Phase::Startup {
            self.grow(now);
        }
    }

    fn rate(&self) -> u64 {
        self.rate as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(q_ms: f64, delivery: u64, loss: f64) -> PathSample {
        PathSample {
            queue_delay: Some(Duration::from_secs_f64(q_ms / 1000.0)),
            delivery_rate: delivery,
            arrival_rate: delivery,
            loss,
            srtt: Duration::from_millis(100),
            min_rtt: Duration::from_millis(100),
        }
    }

    /// [`sample`] on a path of round trip `rtt`.
    fn sample_on(rtt: Duration, q_ms: f64, delivery: u64) -> PathSample {
        PathSample {
            srtt: rtt,
            min_rtt: rtt,
            ..sample(q_ms, delivery, 0.0)
        }
    }

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
    fn random_loss_without_queue_does_not_slow_it_down() {
        let mut c = Fair::new(FairConfig::default());
        let t0 = Instant::now();
        let before = c.rate();
        for i in 1..50 {
            c.on_feedback(
                t0 + Duration::from_millis(10 * i),
                &sample(1.0, c.rate(), 0.10),
            );
        }
        assert!(c.rate() > before);
    }

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
    fn heavy_loss_backs_off_once_per_rtt() {
        let mut c = Fair::new(FairConfig::default());
        let t0 = Instant::now();
        c.on_feedback(t0, &sample(0.0, 0, 0.5));
        let after_one = c.rate();
        assert!(after_one < mbit(100));
        c.on_feedback(t0 + Duration::from_millis(10), &sample(0.0, 0, 0.5));
        assert!(c.rate() >= after_one, "second cut within one RTT");
    }

    /// A sample on a 200 ms path: queue, arrivals, loss (and what the
    /// arrivals were corrected to for that loss).
    fn long_path(q_ms: f64, arrival: u64, loss: f64) -> PathSample {
        let rtt = Duration::from_millis(200);
        PathSample {
            queue_delay: Some(Duration::from_secs_f64(q_ms / 1000.0)),
            delivery_rate: (arrival as f64 / (1.0 - loss)) as u64,
            arrival_rate: arrival,
            loss,
            srtt: rtt,
            min_rtt: rtt,
        }
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
    fn an_overflowing_deep_queue_does_not_inflate_the_bottleneck_rate() {
        // Startup overshoot into a 200 ms buffer: a fifth of the datagrams
        // are lost to its overflow. What arrived is what the bottleneck
        // forwarded; corrected for that loss, it would overstate the
        // bottleneck's rate by a quarter, and the refill would overflow the
        // queue again.
        let bottleneck = mbit(1000);
        let mut c = Fair::new(FairConfig::default());
        let mut t = Instant::now();
        let step = Duration::from_millis(5);
        c.on_feedback(t, &long_path(10.0, bottleneck, 0.0));
        for _ in 0..20 {
            t += step;
            c.on_feedback(t, &long_path(200.0, bottleneck, 0.2));
        }
        for _ in 0..20 {
            t += step;
            c.on_feedback(t, &long_path(0.0, bottleneck * 9 / 10, 0.0));
            assert!(
                c.rate() as f64 <= 1.05 * bottleneck as f64,
                "refilled to {} over a bottleneck of {bottleneck}",
                c.rate()
            );
        }
    }

    /// A loopback-like path (200 µs RTT): startup ended at `rate` Mbit/s
    /// (a receiver descheduled for a few milliseconds looks like a queue),
    /// then feedback every 5 ms for `ms` with queueing delay `q_ms` and
    /// `delivered(rate)` delivered. Returns the controller.
    fn after_early_exit(ms: u64, q_ms: f64, delivered: impl Fn(u64) -> u64) -> Fair {
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

    #[test]
    fn a_quiet_path_is_probed_again_instead_of_crawled_up() {
        // Everything sent arrives and no queue forms: within 100 ms the
        // rate doubles (additive increase alone would add 25 Mbit/s).
        let c = after_early_exit(100, 0.0, |rate| rate);
        assert!(c.rate() > 2 * mbit(7000), "rate {}", c.rate());
    }

    #[test]
    fn startup_into_a_shallow_buffer_ends_when_it_overflows_not_on_random_loss() {
        // A 1 ms path whose buffer holds 1 ms: the queue sits at its
        // deepest (and far below the target) from the moment it fills.
        let rtt = Duration::from_millis(1);
        let at = |c: &mut Fair, ms: u64, loss: f64, delivered: u64| {
            let s = PathSample {
                loss,
                ..sample_on(rtt, 1.0, delivered)
            };
            c.on_feedback(Instant::now() + Duration::from_millis(ms), &s);
        };
        // Random loss of 5 % (the goodput table's worst) at a full buffer
        // does not end startup: the path may have far more room.
        let mut c = Fair::new(FairConfig::default());
        for ms in 1..=5 {
            at(&mut c, ms, 0.05, mbit(100));
        }
        assert!(c.in_startup());
        // Overflow (more lost than random loss explains) ends it, at what
        // the path delivered, long before loss is heavy.
        let mut c = Fair::new(FairConfig::default());
        at(&mut c, 1, 0.0, mbit(100));
        at(&mut c, 2, 0.15, mbit(90));
        assert!(!c.in_startup());
        assert!(c.rate() <= mbit(90), "rate {}", c.rate());
    }

    #[test]
    fn a_reprobe_into_a_shallow_buffer_ends_at_its_first_overflow() {
        // A 1 ms path whose buffer holds 1 ms of queue, far below the
        // target: the first startup ends in heavy loss as that buffer
        // overflows, the queue then stays empty, and the path is probed
        // again.
        let rtt = Duration::from_millis(1);
        let mut c = Fair::new(FairConfig::default());
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let overflow = PathSample {
            loss: 0.5,
            ..sample_on(rtt, 1.0, mbit(9000))
        };
        c.on_feedback(at(0), &overflow);
        assert!(!c.in_startup());
        let mut t = 0;
        while !c.in_startup() {
            t += 5;
            c.on_feedback(at(t), &sample_on(rtt, 0.0, c.rate()));
            assert!(t < 500, "never probed again");
        }
        // The buffer overflows at its depth: 1 ms of queue and 5 % loss,
        // the most it ever held. The probe must stop there and back off,
        // not double on until loss is heavy.
        let full = |delivered| PathSample {
            loss: 0.05,
            ..sample_on(rtt, 1.0, delivered)
        };
        t += 5;
        c.on_feedback(at(t), &full(mbit(10_000)));
        assert!(!c.in_startup(), "still probing into overflow");
        assert!(c.rate() < mbit(10_000), "rate {}", c.rate());
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
}
