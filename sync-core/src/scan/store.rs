//! The scan's writer stage: the only code of a scan that writes the index.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel as chan;

use super::{Found, ScanReport, ScanWarning, BATCH};
use crate::entry::{Kind, Meta};
use crate::error::Result;
use crate::index::{IdSet, Index, ScanLog, ScanRecords};

/// The writer stage: stores results in batches and drops vanished entries.
pub(super) fn write_results(
    index: &mut Index,
    found: chan::Receiver<Vec<Found>>,
    report: &mut ScanReport,
    recorded: &ScanRecords,
    walk_failed: &AtomicBool,
    (started, started_ns): (Instant, i64),
) -> Result<()> {
    let mut seen = IdSet::for_records(recorded);
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
    for msg in found.iter().flatten() {
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
                    vanished: false,
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
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "scan: walked");
    // Entries not seen have vanished, unless part of the walk failed: then
    // an unreadable folder's old records are kept rather than dropped.
    let keep_unseen = walk_failed.load(Ordering::Relaxed);
    if !keep_unseen {
        for r in recorded.iter() {
            if !seen.contains(r.id) {
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
