//! Content-defined chunking and chunk identities.
//!
//! This module owns the cut-point rule (FastCDC 2020: the `fastcdc` crate's
//! tables and masks, its search loop restated here for speed and tested to
//! cut exactly where the crate cuts) and the BLAKE3 names of chunks.
//! [`Chunker`] only looks at buffers; [`stream`] wraps it around a reader in
//! bounded memory. Nothing here opens files or knows about the index.
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
        let len = gear_cut(
            window,
            self.params.min as usize,
            self.params.avg as usize,
            max,
            self.mask_s,
            self.mask_l,
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

/// FastCDC 2020's cut-point search, exactly as `fastcdc::v2020::cut` does
/// it (same tables, masks, two-byte "rolling" steps and limits, so the same
/// cut points), restated for speed.
///
/// The crate's loop is bound by the latency of its hash chain: a shift and
/// two dependent adds per byte pair. The gear hash only ever shifts and adds
/// (mod 2^64), so four bytes can be folded in with one shift and one add on
/// the chain, the table sums being computed beside it; the four candidate
/// hashes are tested together and, on a hit, resolved in byte order.
fn gear_cut(src: &[u8], min: usize, avg: usize, max: usize, mask_s: u64, mask_l: u64) -> usize {
    let mut remaining = src.len();
    if remaining <= min {
        return remaining;
    }
    let mut center = avg;
    if remaining > max {
        remaining = max;
    } else if remaining < center {
        center = remaining;
    }
    let src = &src[..remaining];
    let (gear, gear_ls) = gear_tables();
    let mut hash = 0u64;
    let mut pair = min / 2;
    for (limit, mask) in [(center / 2, mask_s), (remaining / 2, mask_l)] {
        let mask_ls = mask << 1;
        // Two pairs (four bytes) per step.
        while pair + 2 <= limit {
            let a = pair * 2;
            let b: &[u8; 4] = src[a..a + 4].try_into().expect("four bytes");
            let x0 = gear_ls[b[0] as usize];
            let p0 = x0.wrapping_add(gear[b[1] as usize]);
            let x1 = (p0 << 2).wrapping_add(gear_ls[b[2] as usize]);
            let p1 = x1.wrapping_add(gear[b[3] as usize]);
            let h1 = (hash << 2).wrapping_add(x0);
            let h2 = (hash << 2).wrapping_add(p0);
            let h3 = (hash << 4).wrapping_add(x1);
            let h4 = (hash << 4).wrapping_add(p1);
            let hit =
                (h1 & mask_ls == 0) | (h2 & mask == 0) | (h3 & mask_ls == 0) | (h4 & mask == 0);
            if hit {
                return if h1 & mask_ls == 0 {
                    a
                } else if h2 & mask == 0 {
                    a + 1
                } else if h3 & mask_ls == 0 {
                    a + 2
                } else {
                    a + 3
                };
            }
            hash = h4;
            pair += 2;
        }
        // A last single pair, as the crate steps.
        while pair < limit {
            let a = pair * 2;
            hash = (hash << 2).wrapping_add(gear_ls[src[a] as usize]);
            if hash & mask_ls == 0 {
                return a;
            }
            hash = hash.wrapping_add(gear[src[a + 1] as usize]);
            if hash & mask == 0 {
                return a + 1;
            }
            pair += 1;
        }
    }
    remaining
}

/// The crate's default (unseeded) gear tables, plain and left-shifted.
fn gear_tables() -> &'static ([u64; 256], [u64; 256]) {
    static TABLES: std::sync::OnceLock<([u64; 256], [u64; 256])> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let (gear, gear_ls) = v2020::get_gear_with_seed(0);
        let table =
            |t: &[u64]| -> [u64; 256] { t.try_into().expect("gear tables have 256 entries") };
        (table(&gear), table(&gear_ls))
    })
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod gear_tests {
    use fastcdc::v2020;
    use proptest::prelude::*;

    use super::{gear_cut, ChunkParams, Chunker};

    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect()
    }

    /// Our restatement must cut exactly where the crate cuts.
    fn agrees(ch: &Chunker, data: &[u8]) {
        let p = ch.params();
        let (min, avg, max) = (p.min as usize, p.avg as usize, p.max as usize);
        let mut pos = 0;
        while pos < data.len() {
            let w = &data[pos..];
            let (_, theirs) = v2020::cut(
                w,
                min,
                avg,
                max,
                ch.mask_s,
                ch.mask_l,
                ch.mask_s << 1,
                ch.mask_l << 1,
            );
            let ours = gear_cut(w, min, avg, max, ch.mask_s, ch.mask_l);
            assert_eq!(ours, theirs, "at {pos} of {}", data.len());
            // Also every shorter window ending near a cut.
            for cut in [
                theirs.saturating_sub(1),
                theirs.saturating_sub(3),
                theirs + 1,
            ] {
                let w = &w[..cut.min(w.len())];
                let (_, t) = v2020::cut(
                    w,
                    min,
                    avg,
                    max,
                    ch.mask_s,
                    ch.mask_l,
                    ch.mask_s << 1,
                    ch.mask_l << 1,
                );
                assert_eq!(gear_cut(w, min, avg, max, ch.mask_s, ch.mask_l), t);
            }
            pos += theirs;
        }
    }

    #[test]
    fn default_params_cut_like_fastcdc() {
        let ch = Chunker::new(ChunkParams::default()).unwrap();
        agrees(&ch, &noise(7, 8 << 20));
        agrees(&ch, &vec![0u8; 1 << 20]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn small_params_cut_like_fastcdc(seed in any::<u64>(), len in 0usize..200_000, avg_log in 8u32..13) {
            let avg = 1u32 << avg_log;
            let ch = Chunker::new(ChunkParams { min: 64.max(avg / 4), avg, max: avg * 4 }).unwrap();
            agrees(&ch, &noise(seed, len));
        }
    }
}
