//! The notify driver: turns the kernel's change notices for a source tree
//! into [`Event`]s on a channel.
//!
//! It owns the inotify watch (through `notify`'s recommended watcher,
//! recursive on the root, symlinks not followed) and the translation of
//! notify's events into paths relative to the root. It never reads the
//! changed files, never decides when a round runs (that is the
//! [`Debouncer`](super::Debouncer)'s job) and never scans.
//!
//! Every kind of change (create, write, close after writing, attributes,
//! remove, either end of a rename) just names its paths: the round `lstat`s
//! them and finds out what happened. Opens and reads are dropped, or the
//! round reading the tree would wake the next round forever. A folder
//! created or moved in is named itself, and the round re-reads its whole
//! subtree, so files written before notify had added a watch on it are not
//! missed. Sluice's own files are filtered out: temporary files (names
//! starting with [`TEMP_PREFIX`]) and whatever [`Ignore`] lists, such as the
//! index and its journal files, or a destination inside the source.
//!
//! Nothing is lost silently. When the kernel's queue overflows, or ours
//! fills because the driver is busy, an [`Event::Rescan`] takes the place of
//! what was dropped; when the watch itself breaks (the kernel's limit on
//! watched folders, the root removed or moved away, a read error), an
//! [`Event::Trouble`] says so.
//!
//! One file per part: `filter` maps the kernel's paths to relative ones and
//! drops sluice's own; `handler` translates notify's events on its thread
//! and bounds the queue; `trouble` words the kernel's limits and start
//! failures with their fix; `polling` names the file systems whose notices
//! cannot be trusted. This file holds what callers see: [`Watcher`],
//! [`Event`] and [`Ignore`].
//!
//! [`TEMP_PREFIX`]: crate::scan::TEMP_PREFIX

mod filter;
mod handler;
mod polling;
mod trouble;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel as chan;
use notify::{ErrorKind, RecursiveMode, Watcher as _};

use crate::error::{Error, Result};
use crate::path::RelPath;

use filter::Filter;
use handler::Handler;
pub use polling::needs_polling;
use trouble::{read_limit, start_error, watch_limit_message};

/// Events held for the driver before the rest are replaced by one rescan:
/// about 16,000 files' worth at four notices a file, under 10 MB; a driver
/// this far behind is better served by one rescan than by a backlog.
pub const EVENT_QUEUE: usize = 65_536;
/// What the watcher reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// These paths (relative to the root; the root itself is
    /// [`RelPath::root`]) changed, or their folder did.
    Paths(Vec<RelPath>),
    /// Changes were lost or could not be mapped to paths: rescan the whole
    /// tree. The text says why.
    Rescan(String),
    /// The watch is no longer complete and changes may go unseen from now
    /// on: the driver should rescan now and then periodically. The text says
    /// what happened and how to fix it.
    Trouble(String),
}

/// Paths whose changes are sluice's own and must not wake a round.
#[derive(Clone, Debug, Default)]
pub struct Ignore {
    /// Single files: the index and its `-wal`, `-shm` and `-journal` files
    /// when they live inside the tree. They need not exist yet.
    pub paths: Vec<PathBuf>,
    /// Folders whose whole subtree is ignored, such as a destination inside
    /// the source.
    pub under: Vec<PathBuf>,
}

/// A running watch on a source tree; dropping it stops the watch, and the
/// event channel then disconnects.
#[derive(Debug)]
pub struct Watcher {
    root: PathBuf,
    _inner: notify::RecommendedWatcher,
}

impl Watcher {
    /// Starts watching `root` recursively and returns the watcher with the
    /// channel its events arrive on.
    ///
    /// Hitting the kernel's limit on watched folders does not fail the start:
    /// the folders watched so far keep reporting, and an [`Event::Trouble`]
    /// on the channel names the fix. Any other failure is an error that
    /// names the path.
    pub fn start(root: &Path, ignore: Ignore) -> Result<(Watcher, chan::Receiver<Event>)> {
        let canonical = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
        let filter = Filter::new(&canonical, &ignore)?;
        let (tx, rx) = chan::unbounded();
        let limit_reported = Arc::new(AtomicBool::new(false));
        let handler = Handler {
            root: canonical.clone(),
            filter,
            tx: tx.clone(),
            queue_limit: EVENT_QUEUE,
            dropping: false,
            limit_reported: limit_reported.clone(),
        };
        // Symlinks are mirrored as links, never followed: following them
        // could watch (and spend the watch limit on) trees outside the root.
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut inner = notify::RecommendedWatcher::new(handler, config)
            .map_err(|e| start_error(&canonical, e))?;
        match inner.watch(&canonical, RecursiveMode::Recursive) {
            Ok(()) => {}
            Err(e) if matches!(e.kind, ErrorKind::MaxFilesWatch) => {
                if !limit_reported.swap(true, Ordering::Relaxed) {
                    // The receiver is still ours, so this cannot fail.
                    let _ = tx.send(Event::Trouble(watch_limit_message(read_limit())));
                }
            }
            Err(e) => return Err(start_error(&canonical, e)),
        }
        let watcher = Watcher {
            root: canonical,
            _inner: inner,
        };
        Ok((watcher, rx))
    }

    /// The watched root, with symlinks resolved: event paths are relative
    /// to it.
    pub fn root(&self) -> &Path {
        &self.root
    }
}
