//! Loss as a congestion signal, in the few cases where it is one.
//!
//! Owns the loss rules of the fair controller: the cut for heavy loss (a
//! policer, no buffer at all), the cut for a *full shallow buffer* (one
//! shallower than the flow's target, whose overflow is the only signal it
//! gives), and the test for a deep buffer overflowing at its deepest, when
//! what arrived is what the bottleneck forwarded and correcting it for the
//! loss would overstate the bottleneck. Random loss with a queue below its
//! deepest is never a signal here; nothing in this file grows the rate.

use std::time::Instant;

use super::{Fair, Feedback, Mode};
use crate::proto::congestion::PathSample;

/// The clocks of the loss rules.
#[derive(Debug, Default)]
pub(super) struct LossState {
    /// When loss last cut the rate (at most once per round trip).
    last_cut: Option<Instant>,
    /// Until then, loss is the bottleneck's own queue overflowing: what
    /// arrived is what it forwarded, with no correction for loss.
    overflow_until: Option<Instant>,
}

impl Fair {
    /// The rate the bottleneck delivered to this flow, and whether the loss
    /// is its queue overflowing. Heavy loss while a deep queue (one that
    /// held more than the target) sits at its deepest is that queue
    /// overflowing in front of the bottleneck — a startup overshoot — not
    /// loss behind it: the bottleneck forwarded what arrived, and
    /// correcting for that loss would overstate its rate (and the refill
    /// would overflow it again). The loss estimate lags, so the doubt
    /// lasts an RTT. Reads the deepest queue *before* `q` counts towards it.
    pub(super) fn delivered_rate(
        &mut self,
        now: Instant,
        q: f64,
        loss: f64,
        s: &PathSample,
        target: f64,
    ) -> (f64, bool) {
        let c = &self.config;
        let deepest = self.queue.deepest;
        if loss > c.overflow_loss && deepest >= target && q >= c.overflow_depth * deepest {
            self.loss.overflow_until = Some(now + s.srtt);
        }
        let overflowing = self.loss.overflow_until.is_some_and(|t| now < t);
        let delivered = if overflowing {
            s.arrival_rate as f64
        } else {
            s.delivery_rate as f64
        };
        (delivered, overflowing)
    }

    /// Loss as congestion, at most once per RTT: heavy loss, or loss while
    /// a buffer shallower than the flow's target sits at its deepest. Either
    /// ends a startup. True when loss had the say (the delay rules are then
    /// skipped for this feedback).
    pub(super) fn cut_for_loss(&mut self, f: &Feedback) -> bool {
        let c = &self.config;
        let rtt = f.sample.srtt.max(c.min_loss_cut_interval);
        let may_cut = self
            .loss
            .last_cut
            .is_none_or(|t| f.now.saturating_duration_since(t) >= rtt);
        // The overflow of this flow's own startup is drained by the delay
        // rule; cutting for its loss as well would empty the queue and idle
        // the link. (Another flow's overshoot still cuts, which is what
        // makes room for a newcomer.) Nor while a base-delay probe drains
        // the queue: it has cut deeper than this would, and after startup
        // the loss estimate still carries the startup's overflow.
        let startup_overshoot = matches!(self.mode, Mode::Steady(s) if s.startup_overshoot);
        let own_overflow = (f.overflowing && startup_overshoot) || self.probe.is_some();
        if f.loss > c.heavy_loss && may_cut && !own_overflow {
            self.rate *= 1.0 - f.loss * c.heavy_loss_backoff;
            self.busy_rate = self.busy_rate.min(self.rate);
            self.settle();
            self.loss.last_cut = Some(f.now);
            return true;
        }
        if !self.shallow_buffer_overflows(f) {
            return false;
        }
        self.settle();
        if may_cut {
            let base = if f.delivered > 0.0 {
                self.rate.min(f.delivered)
            } else {
                self.rate
            };
            self.rate = base * self.config.shallow_cut;
            // The refill must not undo the cut: what was delivered through
            // an overflowing buffer overstates its capacity.
            self.busy_rate = self.busy_rate.min(self.rate);
            self.loss.last_cut = Some(f.now);
        }
        true
    }

    /// A buffer shallower than this flow's own target (not only the
    /// configured one: a buffer between the two never lets the queue reach
    /// the flow's target, so delay never drains it either) is full and
    /// losing more than random loss. A startup into such a buffer ends
    /// here too, as the delay rule that ends a startup never fires there:
    /// a resumed one (the buffer's depth known) at its first overflow, the
    /// first one once the loss is more than random loss explains.
    fn shallow_buffer_overflows(&self, f: &Feedback) -> bool {
        let c = &self.config;
        let deepest = self.queue.deepest;
        let shallow = deepest < self.flow_target(f.target);
        let full = shallow && deepest > 0.0 && f.q >= c.shallow_full_depth * deepest;
        let ends_mode = match self.mode {
            Mode::Startup(s) => s.resumed || f.loss > c.overflow_loss,
            Mode::Steady(_) => true,
        };
        full && f.loss > c.shallow_loss && ends_mode
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::testing::{long_path, sample, sample_on};
    use super::super::{Fair, FairConfig};
    use crate::proto::congestion::{mbit, Controller, PathSample};

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
    fn heavy_loss_backs_off_once_per_rtt() {
        let mut c = Fair::new(FairConfig::default());
        let t0 = Instant::now();
        c.on_feedback(t0, &sample(0.0, 0, 0.5));
        let after_one = c.rate();
        assert!(after_one < mbit(100));
        c.on_feedback(t0 + Duration::from_millis(10), &sample(0.0, 0, 0.5));
        assert!(c.rate() >= after_one, "second cut within one RTT");
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
    fn a_buffer_below_a_slow_flows_own_target_is_shallow() {
        // A 95 Mbit/s link whose buffer holds 17 ms: deeper than the
        // configured target (15 ms), shallower than the target of a flow
        // at this rate (18 ms). Sending faster than the link fills the
        // buffer and the excess is lost; slower, the queue stands a little
        // lower. Loss at the buffer's depth is the only congestion signal
        // there, and the flow must back off for it. When the shallow test
        // used the configured target, such a flow climbed until its loss
        // was heavy (25 %), sending 127 Mbit/s for good, and a newcomer
        // behind its full queue got 3 of the 95 Mbit/s.
        let rtt = Duration::from_millis(20);
        let link = mbit(95) as f64;
        let buffer = link * 0.017;
        let mut c = Fair::new(FairConfig::default());
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        c.on_feedback(at(0), &sample_on(rtt, 10.0, mbit(95)));
        assert!(!c.in_startup());
        // A fluid queue, fed every 5 ms (the feedback's own delay left out).
        let mut queue = buffer;
        let (mut sum, mut n) = (0.0, 0.0);
        for ms in (5..8000).step_by(5) {
            let sent = c.rate() as f64 * 0.005;
            let room = buffer - queue + link * 0.005;
            let lost = (sent - room).max(0.0);
            queue = (queue + sent - lost - link * 0.005).clamp(0.0, buffer);
            let delivered = if queue > 0.0 { link } else { sent / 0.005 };
            let s = PathSample {
                loss: lost / sent,
                ..sample_on(rtt, queue / link * 1e3, delivered as u64)
            };
            c.on_feedback(at(ms), &s);
            if ms >= 4000 {
                sum += c.rate() as f64;
                n += 1.0;
            }
        }
        let mean = sum / n / link;
        assert!(mean < 1.05, "sent {mean:.2} times the link rate");
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
}
