//! The end of the stream: speculative copies and extra copies of blocks
//! known lost.
//!
//! After the last new block the path would idle for a round trip, waiting
//! for the NAKs about the last round trip's blocks, and every block lost
//! in it would cost that round trip and half another. Instead the sender
//! resends, newest first, the unconfirmed blocks whose copy is still in
//! flight, each at most once: at most one in-flight window of extra
//! datagrams, in time the path would have idled, counted in
//! [`SenderStats::speculative`](super::SenderStats::speculative). Blocks
//! the receiver NAKs after the last new block — their copies were lost,
//! and one in flight may be too — go out in two to four copies
//! ([`tail_copies`]), enough that losing all of them is unlikely at the
//! measured loss, so the transfer rarely waits a further round trip per
//! loss at its end.
//!
//! [`Speculation`] owns which blocks were sent speculatively, how often,
//! and the copies still owed. It reads the send records of
//! [`Holds`] and never sends by itself: the sender asks it last, when
//! nothing else is due.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;

use super::holds::Holds;
use crate::proto::bitmap::Bitmap;

/// Most copies a block known to be lost is sent in after the last new
/// block.
const MAX_TAIL_COPIES: u32 = 4;
/// Chance of losing every copy of such a block that the copies aim below.
const TAIL_RESIDUAL_LOSS: f64 = 2e-4;

/// Copies a block known to be lost is sent in after the last new block:
/// enough that all are lost with a chance below [`TAIL_RESIDUAL_LOSS`] at
/// the measured `loss` (at least two, at most [`MAX_TAIL_COPIES`]). Losing
/// the last copy otherwise costs a further round trip.
pub(super) fn tail_copies(loss: f64) -> u32 {
    let mut k = 2;
    while k < MAX_TAIL_COPIES && loss.powi(k as i32) > TAIL_RESIDUAL_LOSS {
        k += 1;
    }
    k
}

/// The speculative pass and the extra copies.
pub(super) struct Speculation {
    /// Blocks sent speculatively once (never again).
    speculated: Bitmap,
    /// Speculated blocks already sent in extra copies after a NAK.
    renewed: Bitmap,
    /// The pass walks the send records from the newest back, in rounds:
    /// [`tail_copies`] over the blocks outside the tail code's window,
    /// then one over the window. Candidates left in each round are below
    /// its absolute index here.
    cursor: Vec<Option<u64>>,
    round: usize,
    /// Speculative copies sent of blocks outside the window.
    copies: HashMap<u64, u32>,
    /// Extra copies of blocks known lost at the end of the stream.
    extra_copies: VecDeque<u64>,
}

impl Speculation {
    /// Nothing sent yet, in a stream of `blocks` blocks.
    pub(super) fn new(blocks: u64) -> Self {
        Speculation {
            speculated: Bitmap::new(blocks),
            renewed: Bitmap::new(blocks),
            cursor: Vec::new(),
            round: 0,
            copies: HashMap::new(),
            extra_copies: VecDeque::new(),
        }
    }

    /// Queues the copies of `b` beyond the one about to go (or in
    /// flight), at the measured `loss`.
    pub(super) fn queue_copies(&mut self, b: u64, loss: f64) {
        for _ in 1..tail_copies(loss) {
            self.extra_copies.push_back(b);
        }
    }

    /// The receiver NAKed `range`. A speculated block in it NAKed once
    /// every copy but the last was due: those were lost, and the last,
    /// still in flight, may be too, so it gets extra copies (once).
    /// Returns how many blocks were renewed so.
    pub(super) fn renew(&mut self, range: Range<u64>, holds: &Holds, loss: f64) -> u64 {
        let mut renewed = 0;
        let mut b = range.start;
        while let Some(c) = self.speculated.next_set_in(b..range.end) {
            if holds.is_held(c) && !holds.has_extra(c) && self.renewed.set(c) {
                self.queue_copies(c, loss);
                renewed += 1;
            }
            b = c + 1;
        }
        renewed
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
    /// The tail code's parity already covers its window (blocks from
    /// `coded_from` on), so the pass first resends what lies outside it:
    /// repairs of older blocks, whose loss would cost a further round trip,
    /// and which were sent once or more already. So they get as many
    /// rounds as a block known lost gets copies ([`tail_copies`]); there
    /// are few of them (about the loss rate times a window). Then one
    /// round over the window itself, in case more was lost there than the
    /// parity makes up for.
    pub(super) fn next(
        &mut self,
        confirmed: &Bitmap,
        holds: &Holds,
        coded_from: u64,
        loss: f64,
    ) -> Option<u64> {
        while let Some(b) = self.extra_copies.pop_front() {
            if !confirmed.get(b) {
                self.speculated.set(b);
                return Some(b);
            }
        }
        let rounds = tail_copies(loss) as usize;
        while self.round < rounds {
            if let Some(b) = self.walk(self.round, coded_from, confirmed, holds) {
                return Some(b);
            }
            self.round += 1;
        }
        self.walk(rounds, u64::MAX, confirmed, holds)
    }

    /// One round of the speculative pass: the newest block below `below`
    /// not yet seen in this round that is unconfirmed and has had `round`
    /// speculative copies (for the window round: any block without one).
    fn walk(&mut self, round: usize, below: u64, confirmed: &Bitmap, holds: &Holds) -> Option<u64> {
        if self.cursor.len() <= round {
            self.cursor.resize(round + 1, None);
        }
        let mut end = self.cursor[round].unwrap_or(holds.end_index());
        let window_round = below == u64::MAX;
        while end > holds.start_index() {
            end -= 1;
            let b = holds.block_at(end);
            if b >= below || confirmed.get(b) {
                continue;
            }
            let copies = self.copies.get(&b).copied().unwrap_or(0);
            let due = if window_round || round == 0 {
                // Blocks with more than one copy in their hold already
                // (repairs sent as several) need no more.
                copies == 0 && !self.speculated.get(b) && !holds.has_extra(b)
            } else {
                copies as usize == round
            };
            if due {
                self.speculated.set(b);
                if !window_round {
                    self.copies.insert(b, copies + 1);
                }
                self.cursor[round] = Some(end);
                return Some(b);
            }
        }
        self.cursor[round] = Some(end);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn tail_copies_grow_with_loss_between_two_and_four() {
        assert_eq!(tail_copies(0.0), 2);
        assert_eq!(tail_copies(0.01), 2);
        assert_eq!(tail_copies(0.05), 3);
        assert_eq!(tail_copies(0.3), 4);
        assert_eq!(tail_copies(1.0), MAX_TAIL_COPIES);
    }

    #[test]
    fn the_pass_goes_newest_first_outside_the_window_then_over_it() {
        let t0 = Instant::now();
        let hold = Duration::from_millis(10);
        let confirmed = Bitmap::new(8);
        let mut holds = Holds::new(8);
        for b in 0..8 {
            holds.add(t0, b, hold);
        }
        let mut spec = Speculation::new(8);
        // Blocks 6 and 7 are coded: two rounds (no loss) over 0..6, newest
        // first, then one over everything not yet speculated.
        let order: Vec<u64> =
            std::iter::from_fn(|| spec.next(&confirmed, &holds, 6, 0.0)).collect();
        assert_eq!(order, [5, 4, 3, 2, 1, 0, 5, 4, 3, 2, 1, 0, 7, 6]);
    }

    #[test]
    fn a_renewed_block_goes_out_in_extra_copies_once() {
        let t0 = Instant::now();
        let mut confirmed = Bitmap::new(4);
        let mut holds = Holds::new(4);
        holds.add(t0, 2, Duration::from_millis(10));
        let mut spec = Speculation::new(4);
        assert_eq!(spec.next(&confirmed, &holds, u64::MAX, 0.0), Some(2));
        assert_eq!(spec.renew(0..4, &holds, 0.05), 1);
        assert_eq!(spec.renew(0..4, &holds, 0.05), 0, "renewed once only");
        // Two extra copies at 5 % loss; a confirmed one is skipped.
        assert_eq!(spec.next(&confirmed, &holds, u64::MAX, 0.05), Some(2));
        confirmed.set(2);
        assert_eq!(spec.next(&confirmed, &holds, u64::MAX, 0.05), None);
    }
}
