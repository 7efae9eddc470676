//! [`FairConfig`]: every tunable of the fair controller, in one place.
//!
//! Owns the numbers, never the logic that uses them. Each field says in one
//! line what it trades and, where one did, which figure chose it; how those
//! figures were found is told in `bench/transport/NOTES.md` ("The fair
//! controller's tunables: how they were found"). The first nine fields are
//! the controller's main settings (the session sets the rates among them
//! from the user's options); the rest are protocol tuning, grouped by the
//! file that reads them. The `const`s at the end are numerical guards, not
//! tunables.

use std::time::Duration;

use super::super::mbit;

/// Startup doubles at most once per this many round trips: fewer
/// overflowed the simulated 10 ms path's one-BDP buffer at the end of
/// startup (2 round trips cost it 6 points of goodput, 6 gained 0.4). Also
/// sizes the receiver's rate window.
pub const STARTUP_RTTS: u32 = 6;

/// Most the startup rate may grow past the rate at the last feedback, so a
/// silent receiver or a very long path does not let it run away: 4 held a
/// 200 ms path at 400 Mbit/s for the 65 ms before its first feedback.
pub const MAX_BLIND_GROWTH: f64 = 8.0;

/// Configuration of [`Fair`](super::Fair). Rates are datagram bytes per
/// second; shares are fractions (of the target, of a rate).
#[derive(Clone, Debug, PartialEq)]
pub struct FairConfig {
    /// Queueing delay steered towards, for a flow at
    /// [`flow_target_anchor`](Self::flow_target_anchor): rides out end-host
    /// scheduling jitter and keeps the bottleneck busy, yet leaves
    /// interactive traffic on the link usable.
    pub target_queue_delay: Duration,
    /// Rate before any feedback arrives.
    pub initial_rate: u64,
    /// Floor: never slower than this.
    pub min_rate: u64,
    /// Ceiling: never faster than this (the user's bandwidth cap).
    pub max_rate: u64,
    /// Startup doubles the rate once per this much time (at most): a
    /// 1 Gbit/s path is full in about half a second whatever the RTT.
    pub startup_doubling: Duration,
    /// Startup on a short path doubles no faster than once per this: a
    /// 10 Gbit/s LAN or loopback fills in tens of milliseconds.
    pub min_startup_doubling: Duration,
    /// Steady-state growth in bytes/s per second, with no queue (less on
    /// paths longer than about 110 ms, see
    /// [`ai_reference_rate`](Self::ai_reference_rate)).
    pub additive_increase: u64,
    /// The excess queue is drained over at least this long (and
    /// [`drain_rtts`](Self::drain_rtts) base RTTs), so the bottleneck never
    /// runs dry while draining.
    pub min_drain_time: Duration,
    /// Loss fraction treated as congestion even without queueing delay (a
    /// policer, or no buffer at all).
    pub heavy_loss: f64,

    // Startup and its resumption (startup.rs).
    /// See [`STARTUP_RTTS`].
    pub startup_rtts: u32,
    /// See [`MAX_BLIND_GROWTH`].
    pub max_blind_growth: f64,
    /// Startup ends when the queue reaches this share of the target: the
    /// reading is a round trip old, and the overshoot still in flight
    /// lands in the other half.
    pub startup_exit: f64,
    /// Startup resumes after the queue stayed quiet for this many doubling
    /// periods: on loopback, additive increase alone took half a minute
    /// from 7 to 15 Gbit/s; the simulated 10 ms path gained 0.6-0.8 points.
    pub reprobe_doublings: u32,
    /// ... and for at least this many round trips (a queue reading is a
    /// round trip old).
    pub reprobe_min_rtts: u32,
    /// A queue below this share of the target is quiet: a shared
    /// bottleneck holds its queue near the target, so only an unshared
    /// path with room reads this low.
    pub reprobe_quiet: f64,
    /// Share of the sending rate the path must deliver for the quiet to
    /// count: a sender short of CPU learns nothing from probing.
    pub reprobe_delivered: f64,
    /// A resumed startup doubles no faster than once per this many round
    /// trips (26 % a round trip): at 70 ms doublings, a 9.6 Gbit/s flow on
    /// a 10 Gbit/s, 100 ms path reached 36 Gbit/s before its first reading.
    pub reprobe_rtts: u32,

    // The queue estimate (queue_estimate.rs).
    /// Shortest stretch over which the queue's trend is measured: at 10 ms
    /// it followed a shallow buffer's sawtooth, and a 40 ms pair shared
    /// 0.78 : 1 instead of 0.88 : 1.
    pub min_trend_window: Duration,

    // Loss (loss.rs).
    /// Loss cuts come at most once per round trip, and never closer than
    /// this on short paths, whose loss estimate lags by several feedback
    /// intervals (set in the first build; no figure recorded).
    pub min_loss_cut_interval: Duration,
    /// Heavy loss cuts the rate by this share of the loss fraction (half:
    /// 50 % loss takes a quarter off), once per round trip.
    pub heavy_loss_backoff: f64,
    /// Loss above this, with the queue at its deepest, is the queue
    /// overflowing: random loss behind the bottleneck stays well below
    /// (the goodput table's worst is 5 %).
    pub overflow_loss: f64,
    /// A queue within this share of the deepest ever seen is at its
    /// deepest, for the overflow test above (readings jitter a little).
    pub overflow_depth: f64,
    /// Loss that counts as congestion while a shallow buffer is full: low,
    /// as overflow is the only signal such a buffer gives (set in the
    /// first build; no figure recorded).
    pub shallow_loss: f64,
    /// Multiplicative decrease on shallow-buffer overflow: gentle, as such
    /// a buffer overflows again every sawtooth (first build; no figure).
    pub shallow_cut: f64,
    /// A shallow buffer's queue within this share of its deepest counts as
    /// full (set in the first build; no figure recorded).
    pub shallow_full_depth: f64,

    // The steady state's drain, refill and growth (steady.rs).
    /// Most of the delivered rate the drain term may take away at once, so
    /// a queue far above target is drained without idling the link.
    pub max_drain: f64,
    /// The excess queue is drained over at least this many base RTTs (and
    /// [`min_drain_time`](Self::min_drain_time)).
    pub drain_rtts: u32,
    /// A drain ends, and the rate is refilled to the busy rate, when the
    /// queue falls below this share of the flow's target.
    pub refill_below: f64,
    /// A delivered rate measured with the queue above this share of the
    /// target is the bottleneck's (busy) rate, what a refill restores.
    pub busy_queue: f64,
    /// Caps the additive increase at `ai_reference_rate * target / rtt^2`,
    /// so a round trip of blind growth overshoots by at most the target on
    /// a path of this rate; set by the 1 Gbit/s, 100 ms pair (100 Mbit/s
    /// here left it at 536 : 414).
    pub ai_reference_rate: u64,
    /// Above [`high_rate_from`](Self::high_rate_from) a flow also grows by
    /// this share of its rate per second, so a newcomer at 10 Gbit/s
    /// catches up in seconds; twice this overshot (4.3 : 5.2 Gbit/s).
    pub high_rate_growth: f64,
    /// Where that growth starts: from 1 Gbit/s the 10 ms, 1 % loss
    /// transfers took 9.06 s instead of 8.82, from 1.1 Gbit/s 8.86 s.
    pub high_rate_from: u64,
    /// That growth is capped at this share of `target / rtt^2` (it
    /// overshoots by about `growth * rtt^2` of queue); five times this
    /// split the 1 Gbit/s, 100 ms pair 633 : 314.
    pub high_rate_overshoot: f64,
    /// That growth counts only while this share of the rate is delivered
    /// (a sender short of CPU would run away from what it can send).
    pub high_rate_delivered: f64,
    /// Longest gap between two feedback samples that counts as elapsed
    /// time: a stalled control channel must not produce a jump.
    pub max_step: Duration,

    // Base-delay probes (base_probe.rs).
    /// A probe sends at this share of the busy rate until the queue is
    /// empty (LEDBAT++'s slowdown halves too).
    pub probe_share: f64,
    /// Queueing delay, as a share of the target, that counts as empty.
    pub probe_empty: f64,
    /// A fall of the lowest one-way delay smaller than this is jitter, not
    /// a base that was wrong.
    pub probe_fall: Duration,
    /// A probe gives up after this many round trips plus
    /// [`probe_grace`](Self::probe_grace): another sender's queue that
    /// never drains.
    pub probe_rtts: u32,
    /// See [`probe_rtts`](Self::probe_rtts).
    pub probe_grace: Duration,
    /// Steady state probes again once the queue has not read empty for
    /// this long: 5 s left the 1 Gbit/s, 20 ms pair at 319 : 628.
    pub probe_every: Duration,
    /// ... and for this many round trips: the probe's cost grows with the
    /// round trip, so its period does too.
    pub probe_every_rtts: u32,
    /// A periodic probe holds its low rate for this many times the time the
    /// predicted queue takes to drain, so a base wrong by a third of the
    /// queue still sees it empty (1.0 and 1.25 share today's paths too).
    pub probe_hold: f64,
    /// Added to that hold.
    pub probe_hold_margin: Duration,
    /// A periodic probe holds for at least this many round trips, up to
    /// [`probe_min_hold_cap`](Self::probe_min_hold_cap): shorter, an 11 ms
    /// newcomer behind another's queue never saw it empty (30.9 of 95).
    pub probe_min_hold_rtts: u32,
    /// The cap on that floor: a round trip at half rate on a long path
    /// costs more than it tells (goodput cells moved by at most 0.2 points).
    pub probe_min_hold_cap: Duration,
    /// After its first round trip, a probe refills to no less than this
    /// share of that round trip's busiest delivery: following it down, a
    /// 202 ms newcomer fell from 34 to 1 Mbit/s (one of the survey's pairs
    /// outside 20 %, against four with a half).
    pub probe_floor: f64,
    /// After a refill, falls of the base delay are still watched for this
    /// many round trips (a fall restarts the drain).
    pub probe_watch_rtts: u32,

    // Per-flow targets and yielding (flow_share.rs).
    /// The rate at which a flow's target is the configured one.
    pub flow_target_anchor: u64,
    /// A flow's target rises by this share per halving of its rate (2 ms at
    /// 15 ms), so at one queue the faster flow drains and the slower grows.
    pub flow_target_slope: f64,
    /// Lowest flow target, as a share of the target (7.5 ms at 13 Gbit/s).
    pub flow_target_min: f64,
    /// Highest flow target, as a share of the target: 18 ms at 350 Mbit/s
    /// and below, within a one-BDP buffer on a 20 ms, 100 Mbit/s path.
    pub flow_target_max: f64,
    /// A flow losing share gives up this much more of its rate at a drain
    /// (CUBIC's fast convergence), so a newcomer grows in a few drains.
    pub yield_share: f64,
    /// A drain's busy rate below this share of the last one's is losing
    /// share.
    pub yield_shrink: f64,
    /// Only a flow below this share of the most it ever delivered yields:
    /// 5 % random loss made a lone flow yield every few seconds.
    pub yield_below_max: f64,
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

            startup_rtts: STARTUP_RTTS,
            max_blind_growth: MAX_BLIND_GROWTH,
            startup_exit: 0.5,
            reprobe_doublings: 4,
            reprobe_min_rtts: 2,
            reprobe_quiet: 0.25,
            reprobe_delivered: 0.9,
            reprobe_rtts: 3,

            min_trend_window: Duration::from_millis(50),

            min_loss_cut_interval: Duration::from_millis(10),
            heavy_loss_backoff: 0.5,
            overflow_loss: 0.1,
            overflow_depth: 0.9,
            shallow_loss: 0.02,
            shallow_cut: 0.9,
            shallow_full_depth: 0.8,

            max_drain: 0.2,
            drain_rtts: 2,
            refill_below: 0.5,
            busy_queue: 0.5,
            ai_reference_rate: mbit(200),
            high_rate_growth: 1.0,
            high_rate_from: mbit(1100),
            high_rate_overshoot: 0.2,
            high_rate_delivered: 0.9,
            max_step: Duration::from_millis(100),

            probe_share: 0.5,
            probe_empty: 0.1,
            probe_fall: Duration::from_micros(500),
            probe_rtts: 10,
            probe_grace: Duration::from_millis(500),
            probe_every: Duration::from_secs(3),
            probe_every_rtts: 25,
            probe_hold: 1.5,
            probe_hold_margin: Duration::from_millis(5),
            probe_min_hold_rtts: 2,
            probe_min_hold_cap: Duration::from_millis(40),
            probe_floor: 0.25,
            probe_watch_rtts: 2,

            flow_target_anchor: mbit(1000),
            flow_target_slope: 2.0 / 15.0,
            flow_target_min: 0.5,
            flow_target_max: 1.2,
            yield_share: 0.2,
            yield_shrink: 0.995,
            yield_below_max: 0.9,
        }
    }
}

/// Guard: a target of zero would divide by zero; 0.1 ms is below any
/// queue a host can measure.
pub(super) const MIN_TARGET_SECS: f64 = 1e-4;
/// Guard: shortest doubling period, drain time, and trend span (seconds),
/// against zero round trips and repeated timestamps.
pub(super) const MIN_SPAN_SECS: f64 = 1e-3;
/// Guard: shortest round trip a probe's clocks use (loopback reads 0).
pub(super) const PROBE_MIN_RTT: Duration = Duration::from_millis(1);
