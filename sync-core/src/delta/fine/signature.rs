//! Signatures: the destination's old bytes as small content-defined pieces
//! named by truncated BLAKE3 hashes, and the sender's lookup table.
//!
//! Both sides cut with the same FastCDC parameters, so a piece of the new
//! chunk that also occurs in the old bytes is cut at the same boundaries
//! and gets the same name. Changing the parameters changes every name:
//! peers must agree on them (a protocol version).

use std::ops::Range;

use fastcdc::v2020::FastCDC;
use serde::{Deserialize, Serialize};

use crate::delta::DeltaError;

/// Average piece size: smaller pieces make smaller deltas and larger
/// signatures. On 40 small edits of ten kernel sources, signatures plus
/// compressed deltas came to 70 KB at 512 (1024: 72, 256: 103, 2048: 89)
/// and 130 KB with compression off (1024: 172); a signature is 1.2 % of the
/// old bytes it covers (11.8 KB per MB).
pub const PIECE_AVG: usize = 512;
/// Smallest piece: half the average cut fewer tiny pieces than a quarter
/// (signatures 7 % smaller, deltas the same).
pub const PIECE_MIN: usize = 256;
/// Largest piece.
pub const PIECE_MAX: usize = 2048;

/// Most pieces a signature may list: 8 MiB of hashes, about 1 GiB of old
/// data. The sender's lookup table holds up to this many entries.
pub const MAX_SIG_PIECES: usize = 1 << 20;

/// A piece's name: the first 8 bytes of its BLAKE3 hash.
pub type PieceHash = [u8; 8];

/// The destination's old bytes as one truncated hash per piece.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pieces: Vec<PieceHash>,
}

impl Signature {
    /// Signature of `old`.
    pub fn of(old: &[u8]) -> Self {
        Self::from_cuts(old, &Self::cuts(old))
    }

    /// Signature of `old` cut at `cuts` (from [`Signature::cuts`]), for a
    /// receiver that keeps the cuts and does not want to cut twice. Panics
    /// if a cut lies outside `old`.
    pub fn from_cuts(old: &[u8], cuts: &[Range<usize>]) -> Self {
        let pieces = cuts.iter().map(|r| piece_hash(&old[r.clone()])).collect();
        Signature { pieces }
    }

    /// Byte range of each piece of `old`, in order; they tile `old`. The
    /// receiver keeps these to rebuild dictionaries in [`super::apply`].
    pub fn cuts(old: &[u8]) -> Vec<Range<usize>> {
        pieces(old).collect()
    }

    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
}

/// The sender's lookup table over a received [`Signature`]: piece hash to
/// the first piece index that has it. Build once per signature.
#[derive(Clone, Debug, Default)]
pub struct SigIndex {
    first: foldhash::HashMap<PieceHash, u32>,
}

impl SigIndex {
    /// Indexes a peer's signature; refuses one above [`MAX_SIG_PIECES`].
    pub fn new(sig: &Signature) -> Result<Self, DeltaError> {
        if sig.pieces.len() > MAX_SIG_PIECES {
            return Err(DeltaError::SignatureTooLarge {
                got: sig.pieces.len(),
                max: MAX_SIG_PIECES,
            });
        }
        let mut first = foldhash::HashMap::default();
        first.reserve(sig.pieces.len());
        for (i, h) in sig.pieces.iter().enumerate() {
            // In range: MAX_SIG_PIECES is far below u32::MAX.
            first.entry(*h).or_insert(i as u32);
        }
        Ok(SigIndex { first })
    }

    /// The first signature piece with the same hash as `piece`.
    pub fn find(&self, piece: &[u8]) -> Option<u32> {
        self.first.get(&piece_hash(piece)).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }
}

/// The small content-defined cuts both sides use.
pub(super) fn pieces(data: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    FastCDC::new(data, PIECE_MIN, PIECE_AVG, PIECE_MAX).map(|c| c.offset..c.offset + c.length)
}

fn piece_hash(piece: &[u8]) -> PieceHash {
    let h = blake3::hash(piece);
    let mut out = [0; 8];
    out.copy_from_slice(&h.as_bytes()[..8]);
    out
}
