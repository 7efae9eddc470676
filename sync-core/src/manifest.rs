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

    /// One location for every distinct chunk in the tree: "is chunk H
    /// anywhere here, and where?" in one lookup.
    pub fn chunk_locations(&self) -> HashMap<Hash, ChunkLocation> {
        let mut map = HashMap::new();
        for e in self.files() {
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
}
