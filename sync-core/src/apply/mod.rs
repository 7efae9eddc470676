//! The apply step: the only code that writes the destination.
//!
//! An [`Applier`] executes a [`Plan`] against a destination folder through a
//! confined [`Tree`] (no symlink under the root is ever followed):
//!
//! 1. [`Applier::start`] removes temporary files left by a dead run, saves
//!    "rescued" chunks aside, creates folders, and writes every file that
//!    needs nothing from the sender;
//! 2. [`Applier::receive_chunk`] takes each shipped chunk, checks its hash,
//!    writes it into every file that needs it, and finishes files as their
//!    last chunk lands;
//! 3. [`Applier::finish`] makes symlinks and hard links, fixes metadata,
//!    deletes (deepest first, after all transfers), sets folder metadata
//!    after their contents, and records what was written in the
//!    destination's index.
//!
//! Every file is assembled in a hidden temporary file in its own folder,
//! checked against its whole-file BLAKE3, given its mode and mtime, and
//! only then renamed over its target: nothing half-written is ever visible
//! at a final path. A chunk copied from a destination file is verified as
//! it is read; a mismatch (the file changed since it was indexed) turns it
//! into a chunk to fetch from the sender in another round.

mod assemble;
pub mod journal;
pub mod tree;

use std::collections::HashMap;

use serde::Serialize;

use crate::chunk::Hash;
use crate::entry::{Entry, Kind};
use crate::error::Error;
use crate::path::RelPath;
use crate::plan::{Plan, StreamChunk};

pub use assemble::Applier;
pub use tree::Tree;

/// What the user chose that changes how a plan is applied.
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Refuse all deletions when the plan has more than this many.
    pub max_delete: Option<u64>,
    /// Skip deletions (the source scan hit an I/O error).
    pub no_deletes: bool,
}

/// A path that could not be written, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ApplyError {
    pub path: String,
    pub message: String,
}

/// What applying a plan did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ApplyReport {
    pub files_written: u64,
    pub bytes_written: u64,
    pub entries_deleted: u64,
    /// Chunks copied from the destination's own files.
    pub chunks_reused: u64,
    /// Payload of the shipped chunks that arrived intact.
    pub chunk_bytes_received: u64,
    /// Local chunks that failed their hash check and were fetched instead.
    pub chunks_refetched: u64,
    /// Deletions were skipped because of `--max-delete`.
    pub max_delete_hit: bool,
    /// Deletions were skipped because the source scan was incomplete.
    pub deletes_skipped: bool,
    pub errors: Vec<ApplyError>,
}

/// Records of what was written, for the destination's index.
#[derive(Debug, Default)]
pub struct IndexUpdate {
    /// Entries written (their content record replaced).
    pub put: Vec<Entry>,
    /// Entries whose metadata changed but whose content did not.
    pub meta: Vec<(RelPath, crate::entry::Meta, i64)>,
    pub delete: Vec<RelPath>,
}

/// How the sender's chunks map onto the files being written.
#[derive(Debug, Default)]
struct StreamMap {
    chunks: Vec<StreamChunk>,
    /// For each stream chunk, every (file op, offset in file) that needs it.
    dests: Vec<Vec<(u32, u64)>>,
    /// Whether each stream chunk has arrived.
    arrived: Vec<bool>,
}

impl StreamMap {
    fn push(&mut self, c: StreamChunk) -> u32 {
        self.chunks.push(c);
        self.dests.push(Vec::new());
        self.arrived.push(false);
        (self.chunks.len() - 1) as u32
    }
}

fn kind_is_dir(k: Option<Kind>) -> bool {
    k == Some(Kind::Dir)
}

fn io_err(tree: &Tree, path: &RelPath, e: std::io::Error) -> Error {
    Error::io(path.under(tree.root_path()), e)
}

/// Hash → stream index of the chunks a plan ships.
pub fn stream_index(plan: &Plan) -> HashMap<Hash, u32> {
    plan.stream
        .iter()
        .enumerate()
        .map(|(i, c)| (c.hash, i as u32))
        .collect()
}

#[cfg(test)]
mod tests;
