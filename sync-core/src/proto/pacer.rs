//! Token-bucket pacing of datagrams.
//!
//! Owns *when* the next datagram may leave, given a rate in bytes per second.
//! A small burst allowance (at most [`MAX_BURST_BYTES`], and no more than
//! [`BURST_INTERVAL`] worth of the rate) lets a driver hand the kernel a
//! batch per wake-up (sendmmsg, GSO) and absorb its timer's overshoot
//! without turning pacing into line-rate bursts at low rates. The cap is in
//! bytes, not datagrams, so jumbo datagrams burst no longer than small ones.
//! It never reads a clock:
//! `now` is passed in.

use std::time::{Duration, Instant};

/// Most bytes the bucket lets out back to back (64 GSO sends of 64 KiB).
/// A driver thread on a busy two-core machine wakes every 150-300 µs
/// (sleep, timer slack, building and encrypting the batch), and once woken
/// it waits for a core it shares with the receiving threads, 0.6 ms on
/// average (up to 4 ms, `perf sched latency`); at 20 Gbit/s that is 1.5 MB
/// of the rate, and what the bucket cannot hold is thrown away. With 1 MiB
/// the sender slept for pacing a quarter of a loopback transfer while
/// sending below its rate; 4 MiB took 10 interleaved pairs of 3000 MB
/// from a median of 15.5 to 16.7 Gbit/s. The cap binds only above 16
/// Gbit/s: below, [`BURST_INTERVAL`] does (at 1 Gbit/s 250 KB, at 10
/// Gbit/s 2.5 MB, the burst adding at most 2 ms to a bottleneck's queue).
pub const MAX_BURST_BYTES: u64 = 4 << 20;
/// Longest stretch of the rate the bucket may hold (caps bursts at low rates).
pub const BURST_INTERVAL: Duration = Duration::from_millis(2);
/// Fewest datagrams the bucket holds, so two can always leave together.
const MIN_BURST_PACKETS: u64 = 2;

/// The bucket.
#[derive(Clone, Debug)]
pub struct Pacer {
    rate: u64,
    packet: u64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    /// A full bucket at `rate` bytes/s for datagrams of up to `packet` bytes.
    pub fn new(now: Instant, rate: u64, packet: usize) -> Self {
        let mut p = Pacer {
            rate: 0,
            packet: packet.max(1) as u64,
            capacity: 0.0,
            tokens: 0.0,
            last: now,
        };
        p.set_rate(now, rate);
        p.tokens = p.capacity;
        p
    }

    /// Current rate in bytes/s.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Changes the rate; tokens earned so far are kept at the old rate.
    pub fn set_rate(&mut self, now: Instant, rate: u64) {
        self.refill(now);
        self.rate = rate.max(1);
        let by_time = self.rate as f64 * BURST_INTERVAL.as_secs_f64();
        let lo = (MIN_BURST_PACKETS * self.packet) as f64;
        let hi = (MAX_BURST_BYTES.max(MIN_BURST_PACKETS * self.packet)) as f64;
        self.capacity = by_time.clamp(lo, hi);
        self.tokens = self.tokens.min(self.capacity);
    }

    /// May a datagram of `len` bytes leave at `now`?
    pub fn can_send(&mut self, now: Instant, len: usize) -> bool {
        self.refill(now);
        self.tokens >= len as f64
    }

    /// Accounts for a datagram that left.
    pub fn on_sent(&mut self, len: usize) {
        self.tokens -= len as f64;
    }

    /// Earliest time a datagram of `len` bytes may leave.
    pub fn next_send_time(&self, len: usize) -> Instant {
        let missing = len as f64 - self.tokens;
        if missing <= 0.0 {
            return self.last;
        }
        // Round up to a whole nanosecond so waking at this time always finds
        // enough tokens.
        self.last + Duration::from_nanos((missing * 1e9 / self.rate as f64).ceil() as u64)
    }

    fn refill(&mut self, now: Instant) {
        if now > self.last {
            let dt = (now - self.last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate as f64).min(self.capacity);
            self.last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends greedily for `secs` of virtual time and returns bytes sent.
    fn drive(p: &mut Pacer, start: Instant, secs: f64, len: usize) -> u64 {
        let end = start + Duration::from_secs_f64(secs);
        let mut now = start;
        let mut sent = 0;
        while now < end {
            while p.can_send(now, len) {
                p.on_sent(len);
                sent += len as u64;
            }
            now = p.next_send_time(len).max(now);
        }
        sent
    }

    #[test]
    fn holds_the_rate_over_time() {
        let t0 = Instant::now();
        for rate in [100_000u64, 12_500_000, 125_000_000, 1_250_000_000] {
            let mut p = Pacer::new(t0, rate, 1452);
            let sent = drive(&mut p, t0, 2.0, 1452);
            let expect = rate as f64 * 2.0;
            assert!(
                (sent as f64 - expect).abs() / expect < 0.01,
                "rate {rate}: sent {sent}"
            );
        }
    }

    #[test]
    fn a_driver_waking_every_250_us_keeps_a_20_gbit_rate() {
        // Each wake-up sends all the tokens there are, in jumbo datagrams.
        let t0 = Instant::now();
        let rate = 2_500_000_000u64;
        let mut p = Pacer::new(t0, rate, 8952);
        let mut sent = 0u64;
        for step in 1..=400u32 {
            let now = t0 + Duration::from_micros(250) * step;
            while p.can_send(now, 8952) {
                p.on_sent(8952);
                sent += 8952;
            }
        }
        let expect = rate as f64 * 0.1;
        assert!(sent as f64 > 0.95 * expect, "{sent} of {expect}");
    }

    #[test]
    fn bursts_are_bounded() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 10_000_000_000, 1452);
        let later = t0 + Duration::from_secs(1);
        let mut burst = 0;
        while p.can_send(later, 1452) {
            p.on_sent(1452);
            burst += 1;
        }
        assert_eq!(burst, MAX_BURST_BYTES / 1452);
        // At 1 Mbit/s the bucket holds only two datagrams.
        let mut p = Pacer::new(t0, 125_000, 1452);
        let mut burst = 0;
        while p.can_send(later, 1452) {
            p.on_sent(1452);
            burst += 1;
        }
        assert_eq!(burst, MIN_BURST_PACKETS);
        assert!(p.next_send_time(1452) > later);
    }
}
