//! `sluice index PATH`: build or refresh a tree's index and report on it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sync_core::index::Index;
use sync_core::scan::{self, ScanProgress};

use crate::args::IndexArgs;
use crate::exit::Code;
use crate::output;

pub fn run(a: IndexArgs, quiet: bool) -> anyhow::Result<Code> {
    let root = std::fs::canonicalize(&a.path)
        .with_context(|| format!("cannot open {}", a.path.display()))?;
    if !root.is_dir() {
        eprintln!("sluice: error: {} is not a folder", a.path.display());
        return Ok(Code::Paths);
    }
    let index_path = match &a.index {
        Some(p) => p.clone(),
        None => sync_core::index::location::default_index_path(&root)?,
    };
    let mut index = Index::open(&index_path)?;
    let mut opts = crate::scan_opts::scan_options(&a.scan, &index_path);
    let progress = Arc::new(ScanProgress::default());
    opts.progress = Some(Arc::clone(&progress));
    let bar = (!quiet && !a.json && output::stderr_is_tty()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let done = std::sync::atomic::AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        if let Some(bar) = &bar {
            let (progress, done) = (&progress, &done);
            s.spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    bar.set_message(crate::scan_opts::progress_line(progress));
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        let r = scan::scan(&root, &mut index, &opts);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for w in &report.warnings {
        output::warn(&w.path, &w.message);
    }
    let (entries, chunks, unique, unique_bytes) = index.chunk_stats()?;
    let chunk_bytes = report.file_bytes;
    let dedup = if unique_bytes > 0 {
        chunk_bytes as f64 / unique_bytes as f64
    } else {
        1.0
    };
    if a.json {
        let v = json!({
            "root": root.display().to_string(),
            "index": index_path.display().to_string(),
            "entries": entries,
            "files": report.files,
            "dirs": report.dirs,
            "symlinks": report.symlinks,
            "bytes": report.file_bytes,
            "chunks": chunks,
            "unique_chunks": unique,
            "unique_bytes": unique_bytes,
            "dedup_ratio": dedup,
            "files_read": report.files_read,
            "bytes_read": report.bytes_read,
            "removed": report.removed,
            "warnings": report.warnings,
            "duration_s": report.duration_s,
        });
        crate::output::print_json(&v)?;
    } else if !quiet {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "index:         {}", index_path.display())?;
        writeln!(
            out,
            "entries:       {entries} ({} files, {} folders, {} symlinks)",
            report.files, report.dirs, report.symlinks
        )?;
        writeln!(
            out,
            "bytes:         {} ({})",
            report.file_bytes,
            output::bytes(report.file_bytes)
        )?;
        writeln!(
            out,
            "chunks:        {chunks} ({unique} unique, {})",
            output::bytes(unique_bytes)
        )?;
        writeln!(out, "dedup ratio:   {dedup:.3}")?;
        writeln!(
            out,
            "files read:    {} ({})",
            report.files_read,
            output::bytes(report.bytes_read)
        )?;
        if report.removed > 0 {
            writeln!(out, "removed:       {}", report.removed)?;
        }
        writeln!(out, "time:          {:.3} s", report.duration_s)?;
    }
    Ok(if report.partial() {
        Code::Partial
    } else {
        Code::Ok
    })
}
