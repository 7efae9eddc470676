//! Fewer bytes for chunks on the control connection: compression and
//! deltas against the destination's old version of a file.
//!
//! The receiver, before asking for a round's chunks, picks the changed
//! files that have an old version at the same path, reads the old chunks
//! the new version no longer uses, and sends their small-piece signature
//! ([`Msg::Base`], see [`crate::delta::fine`]). The sender answers those
//! chunks with [`Msg::Delta`], once each, and compresses the others when
//! asked to: as one zstd stream on the control connection
//! ([`Msg::Streamed`]), a frame each in a UDP round. The receiver rebuilds, checks
//! BLAKE3, and asks again for a chunk whose delta does not check out (a
//! truncated piece hash collided): that request gets the whole chunk.
//!
//! What travels is bounded on both sides: [`BASE_MAX`] old bytes per file
//! and [`WINDOW_BASE_MAX`] per window on the receiver, [`MAX_BASE_PIECES`]
//! signature pieces per window on the sender (about 16 bytes of memory
//! each).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::msg::{Msg, Need};
use super::transport::Transport;
use crate::apply::tree::Tree;
use crate::delta::fine::{self, Body, Delta, SigIndex, Signature};
use crate::delta::stream::{StreamCompressor, StreamDecompressor};
use crate::delta::{compress, Compressor, Decompressor, DeltaError, Encoding};
use crate::entry::Entry;
use crate::error::{Error, ProtocolError, Result};
use crate::manifest::Manifest;
use crate::path::RelPath;
use crate::plan::{Piece, Plan, StreamChunk};

/// Old bytes of one file sent as a base (its signature is 1.2 % of
/// that): a file whose old unused chunks are more than this gets a base of
/// the first this many bytes of them. (64 MiB changed nothing measurable
/// on the kernel upgrade, 2026-12-07.)
pub const BASE_MAX: u64 = 8 << 20;
/// Old bytes one window's bases may cover: it bounds the signatures the
/// sender holds ([`MAX_BASE_PIECES`]). The receiver reads the old bytes
/// again when a delta comes, and holds one base at a time.
pub const WINDOW_BASE_MAX: u64 = 1 << 30;
/// Signature pieces a sender accepts for one window (8 bytes each, plus
/// its hash table): [`WINDOW_BASE_MAX`] at the smallest average piece.
pub const MAX_BASE_PIECES: usize = (WINDOW_BASE_MAX as usize) / fine::PIECE_MIN;

/// The length and hash of shipped chunk `idx` of a window's `stream`.
pub fn expected(stream: &[StreamChunk], idx: u32) -> Result<&StreamChunk> {
    stream
        .get(idx as usize)
        .ok_or_else(|| ProtocolError::unknown("chunk", idx, "requested").into())
}

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

/// `specs` cut down to the shipped chunks in `keep` (a dry run's sample).
pub fn only(specs: Vec<BaseSpec>, keep: &HashSet<u32>) -> Vec<BaseSpec> {
    specs
        .into_iter()
        .filter_map(|mut s| {
            s.chunks.retain(|c| keep.contains(c));
            (!s.chunks.is_empty()).then_some(s)
        })
        .collect()
}

/// The bases of a window's changed files (the destination's index lists
/// the old chunks: `dst`'s entries carry them when content is assembled).
///
/// A file's old version is the destination's file at the same path; for a
/// file new at its path, as with `rsync --fuzzy`, a file of the same name
/// that the source no longer has in this window (it was moved, or its
/// folder renamed, and edited), the closest in size.
pub fn base_specs(plan: &Plan, src: &Manifest, dst: &Manifest) -> Vec<BaseSpec> {
    let mut budget = WINDOW_BASE_MAX;
    let mut specs = Vec::new();
    let mut gone: HashMap<&[u8], Vec<&Entry>> = HashMap::new();
    for (path, e) in &dst.entries {
        if is_file_with_chunks(e) && !src.entries.contains_key(path) {
            gone.entry(path.file_name()).or_default().push(e);
        }
    }
    let fuzzy = |f: &crate::plan::FileOp| {
        let size = f.entry.meta.size;
        gone.get(f.entry.path.file_name())?
            .iter()
            .min_by_key(|e| e.meta.size.abs_diff(size))
            .copied()
    };
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
        let old = match dst.entries.get(&f.entry.path) {
            Some(e) if is_file_with_chunks(e) => e,
            Some(_) => continue,
            None => match fuzzy(f) {
                Some(e) => e,
                None => continue,
            },
        };
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
            path: old.path.clone(),
            old: unused,
            chunks,
        });
        if budget == 0 {
            break;
        }
    }
    specs
}

fn is_file_with_chunks(e: &Entry) -> bool {
    e.meta.kind == crate::entry::Kind::File && !e.chunks.is_empty()
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
        return Err(ProtocolError::mismatch(
            "Sizes for a round's chunks",
            needs.len(),
            sizes.len(),
        )
        .into());
    }
    let mut wire = Vec::with_capacity(needs.len());
    for (need, &size) in needs.iter().zip(sizes) {
        if size > need.length {
            return Err(ProtocolError::over_limit(
                "Sizes: a chunk's size in the stream",
                size,
                need.length,
            )
            .into());
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

/// What became of a message given to [`Bases::take_delta`].
pub enum Taken {
    /// A delta's chunk, rebuilt and checked.
    Rebuilt(u32, Vec<u8>),
    /// A delta that did not check out: ask for the whole chunk again.
    Again(u32),
}

/// The receiver's side: where the old bytes behind the bases it sent
/// are, and the decoders.
#[derive(Default)]
pub struct Bases {
    /// The destination, to read old bytes from again when their deltas
    /// come (they stay in place until the new version is complete).
    tree: Option<Tree>,
    specs: Vec<BaseSpec>,
    /// The base read last, with its piece cuts: a file's chunks come
    /// one after another.
    cached: Option<OldBase>,
    /// Shipped chunk → its base.
    of: HashMap<u32, usize>,
    dctx: Decompressor,
    stream: Option<StreamDecompressor>,
    /// Bytes of chunk data received after encoding (`Data`, `Streamed`,
    /// `Delta` payloads), for the report.
    pub encoded_bytes: u64,
    /// Chunks that arrived as deltas, and the bytes that saved.
    pub deltas: u64,
    pub delta_saved: u64,
}

impl Bases {
    /// Reads each base's old bytes under `root` (confined like every
    /// destination read) and sends its signature. A file that cannot be
    /// read gets no base.
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
            let sig = Signature::of(&old);
            t.send(&Msg::Base {
                chunks: spec.chunks.clone(),
                sig,
            })?;
            let n = bases.specs.len();
            for &c in &spec.chunks {
                bases.of.insert(c, n);
            }
            bases.specs.push(spec);
        }
        bases.tree = Some(tree);
        Ok(bases)
    }

    /// The next chunk of the window's compression stream.
    pub fn unstream(&mut self, bytes: &[u8], expect: &StreamChunk) -> Result<Vec<u8>> {
        self.encoded_bytes += bytes.len() as u64;
        self.unstream_raw(bytes, expect.length as usize)
    }

    /// The next `len` bytes of the window's compression stream.
    fn unstream_raw(&mut self, bytes: &[u8], len: usize) -> Result<Vec<u8>> {
        if self.stream.is_none() {
            let d = StreamDecompressor::new().map_err(|e| Error::io("<zstd>", e))?;
            self.stream = Some(d);
        }
        let mut out = Vec::new();
        let stream = self.stream.as_mut().expect("made above");
        stream.decompress(bytes, len, &mut out)?;
        Ok(out)
    }

    /// The chunk a delta message ([`Msg::Delta`], [`Msg::StreamedDelta`])
    /// rebuilds.
    pub fn take_delta(&mut self, msg: Msg, stream: &[StreamChunk]) -> Result<Taken> {
        // What a delta took is its encoding as postcard writes it; new
        // bytes that came compressed in the stream count as they came.
        let size = |d: &Delta| postcard::experimental::serialized_size(d).unwrap_or(usize::MAX);
        let (idx, delta, took) = match msg {
            Msg::Delta { idx, delta } => {
                let took = size(&delta);
                (idx, delta, took)
            }
            Msg::StreamedDelta {
                idx,
                refs,
                ops,
                literal_len,
                literals,
            } => {
                let expect = expected(stream, idx)?;
                if literal_len > expect.length {
                    return Err(ProtocolError::over_limit(
                        "StreamedDelta: new bytes of a chunk",
                        literal_len,
                        expect.length,
                    )
                    .into());
                }
                // The stream advances even if the delta then fails.
                let raw = self.unstream_raw(&literals, literal_len as usize)?;
                let delta = Delta {
                    refs,
                    body: Body::Ops { ops, literals: raw },
                };
                let took = size(&delta).saturating_sub(literal_len as usize) + literals.len();
                (idx, delta, took)
            }
            other => return Err(ProtocolError::unexpected("a delta", other.name()).into()),
        };
        let expect = expected(stream, idx)?;
        Ok(match self.rebuild(idx, &delta, expect, took as u64)? {
            Some(bytes) => Taken::Rebuilt(idx, bytes),
            None => Taken::Again(idx),
        })
    }

    /// A delta's chunk, rebuilt and checked against its hash; `None` when
    /// it does not check out. `took`: its bytes on the wire.
    fn rebuild(
        &mut self,
        idx: u32,
        delta: &Delta,
        expect: &StreamChunk,
        took: u64,
    ) -> Result<Option<Vec<u8>>> {
        self.encoded_bytes += took;
        let Some(&n) = self.of.get(&idx) else {
            return Err(ProtocolError::unknown("delta for chunk", idx, "offered a base").into());
        };
        let length = expect.length as usize;
        let Bases {
            tree,
            specs,
            cached,
            dctx,
            ..
        } = self;
        let rebuilt = match old_of(tree, specs, cached, n) {
            Some((old, cuts)) => fine::apply(delta, old, cuts, length, &expect.hash, dctx),
            // The old version went away: ask for the whole chunk.
            None => Err(DeltaError::HashMismatch),
        };
        match rebuilt {
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

/// A base's number, old bytes and piece cuts.
type OldBase = (usize, Vec<u8>, Vec<Range<usize>>);

/// Base `n`'s old bytes and cuts, read again unless it was the last one
/// (`None`: unreadable now).
fn old_of<'c>(
    tree: &mut Option<Tree>,
    specs: &[BaseSpec],
    cached: &'c mut Option<OldBase>,
    n: usize,
) -> Option<(&'c [u8], &'c [Range<usize>])> {
    if cached.as_ref().is_none_or(|(k, ..)| *k != n) {
        *cached = None;
        let old = read_old(tree.as_mut()?, specs.get(n)?)?;
        let cuts = Signature::cuts(&old);
        *cached = Some((n, old, cuts));
    }
    let (_, old, cuts) = cached.as_ref()?;
    Some((old, cuts))
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
    /// The window's compression stream on the control connection.
    stream: Option<StreamCompressor>,
}

impl Shrink {
    pub fn new(level: Option<i32>) -> Shrink {
        Shrink {
            level,
            bases: HashMap::new(),
            pieces: 0,
            cctx: Compressor::new(),
            stream: None,
        }
    }

    /// Takes a base from the receiver.
    pub fn base(&mut self, chunks: Vec<u32>, sig: Signature) -> Result<()> {
        self.pieces += sig.len();
        if self.pieces > MAX_BASE_PIECES {
            return Err(ProtocolError::over_limit(
                "Base: pieces in one window",
                self.pieces,
                MAX_BASE_PIECES,
            )
            .into());
        }
        let index = Arc::new(SigIndex::new(&sig)?);
        for c in chunks {
            self.bases.insert(c, Arc::clone(&index));
        }
        Ok(())
    }

    /// The message that ships chunk `idx` on the control connection: a
    /// delta against its base (once), the next piece of the window's
    /// compression stream, or the chunk as it is.
    pub fn encode(&mut self, idx: u32, bytes: &[u8]) -> Result<Msg> {
        if let Some(m) = self.delta(idx, bytes)? {
            return Ok(m);
        }
        if let Some(level) = self.level.filter(|_| compress::looks_compressible(bytes)) {
            let packed = self
                .stream(level)?
                .compress(bytes)
                .map_err(|e| Error::io("<zstd>", e))?;
            return Ok(Msg::Streamed {
                idx,
                bytes: packed.to_vec(),
            });
        }
        Ok(Msg::Data {
            idx,
            bytes: bytes.to_vec(),
        })
    }

    /// Whether chunks are compressed at all.
    pub fn compresses(&self) -> bool {
        self.level.is_some()
    }

    /// Whether chunk `idx` has a base to be a delta against.
    pub fn has_base(&self, idx: u32) -> bool {
        self.bases.contains_key(&idx)
    }

    /// Chunk `idx` as a delta against its base, if it has one (once) and
    /// the delta saves bytes. With compression, its new bytes go into the
    /// window's stream.
    pub fn delta(&mut self, idx: u32, bytes: &[u8]) -> Result<Option<Msg>> {
        let Some(index) = self.bases.remove(&idx) else {
            return Ok(None);
        };
        let Some(delta) = fine::encode(bytes, &index, None, &mut self.cctx) else {
            return Ok(None);
        };
        let (level, Body::Ops { ops, literals }) = (self.level, &delta.body) else {
            return Ok(Some(Msg::Delta { idx, delta }));
        };
        let Some(level) = level else {
            return Ok(Some(Msg::Delta { idx, delta }));
        };
        let packed = self
            .stream(level)?
            .compress(literals)
            .map_err(|e| Error::io("<zstd>", e))?
            .to_vec();
        Ok(Some(Msg::StreamedDelta {
            idx,
            refs: delta.refs.clone(),
            ops: ops.clone(),
            literal_len: literals.len() as u32,
            literals: packed,
        }))
    }

    /// The window's compression stream, made on first use.
    fn stream(&mut self, level: i32) -> Result<&mut StreamCompressor> {
        if self.stream.is_none() {
            let c = StreamCompressor::new(level).map_err(|e| Error::io("<zstd>", e))?;
            self.stream = Some(c);
        }
        Ok(self.stream.as_mut().expect("made above"))
    }

    /// The chunk compressed, when compression is on and saves bytes.
    pub fn pack(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let e = compress::encode(bytes, self.level?, &mut self.cctx);
        (e.encoding == Encoding::Zstd).then(|| e.bytes.to_vec())
    }
}
