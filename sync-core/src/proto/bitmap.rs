//! A fixed-size bit set over block or chunk numbers.
//!
//! Owns nothing but its words; it never grows after construction, so a
//! receiver's memory for a transfer is decided when the transfer starts
//! (one bit per block). Range operations work a 64-bit word at a time because
//! confirming a feedback range or checking a chunk touches thousands of bits.

use std::ops::Range;

/// A set of `len` bits, all clear at construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitmap {
    words: Vec<u64>,
    len: u64,
    ones: u64,
}

impl Bitmap {
    /// A bitmap of `len` clear bits.
    pub fn new(len: u64) -> Self {
        let words = usize::try_from(len.div_ceil(64)).unwrap_or(usize::MAX);
        Bitmap {
            words: vec![0; words],
            len,
            ones: 0,
        }
    }

    /// Number of bits.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the bitmap holds no bits at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> u64 {
        self.ones
    }

    /// True when every bit is set.
    pub fn is_full(&self) -> bool {
        self.ones == self.len
    }

    /// Whether bit `i` is set; bits past the end read as clear.
    pub fn get(&self, i: u64) -> bool {
        if i >= self.len {
            return false;
        }
        self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Sets bit `i`; returns true if it was clear. Out-of-range bits are ignored.
    pub fn set(&mut self, i: u64) -> bool {
        if i >= self.len {
            return false;
        }
        let w = &mut self.words[(i / 64) as usize];
        let mask = 1 << (i % 64);
        let was_clear = *w & mask == 0;
        *w |= mask;
        self.ones += u64::from(was_clear);
        was_clear
    }

    /// Clears bit `i`; returns true if it was set. Out-of-range bits are ignored.
    pub fn clear(&mut self, i: u64) -> bool {
        if i >= self.len {
            return false;
        }
        let w = &mut self.words[(i / 64) as usize];
        let mask = 1 << (i % 64);
        let was_set = *w & mask != 0;
        *w &= !mask;
        self.ones -= u64::from(was_set);
        was_set
    }

    /// Sets every bit in `range` (clipped to the bitmap).
    pub fn set_range(&mut self, range: Range<u64>) {
        self.for_words(range, |w, mask| {
            let added = (!*w & mask).count_ones();
            *w |= mask;
            i64::from(added)
        });
    }

    /// Clears every bit in `range` (clipped to the bitmap).
    pub fn clear_range(&mut self, range: Range<u64>) {
        self.for_words(range, |w, mask| {
            let removed = (*w & mask).count_ones();
            *w &= !mask;
            -i64::from(removed)
        });
    }

    /// Number of set bits in `range` (clipped to the bitmap).
    pub fn count_ones_in(&self, range: Range<u64>) -> u64 {
        word_masks(range.start..range.end.min(self.len))
            .map(|(w, mask)| u64::from((self.words[w] & mask).count_ones()))
            .sum()
    }

    /// First clear bit at or after `from`, if any.
    pub fn next_clear(&self, from: u64) -> Option<u64> {
        self.next_with(from, true)
    }

    /// First set bit at or after `from`, if any.
    pub fn next_set(&self, from: u64) -> Option<u64> {
        self.next_with(from, false)
    }

    /// True when every bit of `range` is set (an empty range is all set).
    pub fn all_set(&self, range: Range<u64>) -> bool {
        match self.next_clear(range.start) {
            Some(i) => i >= range.end,
            None => true,
        }
    }

    /// First bit at or after `from` that is clear both here and in `other`
    /// (which must have the same length).
    pub fn next_clear_in_both(&self, other: &Bitmap, from: u64) -> Option<u64> {
        let len = self.len.min(other.len);
        if from >= len {
            return None;
        }
        let mut wi = (from / 64) as usize;
        let mut word = !(self.words[wi] | other.words[wi]) & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                let i = wi as u64 * 64 + u64::from(word.trailing_zeros());
                return (i < len).then_some(i);
            }
            wi += 1;
            if wi >= self.words.len() || wi >= other.words.len() {
                return None;
            }
            word = !(self.words[wi] | other.words[wi]);
        }
    }

    fn next_with(&self, from: u64, want_clear: bool) -> Option<u64> {
        if from >= self.len {
            return None;
        }
        let mut wi = (from / 64) as usize;
        let mut word = self.words[wi] ^ if want_clear { u64::MAX } else { 0 };
        word &= u64::MAX << (from % 64);
        loop {
            if word != 0 {
                let i = wi as u64 * 64 + u64::from(word.trailing_zeros());
                return (i < self.len).then_some(i);
            }
            wi += 1;
            if wi >= self.words.len() {
                return None;
            }
            word = self.words[wi] ^ if want_clear { u64::MAX } else { 0 };
        }
    }

    /// Applies `f(word, mask)` to every word overlapping `range`; `f` returns
    /// the change in set bits so `ones` stays exact.
    fn for_words(&mut self, range: Range<u64>, mut f: impl FnMut(&mut u64, u64) -> i64) {
        for (w, mask) in word_masks(range.start..range.end.min(self.len)) {
            let delta = f(&mut self.words[w], mask);
            self.ones = self.ones.wrapping_add_signed(delta);
        }
    }
}

/// The words `range` touches, each with the mask of its bits in `range`.
fn word_masks(range: Range<u64>) -> impl Iterator<Item = (usize, u64)> {
    let mut i = range.start;
    std::iter::from_fn(move || {
        if i >= range.end {
            return None;
        }
        let bit = i % 64;
        let n = (64 - bit).min(range.end - i);
        let mask = if n == 64 {
            u64::MAX
        } else {
            ((1u64 << n) - 1) << bit
        };
        let word = (i / 64) as usize;
        i += n;
        Some((word, mask))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_counts_agree_with_single_bits() {
        let mut b = Bitmap::new(200);
        b.set_range(3..130);
        assert_eq!(b.count_ones(), 127);
        assert_eq!(b.count_ones_in(0..200), 127);
        assert_eq!(b.count_ones_in(60..70), 10);
        assert_eq!(b.count_ones_in(100..500), 30);
        assert_eq!(b.count_ones_in(129..129), 0);
        assert!(b.all_set(3..130));
        assert!(!b.all_set(2..130));
        assert_eq!(b.next_clear(3), Some(130));
        assert_eq!(b.next_set(0), Some(3));
        b.clear_range(64..66);
        assert_eq!(b.count_ones(), 125);
        assert_eq!(b.next_clear(3), Some(64));
        assert!(b.set(64));
        assert!(!b.set(64));
        assert!(b.clear(5));
        assert_eq!(b.count_ones(), 125);
        b.set_range(0..1000);
        assert!(b.is_full());
        assert_eq!(b.next_clear(0), None);
        assert!(!b.set(200), "out of range bits are ignored");

        let mut a = Bitmap::new(130);
        let mut c = Bitmap::new(130);
        a.set_range(0..70);
        c.set_range(70..100);
        assert_eq!(a.next_clear_in_both(&c, 0), Some(100));
        c.set_range(100..130);
        assert_eq!(a.next_clear_in_both(&c, 0), None);
    }
}
