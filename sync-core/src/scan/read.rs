//! Reader threads: capture one file's content as chunks, consistently.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;

use crossbeam_channel as chan;

use super::{Found, Job, ScanProgress, ScanWarning, UNSTABLE_PAUSE, UNSTABLE_RETRIES};
use crate::chunk::stream::chunk_stream;
use crate::chunk::Chunker;
use crate::entry::{now_ns, Entry, Kind, Meta};

/// Runs until the job channel closes; jobs come and results go in
/// batches, so threads wake each other once per batch, not once per file.
pub(super) fn reader(
    chunker: &Chunker,
    jobs: chan::Receiver<Vec<Job>>,
    found: chan::Sender<Vec<Found>>,
    progress: Option<&ScanProgress>,
) {
    let mut buf = Vec::new();
    for batch in jobs.iter() {
        let results = batch
            .into_iter()
            .map(|job| capture(chunker, job, &mut buf, progress))
            .collect();
        if found.send(results).is_err() {
            return;
        }
    }
}

/// Opens the job's file from its folder's descriptor (no path to resolve
/// again, so no symlink swapped into it is followed), never through a
/// symlink put in its own place, and without touching its access time
/// where the kernel lets us.
fn open_job(job: &Job) -> std::io::Result<File> {
    job.dir.open_read_noatime(job.name.as_bytes())
}

/// The job's file's metadata now, without following a symlink.
fn stat_job(job: &Job) -> std::io::Result<Option<Meta>> {
    let st = job.dir.stat(job.name.as_bytes())?;
    Ok(Meta::from_stat(&st))
}

fn capture(
    chunker: &Chunker,
    job: Job,
    buf: &mut Vec<u8>,
    progress: Option<&ScanProgress>,
) -> Found {
    let warn = |message: String, io_error: bool| {
        Found::Warn(ScanWarning {
            path: job.path.display(),
            message,
            io_error,
            vanished: false,
        })
    };
    let vanished = || {
        Found::Warn(ScanWarning {
            path: job.path.display(),
            message: "vanished while being read".into(),
            io_error: false,
            vanished: true,
        })
    };
    let mut expect = job.meta;
    for attempt in 0..=UNSTABLE_RETRIES {
        if attempt > 0 {
            std::thread::sleep(UNSTABLE_PAUSE);
            match stat_job(&job) {
                Ok(Some(m)) if m.kind == Kind::File => expect = m,
                Ok(_) => return warn("changed type while being read; skipped".into(), true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return vanished(),
                Err(e) => return warn(e.to_string(), true),
            }
        }
        let checked_ns = now_ns();
        let file = match open_job(&job) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return vanished(),
            Err(e) => return warn(e.to_string(), true),
        };
        let before = match file.metadata().map(|m| Meta::from_std(&m)) {
            Ok(Some(m)) => m,
            Ok(None) => return warn("not a regular file any more; skipped".into(), true),
            Err(e) => return warn(e.to_string(), true),
        };
        if before.kind != Kind::File || !before.same_stat(&expect) {
            continue;
        }
        let digest = match chunk_stream(chunker, &file, buf, |_, _| {}) {
            Ok(d) => d,
            Err(e) => return warn(format!("read failed: {e}"), true),
        };
        let after = match file.metadata().map(|m| Meta::from_std(&m)) {
            Ok(Some(m)) => m,
            _ => continue,
        };
        if !after.same_stat(&before) || digest.size != before.size {
            continue;
        }
        if let Some(p) = progress {
            p.files_read.fetch_add(1, Ordering::Relaxed);
            p.bytes_read.fetch_add(digest.size, Ordering::Relaxed);
        }
        return Found::Put {
            entry: Entry {
                path: job.path,
                meta: after,
                target: None,
                hash: Some(digest.hash),
                chunks: digest.chunks,
                checked_ns,
            },
            replaces: job.replaces,
            was_read: true,
        };
    }
    Found::Keep {
        id: job.replaces,
        path: job.path,
    }
}
