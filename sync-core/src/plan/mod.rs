//! The planner: what must change at the destination, as data.
//!
//! [`diff`] compares the source's [`Manifest`](crate::manifest::Manifest) with the destination's and
//! returns a [`Plan`]: folders to create, files to write (each chunk sourced
//! from the destination itself, from the rescue spool, or from the
//! transfer stream), symlinks, hard links, metadata fixes and deletions,
//! plus the itemised change list. It is a pure function: no I/O, no clock.
//! [`crate::apply`] executes a plan; nothing else writes the destination.
//!
//! Chunks are looked up in the destination's whole tree, so a renamed file or
//! folder ships nothing. A chunk whose only destination copies sit in files
//! this plan overwrites or deletes is "rescued" (copied aside before the
//! first write), so the order in which files are written never matters.

mod diff;
mod finish;
pub mod op;
mod walk;

pub use diff::{diff, Elsewhere, Nowhere, Planner};
pub use op::{Change, ChangeKind, DirOp, FileOp, HardLinkOp, LinkOp, Piece, StreamChunk};

use serde::Serialize;

use crate::chunk::Hash;
use crate::entry::{Kind, Meta};
use crate::manifest::ChunkLocation;
use crate::path::RelPath;

/// What the user chose that changes the plan.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Delete destination entries that the source lacks.
    pub delete: bool,
    /// Preserve hard links among source files.
    pub hard_links: bool,
    /// Source paths that could not be read this run: never deleted at the
    /// destination, never written.
    pub protect: Vec<RelPath>,
    /// More places at the destination that hold chunks (journaled chunks of
    /// a dead run's temporary files); used when no indexed file has them.
    pub extra_sources: Vec<(Hash, ChunkLocation)>,
}

/// Counts for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PlanStats {
    /// Regular files and their bytes in the source.
    pub files_total: u64,
    pub bytes_total: u64,
    pub files_created: u64,
    pub files_updated: u64,
    pub dirs_created: u64,
    pub symlinks_created: u64,
    pub meta_updated: u64,
    /// Entries deleted (each file, folder and symlink counts).
    pub entries_deleted: u64,
    /// Files among the deleted entries.
    pub files_deleted: u64,
    /// Bytes of the files to write.
    pub bytes_to_write: u64,
    /// Chunk payload the sender must ship.
    pub chunk_bytes_to_send: u64,
    /// Bytes taken from the destination's own files.
    pub bytes_reused: u64,
}

/// Everything the apply step must do, in the order it must do it.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Chunks to save aside before anything is overwritten: slot → where.
    pub rescue: Vec<(Hash, ChunkLocation)>,
    /// Folders to create, parents first.
    pub dirs: Vec<DirOp>,
    /// Files to write, in path order.
    pub files: Vec<FileOp>,
    pub symlinks: Vec<LinkOp>,
    pub hard_links: Vec<HardLinkOp>,
    /// Files and symlinks whose content is right but mode or mtime is not.
    pub meta: Vec<(RelPath, Meta)>,
    /// Entries to delete, deepest first.
    pub deletes: Vec<(RelPath, Kind)>,
    /// Folder metadata to set after their contents, deepest first.
    pub dir_meta: Vec<(RelPath, Meta)>,
    /// The chunks the sender must ship, in the order they are first needed.
    pub stream: Vec<StreamChunk>,
    /// The itemised change list.
    pub changes: Vec<Change>,
    /// Paths left alone because the change would need `--delete`.
    pub conflicts: Vec<(RelPath, String)>,
    pub stats: PlanStats,
}

impl Plan {
    /// True when the destination already mirrors the source.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.dir_meta.is_empty()
    }
}

#[cfg(test)]
mod tests;
