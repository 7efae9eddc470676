//! Content-defined chunking and chunk identities.
//!
//! This module owns the cut-point rule (FastCDC 2020, through the `fastcdc`
//! crate) and the BLAKE3 names of chunks. [`Chunker`] only looks at buffers;
//! [`stream`] wraps it around a reader in bounded memory. Nothing here opens
//! files or knows about the index.
//!
//! Cut points depend only on the bytes from a chunk's start up to `max`
//! bytes ahead, so a window that holds at least `max` bytes past the current
//! chunk start gives exactly the cuts a whole-file pass would give. That is
//! what lets [`stream::chunk_stream`] read a 100 GB file through a fixed
//! buffer and still agree with [`Chunker::cuts`] on the same bytes.

pub mod stream;

use fastcdc::v2020::{self, Normalization};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The BLAKE3 hash that names a chunk or a whole file.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// Hashes `data` with BLAKE3.
    pub fn of(data: &[u8]) -> Self {
        Hash(*blake3::hash(data).as_bytes())
    }

    /// Reads a hash from a 32-byte slice.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(Hash(bytes.try_into().ok()?))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

impl From<blake3::Hash> for Hash {
    fn from(h: blake3::Hash) -> Self {
        Hash(*h.as_bytes())
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

/// One chunk of a file: where it lies and what it hashes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// Byte offset of the chunk in its file.
    pub offset: u64,
    /// Length in bytes (at most [`ChunkParams::max`]).
    pub length: u32,
    /// BLAKE3 of the chunk's bytes.
    pub hash: Hash,
}

/// FastCDC size parameters, recorded in every index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for ChunkParams {
    fn default() -> Self {
        ChunkParams {
            min: 16 * 1024,
            avg: 64 * 1024,
            max: 256 * 1024,
        }
    }
}

impl ChunkParams {
    /// Checks the sizes against FastCDC's limits and our own (even sizes,
    /// min < avg < max).
    pub fn validate(&self) -> Result<()> {
        let ChunkParams { min, avg, max } = *self;
        let ok = (v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&(min as usize))
            && (v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&(avg as usize))
            && (v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&(max as usize))
            && min < avg
            && avg < max
            && min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0;
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "chunk sizes min {min} avg {avg} max {max} are out of range \
                 (even sizes, min < avg < max, min 64..1M, avg 256..4M, max 1K..16M)"
            )))
        }
    }
}

/// Finds content-defined cut points in buffers.
#[derive(Clone, Debug)]
pub struct Chunker {
    params: ChunkParams,
    mask_s: u64,
    mask_l: u64,
}

impl Chunker {
    /// A chunker for validated parameters.
    pub fn new(params: ChunkParams) -> Result<Self> {
        params.validate()?;
        let (mask_s, mask_l) = v2020::select_masks(params.avg as usize, Normalization::Level1);
        Ok(Chunker {
            params,
            mask_s,
            mask_l,
        })
    }

    /// The parameters this chunker cuts with.
    pub fn params(&self) -> ChunkParams {
        self.params
    }

    /// Length of the chunk that starts at `window[0]`, or `None` when the
    /// window is too short to tell and more input may follow (`eof` false).
    pub fn next_cut(&self, window: &[u8], eof: bool) -> Option<usize> {
        if window.is_empty() {
            return None;
        }
        let max = self.params.max as usize;
        let (_, len) = v2020::cut(
            window,
            self.params.min as usize,
            self.params.avg as usize,
            max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        // A cut at the very end of a short window may only be the end of
        // the data seen so far; it is final only at end of input or when the
        // window already held a whole maximum-size chunk.
        if len < window.len() || len == max || eof {
            Some(len)
        } else {
            None
        }
    }

    /// `(offset, length)` of every chunk of a complete buffer.
    pub fn cuts<'a>(&'a self, data: &'a [u8]) -> impl Iterator<Item = (usize, usize)> + 'a {
        let mut pos = 0;
        std::iter::from_fn(move || {
            let len = self.next_cut(&data[pos..], true)?;
            let at = pos;
            pos += len;
            Some((at, len))
        })
    }
}

#[cfg(test)]
mod tests;
