//! The byte pipes a session runs over.
//!
//! A [`Transport`] carries [`Msg`]s between the two halves of a session.
//! Every implementation frames messages the same way ([`FRAMING`]: a
//! 4-byte big-endian length from [`crate::proto::frame`], then the postcard
//! encoding), so the in-memory pipe of a local sync moves exactly the bytes
//! an ssh pipe or a TCP connection would, and `wire_bytes_sent` means the
//! same everywhere.
//!
//! [`Msg::Keepalive`] frames (see [`super::alive`]) are read and dropped
//! here, so the session code never sees them.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use crossbeam_channel as chan;

use super::msg::Msg;
use crate::error::{Error, ProtocolError, Result};
use crate::proto::frame::{FrameError, Framing, LEN_PREFIX};

/// Largest message payload accepted from a peer: a list message
/// ([`super::msg::BATCH_BYTES`]), a chunk, or a [`Msg::Zipped`] run of
/// [`super::bulk::ZIP_MAX`] bytes that did not compress fits with room to
/// spare, while a hostile length cannot make a reader allocate more.
pub const MAX_FRAME: usize = 32 << 20;
/// How session messages are framed on every transport.
pub const FRAMING: Framing<LEN_PREFIX> = Framing::new(MAX_FRAME);

/// A framing error as the session reports it: the peer broke the protocol.
pub(crate) fn frame_error(e: FrameError) -> Error {
    match e {
        FrameError::TooLong { len, max } => ProtocolError::over_limit("frame length", len, max),
        FrameError::Truncated(_) => ProtocolError::undecodable("a frame", e),
    }
    .into()
}

/// A reliable, ordered message pipe to the other half of a session.
pub trait Transport: Send {
    /// Sends one message.
    fn send(&mut self, msg: &Msg) -> Result<()>;
    /// Waits for the next message.
    fn recv(&mut self) -> Result<Msg>;
    /// Bytes put on the wire so far, framing included.
    fn wire_bytes_sent(&self) -> u64;
    /// Separate halves for reading and writing at once from two threads
    /// (the UDP data phase needs both directions at the same time), or
    /// `None` when this transport cannot be split.
    fn split(&mut self) -> Option<(Box<dyn MsgRead + '_>, Box<dyn MsgWrite + '_>)> {
        None
    }
    /// A way to send keepalives from another thread while this transport
    /// is in use (`None`: this transport cannot).
    fn pinger(&mut self) -> Option<Pinger> {
        None
    }
}

/// Sends one [`Msg::Keepalive`] on a transport, from any thread; frames
/// never interleave with the transport's own.
pub type Pinger = Box<dyn FnMut() -> Result<()> + Send>;

/// Reads messages until one is not a keepalive.
pub fn skip_keepalives(mut read: impl FnMut() -> Result<Msg>) -> Result<Msg> {
    loop {
        match read()? {
            Msg::Keepalive => continue,
            m => return Ok(m),
        }
    }
}

/// The reading half of a split transport.
pub trait MsgRead: Send {
    fn recv(&mut self) -> Result<Msg>;
}

/// The writing half of a split transport.
pub trait MsgWrite: Send {
    fn send(&mut self, msg: &Msg) -> Result<()>;
}

struct MemRead<'a>(&'a chan::Receiver<Vec<u8>>);
struct MemWrite<'a>(&'a chan::Sender<Vec<u8>>, &'a mut u64);

impl MsgRead for MemRead<'_> {
    fn recv(&mut self) -> Result<Msg> {
        mem_recv(self.0)
    }
}

fn mem_recv(rx: &chan::Receiver<Vec<u8>>) -> Result<Msg> {
    skip_keepalives(|| {
        let frame = rx.recv().map_err(|_| closed())?;
        decode(&frame[LEN_PREFIX..])
    })
}

impl MsgWrite for MemWrite<'_> {
    fn send(&mut self, msg: &Msg) -> Result<()> {
        let frame = encode(msg)?;
        *self.1 += frame.len() as u64;
        self.0.send(frame).map_err(|_| closed())
    }
}

struct StreamRead<'a, R>(&'a mut R, Vec<u8>);
struct StreamWrite<'a, W>(&'a Mutex<Counted<W>>);

impl<R: Read + Send> MsgRead for StreamRead<'_, R> {
    fn recv(&mut self) -> Result<Msg> {
        skip_keepalives(|| read_frame(self.0, &mut self.1))
    }
}

impl<W: Write + Send> MsgWrite for StreamWrite<'_, W> {
    fn send(&mut self, msg: &Msg) -> Result<()> {
        lock(self.0).send(msg)
    }
}

/// A stream's writing end and the bytes written through it, shared with
/// the transport's [`Pinger`].
struct Counted<W> {
    writer: W,
    sent: u64,
}

impl<W: Write> Counted<W> {
    fn send(&mut self, msg: &Msg) -> Result<()> {
        self.sent += write_frame(&mut self.writer, msg)?;
        Ok(())
    }
}

/// A transport's writing end, locked. A poisoned lock only means a writer
/// panicked mid-frame; the stream is then unusable anyway, and the next
/// write reports it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read_frame<R: Read>(reader: &mut R, buf: &mut Vec<u8>) -> Result<Msg> {
    let mut prefix = [0u8; LEN_PREFIX];
    reader.read_exact(&mut prefix).map_err(io)?;
    let len = FRAMING.payload_len(prefix).map_err(frame_error)?;
    buf.resize(len, 0);
    reader.read_exact(buf).map_err(io)?;
    decode(buf)
}

fn write_frame<W: Write>(writer: &mut W, msg: &Msg) -> Result<u64> {
    let frame = encode(msg)?;
    writer.write_all(&frame).map_err(io)?;
    writer.flush().map_err(io)?;
    Ok(frame.len() as u64)
}

/// Encodes a message as one frame.
pub fn encode(msg: &Msg) -> Result<Vec<u8>> {
    let mut frame = postcard::to_extend(msg, vec![0u8; LEN_PREFIX])
        .map_err(|e| ProtocolError::invalid("outgoing message", format!("does not encode: {e}")))?;
    FRAMING.seal(&mut frame).map_err(frame_error)?;
    Ok(frame)
}

/// Decodes a frame's payload (without its length prefix).
///
/// A hello from a peer of another protocol version may not decode at all;
/// its first fields (the `Hello` tag, then the version) are stable, so such
/// a peer still gets the one clear line naming both versions.
pub fn decode(payload: &[u8]) -> Result<Msg> {
    postcard::from_bytes(payload).map_err(|e| {
        if let [0, rest @ ..] = payload {
            if let Ok((version, _)) = postcard::take_from_bytes::<u32>(rest) {
                if version != super::msg::PROTOCOL_VERSION {
                    return Error::Version(format!(
                        "incompatible peer: it speaks protocol {version}, this is sluice {} (protocol {})",
                        env!("CARGO_PKG_VERSION"),
                        super::msg::PROTOCOL_VERSION
                    ));
                }
            }
        }
        ProtocolError::undecodable("a message", e).into()
    })
}

/// One end of an in-memory pipe (local syncs and tests).
pub struct MemoryTransport {
    tx: chan::Sender<Vec<u8>>,
    rx: chan::Receiver<Vec<u8>>,
    sent: u64,
}

impl MemoryTransport {
    /// Two connected ends. `depth` frames may be in flight each way.
    pub fn pair(depth: usize) -> (MemoryTransport, MemoryTransport) {
        let (a_tx, b_rx) = chan::bounded(depth);
        let (b_tx, a_rx) = chan::bounded(depth);
        (
            MemoryTransport {
                tx: a_tx,
                rx: a_rx,
                sent: 0,
            },
            MemoryTransport {
                tx: b_tx,
                rx: b_rx,
                sent: 0,
            },
        )
    }
}

fn closed() -> Error {
    Error::Closed("the other side closed the connection".into())
}

impl Transport for MemoryTransport {
    fn send(&mut self, msg: &Msg) -> Result<()> {
        let frame = encode(msg)?;
        self.sent += frame.len() as u64;
        self.tx.send(frame).map_err(|_| closed())
    }

    fn recv(&mut self) -> Result<Msg> {
        mem_recv(&self.rx)
    }

    fn wire_bytes_sent(&self) -> u64 {
        self.sent
    }

    fn split(&mut self) -> Option<(Box<dyn MsgRead + '_>, Box<dyn MsgWrite + '_>)> {
        Some((
            Box::new(MemRead(&self.rx)),
            Box::new(MemWrite(&self.tx, &mut self.sent)),
        ))
    }

    fn pinger(&mut self) -> Option<Pinger> {
        let tx = self.tx.clone();
        let frame = encode(&Msg::Keepalive).ok()?;
        Some(Box::new(move || {
            tx.send(frame.clone()).map_err(|_| closed())
        }))
    }
}

/// A transport over a byte stream (a TCP socket, an ssh child's pipes).
pub struct StreamTransport<R, W> {
    reader: R,
    writer: Arc<Mutex<Counted<W>>>,
    buf: Vec<u8>,
}

impl<R: Read + Send, W: Write + Send + 'static> StreamTransport<R, W> {
    pub fn new(reader: R, writer: W) -> Self {
        StreamTransport {
            reader,
            writer: Arc::new(Mutex::new(Counted { writer, sent: 0 })),
            buf: Vec::new(),
        }
    }
}

fn io(e: std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::UnexpectedEof | K::BrokenPipe => closed(),
        K::TimedOut | K::WouldBlock => Error::TimedOut(e.to_string()),
        _ => Error::io("<connection>", e),
    }
}

impl<R: Read + Send, W: Write + Send + 'static> Transport for StreamTransport<R, W> {
    fn send(&mut self, msg: &Msg) -> Result<()> {
        lock(&self.writer).send(msg)
    }

    fn recv(&mut self) -> Result<Msg> {
        skip_keepalives(|| read_frame(&mut self.reader, &mut self.buf))
    }

    fn wire_bytes_sent(&self) -> u64 {
        lock(&self.writer).sent
    }

    fn split(&mut self) -> Option<(Box<dyn MsgRead + '_>, Box<dyn MsgWrite + '_>)> {
        Some((
            Box::new(StreamRead(&mut self.reader, Vec::new())),
            Box::new(StreamWrite(&self.writer)),
        ))
    }

    fn pinger(&mut self) -> Option<Pinger> {
        let writer = Arc::clone(&self.writer);
        Some(Box::new(move || lock(&writer).send(&Msg::Keepalive)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_round_trip_over_a_stream() {
        let msgs = vec![
            Msg::Data {
                idx: 7,
                bytes: vec![1, 2, 3],
            },
            Msg::NeedDone {
                round: 1,
                count: 0,
                udp: None,
            },
            Msg::Error("boom".into()),
        ];
        let mut wire = Vec::new();
        for m in &msgs {
            wire.extend(encode(m).unwrap());
        }
        let mut t = StreamTransport::new(&wire[..], Vec::new());
        for m in &msgs {
            assert_eq!(&t.recv().unwrap(), m);
        }
        assert!(matches!(t.recv(), Err(Error::Closed(_))));
    }

    #[test]
    fn a_hello_of_another_version_names_both_versions() {
        // Tag 0 (Hello), version 9 as a varint, then bytes this build cannot read.
        let payload = [0u8, 9, 0xff, 0xff, 0xff];
        match decode(&payload) {
            Err(Error::Version(m)) => {
                let ours = format!("protocol {}", super::super::msg::PROTOCOL_VERSION);
                assert!(m.contains("protocol 9") && m.contains(&ours), "{m}")
            }
            other => panic!("expected a version error, got {other:?}"),
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_allocation() {
        let wire = u32::MAX.to_be_bytes();
        let mut t = StreamTransport::new(&wire[..], Vec::new());
        assert!(matches!(
            t.recv(),
            Err(Error::Protocol(ProtocolError::OverLimit {
                what: "frame length",
                ..
            }))
        ));
        let huge = Msg::Data {
            idx: 0,
            bytes: vec![0; MAX_FRAME],
        };
        assert!(matches!(
            encode(&huge),
            Err(Error::Protocol(ProtocolError::OverLimit {
                what: "frame length",
                ..
            }))
        ));
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_a_closed_connection() {
        let wire = encode(&Msg::Error("boom".into())).unwrap();
        let mut t = StreamTransport::new(&wire[..wire.len() - 1], Vec::new());
        assert!(matches!(t.recv(), Err(Error::Closed(_))));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }
    }
}
