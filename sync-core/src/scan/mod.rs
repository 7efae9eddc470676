//! The scanner: brings a tree's index up to date.
//!
//! It owns the walk (the `ignore` crate's parallel walker, never following
//! symlinks), the exclude rules, and reading files into chunks. It never
//! writes to the tree. Three stages run at once:
//!
//! * walker threads `lstat` every entry and decide, from what the index
//!   recorded, whether a file must be read;
//! * reader threads (one per core) chunk and hash the files that must be
//!   read, each through one reused buffer;
//! * the calling thread writes results to the index in batched transactions
//!   and, at the end, drops entries that vanished.
//!
//! A file is read again when its size, mtime, inode or ctime changed, when
//! it was "racily clean" at its last capture ([`Meta::is_racy`]), or with
//! `checksum`. A file that changes while it is read is read again; one that
//! keeps changing is reported and its previous record is kept untouched
//! (never a mix of old and new chunks).

mod filter;
mod read;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel as chan;

use crate::chunk::{ChunkParams, Chunker};
use crate::entry::{now_ns, Entry, Kind, Meta};
use crate::error::{Error, Result};
use crate::index::{Index, Recorded, ScanLog};
use crate::path::RelPath;

pub use filter::Excludes;

/// Prefix of the temporary files sluice assembles in a tree; the scanner
/// never indexes them.
pub const TEMP_PREFIX: &str = ".sluice-tmp.";

/// Index rows written per transaction.
const BATCH: usize = 8192;

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
}

/// One result from the walker or a reader to the index writer.
enum Found {
    /// A new or changed entry to store.
    Put {
        entry: Entry,
        replaces: Option<i64>,
        was_read: bool,
    },
    /// An entry whose record is still right.
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

/// A file that must be read.
struct Job {
    path: RelPath,
    full: PathBuf,
    meta: Meta,
    replaces: Option<i64>,
}

/// Brings `index` up to date with the tree at `root` (a folder).
pub fn scan(root: &Path, index: &mut Index, opts: &ScanOptions) -> Result<ScanReport> {
    let started = Instant::now();
    let started_ns = now_ns();
    let chunker = Chunker::new(opts.chunk_params)?;
    let root_md = std::fs::symlink_metadata(root).map_err(|e| Error::io(root, e))?;
    if !root_md.is_dir() {
        return Err(Error::Usage(format!("{} is not a folder", root.display())));
    }
    let mut recorded = index.recorded()?;
    if index.chunk_params()? != Some(opts.chunk_params) && !recorded.is_empty() {
        // Chunks cut with other sizes would never match: start over.
        let w = index.writer()?;
        w.clear()?;
        w.commit()?;
        recorded.clear();
    }
    index.set_chunk_params(opts.chunk_params)?;
    let recorded = Arc::new(recorded);
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.threads
    };
    let matcher = opts.excludes.build(root)?;

    let (job_tx, job_rx) = chan::bounded::<Job>(4096);
    let (found_tx, found_rx) = chan::bounded::<Found>(16384);
    let mut report = ScanReport::default();
    let walk_failed = AtomicBool::new(false);

    std::thread::scope(|s| -> Result<()> {
        // Walker.
        {
            let found_tx = found_tx.clone();
            let recorded = Arc::clone(&recorded);
            let walk_failed = &walk_failed;
            let opts = &opts;
            let matcher = matcher.clone();
            s.spawn(move || {
                let walk = Walk {
                    root,
                    recorded: &recorded,
                    checksum: opts.checksum,
                    skip: &opts.skip,
                    progress: opts.progress.as_deref(),
                };
                filter::walker(root, &matcher, opts.excludes.gitignore, threads).run(|| {
                    let found_tx = found_tx.clone();
                    let job_tx = job_tx.clone();
                    let walk = &walk;
                    Box::new(move |res| {
                        let keep_going = match res {
                            Ok(entry) => walk.visit(entry, &found_tx, &job_tx),
                            Err(err) => {
                                walk_failed.store(true, Ordering::Relaxed);
                                found_tx
                                    .send(Found::Warn(ScanWarning {
                                        path: walk_error_path(&err),
                                        message: err.to_string(),
                                        io_error: true,
                                    }))
                                    .is_ok()
                            }
                        };
                        if keep_going {
                            ignore::WalkState::Continue
                        } else {
                            ignore::WalkState::Quit
                        }
                    })
                });
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
            started,
            started_ns,
        )
    })?;
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Shared state of the walker threads.
struct Walk<'a> {
    root: &'a Path,
    recorded: &'a HashMap<RelPath, Recorded>,
    checksum: bool,
    skip: &'a [PathBuf],
    progress: Option<&'a ScanProgress>,
}

impl Walk<'_> {
    /// Handles one walked entry; false when the writer has gone away.
    fn visit(
        &self,
        de: ignore::DirEntry,
        found: &chan::Sender<Found>,
        jobs: &chan::Sender<Job>,
    ) -> bool {
        let full = de.path();
        if de.depth() > 0
            && de
                .file_name()
                .as_encoded_bytes()
                .starts_with(TEMP_PREFIX.as_bytes())
        {
            return match RelPath::from_walk(self.root, full) {
                Some(p) => found.send(Found::Temp(p)).is_ok(),
                None => true,
            };
        }
        if self.skip.iter().any(|s| s == full) {
            return true;
        }
        let Some(path) = RelPath::from_walk(self.root, full) else {
            return found
                .send(Found::Warn(ScanWarning {
                    path: full.display().to_string(),
                    message: "name too long or not representable; skipped".into(),
                    io_error: false,
                }))
                .is_ok();
        };
        let md = match std::fs::symlink_metadata(full) {
            Ok(md) => md,
            Err(e) => {
                let io_error = e.kind() != std::io::ErrorKind::NotFound;
                return found
                    .send(Found::Warn(ScanWarning {
                        path: path.display(),
                        message: e.to_string(),
                        io_error,
                    }))
                    .is_ok();
            }
        };
        if let Some(p) = self.progress {
            p.entries.fetch_add(1, Ordering::Relaxed);
        }
        let Some(meta) = Meta::from_std(&md) else {
            return found
                .send(Found::Warn(ScanWarning {
                    path: path.display(),
                    message: format!("{} skipped", special_kind(&md)),
                    io_error: false,
                }))
                .is_ok();
        };
        let old = self.recorded.get(&path);
        let msg = match meta.kind {
            Kind::File => {
                let fresh = old.is_some_and(|r| {
                    r.has_hash && meta.same_stat(&r.meta) && !r.meta.is_racy(r.checked_ns)
                });
                if fresh && !self.checksum {
                    Found::Same {
                        id: old.map_or(0, |r| r.id),
                        meta,
                    }
                } else {
                    let job = Job {
                        path,
                        full: full.to_path_buf(),
                        meta,
                        replaces: old.map(|r| r.id),
                    };
                    return jobs.send(job).is_ok();
                }
            }
            Kind::Dir | Kind::Symlink => {
                let target = if meta.kind == Kind::Symlink {
                    match std::fs::read_link(full) {
                        Ok(t) => Some(t.into_os_string().into_encoded_bytes()),
                        Err(e) => {
                            return found
                                .send(Found::Warn(ScanWarning {
                                    path: path.display(),
                                    message: format!("cannot read link: {e}"),
                                    io_error: true,
                                }))
                                .is_ok();
                        }
                    }
                } else {
                    None
                };
                match old {
                    // A changed symlink target always changes ctime, so equal
                    // metadata means an equal record.
                    Some(r) if r.meta == meta => Found::Same { id: r.id, meta },
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
        found.send(msg).is_ok()
    }
}

fn special_kind(md: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let ft = md.file_type();
    if ft.is_socket() {
        "socket"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_block_device() || ft.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

fn walk_error_path(err: &ignore::Error) -> String {
    fn find(err: &ignore::Error) -> Option<&Path> {
        match err {
            ignore::Error::WithPath { path, .. } => Some(path),
            ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
                find(err)
            }
            _ => None,
        }
    }
    find(err)
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// The writer stage: stores results in batches and drops vanished entries.
fn write_results(
    index: &mut Index,
    found: chan::Receiver<Found>,
    report: &mut ScanReport,
    recorded: &HashMap<RelPath, Recorded>,
    walk_failed: &AtomicBool,
    started: Instant,
    started_ns: i64,
) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(recorded.len());
    let mut w = index.writer()?;
    let mut pending = 0;
    let count = |report: &mut ScanReport, meta: &Meta| {
        report.entries += 1;
        match meta.kind {
            Kind::File => {
                report.files += 1;
                report.file_bytes += meta.size;
            }
            Kind::Dir => report.dirs += 1,
            Kind::Symlink => report.symlinks += 1,
        }
    };
    for msg in found.iter() {
        match msg {
            Found::Put {
                entry,
                replaces,
                was_read,
            } => {
                count(report, &entry.meta);
                if was_read {
                    report.files_read += 1;
                    report.bytes_read += entry.meta.size;
                }
                let id = w.put(&entry, replaces)?;
                seen.insert(id);
                pending += 1;
            }
            Found::Same { id, meta } => {
                count(report, &meta);
                seen.insert(id);
            }
            Found::Keep { id, path } => {
                if let Some(id) = id {
                    seen.insert(id);
                }
                report.warnings.push(ScanWarning {
                    path: path.display(),
                    message: "kept changing while being read; left out of this run".into(),
                    io_error: true,
                });
                report.unstable.push(path);
            }
            Found::Warn(warning) => report.warnings.push(warning),
            Found::Temp(path) => report.temp_files.push(path),
        }
        if pending >= BATCH {
            w.commit()?;
            w = index.writer()?;
            pending = 0;
        }
    }
    // Entries not seen have vanished, unless part of the walk failed: then
    // an unreadable folder's old records are kept rather than dropped.
    if !walk_failed.load(Ordering::Relaxed) {
        for r in recorded.values() {
            if !seen.contains(&r.id) {
                w.delete(r.id)?;
                report.removed += 1;
            }
        }
    }
    w.log_scan(&ScanLog {
        started_ns,
        duration_ms: started.elapsed().as_millis() as u64,
        entries: report.entries,
        files_read: report.files_read,
        bytes_read: report.bytes_read,
        warnings: report.warnings.len() as u64,
    })?;
    w.commit()
}

/// How long a scan may wait for a file that keeps changing.
pub const UNSTABLE_RETRIES: usize = 3;
/// Pause between attempts at a file that changed while read.
pub const UNSTABLE_PAUSE: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests;
