//! The holds: which blocks have a copy whose feedback may still come.
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
//! current RTT, has passed. After its hold a block waits a grace period
//! before a tail pass may resend it unasked.
//!
//! [`Holds`] owns the records of every copy sent, in send order, and
//! answers "is this block held?", "may a pass take it?" and "when does the
//! next hold end?". It never chooses what to send; the sender asks it.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::proto::bitmap::Bitmap;
use crate::proto::rtt::RttEstimator;

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

/// How long feedback about a copy sent now may take.
pub(super) fn hold_time(rtt: &RttEstimator) -> Duration {
    (rtt.srtt() + 2 * rtt.rttvar()).max(rtt.latest()) + HOLD_SLACK
}

/// The copies in flight and in their grace period.
pub(super) struct Holds {
    /// Blocks with a copy within its hold; NAKs about them are not acted on.
    held: Bitmap,
    /// Held blocks with more than one copy within its hold (only at the
    /// end of the stream): how many more.
    extra: HashMap<u64, u32>,
    /// Copies sent, in send order: (hold expiry, sent, block).
    fifo: VecDeque<(Instant, Instant, u64)>,
    /// Records popped from the front of `fifo` so far, so positions in it
    /// can be kept as absolute indices.
    popped: u64,
    /// When the holds were last expired, while no feedback has moved the
    /// round trip or the frontier since: expiring again at that instant
    /// finds nothing (every record added since expires later), and the
    /// sender asks once a datagram.
    expired_at: Option<Instant>,
    /// Copies whose hold expired before the receiver was seen to hold a
    /// datagram sent after them: (sent, block).
    unseen: VecDeque<(Instant, u64)>,
    /// Send time of the newest datagram the receiver is known to hold.
    frontier: Option<Instant>,
    /// Blocks within hold + [`PASS_GRACE`]: tail passes skip them.
    recent: Bitmap,
    /// Blocks in their grace period: (grace expiry, block).
    grace: VecDeque<(Instant, u64)>,
}

impl Holds {
    /// No copies yet, in a stream of `blocks` blocks.
    pub(super) fn new(blocks: u64) -> Self {
        Holds {
            held: Bitmap::new(blocks),
            extra: HashMap::new(),
            fifo: VecDeque::new(),
            popped: 0,
            expired_at: None,
            unseen: VecDeque::new(),
            frontier: None,
            recent: Bitmap::new(blocks),
            grace: VecDeque::new(),
        }
    }

    /// True while `block` has a copy within its hold.
    pub(super) fn is_held(&self, block: u64) -> bool {
        self.held.get(block)
    }

    /// True while `block` has more than one copy within its hold.
    pub(super) fn has_extra(&self, block: u64) -> bool {
        self.extra.contains_key(&block)
    }

    /// The first block in `range` without a copy in its hold.
    pub(super) fn next_unheld_in(&self, range: Range<u64>) -> Option<u64> {
        self.held.next_clear_in(range)
    }

    /// First block in `from..to` that is unconfirmed and neither held nor
    /// in its grace period: what a tail pass may resend.
    pub(super) fn next_passable(&self, confirmed: &Bitmap, from: u64, to: u64) -> Option<u64> {
        let mut b = from;
        while let Some(c) = confirmed.next_clear_in_both(&self.recent, b..to) {
            if !self.held.get(c) {
                return Some(c);
            }
            b = c + 1;
        }
        None
    }

    /// The versions of the held and grace sets: while they and the
    /// confirmations stay the same, so does what a pass may take.
    pub(super) fn versions(&self) -> (u64, u64) {
        (self.recent.version(), self.held.version())
    }

    /// Absolute index one past the newest copy recorded.
    pub(super) fn end_index(&self) -> u64 {
        self.popped + self.fifo.len() as u64
    }

    /// Absolute index of the oldest copy still in its hold.
    pub(super) fn start_index(&self) -> u64 {
        self.popped
    }

    /// The block of the copy at absolute index `i`, which must lie in
    /// [`start_index`](Self::start_index)`..`[`end_index`](Self::end_index).
    pub(super) fn block_at(&self, i: u64) -> u64 {
        self.fifo[(i - self.popped) as usize].2
    }

    /// A copy of `block` left at `now`; its feedback may take `hold`.
    pub(super) fn add(&mut self, now: Instant, block: u64, hold: Duration) {
        if !self.held.set(block) {
            *self.extra.entry(block).or_insert(0) += 1;
        }
        self.recent.set(block);
        self.fifo.push_back((now + hold, now, block));
        if self.fifo.len() > MAX_HOLD_RECORDS {
            if let Some((_, _, b)) = self.fifo.pop_front() {
                self.popped += 1;
                self.release(b);
                self.recent.clear(b);
            }
        }
        if self.grace.len() > MAX_HOLD_RECORDS {
            if let Some((_, b)) = self.grace.pop_front() {
                self.recent.clear(b);
            }
        }
    }

    /// The receiver holds a datagram sent at `sent`.
    pub(super) fn saw_sent(&mut self, sent: Instant) {
        self.frontier = Some(self.frontier.map_or(sent, |f| f.max(sent)));
    }

    /// Feedback moved the round trip or the frontier: the next
    /// [`expire`](Self::expire) looks again even at the same instant.
    pub(super) fn forget_expiry(&mut self) {
        self.expired_at = None;
    }

    /// Ends the holds and grace periods that are over at `now`; true if a
    /// block still unconfirmed left one (there may be something to send).
    pub(super) fn expire(&mut self, now: Instant, rtt: &RttEstimator, confirmed: &Bitmap) -> bool {
        if self.expired_at == Some(now) {
            return false;
        }
        self.expired_at = Some(now);
        let mut freed = false;
        while let Some(&(expiry, sent, b)) = self.fifo.front() {
            if expiry > now {
                break;
            }
            self.popped += 1;
            self.fifo.pop_front();
            self.unseen.push_back((sent, b));
        }
        // The hold was estimated at send time; the copy had its chance
        // once the receiver holds something sent after it, or once the
        // hold as estimated now (through today's queue) has passed.
        let hold = hold_time(rtt);
        while let Some(&(sent, b)) = self.unseen.front() {
            if now < sent + hold && self.frontier.is_none_or(|f| f < sent) {
                break;
            }
            self.unseen.pop_front();
            self.release(b);
            self.grace.push_back((now + PASS_GRACE, b));
            freed |= !confirmed.get(b);
        }
        while let Some(&(expiry, b)) = self.grace.front() {
            if expiry > now {
                break;
            }
            self.grace.pop_front();
            if !self.held.get(b) {
                self.recent.clear(b);
            }
            freed |= !confirmed.get(b);
        }
        freed
    }

    /// When the next hold or grace period ends, if any is running.
    pub(super) fn next_expiry(&self, rtt: &RttEstimator) -> Option<Instant> {
        let fifo = self.fifo.front().map(|&(expiry, _, _)| expiry);
        let unseen = self.unseen.front().map(|&(sent, _)| sent + hold_time(rtt));
        let grace = self.grace.front().map(|&(expiry, _)| expiry);
        [fifo, unseen, grace].into_iter().flatten().min()
    }

    /// One copy of `b` left its hold.
    fn release(&mut self, b: u64) {
        match self.extra.get_mut(&b) {
            Some(1) => {
                self.extra.remove(&b);
            }
            Some(extra) => *extra -= 1,
            None => {
                self.held.clear(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn rtt(ms: u64) -> RttEstimator {
        let mut rtt = RttEstimator::new(Duration::from_millis(ms));
        rtt.update(Duration::from_millis(ms));
        rtt
    }

    #[test]
    fn a_copy_is_held_for_its_hold_then_graced_then_passable() {
        let t0 = Instant::now();
        let rtt = rtt(50);
        let hold = hold_time(&rtt);
        assert!(hold >= Duration::from_millis(50) + HOLD_SLACK);
        let confirmed = Bitmap::new(4);
        let mut holds = Holds::new(4);
        holds.add(t0, 2, hold);
        assert!(holds.is_held(2));
        assert_eq!(holds.next_unheld_in(0..4), Some(0));
        assert_eq!(holds.next_unheld_in(2..3), None);
        assert_eq!(holds.next_passable(&confirmed, 2, 4), Some(3));
        assert_eq!(holds.next_expiry(&rtt), Some(t0 + hold));

        assert!(!holds.expire(t0 + hold - MS, &rtt, &confirmed));
        assert!(holds.is_held(2));
        assert!(holds.expire(t0 + hold, &rtt, &confirmed));
        assert!(!holds.is_held(2));
        // Released, but within its grace period a pass still skips it.
        assert_eq!(holds.next_passable(&confirmed, 2, 4), Some(3));
        assert_eq!(holds.next_expiry(&rtt), Some(t0 + hold + PASS_GRACE));
        assert!(holds.expire(t0 + hold + PASS_GRACE, &rtt, &confirmed));
        assert_eq!(holds.next_passable(&confirmed, 2, 4), Some(2));
        assert_eq!(holds.next_expiry(&rtt), None);
    }

    #[test]
    fn a_hold_outlasts_its_estimate_until_the_receiver_is_seen_past_it() {
        let t0 = Instant::now();
        let fast = rtt(10);
        let confirmed = Bitmap::new(4);
        let mut holds = Holds::new(4);
        holds.add(t0, 1, hold_time(&fast));
        // The round trip grew fourfold since the copy left: its hold, as
        // estimated now, is not over when the one estimated then is.
        let slow = rtt(40);
        let at = t0 + hold_time(&fast);
        assert!(!holds.expire(at, &slow, &confirmed));
        assert!(holds.is_held(1));
        // Expiring again at the same instant finds nothing, until feedback
        // shows the receiver holds something sent after the copy.
        holds.saw_sent(t0 + MS);
        assert!(!holds.expire(at, &slow, &confirmed));
        holds.forget_expiry();
        assert!(holds.expire(at, &slow, &confirmed));
        assert!(!holds.is_held(1));
    }

    #[test]
    fn extra_copies_keep_a_block_held_until_the_last_one_ends() {
        let t0 = Instant::now();
        let rtt = rtt(10);
        let hold = hold_time(&rtt);
        let confirmed = Bitmap::new(2);
        let mut holds = Holds::new(2);
        holds.add(t0, 0, hold);
        holds.add(t0 + MS, 0, hold);
        assert!(holds.has_extra(0));
        assert_eq!(
            (holds.start_index(), holds.end_index(), holds.block_at(1)),
            (0, 2, 0)
        );
        holds.expire(t0 + hold, &rtt, &confirmed);
        assert!(holds.is_held(0) && !holds.has_extra(0));
        assert_eq!(holds.start_index(), 1);
        holds.expire(t0 + MS + hold, &rtt, &confirmed);
        assert!(!holds.is_held(0));
    }
}
