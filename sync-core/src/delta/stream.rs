//! One zstd frame across many chunks, for the control connection.
//!
//! The control connection delivers in order and loses nothing, so chunks
//! sent there can share one compression stream: each chunk's bytes are a
//! flushed piece of one frame, and every chunk is compressed with the
//! chunks before it as history. That is what makes `rsync -z` strong on a
//! tree of small related files. Measured on the new files of a
//! linux-6.1 -> 6.12 upgrade (234 MB), zstd -3 on each file gives about a
//! quarter; one stream over them in path order, 12 %.
//!
//! UDP rounds cannot share a stream (a block lost delays every chunk after
//! it), so they use [`super::compress`], one frame a chunk.
//!
//! The decoder reads peer input: each chunk decodes into room for exactly
//! its declared length, at most [`MAX_DECODED`], and must fill it; the
//! frame's window is capped at [`WINDOW_LOG`], so a peer cannot make the
//! receiver hold more history than that.

use zstd::stream::raw::{CParameter, DParameter, Decoder, Encoder, InBuffer, Operation, OutBuffer};

use super::DeltaError;
#[cfg(any(doc, test))]
use super::MAX_DECODED;

/// History the stream keeps: 8 MiB, far more than the neighbouring files
/// of a tree that share text, and what the receiver must hold for it.
pub const WINDOW_LOG: u32 = 23;

/// The sending end: one frame, flushed after every chunk.
pub struct StreamCompressor {
    enc: Encoder<'static>,
    out: Vec<u8>,
}

impl StreamCompressor {
    pub fn new(level: i32) -> std::io::Result<Self> {
        let mut enc = Encoder::new(level)?;
        enc.set_parameter(CParameter::WindowLog(WINDOW_LOG))?;
        Ok(StreamCompressor {
            enc,
            out: Vec::new(),
        })
    }

    /// The next chunk's bytes in the stream. The receiver must decode every
    /// chunk this returned, in the same order.
    pub fn compress(&mut self, data: &[u8]) -> std::io::Result<&[u8]> {
        self.out.clear();
        self.out
            .reserve(zstd::zstd_safe::compress_bound(data.len()));
        let mut input = InBuffer::around(data);
        // The output buffer sets the vector's length as zstd writes.
        while input.pos() < data.len() {
            self.grow();
            let at = self.out.len();
            self.enc
                .run(&mut input, &mut OutBuffer::around_pos(&mut self.out, at))?;
        }
        loop {
            self.grow();
            let at = self.out.len();
            if self
                .enc
                .flush(&mut OutBuffer::around_pos(&mut self.out, at))?
                == 0
            {
                break;
            }
        }
        Ok(&self.out)
    }

    /// Room past the written bytes for the next step.
    fn grow(&mut self) {
        if self.out.capacity() - self.out.len() < 1 << 16 {
            self.out.reserve(1 << 16);
        }
    }
}

/// The receiving end.
pub struct StreamDecompressor {
    dec: Decoder<'static>,
}

impl StreamDecompressor {
    pub fn new() -> std::io::Result<Self> {
        let mut dec = Decoder::new()?;
        dec.set_parameter(DParameter::WindowLogMax(WINDOW_LOG))?;
        Ok(StreamDecompressor { dec })
    }

    /// Decodes the next chunk of the stream into `out`: exactly
    /// `declared_len` bytes, or an error (and the stream is then unusable).
    pub fn decompress(
        &mut self,
        bytes: &[u8],
        declared_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), DeltaError> {
        super::check_declared(declared_len)?;
        out.clear();
        out.resize(declared_len, 0);
        let mut input = InBuffer::around(bytes);
        let mut written = 0;
        loop {
            let mut output = OutBuffer::around_pos(&mut out[..], written);
            let before = (input.pos(), written);
            self.dec
                .run(&mut input, &mut output)
                .map_err(|_| DeltaError::Frame("corrupt stream"))?;
            written = output.pos();
            if input.pos() == bytes.len() && written == declared_len {
                break;
            }
            if (input.pos(), written) == before || written == declared_len {
                // No progress, or full with input left over.
                return Err(DeltaError::SizeMismatch {
                    declared: declared_len,
                    found: written as u64,
                });
            }
        }
        // Anything more the frame holds for this chunk is too much.
        let mut probe = [0u8; 1];
        let mut output = OutBuffer::around(&mut probe[..]);
        self.dec
            .run(&mut InBuffer::around(&[]), &mut output)
            .map_err(|_| DeltaError::Frame("corrupt stream"))?;
        if output.pos() > 0 {
            return Err(DeltaError::SizeMismatch {
                declared: declared_len,
                found: declared_len as u64 + 1,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(i: usize) -> Vec<u8> {
        crate::delta::tests::text(i as u64, 64 << 10)
    }

    #[test]
    fn chunks_round_trip_and_later_ones_use_earlier_ones() {
        let mut c = StreamCompressor::new(3).unwrap();
        let mut d = StreamDecompressor::new().unwrap();
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        for i in 0..20 {
            let chunk = text(i % 3);
            let wire = c.compress(&chunk).unwrap().to_vec();
            d.decompress(&wire, chunk.len(), &mut out).unwrap();
            assert_eq!(out, chunk);
            sizes.push(wire.len());
        }
        // The fourth chunk repeats the first: a few bytes of match codes.
        assert!(sizes[3] * 10 < sizes[0], "{sizes:?}");
    }

    #[test]
    fn a_chunk_that_decodes_longer_or_shorter_than_declared_is_refused() {
        let mut c = StreamCompressor::new(3).unwrap();
        let chunk = text(1);
        let wire = c.compress(&chunk).unwrap().to_vec();
        for declared in [chunk.len() - 1, chunk.len() + 1, MAX_DECODED + 1] {
            let mut d = StreamDecompressor::new().unwrap();
            let mut out = Vec::new();
            assert!(
                d.decompress(&wire, declared, &mut out).is_err(),
                "{declared}"
            );
            assert!(out.len() <= declared.min(MAX_DECODED));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = StreamDecompressor::new().unwrap();
        let mut out = Vec::new();
        for junk in [&b"\x28\xb5\x2f\xfd\xff\xff\xff"[..], b"", b"hello"] {
            assert!(d.decompress(junk, 100, &mut out).is_err());
        }
    }
}
