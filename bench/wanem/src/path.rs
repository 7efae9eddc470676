//! One direction of the link as a pure model: given a packet's length and
//! arrival time, decide its fate (lost, dropped by the queue, or delivered
//! at some time, maybe twice) and count it. It never touches a packet's
//! bytes or reads a clock, so tests drive it in virtual time; `forward`
//! is the driver that feeds it real packets.

use crate::config::PathConfig;
use crate::counters::DirectionCounters;
use crate::delay::Delay;
use crate::loss::LossModel;
use crate::rng::Rng;
use crate::shaper::Shaper;

/// What becomes of one packet offered to a [`Path`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Dropped by the loss models, before the queue.
    Lost,
    /// Dropped because the queue was full.
    QueueFull,
    /// Reaches the far end at `due`; a duplicate, if any, at `copy_due`.
    Deliver { due: u64, copy_due: Option<u64> },
}

/// The impairment pipeline of one direction, with its counters.
#[derive(Debug, Clone)]
pub struct Path {
    loss: LossModel,
    duplicate: f64,
    shaper: Shaper,
    delay: Delay,
    rng: Rng,
    counters: DirectionCounters,
}

impl Path {
    /// `stream` separates the random streams of the two directions.
    pub fn new(config: &PathConfig, seed: u64, stream: u64) -> Path {
        Path {
            loss: LossModel::new(config.loss, config.gilbert_elliott),
            duplicate: config.duplicate,
            shaper: Shaper::new(config.rate_bps, config.queue),
            delay: Delay::new(config.delay, config.jitter, config.reorder),
            rng: Rng::new(seed, stream),
            counters: DirectionCounters::default(),
        }
    }

    /// Whether delivery times can go backwards, so the driver needs a heap.
    pub fn reorders(&self) -> bool {
        self.delay.reorders()
    }

    /// Offers a packet of `len` bytes that arrived at `now` (ns).
    pub fn handle_packet(&mut self, now: u64, len: usize) -> Fate {
        let c = &mut self.counters;
        c.packets_in += 1;
        c.bytes_in += len as u64;
        if self.loss.handle_packet(&mut self.rng) {
            c.lost_packets += 1;
            c.lost_bytes += len as u64;
            return Fate::Lost;
        }
        let copy = self.rng.chance(self.duplicate);
        let Some(due) = self.enqueue(now, len) else {
            return Fate::QueueFull;
        };
        let copy_due = if copy { self.enqueue(now, len) } else { None };
        self.counters.duplicated += copy_due.is_some() as u64;
        Fate::Deliver { due, copy_due }
    }

    /// Puts one copy through the queue and the delay.
    fn enqueue(&mut self, now: u64, len: usize) -> Option<u64> {
        let c = &mut self.counters;
        let Some(departed) = self.shaper.handle_packet(now, len) else {
            c.queue_dropped_packets += 1;
            c.queue_dropped_bytes += len as u64;
            return None;
        };
        let backlog = self.shaper.backlog_bytes(now);
        if backlog > c.max_queue_bytes {
            c.max_queue_bytes = backlog;
            c.max_queue_ms = self.shaper.backlog_ns(now) as f64 / 1e6;
        }
        Some(self.delay.due(departed, &mut self.rng))
    }

    /// Counts a packet written to the far end.
    pub fn on_delivered(&mut self, len: usize) {
        self.counters.packets_out += 1;
        self.counters.bytes_out += len as u64;
    }

    /// Counts a packet the far end's device refused.
    pub fn on_write_error(&mut self) {
        self.counters.write_errors += 1;
    }

    pub fn counters(&self) -> &DirectionCounters {
        &self.counters
    }

    pub fn counters_mut(&mut self) -> &mut DirectionCounters {
        &mut self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QueueLimit;
    use std::time::Duration;

    const MS: u64 = 1_000_000;

    fn config(rate: Option<u64>, delay_ms: u64) -> PathConfig {
        PathConfig {
            rate_bps: rate,
            delay: Duration::from_millis(delay_ms),
            ..PathConfig::default()
        }
    }

    #[test]
    fn delivers_after_serialisation_plus_delay() {
        let mut path = Path::new(&config(Some(300_000_000), 50), 1, 0);
        assert_eq!(
            path.handle_packet(0, 1500),
            Fate::Deliver {
                due: 50 * MS + 40_000,
                copy_due: None
            }
        );
        assert_eq!(path.counters().max_queue_bytes, 1500);
    }

    #[test]
    fn loss_comes_before_the_queue() {
        // With 50 % loss, offering twice the link rate loses half before
        // the queue, so the queue never overflows.
        let mut cfg = config(Some(100_000_000), 0);
        cfg.loss = 0.5;
        cfg.queue = QueueLimit::Time(Duration::from_millis(5));
        let mut path = Path::new(&cfg, 2, 0);
        let gap = 60_000; // 1500 B every 60 us = 200 Mbit/s
        for i in 0..100_000 {
            path.handle_packet(i * gap, 1500);
        }
        let c = path.counters();
        assert!((c.lost_packets as f64 / 100_000.0 - 0.5).abs() < 0.01);
        assert!(
            c.queue_dropped_packets < 1000,
            "{}",
            c.queue_dropped_packets
        );
    }

    #[test]
    fn duplicates_also_use_the_link() {
        let mut cfg = config(Some(120_000_000), 10);
        cfg.duplicate = 1.0;
        let mut path = Path::new(&cfg, 3, 0);
        // 1500 B at 120 Mbit/s take 100 us; the copy follows the original.
        let fate = path.handle_packet(0, 1500);
        assert_eq!(
            fate,
            Fate::Deliver {
                due: 10 * MS + 100_000,
                copy_due: Some(10 * MS + 200_000)
            }
        );
        assert_eq!(path.counters().duplicated, 1);
    }

    #[test]
    fn overload_counts_queue_drops_and_max_queue() {
        let mut cfg = config(Some(300_000_000), 0);
        cfg.queue = QueueLimit::Time(Duration::from_millis(10));
        let mut path = Path::new(&cfg, 4, 0);
        for i in 0..100_000 {
            path.handle_packet(i * 30_000, 1500); // 400 Mbit/s offered
        }
        let c = path.counters().clone();
        assert!((c.queue_dropped_packets as f64 / 100_000.0 - 0.25).abs() < 0.01);
        assert!(
            c.max_queue_ms <= 10.0 && c.max_queue_ms > 9.9,
            "{}",
            c.max_queue_ms
        );
        assert_eq!(c.packets_in, 100_000);
    }

    #[test]
    fn directions_with_the_same_seed_draw_different_streams() {
        let mut cfg = config(None, 0);
        cfg.loss = 0.5;
        let (mut ab, mut ba) = (Path::new(&cfg, 9, 0), Path::new(&cfg, 9, 1));
        let xs: Vec<Fate> = (0..64).map(|i| ab.handle_packet(i, 100)).collect();
        let ys: Vec<Fate> = (0..64).map(|i| ba.handle_packet(i, 100)).collect();
        assert_ne!(xs, ys);
    }
}
