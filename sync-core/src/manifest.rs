//! The in-memory view of one tree that the planner compares.
//!
//! A [`Manifest`] is a sorted map from path to [`Entry`], loaded from an
//! index in one pass. It owns no connection and does no I/O, so the planner
//! that reads two of them is a pure function.

use std::collections::{BTreeMap, HashMap};

use crate::chunk::{ChunkParams, Hash};
use crate::entry::{Entry, Kind};
use crate::path::RelPath;

/// All entries of a tree, sorted by path (parents before children).
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    pub entries: BTreeMap<RelPath, Entry>,
    pub params: ChunkParams,
}

/// One path of either of two manifests, with its entry in each.
#[derive(Clone, Copy, Debug)]
pub struct Pair<'a> {
    pub src: Option<&'a Entry>,
    pub dst: Option<&'a Entry>,
    /// Position of `src` in its manifest's path order.
    pub src_pos: usize,
}

impl Pair<'_> {
    /// A source file whose content the destination does not hold at the
    /// same path.
    pub fn content_missing(&self) -> bool {
        self.src.is_some_and(|s| {
            s.meta.kind == Kind::File
                && self
                    .dst
                    .is_none_or(|d| d.meta.kind != Kind::File || d.hash != s.hash)
        })
    }
}

/// Every path of `src` and `dst` with its entry on each side, in path
/// order: one merge of the two sorted maps instead of a lookup per path.
pub fn pair_up<'a>(src: &'a Manifest, dst: &'a Manifest) -> Vec<Pair<'a>> {
    use std::cmp::Ordering;
    let mut out = Vec::with_capacity(src.entries.len().max(dst.entries.len()));
    let mut a = src.entries.values().enumerate().peekable();
    let mut b = dst.entries.values().peekable();
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((_, x)), Some(y)) => x.path.cmp(&y.path),
        };
        let (src_pos, src) = match order {
            Ordering::Greater => (0, None),
            _ => a.next().map_or((0, None), |(i, e)| (i, Some(e))),
        };
        let dst = match order {
            Ordering::Less => None,
            _ => b.next(),
        };
        out.push(Pair { src, dst, src_pos });
    }
    out
}

/// Where a chunk can be found in a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkLocation {
    pub path: RelPath,
    pub offset: u64,
    pub length: u32,
}

impl Manifest {
    /// The entry at `path`.
    pub fn get(&self, path: &RelPath) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Regular files.
    pub fn files(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values().filter(|e| e.meta.kind == Kind::File)
    }

    /// Total bytes of regular files.
    pub fn file_bytes(&self) -> u64 {
        self.files().map(|e| e.meta.size).sum()
    }
}

/// One location for every distinct chunk of `entries`: "is chunk H
/// anywhere here, and where?" in one lookup.
pub fn chunk_locations<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
) -> HashMap<Hash, ChunkLocation> {
    let mut map = HashMap::new();
    for e in entries {
        for c in &e.chunks {
            map.entry(c.hash).or_insert_with(|| ChunkLocation {
                path: e.path.clone(),
                offset: c.offset,
                length: c.length,
            });
        }
    }
    map
}
