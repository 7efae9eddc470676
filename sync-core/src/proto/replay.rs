//! Anti-replay window over packet numbers.
//!
//! Owns a sliding bitmap of the last [`REPLAY_WINDOW`] packet numbers, the
//! scheme of RFC 4303 §3.4.3 / RFC 6479. It is only ever updated with packet
//! numbers whose datagram authenticated, so forged datagrams cannot move it.
//! Block-level duplicates (a retransmission of a block already held) are a
//! separate matter, handled by the receiver's block bitmap.

/// Packet numbers tracked behind the highest one seen.
pub const REPLAY_WINDOW: u64 = 4096;
const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// Outcome of checking a packet number before authenticating it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayCheck {
    Fresh,
    Replayed,
    TooOld,
}

/// The sliding window.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// One past the highest packet number accepted (0 = none yet).
    top: u64,
    /// Bit `pn % REPLAY_WINDOW` is set when `pn` was accepted.
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// A window that has accepted nothing.
    pub fn new() -> Self {
        ReplayWindow {
            top: 0,
            bits: [0; WORDS],
        }
    }

    /// Would `pn` be accepted? Does not change the window.
    pub fn check(&self, pn: u64) -> ReplayCheck {
        if pn == u64::MAX {
            // Would saturate `top`; no honest sender gets here.
            return ReplayCheck::TooOld;
        }
        if pn >= self.top {
            return ReplayCheck::Fresh;
        }
        if self.top - pn > REPLAY_WINDOW {
            return ReplayCheck::TooOld;
        }
        if self.bit(pn) {
            ReplayCheck::Replayed
        } else {
            ReplayCheck::Fresh
        }
    }

    /// Records `pn` as accepted; call only after it authenticated and
    /// [`check`](Self::check) said `Fresh`.
    pub fn accept(&mut self, pn: u64) {
        if pn >= self.top {
            let advance = pn + 1 - self.top;
            if advance >= REPLAY_WINDOW {
                self.bits = [0; WORDS];
            } else {
                // Clear the slots the window slides over.
                for p in self.top..=pn {
                    self.set_bit(p, false);
                }
            }
            self.top = pn + 1;
        }
        self.set_bit(pn, true);
    }

    /// Highest accepted packet number, if any.
    pub fn highest(&self) -> Option<u64> {
        self.top.checked_sub(1)
    }

    fn bit(&self, pn: u64) -> bool {
        let i = pn % REPLAY_WINDOW;
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set_bit(&mut self, pn: u64, on: bool) {
        let i = pn % REPLAY_WINDOW;
        let w = &mut self.bits[(i / 64) as usize];
        if on {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_number_once_within_the_window() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(0), ReplayCheck::Fresh);
        w.accept(0);
        assert_eq!(w.check(0), ReplayCheck::Replayed);
        w.accept(10);
        assert_eq!(w.check(5), ReplayCheck::Fresh, "reordered packets are fine");
        w.accept(5);
        assert_eq!(w.check(5), ReplayCheck::Replayed);
        w.accept(10 + REPLAY_WINDOW);
        assert_eq!(w.check(10), ReplayCheck::TooOld);
        assert_eq!(w.check(11), ReplayCheck::Fresh, "slot reused after sliding");
        assert_eq!(w.check(10 + REPLAY_WINDOW), ReplayCheck::Replayed);
        w.accept(u64::MAX - 1);
        assert_eq!(w.check(u64::MAX - 1), ReplayCheck::Replayed);
        assert_eq!(w.check(u64::MAX), ReplayCheck::TooOld);
        assert_eq!(w.highest(), Some(u64::MAX - 1));
    }
}
