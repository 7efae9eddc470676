//! Repairs and passes: resending what the receiver asked for or never
//! confirmed.
//!
//! Owns the queue of NAKed blocks waiting to be resent and the cursor of
//! the tail passes (StarBurst MFTP's "passes": once every block has been
//! sent, repeated sweeps over blocks the receiver has not confirmed), and
//! turns the receiver's feedback — its cumulative acknowledgement, the
//! range it scanned and the NAKs within — into confirmations and repairs.
//! A NAKed block is queued only when no copy of it is within its hold
//! ([`super::holds`]), which is what keeps NAKs repeated by every feedback
//! from multiplying retransmissions; a pass takes only blocks out of their
//! hold and grace period. Lost NAKs and a lost last block need no special
//! case: the passes resend every unconfirmed block once its hold expired.
//! It never decides when to send; [`Sender::next_send`] asks it in turn.

use std::collections::VecDeque;

use super::holds::Holds;
use super::Sender;
use crate::proto::bitmap::Bitmap;
use crate::proto::control::Feedback;

/// Most blocks one feedback message may queue for retransmission; the rest
/// of a huge NAK range is picked up by later feedback or by the tail passes.
pub const MAX_QUEUED_PER_FEEDBACK: u64 = 1 << 16;

/// NAKed blocks to resend, and where the tail passes stand.
pub(super) struct Repairs {
    /// The blocks in `queue`, each queued at most once.
    queued: Bitmap,
    /// NAKed blocks in the order they were asked for.
    queue: VecDeque<u64>,
    /// Where the next pass search starts: just past the last block passed.
    pass_cursor: u64,
    /// The versions of the confirmations and of the held and grace sets
    /// when a search of the whole stream last found nothing to pass: until
    /// one of them changes, none would (waking while starved, the sender
    /// otherwise scanned the stream once a wake-up).
    pass_found_none: Option<(u64, u64, u64)>,
}

impl Repairs {
    /// Nothing queued, in a stream of `blocks` blocks.
    pub(super) fn new(blocks: u64) -> Self {
        Repairs {
            queued: Bitmap::new(blocks),
            queue: VecDeque::new(),
            pass_cursor: 0,
            pass_found_none: None,
        }
    }

    /// Queues `block` for a repair unless it is queued already; true if it
    /// was not.
    pub(super) fn push(&mut self, block: u64) -> bool {
        if self.queued.set(block) {
            self.queue.push_back(block);
            true
        } else {
            false
        }
    }

    /// The oldest queued block still worth repairing: unconfirmed and out
    /// of its hold (feedback since it was queued may have settled it).
    pub(super) fn next_repair(&mut self, confirmed: &Bitmap, holds: &Holds) -> Option<u64> {
        while let Some(b) = self.queue.pop_front() {
            self.queued.clear(b);
            if !confirmed.get(b) && !holds.is_held(b) {
                return Some(b);
            }
        }
        None
    }

    /// The next block a tail pass resends among the stream's `blocks`:
    /// unconfirmed, out of its hold and grace period, searching on from
    /// the last one passed and wrapping around.
    pub(super) fn next_pass(
        &mut self,
        confirmed: &Bitmap,
        holds: &Holds,
        blocks: u64,
    ) -> Option<u64> {
        let (recent, held) = holds.versions();
        let versions = (confirmed.version(), recent, held);
        if self.pass_found_none == Some(versions) {
            return None;
        }
        let found = holds
            .next_passable(confirmed, self.pass_cursor, blocks)
            .or_else(|| holds.next_passable(confirmed, 0, self.pass_cursor));
        match found {
            Some(b) => self.pass_cursor = b + 1,
            None => self.pass_found_none = Some(versions),
        }
        found
    }
}

impl Sender {
    /// Takes what the receiver holds, and what it asks for again, from
    /// feedback `f`. Everything is clipped to the stream so a confused
    /// peer cannot make us loop.
    pub(super) fn take_acks(&mut self, f: &Feedback) {
        let n = self.layout.block_count();
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
                let Some(c) = self.holds.next_unheld_in(b..end) else {
                    break;
                };
                if self.repairs.push(c) {
                    queued += 1;
                }
                b = c + 1;
            }
            queued += self
                .speculation
                .renew(start..end, &self.holds, self.loss.current());
            pos = end;
        }
        self.confirmed.set_range(pos..scan_end);
        if queued > 0 {
            self.starved = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_block_is_queued_once_and_skipped_once_confirmed_or_held() {
        let t0 = Instant::now();
        let mut confirmed = Bitmap::new(8);
        let mut holds = Holds::new(8);
        let mut repairs = Repairs::new(8);
        assert!(repairs.push(3));
        assert!(!repairs.push(3), "already queued");
        assert!(repairs.push(5));
        assert!(repairs.push(6));
        confirmed.set(3);
        holds.add(t0, 5, Duration::from_millis(10));
        assert_eq!(repairs.next_repair(&confirmed, &holds), Some(6));
        assert_eq!(repairs.next_repair(&confirmed, &holds), None);
        assert!(
            repairs.push(3),
            "taken off the queue, it may be queued again"
        );
    }

    #[test]
    fn passes_wrap_around_and_remember_finding_nothing() {
        let mut confirmed = Bitmap::new(4);
        let holds = Holds::new(4);
        let mut repairs = Repairs::new(4);
        confirmed.set_range(0..4);
        confirmed.clear(1);
        confirmed.clear(3);
        assert_eq!(repairs.next_pass(&confirmed, &holds, 4), Some(1));
        assert_eq!(repairs.next_pass(&confirmed, &holds, 4), Some(3));
        assert_eq!(repairs.next_pass(&confirmed, &holds, 4), Some(1));
        confirmed.set(1);
        confirmed.set(3);
        assert_eq!(repairs.next_pass(&confirmed, &holds, 4), None);
        assert_eq!(
            repairs.pass_found_none.map(|v| v.0),
            Some(confirmed.version())
        );
        confirmed.clear(0);
        assert_eq!(repairs.next_pass(&confirmed, &holds, 4), Some(0));
    }
}
