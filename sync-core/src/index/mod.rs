//! The index: one SQLite file per tree.
//!
//! This module owns the `rusqlite::Connection`. It stores every entry's
//! metadata and every file's chunk list, and answers "what did this tree look
//! like at the last scan", a path range at a time ([`Index::reads`]). It
//! never reads the tree.
//!
//! # Compatibility
//! The schema is an append-only list of migrations ([`schema`]) applied in one
//! exclusive transaction. An index written by a newer sluice is refused with
//! [`Error::IndexTooNew`], and a file that is not a sluice index with
//! [`Error::NotAnIndex`]; neither is modified (the checks run before any
//! pragma that writes).
//!
//! [`Error::IndexTooNew`]: crate::error::Error::IndexTooNew
//! [`Error::NotAnIndex`]: crate::error::Error::NotAnIndex
//!
//! # Locking
//! SQLite's own locks serialise writers; a second sluice on the same index
//! waits up to [`BUSY_TIMEOUT`] and then fails with a clear error.
//!
//! # Performance
//! WAL journaling where the filesystem allows it, `synchronous=NORMAL`,
//! cached prepared statements, and writes batched into transactions by
//! [`Writer`]. Chunks are keyed by `(entry, ordinal)` with a secondary index
//! on the hash, which only a destination asks of its index: a first scan
//! goes without it, and a first sync into an empty tree builds it once at
//! the end (see [`Index::drop_hash_index`] and [`recent`]).
//!
//! # Filesystems
//! WAL needs shared memory; on filesystems without it (some network mounts)
//! SQLite falls back to its rollback journal, which we accept silently.
//!
//! # Map
//! - `open.rs`: the [`Index`] type; opening, header and version checks,
//!   pragmas, migration, the meta table.
//! - [`schema`]: the append-only migrations.
//! - `reads.rs`: whole-tree loads and the windowed [`Reads`].
//! - `writer.rs`: [`Writer`], batched writes in one transaction.
//! - `chunks.rs`: the hash index's upkeep and tree-wide chunk questions.
//! - `scan_records.rs`: [`ScanRecords`] and [`IdSet`] for a rescan.
//! - [`recent`]: chunks a run recorded while the hash index is off.
//! - [`location`]: where an index lives by default.
//!
//! This file holds what several of them share: the meta upsert, the row
//! layout of an entry's metadata, and a subtree's path range.

mod chunks;
pub mod location;
mod open;
mod reads;
pub mod recent;
mod scan_records;
pub mod schema;
mod writer;

pub use open::{Index, BUSY_TIMEOUT};
pub use reads::Reads;
pub use scan_records::{path_key, stat_print, IdSet, ScanRecord, ScanRecords};
pub use writer::{ScanLog, Writer};

use crate::entry::{Kind, Meta};
use crate::path::RelPath;

/// Upserts one meta row (used by [`Index::set_meta`], [`Writer::set_meta`]
/// and the migration that records the format version).
const SET_META: &str =
    "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value";

/// The byte range that holds exactly the paths below `path` (not `path`
/// itself): from `path/` up to, not including, `path0` ('0' follows '/').
/// The root's subtree is the whole tree, which callers read as such.
fn subtree_bounds(path: &RelPath) -> (Vec<u8>, Vec<u8>) {
    debug_assert!(!path.is_root(), "the whole tree is read without bounds");
    let mut below = path.as_bytes().to_vec();
    below.push(b'/');
    let mut past = path.as_bytes().to_vec();
    past.push(b'0');
    (below, past)
}

/// The metadata in the eight columns from `at` of an entry row (`None`
/// for a kind this sluice does not know).
fn meta_from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Option<Meta>> {
    let Some(kind) = Kind::from_code(r.get(at)?) else {
        return Ok(None);
    };
    Ok(Some(Meta {
        kind,
        size: r.get::<_, i64>(at + 1)? as u64,
        mtime_ns: r.get(at + 2)?,
        mode: r.get::<_, i64>(at + 3)? as u32,
        ino: r.get::<_, i64>(at + 4)? as u64,
        dev: r.get::<_, i64>(at + 5)? as u64,
        ctime_ns: r.get(at + 6)?,
        nlink: r.get::<_, i64>(at + 7)? as u64,
    }))
}

#[cfg(test)]
mod tests;
