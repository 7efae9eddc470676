//! Fine-grained deltas: a new chunk against an old version's small pieces.
//!
//! The destination cuts the old bytes it no longer uses into pieces with a
//! small FastCDC ([`PIECE_MIN`]..[`PIECE_MAX`], about [`PIECE_AVG`] bytes)
//! and sends their truncated BLAKE3 hashes as a [`Signature`]. The sender
//! cuts the new chunk the same way, looks each piece up ([`SigIndex`]),
//! and concatenates the matched pieces, each once, in order of first use:
//! that is the dictionary. It then compresses the whole new chunk with the
//! dictionary as zstd raw-content history ([`encode`]), so matched regions
//! become a few bytes of match codes and the literals are coded with the
//! matched data as context (what rsync `-z` does with its matched blocks).
//! The [`Delta`] carries the piece runs and the frame; the destination
//! rebuilds the dictionary from its own old bytes, decompresses, and checks
//! the chunk's BLAKE3 ([`apply`]). The dictionary is never longer than the
//! chunk, so no window needs sizing: zstd sees the chunk and its
//! dictionary whole.
//!
//! Content-defined pieces resynchronise after insertions and deletions, so
//! an edit costs the piece or two around it, not the rest of the chunk.
//!
//! With compression off the body is a list of copies and literals
//! ([`Body::Ops`]): matched pieces never travel, the rest travels as it is,
//! and neither side runs zstd. A negative zstd level (raw literals) was
//! tried instead and shipped 3 times the bytes on edited kernel sources:
//! its small hash tables miss most of the dictionary's matches.
//!
//! Nothing here reads files: both sides hand in buffers.

mod signature;

pub use signature::{
    PieceHash, SigIndex, Signature, MAX_SIG_PIECES, PIECE_AVG, PIECE_MAX, PIECE_MIN,
};

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::compress::{decode_frame, saving_limit, Compressor, Decompressor};
use super::{DeltaError, MAX_DECODED};
use crate::chunk::Hash;

/// Largest dictionary a delta may name. An honest one is made of distinct
/// pieces of the new chunk, so it is never longer than the chunk, which is
/// at most [`MAX_DECODED`].
pub const MAX_DICT: usize = MAX_DECODED;

/// First byte of every dictionary, so that no dictionary starts with zstd's
/// dictionary magic and gets parsed as a trained one.
const DICT_LEAD: u8 = 0;

/// A new chunk as runs of old pieces plus a body that uses them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// Runs `(first, count)` of signature piece indices. Their bytes,
    /// concatenated in this order after a zero byte, are the dictionary.
    pub refs: Vec<(u32, u32)>,
    pub body: Body,
}

/// How a [`Delta`] spells the new chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// One zstd frame of the whole chunk, compressed with the dictionary
    /// as history.
    Zstd(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Compression off: copies from the dictionary and runs of `literals`,
    /// in order. Costs the sender a hash lookup per piece and nothing more.
    Ops {
        ops: Vec<Op>,
        #[serde(with = "serde_bytes")]
        literals: Vec<u8>,
    },
}

impl Body {
    /// Bytes the body carries: the frame, or the literals plus a generous
    /// 8 bytes an op.
    pub fn len(&self) -> usize {
        match self {
            Body::Zstd(frame) => frame.len(),
            Body::Ops { ops, literals } => literals.len() + 8 * ops.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One step of [`Body::Ops`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `len` dictionary bytes from offset `from` (the lead byte not
    /// counted).
    Copy { from: u32, len: u32 },
    /// The next `len` bytes of the literals.
    Literal { len: u32 },
}

/// Encodes `new` against a signature of the destination's old bytes.
///
/// `level` is the zstd level for a [`Body::Zstd`]; `None` (the user turned
/// compression off) gives [`Body::Ops`], where matched bytes still do not
/// travel and the rest travels as it is. `None` back when no piece matched
/// or the delta would not save [`super::compress::MIN_SAVING`]: send the
/// chunk through [`super::compress::encode`] (or raw) instead.
pub fn encode(
    new: &[u8],
    index: &SigIndex,
    level: Option<i32>,
    ctx: &mut Compressor,
) -> Option<Delta> {
    if new.len() > MAX_DECODED || index.is_empty() {
        return None;
    }
    let mut dict = std::mem::take(&mut ctx.dict);
    dict.clear();
    dict.push(DICT_LEAD);
    ctx.used.clear();
    let mut refs: Vec<(u32, u32)> = Vec::new();
    let mut ops: Vec<Op> = Vec::new();
    let mut literals = Vec::new();
    for r in signature::pieces(new) {
        let piece = &new[r];
        let len = piece.len() as u32;
        let Some(i) = index.find(piece) else {
            push_op(&mut ops, Op::Literal { len });
            if level.is_none() {
                literals.extend_from_slice(piece);
            }
            continue;
        };
        // Each piece enters the dictionary once, at its first use.
        let from = *ctx.used.entry(i).or_insert_with(|| {
            match refs.last_mut() {
                Some((first, count)) if *first + *count == i => *count += 1,
                _ => refs.push((i, 1)),
            }
            // Our bytes equal the destination's piece `i`: same hash.
            dict.extend_from_slice(piece);
            (dict.len() - 1 - piece.len()) as u32
        });
        push_op(&mut ops, Op::Copy { from, len });
    }
    let limit = saving_limit(new.len());
    let body = match level {
        _ if refs.is_empty() => None,
        Some(level) => ctx
            .compress_into_out(new, &dict, level, limit)
            .map(|len| Body::Zstd(ctx.out(len).to_vec())),
        None => Some(Body::Ops { ops, literals }).filter(|body| body.len() <= limit),
    };
    ctx.dict = dict;
    Some(Delta { refs, body: body? })
}

/// Appends `op`, merged into the last one when it continues it.
fn push_op(ops: &mut Vec<Op>, op: Op) {
    match (ops.last_mut(), op) {
        (Some(Op::Literal { len }), Op::Literal { len: more }) => *len += more,
        (
            Some(Op::Copy { from, len }),
            Op::Copy {
                from: next,
                len: more,
            },
        ) if *from + *len == next => *len += more,
        _ => ops.push(op),
    }
}

/// Rebuilds a chunk of `declared_len` bytes named `expected` from `delta`
/// and the destination's `old` bytes, cut at `cuts` (the
/// [`Signature::cuts`] of `old` that the signature was made from).
///
/// Errors name the bound the delta broke. [`DeltaError::HashMismatch`] is
/// what an honest sender can cause (a truncated hash collided): fetch the
/// whole chunk then.
pub fn apply(
    delta: &Delta,
    old: &[u8],
    cuts: &[Range<usize>],
    declared_len: usize,
    expected: &Hash,
    ctx: &mut Decompressor,
) -> Result<Vec<u8>, DeltaError> {
    crate::delta::check_declared(declared_len)?;
    // Runs and ops each cover at least one piece of the new chunk, and all
    // its pieces but the last are at least PIECE_MIN long.
    let max_steps = declared_len / PIECE_MIN + 1;
    if delta.refs.len() > max_steps {
        return Err(DeltaError::TooManyRefs {
            got: delta.refs.len(),
            max: max_steps,
        });
    }
    let dict = &mut ctx.dict;
    dict.clear();
    dict.push(DICT_LEAD);
    for &(first, count) in &delta.refs {
        let bytes = run_bytes(old, cuts, first, count).ok_or(DeltaError::RefOutOfRange {
            first,
            count,
            pieces: cuts.len(),
        })?;
        if dict.len() - 1 + bytes.len() > MAX_DICT {
            return Err(DeltaError::DictTooLarge { max: MAX_DICT });
        }
        dict.extend_from_slice(bytes);
    }
    let mut out = Vec::new();
    match &delta.body {
        Body::Zstd(frame) => decode_frame(&mut ctx.dctx, frame, dict, declared_len, &mut out)?,
        Body::Ops { ops, literals } => {
            if ops.len() > max_steps {
                return Err(DeltaError::TooManyOps {
                    got: ops.len(),
                    max: max_steps,
                });
            }
            out = run_ops(ops, literals, &dict[1..], declared_len)?;
        }
    }
    if Hash::of(&out) != *expected {
        return Err(DeltaError::HashMismatch);
    }
    Ok(out)
}

/// Executes `ops`, never writing past `declared_len`.
fn run_ops(
    ops: &[Op],
    literals: &[u8],
    dict: &[u8],
    declared_len: usize,
) -> Result<Vec<u8>, DeltaError> {
    let mut out = Vec::with_capacity(declared_len);
    let mut rest = literals;
    for &op in ops {
        let bytes = match op {
            Op::Copy { from, len } => dict
                .get(from as usize..)
                .and_then(|d| d.get(..len as usize)),
            Op::Literal { len } => rest.split_at_checked(len as usize).map(|(bytes, tail)| {
                rest = tail;
                bytes
            }),
        };
        let bytes = bytes.ok_or(DeltaError::OpOutOfRange(op))?;
        if out.len() + bytes.len() > declared_len {
            return Err(DeltaError::SizeMismatch {
                declared: declared_len,
                found: (out.len() + bytes.len()) as u64,
            });
        }
        out.extend_from_slice(bytes);
    }
    if out.len() != declared_len || !rest.is_empty() {
        return Err(DeltaError::SizeMismatch {
            declared: declared_len,
            found: (out.len() + rest.len()) as u64,
        });
    }
    Ok(out)
}

/// The bytes of pieces `first..first + count` of `old`: one contiguous
/// range, since the cuts tile `old`. `None` when out of range.
fn run_bytes<'a>(old: &'a [u8], cuts: &[Range<usize>], first: u32, count: u32) -> Option<&'a [u8]> {
    let first = first as usize;
    let last = first.checked_add((count as usize).checked_sub(1)?)?;
    old.get(cuts.get(first)?.start..cuts.get(last)?.end)
}
