//! The chunks this run recorded while the destination's hash index is off.
//!
//! A first sync into an empty tree records a whole tree's chunks, and
//! keeping the hash index up meanwhile cost more than all its other index
//! writes together (see [`Index::drop_hash_index`]). The one question that
//! index answers during a sync (is chunk H in a file an earlier window
//! wrote?) is answered here instead, from 24 bytes a chunk: a sorted list
//! of (hash prefix, entry, ordinal), each hit checked against the index's
//! own row before it is believed.
//!
//! [`Index::drop_hash_index`]: super::Index::drop_hash_index

use std::sync::Mutex;

use super::Reads;
use crate::chunk::{ChunkRef, Hash};
use crate::error::Result;
use crate::manifest::ChunkLocation;

/// (first 8 bytes of the hash, entry id, ordinal in the entry's list).
type Row = (u64, i64, u32);

/// Chunks recorded (committed) by this run, findable by hash.
#[derive(Default)]
pub struct RecentChunks {
    rows: Mutex<Rows>,
}

#[derive(Default)]
struct Rows {
    sorted: Vec<Row>,
    /// Added since the last lookup, merged in by the next one.
    fresh: Vec<Row>,
}

/// Rows for entry `id`'s chunks, to hand to [`RecentChunks::add`] once the
/// transaction that wrote them has committed.
pub fn rows_of(id: i64, chunks: &[ChunkRef], into: &mut Vec<Row>) {
    into.extend(
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| (prefix(&c.hash), id, i as u32)),
    );
}

fn prefix(h: &Hash) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.0[..8]);
    u64::from_le_bytes(b)
}

impl RecentChunks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes committed rows findable.
    pub fn add(&self, rows: Vec<Row>) {
        let mut r = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        if r.fresh.is_empty() {
            r.fresh = rows;
        } else {
            r.fresh.extend(rows);
        }
    }

    pub fn len(&self) -> usize {
        let r = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        r.sorted.len() + r.fresh.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where a chunk with this hash and length is among the rows added,
    /// as `reads` (the same index) has them now: up to `limit` places.
    pub fn find(
        &self,
        reads: &Reads<'_>,
        hash: &Hash,
        length: u32,
        limit: usize,
    ) -> Result<Vec<ChunkLocation>> {
        let key = prefix(hash);
        let candidates: Vec<(i64, u32)> = {
            let mut r = self.rows.lock().unwrap_or_else(|p| p.into_inner());
            if !r.fresh.is_empty() {
                let mut fresh = std::mem::take(&mut r.fresh);
                fresh.sort_unstable();
                r.sorted.reserve_exact(fresh.len());
                r.sorted.extend(fresh);
                // Two sorted runs: the stable sort merges them in one pass.
                r.sorted.sort();
            }
            let from = r.sorted.partition_point(|row| row.0 < key);
            r.sorted[from..]
                .iter()
                .take_while(|row| row.0 == key)
                .map(|row| (row.1, row.2))
                .collect()
        };
        let mut out = Vec::new();
        for (id, ordinal) in candidates {
            if out.len() == limit {
                break;
            }
            // The row may have been replaced since (same id, other content).
            let Some(c) = reads.chunk_at(id, ordinal)? else {
                continue;
            };
            if c.hash != *hash || c.length != length {
                continue;
            }
            if let Some(path) = reads.path_of(id)? {
                out.push(ChunkLocation {
                    path,
                    offset: c.offset,
                    length,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Entry, Kind, Meta};
    use crate::index::Index;
    use crate::path::RelPath;

    fn file(path: &str, parts: &[&[u8]]) -> Entry {
        let mut offset = 0;
        let chunks: Vec<ChunkRef> = parts
            .iter()
            .map(|p| {
                let c = ChunkRef {
                    offset,
                    length: p.len() as u32,
                    hash: Hash::of(p),
                };
                offset += p.len() as u64;
                c
            })
            .collect();
        Entry {
            path: RelPath::new(path.as_bytes().to_vec()).unwrap(),
            meta: Meta {
                kind: Kind::File,
                size: offset,
                mtime_ns: 1,
                mode: 0o644,
                ino: 1,
                dev: 1,
                ctime_ns: 1,
                nlink: 1,
            },
            target: None,
            hash: None,
            chunks,
            checked_ns: 0,
        }
    }

    #[test]
    fn finds_committed_chunks_and_checks_them_against_the_index() {
        let mut ix = Index::open_in_memory().unwrap();
        ix.drop_hash_index().unwrap();
        let recent = RecentChunks::new();
        let mut rows = Vec::new();
        let w = ix.writer().unwrap();
        let a = w.put(&file("a", &[b"one", b"two"]), None).unwrap();
        rows_of(a, &file("a", &[b"one", b"two"]).chunks, &mut rows);
        w.commit().unwrap();
        recent.add(rows);
        let found = recent.find(&ix.reads(), &Hash::of(b"two"), 3, 4).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path.as_bytes(), b"a");
        assert_eq!((found[0].offset, found[0].length), (3, 3));
        // Wrong length, unknown hash: nothing.
        assert!(recent
            .find(&ix.reads(), &Hash::of(b"two"), 4, 4)
            .unwrap()
            .is_empty());
        assert!(recent
            .find(&ix.reads(), &Hash::of(b"six"), 3, 4)
            .unwrap()
            .is_empty());

        // Added after a lookup: merged in by the next one. The file "a"
        // rewritten keeps its id; its old rows no longer match.
        let mut rows = Vec::new();
        let w = ix.writer().unwrap();
        let b = w.put(&file("b", &[b"three"]), None).unwrap();
        rows_of(b, &file("b", &[b"three"]).chunks, &mut rows);
        let a2 = w.put(&file("a", &[b"four"]), Some(a)).unwrap();
        rows_of(a2, &file("a", &[b"four"]).chunks, &mut rows);
        w.commit().unwrap();
        recent.add(rows);
        assert_eq!(recent.len(), 4);
        let found = recent.find(&ix.reads(), &Hash::of(b"three"), 5, 4).unwrap();
        assert_eq!(found[0].path.as_bytes(), b"b");
        assert!(recent
            .find(&ix.reads(), &Hash::of(b"two"), 3, 4)
            .unwrap()
            .is_empty());
        assert_eq!(
            recent.find(&ix.reads(), &Hash::of(b"four"), 4, 4).unwrap()[0]
                .path
                .as_bytes(),
            b"a"
        );
        // The index made again answers the same.
        ix.build_hash_index().unwrap();
        assert_eq!(
            ix.reads().find_chunk(&Hash::of(b"three"), 5, 4).unwrap()[0]
                .path
                .as_bytes(),
            b"b"
        );
    }
}
