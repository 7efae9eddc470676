//! Where a side's control messages go: as datagrams beside the data, and
//! a copy by the control connection now and then.
//!
//! Owns the choice, per message, of the two routes. The datagram route is
//! the fast one: a feedback datagram lost on a lossy path costs the few
//! milliseconds until the next one, where a TCP control connection (ssh,
//! the daemon's) stalls every later report behind a lost segment for a
//! retransmission timeout (seconds at 200 ms and 5 % loss). The connection
//! still gets a copy every [`COPY_INTERVAL`], and always the messages that
//! must arrive (the receiver's final feedback), so a path whose firewall
//! drops the datagrams coming back still works, slowly. The copies never
//! block the caller: the session's link hands them to a writer thread that
//! keeps only the newest (see [`ControlLink::send`]).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::link::ControlLink;
use crate::proto::control::ControlMsg;
use crate::proto::control_datagram::is_final;
use crate::proto::layout::MAX_DATAGRAM;

/// Time between copies of the control messages on the control connection
/// while the datagram route works: the fallback's reaction time, at a cost
/// of a few hundred bytes a second.
pub const COPY_INTERVAL: Duration = Duration::from_millis(50);
/// Datagram copies of a final message: it is sent once and the peer's
/// phase may hang on it, so one loss should not cost a round trip.
const FINAL_COPIES: usize = 2;

/// One side's outgoing control route.
pub struct ControlPath {
    /// Where datagrams go, once known (the receiver learns the sender's
    /// address from its first authentic datagram).
    peer: Option<SocketAddr>,
    last_copy: Option<Instant>,
    buf: Vec<u8>,
    /// Datagrams sent, and copies sent by the control connection.
    pub datagrams: u64,
    pub copies: u64,
}

impl ControlPath {
    pub fn new(peer: Option<SocketAddr>) -> Self {
        ControlPath {
            peer,
            last_copy: None,
            buf: vec![0; MAX_DATAGRAM],
            datagrams: 0,
            copies: 0,
        }
    }

    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    pub fn set_peer(&mut self, peer: SocketAddr) {
        self.peer = Some(peer);
    }

    /// Sends `msg`: sealed by `seal` as a datagram to the peer if its
    /// address is known and the message fits, and by `link` when the
    /// datagram route is unavailable, the message is final, or a copy is
    /// due. A datagram the socket refuses is only logged: the next message
    /// restates it, and the copies carry on.
    pub fn send(
        &mut self,
        now: Instant,
        msg: &ControlMsg,
        socket: &UdpSocket,
        seal: &mut dyn FnMut(&ControlMsg, &mut [u8]) -> Option<usize>,
        link: &mut dyn ControlLink,
    ) -> io::Result<()> {
        let last = is_final(msg);
        let mut sent = false;
        if let Some(peer) = self.peer {
            for _ in 0..if last { FINAL_COPIES } else { 1 } {
                let Some(n) = seal(msg, &mut self.buf) else {
                    break;
                };
                match socket.send_to(&self.buf[..n], peer) {
                    Ok(_) => {
                        sent = true;
                        self.datagrams += 1;
                    }
                    Err(e) => tracing::debug!(error = %e, "control datagram not sent"),
                }
            }
        }
        let due = self
            .last_copy
            .is_none_or(|t| now.saturating_duration_since(t) >= COPY_INTERVAL);
        if !sent || last || due {
            self.last_copy = Some(now);
            self.copies += 1;
            link.send(msg)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::link::channel_pair;
    use crate::proto::control::{Feedback, SenderStatus};

    fn status(sent_once: u64) -> ControlMsg {
        ControlMsg::Status(SenderStatus {
            sent_once,
            ..SenderStatus::default()
        })
    }

    /// Datagrams go out for every message; the connection gets the first,
    /// one per interval after it, every final message, and everything while
    /// no peer address is known.
    #[test]
    fn copies_go_by_the_link_at_intervals_and_for_final_messages() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (mut link, mut far) = channel_pair();
        let mut seal = |m: &ControlMsg, out: &mut [u8]| {
            let bytes = m.encode().ok()?;
            out[..bytes.len()].copy_from_slice(&bytes);
            Some(bytes.len())
        };
        let t0 = Instant::now();
        let mut path = ControlPath::new(None);
        path.send(t0, &status(1), &socket, &mut seal, &mut link)
            .unwrap();
        assert_eq!((path.datagrams, path.copies), (0, 1));
        path.set_peer(peer_socket.local_addr().unwrap());
        let ms = |n| t0 + Duration::from_millis(n);
        for (i, t) in [1, 10, 49, 50, 60].into_iter().enumerate() {
            path.send(ms(t), &status(i as u64 + 2), &socket, &mut seal, &mut link)
                .unwrap();
        }
        // Copies at 0 and 50 ms only.
        assert_eq!((path.datagrams, path.copies), (5, 2));
        let done = ControlMsg::Feedback(Feedback {
            complete: true,
            ..Feedback::default()
        });
        path.send(ms(61), &done, &socket, &mut seal, &mut link)
            .unwrap();
        assert_eq!((path.datagrams, path.copies), (5 + FINAL_COPIES as u64, 3));
        let mut on_link = Vec::new();
        while let Some(m) = far.try_recv().unwrap() {
            on_link.push(m);
        }
        assert_eq!(on_link, vec![status(1), status(5), done.clone()]);
        peer_socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 2048];
        let mut got = Vec::new();
        for _ in 0..path.datagrams {
            let n = peer_socket.recv(&mut buf).unwrap();
            got.push(ControlMsg::decode(&buf[..n]).unwrap());
        }
        assert_eq!(got.last(), Some(&done));
        assert_eq!(got[0], status(2));
    }
}
