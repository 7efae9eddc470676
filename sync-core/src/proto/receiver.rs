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
//! It never touches sockets, files or clocks.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bitmap::Bitmap;
use super::control::{ControlMsg, Echo, Feedback, OwdSample, MAX_NAK_RANGES};
use super::control_datagram;
use super::crypto::{Cipher, Direction, PacketKey, SessionSecret};
use super::fec::{Recovered, TailDecoder};
use super::layout::Layout;
use super::replay::{ReplayCheck, ReplayWindow};
use super::wire::{Body, DatagramError, Header, HEADER_LEN};

/// Times a chunk may fail verification before the transfer gives up (the
/// source is probably changing under the sender).
pub const MAX_CHUNK_FAILURES: u8 = 3;
/// Window over which the arrival rate is measured until the sender reports
/// a round trip time, and the longest it gets.
const RATE_WINDOW: Duration = Duration::from_millis(50);
/// Shortest rate window: at most a few hundred microseconds of jitter from
/// batched receives and thread scheduling against it.
const MIN_RATE_WINDOW: Duration = Duration::from_millis(5);
/// The rate window spans this many round trips (within the bounds above):
/// half of the sender's startup doubling period
/// ([`STARTUP_RTTS`](super::congestion::fair::STARTUP_RTTS)), so that the
/// rate it reports when startup ends is that of a fraction of a doubling
/// earlier (about two round trips: half the window, plus the way back). A
/// fixed 50 ms window lagged five doublings on loopback, where startup
/// doubles every 10 ms, and once reported a seventieth of the rate.
const RATE_WINDOW_RTTS: u32 = 3;

/// Receiver tuning.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiverConfig {
    pub cipher: Cipher,
    /// Time between feedback messages while the transfer runs.
    pub feedback_interval: Duration,
    /// A gap is only NAKed once this many higher blocks have arrived (until
    /// the sender says everything was sent), so mild reordering is not
    /// mistaken for loss.
    pub reorder_threshold: u64,
    /// Give up when nothing authentic arrives for this long.
    pub idle_timeout: Duration,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            cipher: Cipher::Aes256Gcm,
            feedback_interval: Duration::from_millis(5),
            reorder_threshold: 64,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// A new block for the driver to write.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivery<'a> {
    pub block: u64,
    pub stream_offset: u64,
    pub data: &'a [u8],
}

/// A new block [`Receiver::handle_datagram_into`] decrypted into the
/// caller's buffer: its first `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Placed {
    pub block: u64,
    pub stream_offset: u64,
    pub len: usize,
}

/// Things the driver must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Every block of this chunk has been delivered: hash it and call
    /// [`Receiver::handle_chunk_verified`].
    ChunkComplete(usize),
    /// Every chunk arrived and verified.
    Complete,
    /// This chunk failed verification [`MAX_CHUNK_FAILURES`] times.
    ChunkUnverifiable(usize),
    /// Nothing authentic arrived for [`ReceiverConfig::idle_timeout`].
    TimedOut,
}

/// Counters; dropped datagrams are counted by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    pub datagrams: u64,
    pub bytes: u64,
    pub blocks: u64,
    pub duplicates: u64,
    pub malformed: u64,
    pub foreign: u64,
    pub auth_failed: u64,
    pub replayed: u64,
    pub chunk_failures: u64,
    pub feedback_sent: u64,
    /// Control datagrams (the sender's status) taken.
    pub control: u64,
    /// Parity shards of tail codes taken.
    pub parity: u64,
    /// Blocks the tail codes rebuilt.
    pub recovered: u64,
    /// Bytes covered by the tail codes decoded (what decoding cost).
    pub decoded_bytes: u64,
    /// Blocks copied for the tail codes (those the sender's status did not
    /// rule out).
    pub kept: u64,
}

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

    /// Authenticates and absorbs one datagram, decrypting it in place.
    /// Returns the payload to write when the block is new; `Ok(None)` for a
    /// duplicate block or a parity datagram; an error (already counted in
    /// [`stats`](Self::stats)) for anything dropped.
    ///
    /// Write the delivery, then whatever [`poll_recovered`](Self::poll_recovered)
    /// returns, before polling events: a [`Event::ChunkComplete`] they
    /// trigger refers to the bytes just delivered.
    pub fn handle_datagram<'a>(
        &mut self,
        now: Instant,
        datagram: &'a mut [u8],
    ) -> Result<Option<Delivery<'a>>, DatagramError> {
        let total = datagram.len();
        let block = self.check(datagram).and_then(|(h, len)| {
            let (head, body) = datagram.split_at_mut(HEADER_LEN);
            self.key.open(h.packet_number, head, body)?;
            self.accept(now, &h, total, &body[..len])
        });
        Ok(self.count_drop(block)?.map(|b| Delivery {
            block: b,
            stream_offset: self.layout.block_range(b).start,
            data: &datagram[HEADER_LEN..][..self.layout.block_len(b)],
        }))
    }

    /// [`handle_datagram`](Self::handle_datagram) without touching the
    /// datagram: a new block's payload (or a control message) is decrypted
    /// straight into the start of `out` (where the driver collects blocks
    /// for its writer), saving the copy out of a decrypted datagram. `out`
    /// must hold a whole block ([`Layout::block_size`]); after `Ok(None)`
    /// or an error its contents are unspecified.
    pub fn handle_datagram_into(
        &mut self,
        now: Instant,
        datagram: &[u8],
        out: &mut [u8],
    ) -> Result<Option<Placed>, DatagramError> {
        let block = self.check(datagram).and_then(|(h, len)| {
            let got = out.len();
            let out = out
                .get_mut(..len)
                .ok_or(DatagramError::BadPayloadLength { got, want: len })?;
            let (head, body) = datagram.split_at(HEADER_LEN);
            self.key.open_to(h.packet_number, head, body, out)?;
            self.accept(now, &h, datagram.len(), out)
        });
        Ok(self.count_drop(block)?.map(|b| Placed {
            block: b,
            stream_offset: self.layout.block_range(b).start,
            len: self.layout.block_len(b),
        }))
    }

    /// Everything after authentication: the datagram's counters and
    /// delay sample, then its payload booked. Returns the block when it is
    /// new.
    fn accept(
        &mut self,
        now: Instant,
        h: &Header,
        datagram_len: usize,
        payload: &[u8],
    ) -> Result<Option<u64>, DatagramError> {
        self.replay.accept(h.packet_number);
        if let Body::Parity { code, index } = h.body {
            self.tail.add_parity(&self.layout, code, index, payload)?;
        }
        self.on_authentic(now, h, datagram_len);
        let b = match h.body {
            Body::Block(b) => b,
            Body::Parity { code, .. } => {
                self.stats.parity += 1;
                self.try_decode(code.first_block);
                return Ok(None);
            }
            Body::Control => {
                let msg = control_datagram::decode(payload)?;
                self.stats.control += 1;
                self.handle_control(now, msg);
                return Ok(None);
            }
        };
        if !self.absorb(b) {
            self.stats.duplicates += 1;
            return Ok(None);
        }
        if self.tail.keep(b, payload) {
            self.stats.kept += 1;
            if let Some(first) = self.tail.code_of(b) {
                self.try_decode(first);
            }
        }
        Ok(Some(b))
    }

    /// Counts a dropped datagram by its reason; passes the result on.
    fn count_drop<T>(&mut self, r: Result<T, DatagramError>) -> Result<T, DatagramError> {
        if let Err(e) = &r {
            match e {
                DatagramError::ForeignSession => self.stats.foreign += 1,
                DatagramError::AuthFailed => self.stats.auth_failed += 1,
                DatagramError::Replayed | DatagramError::TooOld => self.stats.replayed += 1,
                _ => self.stats.malformed += 1,
            }
        }
        r
    }

    /// The next block a tail code rebuilt, to be written like a
    /// [`Delivery`] (before polling events).
    pub fn poll_recovered(&mut self) -> Option<Recovered> {
        self.recovered.pop_front()
    }

    /// Books a new block: false if it was held already.
    fn absorb(&mut self, b: u64) -> bool {
        if !self.held.set(b) {
            return false;
        }
        self.stats.blocks += 1;
        while self.held.get(self.cum_ack) {
            self.cum_ack += 1;
        }
        self.highest_block = Some(self.highest_block.map_or(b, |h| h.max(b)));
        // Borrowed field by field: cloning the `Arc` here, once a block,
        // wrote its count, which shares a cache line with the layout fields
        // the sending thread reads for every datagram, and so pulled that
        // line back and forth between the cores (about 4 % of all CPU time
        // on loopback).
        let Receiver {
            layout,
            remaining,
            chunk_hint,
            events,
            ..
        } = self;
        for c in layout.block_chunks_near(b, chunk_hint) {
            let left = &mut remaining[c];
            *left = left.saturating_sub(1);
            if *left == 0 {
                events.push_back(Event::ChunkComplete(c));
            }
        }
        true
    }

    /// Rebuilds the missing blocks of the tail code starting at `first`
    /// once enough shards arrived.
    fn try_decode(&mut self, first: u64) {
        if !self.tail.ready(first) {
            return;
        }
        self.stats.decoded_bytes += self.tail.code_bytes(first);
        match self.tail.decode(&self.layout, first) {
            Ok(blocks) => {
                for r in blocks {
                    if self.absorb(r.block) {
                        self.stats.recovered += 1;
                        self.recovered.push_back(r);
                    }
                }
                self.dirty = true;
            }
            // Not expected with shards checked on arrival; the NAKs repair
            // what the code could not.
            Err(e) => tracing::warn!(error = %e, "tail code did not decode"),
        }
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

    /// Feedback for the sender, when one is due.
    pub fn poll_feedback(&mut self, now: Instant) -> Option<ControlMsg> {
        let due = self.next_feedback?;
        if now < due || self.dead {
            return None;
        }
        if self.complete && !self.dirty {
            // Done and nothing new arrived: the sender has what it needs.
            self.next_feedback = None;
            return None;
        }
        self.next_feedback = Some(now + self.config.feedback_interval);
        self.dirty = false;
        Some(ControlMsg::Feedback(self.build_feedback(now)))
    }

    /// Seals `msg` (from [`poll_feedback`](Self::poll_feedback)) into `out`
    /// as a datagram for the sender; its length, or `None` if it does not
    /// fit one (it then goes by the control connection only).
    pub fn seal_control(
        &mut self,
        now: Instant,
        msg: &ControlMsg,
        out: &mut [u8],
    ) -> Option<usize> {
        let header = Header {
            session_id: self.session_id,
            packet_number: self.out_pn,
            body: Body::Control,
            send_time_us: now.saturating_duration_since(self.epoch).as_micros() as u32,
        };
        let n = control_datagram::seal(&self.out_key, header, msg, self.layout.block_size(), out)?;
        self.out_pn += 1;
        Some(n)
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

    /// Header checks and replay check, before any cryptography: the header
    /// and the payload length the datagram must have. The caller then
    /// authenticates it and, if genuine, marks its packet number seen.
    fn check(&self, datagram: &[u8]) -> Result<(Header, usize), DatagramError> {
        let h = Header::decode(datagram)?;
        if h.session_id != self.session_id {
            return Err(DatagramError::ForeignSession);
        }
        match self.replay.check(h.packet_number) {
            ReplayCheck::Fresh => {}
            ReplayCheck::Replayed => return Err(DatagramError::Replayed),
            ReplayCheck::TooOld => return Err(DatagramError::TooOld),
        }
        let want = match h.body {
            Body::Block(b) if b >= self.layout.block_count() => {
                return Err(DatagramError::BlockOutOfRange(b))
            }
            Body::Block(b) => self.layout.block_len(b),
            Body::Parity { .. } => self.layout.block_size(),
            Body::Control => {
                let len = control_datagram::payload_len(
                    &self.key,
                    datagram.len(),
                    self.layout.block_size(),
                )?;
                return Ok((h, len));
            }
        };
        let got = datagram
            .len()
            .saturating_sub(HEADER_LEN + self.key.tag_len());
        if datagram.len() < HEADER_LEN + self.key.tag_len() || got != want {
            return Err(DatagramError::BadPayloadLength { got, want });
        }
        Ok((h, want))
    }

    fn on_authentic(&mut self, now: Instant, h: &Header, len: usize) {
        self.last_heard = now;
        self.stats.datagrams += 1;
        self.stats.bytes += len as u64;
        self.packets_received += 1;
        self.highest_pn = self.highest_pn.max(h.packet_number);
        self.dirty = true;
        if self.next_feedback.is_none() {
            self.next_feedback = Some(now + self.config.feedback_interval);
        }

        self.window_bytes += len as u64;
        let span = now.saturating_duration_since(self.window_start);
        if span >= self.rate_window {
            self.recv_rate = (self.window_bytes as f64 / span.as_secs_f64()) as u64;
            self.window_start = now;
            self.window_bytes = 0;
        }

        // One-way delay relative to the first datagram: the clocks differ by
        // an unknown offset, and only changes in delay matter.
        let recv_us = now.saturating_duration_since(self.epoch).as_micros() as u32;
        let raw = recv_us.wrapping_sub(h.send_time_us);
        let origin = *self.owd_origin.get_or_insert(raw);
        let owd = i64::from(raw.wrapping_sub(origin) as i32);
        self.owd_min = self.owd_min.min(owd);
        self.owd_sum = self.owd_sum.saturating_add(owd);
        self.owd_count += 1;

        if self
            .echo
            .is_none_or(|(ts, _)| (h.send_time_us.wrapping_sub(ts) as i32) > 0)
        {
            self.echo = Some((h.send_time_us, now));
        }
    }

    fn build_feedback(&mut self, now: Instant) -> Feedback {
        let n = self.layout.block_count();
        // NAK only below `limit`: gaps near the top may be reordering.
        let limit = if self.sender_all_sent {
            n
        } else {
            self.highest_block
                .map_or(0, |h| (h + 1).saturating_sub(self.config.reorder_threshold))
        };
        let mut start = self.scan_cursor.max(self.cum_ack);
        if start >= limit {
            start = self.cum_ack;
        }
        let start = start.min(limit);
        let mut naks = Vec::new();
        let mut pos = start;
        let mut scan_end = limit;
        // The message must fit one datagram: the NAK list stops where its
        // bytes would overflow, and the scan with it.
        let mut budget = control_datagram::nak_budget(self.layout.block_size());
        while pos < limit {
            let Some(gap) = self.held.next_clear_in(pos..limit) else {
                break;
            };
            let end = self.held.next_set_in(gap..limit).unwrap_or(limit);
            let cost = control_datagram::nak_bytes(pos, gap, end);
            if cost > budget {
                scan_end = gap;
                break;
            }
            budget -= cost;
            naks.push(gap..end);
            pos = end;
            if naks.len() == MAX_NAK_RANGES {
                scan_end = end;
                break;
            }
        }
        self.scan_cursor = if scan_end < limit {
            scan_end
        } else {
            self.cum_ack
        };

        let owd = (self.owd_count > 0).then(|| OwdSample {
            min_us: self.owd_min,
            mean_us: self.owd_sum / self.owd_count,
        });
        self.owd_min = i64::MAX;
        self.owd_sum = 0;
        self.owd_count = 0;
        let echo = self.echo.take().map(|(send_time_us, at)| Echo {
            send_time_us,
            hold_us: now
                .saturating_duration_since(at)
                .as_micros()
                .min(u128::from(u32::MAX)) as u32,
        });
        self.feedback_seq += 1;
        self.stats.feedback_sent += 1;
        Feedback {
            seq: self.feedback_seq,
            cum_ack: self.cum_ack,
            scan: start..scan_end,
            naks,
            blocks_held: self.held.count_ones(),
            packets_received: self.packets_received,
            highest_pn: self.highest_pn,
            recv_rate: self.recv_rate,
            owd,
            echo,
            sink_fill: self.sink_fill,
            sink_rate: self.sink_rate,
            complete: self.complete,
        }
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
