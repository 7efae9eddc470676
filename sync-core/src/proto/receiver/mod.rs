//! The receiving side of one block transfer, as a sans-IO state machine.
//!
//! Owns the bitmap of blocks held, the per-chunk completion count, the
//! anti-replay window and the feedback the sender steers by. For every new,
//! authenticated block it hands back the decrypted payload and its stream
//! offset ([`Delivery`]); the driver writes it to a spool. The state
//! machine's memory is one bit per block, a few bytes per chunk, and copies
//! of the stream's last blocks (at most
//! [`MAX_WINDOW_BYTES`](super::fec::MAX_WINDOW_BYTES), fewer or none once
//! the sender's status says where its codes may start) for the tail codes:
//! when a code's parity shards make up for the blocks lost in it, the
//! rebuilt blocks come out of [`Receiver::poll_recovered`] to be written
//! like received ones. When the last block of a chunk arrives it emits
//! [`Event::ChunkComplete`]; the driver hashes what it wrote and answers
//! with [`Receiver::handle_chunk_verified`]. A chunk that fails has its
//! blocks forgotten and requested again.
//!
//! Feedback ([`Receiver::poll_feedback`]) goes out every
//! [`ReceiverConfig::feedback_interval`] while the transfer runs. Its NAK
//! list is built by a cursor that walks the missing blocks round-robin, so
//! with more gaps than fit one message every gap is still reported within a
//! few messages; repetition is harmless because the sender ignores NAKs for
//! blocks it sent too recently for the NAK to be about that copy.
//! Feedback is sized to fit one datagram, so the driver can send it on the
//! data path ([`Receiver::seal_control`], under the receiver's own key and
//! packet numbers) as well as on the control connection; the sender's
//! status arrives either way too ([`Receiver::handle_datagram`] takes
//! control datagrams).
//!
//! The state machine reads best as one type, its parts one file each:
//! - `intake`: a datagram's way in, from the header and replay checks
//!   through decryption to the block booked (and the tail codes fed), with
//!   the counters and delay samples the feedback reports;
//! - `feedback`: the feedback message, its NAK scan, and sealing it as a
//!   datagram;
//! - `config`, `output` and `stats`: what the driver sets, is handed, and
//!   reads.
//!
//! This file holds the state itself, its construction, the driver's
//! verdicts and reports (`handle_chunk_verified`, `handle_sink`,
//! `handle_control`, `handle_timeout`) and the timers.
//!
//! It never touches sockets, files or clocks.

mod config;
mod feedback;
mod intake;
mod output;
mod stats;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bitmap::Bitmap;
use super::control::ControlMsg;
use super::crypto::{Direction, PacketKey, SessionSecret};
use super::fec::{Recovered, TailDecoder};
use super::layout::Layout;
use super::replay::ReplayWindow;

pub use config::{ReceiverConfig, MAX_CHUNK_FAILURES};
use config::{MIN_RATE_WINDOW, RATE_WINDOW, RATE_WINDOW_RTTS};
pub use output::{Delivery, Event, Placed};
pub use stats::ReceiverStats;

/// The state machine.
pub struct Receiver {
    layout: Arc<Layout>,
    key: PacketKey,
    session_id: u32,
    config: ReceiverConfig,
    epoch: Instant,
    replay: ReplayWindow,
    held: Bitmap,
    tail: TailDecoder,
    /// Rebuilt blocks for the driver to write.
    recovered: VecDeque<Recovered>,
    /// Blocks still missing per chunk.
    remaining: Vec<u32>,
    /// The chunk the last block absorbed began in: where the next one's
    /// chunks are looked for first ([`Layout::block_chunks_near`]).
    chunk_hint: usize,
    verified: Bitmap,
    failures: HashMap<usize, u8>,
    cum_ack: u64,
    highest_block: Option<u64>,
    scan_cursor: u64,
    sender_all_sent: bool,
    packets_received: u64,
    highest_pn: u64,
    window_start: Instant,
    window_bytes: u64,
    rate_window: Duration,
    /// The round trip time the sender's status last reported (zero until
    /// then).
    sender_srtt: Duration,
    recv_rate: u64,
    owd_origin: Option<u32>,
    owd_min: i64,
    owd_sum: i64,
    owd_count: i64,
    echo: Option<(u32, Instant)>,
    sink_fill: u16,
    sink_window: Option<(Instant, u64)>,
    sink_rate: u64,
    feedback_seq: u64,
    /// Seals the control datagrams this side sends.
    out_key: PacketKey,
    /// The next packet number under `out_key`.
    out_pn: u64,
    next_feedback: Option<Instant>,
    dirty: bool,
    last_heard: Instant,
    events: VecDeque<Event>,
    complete: bool,
    dead: bool,
    stats: ReceiverStats,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("held", &self.held.count_ones())
            .field("cum_ack", &self.cum_ack)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver for `layout`, keyed from the session secret.
    pub fn new(
        config: ReceiverConfig,
        layout: Arc<Layout>,
        secret: &SessionSecret,
        now: Instant,
    ) -> Self {
        let n = layout.block_count();
        let chunks = layout.chunk_count();
        let mut events = VecDeque::new();
        let remaining = (0..chunks)
            .map(|c| {
                let blocks = layout.chunk_blocks(c);
                if blocks.is_empty() {
                    // Empty chunks are complete from the start.
                    events.push_back(Event::ChunkComplete(c));
                }
                (blocks.end - blocks.start) as u32
            })
            .collect();
        let mut r = Receiver {
            key: PacketKey::new(secret, config.cipher, Direction::SenderToReceiver),
            out_key: PacketKey::new(secret, config.cipher, Direction::ReceiverToSender),
            out_pn: 0,
            session_id: secret.session_id(),
            epoch: now,
            replay: ReplayWindow::new(),
            held: Bitmap::new(n),
            tail: TailDecoder::new(&layout),
            recovered: VecDeque::new(),
            remaining,
            chunk_hint: 0,
            verified: Bitmap::new(chunks as u64),
            failures: HashMap::new(),
            cum_ack: 0,
            highest_block: None,
            scan_cursor: 0,
            sender_all_sent: false,
            packets_received: 0,
            highest_pn: 0,
            window_start: now,
            window_bytes: 0,
            rate_window: RATE_WINDOW,
            sender_srtt: Duration::ZERO,
            recv_rate: 0,
            owd_origin: None,
            owd_min: i64::MAX,
            owd_sum: 0,
            owd_count: 0,
            echo: None,
            sink_fill: 0,
            sink_window: None,
            sink_rate: 0,
            feedback_seq: 0,
            next_feedback: None,
            dirty: false,
            last_heard: now,
            events,
            complete: false,
            dead: false,
            stats: ReceiverStats::default(),
            layout,
            config,
        };
        r.check_complete(now);
        r
    }
    /// The driver's verdict on a completed chunk.
    pub fn handle_chunk_verified(&mut self, now: Instant, chunk: usize, ok: bool) {
        // Stale verdicts (the chunk was reopened since) are ignored; the
        // chunk will complete and be verified again.
        if chunk >= self.remaining.len()
            || self.remaining[chunk] != 0
            || self.verified.get(chunk as u64)
        {
            return;
        }
        if ok {
            self.verified.set(chunk as u64);
            self.check_complete(now);
            return;
        }
        self.stats.chunk_failures += 1;
        let failures = self.failures.entry(chunk).or_insert(0);
        *failures += 1;
        if *failures >= MAX_CHUNK_FAILURES {
            self.dead = true;
            self.events.push_back(Event::ChunkUnverifiable(chunk));
            return;
        }
        let blocks = self.layout.chunk_blocks(chunk);
        for b in blocks.clone() {
            self.tail.forget(b);
            if self.held.clear(b) {
                // Neighbours sharing a boundary block must be re-checked too.
                let layout = Arc::clone(&self.layout);
                for c in layout.block_chunks(b) {
                    self.remaining[c] += 1;
                    self.verified.clear(c as u64);
                }
            }
        }
        self.cum_ack = self.cum_ack.min(blocks.start);
        self.scan_cursor = self.scan_cursor.min(blocks.start);
        self.dirty = true;
        self.next_feedback = Some(now);
    }

    /// Reports the driver's write queue: `fill` per mille of its capacity,
    /// `written` total payload bytes the sink has absorbed so far.
    pub fn handle_sink(&mut self, now: Instant, fill_permille: u16, written: u64) {
        self.sink_fill = fill_permille.min(1000);
        match self.sink_window {
            Some((t, w)) if now.saturating_duration_since(t) >= RATE_WINDOW => {
                let dt = (now - t).as_secs_f64();
                self.sink_rate = (written.saturating_sub(w) as f64 / dt) as u64;
                self.sink_window = Some((now, written));
            }
            Some(_) => {}
            None => self.sink_window = Some((now, written)),
        }
    }

    /// Feeds a control message from the sender.
    pub fn handle_control(&mut self, now: Instant, msg: ControlMsg) {
        // Control traffic keeps a running transfer alive, but until a first
        // datagram has arrived only datagrams count: a path that blocks UDP
        // must time out even though the control connection is fine.
        if self.packets_received > 0 {
            self.last_heard = now;
        }
        if let ControlMsg::Status(s) = msg {
            if s.srtt_us > 0 {
                self.sender_srtt = Duration::from_micros(u64::from(s.srtt_us));
                self.rate_window = (Duration::from_micros(u64::from(s.srtt_us)) * RATE_WINDOW_RTTS)
                    .clamp(MIN_RATE_WINDOW, RATE_WINDOW);
            }
            self.tail.raise_start(s.codes_from);
            if s.all_sent && !self.sender_all_sent {
                self.sender_all_sent = true;
                // Everything was sent: NAK the tail without waiting.
                self.next_feedback = Some(now);
            }
        }
    }

    /// Fires timers; call when `poll_timeout` has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.complete
            && !self.dead
            && now.saturating_duration_since(self.last_heard) >= self.config.idle_timeout
        {
            self.dead = true;
            self.events.push_back(Event::TimedOut);
        }
    }
    /// The round trip time the sender last reported (zero until then).
    pub fn sender_srtt(&self) -> Duration {
        self.sender_srtt
    }

    /// Authentic datagrams taken so far (data, parity and control).
    pub fn packets_received(&self) -> u64 {
        self.packets_received
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When the driver should next call in.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.dead {
            return None;
        }
        let idle = (!self.complete).then(|| self.last_heard + self.config.idle_timeout);
        match (self.next_feedback, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn is_complete(&self) -> bool {
        self.complete
    }

    pub fn stats(&self) -> ReceiverStats {
        self.stats.clone()
    }

    /// Distinct blocks held.
    pub fn blocks_held(&self) -> u64 {
        self.held.count_ones()
    }
    fn check_complete(&mut self, now: Instant) {
        if !self.complete
            && self.held.is_full()
            && self.verified.count_ones() == self.remaining.len() as u64
        {
            self.complete = true;
            self.events.push_back(Event::Complete);
            // Tell the sender at once.
            self.dirty = true;
            self.next_feedback = Some(now);
        }
    }
}
