//! Length-prefixed frames: the one framing of every byte stream.
//!
//! Owns the length prefix on every stream sluice speaks over: a `W`-byte
//! big-endian payload length, then the payload. Session messages (ssh
//! pipes, TCP, the in-memory pipe, inside Noise) and control messages use
//! a 4-byte prefix; Noise transport messages use the 2-byte prefix of the
//! Noise spec (§13). A [`Framing`] carries the caller's bound on one
//! payload, and each caller states the reason for its bound where it
//! chooses it. The bound is checked on the prefix alone, before any payload
//! is buffered, so a hostile length cannot make a reader allocate; the
//! too-long and truncated errors are written here once.
//!
//! This module never touches a stream: drivers read and write the bytes
//! and hand them here. [`FrameDecoder`] is the incremental form for
//! non-blocking streams.

/// Bytes of the 4-byte prefix sluice's own streams use.
pub const LEN_PREFIX: usize = 4;

/// Framing errors. After one, the stream is out of sync and must be closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("stream ended inside a frame ({0} bytes buffered)")]
    Truncated(usize),
}

/// A frame's payload, then the bytes after the frame.
pub type Split<'a> = (&'a [u8], &'a [u8]);

/// A length-prefixed framing: a `W`-byte big-endian length (1 to 8 bytes),
/// then at most `max` payload bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing<const W: usize> {
    max: usize,
}

impl<const W: usize> Framing<W> {
    /// Bytes of the prefix.
    pub const WIDTH: usize = W;

    /// Frames of at most `max` payload bytes; a bound above what `W` bytes
    /// can express is lowered to that.
    pub const fn new(max: usize) -> Self {
        assert!(W >= 1 && W <= 8, "a length prefix is 1 to 8 bytes");
        let cap = if W >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * W)) - 1
        };
        let max = if (max as u64) < cap {
            max
        } else {
            cap as usize
        };
        Framing { max }
    }

    /// The largest payload accepted.
    pub const fn max(&self) -> usize {
        self.max
    }

    fn check(&self, len: usize) -> Result<usize, FrameError> {
        if len > self.max {
            return Err(FrameError::TooLong { len, max: self.max });
        }
        Ok(len)
    }

    /// The prefix announcing a payload of `len` bytes.
    pub fn prefix(&self, len: usize) -> Result<[u8; W], FrameError> {
        let be = (self.check(len)? as u64).to_be_bytes();
        let mut prefix = [0u8; W];
        prefix.copy_from_slice(&be[8 - W..]);
        Ok(prefix)
    }

    /// Writes the prefix into the first `W` bytes of `frame`, announcing
    /// the rest as the payload (for encoders that reserve the prefix and
    /// append the payload in place).
    pub fn seal(&self, frame: &mut [u8]) -> Result<(), FrameError> {
        let prefix = self.prefix(frame.len() - W)?;
        frame[..W].copy_from_slice(&prefix);
        Ok(())
    }

    /// Appends one frame (prefix + payload) to `out`.
    pub fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        out.extend_from_slice(&self.prefix(payload.len())?);
        out.extend_from_slice(payload);
        Ok(())
    }

    /// The payload length a prefix announces, checked against the bound.
    pub fn payload_len(&self, prefix: [u8; W]) -> Result<usize, FrameError> {
        let len = prefix.iter().fold(0u64, |n, &b| n << 8 | u64::from(b));
        self.check(usize::try_from(len).unwrap_or(usize::MAX))
    }

    /// The payload length announced at the start of `buf`; `Ok(None)` until
    /// the whole prefix is there.
    pub fn peek_len(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        match buf.first_chunk::<W>() {
            Some(prefix) => self.payload_len(*prefix).map(Some),
            None => Ok(None),
        }
    }

    /// The first frame of `buf` as (payload, the bytes after it); `Ok(None)`
    /// until the whole frame is there. A length over the bound is an error
    /// as soon as its prefix is in, however little of the payload is.
    pub fn split<'a>(&self, buf: &'a [u8]) -> Result<Option<Split<'a>>, FrameError> {
        let Some(len) = self.peek_len(buf)? else {
            return Ok(None);
        };
        Ok(buf[W..].split_at_checked(len))
    }

    /// [`Framing::split`] for a buffer that holds whole frames (nothing
    /// more will arrive): a partial frame is [`FrameError::Truncated`].
    pub fn split_complete<'a>(&self, buf: &'a [u8]) -> Result<Split<'a>, FrameError> {
        self.split(buf)?.ok_or(FrameError::Truncated(buf.len()))
    }
}

/// Appends one 4-byte-prefixed frame of at most `max` payload bytes to `out`.
pub fn encode_frame(payload: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    Framing::<LEN_PREFIX>::new(max).encode(payload, out)
}

/// Incremental decoder of 4-byte-prefixed frames: `push` bytes as they
/// come, pop frames with `next_frame`.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`; compacted lazily so popping many
    /// small frames does not shift the buffer each time.
    pos: usize,
    framing: Framing<LEN_PREFIX>,
    error: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that rejects frames longer than `max` payload bytes.
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            pos: 0,
            framing: Framing::new(max),
            error: None,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed. Errors are
    /// sticky: the stream cannot be resynchronised after a bad prefix.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match self.framing.split(&self.buf[self.pos..]) {
            Ok(Some((payload, _))) => {
                let frame = payload.to_vec();
                self.pos += LEN_PREFIX + frame.len();
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Call at end of stream: an error if a partial frame is left over.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.buffered() {
            0 => Ok(()),
            n => Err(FrameError::Truncated(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn frames_survive_any_split(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            cuts in proptest::collection::vec(1usize..50, 1..20),
        ) {
            let mut stream = Vec::new();
            for f in &frames {
                encode_frame(f, 1000, &mut stream).unwrap();
            }
            let mut dec = FrameDecoder::new(1000);
            let mut out = Vec::new();
            let mut rest = &stream[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                dec.push(&rest[..n]);
                rest = &rest[n..];
                i += 1;
                while let Some(f) = dec.next_frame().unwrap() {
                    out.push(f);
                }
            }
            prop_assert_eq!(out, frames);
            prop_assert_eq!(dec.finish(), Ok(()));
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut dec = FrameDecoder::new(64);
            dec.push(&bytes);
            for _ in 0..100 {
                match dec.next_frame() {
                    Ok(Some(f)) => prop_assert!(f.len() <= 64),
                    Ok(None) | Err(_) => break,
                }
            }
        }

        #[test]
        fn two_byte_frames_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..600)) {
            let framing = Framing::<2>::new(600);
            let mut wire = Vec::new();
            framing.encode(&payload, &mut wire).unwrap();
            prop_assert_eq!(&wire[..2], &(payload.len() as u16).to_be_bytes());
            let (got, rest) = framing.split_complete(&wire).unwrap();
            prop_assert_eq!(got, &payload[..]);
            prop_assert!(rest.is_empty());
        }
    }

    #[test]
    fn the_prefix_is_a_big_endian_length() {
        let mut wire = Vec::new();
        encode_frame(b"abc", 10, &mut wire).unwrap();
        assert_eq!(wire, [0, 0, 0, 3, b'a', b'b', b'c']);
        let mut sealed = vec![9, 9, 9, 9, b'a', b'b', b'c'];
        Framing::<4>::new(10).seal(&mut sealed).unwrap();
        assert_eq!(sealed, wire);
        assert_eq!(Framing::<2>::new(usize::MAX).prefix(258), Ok([1, 2]));
    }

    #[test]
    fn a_bound_above_the_prefix_is_lowered_to_it() {
        assert_eq!(Framing::<2>::new(usize::MAX).max(), 65535);
        assert_eq!(Framing::<4>::new(usize::MAX).max(), u32::MAX as usize);
        assert_eq!(Framing::<4>::new(100).max(), 100);
        assert_eq!(
            Framing::<2>::new(usize::MAX).prefix(65536),
            Err(FrameError::TooLong {
                len: 65536,
                max: 65535
            })
        );
    }

    #[test]
    fn oversized_prefix_is_rejected_before_buffering_and_sticks() {
        let mut dec = FrameDecoder::new(10);
        dec.push(&[0, 0, 0, 11]);
        assert_eq!(
            dec.next_frame(),
            Err(FrameError::TooLong { len: 11, max: 10 })
        );
        dec.push(&[0; 20]);
        assert!(dec.next_frame().is_err());
        let mut out = Vec::new();
        assert!(encode_frame(&[0; 11], 10, &mut out).is_err());
        let framing = Framing::<4>::new(10);
        assert_eq!(
            framing.payload_len(u32::MAX.to_be_bytes()),
            Err(FrameError::TooLong {
                len: u32::MAX as usize,
                max: 10
            })
        );
        assert!(framing.split(&[0, 0, 0, 11]).is_err());
    }

    #[test]
    fn partial_frames_wait_or_are_truncated() {
        let framing = Framing::<4>::new(10);
        let mut wire = Vec::new();
        framing.encode(b"abc", &mut wire).unwrap();
        framing.encode(b"", &mut wire).unwrap();
        assert_eq!(framing.peek_len(&wire[..3]), Ok(None));
        assert_eq!(framing.peek_len(&wire[..4]), Ok(Some(3)));
        assert_eq!(framing.split(&wire[..6]), Ok(None));
        let (first, rest) = framing.split_complete(&wire).unwrap();
        assert_eq!((first, rest.len()), (&b"abc"[..], 4));
        assert_eq!(framing.split_complete(rest), Ok((&[][..], &[][..])));
        assert_eq!(
            framing.split_complete(&wire[..5]),
            Err(FrameError::Truncated(5))
        );
        let mut dec = FrameDecoder::new(10);
        dec.push(&wire[..5]);
        assert_eq!(dec.next_frame(), Ok(None));
        assert_eq!(dec.finish(), Err(FrameError::Truncated(5)));
    }
}
