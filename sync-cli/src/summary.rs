//! What `sluice sync` prints when a run ends: the itemised changes, then a
//! summary laid out like `rsync --stats` (what is there, what changed,
//! what travelled and how, how long it took), or the report as JSON.

use std::io::Write;

use sync_core::history::RunId;
use sync_core::session::{self, SyncReport};

use crate::args::SyncArgs;
use crate::exit::Code;
use crate::output;

/// How a finished run is printed.
pub struct Printed {
    pub dry_run: bool,
    pub quiet: bool,
    pub code: Code,
    pub id: Option<RunId>,
}

pub fn print_report(r: &SyncReport, a: &SyncArgs, how: Printed) -> anyhow::Result<()> {
    let Printed {
        dry_run,
        quiet,
        code,
        id,
    } = how;
    for w in &r.warnings {
        let w = w.strip_prefix(session::PARTIAL_MARK).unwrap_or(w);
        eprintln!("sluice: warning: {w}");
    }
    for e in &r.errors {
        eprintln!("sluice: error: {}: {}", e.path, e.message);
    }
    if r.max_delete_hit {
        eprintln!(
            "sluice: error: {} deletions exceed --max-delete {}; nothing was deleted",
            r.changes
                .iter()
                .filter(|c| c.line.starts_with("- "))
                .count(),
            a.max_delete.unwrap_or(0)
        );
    }
    // The chunks' mean rate over the whole run (scans included).
    let rate_bps = if r.duration_s > 0.0 {
        (r.chunk_bytes_sent as f64 * 8.0 / r.duration_s).round() as u64
    } else {
        0
    };
    if a.json {
        let mut v = serde_json::to_value(r)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("rate_bps".into(), rate_bps.into());
            o.insert("exit_code".into(), (code as i32).into());
            o.insert("history_id".into(), id.map(|i| i.0).into());
        }
        output::print_json(&v)?;
        return Ok(());
    }
    if quiet {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    if dry_run || a.itemize_changes {
        for c in &r.changes {
            writeln!(out, "{}", c.line)?;
        }
    }
    // Laid out like `rsync --stats`: what is there, what changed, what
    // travelled, how long it took.
    writeln!(
        out,
        "source: {} files, {}{}",
        r.files_total,
        output::bytes(r.bytes_total),
        match r.vanished {
            0 => String::new(),
            n => format!("; {n} vanished during the run (not synced)"),
        }
    )?;
    writeln!(
        out,
        "changed: {} files created, {} updated, {} deleted; {} folders and {} symlinks created; \
         {} entries' metadata only; {} entries deleted in all",
        r.files_created,
        r.files_updated,
        r.files_deleted,
        r.dirs_created,
        r.symlinks_created,
        r.meta_updated,
        r.entries_deleted,
    )?;
    let verb = if dry_run { "would send" } else { "sent" };
    writeln!(
        out,
        "data: {verb} {} of chunks ({} on the wire); {} reused from the destination",
        output::bytes(r.chunk_bytes_sent),
        output::bytes(r.wire_bytes_sent),
        output::bytes(r.bytes_reused),
    )?;
    if r.chunk_bytes_encoded != r.chunk_bytes_sent {
        writeln!(out, "encoded: {}", encoded_line(r))?;
    }
    let path = match r.data_path.as_str() {
        "none" => "no chunks shipped".to_string(),
        p => format!("chunks over {p}"),
    };
    writeln!(
        out,
        "time: {:.2} s, {} mean, {path}{}",
        r.duration_s,
        output::rate(rate_bps),
        if dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    )?;
    if let Some(line) = link_line(r) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The summary's line on the network path, for a run whose chunks went by
/// UDP: `link: loss 1.2 %, rtt 41 ms`.
fn link_line(r: &SyncReport) -> Option<String> {
    if r.loss_pct.is_none() && r.rtt_ms.is_none() {
        return None;
    }
    let loss = r.loss_pct.map_or("-".into(), |p| format!("{p:.1}"));
    // Loopback and LAN round trips are well under a millisecond.
    let rtt = r.rtt_ms.map_or("-".into(), |ms| match ms < 10.0 {
        true => format!("{ms:.2}"),
        false => format!("{ms:.0}"),
    });
    Some(format!("link: loss {loss} %, rtt {rtt} ms"))
}

/// What compression and deltas made of the chunks, or would make of them
/// in a dry run (estimated from a sample unless it covered them all).
fn encoded_line(r: &SyncReport) -> String {
    let (took, went) = if r.dry_run {
        ("would take", "would go")
    } else {
        ("took", "went")
    };
    let about = if r.dry_run && r.encoded_sample_bytes < r.chunk_bytes_sent {
        "about "
    } else {
        ""
    };
    let deltas = match r.delta_chunks {
        0 => String::new(),
        n => format!(
            "; {about}{n} changed chunks {went} as deltas, saving {}",
            output::bytes(r.delta_bytes_saved)
        ),
    };
    let sample = if about.is_empty() {
        String::new()
    } else {
        format!(
            " (estimated by encoding a sample of {})",
            output::bytes(r.encoded_sample_bytes)
        )
    };
    format!(
        "the chunks {took} {about}{} after compression and deltas{deltas}{sample}",
        output::bytes(r.chunk_bytes_encoded)
    )
}
