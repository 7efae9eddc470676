//! A simulated bottleneck link in virtual time.
//!
//! Owns the path between senders and receivers: a drop-tail queue in front
//! of a serialiser of fixed rate, a propagation delay, and after the
//! bottleneck the impairments — random loss, Gilbert–Elliott burst loss,
//! reordering (extra delay for some datagrams), duplication and corruption.
//! Loss is applied after the bottleneck, so lost datagrams still used link
//! capacity: the harder case for goodput; `loss_before_queue` moves random
//! and burst loss in front of the queue, where netem and our own wanem
//! apply it (lost datagrams then cost no capacity). Every decision comes from one
//! seeded [`Rng`], so a run replays exactly from its seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::rng::Rng;

/// Two-state burst loss (Gilbert 1960, Elliott 1963).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GilbertElliott {
    /// Per-datagram chance of moving from the good to the bad state.
    pub enter_bad: f64,
    /// Per-datagram chance of leaving the bad state.
    pub leave_bad: f64,
    /// Loss probability while bad.
    pub bad_loss: f64,
}

/// The link's knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Bottleneck rate in bytes per second, IP/UDP headers included.
    pub rate: u64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Drop-tail queue capacity in bytes.
    pub queue_bytes: u64,
    /// Bytes added per datagram on the wire (IPv4 + UDP = 28).
    pub overhead: usize,
    pub loss: f64,
    pub burst: Option<GilbertElliott>,
    /// Drop before the queue (as wanem and netem do) instead of after
    /// the bottleneck.
    pub loss_before_queue: bool,
    /// Chance a datagram is held back by `reorder_delay`.
    pub reorder: f64,
    pub reorder_delay: Duration,
    pub duplicate: f64,
    /// Chance one byte of a datagram is flipped.
    pub corrupt: f64,
}

impl LinkConfig {
    /// A clean link of `mbit` Mbit/s, round-trip time `rtt`, and a queue of
    /// one bandwidth-delay product (at least 64 KiB).
    pub fn new(mbit: u64, rtt: Duration) -> Self {
        let rate = mbit * 1_000_000 / 8;
        LinkConfig {
            rate,
            delay: rtt / 2,
            queue_bytes: ((rate as f64 * rtt.as_secs_f64()) as u64).max(64 << 10),
            overhead: 28,
            loss: 0.0,
            burst: None,
            loss_before_queue: false,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(2),
            duplicate: 0.0,
            corrupt: 0.0,
        }
    }
}

/// What happened on the link.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkStats {
    pub sent: u64,
    pub queue_drops: u64,
    pub random_drops: u64,
    pub corrupted: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Time the bottleneck sat idle between datagrams (its unused capacity).
    pub idle: Duration,
}

struct InFlight {
    at: Instant,
    seq: u64,
    flow: usize,
    data: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The link.
pub struct Link {
    pub config: LinkConfig,
    rng: Rng,
    busy_until: Instant,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    bad: bool,
    pub stats: LinkStats,
}

impl Link {
    pub fn new(config: LinkConfig, seed: u64, now: Instant) -> Self {
        Link {
            config,
            rng: Rng::new(seed),
            busy_until: now,
            in_flight: BinaryHeap::new(),
            seq: 0,
            bad: false,
            stats: LinkStats::default(),
        }
    }

    /// Queueing delay a datagram entering now would see.
    pub fn queue_delay(&self, now: Instant) -> Duration {
        self.busy_until.saturating_duration_since(now)
    }

    /// A datagram enters the bottleneck queue.
    pub fn send(&mut self, now: Instant, flow: usize, data: Vec<u8>) {
        self.stats.sent += 1;
        if self.config.loss_before_queue && self.lost() {
            self.stats.random_drops += 1;
            return;
        }
        let wire = (data.len() + self.config.overhead) as f64;
        let queued = self.queue_delay(now).as_secs_f64() * self.config.rate as f64;
        if queued + wire > self.config.queue_bytes as f64 {
            self.stats.queue_drops += 1;
            return;
        }
        let tx = Duration::from_secs_f64(wire / self.config.rate as f64);
        self.stats.idle += now.saturating_duration_since(self.busy_until);
        self.busy_until = self.busy_until.max(now) + tx;
        let mut at = self.busy_until + self.config.delay;

        if !self.config.loss_before_queue && self.lost() {
            self.stats.random_drops += 1;
            return;
        }
        let mut data = data;
        if self.rng.chance(self.config.corrupt) && !data.is_empty() {
            let i = (self.rng.next_u64() % data.len() as u64) as usize;
            data[i] ^= 1 << (self.rng.next_u64() % 8);
            self.stats.corrupted += 1;
        }
        if self.rng.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            let extra = Duration::from_micros(self.rng.next_u64() % 1000);
            self.push(at + extra, flow, data.clone());
        }
        if self.rng.chance(self.config.reorder) {
            self.stats.reordered += 1;
            at += self.config.reorder_delay;
        }
        self.push(at, flow, data);
    }

    /// Datagrams past the queue and not yet arrived.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// When the next datagram arrives, if any is in flight.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.peek().map(|Reverse(p)| p.at)
    }

    /// The next datagram due at or before `now`.
    pub fn arrive(&mut self, now: Instant) -> Option<(usize, Vec<u8>)> {
        if self.next_arrival()? > now {
            return None;
        }
        self.in_flight.pop().map(|Reverse(p)| (p.flow, p.data))
    }

    fn push(&mut self, at: Instant, flow: usize, data: Vec<u8>) {
        self.seq += 1;
        self.in_flight.push(Reverse(InFlight {
            at,
            seq: self.seq,
            flow,
            data,
        }));
    }

    fn lost(&mut self) -> bool {
        if let Some(ge) = self.config.burst {
            self.bad = if self.bad {
                !self.rng.chance(ge.leave_bad)
            } else {
                self.rng.chance(ge.enter_bad)
            };
            if self.bad && self.rng.chance(ge.bad_loss) {
                return true;
            }
        }
        self.rng.chance(self.config.loss)
    }
}
