//! Length-prefixed frames over any byte stream.
//!
//! Owns the framing used on every reliable stream sluice speaks over (TCP,
//! an ssh pipe, an in-memory pipe): a `u32` big-endian length followed by
//! that many payload bytes. [`FrameDecoder`] is incremental — feed it
//! whatever slices the stream returns, in any sizes, and take whole frames
//! out — and it enforces an explicit maximum frame length *before* buffering
//! the payload, so a hostile length prefix cannot make us allocate. It never
//! reads or writes the stream itself except in the small blocking helpers
//! [`write_frame`] and [`read_frame`].

use std::io::{self, Read, Write};

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;
/// Default upper bound on one frame's payload (16 MiB).
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// Framing errors. After one, the stream is out of sync and must be closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("stream ended inside a frame ({0} bytes buffered)")]
    Truncated(usize),
}

/// Appends one frame (prefix + payload) to `out`.
pub fn encode_frame(payload: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    if payload.len() > max || payload.len() > u32::MAX as usize {
        return Err(FrameError::TooLong {
            len: payload.len(),
            max,
        });
    }
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Incremental decoder: `push` bytes as they come, pop frames with `next_frame`.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`; compacted lazily so popping many
    /// small frames does not shift the buffer each time.
    pos: usize,
    max: usize,
    error: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that rejects frames longer than `max` payload bytes.
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            pos: 0,
            max,
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
        let avail = &self.buf[self.pos..];
        let Some(prefix) = avail.get(..LEN_PREFIX) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.max {
            let e = FrameError::TooLong { len, max: self.max };
            self.error = Some(e.clone());
            return Err(e);
        }
        let Some(payload) = avail.get(LEN_PREFIX..LEN_PREFIX + len) else {
            return Ok(None);
        };
        let frame = payload.to_vec();
        self.pos += LEN_PREFIX + len;
        Ok(Some(frame))
    }

    /// Call at end of stream: an error if a partial frame is left over.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.buffered() {
            0 => Ok(()),
            n => Err(FrameError::Truncated(n)),
        }
    }
}

/// Writes one frame to a blocking stream (prefix and payload in one write).
pub fn write_frame<W: Write>(w: &mut W, payload: &[u8], max: usize) -> io::Result<()> {
    let mut out = Vec::with_capacity(LEN_PREFIX + payload.len());
    encode_frame(payload, max, &mut out)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    w.write_all(&out)
}

/// Reads one frame from a blocking stream; `Ok(None)` on a clean end of
/// stream between frames.
pub fn read_frame<R: Read>(r: &mut R, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; LEN_PREFIX];
    let mut got = 0;
    while got < LEN_PREFIX {
        match r.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        let e = FrameError::TooLong { len, max };
        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some(payload))
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
    }

    #[test]
    fn blocking_helpers_round_trip_and_detect_truncation() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"abc", 10).unwrap();
        write_frame(&mut buf, b"", 10).unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r, 10).unwrap().unwrap(), b"abc");
        assert_eq!(read_frame(&mut r, 10).unwrap().unwrap(), b"");
        assert!(read_frame(&mut r, 10).unwrap().is_none());
        let mut r = &buf[..5];
        assert!(read_frame(&mut r, 10).is_err());
        let mut dec = FrameDecoder::new(10);
        dec.push(&buf[..5]);
        assert_eq!(dec.next_frame(), Ok(None));
        assert_eq!(dec.finish(), Err(FrameError::Truncated(5)));
    }
}
