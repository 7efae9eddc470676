//! The sending driver: one thread that runs a [`Sender`] on a real socket.
//!
//! Owns the loop around the state machine: read the clock, feed control
//! messages, collect up to [`SEND_BATCH`] paced datagrams and hand them to
//! the kernel in one system call ([`Transmit`]: GSO groups in one
//! `sendmmsg`, or plain `sendmmsg`), take the receiver's
//! feedback datagrams off the same socket, send the sender's status the
//! same way ([`ControlPath`]), then sleep until the state machine's next
//! deadline. It never decides what to
//! send or how fast; that is [`crate::proto::sender`]'s job.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::clock::sleep_coarse;
use super::control_path::ControlPath;
use super::link::ControlLink;
use super::offload::{offload_allowed, Transmit, MAX_GSO_BYTES, MAX_SEND};
use crate::proto::control::ControlMsg;
use crate::proto::layout::MAX_DATAGRAM;
use crate::proto::sender::{Event, Sender, SenderStats};
use crate::proto::source::BlockSource;

/// Longest sleep between looks at the control link.
pub const CONTROL_POLL: Duration = Duration::from_millis(1);
/// Most datagrams built per wake-up: two full GSO sends of 1500-byte packets.
pub const SEND_BATCH: usize = MAX_SEND;
/// Bytes worth of pacing tokens to let accumulate before waking to send:
/// one full GSO send.
const WAKE_BYTES: u64 = MAX_GSO_BYTES as u64;
/// Longest wait for [`WAKE_BYTES`] (at low rates, a few datagrams).
const MAX_BATCH_WAIT: Duration = Duration::from_micros(500);
/// Most datagrams read from the socket per wake-up: feedback comes every
/// few milliseconds, so more waiting means something else is sending to
/// us, and the data must not wait for it.
const RECV_PER_WAKE: usize = 64;
/// How often the loop logs its progress (at debug level).
const TRACE_EVERY: Duration = Duration::from_millis(500);

/// Runs `sender` until the receiver confirms everything; returns its stats.
/// Fails if the transfer times out or the socket or link fails.
pub fn run_sender(
    socket: &UdpSocket,
    peer: SocketAddr,
    mut sender: Sender,
    source: &mut dyn BlockSource,
    link: &mut dyn ControlLink,
) -> io::Result<SenderStats> {
    // Non-blocking: the loop reads feedback datagrams without waiting, and
    // a full send buffer is retried (see `pending`).
    socket.set_nonblocking(true)?;
    let mut control = ControlPath::new(Some(peer));
    let mut inbound = vec![0u8; MAX_DATAGRAM];
    let mut transmit = Transmit::new(socket, offload_allowed());
    tracing::debug!(gso = transmit.gso(), "UDP send path");
    let mut bufs = vec![vec![0u8; sender.max_datagram()]; SEND_BATCH];
    let mut lens = [0usize; SEND_BATCH];
    // A datagram the kernel had no room for is retried, never rebuilt: its
    // packet number and pacing are already spent.
    let mut pending = 0usize;
    let mut pending_from = 0usize;
    let mut next_trace = Instant::now() + TRACE_EVERY;
    loop {
        let now = Instant::now();
        if now >= next_trace {
            next_trace = now + TRACE_EVERY;
            trace_progress(&sender, link);
        }
        while let Some(msg) = link.try_recv()? {
            sender.handle_control(now, msg);
        }
        for _ in 0..RECV_PER_WAKE {
            match socket.recv(&mut inbound) {
                // Dropped datagrams are counted by the state machine.
                Ok(n) => drop(sender.handle_datagram(now, &inbound[..n])),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // An ICMP error of an earlier send (port unreachable while
                // the receiver binds): nothing to read.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if sender.poll_timeout().is_some_and(|t| t <= now) {
            sender.handle_timeout(now);
        }
        let mut built = 0;
        if pending == 0 {
            pending_from = 0;
            while pending < SEND_BATCH {
                match sender.poll_transmit(now, source, &mut bufs[pending])? {
                    Some(n) => {
                        lens[pending] = n;
                        pending += 1;
                        built += 1;
                    }
                    None => break,
                }
            }
        }
        if pending > 0 {
            let mut batch: [&[u8]; SEND_BATCH] = [&[]; SEND_BATCH];
            for (slot, i) in batch.iter_mut().zip(pending_from..pending_from + pending) {
                *slot = &bufs[i][..lens[i]];
            }
            let sent = transmit.send(socket, peer, &batch[..pending])?;
            pending -= sent;
            pending_from += sent;
        }
        while let Some(msg) = sender.poll_control(now) {
            let mut seal = |m: &ControlMsg, out: &mut [u8]| sender.seal_control(now, m, out);
            control.send(now, &msg, socket, &mut seal, link)?;
        }
        if let Some(ev) = sender.poll_event() {
            match ev {
                Event::Complete => {
                    trace_progress(&sender, link);
                    return Ok(sender.stats());
                }
                Event::TimedOut => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "receiver stopped answering",
                    ))
                }
            }
        }
        let wake = if pending > 0 {
            // The socket buffer was full: give the kernel a moment.
            now + Duration::from_micros(50)
        } else if built == SEND_BATCH {
            // The pacer may have more: build the next batch at once.
            now
        } else {
            let due = sender.poll_timeout().unwrap_or(now).min(now + CONTROL_POLL);
            // Waking as soon as one datagram may leave would send one per
            // system call. Let a GSO send's worth of tokens accumulate
            // instead; the pacer's bucket holds them (and our timer's
            // overshoot), so the average rate is unchanged.
            let rate = sender.pacing_rate().max(1);
            let batch = Duration::from_nanos(WAKE_BYTES * 1_000_000_000 / rate);
            due.max(now + batch.min(MAX_BATCH_WAIT))
        };
        sleep_coarse(wake);
    }
}

/// One debug line of the transfer's state: what `-vv` shows every
/// [`TRACE_EVERY`] while blocks flow; the link gets the same figures.
fn trace_progress(sender: &Sender, link: &mut dyn ControlLink) {
    let s = sender.stats();
    link.observe(&s);
    tracing::debug!(
        rate_mbit = s.rate * 8 / 1_000_000,
        srtt_ms = s.srtt.as_secs_f64() * 1e3,
        loss = s.loss,
        sent_mb = s.bytes / 1_000_000,
        new = s.new_blocks,
        confirmed = s.blocks_confirmed,
        repairs = s.retransmissions,
        passes = s.pass_resends,
        speculative = s.speculative,
        parity = s.parity,
        feedback = s.feedback,
        stale = s.stale_feedback,
        "UDP send progress"
    );
}
