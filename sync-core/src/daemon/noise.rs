//! The daemon's encrypted wire: [`NoiseTransport`], a session
//! [`Transport`] over Noise transport messages on a TCP socket, and the
//! socket helpers the handshake ([`super::handshake`]) shares.
//!
//! Every Noise message is prefixed by its 2-byte big-endian length (the
//! Noise spec's §13 framing, [`NOISE_FRAMING`]) and is at most 65535
//! bytes; a session frame ([`crate::session::transport::FRAMING`]) is split
//! over as many messages as it needs. Both prefixes are written and checked
//! by [`crate::proto::frame`], every length before use; anything malformed
//! is [`Error::Protocol`], never a panic. All cryptography is `snow`'s.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::rate::Pacer;
use crate::error::ProtocolError;
use crate::error::{Error, Result};
use crate::proto::frame::{Framing, LEN_PREFIX};
use crate::session::msg::Msg;
use crate::session::transport::{
    decode, encode, frame_error, lock, skip_keepalives, MsgRead, MsgWrite, Pinger, Transport,
    FRAMING,
};

/// The Noise protocol name.
pub const PATTERN: &str = "Noise_XK_25519_ChaChaPoly_BLAKE2s";
/// Longest Noise message (spec §3).
pub const MAX_NOISE_MSG: usize = 65535;
/// Bytes of a Noise message's length prefix (spec §13).
const NOISE_PREFIX: usize = 2;
/// How Noise messages are framed on the socket: the spec's own bound, which
/// is also all that a 2-byte prefix can say.
pub const NOISE_FRAMING: Framing<NOISE_PREFIX> = Framing::new(MAX_NOISE_MSG);
/// The AEAD tag on every transport message.
const TAG: usize = 16;
/// Plaintext carried by one full transport message.
const MAX_PLAIN: usize = MAX_NOISE_MSG - TAG;
/// Reads and writes on a socket, with an optional deadline for reads.
pub(super) struct Io<'a> {
    pub(super) stream: &'a mut TcpStream,
    pub(super) deadline: Option<Instant>,
}

impl Io<'_> {
    pub(super) fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<()> {
        while !buf.is_empty() {
            if let Some(d) = self.deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timed_out());
                }
                self.stream.set_read_timeout(Some(left)).map_err(conn)?;
            }
            match self.stream.read(buf) {
                Ok(0) => return Err(closed()),
                Ok(n) => buf = &mut buf[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if self.deadline.is_none() {
                        return Err(timed_out());
                    }
                }
                Err(e) => return Err(conn(e)),
            }
        }
        Ok(())
    }

    pub(super) fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.stream.write_all(buf).map_err(conn)
    }

    /// Writes one length-prefixed Noise message.
    pub(super) fn write_msg(&mut self, msg: &[u8]) -> Result<()> {
        let mut out = Vec::with_capacity(NOISE_PREFIX + msg.len());
        NOISE_FRAMING.encode(msg, &mut out).map_err(frame_error)?;
        self.write_all(&out)
    }

    /// Reads one length-prefixed Noise message into `buf`.
    pub(super) fn read_msg(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        let mut prefix = [0u8; NOISE_PREFIX];
        self.read_exact(&mut prefix)?;
        let len = NOISE_FRAMING.payload_len(prefix).map_err(frame_error)?;
        // Shorter than its tag: not a Noise message at all.
        if len < TAG {
            return Err(ProtocolError::invalid(
                "Noise message",
                format!("{len} bytes, shorter than its {TAG}-byte tag"),
            )
            .into());
        }
        buf.resize(len, 0);
        self.read_exact(buf)
    }
}

fn closed() -> Error {
    Error::Closed("the other side closed the connection".into())
}

fn timed_out() -> Error {
    Error::TimedOut("timed out waiting for the other side".into())
}

pub(super) fn conn(e: std::io::Error) -> Error {
    match e.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => closed(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut => timed_out(),
        _ => Error::io("<connection>", e),
    }
}

pub(super) fn noise_err(what: &'static str) -> impl Fn(snow::Error) -> Error {
    move |e| ProtocolError::invalid(what, e.to_string()).into()
}

/// A session transport over a TCP socket, every byte encrypted and
/// authenticated by Noise.
///
/// The sending and receiving state are kept apart (`Writer`, `Reader`,
/// each with its own nonce, over snow's stateless transport state, whose
/// methods take `&self`) so the two directions can later be driven from two
/// threads at once.
pub struct NoiseTransport {
    stream: TcpStream,
    noise: Arc<snow::StatelessTransportState>,
    reader: Reader,
    /// Shared with the [`Pinger`], so keepalives and messages never
    /// interleave.
    writer: Arc<Mutex<Writer>>,
    pacer: Option<Arc<Pacer>>,
}

/// The sending direction: nonce, scratch buffer, byte count.
struct Writer {
    nonce: u64,
    out: Vec<u8>,
    sent: u64,
}

/// The receiving direction: nonce, decrypted bytes not yet consumed (from
/// `start` on), scratch buffer, and the read deadline.
struct Reader {
    nonce: u64,
    plain: Vec<u8>,
    start: usize,
    cipher: Vec<u8>,
    deadline: Option<Instant>,
    /// When set, each frame must arrive within this of the previous one
    /// (keepalives count); it re-arms `deadline`.
    idle: Option<Duration>,
}

impl Writer {
    /// Encrypts `bytes` as transport messages and writes them.
    fn write_plain(
        &mut self,
        noise: &snow::StatelessTransportState,
        mut stream: &TcpStream,
        pacer: Option<&Pacer>,
        bytes: &[u8],
    ) -> Result<()> {
        self.out.clear();
        for piece in bytes.chunks(MAX_PLAIN) {
            let start = self.out.len();
            let at = start + NOISE_PREFIX;
            self.out.resize(at + piece.len() + TAG, 0);
            let n = noise
                .write_message(self.nonce, piece, &mut self.out[at..])
                .map_err(noise_err("encrypt"))?;
            self.nonce += 1;
            self.out.truncate(at + n);
            NOISE_FRAMING
                .seal(&mut self.out[start..])
                .map_err(frame_error)?;
        }
        if let Some(p) = pacer {
            p.take(self.out.len());
        }
        stream.write_all(&self.out).map_err(conn)?;
        self.sent += self.out.len() as u64;
        Ok(())
    }

    fn send(
        &mut self,
        noise: &snow::StatelessTransportState,
        stream: &TcpStream,
        pacer: Option<&Pacer>,
        msg: &Msg,
    ) -> Result<()> {
        let frame = encode(msg)?;
        self.write_plain(noise, stream, pacer, &frame)
    }
}

impl Reader {
    /// Reads and decrypts one transport message onto `plain`.
    fn read_one(
        &mut self,
        noise: &snow::StatelessTransportState,
        stream: &mut TcpStream,
        pacer: Option<&Pacer>,
    ) -> Result<()> {
        let mut io = Io {
            stream,
            deadline: self.deadline,
        };
        io.read_msg(&mut self.cipher)?;
        if let Some(p) = pacer {
            p.take(self.cipher.len() + NOISE_PREFIX);
        }
        let at = self.plain.len();
        self.plain.resize(at + self.cipher.len(), 0);
        let n = noise
            .read_message(self.nonce, &self.cipher, &mut self.plain[at..])
            .map_err(|_| {
                ProtocolError::undecodable(
                    "a message",
                    "it failed authentication (corrupted or forged)",
                )
            })?;
        self.nonce += 1;
        self.plain.truncate(at + n);
        Ok(())
    }

    fn recv(
        &mut self,
        noise: &snow::StatelessTransportState,
        stream: &mut TcpStream,
        pacer: Option<&Pacer>,
    ) -> Result<Msg> {
        if self.start > 0 {
            self.plain.drain(..self.start);
            self.start = 0;
        }
        let len = loop {
            match FRAMING.peek_len(&self.plain).map_err(frame_error)? {
                Some(len) => break len,
                None => self.read_one(noise, stream, pacer)?,
            }
        };
        let end = LEN_PREFIX + len;
        while self.plain.len() < end {
            self.read_one(noise, stream, pacer)?;
        }
        self.start = end;
        decode(&self.plain[LEN_PREFIX..end])
    }

    /// The next message that is not a keepalive.
    fn next(
        &mut self,
        noise: &snow::StatelessTransportState,
        stream: &mut TcpStream,
        pacer: Option<&Pacer>,
    ) -> Result<Msg> {
        skip_keepalives(|| {
            if let Some(idle) = self.idle {
                self.deadline = Some(Instant::now() + idle);
            }
            self.recv(noise, stream, pacer)
        })
    }
}

impl NoiseTransport {
    pub(super) fn new(stream: TcpStream, noise: snow::StatelessTransportState) -> NoiseTransport {
        NoiseTransport {
            stream,
            noise: Arc::new(noise),
            reader: Reader {
                nonce: 0,
                plain: Vec::new(),
                start: 0,
                cipher: Vec::new(),
                deadline: None,
                idle: None,
            },
            writer: Arc::new(Mutex::new(Writer {
                nonce: 0,
                out: Vec::new(),
                sent: 0,
            })),
            pacer: None,
        }
    }

    /// Reads fail once `deadline` passes (`None`: the socket's own timeout).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) -> Result<()> {
        self.reader.deadline = deadline;
        self.reader.idle = None;
        if deadline.is_none() {
            self.stream.set_read_timeout(None).map_err(conn)?;
        }
        Ok(())
    }

    /// `--timeout`: a read or write on the socket that cannot proceed for
    /// `timeout` fails ([`Error::TimedOut`]).
    pub fn set_io_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.stream.set_read_timeout(timeout).map_err(conn)?;
        self.stream.set_write_timeout(timeout).map_err(conn)
    }

    /// Reads fail when no frame (a keepalive counts) arrives for `idle`.
    pub fn set_idle(&mut self, idle: Duration) {
        self.reader.idle = Some(idle);
    }

    /// Paces every byte sent and received through `pacer`.
    pub fn set_pacer(&mut self, pacer: Option<Arc<Pacer>>) {
        self.pacer = pacer;
    }

    /// The socket, for timeouts and addresses.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Test hook: sends arbitrary plaintext as if it were frames.
    #[cfg(test)]
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let pacer = self.pacer.as_deref();
        lock(&self.writer).write_plain(&self.noise, &self.stream, pacer, bytes)
    }
}

impl Transport for NoiseTransport {
    fn send(&mut self, msg: &Msg) -> Result<()> {
        let pacer = self.pacer.as_deref();
        lock(&self.writer).send(&self.noise, &self.stream, pacer, msg)
    }

    fn recv(&mut self) -> Result<Msg> {
        let pacer = self.pacer.as_deref();
        self.reader.next(&self.noise, &mut self.stream, pacer)
    }

    fn wire_bytes_sent(&self) -> u64 {
        lock(&self.writer).sent
    }

    fn pinger(&mut self) -> Option<Pinger> {
        let stream = self.stream.try_clone().ok()?;
        let (noise, writer) = (Arc::clone(&self.noise), Arc::clone(&self.writer));
        let pacer = self.pacer.clone();
        Some(Box::new(move || {
            lock(&writer).send(&noise, &stream, pacer.as_deref(), &Msg::Keepalive)
        }))
    }

    /// Two halves over one Noise state: the transport state is stateless
    /// (each direction keeps its own nonce), so reading and writing from two
    /// threads needs only a second descriptor of the socket.
    fn split(&mut self) -> Option<(Box<dyn MsgRead + '_>, Box<dyn MsgWrite + '_>)> {
        let read_stream = self.stream.try_clone().ok()?;
        let pacer = self.pacer.as_deref();
        Some((
            Box::new(NoiseRead {
                reader: &mut self.reader,
                noise: &self.noise,
                stream: read_stream,
                pacer,
            }),
            Box::new(NoiseWrite {
                writer: &self.writer,
                noise: &self.noise,
                stream: &self.stream,
                pacer,
            }),
        ))
    }
}

struct NoiseRead<'a> {
    reader: &'a mut Reader,
    noise: &'a snow::StatelessTransportState,
    stream: TcpStream,
    pacer: Option<&'a Pacer>,
}

impl MsgRead for NoiseRead<'_> {
    fn recv(&mut self) -> Result<Msg> {
        self.reader.next(self.noise, &mut self.stream, self.pacer)
    }
}

struct NoiseWrite<'a> {
    writer: &'a Mutex<Writer>,
    noise: &'a snow::StatelessTransportState,
    stream: &'a TcpStream,
    pacer: Option<&'a Pacer>,
}

impl MsgWrite for NoiseWrite<'_> {
    fn send(&mut self, msg: &Msg) -> Result<()> {
        lock(self.writer).send(self.noise, self.stream, self.pacer, msg)
    }
}

#[cfg(test)]
#[path = "noise_tests.rs"]
mod tests;
