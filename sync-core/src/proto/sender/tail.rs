//! The tail-code window: which of the newest blocks the sender covers with
//! parity, and when the parity goes.
//!
//! The last hold's worth of new blocks (the window) is covered by the tail
//! codes ([`crate::proto::fec`]): the window is fixed when the new blocks
//! reach it, cut into groups, and each group's parity shards, as many as
//! the measured loss calls for with a margin, go out right after its last
//! block. The receiver rebuilds what a group lacks as soon as its parity
//! arrives, so the end of the stream waits for half a round trip rather
//! than one and a half. The speculative pass ([`super::speculative`])
//! still follows: it costs only time the path would idle, and it covers
//! what the parity cannot (a burst of losses beyond the margin, repairs of
//! older blocks still in flight).
//!
//! Before that, the status tells the receiver where codes may start at
//! the earliest, so that it keeps copies of that span only. [`TailCodes`]
//! owns the promise, the window and the parity waiting to go; the coding
//! itself is [`fec`]'s, and the choice of what goes next the sender's.

use std::collections::VecDeque;
use std::io;

use super::{holds, Sender, TailCoding};
use crate::proto::fec::{self, TailCode};
use crate::proto::source::BlockSource;

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

/// The promise, the window once fixed, and the parity still to go.
#[derive(Default)]
pub(super) struct TailCodes {
    /// The promise the status carries, once made: no code starts below
    /// this block (see [`Sender::promise_codes_from`]).
    codes_from: Option<u64>,
    /// The window is fixed, or will never be coded.
    fixed: bool,
    /// The window's codes, once it is fixed (if it is coded).
    window: Option<Window>,
}

/// The tail codes: the window, fixed when the new blocks reach it, and
/// its groups, each coded when its last block is chosen.
struct Window {
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

impl TailCodes {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// The promise as the status carries it (`0`: none yet).
    pub(super) fn promised_from(&self) -> u64 {
        self.codes_from.unwrap_or(0)
    }

    /// The first block the codes cover (`u64::MAX`: none).
    pub(super) fn coded_from(&self) -> u64 {
        self.window.as_ref().map_or(u64::MAX, |w| w.first)
    }

    /// The front group's next parity shard, if one waits to go.
    pub(super) fn next_parity(&self) -> Option<(TailCode, u16)> {
        let (code, _, next) = self.window.as_ref()?.parity.front()?;
        Some((*code, *next))
    }

    /// Copies the front group's shard `index` into `payload` and moves on.
    pub(super) fn take_parity(&mut self, index: u16, payload: &mut [u8]) {
        let Some(w) = self.window.as_mut() else {
            return;
        };
        if let Some((code, shards, next)) = w.parity.front_mut() {
            let len = payload.len();
            payload.copy_from_slice(&shards[usize::from(index) * len..][..len]);
            *next += 1;
            if *next == code.parity {
                w.parity.pop_front();
            }
        }
    }
}

impl Sender {
    /// New block `b` is about to go: makes the promise when the end nears
    /// and fixes the window when the new blocks reach it. The window never
    /// exceeds its limit, so far from the end the rate-dependent window
    /// (floating point, once a block) is not worked out.
    pub(super) fn plan_tail(&mut self, b: u64) {
        let n = self.layout.block_count();
        let limit = fec::window_limit(&self.layout);
        if self.tail.codes_from.is_none() && (n - b) * 4 <= limit * 5 && self.rtt.min().is_some() {
            self.promise_codes_from();
        }
        if !self.tail.fixed && (n - b) * 2 <= limit {
            let window = self.window_blocks();
            if (n - b) * 2 <= window {
                self.tail.fixed = true;
                self.fix_window(n - window, b);
            }
        }
    }

    /// Blocks the window spans: [`WINDOW_HOLDS`] holds at the current
    /// rate, within what the receiver keeps.
    fn window_blocks(&self) -> u64 {
        let span = holds::hold_time(&self.rtt).as_secs_f64() * WINDOW_HOLDS;
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
            self.tail.fixed = true;
            n
        } else {
            n - reach
        };
        self.tail.codes_from = Some(from);
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
        let first = first.max(self.tail.promised_from());
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
        self.tail.window = Some(Window {
            first,
            next_group: first,
            ends,
            parity: VecDeque::new(),
        });
    }

    /// Codes the groups whose blocks are all below `sent` (those chosen
    /// to go so far): parity for the losses expected in it at the measured
    /// loss rate (the higher of the recent one and a high estimate over
    /// the last [`LOSS_MEMORY_PACKETS`](super::loss::LOSS_MEMORY_PACKETS)),
    /// with a margin of [`PARITY_SIGMAS`]. Parity shards are lost like
    /// blocks, hence the division by the delivery ratio.
    pub(super) fn code_groups(
        &mut self,
        sent: u64,
        source: &mut dyn BlockSource,
    ) -> io::Result<()> {
        while self
            .tail
            .window
            .as_ref()
            .is_some_and(|w| w.ends.front().is_some_and(|&e| e <= sent))
        {
            self.code_group(source)?;
        }
        Ok(())
    }

    /// Codes the next group of the window.
    fn code_group(&mut self, source: &mut dyn BlockSource) -> io::Result<()> {
        let p = self.loss.current().max(self.loss.high()).clamp(0.0, 0.5);
        let Some(w) = self.tail.window.as_mut() else {
            return Ok(());
        };
        let Some(end) = w.ends.pop_front() else {
            return Ok(());
        };
        let k = end - w.next_group;
        let lost = k as f64 * p;
        let parity = ((lost + PARITY_SIGMAS * lost.sqrt() + PARITY_FLOOR) / (1.0 - p)).ceil();
        let code = TailCode {
            first_block: w.next_group,
            originals: k as u16,
            parity: parity.min(k as f64) as u16,
        };
        w.next_group = end;
        let shards = code.encode(&self.layout, source)?;
        w.parity.push_back((code, shards, 0));
        self.stats.last_coded_bytes = k * self.layout.block_size() as u64;
        Ok(())
    }
}
