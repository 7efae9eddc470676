//! The apply step: the only code that writes the destination.
//!
//! An [`Applier`] executes a [`Plan`](crate::plan::Plan) against a destination folder through
//! confined [`Tree`]s (no symlink under the root is ever followed):
//!
//! 1. [`Applier::start`] saves "rescued" chunks aside, creates folders, and
//!    starts the writer threads, which first write every file that needs
//!    nothing from the sender;
//! 2. [`Applier::receive_chunk`] hands each shipped chunk to the writers
//!    whose files need it; they check its hash, write it, and finish files
//!    as their last chunk lands;
//! 3. [`Applier::finish`] waits for the writers, makes symlinks and hard
//!    links, fixes metadata, deletes (deepest first, after all transfers),
//!    sets folder metadata after their contents, and returns what was
//!    written for the destination's index.
//!
//! Every file is assembled in a hidden temporary file in its own folder,
//! checked against its whole-file BLAKE3, given its mode and mtime, and
//! only then renamed over its target: nothing half-written is ever visible
//! at a final path. A chunk copied from a destination file is verified as
//! it is read; a mismatch (the file changed since it was indexed) turns it
//! into a chunk to fetch from the sender in another round.

mod applier;
mod assemble;
mod current;
pub mod journal;
pub mod tree;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::chunk::Hash;
use crate::entry::{Entry, Kind};
use crate::error::Error;
use crate::manifest::ChunkLocation;
use crate::path::RelPath;

pub use applier::{Applier, Feed, MAX_WRITERS};
pub use current::CurrentFile;
pub use tree::Tree;

/// What the user chose that changes how a plan is applied.
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Refuse all deletions when the plan has more than this many.
    pub max_delete: Option<u64>,
    /// Skip deletions (the source scan hit an I/O error).
    pub no_deletes: bool,
    /// Writer threads (default: one per core, at most [`MAX_WRITERS`]).
    pub writers: Option<usize>,
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

/// Errors that end the whole run rather than one file.
fn is_fatal(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        Errno::from_io_error(e),
        Some(Errno::NOSPC | Errno::DQUOT | Errno::ROFS | Errno::IO)
    )
}

/// The first fatal error any writer hit, shared by all of them.
#[derive(Clone, Default)]
struct Fatal {
    any: Arc<AtomicBool>,
    first: Arc<Mutex<Option<Error>>>,
}

impl Fatal {
    fn set(&self, e: Error) {
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(e);
        self.any.store(true, Ordering::Release);
    }

    /// Takes the error out (once).
    fn take(&self) -> Option<Error> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.first.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Reads chunks out of destination files, keeping the last file open.
#[derive(Default)]
struct Reader {
    source: Option<(RelPath, File)>,
    buf: Vec<u8>,
}

impl Reader {
    /// Reads a chunk into `self.buf`; `Ok(false)` if its bytes no longer
    /// match their hash (the file changed since it was indexed).
    fn read(&mut self, tree: &mut Tree, loc: &ChunkLocation, hash: &Hash) -> std::io::Result<bool> {
        if !matches!(&self.source, Some((p, _)) if *p == loc.path) {
            self.source = Some((loc.path.clone(), tree.open_read(&loc.path)?));
        }
        let (_, f) = self.source.as_ref().expect("just opened");
        self.buf.resize(loc.length as usize, 0);
        match f.read_exact_at(&mut self.buf, loc.offset) {
            Ok(()) => Ok(Hash::of(&self.buf) == *hash),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn kind_is_dir(k: Option<Kind>) -> bool {
    k == Some(Kind::Dir)
}

fn io_err(tree: &Tree, path: &RelPath, e: std::io::Error) -> Error {
    Error::io(path.under(tree.root_path()), e)
}

#[cfg(test)]
pub(crate) mod tests;
