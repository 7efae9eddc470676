//! Virtual-time simulation of whole transfers over a [`link::Link`].
//!
//! Each flow is a pair of endpoints, a [`Sender`](super::sender::Sender)
//! and a [`Receiver`](super::receiver::Receiver), with a delayed
//! (optionally lossy) control channel between them and the receiving
//! driver's duties (writing to a modelled sink, optionally a slow disk
//! with a bounded write queue; verifying chunks; checking every byte),
//! in `flow.rs`. [`Sim`] puts the flows on one simulated bottleneck and moves
//! virtual time with `step` / `drive`, as quinn's tests drive a `Pair`;
//! [`run`] is both in one call. Compiled only for tests, benches and
//! examples (the `sim` feature, which sync-core's own dev-dependency on
//! itself turns on); it never touches a real socket or clock: `Instant`s
//! are only an origin plus virtual offsets.
//!
//! Besides outcomes it records where the time went: a [`Snapshot`] per
//! bucket (rate, queue, in flight, drops, idle link, blocks held) and every
//! datagram of the tail ([`TailEvent`]), which the `sim_diagnostics` bench
//! prints.

mod driver;
mod flow;
pub mod link;
pub mod rng;

pub use driver::Sim;

use std::sync::Arc;
use std::time::Duration;

use super::receiver::{ReceiverConfig, ReceiverStats};
use super::sender::{BlockSource, SenderConfig, SenderStats};
use link::{LinkConfig, LinkStats};
use rng::mix;

/// Stream contents the sim can regenerate from an offset, so a 1 GB run
/// needs no 1 GB buffer: byte `o` is byte `o % 8` of `mix(seed ^ o / 8)`.
#[derive(Clone, Copy, Debug)]
pub struct Pattern(pub u64);

impl Pattern {
    fn word(&self, w: u64) -> [u8; 8] {
        mix(self.0 ^ w).to_le_bytes()
    }

    /// True when `data` is exactly the pattern at `offset`.
    pub fn matches(&self, offset: u64, data: &[u8]) -> bool {
        let mut buf = vec![0u8; data.len()];
        let mut p = *self;
        p.fill(offset, &mut buf);
        buf == data
    }

    fn fill(&mut self, offset: u64, buf: &mut [u8]) {
        let mut o = offset;
        let mut i = 0;
        while i < buf.len() {
            let w = self.word(o / 8);
            let k = (o % 8) as usize;
            let n = (8 - k).min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&w[k..k + n]);
            i += n;
            o += n as u64;
        }
    }
}

impl BlockSource for Pattern {
    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.fill(stream_offset, buf);
        Ok(())
    }
}

/// What a flow carries.
#[derive(Clone, Debug)]
pub enum Payload {
    /// Real bytes, chunks hashed with BLAKE3, spool compared at the end.
    Memory(Arc<Vec<u8>>),
    /// A pattern of this many bytes, checked on every write.
    Pattern { seed: u64, len: u64 },
}

/// A receiver-side disk: a write queue drained at `rate` bytes/s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlowDisk {
    pub rate: u64,
    pub queue_bytes: u64,
}

/// One transfer in the simulation.
#[derive(Clone, Debug)]
pub struct FlowSpec {
    pub payload: Payload,
    /// Chunk length for splitting the payload (the last chunk may be short).
    pub chunk_len: u32,
    pub sender: SenderConfig,
    pub receiver: ReceiverConfig,
    pub start: Duration,
    pub disk: Option<SlowDisk>,
}

impl FlowSpec {
    /// A flow with default configs over `payload`.
    pub fn new(payload: Payload) -> Self {
        FlowSpec {
            payload,
            chunk_len: 1 << 20,
            sender: SenderConfig::default(),
            receiver: ReceiverConfig::default(),
            start: Duration::ZERO,
            disk: None,
        }
    }
}

/// The control channel: reliable and ordered in reality; here it has a
/// delay and may drop feedback, standing in for feedback that arrives too
/// late to matter.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlPath {
    pub delay: Duration,
    pub feedback_loss: f64,
}

/// Whole-simulation settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub link: LinkConfig,
    pub control: ControlPath,
    /// Virtual time after which the run stops, finished or not.
    pub max_time: Duration,
    /// Width of the buckets of [`FlowResult::delivered`].
    pub bucket: Duration,
    /// Blocks whose first copy is dropped before the link (every flow):
    /// models losing exactly the last blocks of a stream.
    pub drop_first_copy: std::ops::Range<u64>,
    /// Real time a tail code costs per byte it covers to encode (sender)
    /// and to decode (receiver). Virtual time has no CPU, so a flow's
    /// completion is moved later by the coding that would still have
    /// been running.
    pub coding_secs_per_byte: (f64, f64),
}

/// Encode and decode time per byte covered, measured by `cargo bench
/// --bench proto_sim` on the bench machine.
pub const MEASURED_CODING_SECS_PER_BYTE: (f64, f64) = (0.17e-9, 0.78e-9);

impl SimConfig {
    /// A run over `link` whose control channel has the link's one-way delay.
    pub fn new(seed: u64, link: LinkConfig) -> Self {
        SimConfig {
            seed,
            control: ControlPath {
                delay: link.delay,
                feedback_loss: 0.0,
            },
            link,
            max_time: Duration::from_secs(120),
            bucket: Duration::from_millis(100),
            drop_first_copy: 0..0,
            coding_secs_per_byte: MEASURED_CODING_SECS_PER_BYTE,
        }
    }
}

/// How one flow went.
#[derive(Clone, Debug)]
pub struct FlowResult {
    /// Virtual time from the flow's start until the receiver had verified
    /// everything.
    pub completed: Option<Duration>,
    pub sender_done: bool,
    pub stream_len: u64,
    /// Every byte written matched the source and every chunk verified.
    pub data_ok: bool,
    /// Chunks that failed verification (possible only without AEAD).
    pub bad_chunks: u64,
    /// Datagrams dropped because the modelled write queue was full.
    pub backpressure_drops: u64,
    /// Datagrams that arrived at the receiver (before the write queue).
    pub arrived: u64,
    /// New payload bytes delivered per [`SimConfig::bucket`].
    pub delivered: Vec<u64>,
    pub sender: SenderStats,
    pub receiver: ReceiverStats,
    /// Time from the flow's start until the sender had sent every block
    /// once: what follows is the tail (repairs and passes only).
    pub last_new: Option<Duration>,
    /// One snapshot per [`SimConfig::bucket`], taken at the first event in
    /// the bucket, while the sender runs: time series of rate, queue,
    /// in-flight datagrams, drops, idle link, blocks held.
    pub timeline: Vec<Snapshot>,
    /// What the tail was spent on: every datagram sent, and every new
    /// block delivered, from the last new block on.
    pub tail: Vec<TailEvent>,
}

/// One datagram of the tail of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailEvent {
    /// Since the flow's start.
    pub at: Duration,
    pub block: u64,
    /// Delivered (a new block at the receiver), or else sent.
    pub delivered: bool,
}

/// The state of one flow and the link at one moment, for time series.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Since the flow's start.
    pub at: Duration,
    pub sender: SenderStats,
    pub receiver: ReceiverStats,
    /// Queueing delay at the bottleneck (all flows).
    pub queue_delay: Duration,
    /// Datagrams on the link past the queue (all flows).
    pub in_flight: usize,
    pub link: LinkStats,
}

impl FlowResult {
    /// Payload bits per second over the flow's lifetime.
    pub fn goodput_bps(&self) -> f64 {
        match self.completed {
            Some(t) if !t.is_zero() => self.stream_len as f64 * 8.0 / t.as_secs_f64(),
            _ => 0.0,
        }
    }
}

/// How the whole run went.
#[derive(Clone, Debug)]
pub struct SimResult {
    pub seed: u64,
    pub flows: Vec<FlowResult>,
    pub link: LinkStats,
    /// Mean and max queueing delay seen by datagrams entering the
    /// bottleneck, per bucket.
    pub queue_delay: Vec<(Duration, Duration)>,
    pub elapsed: Duration,
}

/// Runs the flows to completion (or `max_time`) and reports.
pub fn run(config: &SimConfig, specs: Vec<FlowSpec>) -> SimResult {
    Sim::new(config, specs).drive()
}

impl SimResult {
    /// Panics, naming the run (`what`) and its seed, unless every flow
    /// completed with every byte right and its sender finished.
    pub fn assert_delivered(&self, what: &str) {
        for (i, f) in self.flows.iter().enumerate() {
            assert!(
                f.data_ok && f.completed.is_some() && f.sender_done,
                "{what}: flow {i} failed (seed {}): completed {:?}, data_ok {}, sender {:?}, receiver {:?}, link {:?}",
                self.seed,
                f.completed,
                f.data_ok,
                f.sender,
                f.receiver,
                self.link
            );
        }
    }
}
