//! Turning scan flags into `ScanOptions`, and the scan progress line.

use std::path::Path;
use std::sync::atomic::Ordering;

use sync_core::scan::{Excludes, ScanOptions, ScanProgress};

use crate::args::ScanArgs;
use crate::output;

/// The options for scanning one tree whose index lives at `index_path`.
pub fn scan_options(a: &ScanArgs, index_path: &Path) -> ScanOptions {
    let mut skip = vec![index_path.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = index_path.as_os_str().to_owned();
        p.push(suffix);
        skip.push(p.into());
    }
    ScanOptions {
        excludes: Excludes {
            patterns: a.exclude.clone(),
            from_files: a.exclude_from.clone(),
            gitignore: a.gitignore,
        },
        checksum: a.checksum,
        threads: a.threads,
        skip,
        ..ScanOptions::default()
    }
}

/// "12345 entries, 456 files read (1.2 GiB)".
pub fn progress_line(p: &ScanProgress) -> String {
    format!(
        "scanning: {} entries, {} files read ({})",
        p.entries.load(Ordering::Relaxed),
        p.files_read.load(Ordering::Relaxed),
        output::bytes(p.bytes_read.load(Ordering::Relaxed))
    )
}
