//! Per-entry decisions of the walker threads: does an entry's record from
//! the last scan still stand (same metadata), or must the file be read
//! again? Results go to the index writer in batches; files to read go
//! straight to the reader threads. Never touches the index itself.

use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::fs::{FileType, Stat};

use crossbeam_channel as chan;

use super::walk;
use super::{Found, Job, ScanProgress, ScanWarning, FOUND_BATCH, JOB_BATCH};
use crate::entry::{Entry, Kind, Meta};
use crate::index::{path_key, stat_print, ScanRecords};
use crate::path::RelPath;

/// Shared state of the walker threads.
pub(super) struct Walk<'a> {
    pub recorded: &'a ScanRecords,
    pub checksum: bool,
    pub progress: Option<&'a ScanProgress>,
    pub walk_failed: &'a AtomicBool,
}

/// One walker thread's end: results batched for the index writer, files to
/// read straight to the readers.
pub(super) struct WalkThread<'a> {
    pub walk: &'a Walk<'a>,
    pub out: Vec<Found>,
    pub found: chan::Sender<Vec<Found>>,
    pub jobs: chan::Sender<Vec<Job>>,
    /// Files to read, sent to the readers [`JOB_BATCH`] at a time.
    pub pending: Vec<Job>,
}

impl WalkThread<'_> {
    /// Queues one result; false when the writer has gone away.
    fn push(&mut self, f: Found) -> bool {
        self.out.push(f);
        self.out.len() < FOUND_BATCH || self.flush()
    }

    /// Hands the pending files to the readers; false when they are gone.
    fn send_jobs(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(JOB_BATCH));
        self.jobs.send(batch).is_ok()
    }

    fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.out, Vec::with_capacity(FOUND_BATCH));
        self.found.send(batch).is_ok()
    }

    fn warn(&mut self, path: String, message: String, io_error: bool) -> bool {
        self.push(Found::Warn(ScanWarning {
            path,
            message,
            io_error,
            vanished: false,
        }))
    }
}

impl walk::Visitor for WalkThread<'_> {
    fn entry(&mut self, path: RelPath, st: &Stat, place: &walk::Place<'_>) -> bool {
        let Some(meta) = Meta::from_stat(st) else {
            let message = format!("{} skipped", special_kind(st));
            return self.warn(path.display(), message, false);
        };
        let old = self.walk.recorded.get(path_key(path.as_bytes()));
        let msg = match meta.kind {
            Kind::File => {
                let fresh = old.is_some_and(|r| r.trusted() && r.stat == stat_print(&meta));
                match old {
                    Some(r) if fresh && !self.walk.checksum => Found::Same { id: r.id, meta },
                    _ => {
                        let job = Job {
                            path,
                            dir: Arc::clone(place.dir),
                            name: place.name.to_owned(),
                            meta,
                            replaces: old.map(|r| r.id),
                        };
                        self.pending.push(job);
                        return self.pending.len() < JOB_BATCH || self.send_jobs();
                    }
                }
            }
            Kind::Dir | Kind::Symlink => {
                let target = if meta.kind == Kind::Symlink {
                    match place.dir.readlink(place.name.as_bytes()) {
                        Ok(t) => Some(t),
                        Err(e) => {
                            return self.warn(
                                path.display(),
                                format!("cannot read link: {e}"),
                                true,
                            )
                        }
                    }
                } else {
                    None
                };
                match old {
                    // A changed symlink target always changes ctime, so equal
                    // metadata means an equal record.
                    Some(r) if r.stat == stat_print(&meta) => Found::Same { id: r.id, meta },
                    _ => Found::Put {
                        entry: Entry {
                            path,
                            meta,
                            target,
                            hash: None,
                            chunks: Vec::new(),
                            checked_ns: 0,
                        },
                        replaces: old.map(|r| r.id),
                        was_read: false,
                    },
                }
            }
        };
        self.push(msg)
    }

    fn temp(&mut self, rel: RelPath) -> bool {
        self.push(Found::Temp(rel))
    }

    fn trouble(&mut self, t: walk::Trouble) -> bool {
        match t {
            walk::Trouble::Unreadable { path, message } => {
                self.walk.walk_failed.store(true, Ordering::Relaxed);
                self.warn(path, message, true)
            }
            walk::Trouble::Skipped {
                path,
                message,
                io_error,
            } => self.warn(path, message, io_error),
            walk::Trouble::Vanished { path } => self.push(Found::Warn(ScanWarning {
                path,
                message: "vanished while being scanned".into(),
                io_error: false,
                vanished: true,
            })),
        }
    }

    fn listed(&mut self, entries: usize) {
        if let Some(p) = self.walk.progress {
            p.entries.fetch_add(entries as u64, Ordering::Relaxed);
        }
    }

    fn finish(&mut self) {
        self.send_jobs();
        self.flush();
    }
}

#[allow(clippy::unnecessary_cast)] // `st_mode`'s type differs between targets
fn special_kind(st: &Stat) -> &'static str {
    match FileType::from_raw_mode(st.st_mode as _) {
        FileType::Socket => "socket",
        FileType::Fifo => "fifo",
        FileType::BlockDevice | FileType::CharacterDevice => "device",
        _ => "special file",
    }
}
