//! A UDP round prepared before its phase: chunks with a base go as deltas
//! on the control connection, compressible ones are compressed and held in
//! memory, and [`PackedSource`] serves the round's stream from both.
//!
//! It never runs the phase itself, and never holds more than
//! [`crate::session::shrink::PACK_MEMORY`] of compressed bytes.

use std::collections::HashMap;

use super::source::ChunkReader;
use crate::chunk::Hash;
use crate::error::Result;
use crate::manifest::ChunkLocation;
use crate::path::RelPath;
use crate::session::msg::Need;
use crate::session::Transport;

/// Prepares a UDP round's chunks ahead of its phase (the stream's layout
/// needs their lengths): sends those that have a base as deltas on the
/// control connection, and compresses the others when asked to. Returns
/// each chunk's size in the stream (0: sent as a delta) and the bytes of
/// those that shrank, in stream order (held in memory, up to
/// [`crate::session::shrink::PACK_MEMORY`]; the rest go as they are, read again
/// during the phase).
pub(super) fn pack_round(
    t: &mut dyn Transport,
    needs: &[Need],
    locations: &HashMap<Hash, ChunkLocation>,
    reader: &mut ChunkReader<'_>,
    shrink: &mut crate::session::shrink::Shrink,
) -> Result<Packed> {
    let mut held = 0u64;
    let mut sizes = Vec::with_capacity(needs.len());
    let mut packed = Vec::new();
    // Whether each file's data compresses, judged by the first of its
    // chunks seen: a video or an archive is not read twice.
    let mut verdicts: HashMap<RelPath, bool> = HashMap::new();
    for n in needs {
        let loc = locations.get(&n.hash).filter(|l| l.length == n.length);
        let judged = loc.and_then(|l| verdicts.get(&l.path).copied());
        let may_pack = shrink.compresses()
            && held < crate::session::shrink::PACK_MEMORY
            && judged != Some(false);
        let read = match loc {
            Some(l) if may_pack || shrink.has_base(n.idx) => reader.read(l).map(|b| (l, b)),
            _ => None,
        };
        let Some((l, bytes)) = read else {
            // As it is (or gone: the phase's read reports it).
            sizes.push(n.length);
            packed.push(None);
            continue;
        };
        let pack = may_pack
            && judged.unwrap_or_else(|| {
                let v = crate::delta::compress::looks_compressible(bytes);
                verdicts.insert(l.path.clone(), v);
                v
            });
        if let Some(m) = shrink.delta(n.idx, bytes)? {
            t.send(&m)?;
            // Not in the stream, so no entry in `packed`.
            sizes.push(0);
            continue;
        }
        let shrunk = if pack { shrink.pack(bytes) } else { None };
        held += shrunk.as_ref().map_or(0, |b| b.len() as u64);
        sizes.push(shrunk.as_ref().map_or(n.length, |b| b.len() as u32));
        packed.push(shrunk);
    }
    Ok(Packed { sizes, packed })
}

/// A UDP round prepared by [`pack_round`].
pub(super) struct Packed {
    /// Each chunk's size in the stream (0: sent as a delta).
    pub(super) sizes: Vec<u32>,
    /// The compressed bytes of each chunk that shrank.
    pub(super) packed: Vec<Option<Vec<u8>>>,
}

/// A UDP round's stream with compressed chunks served from memory and the
/// others from the source files.
pub(super) struct PackedSource<S> {
    inner: S,
    starts: Vec<u64>,
    packed: Vec<Option<Vec<u8>>>,
    /// The chunk the last block was in: blocks come mostly in order.
    hint: usize,
}

impl<S> PackedSource<S> {
    /// `needs` with their stream lengths; `packed` empty when nothing was
    /// compressed.
    pub(super) fn new(inner: S, needs: &[Need], packed: Vec<Option<Vec<u8>>>) -> Self {
        let mut at = 0;
        let starts = needs
            .iter()
            .map(|n| {
                let s = at;
                at += u64::from(n.length);
                s
            })
            .collect();
        // Nothing compressed (random data, say): every read goes straight
        // to the files, without a lookup per block.
        let packed = if packed.iter().all(Option::is_none) {
            Vec::new()
        } else {
            packed
        };
        PackedSource {
            inner,
            starts,
            packed,
            hint: 0,
        }
    }

    /// The position of the chunk holding stream byte `at`: the last one
    /// looked up, else found by bisection.
    fn chunk_at(&mut self, at: u64) -> usize {
        let end = self.starts.get(self.hint + 1).copied().unwrap_or(u64::MAX);
        if !(self.starts.get(self.hint).is_some_and(|&s| s <= at) && at < end) {
            self.hint = self.starts.partition_point(|&s| s <= at).saturating_sub(1);
        }
        self.hint
    }

    /// The compressed chunk holding stream byte `at`, by its position.
    fn packed_at(&mut self, at: u64) -> Option<usize> {
        if self.packed.is_empty() {
            return None;
        }
        let k = self.chunk_at(at);
        self.packed.get(k)?.as_ref().map(|_| k)
    }

    /// Where the chunk holding stream byte `at` ends.
    fn end_of(&mut self, at: u64) -> Option<u64> {
        let k = self.chunk_at(at);
        self.starts.get(k + 1).copied()
    }
}

impl<S: crate::proto::sender::BlockSource> crate::proto::sender::BlockSource for PackedSource<S> {
    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let at = stream_offset + done as u64;
            let n = if let Some(k) = self.packed_at(at) {
                let bytes = self.packed[k].as_deref().unwrap_or_default();
                let from = (at - self.starts[k]) as usize;
                let n = (bytes.len() - from).min(buf.len() - done);
                buf[done..done + n].copy_from_slice(&bytes[from..from + n]);
                n
            } else {
                let end = self.end_of(at).unwrap_or(u64::MAX);
                let n = ((end - at) as usize).min(buf.len() - done);
                self.inner.read(at, &mut buf[done..done + n])?;
                n
            };
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }

    fn lend(&mut self, stream_offset: u64, len: usize) -> Option<&[u8]> {
        match self.packed_at(stream_offset) {
            Some(k) => {
                let from = (stream_offset - self.starts[k]) as usize;
                self.packed[k].as_deref()?.get(from..from.checked_add(len)?)
            }
            None => self.inner.lend(stream_offset, len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::sender::BlockSource;

    fn needs(lengths: &[u32]) -> Vec<Need> {
        lengths
            .iter()
            .enumerate()
            .map(|(i, &length)| Need {
                idx: i as u32,
                hash: Hash([i as u8; 32]),
                length,
            })
            .collect()
    }

    /// Packed chunks come from memory, the others from the inner source at
    /// the same stream offsets, whatever the block size and wherever the
    /// blocks straddle two chunks.
    #[test]
    fn packed_chunks_are_served_from_memory_and_the_rest_from_the_source() {
        // Stream lengths: chunks 1 and 3 were compressed.
        let needs = needs(&[4, 3, 5, 2]);
        let packed = vec![None, Some(b"xyz".to_vec()), None, Some(b"pq".to_vec())];
        // The inner source holds garbage where packed chunks sit.
        let inner: &[u8] = b"abcd\xee\xee\xeeEFGHI\xee\xee";
        let want = b"abcdxyzEFGHIpq";
        for block in 1..=want.len() {
            let mut source = PackedSource::new(inner, &needs, packed.clone());
            let mut got = Vec::new();
            for at in (0..want.len()).step_by(block) {
                let mut buf = vec![0; block.min(want.len() - at)];
                source.read(at as u64, &mut buf).unwrap();
                got.extend_from_slice(&buf);
            }
            assert_eq!(got, want, "blocks of {block}");
        }
        let mut source = PackedSource::new(inner, &needs, packed);
        assert_eq!(source.lend(5, 2), Some(&b"yz"[..]));
        assert_eq!(source.lend(8, 3), Some(&b"FGH"[..]));
        let mut past = [0; 1];
        assert!(source.read(want.len() as u64, &mut past).is_err());
    }

    /// With nothing compressed, every read goes straight to the source.
    #[test]
    fn nothing_packed_reads_the_source_as_it_is() {
        let needs = needs(&[3, 3]);
        let inner: &[u8] = b"abcdef";
        let mut source = PackedSource::new(inner, &needs, vec![None, None]);
        assert!(source.packed.is_empty());
        let mut buf = [0; 4];
        source.read(1, &mut buf).unwrap();
        assert_eq!(&buf, b"bcde");
        assert_eq!(source.lend(2, 3), Some(&b"cde"[..]));
    }
}
