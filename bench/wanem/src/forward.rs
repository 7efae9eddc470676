//! The forwarding thread of one direction: reads every packet the sending
//! end's TUN device holds, asks the direction's [`Path`] for its fate,
//! keeps delivered packets in a [`DelayLine`] and writes them to the
//! receiving end's device when due. The only code that reads the clock.
//!
//! Wake-ups, not bytes, are what costs here (tens of microseconds each on
//! this machine), so the loop batches both ways: a wake-up releases every
//! packet due within half a tick, and a busy device wakes the loop for
//! reading at most once per tick. A lone packet (a ping) is read the moment
//! it arrives and released on time, so an idle link adds no latency.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::counters::DirectionCounters;
use crate::delay::DelayLine;
use crate::path::{Fate, Path};
use crate::tun::Tun;

/// 0.5 ms: halving the wake-ups at 1 Gbit/s cost no visible RTT change
/// (notes/link-emulation.md); ~45 packets of 1500 B arrive per tick.
const TICK_NS: u64 = 500_000;
/// Packets due this soon are released with the current batch.
const RELEASE_WINDOW_NS: u64 = TICK_NS / 2;
/// Longest sleep when idle: how soon a stop request is seen.
const IDLE_NS: u64 = 20_000_000;
/// How often the counters shared with other threads are refreshed.
const PUBLISH_NS: u64 = 100_000_000;
/// Reads per wake-up before the loop goes on to release packets.
const MAX_READS: usize = 4096;

/// A packet in flight: a buffer from the pool and the bytes used in it.
struct Packet {
    buf: Box<[u8]>,
    len: usize,
}

/// One direction's forwarding loop and everything it owns.
pub struct Forwarder {
    pub src: Arc<Tun>,
    pub dst: Arc<Tun>,
    pub path: Path,
    /// Buffer size: the MTU (a TUN device without offloads never hands
    /// over more) plus slack.
    pub buf_len: usize,
    pub shared: Arc<Mutex<DirectionCounters>>,
    pub stop: Arc<AtomicBool>,
    pub epoch: Instant,
}

impl Forwarder {
    /// Runs until `stop` is set or the source device fails.
    pub fn run(mut self, name: &str) {
        // Timers fire within 1 us instead of the default 50 us slack.
        // SAFETY: PR_SET_TIMERSLACK takes an unsigned long; no pointers.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
        let mut line = DelayLine::new(!self.path.reorders());
        let mut pool: Vec<Box<[u8]>> = Vec::new();
        let (mut last_read_wake, mut last_publish) = (0u64, 0u64);
        loop {
            let now = self.now();
            if let Err(e) = self.read_all(now, &mut line, &mut pool) {
                eprintln!(
                    "wanem: {name}: reading the sending device failed, direction stopped: {e}"
                );
                break;
            }
            self.release(now + RELEASE_WINDOW_NS, &mut line, &mut pool);
            if now >= last_publish + PUBLISH_NS {
                self.publish();
                last_publish = now;
            }
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let wake_at = line
                .next_due()
                .map_or(now + IDLE_NS, |due| due.min(now + IDLE_NS));
            if wait_readable(&self.src, wake_at.saturating_sub(self.now())) {
                let t = self.now();
                if t < last_read_wake + TICK_NS {
                    sleep_ns(wake_at.min(last_read_wake + TICK_NS).saturating_sub(t));
                }
                last_read_wake = self.now();
            }
        }
        self.path.counters_mut().in_flight_at_stop = line.len() as u64;
        self.publish();
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn publish(&self) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        *shared = self.path.counters().clone();
    }

    /// Reads what the sending device holds and schedules each packet.
    fn read_all(
        &mut self,
        now: u64,
        line: &mut DelayLine<Packet>,
        pool: &mut Vec<Box<[u8]>>,
    ) -> std::io::Result<()> {
        for _ in 0..MAX_READS {
            let mut buf = pool
                .pop()
                .unwrap_or_else(|| vec![0; self.buf_len].into_boxed_slice());
            let Some(len) = self.src.recv(&mut buf)? else {
                pool.push(buf);
                return Ok(());
            };
            match self.path.handle_packet(now, len) {
                Fate::Lost | Fate::QueueFull => pool.push(buf),
                Fate::Deliver { due, copy_due } => {
                    if let Some(copy_due) = copy_due {
                        let mut copy = pool
                            .pop()
                            .unwrap_or_else(|| vec![0; self.buf_len].into_boxed_slice());
                        copy[..len].copy_from_slice(&buf[..len]);
                        line.push(due, Packet { buf, len });
                        line.push(copy_due, Packet { buf: copy, len });
                    } else {
                        line.push(due, Packet { buf, len });
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes every packet due by `deadline` to the receiving device.
    fn release(&mut self, deadline: u64, line: &mut DelayLine<Packet>, pool: &mut Vec<Box<[u8]>>) {
        while let Some(packet) = line.pop_due(deadline) {
            match self.dst.send(&packet.buf[..packet.len]) {
                Ok(()) => self.path.on_delivered(packet.len),
                Err(_) => self.path.on_write_error(),
            }
            pool.push(packet.buf);
        }
    }
}

/// Waits up to `timeout_ns` for the device to become readable.
fn wait_readable(tun: &Tun, timeout_ns: u64) -> bool {
    let mut pfd = libc::pollfd {
        fd: tun.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = timespec(timeout_ns);
    // SAFETY: one valid pollfd, a valid timespec, no signal mask.
    let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    n > 0 && pfd.revents & libc::POLLIN != 0
}

fn sleep_ns(ns: u64) {
    if ns > 0 {
        std::thread::sleep(Duration::from_nanos(ns));
    }
}

fn timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}
