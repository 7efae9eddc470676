//! The sending driver: one thread that runs a [`Sender`] on a real socket.
//!
//! Owns the loop around the state machine: read the clock, feed control
//! messages, collect up to [`BATCH`] paced datagrams and hand them to the
//! kernel in one `sendmmsg`, forward the sender's control messages, then
//! sleep until the state machine's next deadline. It never decides what to
//! send or how fast; that is [`crate::proto::sender`]'s job.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::clock::sleep_until;
use super::link::ControlLink;
use super::socket::{send_batch, BATCH};
use crate::proto::sender::{BlockSource, Event, Sender, SenderStats};

/// Longest sleep between looks at the control link.
pub const CONTROL_POLL: Duration = Duration::from_millis(1);

/// Runs `sender` until the receiver confirms everything; returns its stats.
/// Fails if the transfer times out or the socket or link fails.
pub fn run_sender(
    socket: &UdpSocket,
    peer: SocketAddr,
    mut sender: Sender,
    source: &mut dyn BlockSource,
    link: &mut dyn ControlLink,
) -> io::Result<SenderStats> {
    let mut bufs = vec![vec![0u8; sender.max_datagram()]; BATCH];
    let mut lens = [0usize; BATCH];
    // A datagram the kernel had no room for is retried, never rebuilt: its
    // packet number and pacing are already spent.
    let mut pending = 0usize;
    let mut pending_from = 0usize;
    loop {
        let now = Instant::now();
        while let Some(msg) = link.try_recv()? {
            sender.handle_control(now, msg);
        }
        if sender.poll_timeout().is_some_and(|t| t <= now) {
            sender.handle_timeout(now);
        }
        if pending == 0 {
            pending_from = 0;
            while pending < BATCH {
                match sender.poll_transmit(now, source, &mut bufs[pending])? {
                    Some(n) => {
                        lens[pending] = n;
                        pending += 1;
                    }
                    None => break,
                }
            }
        }
        if pending > 0 {
            let batch: Vec<&[u8]> = (pending_from..pending_from + pending)
                .map(|i| &bufs[i][..lens[i]])
                .collect();
            let sent = send_batch(socket, peer, &batch)?;
            pending -= sent;
            pending_from += sent;
        }
        while let Some(msg) = sender.poll_control(now) {
            link.send(&msg)?;
        }
        if let Some(ev) = sender.poll_event() {
            match ev {
                Event::Complete => return Ok(sender.stats()),
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
        } else {
            sender.poll_timeout().unwrap_or(now).min(now + CONTROL_POLL)
        };
        sleep_until(wake);
    }
}
