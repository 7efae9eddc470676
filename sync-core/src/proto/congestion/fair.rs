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
//!   last time it was busy, instead of climbing there additively: the drain
//!   reacts to delay measured an RTT late, so it always overshoots a little,
//!   and crawling back would waste the link on long paths.
//! * **Loss** only counts when it is heavy ([`FairConfig::heavy_loss`]), or
//!   when it comes with a *full shallow buffer*: the queue never got to the
//!   target but sits at the highest delay ever seen, so the buffer is
//!   smaller than the target and overflow is the only congestion signal
//!   left. Random loss with a queue below its maximum is ignored.
//!
//! The default target is **15 ms** of queueing delay: big enough to ride
//! out scheduling jitter of end hosts and keep the bottleneck busy, small
//! enough that interactive traffic sharing the link stays usable.

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
    /// Startup doubles the rate once per this much time.
    pub startup_doubling: Duration,
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
            max_rate: mbit(10_000),
            startup_doubling: Duration::from_millis(70),
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
/// silent receiver (or a very long path) does not let it run away.
pub const MAX_BLIND_GROWTH: f64 = 4.0;
/// Loss that counts as congestion when the bottleneck buffer is shallow.
const SHALLOW_LOSS: f64 = 0.02;
/// Multiplicative decrease on shallow-buffer overflow.
const SHALLOW_CUT: f64 = 0.9;
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
        let doubling = self.config.startup_doubling.as_secs_f64().max(1e-3);
        self.rate = (self.rate * (std::f64::consts::LN_2 * dt / doubling).exp())
            .min(self.rate_at_feedback * MAX_BLIND_GROWTH)
            .clamp(self.config.min_rate as f64, self.config.max_rate as f64);
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
        let target = self.config.target_queue_delay.as_secs_f64().max(1e-4);
        let q = s.queue_delay.map_or(0.0, |d| d.as_secs_f64());
        let delivered = s.delivery_rate as f64;
        let loss = if s.loss.is_finite() {
            s.loss.clamp(0.0, 1.0)
        } else {
            0.0
        };

        // Loss as congestion, at most once per RTT: heavy loss (a policer,
        // no buffer at all), or loss while a buffer shallower than the
        // target sits at its deepest (overflow is the only signal left).
        let rtt = s.srtt.max(Duration::from_millis(10));
        let may_cut = self
            .last_loss_cut
            .is_none_or(|t| now.saturating_duration_since(t) >= rtt);
        self.max_q = self.max_q.max(q);
        let shallow_full = self.max_q < target && self.max_q > 0.0 && q >= 0.8 * self.max_q;
        if loss > self.config.heavy_loss && may_cut {
            self.rate *= 1.0 - loss / 2.0;
            self.busy_rate = self.busy_rate.min(self.rate);
            self.phase = Phase::Steady;
            self.last_loss_cut = Some(now);
        } else if shallow_full && loss > SHALLOW_LOSS && self.phase == Phase::Steady {
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
            match self.phase {
                Phase::Startup if q >= target / 2.0 => {
                    self.phase = Phase::Steady;
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
                    if delivered > 0.0 {
                        self.busy_rate = delivered;
                        let drain_time = self
                            .config
                            .min_drain_time
                            .max(2 * s.min_rtt)
                            .as_secs_f64()
                            .max(1e-3);
                        let drain = ((q - target) / drain_time).min(MAX_DRAIN);
                        self.rate = self.rate.min(delivered * (1.0 - drain));
                    }
                }
                Phase::Steady => {
                    if q >= target / 2.0 && delivered > 0.0 {
                        self.busy_rate = delivered;
                    } else if q < target / 2.0 {
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
            loss,
            srtt: Duration::from_millis(100),
            min_rtt: Duration::from_millis(100),
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
}
