//! Propagation delay with jitter, and the line of packets in flight.
//!
//! [`Delay`] turns the time a packet leaves the bottleneck into the time it
//! reaches the far end: the one-way delay plus a uniform jitter draw. Unless
//! reordering is allowed, a packet is also held until the one before it has
//! arrived, so jitter never reorders (and arrival times stay monotonic).
//! [`DelayLine`] holds the packets until then: a FIFO when times are
//! monotonic, a heap when they are not.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use crate::rng::Rng;

/// One direction's delay and jitter, in nanoseconds.
#[derive(Debug, Clone)]
pub struct Delay {
    delay: u64,
    jitter: u64,
    reorder: bool,
    /// Arrival time of the previous packet, for the no-reordering hold.
    last_due: u64,
}

impl Delay {
    pub fn new(delay: Duration, jitter: Duration, reorder: bool) -> Delay {
        Delay {
            delay: delay.as_nanos() as u64,
            jitter: jitter.as_nanos() as u64,
            reorder,
            last_due: 0,
        }
    }

    /// Whether arrival times can go backwards (jitter with reordering).
    pub fn reorders(&self) -> bool {
        self.reorder && self.jitter > 0
    }

    /// When a packet that left the link at `departed` reaches the far end.
    pub fn due(&mut self, departed: u64, rng: &mut Rng) -> u64 {
        let offset = rng.symmetric(self.jitter);
        let due = (departed + self.delay)
            .saturating_add_signed(offset)
            .max(departed);
        if self.reorder {
            due
        } else {
            self.last_due = self.last_due.max(due);
            self.last_due
        }
    }
}

/// Packets in flight, released in order of their due time. Ties keep the
/// order they were pushed in.
#[derive(Debug)]
pub enum DelayLine<T> {
    Fifo(VecDeque<(u64, T)>),
    Heap {
        heap: BinaryHeap<Reverse<Entry<T>>>,
        seq: u64,
    },
}

/// A heap entry ordered by (due, push order) only.
#[derive(Debug)]
pub struct Entry<T> {
    due: u64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

impl<T> DelayLine<T> {
    /// A FIFO if due times will be pushed in order, else a heap.
    pub fn new(ordered: bool) -> DelayLine<T> {
        if ordered {
            DelayLine::Fifo(VecDeque::new())
        } else {
            DelayLine::Heap {
                heap: BinaryHeap::new(),
                seq: 0,
            }
        }
    }

    pub fn push(&mut self, due: u64, item: T) {
        match self {
            DelayLine::Fifo(q) => {
                debug_assert!(
                    q.back().is_none_or(|(last, _)| *last <= due),
                    "FIFO pushed out of order"
                );
                q.push_back((due, item));
            }
            DelayLine::Heap { heap, seq } => {
                *seq += 1;
                heap.push(Reverse(Entry {
                    due,
                    seq: *seq,
                    item,
                }));
            }
        }
    }

    /// The earliest due time held.
    pub fn next_due(&self) -> Option<u64> {
        match self {
            DelayLine::Fifo(q) => q.front().map(|(due, _)| *due),
            DelayLine::Heap { heap, .. } => heap.peek().map(|Reverse(e)| e.due),
        }
    }

    /// Takes the earliest item if it is due by `deadline`.
    pub fn pop_due(&mut self, deadline: u64) -> Option<T> {
        if self.next_due()? > deadline {
            return None;
        }
        match self {
            DelayLine::Fifo(q) => q.pop_front().map(|(_, item)| item),
            DelayLine::Heap { heap, .. } => heap.pop().map(|Reverse(e)| e.item),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            DelayLine::Fifo(q) => q.len(),
            DelayLine::Heap { heap, .. } => heap.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn arrivals(reorder: bool, n: u64) -> Vec<u64> {
        let mut delay = Delay::new(Duration::from_millis(50), Duration::from_millis(5), reorder);
        let mut rng = Rng::new(11, 0);
        // One packet every 100 us: jitter (+-5 ms) is much larger than the gap.
        (0..n).map(|i| delay.due(i * MS / 10, &mut rng)).collect()
    }

    #[test]
    fn fixed_delay_adds_exactly() {
        let mut delay = Delay::new(Duration::from_millis(50), Duration::ZERO, false);
        let mut rng = Rng::new(1, 0);
        assert_eq!(delay.due(7, &mut rng), 50 * MS + 7);
    }

    #[test]
    fn jitter_without_reordering_keeps_order() {
        let due = arrivals(false, 10_000);
        assert!(due.windows(2).all(|w| w[0] <= w[1]));
        // Every packet is delayed at least delay - jitter, at most the
        // hold behind the slowest packet before it.
        assert!(due
            .iter()
            .enumerate()
            .all(|(i, d)| *d >= i as u64 * MS / 10 + 45 * MS));
    }

    #[test]
    fn jitter_with_reordering_reorders_within_bounds() {
        let due = arrivals(true, 10_000);
        let inversions = due.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(inversions > 1000, "{inversions}");
        for (i, d) in due.iter().enumerate() {
            let sent = i as u64 * MS / 10;
            assert!((sent + 45 * MS..=sent + 55 * MS).contains(d));
        }
    }

    #[test]
    fn fifo_releases_up_to_the_deadline() {
        let mut line = DelayLine::new(true);
        for (due, item) in [(10, 'a'), (20, 'b'), (20, 'c'), (30, 'd')] {
            line.push(due, item);
        }
        let mut out = vec![];
        while let Some(x) = line.pop_due(20) {
            out.push(x);
        }
        assert_eq!(out, ['a', 'b', 'c']);
        assert_eq!(line.next_due(), Some(30));
    }

    #[test]
    fn heap_releases_in_due_order_and_ties_in_push_order() {
        let mut line = DelayLine::new(false);
        for (due, item) in [(30, 'a'), (10, 'b'), (20, 'c'), (10, 'd')] {
            line.push(due, item);
        }
        assert_eq!(line.len(), 4);
        let out: Vec<char> = std::iter::from_fn(|| line.pop_due(u64::MAX)).collect();
        assert_eq!(out, ['b', 'd', 'c', 'a']);
        assert!(line.is_empty());
    }
}
