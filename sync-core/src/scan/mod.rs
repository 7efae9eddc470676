//! The scanner: brings a tree's index up to date.
//!
//! It owns the walk (`walk`: parallel, never following symlinks), the
//! exclude rules, and reading files into chunks. It never
//! writes to the tree. Three stages run at once:
//!
//! * walker threads `lstat` every entry and decide (`compare`), from what
//!   the index recorded, whether a file must be read (results go to the
//!   writer in batches);
//! * reader threads (`read`, one per core) chunk and hash the files that
//!   must be read, each through one reused buffer;
//! * the calling thread (`store`) writes results to the index in batched
//!   transactions and, at the end, drops entries that vanished.
//!
//! A file is read again when its size, mtime, inode or ctime changed, when
//! it was "racily clean" at its last capture ([`Meta::is_racy`]), or with
//! `checksum`. A file that changes while it is read is read again; one that
//! keeps changing is reported and its previous record is kept untouched
//! (never a mix of old and new chunks).

mod compare;
mod filter;
mod read;
mod store;
mod walk;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel as chan;
use rustix::io::Errno;

use crate::chunk::{ChunkParams, Chunker};
use crate::entry::{now_ns, Entry, Meta};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::path::RelPath;
use crate::scope::Scopes;
use compare::{Walk, WalkThread};
use store::write_results;
use walk::Visitor as _;

pub use filter::Excludes;

/// Prefix of the temporary files sluice assembles in a tree; the scanner
/// never indexes them.
pub const TEMP_PREFIX: &str = ".sluice-tmp.";

/// Index rows written per transaction: each commit rewrites the pages it
/// touched, and new chunks touch the hash index everywhere, so fewer and
/// larger commits write far less (see the cache size in [`Index`]).
const BATCH: usize = 65536;

/// What the user chose for a scan.
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    /// Exclude rules: `--exclude`, `--exclude-from`, `--gitignore`.
    pub excludes: Excludes,
    /// Read every file even if its metadata is unchanged.
    pub checksum: bool,
    /// Threads for walking and for reading (0: one per core).
    pub threads: usize,
    /// Chunk sizes; an index cut with others is rebuilt.
    pub chunk_params: ChunkParams,
    /// Absolute paths never to index (the index file itself, if inside).
    pub skip: Vec<PathBuf>,
    /// Live counters for a progress display.
    pub progress: Option<Arc<ScanProgress>>,
}

/// Counters updated while a scan runs.
#[derive(Debug, Default)]
pub struct ScanProgress {
    pub entries: AtomicU64,
    pub files_read: AtomicU64,
    pub bytes_read: AtomicU64,
}

/// Something the scan could not index and went on without.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ScanWarning {
    pub path: String,
    pub message: String,
    /// True when this is an I/O error (the scan is "partial").
    pub io_error: bool,
    /// True when the entry was listed, then gone when looked at or read
    /// (rsync's "file has vanished"): not an error.
    pub vanished: bool,
}

/// What a scan did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ScanReport {
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Bytes of all regular files.
    pub file_bytes: u64,
    pub files_read: u64,
    pub bytes_read: u64,
    pub removed: u64,
    pub warnings: Vec<ScanWarning>,
    /// Files that kept changing while read: their old record was kept.
    #[serde(skip)]
    pub unstable: Vec<RelPath>,
    /// sluice temporary files found (left by a run that died).
    #[serde(skip)]
    pub temp_files: Vec<RelPath>,
    pub duration_s: f64,
}

impl ScanReport {
    /// True when an I/O error left part of the tree unindexed.
    pub fn partial(&self) -> bool {
        self.warnings.iter().any(|w| w.io_error)
    }

    /// Entries that vanished while the scan looked at them.
    pub fn vanished(&self) -> u64 {
        self.warnings.iter().filter(|w| w.vanished).count() as u64
    }
}

/// One result from the walker or a reader to the index writer.
enum Found {
    /// A new or changed entry to store.
    Put {
        entry: Entry,
        replaces: Option<i64>,
        was_read: bool,
    },
    /// An entry whose record (row `id`, here without chunks) is still right.
    Same {
        id: i64,
        meta: Meta,
    },
    /// A file that could not be captured; keep its old record if any.
    Keep {
        id: Option<i64>,
        path: RelPath,
    },
    Warn(ScanWarning),
    /// A temporary file of ours.
    Temp(RelPath),
}

/// Most files waiting for a reader. Each holds its folder's descriptor
/// open, so the queue is also kept to a quarter of the process's
/// descriptor limit (the walk itself holds about its depth times the
/// walker threads).
const JOB_QUEUE: usize = 256;

/// Files go to the readers in batches of this many.
const JOB_BATCH: usize = 16;

/// The file queue's length, in batches, under this process's descriptor
/// limit.
fn job_queue_len() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let files = usize::try_from(limit / 4).map_or(JOB_QUEUE, |n| n.clamp(8, JOB_QUEUE));
    (files / JOB_BATCH).max(1)
}

/// Results travel to the index writer in batches of this many.
const FOUND_BATCH: usize = 256;

/// A file that must be read.
struct Job {
    path: RelPath,
    /// Its folder's descriptor and its name in it: the file is opened from
    /// there, never by resolving its path again.
    dir: Arc<crate::fs::Dir>,
    name: std::ffi::OsString,
    meta: Meta,
    replaces: Option<i64>,
}

/// Brings `index` up to date with the tree at `root` (a folder).
pub fn scan(root: &Path, index: &mut Index, opts: &ScanOptions) -> Result<ScanReport> {
    scan_inner(root, index, opts, None)
}

/// Brings `index` up to date with what `scopes` cover of the tree at
/// `root`: their paths are looked at again (with their subtrees, and the
/// folders above them by themselves); nothing else is read or dropped.
/// The report counts only what the scopes cover.
pub fn scan_scopes(
    root: &Path,
    index: &mut Index,
    opts: &ScanOptions,
    scopes: &Scopes,
) -> Result<ScanReport> {
    if scopes.whole_tree() {
        return scan_inner(root, index, opts, None);
    }
    scan_inner(root, index, opts, Some(scopes))
}

fn scan_inner(
    root: &Path,
    index: &mut Index,
    opts: &ScanOptions,
    scopes: Option<&Scopes>,
) -> Result<ScanReport> {
    let started = Instant::now();
    let started_ns = now_ns();
    let chunker = Chunker::new(opts.chunk_params)?;
    let root_dir = walk::open_root(root).map_err(|e| match Errno::from_io_error(&e) {
        Some(Errno::NOTDIR | Errno::LOOP) => {
            Error::Usage(format!("{} is not a folder", root.display()))
        }
        _ => Error::io(root, e),
    })?;
    let root_st = root_dir.stat_self().map_err(|e| Error::io(root, e))?;
    let params_changed = index.chunk_params()? != Some(opts.chunk_params);
    if params_changed && scopes.is_some() && index.has_chunks()? {
        // Chunks cut with other sizes would never match: the whole tree
        // must be read again.
        return scan_inner(root, index, opts, None);
    }
    let mut recorded = match scopes {
        Some(scopes) => index.scope_records(scopes)?,
        None => index.scan_records()?,
    };
    if params_changed && !recorded.is_empty() {
        // Chunks cut with other sizes would never match: start over.
        let w = index.writer()?;
        w.clear()?;
        w.commit()?;
        recorded.clear();
    }
    index.set_chunk_params(opts.chunk_params)?;
    if !index.has_chunks()? {
        // A first scan: nothing looks chunks up by hash until this tree is
        // a destination, which makes that index again in one sorted pass.
        index.drop_hash_index()?;
    }
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        records = recorded.len(),
        "scan: loaded the index's records"
    );
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.threads
    };
    let excludes = opts.excludes.build(root)?;

    let (job_tx, job_rx) = chan::bounded::<Vec<Job>>(job_queue_len());
    let (found_tx, found_rx) = chan::bounded::<Vec<Found>>(256);
    let mut report = ScanReport::default();
    let walk_failed = AtomicBool::new(false);

    std::thread::scope(|s| -> Result<()> {
        // Walker.
        {
            let found_tx = found_tx.clone();
            let walk = Walk {
                recorded: &recorded,
                checksum: opts.checksum,
                progress: opts.progress.as_deref(),
                walk_failed: &walk_failed,
            };
            let filters = walk::Filters {
                excludes: &excludes,
                gitignore: opts.excludes.gitignore,
                temp_prefix: TEMP_PREFIX.as_bytes(),
                skip: &opts.skip,
            };
            s.spawn(move || {
                let visitor = || WalkThread {
                    walk: &walk,
                    out: Vec::with_capacity(FOUND_BATCH),
                    found: found_tx.clone(),
                    jobs: job_tx.clone(),
                    pending: Vec::with_capacity(JOB_BATCH),
                };
                let mut top = visitor();
                let place = walk::Place {
                    dir: &root_dir,
                    name: std::ffi::OsStr::new("."),
                };
                if !top.entry(RelPath::root(), &root_st, &place) {
                    return;
                }
                let folder = walk::Folder::root(root, Arc::clone(&root_dir));
                match scopes {
                    None => {
                        top.finish();
                        walk::walk(folder, &filters, threads, &visitor);
                    }
                    Some(scopes) => {
                        walk::walk_scopes(folder, scopes, &filters, threads, &mut top, &visitor);
                        top.finish();
                    }
                }
            });
        }
        // Readers.
        for _ in 0..threads {
            let job_rx = job_rx.clone();
            let found_tx = found_tx.clone();
            let chunker = chunker.clone();
            let progress = opts.progress.clone();
            s.spawn(move || read::reader(&chunker, job_rx, found_tx, progress.as_deref()));
        }
        drop(found_tx);
        drop(job_rx);
        write_results(
            index,
            found_rx,
            &mut report,
            &recorded,
            &walk_failed,
            (started, started_ns),
        )
    })?;
    report.duration_s = started.elapsed().as_secs_f64();
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        entries = report.entries,
        "scan: done"
    );
    Ok(report)
}

/// How long a scan may wait for a file that keeps changing.
pub const UNSTABLE_RETRIES: usize = 3;
/// Pause between attempts at a file that changed while read.
pub const UNSTABLE_PAUSE: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests;
