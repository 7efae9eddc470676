//! Fewer bytes for chunks on the control connection: compression and
//! deltas against the destination's old version of a file.
//!
//! The receiver, before asking for a round's chunks, picks the changed
//! files that have an old version at the same path, reads the old chunks
//! the new version no longer uses, and sends their small-piece signature
//! ([`Msg::Base`], see [`crate::delta::fine`]). The sender answers those
//! chunks with [`Msg::Delta`], once each, and compresses the others with
//! zstd ([`Msg::Packed`]) when asked to. The receiver rebuilds, checks
//! BLAKE3, and asks again for a chunk whose delta does not check out (a
//! truncated piece hash collided): that request gets the whole chunk.
//!
//! What travels is bounded on both sides: [`BASE_MAX`] old bytes per file
//! and [`WINDOW_BASE_MAX`] per window on the receiver (it keeps them until
//! the window's chunks have arrived), [`MAX_BASE_PIECES`] signature pieces
//! per window on the sender.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::msg::{protocol, Msg, Need};
use super::transport::Transport;
use crate::apply::tree::Tree;
use crate::delta::fine::{self, Delta, SigIndex, Signature};
use crate::delta::{compress, Compressor, Decompressor, DeltaError, Encoding};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::path::RelPath;
use crate::plan::{Piece, Plan, StreamChunk};

/// Old bytes of one file sent as a base: a file whose old unused chunks
/// are more than this gets a base of the first this many bytes of them
/// (the dictionary a delta may use is bounded by [`fine::MAX_DICT`] anyway).
pub const BASE_MAX: u64 = 8 << 20;
/// Old bytes the receiver holds for one window's bases.
pub const WINDOW_BASE_MAX: u64 = 256 << 20;
/// Signature pieces a sender accepts for one window (8 bytes each, plus
/// its hash table): [`WINDOW_BASE_MAX`] at the smallest average piece.
pub const MAX_BASE_PIECES: usize = (WINDOW_BASE_MAX as usize) / fine::PIECE_MIN;

/// Compressed bytes a sender holds for one UDP round (the phase needs
/// every length before it starts); chunks past it go as they are.
pub const PACK_MEMORY: u64 = 256 << 20;

/// What the receiver will offer as a base: a file's old chunks that its
/// new version does not reuse, and the shipped chunks of the new version.
pub struct BaseSpec {
    path: RelPath,
    old: Vec<(u64, u32)>,
    chunks: Vec<u32>,
}

/// The bases of a window's changed files (the destination's index lists
/// the old chunks: `dst`'s entries carry them when content is assembled).
pub fn base_specs(plan: &Plan, dst: &Manifest) -> Vec<BaseSpec> {
    let mut budget = WINDOW_BASE_MAX;
    let mut specs = Vec::new();
    for f in &plan.files {
        let chunks: Vec<u32> = f
            .pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Remote { stream, .. } => Some(*stream),
                _ => None,
            })
            .collect();
        if chunks.is_empty() {
            continue;
        }
        let Some(old) = dst.entries.get(&f.entry.path) else {
            continue;
        };
        if old.meta.kind != crate::entry::Kind::File || old.chunks.is_empty() {
            continue;
        }
        let kept: HashSet<_> = f.entry.chunks.iter().map(|c| c.hash).collect();
        let mut left = BASE_MAX.min(budget);
        let mut unused = Vec::new();
        for c in old.chunks.iter().filter(|c| !kept.contains(&c.hash)) {
            if u64::from(c.length) > left {
                break;
            }
            left -= u64::from(c.length);
            unused.push((c.offset, c.length));
        }
        if unused.is_empty() {
            continue;
        }
        budget -= BASE_MAX.min(budget) - left;
        specs.push(BaseSpec {
            path: f.entry.path.clone(),
            old: unused,
            chunks,
        });
        if budget == 0 {
            break;
        }
    }
    specs
}

/// Whether a UDP round is preceded by the deltas and [`Msg::Sizes`] of
/// its chunks.
pub fn sized(data: &super::DataOptions) -> bool {
    data.compress.is_some() || data.delta
}

/// Checks a UDP round's [`Msg::Sizes`] against its requests: each no
/// longer than its chunk. Returns the requests that travel in the stream,
/// with their lengths there (a chunk of size 0 came as a delta instead).
pub fn wire_needs(needs: &[Need], sizes: &[u32]) -> Result<Vec<Need>> {
    if sizes.len() != needs.len() {
        return Err(protocol(format!(
            "the sender sent {} sizes for {} chunks",
            sizes.len(),
            needs.len()
        )));
    }
    let mut wire = Vec::with_capacity(needs.len());
    for (need, &size) in needs.iter().zip(sizes) {
        if size > need.length {
            return Err(protocol(format!(
                "the sender says a chunk of {} bytes takes {size} in the stream",
                need.length
            )));
        }
        if size > 0 || need.length == 0 {
            wire.push(Need {
                length: size,
                ..*need
            });
        }
    }
    Ok(wire)
}

/// The receiver's side: the old bytes behind the bases it sent, and the
/// decoders.
#[derive(Default)]
pub struct Bases {
    /// Old bytes and their piece cuts, per base.
    old: Vec<(Vec<u8>, Vec<Range<usize>>)>,
    /// Shipped chunk → its base.
    of: HashMap<u32, usize>,
    dctx: Decompressor,
    /// Bytes of chunk data received after encoding (`Data`, `Packed`,
    /// `Delta` payloads), for the report.
    pub encoded_bytes: u64,
    /// Chunks that arrived as deltas, and the bytes that saved.
    pub deltas: u64,
    pub delta_saved: u64,
}

impl Bases {
    /// Reads each base's old bytes under `root` (confined like every
    /// destination read) and sends its signature. A file that cannot be
    /// read, or changed size under us, just gets no base.
    pub fn send(t: &mut dyn Transport, specs: Vec<BaseSpec>, root: &Path) -> Result<Bases> {
        let mut bases = Bases::default();
        if specs.is_empty() {
            return Ok(bases);
        }
        let mut tree = Tree::open(root).map_err(|e| Error::io(root, e))?;
        for spec in specs {
            let Some(old) = read_old(&mut tree, &spec) else {
                continue;
            };
            let cuts = Signature::cuts(&old);
            let sig = Signature::from_cuts(&old, &cuts);
            t.send(&Msg::Base {
                chunks: spec.chunks.clone(),
                sig,
            })?;
            let n = bases.old.len();
            bases.old.push((old, cuts));
            for c in spec.chunks {
                bases.of.insert(c, n);
            }
        }
        Ok(bases)
    }

    /// A compressed chunk's bytes, checked against its declared length.
    pub fn unpack(&mut self, bytes: &[u8], expect: &StreamChunk) -> Result<Vec<u8>> {
        self.encoded_bytes += bytes.len() as u64;
        let mut out = Vec::new();
        compress::decode(
            Encoding::Zstd,
            bytes,
            expect.length as usize,
            &mut out,
            &mut self.dctx,
        )?;
        Ok(out)
    }

    /// A delta's chunk, rebuilt and checked against its hash; `None` when
    /// it does not check out (ask for the whole chunk again).
    pub fn rebuild(
        &mut self,
        idx: u32,
        delta: &Delta,
        expect: &StreamChunk,
    ) -> Result<Option<Vec<u8>>> {
        let took = delta.body.len() as u64 + 8 * delta.refs.len() as u64;
        self.encoded_bytes += took;
        let Some(&n) = self.of.get(&idx) else {
            return Err(protocol(format!(
                "peer sent a delta for chunk {idx}, which has no base"
            )));
        };
        let (old, cuts) = &self.old[n];
        let length = expect.length as usize;
        match fine::apply(delta, old, cuts, length, &expect.hash, &mut self.dctx) {
            Ok(bytes) => {
                self.deltas += 1;
                self.delta_saved += u64::from(expect.length).saturating_sub(took);
                Ok(Some(bytes))
            }
            Err(DeltaError::HashMismatch) => {
                self.of.remove(&idx);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The old bytes of a base, or `None` when they cannot be had as indexed.
fn read_old(tree: &mut Tree, spec: &BaseSpec) -> Option<Vec<u8>> {
    let file = tree.open_read(&spec.path).ok()?;
    let total: u64 = spec.old.iter().map(|&(_, l)| u64::from(l)).sum();
    let mut old = vec![0u8; total as usize];
    let mut at = 0usize;
    for &(offset, length) in &spec.old {
        let end = at + length as usize;
        file.read_exact_at(&mut old[at..end], offset).ok()?;
        at = end;
    }
    Some(old)
}

/// The sender's side: the bases of one window and the encoders.
pub struct Shrink {
    /// zstd level (`None`: chunks go as they are, unless a delta).
    level: Option<i32>,
    bases: HashMap<u32, Arc<SigIndex>>,
    pieces: usize,
    cctx: Compressor,
}

impl Shrink {
    pub fn new(level: Option<i32>) -> Shrink {
        Shrink {
            level,
            bases: HashMap::new(),
            pieces: 0,
            cctx: Compressor::new(),
        }
    }

    /// Takes a base from the receiver.
    pub fn base(&mut self, chunks: Vec<u32>, sig: Signature) -> Result<()> {
        self.pieces += sig.len();
        if self.pieces > MAX_BASE_PIECES {
            return Err(protocol(format!(
                "peer's bases hold more than {MAX_BASE_PIECES} pieces in one window"
            )));
        }
        let index = Arc::new(SigIndex::new(&sig)?);
        for c in chunks {
            self.bases.insert(c, Arc::clone(&index));
        }
        Ok(())
    }

    /// The message that ships chunk `idx`: a delta against its base (once),
    /// compressed, or as it is.
    pub fn encode(&mut self, idx: u32, bytes: &[u8]) -> Msg {
        if let Some(m) = self.delta(idx, bytes) {
            return m;
        }
        match self.pack(bytes) {
            Some(bytes) => Msg::Packed { idx, bytes },
            None => Msg::Data {
                idx,
                bytes: bytes.to_vec(),
            },
        }
    }

    /// Chunk `idx` as a delta against its base, if it has one (once) and
    /// the delta saves bytes.
    pub fn delta(&mut self, idx: u32, bytes: &[u8]) -> Option<Msg> {
        let index = self.bases.remove(&idx)?;
        let delta = fine::encode(bytes, &index, self.level, &mut self.cctx)?;
        Some(Msg::Delta { idx, delta })
    }

    /// The chunk compressed, when compression is on and saves bytes.
    pub fn pack(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let e = compress::encode(bytes, self.level?, &mut self.cctx);
        (e.encoding == Encoding::Zstd).then(|| e.bytes.to_vec())
    }
}
