//! Virtual-time simulation of whole transfers over a [`link::Link`].
//!
//! Owns the event loop that wires [`Sender`]s and [`Receiver`]s to a
//! simulated bottleneck and to a delayed (optionally lossy) control
//! channel, plus the receiver-side "driver" duties: writing deliveries to a
//! modelled sink (optionally a slow disk with a bounded write queue),
//! verifying chunks, and checking every byte. It is public (but hidden) so
//! the `proto_sim` benchmark can print goodput tables; it never touches a
//! real socket or clock — `Instant`s are only an origin plus virtual offsets.
//!
//! Besides outcomes it records where the time went: a [`Snapshot`] per
//! bucket (rate, queue, in flight, drops, idle link, blocks held) and every
//! datagram of the tail ([`TailEvent`]); the `probe` and `tail_survey`
//! diagnostics in the tests print them.

pub mod link;
pub mod rng;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::control::ControlMsg;
use super::crypto::SessionSecret;
use super::layout::{ChunkSpec, Layout, LayoutConfig, IPV4_UDP_OVERHEAD};
use super::receiver::{Event as RxEvent, Receiver, ReceiverConfig, ReceiverStats};
use super::sender::{BlockSource, Event as TxEvent, Sender, SenderConfig, SenderStats};
use link::{Link, LinkConfig, LinkStats};
use rng::{mix, Rng};

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

struct Flow {
    spec: FlowSpec,
    layout: Arc<Layout>,
    sender: Option<Sender>,
    receiver: Receiver,
    source: Source,
    spool: Option<Vec<u8>>,
    bad: Vec<bool>,
    to_receiver: VecDeque<(Instant, Vec<u8>)>,
    to_sender: VecDeque<(Instant, Vec<u8>)>,
    disk_queue: f64,
    disk_written: u64,
    disk_at: Instant,
    first_copy_dropped: Vec<u64>,
    /// Until when the receiver would still be decoding a tail code in
    /// real time, and the decoded bytes accounted for so far.
    decoding_until: Option<Instant>,
    decoded: u64,
    result: FlowResult,
}

impl Flow {
    /// The driver's side of a new block (received or rebuilt): record it
    /// and write or check it. `bucket` is the goodput bucket `now` falls in.
    fn deliver(
        &mut self,
        now: Instant,
        t0: Instant,
        bucket: usize,
        block: u64,
        offset: u64,
        data: &[u8],
    ) {
        if self.result.last_new.is_some() {
            self.result.tail.push(TailEvent {
                at: now.saturating_duration_since(t0 + self.spec.start),
                block,
                delivered: true,
            });
        }
        if self.result.delivered.len() <= bucket {
            self.result.delivered.resize(bucket + 1, 0);
        }
        self.result.delivered[bucket] += data.len() as u64;
        match (&mut self.spool, &self.source) {
            (Some(spool), _) => {
                let o = offset as usize;
                spool[o..o + data.len()].copy_from_slice(data);
            }
            (None, Source::Pattern(p)) => {
                if !p.matches(offset, data) {
                    self.result.data_ok = false;
                    for c in self.layout.block_chunks(block) {
                        self.bad[c] = true;
                    }
                }
            }
            (None, Source::Memory(_)) => {}
        }
        if let Some(dk) = self.spec.disk {
            self.disk_queue += data.len() as f64;
            let fill = (self.disk_queue / dk.queue_bytes as f64 * 1000.0) as u16;
            self.receiver.handle_sink(now, fill, self.disk_written);
        }
    }
    /// The slow disk writes what it could since it was last looked at.
    fn drain_disk(&mut self, rate: u64, now: Instant) {
        let dt = now.saturating_duration_since(self.disk_at).as_secs_f64();
        let drained = (rate as f64 * dt).min(self.disk_queue);
        self.disk_queue -= drained;
        self.disk_written += drained as u64;
        self.disk_at = now;
    }
}

enum Source {
    Memory(Shared),
    Pattern(Pattern),
}

impl Source {
    fn block_source(&mut self) -> &mut dyn BlockSource {
        match self {
            Source::Memory(m) => m,
            Source::Pattern(p) => p,
        }
    }
}

/// In-memory stream shared with the flow spec (no copy of the payload).
struct Shared(Arc<Vec<u8>>);

impl BlockSource for Shared {
    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(stream_offset).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A per-flow session secret derived from the run's seed.
fn secret_for(seed: u64, flow: usize) -> SessionSecret {
    let mut s = [0u8; 32];
    for (i, part) in s.chunks_mut(8).enumerate() {
        part.copy_from_slice(&mix(seed ^ ((flow as u64) << 8) ^ i as u64).to_le_bytes());
    }
    SessionSecret(s)
}

fn chunks_of(payload: &Payload, chunk_len: u32) -> Vec<ChunkSpec> {
    let len = match payload {
        Payload::Memory(v) => v.len() as u64,
        Payload::Pattern { len, .. } => *len,
    };
    let chunk_len = u64::from(chunk_len.max(1));
    let mut out = Vec::new();
    let mut o = 0;
    while o < len {
        let n = chunk_len.min(len - o);
        let hash = match payload {
            Payload::Memory(v) => *blake3::hash(&v[o as usize..(o + n) as usize]).as_bytes(),
            Payload::Pattern { .. } => [0; 32],
        };
        out.push(ChunkSpec {
            len: n as u32,
            hash,
        });
        o += n;
    }
    out
}

/// Runs the flows to completion (or `max_time`) and reports.
pub fn run(config: &SimConfig, specs: Vec<FlowSpec>) -> SimResult {
    let t0 = Instant::now();
    let mut rng = Rng::new(config.seed ^ 0x5EED);
    let mut link = Link::new(config.link.clone(), config.seed, t0);
    let layout_config = LayoutConfig {
        ip_overhead: IPV4_UDP_OVERHEAD,
        ..LayoutConfig::default()
    };
    let mut flows: Vec<Flow> = specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            let layout = Arc::new(
                Layout::new(layout_config, chunks_of(&spec.payload, spec.chunk_len))
                    .expect("sim layout"),
            );
            let secret = secret_for(config.seed, i);
            let start = t0 + spec.start;
            let receiver = Receiver::new(spec.receiver.clone(), layout.clone(), &secret, start);
            let (source, spool) = match &spec.payload {
                Payload::Memory(v) => (Source::Memory(Shared(v.clone())), Some(vec![0u8; v.len()])),
                Payload::Pattern { seed, .. } => (Source::Pattern(Pattern(*seed)), None),
            };
            let sender = Sender::new(spec.sender.clone(), layout.clone(), &secret, start);
            Flow {
                bad: vec![false; layout.chunk_count()],
                result: FlowResult {
                    completed: None,
                    sender_done: false,
                    stream_len: layout.stream_len(),
                    data_ok: true,
                    bad_chunks: 0,
                    backpressure_drops: 0,
                    arrived: 0,
                    delivered: Vec::new(),
                    sender: SenderStats::default(),
                    receiver: ReceiverStats::default(),
                    last_new: None,
                    timeline: Vec::new(),
                    tail: Vec::new(),
                },
                spec,
                layout,
                sender: Some(sender),
                receiver,
                source,
                spool,
                to_receiver: VecDeque::new(),
                to_sender: VecDeque::new(),
                disk_queue: 0.0,
                disk_written: 0,
                disk_at: start,
                first_copy_dropped: Vec::new(),
                decoding_until: None,
                decoded: 0,
            }
        })
        .collect();

    let mut buf = vec![0u8; super::layout::MAX_DATAGRAM];
    // Where arriving blocks are decrypted, as the real driver does it
    // (`handle_datagram_into`, into its write batch).
    let mut plain = vec![0u8; super::layout::MAX_DATAGRAM];
    let mut queue_delay: Vec<(Duration, Duration, u64)> = Vec::new();
    let mut now = t0;
    let end = t0 + config.max_time;
    let bucket_of = |t: Instant| {
        (t.saturating_duration_since(t0).as_nanos() / config.bucket.as_nanos().max(1)) as usize
    };

    while now < end
        && flows
            .iter()
            .any(|f| f.result.completed.is_none() || !f.result.sender_done)
    {
        let mut progress = false;
        for (i, f) in flows.iter_mut().enumerate() {
            let start = t0 + f.spec.start;
            if now < start {
                continue;
            }
            // Sender side.
            if let Some(s) = f.sender.as_mut() {
                let since = now.saturating_duration_since(start);
                let bucket = |d: Duration| d.as_nanos() / config.bucket.as_nanos().max(1);
                if f.result
                    .timeline
                    .last()
                    .is_none_or(|l| bucket(l.at) < bucket(since))
                {
                    f.result.timeline.push(Snapshot {
                        at: since,
                        sender: s.stats(),
                        receiver: f.receiver.stats(),
                        queue_delay: link.queue_delay(now),
                        in_flight: link.in_flight(),
                        link: link.stats.clone(),
                    });
                }
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
                while let Some(len) = s
                    .poll_transmit(now, f.source.block_source(), &mut buf)
                    .expect("sim source never fails")
                {
                    let q = link.queue_delay(now);
                    let b = bucket_of(now);
                    if queue_delay.len() <= b {
                        queue_delay.resize(b + 1, (Duration::ZERO, Duration::ZERO, 0));
                    }
                    let e = &mut queue_delay[b];
                    e.0 += q;
                    e.1 = e.1.max(q);
                    e.2 += 1;
                    progress = true;
                    let decoded = super::wire::Header::decode(&buf[..len]);
                    if let Some(block) = decoded.ok().and_then(|h| h.block()) {
                        // New blocks go out in order: the last one's first
                        // copy ends the stream's first pass.
                        if block + 1 == f.layout.block_count() && f.result.last_new.is_none() {
                            f.result.last_new = Some(now.saturating_duration_since(start));
                        }
                        if f.result.last_new.is_some() {
                            f.result.tail.push(TailEvent {
                                at: now.saturating_duration_since(start),
                                block,
                                delivered: false,
                            });
                        }
                        if config.drop_first_copy.contains(&block)
                            && !f.first_copy_dropped.contains(&block)
                        {
                            f.first_copy_dropped.push(block);
                            continue;
                        }
                    }
                    link.send(now, i, buf[..len].to_vec());
                }
                while let Some(msg) = s.poll_control(now) {
                    let bytes = msg.encode().expect("sender messages encode");
                    f.to_receiver.push_back((now + config.control.delay, bytes));
                }
                while let Some(ev) = s.poll_event() {
                    match ev {
                        TxEvent::Complete | TxEvent::TimedOut => f.result.sender_done = true,
                    }
                }
                if s.is_done() {
                    f.result.sender = s.stats();
                    f.result.sender_done = true;
                    f.sender = None;
                }
            }
            // Control channel, both ways.
            while f.to_receiver.front().is_some_and(|(t, _)| *t <= now) {
                if let Some((_, bytes)) = f.to_receiver.pop_front() {
                    let msg = ControlMsg::decode(&bytes).expect("control decodes");
                    f.receiver.handle_control(now, msg);
                    progress = true;
                }
            }
            while f.to_sender.front().is_some_and(|(t, _)| *t <= now) {
                if let Some((_, bytes)) = f.to_sender.pop_front() {
                    let msg = ControlMsg::decode(&bytes).expect("control decodes");
                    if let Some(s) = f.sender.as_mut() {
                        s.handle_control(now, msg);
                        while let Some(ev) = s.poll_event() {
                            match ev {
                                TxEvent::Complete | TxEvent::TimedOut => {
                                    f.result.sender_done = true
                                }
                            }
                        }
                    }
                    progress = true;
                }
            }
        }

        // Datagrams arriving now.
        while let Some((i, data)) = link.arrive(now) {
            progress = true;
            let f = &mut flows[i];
            f.result.arrived += 1;
            // Slow disk: drain the write queue, drop if it cannot take more.
            if let Some(d) = f.spec.disk {
                f.drain_disk(d.rate, now);
                if f.disk_queue + data.len() as f64 > d.queue_bytes as f64 {
                    f.result.backpressure_drops += 1;
                    continue;
                }
            }
            if let Ok(Some(p)) = f.receiver.handle_datagram_into(now, &data, &mut plain) {
                let bytes = &plain[..p.len];
                f.deliver(now, t0, bucket_of(now), p.block, p.stream_offset, bytes);
            }
            let mut rebuilt = false;
            while let Some(r) = f.receiver.poll_recovered() {
                f.deliver(now, t0, bucket_of(now), r.block, r.stream_offset, &r.data);
                rebuilt = true;
            }
            if rebuilt {
                // Decoding takes real time the virtual clock does not
                // have; it starts once earlier decoding is done.
                let decoded = f.receiver.stats().decoded_bytes;
                let secs = (decoded - f.decoded) as f64 * config.coding_secs_per_byte.1;
                f.decoded = decoded;
                let from = f.decoding_until.map_or(now, |t| t.max(now));
                f.decoding_until = Some(from + Duration::from_secs_f64(secs));
            }
            drain_receiver_events(f, now, t0, config.coding_secs_per_byte.0);
        }

        // Receiver timers and feedback.
        for f in flows.iter_mut() {
            if now < t0 + f.spec.start {
                continue;
            }
            if f.receiver.poll_timeout().is_some_and(|t| t <= now) {
                f.receiver.handle_timeout(now);
            }
            if let Some(d) = f.spec.disk {
                f.drain_disk(d.rate, now);
                let fill = (f.disk_queue / d.queue_bytes as f64 * 1000.0) as u16;
                f.receiver.handle_sink(now, fill, f.disk_written);
            }
            while let Some(msg) = f.receiver.poll_feedback(now) {
                progress = true;
                if matches!(msg, ControlMsg::Feedback(_))
                    && rng.chance(config.control.feedback_loss)
                {
                    continue;
                }
                let bytes = msg.encode().expect("feedback encodes");
                f.to_sender.push_back((now + config.control.delay, bytes));
            }
            drain_receiver_events(f, now, t0, config.coding_secs_per_byte.0);
        }

        // Advance virtual time to the next thing that can happen.
        let mut next = end;
        if let Some(t) = link.next_arrival() {
            next = next.min(t);
        }
        for f in &flows {
            let start = t0 + f.spec.start;
            if now < start {
                next = next.min(start);
                continue;
            }
            let timers = [
                f.sender.as_ref().and_then(|s| s.poll_timeout()),
                f.receiver.poll_timeout(),
                f.to_receiver.front().map(|&(t, _)| t),
                f.to_sender.front().map(|&(t, _)| t),
            ];
            for t in timers.into_iter().flatten() {
                next = next.min(t);
            }
        }
        now = if next > now || progress {
            next.max(now)
        } else {
            now + Duration::from_micros(1)
        };
    }

    // Datagrams still on the link when every transfer is done reach their
    // receiver too, so its counters account for every datagram the link
    // delivered (a corrupted one among them must be dropped like the rest).
    if flows.iter().all(|f| f.result.completed.is_some()) {
        while let Some(t) = link.next_arrival() {
            let Some((i, mut data)) = link.arrive(t) else {
                break;
            };
            let f = &mut flows[i];
            f.result.arrived += 1;
            let _ = f.receiver.handle_datagram(t, &mut data);
        }
    }
    for f in flows.iter_mut() {
        if let Some(s) = &f.sender {
            f.result.sender = s.stats();
        }
        f.result.receiver = f.receiver.stats();
        if let (Some(spool), Source::Memory(src)) = (&f.spool, &f.source) {
            if spool[..] != src.0[..] {
                f.result.data_ok = false;
            }
        }
        if f.result.completed.is_none() {
            f.result.data_ok = false;
        }
    }
    SimResult {
        seed: config.seed,
        flows: flows.into_iter().map(|f| f.result).collect(),
        link: link.stats.clone(),
        queue_delay: queue_delay
            .into_iter()
            .map(|(sum, max, n)| {
                (
                    if n == 0 {
                        Duration::ZERO
                    } else {
                        sum / n as u32
                    },
                    max,
                )
            })
            .collect(),
        elapsed: now.saturating_duration_since(t0),
    }
}

/// The driver's side of receiver events: verify completed chunks.
fn drain_receiver_events(f: &mut Flow, now: Instant, t0: Instant, encode_secs_per_byte: f64) {
    while let Some(ev) = f.receiver.poll_event() {
        match ev {
            RxEvent::ChunkComplete(c) => {
                let ok = match &f.spool {
                    Some(spool) => {
                        let r = f.layout.chunk_range(c);
                        let got = blake3::hash(&spool[r.start as usize..r.end as usize]);
                        *got.as_bytes() == f.layout.chunks()[c].hash
                    }
                    None => !std::mem::replace(&mut f.bad[c], false),
                };
                if !ok {
                    f.result.bad_chunks += 1;
                }
                f.receiver.handle_chunk_verified(now, c, ok);
            }
            RxEvent::Complete => {
                // The real time coding would have taken: decoding still
                // running, and the encoding of the last code, which
                // delayed its parity (earlier codes are encoded while the
                // pacer waits anyway).
                let last_coded = f
                    .sender
                    .as_ref()
                    .map_or(f.result.sender.last_coded_bytes, |s| {
                        s.stats().last_coded_bytes
                    });
                let done = f.decoding_until.map_or(now, |t| t.max(now));
                let encode = Duration::from_secs_f64(last_coded as f64 * encode_secs_per_byte);
                let at = done.saturating_duration_since(t0 + f.spec.start);
                f.result.completed = Some(at + encode);
            }
            RxEvent::ChunkUnverifiable(_) | RxEvent::TimedOut => {
                f.result.data_ok = false;
            }
        }
    }
}
