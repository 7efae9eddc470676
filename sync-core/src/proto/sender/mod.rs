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
//! The state is split by what it tracks, one file each:
//! - `holds`: a block is not sent again until the feedback about its
//!   previous copy can have arrived (its *hold*), which keeps NAKs
//!   repeated by every feedback from multiplying retransmissions;
//! - `repair`: the queue of NAKed blocks and the tail passes, and how
//!   feedback becomes confirmations and repairs;
//! - `tail`: the tail codes' window ([`crate::proto::fec`]), whose parity
//!   goes out right after the window's last blocks so that losses at the
//!   end of the stream cost half a round trip rather than one and a half;
//! - `speculative`: after the last new block, copies of blocks still in
//!   flight, newest first, in time the path would idle, and extra copies
//!   of blocks known lost;
//! - `loss`: the loss and delivery estimates from the receiver's counts;
//! - `config` and `stats`: what the driver sets and reads.
//!
//! This file holds the state machine itself: its public API, the order in
//! which the clusters are asked for the next datagram (`next_send`), and
//! the feedback handling that feeds them and the congestion controller.
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

mod config;
mod holds;
mod loss;
mod repair;
mod speculative;
mod stats;
mod tail;

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bitmap::Bitmap;
use super::congestion::{BackPressure, Controller, PathSample};
use super::control::{ControlMsg, Feedback, SenderStatus};
use super::control_datagram;
use super::crypto::{Direction, PacketKey, SessionSecret};
use super::fec::TailCode;
use super::layout::Layout;
use super::pacer::Pacer;
use super::replay::{ReplayCheck, ReplayWindow};
use super::rtt::{BaseDelay, RttEstimator, MAX_RTT_SAMPLE};
use super::wire::{Body, DatagramError, Header, HEADER_LEN};

pub use super::source::BlockSource;
pub use config::{SenderConfig, TailCoding};
pub use holds::MAX_HOLD_RECORDS;
pub use repair::MAX_QUEUED_PER_FEEDBACK;
pub use stats::SenderStats;

use holds::Holds;
use loss::LossEstimator;
use repair::Repairs;
use speculative::Speculation;
use tail::TailCodes;

/// Things the driver should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The receiver holds and verified every block: the transfer is done.
    Complete,
    /// No feedback for [`SenderConfig::idle_timeout`]; the transfer is dead.
    TimedOut,
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
    /// The front group's shard `index` of the tail codes.
    Parity(TailCode, u16),
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
    holds: Holds,
    repairs: Repairs,
    speculation: Speculation,
    tail: TailCodes,
    /// Nothing was sendable at the last attempt; wait for a hold to expire
    /// or for feedback instead of polling the pacer.
    starved: bool,
    controller: Box<dyn Controller>,
    backpressure: BackPressure,
    pacer: Pacer,
    rtt: RttEstimator,
    base_delay: BaseDelay,
    loss: LossEstimator,
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
            holds: Holds::new(n),
            repairs: Repairs::new(n),
            speculation: Speculation::new(n),
            tail: TailCodes::new(),
            starved: false,
            controller,
            backpressure: BackPressure::new(),
            pacer,
            rtt: RttEstimator::new(config.initial_rtt),
            base_delay: BaseDelay::new(),
            loss: LossEstimator::new(),
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
                self.tail.take_parity(index, payload);
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
                self.holds.add(now, b, holds::hold_time(&self.rtt));
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
        let send_time_us = self.clock_us(now);
        control_datagram::seal_next(
            &self.key,
            self.session_id,
            &mut self.next_pn,
            send_time_us,
            msg,
            self.layout.block_size(),
            out,
        )
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
            if let Some(expiry) = self.holds.next_expiry(&self.rtt) {
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
        let (peer_received, peer_spanned) = self.loss.peer_counts();
        SenderStats {
            srtt: self.rtt.srtt(),
            rtt_measured: self.rtt.has_sample(),
            rate: self.pacer.rate(),
            loss: self.loss.current(),
            blocks_confirmed: self.confirmed.count_ones(),
            peer_received,
            peer_spanned,
            ..self.stats.clone()
        }
    }

    /// Chooses what goes next: queued NAKs, then parity of groups whose
    /// last block has gone, then new blocks, then a pass, then
    /// speculative copies.
    fn next_send(&mut self, source: &mut dyn BlockSource) -> io::Result<Option<Next>> {
        let n = self.layout.block_count();
        if let Some(b) = self.repairs.next_repair(&self.confirmed, &self.holds) {
            if self.next_new == n {
                self.speculation.queue_copies(b, self.loss.current());
            }
            return Ok(Some(Next::Block(b, Kind::Repair)));
        }
        if let Some((code, index)) = self.tail.next_parity() {
            return Ok(Some(Next::Parity(code, index)));
        }
        if self.next_new < n {
            let b = self.next_new;
            self.plan_tail(b);
            self.next_new += 1;
            if self.next_new == n {
                self.queue_status();
            }
            self.code_groups(b + 1, source)?;
            return Ok(Some(Next::Block(b, Kind::New)));
        }
        if let Some(b) = self.repairs.next_pass(&self.confirmed, &self.holds, n) {
            return Ok(Some(Next::Block(b, Kind::Pass)));
        }
        let coded_from = self.tail.coded_from();
        Ok(self
            .speculation
            .next(
                &self.confirmed,
                &self.holds,
                coded_from,
                self.loss.current(),
            )
            .map(|b| Next::Block(b, Kind::Speculative)))
    }

    /// Ends the holds that are over; something may be sendable again.
    fn expire_holds(&mut self, now: Instant) {
        if self.holds.expire(now, &self.rtt, &self.confirmed) {
            self.starved = false;
        }
    }

    /// The smoothed RTT as the status message carries it.
    fn srtt_us(&self) -> u32 {
        u32::try_from(self.rtt.srtt().as_micros()).unwrap_or(u32::MAX)
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
                self.holds.saw_sent(sent);
            }
            if let Some(rtt) = elapsed.checked_sub(e.hold_us) {
                let rtt = Duration::from_micros(u64::from(rtt));
                if rtt <= MAX_RTT_SAMPLE {
                    self.rtt.update(rtt);
                }
            }
        }

        self.holds.forget_expiry();
        self.expire_holds(now);
        self.take_acks(f);
        self.loss.on_counts(f.packets_received, f.highest_pn);

        let mut base_drop = Duration::ZERO;
        let queue_delay = f.owd.and_then(|o| {
            base_drop = self.base_delay.update(now, o.min_us);
            let base = self.base_delay.base()?;
            let q = o.min_us.saturating_sub(base).max(0);
            Some(Duration::from_micros(q as u64))
        });
        let sample = PathSample {
            queue_delay,
            base_drop,
            delivery_rate: self.loss.delivery_rate(f.recv_rate),
            arrival_rate: f.recv_rate,
            loss: self.loss.current(),
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
            codes_from: self.tail.promised_from(),
        }));
    }

    /// Microseconds since this sender started, wrapping (the header field).
    fn clock_us(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_micros() as u32
    }
}
