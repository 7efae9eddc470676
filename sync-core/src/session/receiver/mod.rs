//! The receiving half of a session: scan the destination, take the
//! source's manifest window by window, plan each window, fetch its chunks,
//! apply, and report. This file holds the session's course ([`run_receiver`]
//! and the window loop); each step lives in a file of its own and never
//! drives the conversation itself:
//!
//! - `head`: what the sender says before its first window, and the
//!   destination's scan meanwhile;
//! - `window`: one window of the source's manifest, and the destination's
//!   entries of the same range;
//! - `lists`: the chunk lists of the files the destination lacks, and the
//!   runs the needed chunks are asked for by;
//! - `transfer`: the rounds of Need → Data that bring a window's chunks;
//! - `apply`: writing a plan and recording it in the destination's index,
//!   on threads that overlap the next window;
//! - `close`: the sender's last word and the report sent back.

mod apply;
mod close;
mod head;
mod lists;
mod transfer;
mod window;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::bulk::Unbundle;
use super::msg::{Msg, Role, TreeCheck};
use super::{estimate, shrink};
use super::{ChangeLine, Opening, Side, SyncReport, Transport, PARTIAL_MARK};
use crate::apply::{ApplyOptions, ApplyReport, Tree};
use crate::entry::Kind;
use crate::error::{Error, Result};
use crate::index::recent::RecentChunks;
use crate::index::Index;
use crate::path::RelPath;
use crate::plan::{PlanOptions, Planner};

use apply::{add_applied, join, start_apply, Finishing, Recording};
use close::{expect_sender_done, send_report};
use head::{receive_head, scan_destination};
use lists::fetch_chunk_lists;
pub(super) use lists::need_runs;
use transfer::{transfer, Link};
use window::{dst_window, receive_window, IndexElsewhere};

/// Runs the receiver half of a session.
pub fn run_receiver(t: &mut dyn Transport, side: &Side, opening: Opening) -> Result<SyncReport> {
    let result = receiver(t, side, opening);
    if let Err(e) = &result {
        if !matches!(e, Error::Peer(_) | Error::Closed(_)) {
            let _ = t.send(&Msg::Error(e.to_string()));
        }
    }
    result
}

fn receiver(t: &mut dyn Transport, side: &Side, opening: Opening) -> Result<SyncReport> {
    let started = Instant::now();
    // One run at a time writes to a destination: the lock is taken before
    // this side says hello (a dry run changes nothing and takes none).
    let negotiated = opening.open_checked(t, Role::Receiver, |opts| {
        if opts.dry_run {
            return Ok(());
        }
        let wait = std::time::Duration::from_secs(opts.wait_lock);
        side.locks.acquire(&super::index_path(side)?, wait)
    })?;
    let opts = negotiated.options.clone();
    super::alive::test_stall("silent");
    let _beats = super::alive::beats(t, &opts);
    super::alive::test_stall("busy");
    // Bulky runs of the sender's messages may come as datagrams.
    let bulk_udp_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut unbundle = Unbundle::new(
        t,
        &opts.data,
        side,
        negotiated.peer_has("udp"),
        Arc::clone(&bulk_udp_failed),
    );
    let t: &mut dyn Transport = &mut unbundle;
    let exists = side.root.is_dir();
    if !exists && !opts.dry_run {
        std::fs::create_dir_all(&side.root).map_err(|e| Error::io(&side.root, e))?;
    }
    // Scan the destination while the source says what its scan found.
    let (dst, head) = std::thread::scope(|s| {
        let scan = s.spawn(|| scan_destination(side, &opts, exists || !opts.dry_run));
        let head = receive_head(t);
        let dst = scan
            .join()
            .unwrap_or_else(|_| Err(Error::Peer("scan thread panicked".into())));
        (dst, head)
    });
    let head = head?;
    let (mut index, dst_scan) = dst?;
    // Into an empty tree, the hash index is made once at the end, and this
    // run's chunks are looked up in memory meanwhile (see index::recent).
    let recent = if !opts.dry_run && !index.has_chunks()? {
        index.drop_hash_index()?;
        Some(Arc::new(RecentChunks::new()))
    } else {
        index.build_hash_index()?;
        None
    };
    if let Some(p) = &side.progress {
        p.entries_total.store(head.info.entries, Ordering::Relaxed);
        p.phase.store(super::PHASE_TRANSFER, Ordering::Relaxed);
    }
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "scanned DST");

    let mut report = SyncReport {
        dry_run: opts.dry_run,
        data_path: "none".into(),
        warnings: head.warnings,
        ..SyncReport::default()
    };
    report.warnings.extend(dst_scan.warnings.iter().map(|w| {
        let mark = if w.io_error { PARTIAL_MARK } else { "" };
        format!("{mark}destination: {}: {}", w.path, w.message)
    }));
    // Chunks a dead run left in journaled temp files are local sources too.
    let extra_sources = match Tree::open(&side.root) {
        Ok(mut tree) if !dst_scan.temp_files.is_empty() => {
            crate::apply::journal::leftover_sources(&mut tree, &dst_scan.temp_files)
        }
        _ => Vec::new(),
    };
    let mut planner = Planner::new(
        PlanOptions {
            delete: opts.delete,
            hard_links: opts.hard_links,
            protect: head.protect,
            extra_sources,
        },
        if opts.itemize {
            usize::MAX
        } else {
            opts.change_list as usize
        },
    );
    let mut link = Link {
        opts: &opts,
        side,
        peer_udp: negotiated.peer_has("udp"),
        udp_failed: false,
        bulk_udp_failed: Arc::clone(&bulk_udp_failed),
        data_path: None,
        fallback_said: false,
        encoded_bytes: 0,
        delta_chunks: 0,
        delta_saved: 0,
    };
    let apply_opts = ApplyOptions {
        max_delete: opts.max_delete,
        no_deletes: head.info.partial,
        writers: None,
    };
    let mut applied = ApplyReport::default();
    let mut estimated = estimate::Estimate::default();
    let mut check = TreeCheck::default();
    let mut range_start: Option<RelPath> = None;
    // Windows are planned through a connection of their own, so a window's
    // files are written and recorded (through `index`) while the next one
    // is received and planned; that one sees the index as last committed.
    let reader = Index::open_reader(index.path())?;
    // A watch round compares only what its scopes cover (few entries).
    let scoped_dst = match &opts.scopes {
        Some(scopes) => Some(reader.reads().scope_entries(scopes)?),
        None => None,
    };
    let index: &mut Index = std::thread::scope(|s| -> Result<&mut Index> {
        // The index is with whichever window is being written.
        let mut idle: Option<&mut Index> = Some(&mut index);
        let mut finishing: Option<Finishing<'_, '_>> = None;
        for window in 1.. {
            let (mut src, last) = receive_window(t, &mut check, &head.info)?;
            if window == 1
                && last
                && opts.scopes.is_none()
                && opts.delete
                && src.entries.len() <= 1
                && !opts.allow_empty_source
                && !reader
                    .reads()
                    .entries(Some(&RelPath::root()), None, 1)?
                    .is_empty()
            {
                return Err(Error::Usage(
                    "the source is empty; refusing to --delete everything at the destination (is a disk unmounted? \
                     pass --allow-empty-source if this is intended)"
                        .into(),
                ));
            }
            // The destination's entries of the same range: after the previous
            // window's last path, up to this one's (or to the end).
            let upto = if last { None } else { check.last().cloned() };
            let mut dst = dst_window(
                &reader,
                scoped_dst.as_deref(),
                range_start.as_ref(),
                upto.as_ref(),
            )?;
            range_start = check.last().cloned();
            let listed = fetch_chunk_lists(t, &mut src, &dst.manifest)?;
            if !listed.is_empty() {
                // Content will be assembled: the destination's chunks are sources.
                let reads = reader.reads();
                for (id, e) in dst.ids.iter().zip(dst.manifest.entries.values_mut()) {
                    if e.meta.kind == Kind::File && e.meta.size > 0 {
                        e.chunks = reads.chunks_of(*id)?;
                    }
                }
            }
            let elsewhere = IndexElsewhere::new(&reader, recent.as_deref());
            let plan = planner.window(&src, &dst.manifest, &elsewhere);
            elsewhere.result()?;
            let bases = if opts.data.delta {
                shrink::base_specs(&plan, &src, &dst.manifest)
            } else {
                Vec::new()
            };
            drop((src, dst));
            tracing::debug!(
                ms = started.elapsed().as_millis() as u64,
                window,
                files = plan.files.len(),
                chunks = plan.stream.len(),
                "planned a window"
            );
            for (path, why) in &plan.conflicts {
                report
                    .warnings
                    .push(format!("{PARTIAL_MARK}{}: {why}", path.display()));
            }
            if let Some(p) = &side.progress {
                p.bytes_total
                    .fetch_add(plan.stats.bytes_to_write, Ordering::Relaxed);
                p.entries_planned
                    .store(check.count() as u64, Ordering::Relaxed);
            }
            if opts.dry_run {
                // What compression and deltas would make of the window's
                // chunks, from a sample (nothing to learn without them).
                let picked = if opts.data.compress.is_some() || !bases.is_empty() {
                    estimate::pick(&plan)
                } else {
                    Vec::new()
                };
                estimated.add(estimate::sample(
                    t, &plan, &listed, &picked, bases, &side.root,
                )?);
            } else {
                // The previous window is written before this one starts.
                if let Some(f) = finishing.take() {
                    let (r, ix) = join(f);
                    idle = Some(ix);
                    add_applied(&mut applied, r?);
                }
                let ix = idle.take().expect("the index is back from the last window");
                let mut warnings = Vec::new();
                let to = Recording {
                    index: ix,
                    recent: recent.clone(),
                };
                let (started, exchanged) = start_apply(
                    s,
                    to,
                    side,
                    apply_opts.clone(),
                    plan,
                    &[],
                    |applier, plan| {
                        transfer(t, applier, plan, &listed, &mut link, &mut warnings, bases)
                    },
                );
                report.warnings.extend(warnings);
                if exchanged {
                    finishing = Some(started);
                } else {
                    // The window's error ends the session now.
                    let (r, ix) = join(started);
                    idle = Some(ix);
                    add_applied(&mut applied, r?);
                }
            }
            if last {
                break;
            }
        }
        if let Some(f) = finishing.take() {
            let (r, ix) = join(f);
            idle = Some(ix);
            add_applied(&mut applied, r?);
        }
        Ok(idle.expect("the index is back from the last window"))
    })?;
    drop(reader);
    let last_plan = planner.finish();
    let has_deletes = !last_plan.deletes.is_empty();
    let delete_lines: Vec<ChangeLine> = last_plan.changes.iter().map(ChangeLine::from).collect();
    if !opts.dry_run {
        if let Some(p) = &side.progress {
            p.phase.store(super::PHASE_FINISH, Ordering::Relaxed);
        }
        // Deletions and folder times, and the leftover temp files go.
        let (r, _) = std::thread::scope(|s| {
            let to = Recording {
                index: &mut *index,
                recent: recent.clone(),
            };
            let (finishing, _) = start_apply(
                s,
                to,
                side,
                apply_opts.clone(),
                last_plan,
                &dst_scan.temp_files,
                |_, _| Ok(()),
            );
            join(finishing)
        });
        add_applied(&mut applied, r?);
        if recent.is_some() {
            index.build_hash_index()?;
        }
    }
    let done = expect_sender_done(t, check.count())?;
    report.wire_bytes_sent = done.wire_bytes_sent;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "applied");

    let s = &planner.stats;
    report.files_total = s.files_total;
    report.bytes_total = s.bytes_total;
    report.files_created = s.files_created;
    report.files_updated = s.files_updated;
    report.files_deleted = s.files_deleted;
    report.entries_deleted = s.entries_deleted;
    report.dirs_created = s.dirs_created;
    report.symlinks_created = s.symlinks_created;
    report.meta_updated = s.meta_updated;
    report.chunk_bytes_sent = s.chunk_bytes_to_send;
    report.bytes_reused = s.bytes_reused;
    report.changes = if opts.itemize {
        planner
            .take_changes()
            .iter()
            .map(ChangeLine::from)
            .collect()
    } else if opts.max_delete.is_some() {
        delete_lines
    } else if opts.change_list > 0 {
        planner
            .take_changes()
            .iter()
            .map(ChangeLine::from)
            .collect()
    } else {
        Vec::new()
    };
    if head.info.partial && has_deletes {
        report.deletes_skipped = true;
        report
            .warnings
            .push("I/O errors while scanning the source: deletions disabled for this run".into());
    }
    if !opts.dry_run {
        report.entries_deleted = applied.entries_deleted;
        if applied.max_delete_hit || applied.deletes_skipped {
            report.files_deleted = 0;
            report.entries_deleted = 0;
        }
        report.chunk_bytes_sent = applied.chunk_bytes_received;
        report.chunk_bytes_encoded = link.encoded_bytes;
        report.delta_chunks = link.delta_chunks;
        report.delta_bytes_saved = link.delta_saved;
        report.max_delete_hit = applied.max_delete_hit;
        report.deletes_skipped |= applied.deletes_skipped;
        report.errors = applied.errors;
    } else {
        report.chunk_bytes_encoded = estimated.encoded;
        report.delta_chunks = estimated.deltas;
        report.delta_bytes_saved = estimated.delta_saved;
        report.encoded_sample_bytes = estimated.sampled;
    }
    done.settle(&mut report);
    report.data_path = link.data_path.unwrap_or("none").to_string();
    report.duration_s = started.elapsed().as_secs_f64();
    send_report(t, &report)?;
    Ok(report)
}
