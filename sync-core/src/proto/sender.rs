//! The sending side of one block transfer, as a sans-IO state machine.
//!
//! Owns the choice of which block goes out next and when: NAKed blocks
//! first, then new blocks in order, then — once every block has been sent —
//! repeated passes over blocks the receiver has not confirmed (StarBurst
//! MFTP's "passes"), until the receiver says it holds and verified
//! everything. It never waits for an acknowledgement before sending: the
//! rate comes from the congestion [`Controller`] (capped by the receiver's
//! back-pressure) through the [`Pacer`], and the path is kept full.
//!
//! A block is not sent again until the feedback about its previous copy
//! can have arrived (the *hold*: one smoothed RTT plus variation plus the
//! receiver's feedback delay), which is what keeps NAKs repeated by every
//! feedback from multiplying retransmissions. The hold is estimated when
//! the copy leaves, from an RTT measured through the queue of a round trip
//! before; when the queue has grown since, the copy is still on its way as
//! the hold ends. So a hold ends only once the receiver has also been seen
//! (by the echo in its feedback) to hold a datagram sent after the copy —
//! proof the copy had its chance — or once the hold, re-estimated from the
//! current RTT, has passed. Lost NAKs and a lost last block need no special
//! case: the tail passes resend every unconfirmed block once its hold has
//! expired.
//!
//! **The tail.** After the last new block the path would idle for a round
//! trip, waiting for the NAKs about the last round trip's blocks, and every
//! block lost in it would cost that round trip and half another. Instead
//! the sender resends, newest first, the unconfirmed blocks whose copy is
//! still in flight, each at most once: at most one in-flight window of
//! extra datagrams, in time the path would have idled, counted in
//! [`SenderStats::speculative`]. Blocks the receiver NAKs after the last
//! new block — their copies were lost, and one in flight may be too — go
//! out in two to four copies, enough that losing all of them is unlikely at
//! the measured loss, so the transfer rarely waits a further round trip
//! per loss at its end.
//!
//! Before any of that, the last hold's worth of new blocks (the window) is
//! covered by the tail codes ([`super::fec`]): the window is fixed when
//! the new blocks reach it, cut into groups, and each group's parity
//! shards, as many as the measured loss calls for with a margin, go out
//! right after its last block. The receiver rebuilds what a group lacks
//! as soon as its parity arrives, so the end of the stream waits for half
//! a round trip rather than one and a half. The speculative pass still
//! follows: it costs only time the path would idle, and it covers what
//! the parity cannot (a burst of losses beyond the margin, repairs of
//! older blocks still in flight).
//!
//! It never touches sockets, files or clocks: payload bytes come through
//! [`BlockSource`], time through `now`, and output is datagrams
//! ([`Sender::poll_transmit`]), control messages ([`Sender::poll_control`],
//! which the driver may also seal as datagrams with
//! [`Sender::seal_control`]), a wake-up time ([`Sender::poll_timeout`]) and
//! [`Event`]s. The receiver's feedback comes in by the control connection
//! ([`Sender::handle_control`]) or as datagrams
//! ([`Sender::handle_datagram`]), whichever is first: stale copies are
//! dropped by their sequence number.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bitmap::Bitmap;
use super::congestion::{BackPressure, CongestionConfig, Controller, PathSample};
use super::control::{ControlMsg, Feedback, SenderStatus};
use super::control_datagram;
use super::crypto::{Cipher, Direction, PacketKey, SessionSecret};
use super::fec::{self, TailCode};
use super::layout::Layout;
use super::pacer::Pacer;
use super::replay::{ReplayCheck, ReplayWindow};
use super::rtt::{BaseDelay, RttEstimator, MAX_RTT_SAMPLE};
use super::wire::{Body, DatagramError, Header, HEADER_LEN};

/// Where block payloads come from: files in the driver, memory in tests.
pub trait BlockSource {
    /// Fills `buf` with the stream bytes starting at `stream_offset`.
    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// The `len` stream bytes at `stream_offset` as one slice, when the
    /// source holds them contiguously in memory; `None` makes the sender
    /// fall back to [`read`](Self::read). Lending the bytes lets the cipher
    /// read them where they are instead of from a copy.
    fn lend(&mut self, _stream_offset: u64, _len: usize) -> Option<&[u8]> {
        None
    }
}

/// An in-memory stream: `&mut &bytes[..]` is a source.
impl BlockSource for &[u8] {
    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(stream_offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn lend(&mut self, stream_offset: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(stream_offset).ok()?;
        self.get(start..start.checked_add(len)?)
    }
}

/// Most blocks one feedback message may queue for retransmission; the rest
/// of a huge NAK range is picked up by later feedback or by the tail passes.
pub const MAX_QUEUED_PER_FEEDBACK: u64 = 1 << 16;
/// Most send records kept for hold tracking (bounds memory at absurd rates).
pub const MAX_HOLD_RECORDS: usize = 1 << 22;
/// Extra hold beyond the RTT estimate. A NAK about an older copy reaches us
/// less than one current RTT after the new copy left, so the hold needs to
/// cover the RTT and its jitter, little more: a longer hold delays repairs,
/// which is what makes the tail of a transfer slow.
const HOLD_SLACK: Duration = Duration::from_millis(3);
/// After its hold, a block still waits this long before a tail pass may
/// resend it unasked: its confirmation may be in a feedback message that
/// was built up to one feedback interval after the block arrived.
const PASS_GRACE: Duration = Duration::from_millis(25);

/// Most copies a block known to be lost is sent in after the last new
/// block.
const MAX_TAIL_COPIES: u32 = 4;
/// Packet numbers a loss sample spans at least.
const LOSS_SAMPLE_PACKETS: u64 = 16;
/// Packets the high loss estimate for parity sizing remembers, about.
const LOSS_MEMORY_PACKETS: f64 = 16384.0;
/// Chance of losing every copy of such a block that the copies aim below.
const TAIL_RESIDUAL_LOSS: f64 = 2e-4;
/// The tail code's window spans this many holds of the newest blocks: a
/// block sent earlier has its NAK answered about as soon as the parity
/// would rebuild it.
const WINDOW_HOLDS: f64 = 1.25;
/// Parity shards beyond the expected losses: this many standard deviations
/// of the loss count, plus [`PARITY_FLOOR`].
const PARITY_SIGMAS: f64 = 3.0;
/// Parity shards sent even when no loss was measured.
const PARITY_FLOOR: f64 = 2.0;
/// Time to encode and decode a code, per byte it covers: 0.2 + 0.8 ns on
/// the bench machine (`cargo bench --bench proto_sim` prints it). Used to
/// skip the codes where they would cost more than they save.
const CODING_SECS_PER_BYTE: f64 = 1e-9;
/// The window is coded only if the coding left when the stream ends (the
/// last group's, or what the receiver cannot decode while the window is
/// still arriving) takes less than this share of a round trip, about what
/// the codes save when a loss falls in the window. On loopback, where a
/// round trip is a fraction of a millisecond, waiting for NAKs is cheaper.
const CODING_RTT_SHARE: f64 = 0.75;
/// The receiver is told to keep copies of this many windows (at the rate
/// when told) before the end: the rate may still rise before the window is
/// fixed.
const KEEP_WINDOWS: u64 = 2;
/// The receiver is told no codes will come when coding the window at the
/// rate of the time would leave this many times what is accepted: the
/// round trip may still grow with a queue before the window is fixed.
const NO_CODING_MARGIN: f64 = 4.0;

/// Sender tuning.
#[derive(Clone, Debug, PartialEq)]
pub struct SenderConfig {
    pub cipher: Cipher,
    pub congestion: CongestionConfig,
    /// RTT assumed until the first echo arrives.
    pub initial_rtt: Duration,
    /// How often a status message goes out (it doubles as a keepalive).
    pub status_interval: Duration,
    /// Give up when no feedback arrives for this long.
    pub idle_timeout: Duration,
    /// Whether the end of the stream gets tail codes.
    pub tail_coding: TailCoding,
}

/// When the sender covers the end of the stream with tail codes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TailCoding {
    /// Where coding saves more time than it costs (not on loopback).
    #[default]
    Auto,
    /// Always (tests of the coding itself on fast paths).
    Always,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            cipher: Cipher::Aes256Gcm,
            congestion: CongestionConfig::default(),
            initial_rtt: Duration::from_millis(100),
            status_interval: Duration::from_millis(250),
            idle_timeout: Duration::from_secs(30),
            tail_coding: TailCoding::Auto,
        }
    }
}

/// Things the driver should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The receiver holds and verified every block: the transfer is done.
    Complete,
    /// No feedback for [`SenderConfig::idle_timeout`]; the transfer is dead.
    TimedOut,
}

/// Counters for progress displays and tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SenderStats {
    pub datagrams: u64,
    pub bytes: u64,
    pub new_blocks: u64,
    /// Blocks sent again because the receiver NAKed them.
    pub retransmissions: u64,
    /// Blocks sent again by a tail pass (unconfirmed, hold expired).
    pub pass_resends: u64,
    /// Blocks sent again speculatively at the end of the stream, while
    /// their previous copy was still in flight.
    pub speculative: u64,
    /// Parity shards of the tail codes sent.
    pub parity: u64,
    /// Bytes the last tail code covers (encoded as the last new block
    /// went: what encoding delays the end by).
    pub last_coded_bytes: u64,
    pub feedback: u64,
    pub stale_feedback: u64,
    /// Control datagrams from the receiver taken (fresh or stale).
    pub control_datagrams: u64,
    /// Datagrams that arrived on the sending socket and were dropped
    /// (foreign, forged, replayed, malformed).
    pub dropped_datagrams: u64,
    pub blocks_confirmed: u64,
    pub srtt: Duration,
    /// False while `srtt` is still the configured guess (no sample yet).
    pub rtt_measured: bool,
    pub rate: u64,
    pub loss: f64,
    /// The receiver's counts as its freshest feedback reported them: the
    /// authentic datagrams it took, and the packet numbers up to the
    /// highest it saw (both 0 before any feedback). The difference is
    /// what did not reach it (lost, or dropped by a receiver whose disk
    /// fell behind).
    pub peer_received: u64,
    pub peer_spanned: u64,
}

/// Why a block is being sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    New,
    Repair,
    Pass,
    Speculative,
}

/// What goes out next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Block(u64, Kind),
    /// The front group's shard `index` (see [`Tail::parity`]).
    Parity(TailCode, u16),
}

/// The tail codes: the window, fixed when the new blocks reach it, and
/// its groups, each coded when its last block is chosen.
struct Tail {
    /// First block of the window.
    first: u64,
    /// Where the next group to code starts, and the ends of the groups
    /// left to code.
    next_group: u64,
    ends: VecDeque<u64>,
    /// Coded groups whose parity is still to go: the code, its shards end
    /// to end, and the index of the next shard.
    parity: VecDeque<(TailCode, Vec<u8>, u16)>,
}

/// Opens the receiver's control datagrams.
struct Inbound {
    key: PacketKey,
    replay: ReplayWindow,
    /// Decrypted payloads land here.
    scratch: Vec<u8>,
}

/// The state machine.
pub struct Sender {
    layout: Arc<Layout>,
    key: PacketKey,
    inbound: Inbound,
    session_id: u32,
    epoch: Instant,
    config: SenderConfig,
    next_pn: u64,
    next_new: u64,
    confirmed: Bitmap,
    /// Every block below this is set in `confirmed`, so a cumulative
    /// acknowledgement sets only what lies past it (setting from block 0
    /// on every feedback cost a pass over the stream's words each time).
    confirmed_prefix: u64,
    /// Blocks with a copy within its hold; NAKs about them are not acted on.
    held: Bitmap,
    /// Held blocks with more than one copy within its hold (only at the
    /// end of the stream): how many more.
    extra_holds: HashMap<u64, u32>,
    /// Copies sent, in send order: (hold expiry, sent, block).
    hold_fifo: VecDeque<(Instant, Instant, u64)>,
    /// Records popped from the front of `hold_fifo` so far, so positions
    /// in it can be kept as absolute indices.
    hold_popped: u64,
    /// When the holds were last expired, while no feedback has moved the
    /// round trip or the frontier since: expiring again at that instant
    /// finds nothing (every record added since expires later), and the
    /// sender asks once a datagram.
    holds_expired_at: Option<Instant>,
    /// Copies whose hold expired before the receiver was seen to hold a
    /// datagram sent after them: (sent, block).
    unseen: VecDeque<(Instant, u64)>,
    /// Send time of the newest datagram the receiver is known to hold.
    frontier: Option<Instant>,
    /// Blocks sent speculatively once (never again).
    speculated: Bitmap,
    /// Speculated blocks already sent in extra copies after a NAK.
    renewed: Bitmap,
    /// The speculative pass walks `hold_fifo` from its newest record back,
    /// in rounds: [`tail_copies`](Self::tail_copies) over the blocks
    /// outside the tail code's window, then one over the window. Candidates
    /// left in each round are below its absolute index here.
    spec_cursor: Vec<Option<u64>>,
    spec_round: usize,
    /// Speculative copies sent of blocks outside the window.
    spec_copies: HashMap<u64, u32>,
    /// Extra copies of blocks known lost at the end of the stream.
    extra_copies: VecDeque<u64>,
    /// The tail codes, once the window is fixed (if it is coded).
    tail: Option<Tail>,
    tail_fixed: bool,
    /// The promise the status carries, once made: no code starts below
    /// this block (see [`promise_codes_from`](Self::promise_codes_from)).
    codes_from: Option<u64>,
    /// Blocks within hold + [`PASS_GRACE`]: tail passes skip them.
    recent: Bitmap,
    grace_fifo: VecDeque<(Instant, u64)>,
    queued: Bitmap,
    retransmit: VecDeque<u64>,
    pass_cursor: u64,
    /// The versions of `confirmed`, `recent` and `held` when a search of
    /// the whole stream last found nothing to pass: until one of them
    /// changes, none would (waking while starved, the sender otherwise
    /// scanned the stream once a wake-up).
    pass_found_none: Option<(u64, u64, u64)>,
    /// Nothing was sendable at the last attempt; wait for a hold to expire
    /// or for feedback instead of polling the pacer.
    starved: bool,
    controller: Box<dyn Controller>,
    backpressure: BackPressure,
    pacer: Pacer,
    rtt: RttEstimator,
    base_delay: BaseDelay,
    loss: f64,
    last_counts: Option<(u64, u64)>,
    /// Recent loss, a high estimate, from decaying counts of packets lost
    /// and spanned, and the feedback counters they were last taken at.
    loss_high: f64,
    loss_window: (f64, f64),
    loss_seen: (u64, u64),
    last_seq: Option<u64>,
    last_heard: Instant,
    next_status: Instant,
    /// The round trip time the last status reported (µs, 0 = none yet).
    status_srtt_us: u32,
    control: VecDeque<ControlMsg>,
    events: VecDeque<Event>,
    done: bool,
    stats: SenderStats,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("next_new", &self.next_new)
            .field("confirmed", &self.confirmed.count_ones())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender for `layout`, keyed from the session secret.
    pub fn new(
        config: SenderConfig,
        layout: Arc<Layout>,
        secret: &SessionSecret,
        now: Instant,
    ) -> Self {
        let n = layout.block_count();
        let key = PacketKey::new(secret, config.cipher, Direction::SenderToReceiver);
        let controller = config.congestion.build();
        let max_len = HEADER_LEN + layout.block_size() + key.tag_len();
        let pacer = Pacer::new(now, controller.rate(), max_len);
        Sender {
            session_id: secret.session_id(),
            key,
            inbound: Inbound {
                key: PacketKey::new(secret, config.cipher, Direction::ReceiverToSender),
                replay: ReplayWindow::new(),
                scratch: Vec::new(),
            },
            epoch: now,
            next_pn: 0,
            next_new: 0,
            confirmed: Bitmap::new(n),
            confirmed_prefix: 0,
            held: Bitmap::new(n),
            extra_holds: HashMap::new(),
            speculated: Bitmap::new(n),
            renewed: Bitmap::new(n),
            hold_popped: 0,
            holds_expired_at: None,
            spec_cursor: Vec::new(),
            spec_round: 0,
            spec_copies: HashMap::new(),
            extra_copies: VecDeque::new(),
            tail: None,
            tail_fixed: false,
            codes_from: None,
            hold_fifo: VecDeque::new(),
            unseen: VecDeque::new(),
            frontier: None,
            recent: Bitmap::new(n),
            grace_fifo: VecDeque::new(),
            queued: Bitmap::new(n),
            retransmit: VecDeque::new(),
            pass_cursor: 0,
            pass_found_none: None,
            starved: false,
            controller,
            backpressure: BackPressure::new(),
            pacer,
            rtt: RttEstimator::new(config.initial_rtt),
            base_delay: BaseDelay::new(),
            loss: 0.0,
            last_counts: None,
            loss_high: 0.0,
            loss_window: (0.0, 0.0),
            loss_seen: (0, 0),
            last_seq: None,
            last_heard: now,
            next_status: now,
            status_srtt_us: 0,
            control: VecDeque::new(),
            events: VecDeque::new(),
            done: false,
            stats: SenderStats::default(),
            layout,
            config,
        }
    }

    /// Largest datagram this sender builds; `poll_transmit` buffers must be
    /// at least this long.
    pub fn max_datagram(&self) -> usize {
        HEADER_LEN + self.layout.block_size() + self.key.tag_len()
    }

    /// Builds the next datagram into `buf` if pacing allows and there is
    /// something to send; returns its length.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        source: &mut dyn BlockSource,
        buf: &mut [u8],
    ) -> io::Result<Option<usize>> {
        if self.done {
            return Ok(None);
        }
        let max = self.max_datagram();
        if buf.len() < max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "datagram buffer too small",
            ));
        }
        self.expire_holds(now);
        self.controller.on_tick(now);
        let rate = self.backpressure.limit(self.controller.rate());
        if rate != self.pacer.rate() {
            self.pacer.set_rate(now, rate);
        }
        if !self.pacer.can_send(now, max) {
            return Ok(None);
        }
        let Some(next) = self.next_send(source)? else {
            self.starved = true;
            return Ok(None);
        };
        let (body, len) = match next {
            Next::Block(b, _) => (Body::Block(b), self.layout.block_len(b)),
            Next::Parity(code, index) => (Body::Parity { code, index }, self.layout.block_size()),
        };
        let tag = self.key.tag_len();
        let header = Header {
            session_id: self.session_id,
            packet_number: self.next_pn,
            body,
            send_time_us: self.clock_us(now),
        };
        header.encode(buf);
        let (head, rest) = buf.split_at_mut(HEADER_LEN);
        let (payload, rest) = rest.split_at_mut(len);
        match next {
            Next::Block(b, _) => {
                let start = self.layout.block_range(b).start;
                if let Some(plain) = source.lend(start, len) {
                    self.key
                        .seal_from(self.next_pn, head, plain, payload, &mut rest[..tag]);
                } else {
                    source.read(start, payload)?;
                    self.key.seal(self.next_pn, head, payload, &mut rest[..tag]);
                }
            }
            Next::Parity(_, index) => {
                self.take_parity(index, payload);
                self.key.seal(self.next_pn, head, payload, &mut rest[..tag]);
            }
        }
        self.next_pn += 1;
        let total = HEADER_LEN + len + tag;
        self.pacer.on_sent(total);
        self.stats.datagrams += 1;
        self.stats.bytes += total as u64;
        match next {
            Next::Block(b, kind) => {
                self.hold(now, b);
                match kind {
                    Kind::New => self.stats.new_blocks += 1,
                    Kind::Repair => self.stats.retransmissions += 1,
                    Kind::Pass => self.stats.pass_resends += 1,
                    Kind::Speculative => self.stats.speculative += 1,
                }
            }
            Next::Parity(..) => self.stats.parity += 1,
        }
        Ok(Some(total))
    }

    /// Feeds a control message from the receiver.
    pub fn handle_control(&mut self, now: Instant, msg: ControlMsg) {
        self.last_heard = now;
        if let ControlMsg::Feedback(f) = msg {
            self.handle_feedback(now, &f);
        }
    }

    /// Authenticates a datagram from the receiver (a control message) and
    /// takes it like [`handle_control`](Self::handle_control). Anything
    /// else is dropped with the reason, and counted.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), DatagramError> {
        let msg = self.open_control(datagram);
        match msg {
            Ok(msg) => {
                self.stats.control_datagrams += 1;
                self.handle_control(now, msg);
                Ok(())
            }
            Err(e) => {
                self.stats.dropped_datagrams += 1;
                Err(e)
            }
        }
    }

    fn open_control(&mut self, datagram: &[u8]) -> Result<ControlMsg, DatagramError> {
        let h = Header::decode(datagram)?;
        if h.session_id != self.session_id {
            return Err(DatagramError::ForeignSession);
        }
        if h.body != Body::Control {
            return Err(DatagramError::WrongDirection);
        }
        let Inbound {
            key,
            replay,
            scratch,
        } = &mut self.inbound;
        match replay.check(h.packet_number) {
            ReplayCheck::Fresh => {}
            ReplayCheck::Replayed => return Err(DatagramError::Replayed),
            ReplayCheck::TooOld => return Err(DatagramError::TooOld),
        }
        let max = self.layout.block_size();
        let msg = control_datagram::open(key, &h, datagram, max, scratch);
        if !matches!(msg, Err(DatagramError::AuthFailed)) {
            replay.accept(h.packet_number);
        }
        msg
    }

    /// Seals `msg` (from [`poll_control`](Self::poll_control)) into `out`
    /// as a datagram for the receiver, in the data's packet-number space;
    /// its length, or `None` if it does not fit one.
    pub fn seal_control(
        &mut self,
        now: Instant,
        msg: &ControlMsg,
        out: &mut [u8],
    ) -> Option<usize> {
        let header = Header {
            session_id: self.session_id,
            packet_number: self.next_pn,
            body: Body::Control,
            send_time_us: self.clock_us(now),
        };
        let n = control_datagram::seal(&self.key, header, msg, self.layout.block_size(), out)?;
        self.next_pn += 1;
        Some(n)
    }

    /// Fires timers; call when `poll_timeout` has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.done {
            return;
        }
        if now.saturating_duration_since(self.last_heard) >= self.config.idle_timeout {
            self.done = true;
            self.events.push_back(Event::TimedOut);
            return;
        }
        self.expire_holds(now);
        if now >= self.next_status {
            self.queue_status();
            self.next_status = now + self.config.status_interval;
        }
    }

    /// The next control message to send to the receiver.
    pub fn poll_control(&mut self, _now: Instant) -> Option<ControlMsg> {
        self.control.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When the driver should next call in (pacing, holds, status, idle).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        let mut t = self
            .next_status
            .min(self.last_heard + self.config.idle_timeout);
        if self.starved {
            if let Some(&(expiry, _, _)) = self.hold_fifo.front() {
                t = t.min(expiry);
            }
            if let Some(&(sent, _)) = self.unseen.front() {
                t = t.min(sent + self.hold_time());
            }
            if let Some(&(expiry, _)) = self.grace_fifo.front() {
                t = t.min(expiry);
            }
        } else {
            t = t.min(self.pacer.next_send_time(self.max_datagram()));
        }
        Some(t)
    }

    /// The pacing rate in datagram bytes per second, for drivers sizing
    /// their batches (cheaper than [`stats`](Self::stats)).
    pub fn pacing_rate(&self) -> u64 {
        self.pacer.rate()
    }

    /// True once the transfer is complete or dead.
    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn stats(&self) -> SenderStats {
        SenderStats {
            srtt: self.rtt.srtt(),
            rtt_measured: self.rtt.has_sample(),
            rate: self.pacer.rate(),
            loss: self.loss,
            blocks_confirmed: self.confirmed.count_ones(),
            peer_received: self.loss_seen.0,
            peer_spanned: self.loss_seen.1,
            ..self.stats.clone()
        }
    }

    /// Chooses what goes next: queued NAKs, then parity of groups whose
    /// last block has gone, then new blocks, then a pass, then
    /// speculative copies.
    fn next_send(&mut self, source: &mut dyn BlockSource) -> io::Result<Option<Next>> {
        while let Some(b) = self.retransmit.pop_front() {
            self.queued.clear(b);
            if !self.confirmed.get(b) && !self.held.get(b) {
                if self.next_new == self.layout.block_count() {
                    self.queue_tail_copies(b);
                }
                return Ok(Some(Next::Block(b, Kind::Repair)));
            }
        }
        if let Some((code, _, next)) = self.tail.as_ref().and_then(|t| t.parity.front()) {
            return Ok(Some(Next::Parity(*code, *next)));
        }
        let n = self.layout.block_count();
        if self.next_new < n {
            let b = self.next_new;
            // The window never exceeds its limit, so far from the end the
            // rate-dependent window (floating point, once a block) is not
            // worked out.
            let limit = fec::window_limit(&self.layout);
            if self.codes_from.is_none() && (n - b) * 4 <= limit * 5 && self.rtt.min().is_some() {
                self.promise_codes_from();
            }
            if !self.tail_fixed && (n - b) * 2 <= limit {
                let window = self.window_blocks();
                if (n - b) * 2 <= window {
                    self.tail_fixed = true;
                    self.fix_window(n - window, b);
                }
            }
            self.next_new += 1;
            if self.next_new == n {
                self.queue_status();
            }
            self.code_groups(b + 1, source)?;
            return Ok(Some(Next::Block(b, Kind::New)));
        }
        let versions = (
            self.confirmed.version(),
            self.recent.version(),
            self.held.version(),
        );
        if self.pass_found_none != Some(versions) {
            let found = self
                .pass_candidate(self.pass_cursor, n)
                .or_else(|| self.pass_candidate(0, self.pass_cursor));
            if let Some(b) = found {
                self.pass_cursor = b + 1;
                return Ok(Some(Next::Block(b, Kind::Pass)));
            }
            self.pass_found_none = Some(versions);
        }
        Ok(self
            .speculative_candidate()
            .map(|b| Next::Block(b, Kind::Speculative)))
    }

    /// Blocks the window spans: [`WINDOW_HOLDS`] holds at the current
    /// rate, within what the receiver keeps.
    fn window_blocks(&self) -> u64 {
        let span = self.hold_time().as_secs_f64() * WINDOW_HOLDS;
        let blocks = (self.pacer.rate() as f64 * span / self.max_datagram() as f64).ceil() as u64;
        blocks.clamp(1, fec::window_limit(&self.layout))
    }

    /// Tells the receiver, a quarter of its copies' span before it would
    /// start keeping them, where the window may start at the earliest:
    /// [`KEEP_WINDOWS`] windows at the current rate before the end, or
    /// nowhere if coding a window that size would leave more than
    /// [`NO_CODING_MARGIN`] times what [`fix_window`](Self::fix_window)
    /// accepts. The receiver then keeps copies of that span only (on
    /// loopback none: copying a whole 32 MiB span into fresh memory at the
    /// end of the stream stalled the receiving thread for tens of
    /// milliseconds).
    fn promise_codes_from(&mut self) {
        let n = self.layout.block_count();
        let window = self.window_blocks();
        let reach = (window * KEEP_WINDOWS).min(fec::window_limit(&self.layout));
        let left = self.coding_left(n - window, n - window / 2);
        let hopeless = left > self.coding_allowed() * NO_CODING_MARGIN;
        let from = if hopeless && self.config.tail_coding == TailCoding::Auto {
            self.tail_fixed = true;
            n
        } else {
            n - reach
        };
        self.codes_from = Some(from);
        tracing::debug!(codes_from = from, coding_s = left, "tail promise");
        self.queue_status();
    }

    /// Seconds of decoding left when the stream ends if the window
    /// `first..` is fixed as block `next` is about to go: the last group's,
    /// or, when the receiver decodes slower than the window arrives, the
    /// excess.
    fn coding_left(&self, first: u64, next: u64) -> f64 {
        let n = self.layout.block_count();
        let groups = fec::group_ends(&self.layout, first).len().max(1) as u64;
        let bytes = |blocks: u64| (blocks * self.layout.block_size() as u64) as f64;
        let last = (n - first).div_ceil(groups);
        let sending = bytes(n - next) / self.pacer.rate().max(1) as f64;
        let coding = bytes(n - first) * CODING_SECS_PER_BYTE;
        (bytes(last) * CODING_SECS_PER_BYTE).max(coding - sending)
    }

    /// Most coding left at the end that the window may cost.
    fn coding_allowed(&self) -> f64 {
        self.rtt.srtt().as_secs_f64() * CODING_RTT_SHARE
    }

    /// Fixes the window at `first..` as block `next` is about to go
    /// (half a window before the end, so that the window reflects the rate
    /// the stream ends at, which is still rising in a short transfer):
    /// coded in groups, unless the coding left at the end
    /// ([`coding_left`](Self::coding_left)) would cost more than
    /// [`CODING_RTT_SHARE`] of a round trip.
    fn fix_window(&mut self, first: u64, next: u64) {
        let n = self.layout.block_count();
        // `first` is within the receiver's copies (`window_blocks`), and
        // not below what the status promised.
        let first = first.max(self.codes_from.unwrap_or(0));
        if first > fec::MAX_FIRST_BLOCK || first >= n {
            return;
        }
        let ends: VecDeque<u64> = fec::group_ends(&self.layout, first).into();
        let left = self.coding_left(first, next);
        let worth = left <= self.coding_allowed();
        if !worth && self.config.tail_coding == TailCoding::Auto {
            tracing::debug!(window = n - first, coding_s = left, "tail not coded");
            return;
        }
        tracing::debug!(window = n - first, groups = ends.len(), "tail window");
        self.tail = Some(Tail {
            first,
            next_group: first,
            ends,
            parity: VecDeque::new(),
        });
    }

    /// Codes the groups whose blocks are all below `sent` (those chosen
    /// to go so far): parity for the losses
    /// expected in it at the measured loss rate (the higher of the recent
    /// one and a high estimate over the last [`LOSS_MEMORY_PACKETS`]), with
    /// a margin of
    /// [`PARITY_SIGMAS`]. Parity shards are lost like blocks, hence the
    /// division by the delivery ratio.
    fn code_groups(&mut self, sent: u64, source: &mut dyn BlockSource) -> io::Result<()> {
        while self
            .tail
            .as_ref()
            .is_some_and(|t| t.ends.front().is_some_and(|&e| e <= sent))
        {
            self.code_group(source)?;
        }
        Ok(())
    }

    /// Codes the next group of the window.
    fn code_group(&mut self, source: &mut dyn BlockSource) -> io::Result<()> {
        let p = self.loss.max(self.loss_high).clamp(0.0, 0.5);
        let Some(t) = self.tail.as_mut() else {
            return Ok(());
        };
        let Some(end) = t.ends.pop_front() else {
            return Ok(());
        };
        let k = end - t.next_group;
        let lost = k as f64 * p;
        let parity = ((lost + PARITY_SIGMAS * lost.sqrt() + PARITY_FLOOR) / (1.0 - p)).ceil();
        let code = TailCode {
            first_block: t.next_group,
            originals: k as u16,
            parity: parity.min(k as f64) as u16,
        };
        t.next_group = end;
        let shards = code.encode(&self.layout, source)?;
        t.parity.push_back((code, shards, 0));
        self.stats.last_coded_bytes = k * self.layout.block_size() as u64;
        Ok(())
    }

    /// Copies the front group's shard `index` into `payload` and moves on.
    fn take_parity(&mut self, index: u16, payload: &mut [u8]) {
        let Some(t) = self.tail.as_mut() else { return };
        if let Some((code, shards, next)) = t.parity.front_mut() {
            let len = payload.len();
            payload.copy_from_slice(&shards[usize::from(index) * len..][..len]);
            *next += 1;
            if *next == code.parity {
                t.parity.pop_front();
            }
        }
    }

    /// With nothing else to send after the last new block: first the extra
    /// copies of blocks known lost, then the speculative pass. The pass
    /// resends unconfirmed blocks whose copy is still in flight, newest
    /// first: the copy of a block sent `x` before the pass started leaves
    /// `x` after it, sooner than a repair after its NAK for `x` under half
    /// a round trip. The older half is left to the NAKs, which arrive
    /// first (and a block they ask for is then held by its repair, so the
    /// pass skips it: the two meet in the middle). Ordered oldest first,
    /// the pass would resend each block just when its NAK arrives, gaining
    /// nothing. Each block is sent speculatively at most once.
    ///
    /// The tail code's parity already covers its window, so the pass first
    /// resends what lies outside it: repairs of older blocks, whose loss
    /// would cost a further round trip, and which were sent once or more
    /// already. So they get as many rounds as a block known lost gets
    /// copies ([`tail_copies`](Self::tail_copies)); there are few of them
    /// (about the loss rate times a window). Then one round over the
    /// window itself, in case more was lost there than the parity makes up
    /// for.
    fn speculative_candidate(&mut self) -> Option<u64> {
        while let Some(b) = self.extra_copies.pop_front() {
            if !self.confirmed.get(b) {
                self.speculated.set(b);
                return Some(b);
            }
        }
        let coded_from = self.tail.as_ref().map_or(u64::MAX, |t| t.first);
        let rounds = self.tail_copies() as usize;
        while self.spec_round < rounds {
            if let Some(b) = self.speculative_walk(self.spec_round, coded_from) {
                return Some(b);
            }
            self.spec_round += 1;
        }
        self.speculative_walk(rounds, u64::MAX)
    }

    /// One round of the speculative pass: the newest block below `below`
    /// not yet seen in this round that is unconfirmed and has had `round`
    /// speculative copies (for the window round: any block without one).
    fn speculative_walk(&mut self, round: usize, below: u64) -> Option<u64> {
        if self.spec_cursor.len() <= round {
            self.spec_cursor.resize(round + 1, None);
        }
        let newest = self.hold_popped + self.hold_fifo.len() as u64;
        let mut end = self.spec_cursor[round].unwrap_or(newest);
        let window_round = below == u64::MAX;
        while end > self.hold_popped {
            end -= 1;
            let (_, _, b) = self.hold_fifo[(end - self.hold_popped) as usize];
            if b >= below || self.confirmed.get(b) {
                continue;
            }
            let copies = self.spec_copies.get(&b).copied().unwrap_or(0);
            let due = if window_round || round == 0 {
                // Blocks with more than one copy in their hold already
                // (repairs sent as several) need no more.
                copies == 0 && !self.speculated.get(b) && !self.extra_holds.contains_key(&b)
            } else {
                copies as usize == round
            };
            if due {
                self.speculated.set(b);
                if !window_round {
                    self.spec_copies.insert(b, copies + 1);
                }
                self.spec_cursor[round] = Some(end);
                return Some(b);
            }
        }
        self.spec_cursor[round] = Some(end);
        None
    }

    /// First unconfirmed block in `from..to` that is neither held nor in
    /// its grace period.
    fn pass_candidate(&self, from: u64, to: u64) -> Option<u64> {
        let mut b = from;
        while let Some(c) = self.confirmed.next_clear_in_both(&self.recent, b..to) {
            if !self.held.get(c) {
                return Some(c);
            }
            b = c + 1;
        }
        None
    }

    fn hold(&mut self, now: Instant, block: u64) {
        let hold = self.hold_time();
        if !self.held.set(block) {
            *self.extra_holds.entry(block).or_insert(0) += 1;
        }
        self.recent.set(block);
        self.hold_fifo.push_back((now + hold, now, block));
        if self.hold_fifo.len() > MAX_HOLD_RECORDS {
            if let Some((_, _, b)) = self.hold_fifo.pop_front() {
                self.hold_popped += 1;
                self.release(b);
                self.recent.clear(b);
            }
        }
        if self.grace_fifo.len() > MAX_HOLD_RECORDS {
            if let Some((_, b)) = self.grace_fifo.pop_front() {
                self.recent.clear(b);
            }
        }
    }

    fn expire_holds(&mut self, now: Instant) {
        if self.holds_expired_at == Some(now) {
            return;
        }
        self.holds_expired_at = Some(now);
        while let Some(&(expiry, sent, b)) = self.hold_fifo.front() {
            if expiry > now {
                break;
            }
            self.hold_popped += 1;
            self.hold_fifo.pop_front();
            self.unseen.push_back((sent, b));
        }
        // The hold was estimated at send time; the copy had its chance
        // once the receiver holds something sent after it, or once the
        // hold as estimated now (through today's queue) has passed.
        let hold = self.hold_time();
        while let Some(&(sent, b)) = self.unseen.front() {
            if now < sent + hold && self.frontier.is_none_or(|f| f < sent) {
                break;
            }
            self.unseen.pop_front();
            self.release(b);
            self.grace_fifo.push_back((now + PASS_GRACE, b));
            if !self.confirmed.get(b) {
                self.starved = false;
            }
        }
        while let Some(&(expiry, b)) = self.grace_fifo.front() {
            if expiry > now {
                break;
            }
            self.grace_fifo.pop_front();
            if !self.held.get(b) {
                self.recent.clear(b);
            }
            if !self.confirmed.get(b) {
                self.starved = false;
            }
        }
    }

    /// Copies a block known to be lost is sent in after the last new block:
    /// enough that all are lost with a chance below [`TAIL_RESIDUAL_LOSS`]
    /// at the measured loss (at least two, at most [`MAX_TAIL_COPIES`]).
    /// Losing the last copy otherwise costs a further round trip.
    fn tail_copies(&self) -> u32 {
        let mut k = 2;
        while k < MAX_TAIL_COPIES && self.loss.powi(k as i32) > TAIL_RESIDUAL_LOSS {
            k += 1;
        }
        k
    }

    /// Queues the copies of `b` beyond the one about to go (or in flight).
    fn queue_tail_copies(&mut self, b: u64) {
        for _ in 1..self.tail_copies() {
            self.extra_copies.push_back(b);
        }
    }

    /// The smoothed RTT as the status message carries it.
    fn srtt_us(&self) -> u32 {
        u32::try_from(self.rtt.srtt().as_micros()).unwrap_or(u32::MAX)
    }

    /// How long feedback about a copy sent now may take.
    fn hold_time(&self) -> Duration {
        (self.rtt.srtt() + 2 * self.rtt.rttvar()).max(self.rtt.latest()) + HOLD_SLACK
    }

    /// One copy of `b` left its hold.
    fn release(&mut self, b: u64) {
        match self.extra_holds.get_mut(&b) {
            Some(1) => {
                self.extra_holds.remove(&b);
            }
            Some(extra) => *extra -= 1,
            None => {
                self.held.clear(b);
            }
        }
    }

    fn handle_feedback(&mut self, now: Instant, f: &Feedback) {
        if self.last_seq.is_some_and(|s| f.seq <= s) {
            self.stats.stale_feedback += 1;
            return;
        }
        self.last_seq = Some(f.seq);
        self.stats.feedback += 1;
        let n = self.layout.block_count();

        if let Some(e) = f.echo {
            let elapsed = self.clock_us(now).wrapping_sub(e.send_time_us);
            if let Some(sent) = now.checked_sub(Duration::from_micros(u64::from(elapsed))) {
                self.frontier = Some(self.frontier.map_or(sent, |f| f.max(sent)));
            }
            if let Some(rtt) = elapsed.checked_sub(e.hold_us) {
                let rtt = Duration::from_micros(u64::from(rtt));
                if rtt <= MAX_RTT_SAMPLE {
                    self.rtt.update(rtt);
                }
            }
        }

        self.holds_expired_at = None;
        self.expire_holds(now);

        // What the receiver holds, and what it asks for again. Everything is
        // clipped to the stream so a confused peer cannot make us loop.
        let cum_ack = f.cum_ack.min(n);
        if cum_ack > self.confirmed_prefix {
            self.confirmed.set_range(self.confirmed_prefix..cum_ack);
            self.confirmed_prefix = cum_ack;
        }
        let scan_end = f.scan.end.min(n);
        let mut pos = f.scan.start.min(n);
        let mut queued = 0u64;
        for r in &f.naks {
            let (start, end) = (r.start.min(n), r.end.min(n));
            self.confirmed.set_range(pos..start);
            // A NAK may withdraw an earlier confirmation: a chunk that
            // failed verification has its blocks re-requested.
            self.confirmed.clear_range(start..end);
            if start < end {
                self.confirmed_prefix = self.confirmed_prefix.min(start);
            }
            let mut b = start;
            while queued < MAX_QUEUED_PER_FEEDBACK {
                let Some(c) = self.held.next_clear_in(b..end) else {
                    break;
                };
                if self.queued.set(c) {
                    self.retransmit.push_back(c);
                    queued += 1;
                }
                b = c + 1;
            }
            // A speculated block NAKed once every copy but the last was due:
            // those were lost, and the last, still in flight, may be too.
            let mut b = start;
            while let Some(c) = self.speculated.next_set_in(b..end) {
                if self.held.get(c) && !self.extra_holds.contains_key(&c) && self.renewed.set(c) {
                    self.queue_tail_copies(c);
                    queued += 1;
                }
                b = c + 1;
            }
            pos = end;
        }
        self.confirmed.set_range(pos..scan_end);
        if queued > 0 {
            self.starved = false;
        }

        // Loss: authenticated arrivals against packet numbers spanned.
        // Counts accumulate over feedback until they span enough packets:
        // at a low rate each interval holds only a few, and an estimate
        // that skipped those would freeze (a flow squeezed to a trickle
        // right after heavy loss kept "62 % loss" and kept cutting).
        match self.last_counts {
            Some((p0, h0)) => {
                let dp = f.packets_received.saturating_sub(p0);
                let dh = f.highest_pn.saturating_sub(h0);
                if dh >= LOSS_SAMPLE_PACKETS {
                    let inst = 1.0 - (dp as f64 / dh as f64).min(1.0);
                    self.loss = 0.75 * self.loss + 0.25 * inst;
                    self.last_counts = Some((f.packets_received, f.highest_pn));
                }
            }
            None => self.last_counts = Some((f.packets_received, f.highest_pn)),
        }
        // Over about the last LOSS_MEMORY_PACKETS, as a high estimate
        // (about the 97.5 % Poisson bound): parity sizing needs one that
        // neither dips with the moving estimate nor trusts a few round
        // trips of data (the first group of a short transfer is coded
        // early), and that forgets the losses of startup's overshoot.
        let (p0, h0) = self.loss_seen;
        let spanned = f.highest_pn.saturating_add(1).saturating_sub(h0) as f64;
        let arrived = f.packets_received.saturating_sub(p0) as f64;
        if spanned > 0.0 {
            let keep = (1.0 - spanned / LOSS_MEMORY_PACKETS).max(0.0);
            let (lost, sent) = &mut self.loss_window;
            *lost = *lost * keep + (spanned - arrived).max(0.0);
            *sent = *sent * keep + spanned;
            self.loss_high = ((*lost + 2.0 * lost.sqrt() + 2.0) / *sent).min(1.0);
            self.loss_seen = (f.packets_received, f.highest_pn.saturating_add(1));
        }

        let mut base_drop = Duration::ZERO;
        let queue_delay = f.owd.and_then(|o| {
            base_drop = self.base_delay.update(now, o.min_us);
            let base = self.base_delay.base()?;
            let q = o.min_us.saturating_sub(base).max(0);
            Some(Duration::from_micros(q as u64))
        });
        let delivery_rate = (f.recv_rate as f64 / (1.0 - self.loss.min(0.5))) as u64;
        let sample = PathSample {
            queue_delay,
            base_drop,
            delivery_rate,
            arrival_rate: f.recv_rate,
            loss: self.loss,
            srtt: self.rtt.srtt(),
            min_rtt: self.rtt.min().unwrap_or(self.rtt.srtt()),
        };
        self.controller.on_feedback(now, &sample);
        let current = self.pacer.rate();
        self.backpressure.on_report(
            now,
            f64::from(f.sink_fill) / 1000.0,
            f.sink_rate,
            current,
            self.rtt.srtt(),
        );
        let rate = self.backpressure.limit(self.controller.rate());
        tracing::trace!(
            queue_us = sample.queue_delay.map(|d| d.as_micros() as u64),
            delivered = sample.delivery_rate,
            loss = sample.loss,
            srtt_us = sample.srtt.as_micros() as u64,
            controller = self.controller.rate(),
            rate,
            "feedback"
        );
        self.pacer.set_rate(now, rate);

        // The receiver sizes its rate window by the round trip: tell it as
        // soon as one is measured, and again when it changes twofold.
        let srtt_us = self.srtt_us();
        let reported = self.status_srtt_us;
        if self.rtt.min().is_some()
            && (reported == 0 || srtt_us / 2 >= reported || srtt_us.saturating_mul(2) <= reported)
        {
            self.queue_status();
        }

        if f.complete && !self.done {
            self.confirmed.set_range(0..n);
            self.confirmed_prefix = n;
            self.done = true;
            self.events.push_back(Event::Complete);
        }
    }

    fn queue_status(&mut self) {
        let n = self.layout.block_count();
        let all_sent = self.next_new >= n;
        let srtt_us = self.srtt_us();
        if self.rtt.min().is_some() {
            self.status_srtt_us = srtt_us.max(1);
        }
        self.control.push_back(ControlMsg::Status(SenderStatus {
            sent_once: self.next_new,
            all_sent,
            srtt_us,
            rate: self.pacer.rate(),
            codes_from: self.codes_from.unwrap_or(0),
        }));
    }

    /// Microseconds since this sender started, wrapping (the header field).
    fn clock_us(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_micros() as u32
    }
}
