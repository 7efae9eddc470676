//! The receiving half: scan the destination, plan, apply, report.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;

use crossbeam_channel as chan;
use std::sync::Arc;
use std::time::Instant;

use super::bulk::Unbundle;
use super::msg::{
    batches, check_chunks, check_entry, size, spans, Msg, Need, NeedRun, Role, SourceInfo,
    TreeCheck, MAX_CHUNKS, MAX_WINDOW,
};
use super::{estimate, shrink, udp};
use super::{
    index_skips, open_index, ChangeLine, LinkFigures, Opening, SessionOptions, Side, SyncReport,
    Transport, PARTIAL_MARK,
};
use crate::apply::{Applier, ApplyOptions, ApplyReport, IndexUpdate, Tree};
use crate::chunk::{ChunkParams, Hash};
use crate::entry::Kind;
use crate::error::{Error, ProtocolError, Result};
use crate::index::recent::{self, RecentChunks};
use crate::index::Index;
use crate::manifest::Manifest;
use crate::path::RelPath;
use crate::plan::{self, Plan, PlanOptions, Planner};
use crate::scan::ScanReport;

/// Rounds of re-requests for chunks that failed local verification.
const MAX_ROUNDS: u32 = 3;

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

/// What the sender said before its first window.
struct Head {
    info: SourceInfo,
    protect: Vec<RelPath>,
    warnings: Vec<String>,
}

/// The sender's paths to protect and its scan warnings, then [`Msg::Source`].
fn receive_head(t: &mut dyn Transport) -> Result<Head> {
    let mut protect = Vec::new();
    let mut warnings = Vec::new();
    loop {
        match t.recv()? {
            Msg::Protect(paths) => protect.extend(
                paths
                    .into_iter()
                    .filter_map(|p| RelPath::new(p.into_vec()).ok()),
            ),
            Msg::Warnings(w) => warnings.extend(w),
            Msg::Source(info) => {
                info.params.validate().map_err(|e| {
                    ProtocolError::invalid("Source: chunk parameters", e.to_string())
                })?;
                return Ok(Head {
                    info,
                    protect,
                    warnings,
                });
            }
            Msg::Error(e) => return Err(Error::Peer(e)),
            other => return Err(ProtocolError::unexpected("Source", other.name()).into()),
        }
    }
}

/// Sends the report, its lists first in messages of bounded size.
fn send_report(t: &mut dyn Transport, report: &SyncReport) -> Result<()> {
    let mut theirs = report.clone();
    for part in batches(std::mem::take(&mut theirs.changes), size::change) {
        t.send(&Msg::ReportLines {
            changes: part,
            warnings: Vec::new(),
            errors: Vec::new(),
        })?;
    }
    for part in batches(std::mem::take(&mut theirs.warnings), |w| {
        size::bytes(w.as_bytes())
    }) {
        t.send(&Msg::ReportLines {
            changes: Vec::new(),
            warnings: part,
            errors: Vec::new(),
        })?;
    }
    for part in batches(std::mem::take(&mut theirs.errors), size::error) {
        t.send(&Msg::ReportLines {
            changes: Vec::new(),
            warnings: Vec::new(),
            errors: part,
        })?;
    }
    t.send(&Msg::Report(Box::new(theirs)))
}

fn add_applied(total: &mut ApplyReport, r: ApplyReport) {
    total.files_written += r.files_written;
    total.bytes_written += r.bytes_written;
    total.entries_deleted += r.entries_deleted;
    total.chunks_reused += r.chunks_reused;
    total.chunk_bytes_received += r.chunk_bytes_received;
    total.chunks_refetched += r.chunks_refetched;
    total.max_delete_hit |= r.max_delete_hit;
    total.deletes_skipped |= r.deletes_skipped;
    total.errors.extend(r.errors);
}

/// A window whose files are still being written and recorded, on a thread
/// that hands the index back when done.
type Finishing<'s, 'i> = std::thread::ScopedJoinHandle<'s, (Result<ApplyReport>, &'i mut Index)>;

fn join<'i>(f: Finishing<'_, 'i>) -> (Result<ApplyReport>, &'i mut Index) {
    f.join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Starts applying one plan (a window's, or the last one's: deletions,
/// folder times, `leftovers` removed): `exchange` (the transfer rounds) runs
/// here, then the writers' last files, links and metadata, and the
/// window's index records, on a thread of their own. The flag says whether
/// the exchange went through (if not, the thread only cleans up and
/// returns the error).
/// Where a plan's writes are recorded: the destination's index, and
/// (while it goes without its hash index) this run's chunks.
struct Recording<'i> {
    index: &'i mut Index,
    recent: Option<Arc<RecentChunks>>,
}

fn start_apply<'s, 'i: 's>(
    s: &'s std::thread::Scope<'s, '_>,
    to: Recording<'i>,
    side: &Side,
    apply_opts: ApplyOptions,
    plan: Plan,
    leftovers: &[RelPath],
    exchange: impl FnOnce(&mut Applier, &Plan) -> Result<()>,
) -> (Finishing<'s, 'i>, bool) {
    let Recording { index, recent } = to;
    let tree = match Tree::open(&side.root) {
        Ok(tree) => tree,
        Err(e) => {
            let e = Error::io(&side.root, e);
            return (s.spawn(move || (Err(e), index)), false);
        }
    };
    let plan = Arc::new(plan);
    let mut applier = Applier::new(tree, Arc::clone(&plan), apply_opts);
    if let Some(p) = &side.progress {
        applier.count_into(Arc::clone(&p.bytes_done));
        applier.show_current(Arc::clone(&p.current));
    }
    let (records, updates) = chan::unbounded::<IndexUpdate>();
    let indexer = s.spawn(move || {
        let r = record_updates(&mut *index, updates, recent.as_deref());
        (r, index)
    });
    applier.record_into(records.clone());
    let outcome = applier
        .start(leftovers)
        .and_then(|()| exchange(&mut applier, &plan));
    let exchanged = outcome.is_ok();
    let finishing = s.spawn(move || {
        let applied = match outcome {
            Ok(()) => applier.finish().map(|(applied, update)| {
                let _ = records.send(update);
                applied
            }),
            Err(e) => {
                let _ = records.send(applier.abort(!e.is_disk_full()));
                Err(e)
            }
        };
        drop(records);
        let (indexed, index) = indexer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (applied.and_then(|a| indexed.map(|()| a)), index)
    });
    (finishing, exchanged)
}

/// What the sender's last word said ([`Msg::Vanished`]…, [`Msg::SenderDone`]).
struct SenderDone {
    wire_bytes_sent: u64,
    /// Source entries that vanished during the run, in all.
    vanished: u64,
    /// Files the sender found gone when it came to read their chunks.
    gone: BTreeSet<String>,
    link: Option<LinkFigures>,
}

impl SenderDone {
    /// Puts the sender's figures in the report. A file gone from the source
    /// is no error (rsync's exit 24, not 23): its error, from the chunks
    /// the sender could not supply, becomes a warning.
    fn settle(self, report: &mut SyncReport) {
        report.vanished = self.vanished;
        report.loss_pct = self.link.and_then(|l| l.loss_pct());
        report.rtt_ms = self.link.and_then(|l| l.rtt_ms());
        report.errors.retain(|e| !self.gone.contains(&e.path));
        report.warnings.extend(
            self.gone
                .into_iter()
                .map(|p| format!("{p}: vanished from the source during the transfer; not synced")),
        );
    }
}

/// Reads the sender's last word; `entries`, the manifest's length, bounds
/// the files it may say were gone.
fn expect_sender_done(t: &mut dyn Transport, entries: usize) -> Result<SenderDone> {
    let mut gone = BTreeSet::new();
    loop {
        match t.recv()? {
            Msg::Vanished(paths) => {
                gone.extend(paths);
                if gone.len() > entries {
                    return Err(
                        ProtocolError::over_limit("Vanished: files", gone.len(), entries).into(),
                    );
                }
            }
            Msg::SenderDone {
                wire_bytes_sent,
                vanished,
                link,
            } => {
                return Ok(SenderDone {
                    wire_bytes_sent,
                    vanished,
                    gone,
                    link,
                })
            }
            Msg::Error(e) => return Err(Error::Peer(e)),
            other => return Err(ProtocolError::unexpected("SenderDone", other.name()).into()),
        }
    }
}

fn scan_destination(
    side: &Side,
    opts: &SessionOptions,
    exists: bool,
) -> Result<(Index, ScanReport)> {
    let (mut index, index_path) = open_index(side)?;
    if !exists {
        // Dry run into a folder that does not exist yet: it is empty.
        return Ok((index, ScanReport::default()));
    }
    let mut scan_opts = opts.scan_options(side);
    scan_opts.skip = index_skips(&index_path);
    let report = match &opts.scopes {
        Some(scopes) => crate::scan::scan_scopes(&side.root, &mut index, &scan_opts, scopes)?,
        None => crate::scan::scan(&side.root, &mut index, &scan_opts)?,
    };
    Ok((index, report))
}

/// Receives and checks one window of the source manifest (entries without
/// chunk lists, in path order, each path once, continuing the previous
/// windows); returns it and whether it is the last.
fn receive_window(
    t: &mut dyn Transport,
    check: &mut TreeCheck,
    info: &SourceInfo,
) -> Result<(Manifest, bool)> {
    let mut entries: Vec<crate::entry::Entry> = Vec::new();
    let last = loop {
        match t.recv()? {
            Msg::Entries(batch) => {
                if entries.len() + batch.len() > MAX_WINDOW as usize {
                    return Err(ProtocolError::over_limit(
                        "entries of a window",
                        entries.len() + batch.len(),
                        MAX_WINDOW,
                    )
                    .into());
                }
                for mut w in batch {
                    if !w.chunks.is_empty() {
                        return Err(ProtocolError::invalid(
                            "Entries",
                            "a chunk list in the manifest (they come on request)",
                        )
                        .into());
                    }
                    // Tiling is checked once the list arrives.
                    let size = std::mem::take(&mut w.meta.size);
                    let mut e = check_entry(w, &ChunkParams::default())?;
                    e.meta.size = size;
                    check.push(&e)?;
                    entries.push(e);
                }
            }
            Msg::WindowEnd { last } => break last,
            Msg::Error(e) => return Err(Error::Peer(e)),
            other => return Err(ProtocolError::unexpected("the manifest", other.name()).into()),
        }
    };
    if check.count() == 0 {
        return Err(super::msg::no_root().into());
    }
    // Already in order: collecting builds the map in one pass.
    let m = Manifest {
        entries: entries.into_iter().map(|e| (e.path.clone(), e)).collect(),
        params: info.params,
    };
    Ok((m, last))
}

/// The destination's entries of one window's range, with their row ids in
/// the same order.
struct DstWindow {
    manifest: Manifest,
    ids: Vec<i64>,
}

/// Read from `index`, or for a scoped session from `scoped` (the entries
/// its scopes cover, in path order).
fn dst_window(
    index: &Index,
    scoped: Option<&[(i64, crate::entry::Entry)]>,
    after: Option<&RelPath>,
    upto: Option<&RelPath>,
) -> Result<DstWindow> {
    let rows = match scoped {
        // A scoped session's range: part of what its scopes cover.
        Some(all) => {
            let from = after.map_or(0, |a| {
                all.partition_point(|(_, e)| e.path.as_bytes() <= a.as_bytes())
            });
            let to = upto.map_or(all.len(), |u| {
                all.partition_point(|(_, e)| e.path.as_bytes() <= u.as_bytes())
            });
            all[from..to.max(from)].to_vec()
        }
        None => index.reads().entries(after, upto, usize::MAX)?,
    };
    let mut ids = Vec::with_capacity(rows.len());
    let entries = rows
        .into_iter()
        .map(|(id, e)| {
            ids.push(id);
            (e.path.clone(), e)
        })
        .collect();
    Ok(DstWindow {
        manifest: Manifest {
            entries,
            params: index.chunk_params()?.unwrap_or_default(),
        },
        ids,
    })
}

/// The destination outside the window, as its index has it now (earlier
/// windows' writes included). Index errors are kept for
/// [`IndexElsewhere::result`]: the planner's questions have no error path.
struct IndexElsewhere<'a> {
    index: &'a Index,
    /// Where chunks are looked up while the index has no hash index.
    recent: Option<&'a RecentChunks>,
    error: std::cell::RefCell<Option<Error>>,
}

impl<'a> IndexElsewhere<'a> {
    fn new(index: &'a Index, recent: Option<&'a RecentChunks>) -> Self {
        IndexElsewhere {
            index,
            recent,
            error: std::cell::RefCell::new(None),
        }
    }

    fn keep<T>(&self, r: Result<T>, or: T) -> T {
        r.unwrap_or_else(|e| {
            self.error.borrow_mut().get_or_insert(e);
            or
        })
    }

    fn result(self) -> Result<()> {
        match self.error.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl plan::Elsewhere for IndexElsewhere<'_> {
    fn chunk(&self, hash: &Hash, length: u32) -> Option<crate::manifest::ChunkLocation> {
        let found = match self.recent {
            Some(recent) => recent.find(&self.index.reads(), hash, length, 1),
            None => self.index.reads().find_chunk(hash, length, 1),
        };
        self.keep(found, Vec::new()).into_iter().next()
    }

    fn entry(&self, path: &RelPath) -> Option<crate::entry::Entry> {
        let found = self.index.reads().entry(path);
        self.keep(found, None)
    }

    fn has_children(&self, path: &RelPath) -> bool {
        let found = self.index.reads().has_children(path);
        self.keep(found, false)
    }
}

/// Asks for the chunk lists of the window's source files whose content the
/// destination does not already hold at the same path, and checks that
/// each list tiles its file. Files are named by their position in the
/// window. Returns, for each chunk listed, its first position in the lists
/// as the sender sent them (empty when none was asked for).
fn fetch_chunk_lists(
    t: &mut dyn Transport,
    src: &mut Manifest,
    dst: &Manifest,
) -> Result<HashMap<Hash, u32>> {
    let mut wanted: Vec<u32> = crate::manifest::pair_up(src, dst)
        .into_iter()
        .filter(|p| p.content_missing() && p.src.is_some_and(|s| s.meta.size > 0))
        .map(|p| p.src_pos as u32)
        .collect();
    wanted.sort_unstable();
    for part in batches(spans(wanted.iter().copied()), |_| size::span()) {
        t.send(&Msg::WantChunks(part))?;
    }
    t.send(&Msg::WantDone)?;
    let mut total = 0usize;
    // A long list may come in several messages, in order.
    let mut lists: Vec<(u32, Vec<crate::chunk::ChunkRef>)> = Vec::new();
    loop {
        match t.recv()? {
            Msg::FileChunks { index, chunks } => {
                total += chunks.len();
                if total > MAX_CHUNKS {
                    return Err(ProtocolError::over_limit(
                        "chunks in the lists",
                        total,
                        MAX_CHUNKS,
                    )
                    .into());
                }
                if wanted.binary_search(&index).is_err() {
                    return Err(ProtocolError::unknown("chunk list", index, "requested").into());
                }
                lists.push((index, chunks));
            }
            Msg::ChunksDone => break,
            Msg::Error(e) => return Err(Error::Peer(e)),
            other => return Err(ProtocolError::unexpected("FileChunks", other.name()).into()),
        }
    }
    lists.sort_by_key(|(i, _)| *i);
    let mut lists = lists.into_iter().peekable();
    let mut asked = wanted.iter().peekable();
    for (i, e) in src.entries.values_mut().enumerate() {
        let i = i as u32;
        while let Some((_, chunks)) = lists.next_if(|(at, _)| *at == i) {
            e.chunks.extend(chunks);
        }
        if asked.next_if(|&&at| at == i).is_some() {
            check_chunks(&e.path, e.meta.size, &e.chunks, &src.params)?;
        }
    }
    // The sender counts listed chunks in the order it sent the lists: the
    // order asked for, ascending.
    let mut listed = HashMap::new();
    let mut ordinal = 0u32;
    let mut asked = wanted.iter().peekable();
    for (i, e) in src.entries.values().enumerate() {
        if asked.next_if(|&&at| at == i as u32).is_some() {
            for c in &e.chunks {
                listed.entry(c.hash).or_insert(ordinal);
                ordinal += 1;
            }
        }
    }
    Ok(listed)
}

/// `needs` as runs of the sender's listed chunks.
pub(super) fn need_runs(needs: &[Need], listed: &HashMap<Hash, u32>) -> Result<Vec<NeedRun>> {
    let mut runs: Vec<NeedRun> = Vec::new();
    for n in needs {
        let ordinal = *listed
            .get(&n.hash)
            .ok_or_else(|| Error::Usage("a needed chunk is in no list the sender sent".into()))?;
        match runs.last_mut() {
            Some(r) if r.idx + r.count == n.idx && r.ordinal + r.count == ordinal => r.count += 1,
            _ => runs.push(NeedRun {
                idx: n.idx,
                ordinal,
                count: 1,
            }),
        }
    }
    Ok(runs)
}

/// How chunks travel, settled over the windows of a session.
struct Link<'a> {
    opts: &'a SessionOptions,
    side: &'a Side,
    peer_udp: bool,
    /// No datagram got through once: the rest goes on the control connection.
    udp_failed: bool,
    /// Set when a bulk run of the sender's messages found UDP blocked.
    bulk_udp_failed: Arc<std::sync::atomic::AtomicBool>,
    data_path: Option<&'static str>,
    fallback_said: bool,
    /// Chunk bytes as they travelled (compressed, or as deltas); chunks
    /// that came as deltas and the bytes that saved.
    encoded_bytes: u64,
    delta_chunks: u64,
    delta_saved: u64,
}

/// One window's rounds of Need → Data until everything arrived or nothing
/// more can; ends with the empty round that closes the window.
fn transfer(
    t: &mut dyn Transport,
    applier: &mut Applier,
    plan: &Plan,
    listed: &HashMap<Hash, u32>,
    link: &mut Link,
    warnings: &mut Vec<String>,
    bases: Vec<shrink::BaseSpec>,
) -> Result<()> {
    let mut bases = Some(bases);
    let mut shrunk = shrink::Bases::default();
    // Chunks whose delta did not check out: asked for again, whole.
    let mut again: Vec<u32> = Vec::new();
    let mut needs: Vec<Need> = plan
        .stream
        .iter()
        .enumerate()
        .map(|(i, c)| Need::new(i as u32, c))
        .collect();
    let local_pieces = plan.files.iter().any(|f| {
        f.pieces
            .iter()
            .any(|p| !matches!(p, crate::plan::Piece::Remote { .. }))
    });
    let mut round = 1;
    let fallback = format!(
        "no UDP datagram got through for {} s (blocked by a firewall?); \
         the data went over the control connection instead",
        udp::AUTO_FALLBACK.as_secs()
    );
    // A bulk run that found UDP blocked spares the data phase the wait.
    link.udp_failed |= link.bulk_udp_failed.load(Ordering::Relaxed);
    if link.udp_failed && !link.fallback_said {
        link.fallback_said = true;
        warnings.push(fallback.clone());
    }
    while !needs.is_empty() && round <= MAX_ROUNDS {
        let (opts, side) = (link.opts, link.side);
        let use_udp =
            !link.udp_failed && link.peer_udp && udp::wanted(&opts.data, side, t.split().is_some());
        if let Some(specs) = bases.take() {
            shrunk = shrink::Bases::send(t, specs, &side.root)?;
        }
        for part in batches(need_runs(&needs, listed)?, |_| size::need_run()) {
            t.send(&Msg::Need(part))?;
        }
        let prepared = if use_udp {
            Some(udp::prepare(&opts.data, side)?)
        } else {
            None
        };
        t.send(&Msg::NeedDone {
            round,
            count: needs.len() as u32,
            udp: prepared.as_ref().map(|p| p.offer().clone()),
        })?;
        if let Some(prepared) = prepared {
            let wire = if shrink::sized(&opts.data) {
                // Deltas first (on this connection), then every size.
                let mut sizes = Vec::with_capacity(needs.len());
                while sizes.len() < needs.len() {
                    let Some(msg) = take_delta(t.recv()?, &mut shrunk, applier, plan, &mut again)?
                    else {
                        continue;
                    };
                    match msg {
                        Msg::Sizes(part) => sizes.extend(part),
                        Msg::Error(e) => return Err(Error::Peer(e)),
                        other => {
                            return Err(ProtocolError::unexpected("Sizes", other.name()).into())
                        }
                    }
                }
                shrink::wire_needs(&needs, &sizes)?
            } else {
                needs.clone()
            };
            let phase_started = Instant::now();
            // Every chunk came as a delta: no phase (the sender agrees).
            if wire.is_empty() {
                link.data_path.get_or_insert("control connection");
            } else if udp::receive(
                t,
                prepared,
                (&needs, &wire),
                &opts.data,
                side,
                applier.feed(),
            )? {
                link.data_path.get_or_insert("udp");
                link.encoded_bytes += wire.iter().map(|n| u64::from(n.length)).sum::<u64>();
            } else {
                // Ask for the same chunks again, on the control connection
                // (not those that came as deltas).
                let streamed: HashSet<u32> = wire.iter().map(|n| n.idx).collect();
                needs.retain(|n| streamed.contains(&n.idx));
                needs.extend(
                    again
                        .drain(..)
                        .map(|idx| Need::new(idx, &plan.stream[idx as usize])),
                );
                link.udp_failed = true;
                if !link.fallback_said {
                    link.fallback_said = true;
                    // Over before the wait: the sender gave up on UDP.
                    warnings.push(if phase_started.elapsed() < udp::AUTO_FALLBACK {
                        "the sender could not send over UDP (its log says why); \
                         the data went over the control connection instead"
                            .to_string()
                    } else {
                        fallback.clone()
                    });
                }
                round += 1;
                continue;
            }
        } else {
            link.data_path.get_or_insert("control connection");
            loop {
                let Some(msg) = take_delta(t.recv()?, &mut shrunk, applier, plan, &mut again)?
                else {
                    continue;
                };
                match msg {
                    Msg::Data { idx, bytes } => {
                        shrunk.encoded_bytes += bytes.len() as u64;
                        applier.receive_chunk(idx, bytes)?
                    }
                    Msg::Streamed { idx, bytes } => {
                        let bytes = shrunk.unstream(&bytes, expected(plan, idx)?)?;
                        applier.receive_chunk(idx, bytes)?
                    }
                    Msg::Unavailable { idx } => applier.chunk_unavailable(idx)?,
                    Msg::RoundDone { round: r } if r == round => break,
                    Msg::Error(e) => return Err(Error::Peer(e)),
                    other => return Err(ProtocolError::unexpected("Data", other.name()).into()),
                }
            }
        }
        // Only a local copy that fails its check is asked for again; with
        // none in the plan, the window closes without waiting for its
        // writes, which go on while the next window is planned.
        needs = if local_pieces {
            applier
                .take_refetch()?
                .into_iter()
                .map(|(idx, c)| Need::new(idx, &c))
                .collect()
        } else {
            Vec::new()
        };
        for idx in again.drain(..) {
            needs.push(Need::new(idx, expected(plan, idx)?));
        }
        round += 1;
    }
    link.encoded_bytes += shrunk.encoded_bytes;
    link.delta_chunks += shrunk.deltas;
    link.delta_saved += shrunk.delta_saved;
    t.send(&Msg::NeedDone {
        round,
        count: 0,
        udp: None,
    })
}

/// The length and hash of shipped chunk `idx`.
fn expected(plan: &Plan, idx: u32) -> Result<&crate::plan::StreamChunk> {
    shrink::expected(&plan.stream, idx)
}

/// Hands a delta message's chunk to the writers (or notes it to be asked
/// for again, whole); any other message comes back.
fn take_delta(
    msg: Msg,
    shrunk: &mut shrink::Bases,
    applier: &mut Applier,
    plan: &Plan,
    again: &mut Vec<u32>,
) -> Result<Option<Msg>> {
    if !matches!(msg, Msg::Delta { .. } | Msg::StreamedDelta { .. }) {
        return Ok(Some(msg));
    }
    match shrunk.take_delta(msg, &plan.stream)? {
        shrink::Taken::Rebuilt(idx, bytes) => applier.feed().chunk(idx, bytes, true)?,
        shrink::Taken::Again(idx) => again.push(idx),
    }
    Ok(None)
}

/// Records what the apply step wrote in the destination's index, batch by
/// batch as they come, in one transaction; and, once committed, in
/// `recent` if the index goes without its hash index.
fn record_updates(
    index: &mut Index,
    updates: chan::Receiver<IndexUpdate>,
    recent: Option<&RecentChunks>,
) -> Result<()> {
    let w = index.writer()?;
    let mut rows = Vec::new();
    for u in updates {
        for e in &u.put {
            let id = w.put_path(e)?;
            if recent.is_some() {
                recent::rows_of(id, &e.chunks, &mut rows);
            }
        }
        for (path, meta, checked) in &u.meta {
            w.update_meta(path, meta, *checked)?;
        }
        for p in &u.delete {
            w.delete_path(p)?;
        }
    }
    w.commit()?;
    if let Some(recent) = recent {
        recent.add(rows);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Kind, Meta};
    use crate::session::msg::WireEntry;
    use crate::session::transport::MemoryTransport;

    fn dir(path: &[u8]) -> WireEntry {
        WireEntry {
            path: path.to_vec(),
            meta: Meta {
                kind: Kind::Dir,
                size: 0,
                mtime_ns: 0,
                mode: 0o755,
                ino: 0,
                dev: 0,
                ctime_ns: 0,
                nlink: 1,
            },
            target: Vec::new(),
            hash: None,
            chunks: Vec::new(),
        }
    }

    /// Needs become runs where both their stream indexes and their list
    /// positions follow on; a chunk listed twice is named by its first
    /// position; a chunk in no list is an error, not a guess.
    #[test]
    fn needs_pack_into_runs_of_listed_positions() {
        let h = |i: u8| Hash([i; 32]);
        let need = |idx: u32, i: u8| Need {
            idx,
            hash: h(i),
            length: 100,
        };
        // Lists as sent: 1 2 3 1 4 5.
        let mut listed = HashMap::new();
        for (ordinal, i) in [1u8, 2, 3, 1, 4, 5].into_iter().enumerate() {
            listed.entry(h(i)).or_insert(ordinal as u32);
        }
        let needs = [
            need(0, 1),
            need(1, 2),
            need(2, 3),
            need(3, 4),
            need(4, 5),
            need(7, 2),
        ];
        let runs = need_runs(&needs, &listed).unwrap();
        let run = |idx, ordinal, count| NeedRun {
            idx,
            ordinal,
            count,
        };
        assert_eq!(runs, vec![run(0, 0, 3), run(3, 4, 2), run(7, 1, 1)]);
        assert!(need_runs(&[need(0, 9)], &listed).is_err());
        assert_eq!(spans([1, 2, 3, 5, 7, 8]).len(), 3);
        assert_eq!(
            spans([4u32]).first().map(|s| (s.start, s.count)),
            Some((4, 1))
        );
    }

    fn receive(entries: Vec<WireEntry>) -> Result<(Manifest, bool)> {
        let (mut tx, mut rx) = MemoryTransport::pair(8);
        tx.send(&Msg::Entries(entries)).unwrap();
        tx.send(&Msg::WindowEnd { last: true }).unwrap();
        let info = SourceInfo {
            params: ChunkParams::default(),
            partial: false,
            entries: 0,
        };
        receive_window(&mut rx, &mut TreeCheck::default(), &info)
    }

    #[test]
    fn a_manifest_out_of_path_order_or_with_a_path_twice_is_refused() {
        let ok = receive(vec![dir(b""), dir(b"a"), dir(b"a b"), dir(b"a/x")]).unwrap();
        assert_eq!(ok.0.entries.len(), 4);
        for bad in [
            vec![dir(b""), dir(b"b"), dir(b"a")],
            vec![dir(b""), dir(b"a"), dir(b"a")],
        ] {
            match receive(bad) {
                Err(Error::Protocol(ProtocolError::Invalid { problem, .. })) => {
                    assert!(problem.contains("path order"), "{problem}")
                }
                other => panic!("accepted: {:?}", other.map(|m| m.0.entries.len())),
            }
        }
    }
}
