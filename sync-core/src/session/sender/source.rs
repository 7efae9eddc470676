//! Chunks read from the source files: [`ChunkReader`] reads one chunk by
//! its location, keeping the last file open, and [`StreamSource`] serves a
//! UDP round's stream by offset from it.
//!
//! It never checks a chunk's hash (the receiver does) and never writes.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::apply::Tree;
use crate::chunk::Hash;
use crate::manifest::ChunkLocation;
use crate::path::RelPath;
use crate::session::msg::Need;

/// Reads chunks from source files, keeping the last file open (chunks are
/// requested in file order).
pub(super) struct ChunkReader<'a> {
    tree: &'a mut Tree,
    open: Option<(RelPath, File)>,
    buf: Vec<u8>,
    /// Files gone when their chunks were to be read (printable paths).
    pub(super) vanished: BTreeSet<String>,
}

impl<'a> ChunkReader<'a> {
    /// A reader of `tree`'s files, none open yet.
    pub(super) fn new(tree: &'a mut Tree) -> Self {
        ChunkReader {
            tree,
            open: None,
            buf: Vec::new(),
            vanished: BTreeSet::new(),
        }
    }

    /// The chunk's bytes, or `None` if the file is gone (then noted in
    /// `vanished`) or shorter now. The receiver checks the hash: a file
    /// changed since the scan is caught there.
    pub(super) fn read(&mut self, loc: &ChunkLocation) -> Option<&[u8]> {
        if !matches!(&self.open, Some((p, _)) if *p == loc.path) {
            let file = match self.tree.open_read(&loc.path) {
                Ok(f) => f,
                Err(e) => {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        self.vanished.insert(loc.path.display());
                    }
                    return None;
                }
            };
            self.open = Some((loc.path.clone(), file));
        }
        let (_, f) = self.open.as_ref()?;
        self.buf.resize(loc.length as usize, 0);
        f.read_exact_at(&mut self.buf, loc.offset).ok()?;
        Some(&self.buf)
    }
}

/// The stream of requested chunks, read from the source files, as the UDP
/// sender wants it: any byte range by stream offset.
pub(super) struct StreamSource<'a, 'b> {
    needs: &'a [Need],
    /// Stream offset where each need starts.
    starts: Vec<u64>,
    locations: &'a HashMap<Hash, ChunkLocation>,
    reader: &'a mut ChunkReader<'b>,
    /// The chunk whose bytes are in `reader.buf`.
    cached: Option<usize>,
}

impl<'a, 'b> StreamSource<'a, 'b> {
    pub(super) fn new(
        needs: &'a [Need],
        locations: &'a HashMap<Hash, ChunkLocation>,
        reader: &'a mut ChunkReader<'b>,
    ) -> Self {
        let mut at = 0;
        let starts = needs
            .iter()
            .map(|n| {
                let s = at;
                at += n.length as u64;
                s
            })
            .collect();
        StreamSource {
            needs,
            starts,
            locations,
            reader,
            cached: None,
        }
    }
}

impl StreamSource<'_, '_> {
    /// Brings the chunk holding stream byte `at` into the reader's buffer;
    /// returns its index in `needs`.
    fn load(&mut self, at: u64) -> std::io::Result<usize> {
        // Blocks come in stream order, mostly from the chunk already read.
        if let Some(k) = self.cached {
            if (self.starts[k]..self.starts[k] + u64::from(self.needs[k].length)).contains(&at) {
                return Ok(k);
            }
        }
        let k = self.starts.partition_point(|&s| s <= at).saturating_sub(1);
        let need = self.needs.get(k).ok_or(std::io::ErrorKind::UnexpectedEof)?;
        if self.cached != Some(k) {
            self.cached = None;
            let loc = self
                .locations
                .get(&need.hash)
                .filter(|l| l.length == need.length)
                .ok_or_else(|| std::io::Error::other("a requested chunk is not in the source"))?;
            self.reader
                .read(loc)
                .ok_or_else(|| std::io::Error::other("a source file changed or vanished"))?;
            self.cached = Some(k);
        }
        Ok(k)
    }
}

impl crate::proto::sender::BlockSource for StreamSource<'_, '_> {
    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let at = stream_offset + done as u64;
            let k = self.load(at)?;
            let within = (at - self.starts[k]) as usize;
            let chunk = &self.reader.buf[..self.needs[k].length as usize];
            let n = (chunk.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&chunk[within..within + n]);
            done += n;
        }
        Ok(())
    }

    /// A block inside one chunk is lent from the reader's buffer; one
    /// spanning two chunks (or a read error, which `read` then reports) is
    /// left to `read`.
    fn lend(&mut self, stream_offset: u64, len: usize) -> Option<&[u8]> {
        let k = self.load(stream_offset).ok()?;
        let within = (stream_offset - self.starts[k]) as usize;
        let chunk = &self.reader.buf[..self.needs[k].length as usize];
        chunk.get(within..within.checked_add(len)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::sender::BlockSource;

    fn rel(p: &str) -> RelPath {
        RelPath::new(p.as_bytes().to_vec()).unwrap()
    }

    /// A round's stream read across chunks of two files; blocks inside one
    /// chunk are lent, a chunk whose file vanished fails the read and is
    /// noted.
    #[test]
    fn the_stream_is_read_from_the_chunks_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"0123456789").unwrap();
        std::fs::write(dir.path().join("b"), b"abcdef").unwrap();
        let at = |path: &str, offset, length| ChunkLocation {
            path: rel(path),
            offset,
            length,
        };
        let locations = HashMap::from([
            (Hash([1; 32]), at("a", 2, 4)),
            (Hash([2; 32]), at("b", 0, 6)),
            (Hash([3; 32]), at("gone", 0, 2)),
        ]);
        let need = |idx, h, length| Need {
            idx,
            hash: Hash([h; 32]),
            length,
        };
        let needs = [need(0, 1, 4), need(1, 2, 6), need(2, 3, 2)];
        let mut tree = Tree::open(dir.path()).unwrap();
        let mut reader = ChunkReader::new(&mut tree);
        let mut source = StreamSource::new(&needs, &locations, &mut reader);
        let mut buf = [0; 10];
        source.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"2345abcdef");
        assert_eq!(source.lend(5, 3), Some(&b"bcd"[..]));
        assert_eq!(source.lend(2, 4), None, "a block over two chunks is read");
        let mut last = [0; 2];
        assert!(source.read(10, &mut last).is_err());
        assert!(reader.vanished.contains("gone"));
    }
}
