//! The control channel as the drivers see it.
//!
//! Owns the [`ControlLink`] trait — send a control message, poll for one
//! without blocking — and two implementations: [`channel_pair`] (in-process,
//! for tests and for a session that multiplexes messages itself) and
//! [`StreamLink`] over any non-blocking byte stream (TCP, a pipe), framed
//! with [`crate::proto::frame`]. The session layer can implement the trait
//! over its own multiplexed stream instead.

use std::io::{self, Read, Write};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::proto::control::{ControlMsg, MAX_CONTROL_MSG};
use crate::proto::frame::{encode_frame, FrameDecoder};

/// A reliable, ordered control channel.
pub trait ControlLink {
    /// Sends `msg`. A link over a connection that may stall (TCP on a
    /// lossy path) should not block here: it may drop a message when a
    /// newer one replaces it, since every control message restates its
    /// sender's state, but never the last one sent.
    fn send(&mut self, msg: &ControlMsg) -> io::Result<()>;
    /// The next message if one has arrived; never blocks.
    fn try_recv(&mut self) -> io::Result<Option<ControlMsg>>;
    /// Whether the peer has said its phase is over (links that cannot
    /// tell say no).
    fn peer_done(&self) -> bool {
        false
    }
    /// The sending driver's figures, every half second while it runs (for
    /// a progress display; links that show none ignore them).
    fn observe(&mut self, _stats: &crate::proto::sender::SenderStats) {}
}

/// One end of an in-process control channel.
pub struct ChannelLink {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
}

/// Two connected in-process ends. Messages go through the real codec so the
/// path is the same as over a stream.
pub fn channel_pair() -> (ChannelLink, ChannelLink) {
    let (a_tx, a_rx) = crossbeam_channel::unbounded();
    let (b_tx, b_rx) = crossbeam_channel::unbounded();
    (
        ChannelLink { tx: a_tx, rx: b_rx },
        ChannelLink { tx: b_tx, rx: a_rx },
    )
}

fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl ControlLink for ChannelLink {
    fn send(&mut self, msg: &ControlMsg) -> io::Result<()> {
        let bytes = msg.encode().map_err(invalid)?;
        self.tx
            .send(bytes)
            .map_err(|_| io::ErrorKind::BrokenPipe.into())
    }

    fn try_recv(&mut self) -> io::Result<Option<ControlMsg>> {
        match self.rx.try_recv() {
            Ok(bytes) => ControlMsg::decode(&bytes).map(Some).map_err(invalid),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}

/// Control messages over a byte stream that is in non-blocking mode (for a
/// `TcpStream`, call `set_nonblocking(true)` first).
pub struct StreamLink<S> {
    stream: S,
    decoder: FrameDecoder,
}

impl<S: Read + Write> StreamLink<S> {
    pub fn new(stream: S) -> Self {
        StreamLink {
            stream,
            decoder: FrameDecoder::new(MAX_CONTROL_MSG),
        }
    }

    pub fn into_inner(self) -> S {
        self.stream
    }
}

impl<S: Read + Write> ControlLink for StreamLink<S> {
    fn send(&mut self, msg: &ControlMsg) -> io::Result<()> {
        let mut out = Vec::new();
        encode_frame(&msg.encode().map_err(invalid)?, MAX_CONTROL_MSG, &mut out)
            .map_err(invalid)?;
        let mut rest = &out[..];
        while !rest.is_empty() {
            match self.stream.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                // Control messages are small and rare; waiting briefly for
                // room is simpler than buffering them.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn try_recv(&mut self) -> io::Result<Option<ControlMsg>> {
        loop {
            if let Some(frame) = self.decoder.next_frame().map_err(invalid)? {
                return ControlMsg::decode(&frame).map(Some).map_err(invalid);
            }
            let mut buf = [0u8; 16 << 10];
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_pair_carries_messages_both_ways() {
        let (mut a, mut b) = channel_pair();
        assert_eq!(b.try_recv().unwrap(), None);
        a.send(&ControlMsg::Keepalive).unwrap();
        assert_eq!(b.try_recv().unwrap(), Some(ControlMsg::Keepalive));
        b.send(&ControlMsg::Keepalive).unwrap();
        assert_eq!(a.try_recv().unwrap(), Some(ControlMsg::Keepalive));
        drop(b);
        assert!(a.try_recv().is_err());
    }

    #[test]
    fn stream_link_over_tcp() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.set_nonblocking(true).unwrap();
        server.set_nonblocking(true).unwrap();
        let (mut a, mut b) = (StreamLink::new(client), StreamLink::new(server));
        for _ in 0..3 {
            a.send(&ControlMsg::Keepalive).unwrap();
        }
        let mut got = 0;
        for _ in 0..10_000 {
            if let Some(m) = b.try_recv().unwrap() {
                assert_eq!(m, ControlMsg::Keepalive);
                got += 1;
                if got == 3 {
                    break;
                }
            } else {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }
        assert_eq!(got, 3);
    }
}
