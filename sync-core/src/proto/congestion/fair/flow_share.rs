//! Per-flow targets and yielding: what moves flows on one bottleneck
//! towards equal shares.
//!
//! Owns the flow's own queueing target (lower the faster it sends, the
//! flow scaling of Swift, SIGCOMM '20) and the yield of a flow losing share
//! (CUBIC's fast convergence), with the busy-rate cap that keeps a yield
//! from being undone by deliveries sent before it. With one target for
//! all, any split of the link that holds the queue at the target is at
//! rest, and only the additive increase moves flows together, which at 1
//! Gbit/s takes tens of seconds; with targets that differ by rate, the
//! queue sits above the faster flow's target and below the slower one's
//! until their rates are equal. It never sets the rate itself: the steady
//! state (`steady.rs`) steers by what it returns.

use std::time::{Duration, Instant};

use super::Fair;

/// The drains' history, for the yield.
#[derive(Debug, Default)]
pub(super) struct FlowShare {
    /// The busy rate when the last drain began, after any yield, and the
    /// highest it has been.
    drain_start_rate: f64,
    max_drain_start_rate: f64,
    /// Until when, and to what, the last yield caps the busy rate.
    yielded: Option<(Instant, f64)>,
}

impl Fair {
    /// This flow's queueing target (seconds) for the configured `target`:
    /// higher the slower it sends, by
    /// [`flow_target_slope`](super::FairConfig::flow_target_slope) of the
    /// target per halving of its rate below
    /// [`flow_target_anchor`](super::FairConfig::flow_target_anchor),
    /// within [`flow_target_min`](super::FairConfig::flow_target_min) ..
    /// [`flow_target_max`](super::FairConfig::flow_target_max) times it.
    pub(super) fn flow_target(&self, target: f64) -> f64 {
        let c = &self.config;
        let halvings = (c.flow_target_anchor as f64 / self.rate.max(1.0)).log2();
        target * (1.0 + c.flow_target_slope * halvings).clamp(c.flow_target_min, c.flow_target_max)
    }

    /// A busy rate measured at `delivered`, capped for a round trip after
    /// a yield: what arrives then was sent before it (at 10 Gbit/s and
    /// 100 ms, those deliveries undid every yield within that round trip).
    pub(super) fn since_yield(&self, now: Instant, delivered: f64) -> f64 {
        match self.share.yielded {
            Some((until, cap)) if now < until => delivered.min(cap),
            _ => delivered,
        }
    }

    /// At the start of a drain: a flow that delivered less than when the
    /// last drain began (after its own yield), and less than
    /// [`yield_below_max`](super::FairConfig::yield_below_max) of the most
    /// it ever did, is losing share to another, and gives up
    /// [`yield_share`](super::FairConfig::yield_share) more of its busy
    /// rate, so that the newcomer's share grows in a few drains instead of
    /// dozens.
    pub(super) fn yield_if_losing_share(&mut self, now: Instant, srtt: Duration) {
        let c = &self.config;
        let share = &mut self.share;
        share.max_drain_start_rate = share.max_drain_start_rate.max(self.busy_rate);
        if self.busy_rate < share.drain_start_rate * c.yield_shrink
            && self.busy_rate < share.max_drain_start_rate * c.yield_below_max
        {
            self.busy_rate *= 1.0 - c.yield_share;
            share.yielded = Some((now + srtt, self.busy_rate));
        }
        share.drain_start_rate = self.busy_rate;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::testing::{past_startup, sample, sample_on};
    use super::super::{Fair, FairConfig, Mode, Steady};
    use crate::proto::congestion::{mbit, Controller};

    #[test]
    fn above_a_gigabit_targets_fall_and_growth_adds_a_share_of_the_rate() {
        let at = |gbit: u64| {
            let mut c = Fair::new(FairConfig::default());
            c.rate = mbit(gbit * 1000) as f64;
            c.flow_target(0.015) * 1e3
        };
        assert!((at(1) - 15.0).abs() < 1e-9);
        // 2 ms less per doubling, down to 7.5 ms.
        assert!((at(4) - 11.0).abs() < 1e-9, "{}", at(4));
        assert!((at(40) - 7.5).abs() < 1e-9, "{}", at(40));

        // Steady state on a 20 ms path with 5 ms of queue: 200 ms of
        // growth from `from_mbit`, the path delivering `share` of the rate.
        let growth = |from_mbit: u64, share: f64| {
            let mut c = Fair::new(FairConfig::default());
            c.mode = Mode::Steady(Steady::new(false));
            c.rate = mbit(from_mbit) as f64;
            let rtt = Duration::from_millis(20);
            let mut t = Instant::now();
            let delivered = |c: &Fair| (c.rate() as f64 * share) as u64;
            c.on_feedback(t, &sample_on(rtt, 5.0, delivered(&c)));
            let start = c.rate();
            for _ in 0..20 {
                t += Duration::from_millis(10);
                c.on_feedback(t, &sample_on(rtt, 5.0, delivered(&c)));
            }
            assert!(!c.in_startup() && c.probe.is_none());
            (c.rate() - start) as f64 * 8e-6
        };
        // 4 Gbit/s, target 11 ms: (250 Mbit/s + 2.9 Gbit/s) per second, at
        // (1 - 5/11) of the way below target, for 0.2 s (a little more as
        // the rate grows).
        let fast = growth(4000, 1.0);
        assert!((340.0..400.0).contains(&fast), "{fast}");
        // The additive increase alone where the path does not carry the
        // rate (the sender short of CPU), and at 1 Gbit/s.
        let short_of_cpu = growth(4000, 0.8);
        assert!((20.0..35.0).contains(&short_of_cpu), "{short_of_cpu}");
        let gigabit = growth(1000, 1.0);
        assert!((30.0..40.0).contains(&gigabit), "{gigabit}");
    }

    #[test]
    fn at_one_queue_the_faster_flow_drains_and_the_slower_one_grows() {
        // Targets: 16.5 ms at 600 Mbit/s, 18 ms at 300 (the most).
        let (mut fast, t) = past_startup(mbit(600));
        let (mut slow, _) = past_startup(mbit(300));
        let (fast0, slow0) = (fast.rate(), slow.rate());
        for i in 1..=40 {
            let t = t + Duration::from_millis(5 * i);
            fast.on_feedback(t, &sample(17.0, mbit(600), 0.0));
            slow.on_feedback(t, &sample(17.0, mbit(300), 0.0));
        }
        assert!(fast.rate() < mbit(600), "{} (from {fast0})", fast.rate());
        assert!(slow.rate() > slow0, "{} (from {slow0})", slow.rate());
        // With one target for both, they would both grow (or both drain).
        let target = FairConfig::default().target_queue_delay.as_secs_f64();
        assert!(fast.flow_target(target) < 0.017 && slow.flow_target(target) > 0.017);
    }

    /// Drain cycles: the queue at 20 ms (above target) then 5 ms (refill),
    /// 250 ms each, with the delivered rate of cycle `i` from
    /// `delivered(i)`; returns the rate at the end of each drain.
    fn drain_cycles(delivered: impl Fn(u64) -> u64) -> Vec<u64> {
        let (mut c, mut t) = past_startup(delivered(0));
        let mut ends = Vec::new();
        for i in 0..8 {
            for q in [20.0, 5.0] {
                for _ in 0..50 {
                    t += Duration::from_millis(5);
                    c.on_feedback(t, &sample(q, delivered(i), 0.0));
                }
                if q > 10.0 {
                    ends.push(c.rate());
                }
            }
        }
        ends
    }

    #[test]
    fn a_flow_losing_share_yields_and_a_lone_flow_does_not() {
        // Alone, its delivered rate wobbling by 1 %: every drain ends near
        // what it delivered.
        let wobble = |i: u64| mbit(950 - 10 * (i % 2));
        for (i, rate) in drain_cycles(wobble).into_iter().enumerate() {
            assert!(rate > wobble(i as u64) * 9 / 10, "cycle {i}: {rate}");
        }
        // Losing 50 Mbit/s a cycle to another flow: once below 90 % of
        // the most it had, it gives up a fifth more at a drain whose
        // start delivered less than the last one's after its yield (every
        // other drain here).
        let losing = |i: u64| mbit(950 - 50 * i);
        let ends = drain_cycles(losing);
        assert!(ends[1] > losing(1) * 9 / 10, "{ends:?}");
        let yields = (2..ends.len())
            .filter(|&i| ends[i] < losing(i as u64) * 8 / 10)
            .count();
        assert!(yields >= 3, "{ends:?}");
    }

    #[test]
    fn a_yield_is_not_undone_by_deliveries_sent_before_it() {
        // Losing share as above, until a drain begins with a yield; the
        // queue then empties within half a round trip, while what arrives
        // still left at the rate before the yield. The refill goes back
        // to the rate given up, not past it.
        let losing = |i: u64| mbit(950 - 50 * i);
        let (mut c, mut t) = past_startup(losing(0));
        let step = Duration::from_millis(5);
        let mut feed = |c: &mut Fair, n: usize, q: f64, delivered: u64| {
            for _ in 0..n {
                t += step;
                c.on_feedback(t, &sample(q, delivered, 0.0));
            }
        };
        for i in 0..8 {
            let before = c.rate();
            feed(&mut c, 1, 20.0, losing(i));
            // A yield takes a fifth off, the drain's first step 2.5 %.
            if c.rate() < before.min(losing(i)) * 85 / 100 {
                feed(&mut c, 9, 20.0, losing(i));
                feed(&mut c, 1, 0.0, losing(i));
                assert!(
                    c.rate() < losing(i) * 85 / 100,
                    "drain {i}: refilled to {} of {}",
                    c.rate(),
                    losing(i)
                );
                return;
            }
            feed(&mut c, 49, 20.0, losing(i));
            feed(&mut c, 50, 5.0, losing(i));
        }
        panic!("no drain began with a yield");
    }
}
