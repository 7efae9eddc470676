//! Chunk assembly on the receiving side of a UDP phase: blocks land in
//! memory (or an overflow file past [`ASSEMBLY_MEMORY`]), and each chunk
//! is checked against its hash, decompressed if it came packed, and handed
//! to the apply engine the moment it completes.
//!
//! It never touches the socket or the control connection: the receiving
//! driver calls it through [`BlockSink`].

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use crate::apply::tree::{temp_name, Tree};
use crate::apply::Feed;
use crate::error::Error;
use crate::net::BlockSink;
use crate::path::RelPath;
use crate::proto::layout::Layout;
use crate::session::msg::Need;

/// Most bytes of incomplete chunks held in memory; chunks begun beyond it
/// are staged in an overflow file.
pub const ASSEMBLY_MEMORY: u64 = 256 << 20;

/// One chunk of the stream, as its blocks arrive.
enum Part {
    Empty,
    Memory(Vec<u8>),
    /// Staged in the overflow file, at its stream offset.
    Spilled,
    /// Verified and handed to the apply engine.
    Done,
}

/// Assembles the stream's chunks as their blocks arrive and hands each
/// verified chunk straight to the apply engine, so files are written while
/// the transfer runs. Incomplete chunks are held in memory up to
/// [`ASSEMBLY_MEMORY`]; past that (heavy loss on a fast link), a chunk's
/// blocks go to an unlinked overflow file in the destination and are read
/// back when it completes.
pub(super) struct ChunkSink<'a> {
    feed: &'a mut Feed,
    /// The applier's stream index of each chunk of the layout.
    ids: Vec<u32>,
    layout: Arc<Layout>,
    /// The chunk the last write began in: writes mostly come in stream
    /// order, so the next one is looked for there first.
    chunk_hint: usize,
    parts: Vec<Part>,
    in_memory: u64,
    memory_limit: u64,
    tree: Tree,
    overflow: Option<File>,
    /// The apply engine's error that stopped the phase (a full disk, say).
    failure: &'a Mutex<Option<Error>>,
    /// Each chunk's own length: one that is shorter in the stream came
    /// compressed.
    raw_lens: Vec<u32>,
    dctx: crate::delta::Decompressor,
}

impl<'a> ChunkSink<'a> {
    /// A sink for the chunks of `layout` (the applier's `needs`, with
    /// their own lengths: longer than in the stream when compressed),
    /// holding at most `memory_limit` bytes of incomplete chunks in memory.
    pub(super) fn new(
        feed: &'a mut Feed,
        needs: &[Need],
        layout: &Arc<Layout>,
        memory_limit: u64,
        tree: Tree,
        failure: &'a Mutex<Option<Error>>,
    ) -> Self {
        let n = layout.chunk_count();
        ChunkSink {
            feed,
            ids: needs.iter().map(|n| n.idx).collect(),
            raw_lens: needs.iter().map(|n| n.length).collect(),
            dctx: crate::delta::Decompressor::new(),
            chunk_hint: 0,
            parts: (0..n).map(|_| Part::Empty).collect(),
            layout: Arc::clone(layout),
            in_memory: 0,
            memory_limit,
            tree,
            overflow: None,
            failure,
        }
    }

    fn overflow(&mut self) -> io::Result<&File> {
        overflow_file(&mut self.overflow, &mut self.tree)
    }
}

/// The sink's spill file, made in `tree` on first use.
fn overflow_file<'f>(overflow: &'f mut Option<File>, tree: &mut Tree) -> io::Result<&'f File> {
    if overflow.is_none() {
        let base = RelPath::new(b"overflow".to_vec()).expect("valid");
        let name = temp_name(&base, &format!("{:08x}", std::process::id()));
        let file = tree.create_temp(&base, &name)?;
        // Unlinked at once: the descriptor keeps it until the phase ends.
        tree.remove_temp(&base, &name)?;
        *overflow = Some(file);
    }
    Ok(overflow.as_ref().expect("just made"))
}

/// Checks a chunk's stream bytes against its hash, decompressing them
/// first when they came compressed (shorter than the chunk's `raw` length):
/// `None` when they are wrong, else the decompressed bytes if any.
fn check(
    dctx: &mut crate::delta::Decompressor,
    raw: u32,
    buf: &[u8],
    hash: &[u8; 32],
) -> Option<Option<Vec<u8>>> {
    let unpacked = if buf.len() < raw as usize {
        let mut out = Vec::new();
        let enc = crate::delta::Encoding::Zstd;
        crate::delta::decode(enc, buf, raw as usize, &mut out, dctx).ok()?;
        Some(out)
    } else {
        None
    };
    let bytes = unpacked.as_deref().unwrap_or(buf);
    (blake3::hash(bytes).as_bytes() == hash).then_some(unpacked)
}

impl BlockSink for ChunkSink<'_> {
    fn write(&mut self, stream_offset: u64, data: &[u8]) -> io::Result<()> {
        let end = stream_offset + data.len() as u64;
        // Borrowed field by field: the layout is shared with the socket
        // thread, and cloning its `Arc` once a block would bounce its
        // count's cache line between the cores.
        let ChunkSink {
            layout,
            chunk_hint,
            parts,
            in_memory,
            memory_limit,
            tree,
            overflow,
            ..
        } = self;
        for c in layout.range_chunks_near(stream_offset..end, chunk_hint) {
            let range = layout.chunk_range(c);
            let from = stream_offset.max(range.start);
            let to = end.min(range.end);
            let bytes = &data[(from - stream_offset) as usize..(to - stream_offset) as usize];
            if matches!(parts[c], Part::Empty) {
                let len = range.end - range.start;
                parts[c] = if *in_memory + len <= *memory_limit {
                    *in_memory += len;
                    Part::Memory(vec![0; len as usize])
                } else {
                    Part::Spilled
                };
            }
            match &mut parts[c] {
                Part::Memory(buf) => {
                    let at = (from - range.start) as usize;
                    buf[at..at + bytes.len()].copy_from_slice(bytes);
                }
                Part::Spilled => overflow_file(overflow, tree)?.write_all_at(bytes, from)?,
                Part::Empty | Part::Done => {}
            }
        }
        Ok(())
    }

    fn complete(&mut self, c: usize, range: Range<u64>, hash: &[u8; 32]) -> io::Result<bool> {
        let data = match &self.parts[c] {
            Part::Memory(buf) => {
                let Some(unpacked) = check(&mut self.dctx, self.raw_lens[c], buf, hash) else {
                    return Ok(false);
                };
                self.in_memory -= buf.len() as u64;
                match std::mem::replace(&mut self.parts[c], Part::Done) {
                    Part::Memory(buf) => unpacked.unwrap_or(buf),
                    _ => unreachable!("matched above"),
                }
            }
            Part::Spilled => {
                let mut buf = vec![0; (range.end - range.start) as usize];
                self.overflow()?.read_exact_at(&mut buf, range.start)?;
                let Some(unpacked) = check(&mut self.dctx, self.raw_lens[c], &buf, hash) else {
                    return Ok(false);
                };
                self.parts[c] = Part::Done;
                unpacked.unwrap_or(buf)
            }
            Part::Done => return Ok(true),
            // An empty chunk is complete before any block arrives.
            Part::Empty if range.is_empty() => {
                if blake3::hash(&[]).as_bytes() != hash {
                    return Ok(false);
                }
                self.parts[c] = Part::Done;
                Vec::new()
            }
            Part::Empty => return Ok(false),
        };
        if let Err(e) = self.feed.chunk(self.ids[c], data, true) {
            let message = e.to_string();
            self.failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
            return Err(io::Error::other(message));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::tests::{chunk_bytes_of, manifest_of};
    use crate::apply::{Applier, ApplyOptions};
    use crate::chunk::tests::noise;
    use crate::plan::{diff, PlanOptions};
    use crate::proto::layout::IPV4_UDP_OVERHEAD;
    use crate::session::udp::layout;

    /// Blocks arrive backwards or in order, one corrupted (its chunk fails
    /// and is written again), with chunks held in memory, in the overflow
    /// file, or both: every file arrives whole and nothing is left behind.
    #[test]
    fn chunks_assembled_in_memory_or_overflow_reach_the_files() {
        let cases = [ASSEMBLY_MEMORY, 0, 100 << 10]
            .into_iter()
            .flat_map(|limit| [(limit, true), (limit, false)]);
        for (limit, backwards) in cases {
            let dir = tempfile::tempdir().unwrap();
            let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
            std::fs::create_dir_all(&src).unwrap();
            std::fs::create_dir_all(&dst).unwrap();
            let files = [noise(1, 300 << 10), noise(2, 5000), noise(3, 180 << 10)];
            for (i, f) in files.iter().enumerate() {
                std::fs::write(src.join(format!("f{i}")), f).unwrap();
            }
            let src_m = manifest_of(&src);
            let plan = diff(&src_m, &manifest_of(&dst), &PlanOptions::default());
            // The stream, as the sender would lay it out.
            let by_hash = chunk_bytes_of(&src, &src_m);
            let stream: Vec<u8> = plan
                .stream
                .iter()
                .flat_map(|c| by_hash[&c.hash].clone())
                .collect();
            let needs: Vec<Need> = plan
                .stream
                .iter()
                .enumerate()
                .map(|(i, c)| Need::new(i as u32, c))
                .collect();
            let layout = layout(&needs, 1500, IPV4_UDP_OVERHEAD as u16).unwrap();
            let mut applier = Applier::new(
                Tree::open(&dst).unwrap(),
                Arc::new(plan.clone()),
                ApplyOptions::default(),
            );
            applier.start(&[]).unwrap();
            let failure = Mutex::new(None);
            let mut sink = ChunkSink::new(
                applier.feed(),
                &needs,
                &layout,
                limit,
                Tree::open(&dst).unwrap(),
                &failure,
            );
            let block = |b: u64| {
                let r = layout.block_range(b);
                (r.start, &stream[r.start as usize..r.end as usize])
            };
            let mut order: Vec<u64> = (0..layout.block_count()).collect();
            if backwards {
                order.reverse();
            }
            for b in order {
                let (at, bytes) = block(b);
                if b == 0 {
                    let mut bad = bytes.to_vec();
                    bad[0] ^= 1;
                    sink.write(at, &bad).unwrap();
                } else {
                    sink.write(at, bytes).unwrap();
                }
            }
            let hash = |c: usize| layout.chunks()[c].hash;
            assert!(!sink.complete(0, layout.chunk_range(0), &hash(0)).unwrap());
            let (at, bytes) = block(0);
            sink.write(at, bytes).unwrap();
            for c in 0..layout.chunk_count() {
                assert!(sink.complete(c, layout.chunk_range(c), &hash(c)).unwrap());
            }
            if limit == 0 {
                assert!(sink.overflow.is_some());
            }
            assert_eq!(sink.in_memory, 0, "memory handed on with the chunks");
            drop(sink);
            let (report, _) = applier.finish().unwrap();
            assert!(report.errors.is_empty(), "{:?}", report.errors);
            for (i, f) in files.iter().enumerate() {
                assert_eq!(&std::fs::read(dst.join(format!("f{i}"))).unwrap(), f);
            }
            let names = std::fs::read_dir(&dst).unwrap().count();
            assert_eq!(names, 3, "no overflow or temp file left (limit {limit})");
        }
    }
}
