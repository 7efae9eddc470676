//! Per-chunk zstd, skipped at almost no cost for incompressible data.
//!
//! Before compressing a chunk, [`encode`] counts the byte values of a
//! 1 KiB sample (256 bytes at each quarter) and ships the chunk raw when
//! they are spread about evenly ([`looks_compressible`]). Random, encrypted
//! or already-compressed data then costs 0.54 us a 64 KiB chunk, 114 GiB/s
//! (`benches/codec.rs`, `encode/random_64KiB`): 18 ms for a 2 GiB file, 1-2
//! % of the 1-2 s a loopback transfer of it takes. Compressing a 2 KiB
//! sample at zstd level 1, the obvious test, cost 1.8 us a chunk (33
//! GiB/s), 3-6 % of that transfer. A chunk that passes is compressed whole
//! and still sent raw unless it saved [`MIN_SAVING`].
//!
//! [`decode`] reads peer input: it accepts one zstd frame that states its
//! content size, that size must be the declared one, the declared one is at
//! most [`MAX_DECODED`], and zstd writes into at most that much room.
//!
//! Contexts are reused ([`Compressor`], [`Decompressor`], one per thread):
//! creating a zstd context and its tables per chunk would cost more than
//! compressing a small chunk.

use serde::{Deserialize, Serialize};
use zstd::zstd_safe::{self, CCtx, DCtx};

use super::{DeltaError, MAX_DECODED};

/// How a chunk's bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// The chunk itself.
    Raw,
    /// One zstd frame that states its content size.
    Zstd,
}

/// A chunk ready to ship. The bytes borrow the input (raw) or the
/// compressor's buffer (zstd), so encoding copies nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoded<'a> {
    pub encoding: Encoding,
    pub bytes: &'a [u8],
}

/// Compression must save at least 1/`MIN_SAVING` of a chunk (3 %); below
/// that the receiver's decode time is not worth the bytes.
pub const MIN_SAVING: usize = 32;

/// Bytes sampled at each quarter of a chunk: 1 KiB in all, enough to
/// tell uniform bytes from text or code by a wide margin (see
/// [`looks_compressible`]) while staying far below a microsecond.
const SAMPLE_WINDOW: usize = 256;

/// Reusable compression state: a zstd context and scratch buffers.
///
/// zstd's tables grow to the largest level and input seen: at level 3,
/// 650 KiB for 64 KiB chunks, 1 MiB for 256 KiB chunks, 1.25 MiB after a
/// fine delta of a 256 KiB chunk (input plus dictionary); level 6 with
/// 256 KiB chunks, 3 MiB. The output and dictionary buffers add up to
/// twice the largest chunk. One per thread.
pub struct Compressor {
    cctx: CCtx<'static>,
    /// Output room, grown to the largest chunk seen and never shrunk.
    out: Vec<u8>,
    /// Scratch for [`super::fine`]: the dictionary and the pieces used.
    pub(super) dict: Vec<u8>,
    pub(super) used: foldhash::HashMap<u32, u32>,
}

impl Compressor {
    pub fn new() -> Self {
        Compressor {
            cctx: CCtx::create(),
            out: Vec::new(),
            dict: Vec::new(),
            used: foldhash::HashMap::default(),
        }
    }

    /// Compresses `data` with `dict` as raw-content history into at most
    /// `room` bytes of the output buffer; the frame's length, or `None`
    /// when it does not fit.
    ///
    /// `dict` must not start with zstd's dictionary magic, or zstd would
    /// parse it as a trained dictionary: [`super::fine`] puts a zero byte
    /// first.
    pub(super) fn compress_into_out(
        &mut self,
        data: &[u8],
        dict: &[u8],
        level: i32,
        room: usize,
    ) -> Option<usize> {
        if self.out.len() < room {
            // Zero-filled once per new maximum, then reused.
            self.out.resize(room, 0);
        }
        self.cctx
            .compress_using_dict(&mut self.out[..room], data, dict, level)
            .ok()
    }

    /// The frame [`Compressor::compress_into_out`] wrote.
    pub(super) fn out(&self, len: usize) -> &[u8] {
        &self.out[..len]
    }

    /// Bytes held by the zstd contexts (not counting buffers).
    pub fn context_bytes(&self) -> usize {
        self.cctx.sizeof()
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor::new()
    }
}

/// Reusable decompression state: a zstd context (93 KiB) and a scratch
/// dictionary that grows to the largest delta's. One per thread.
pub struct Decompressor {
    pub(super) dctx: DCtx<'static>,
    /// Scratch for [`super::fine`]: the dictionary rebuilt from old pieces.
    pub(super) dict: Vec<u8>,
}

impl Decompressor {
    pub fn new() -> Self {
        Decompressor {
            dctx: DCtx::create(),
            dict: Vec::new(),
        }
    }

    /// Bytes held by the zstd context (not counting the scratch buffer).
    pub fn context_bytes(&self) -> usize {
        self.dctx.sizeof()
    }
}

impl Default for Decompressor {
    fn default() -> Self {
        Decompressor::new()
    }
}

/// Encodes one chunk at zstd `level` (1..=19 sensible; 0 means zstd's
/// default, 3; negative levels are faster and store literals raw).
///
/// Raw when a sample says the chunk will not compress, when the whole chunk
/// saved less than [`MIN_SAVING`], or when the chunk is above
/// [`MAX_DECODED`] (the receiver would refuse it).
pub fn encode<'a>(data: &'a [u8], level: i32, ctx: &'a mut Compressor) -> Encoded<'a> {
    let raw = Encoded {
        encoding: Encoding::Raw,
        bytes: data,
    };
    if data.len() > MAX_DECODED || !looks_compressible(data) {
        return raw;
    }
    match ctx.compress_into_out(data, &[], level, saving_limit(data.len())) {
        Some(len) => Encoded {
            encoding: Encoding::Zstd,
            bytes: ctx.out(len),
        },
        None => raw,
    }
}

/// Decodes one chunk that the manifest declared `declared_len` bytes long
/// into `out` (cleared first). On error `out` is left empty.
///
/// A raw chunk is only checked for its length, not against
/// [`MAX_DECODED`]: its bytes are already here, nothing is amplified.
pub fn decode(
    enc: Encoding,
    bytes: &[u8],
    declared_len: usize,
    out: &mut Vec<u8>,
    ctx: &mut Decompressor,
) -> Result<(), DeltaError> {
    out.clear();
    match enc {
        Encoding::Raw if bytes.len() == declared_len => {
            out.extend_from_slice(bytes);
            Ok(())
        }
        Encoding::Raw => Err(DeltaError::SizeMismatch {
            declared: declared_len,
            found: bytes.len() as u64,
        }),
        Encoding::Zstd => decode_frame(&mut ctx.dctx, bytes, &[], declared_len, out),
    }
}

/// Decompresses exactly one frame, with `dict` as raw-content history,
/// into `out` (empty), refusing anything but `declared_len` bytes.
///
/// `out` is grown to hold `declared_len` bytes and never more. A frame
/// that states a small size and then expands runs out of that room (or, in
/// a buffer reused with more capacity, of the stated size, which zstd
/// checks) and is refused without further allocation.
pub(super) fn decode_frame(
    dctx: &mut DCtx<'static>,
    frame: &[u8],
    dict: &[u8],
    declared_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), DeltaError> {
    super::check_declared(declared_len)?;
    let frame_len = zstd_safe::find_frame_compressed_size(frame).map_err(frame_error)?;
    if frame_len != frame.len() {
        return Err(DeltaError::Frame("bytes after the frame"));
    }
    match zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) if n == declared_len as u64 => {}
        Ok(Some(n)) => {
            return Err(DeltaError::SizeMismatch {
                declared: declared_len,
                found: n,
            })
        }
        Ok(None) => return Err(DeltaError::Frame("content size not stated")),
        Err(_) => return Err(DeltaError::Frame("unreadable frame header")),
    }
    out.reserve_exact(declared_len);
    match dctx.decompress_using_dict(out, frame, dict) {
        Ok(n) if n == declared_len => Ok(()),
        Ok(n) => {
            out.clear();
            Err(DeltaError::SizeMismatch {
                declared: declared_len,
                found: n as u64,
            })
        }
        Err(code) => {
            out.clear();
            Err(frame_error(code))
        }
    }
}

/// False when a sample of `data` has its byte values spread so evenly
/// that zstd could not save [`MIN_SAVING`] on them.
///
/// The test is on the sample's collision entropy (Renyi order 2, from the
/// count of equal byte pairs), which never exceeds its Shannon entropy:
/// at 7.8 bits a byte or more, entropy coding saves at most 2.5 %. Random
/// bytes sit at 8 bits, about 7 standard deviations above the threshold at
/// this sample size; text and code sit near 5, binaries lower. What the
/// test misses is data whose bytes are uniform but repeat (a random block
/// copied within a chunk): that ships raw.
pub fn looks_compressible(data: &[u8]) -> bool {
    if data.len() < 16 * SAMPLE_WINDOW {
        // Small enough that compressing it whole is the test.
        return true;
    }
    let mut counts = [0u32; 256];
    for quarter in 0..4 {
        let at = data.len() / 4 * quarter;
        for &b in &data[at..at + SAMPLE_WINDOW] {
            counts[b as usize] += 1;
        }
    }
    let n = 4 * SAMPLE_WINDOW as u64;
    let pairs: u64 = counts
        .iter()
        .map(|&c| c as u64 * (c as u64).saturating_sub(1))
        .sum();
    // Uniform bytes give n(n-1)/256 equal pairs; 2^(8 - 7.8) = 1.149 times
    // that is collision entropy 7.8 bits.
    pairs * 256 * 1000 > n * (n - 1) * 1149
}

/// The most bytes an encoding of `len` bytes may take.
pub(super) fn saving_limit(len: usize) -> usize {
    len - len / MIN_SAVING
}

fn frame_error(code: zstd_safe::ErrorCode) -> DeltaError {
    DeltaError::Frame(zstd_safe::get_error_name(code))
}
