//! The receiving half: scan the destination, plan, apply, report.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crossbeam_channel as chan;
use std::sync::Arc;
use std::time::Instant;

use super::bulk::Unbundle;
use super::msg::{
    check_chunks, check_entry, check_tree, protocol, spans, Msg, Need, NeedRun, Role, SourceDone,
    MAX_CHUNKS, MAX_ENTRIES, NEED_PER_MSG,
};
use super::udp;
use super::{
    index_skips, open_index, ChangeLine, Opening, SessionOptions, Side, SyncReport, Transport,
    PARTIAL_MARK,
};
use crate::apply::{Applier, ApplyOptions, IndexUpdate, Tree};
use crate::chunk::{ChunkParams, Hash};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::manifest::Manifest;
use crate::path::RelPath;
use crate::plan::{self, Plan, PlanOptions};
use crate::scan::ScanReport;

/// Rounds of re-requests for chunks that failed local verification.
const MAX_ROUNDS: u32 = 3;

/// Runs the receiver half of a session.
pub fn run_receiver(t: &mut dyn Transport, side: &Side, opening: Opening) -> Result<SyncReport> {
    let result = receiver(t, side, opening);
    if let Err(e) = &result {
        if !matches!(e, Error::Peer(_)) {
            let _ = t.send(&Msg::Error(e.to_string()));
        }
    }
    result
}

fn receiver(t: &mut dyn Transport, side: &Side, opening: Opening) -> Result<SyncReport> {
    let started = Instant::now();
    let negotiated = opening.open(t, Role::Receiver)?;
    let opts = negotiated.options.clone();
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
    // Scan the destination while the source's manifest arrives.
    let (dst, src) = std::thread::scope(|s| {
        let scan = s.spawn(|| scan_destination(side, &opts, exists || !opts.dry_run));
        let src = receive_manifest(t);
        let dst = scan
            .join()
            .unwrap_or_else(|_| Err(Error::Peer("scan thread panicked".into())));
        (dst, src)
    });
    let (mut src, source_done) = src?;
    let (mut index, mut dst_manifest, dst_scan) = dst?;
    let listed = fetch_chunk_lists(t, &mut src, &dst_manifest)?;
    if !listed.is_empty() {
        // Content will be assembled: the destination's chunks are sources.
        index.load_chunks(&mut dst_manifest)?;
    }
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "scanned DST, received SRC's manifest"
    );

    let mut warnings = source_done.warnings.clone();
    warnings.extend(dst_scan.warnings.iter().map(|w| {
        let mark = if w.io_error { PARTIAL_MARK } else { "" };
        format!("{mark}destination: {}: {}", w.path, w.message)
    }));
    if opts.delete
        && src.entries.len() <= 1
        && dst_manifest.entries.len() > 1
        && !opts.allow_empty_source
    {
        return Err(Error::Usage(
            "the source is empty; refusing to --delete everything at the destination (is a disk unmounted? \
             pass --allow-empty-source if this is intended)"
                .into(),
        ));
    }
    let protect = source_done
        .protect
        .iter()
        .filter_map(|p| RelPath::new(p.to_vec()).ok())
        .collect();
    // Chunks a dead run left in journaled temp files are local sources too.
    let extra_sources = match Tree::open(&side.root) {
        Ok(mut tree) if !dst_scan.temp_files.is_empty() => {
            crate::apply::journal::leftover_sources(&mut tree, &dst_scan.temp_files)
        }
        _ => Vec::new(),
    };
    let plan = plan::diff(
        &src,
        &dst_manifest,
        &PlanOptions {
            delete: opts.delete,
            hard_links: opts.hard_links,
            protect,
            extra_sources,
        },
    );
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "planned");
    let mut report = plan_report(&plan, opts.dry_run);
    report.warnings = warnings;
    if source_done.partial && !plan.deletes.is_empty() {
        report.deletes_skipped = true;
        report
            .warnings
            .push("I/O errors while scanning the source: deletions disabled for this run".into());
    }
    for (path, why) in &plan.conflicts {
        report
            .warnings
            .push(format!("{PARTIAL_MARK}{}: {why}", path.display()));
    }

    if opts.dry_run {
        t.send(&Msg::NeedDone {
            round: 1,
            count: 0,
            udp: None,
        })?;
        report.wire_bytes_sent = expect_sender_done(t)?;
    } else {
        let tree = Tree::open(&side.root).map_err(|e| Error::io(&side.root, e))?;
        let apply_opts = ApplyOptions {
            max_delete: opts.max_delete,
            no_deletes: source_done.partial,
            writers: None,
        };
        let plan = Arc::new(plan);
        let mut applier = Applier::new(tree, Arc::clone(&plan), apply_opts);
        if let Some(p) = &side.progress {
            p.bytes_total
                .store(plan.stats.bytes_to_write, Ordering::Relaxed);
            p.phase.store(super::PHASE_TRANSFER, Ordering::Relaxed);
            applier.count_into(Arc::clone(&p.bytes_done));
        }
        // The destination's index is written while files are, on a thread
        // of its own, in one transaction committed at the end.
        let (applied, wire) = std::thread::scope(|s| {
            let (records, updates) = chan::unbounded::<IndexUpdate>();
            let index = &mut index;
            let indexer = s.spawn(move || record_updates(index, updates));
            applier.record_into(records.clone());
            let outcome = transfer(
                t,
                &mut applier,
                &plan,
                &dst_scan,
                (
                    &opts,
                    side,
                    negotiated.peer_has("udp"),
                    &listed,
                    bulk_udp_failed.load(Ordering::Relaxed),
                ),
                &mut report.warnings,
                &mut report.data_path,
            );
            let applied = match outcome {
                Ok(wire) => {
                    if let Some(p) = &side.progress {
                        p.phase.store(super::PHASE_FINISH, Ordering::Relaxed);
                    }
                    applier.finish().map(|(applied, update)| {
                        let _ = records.send(update);
                        (applied, wire)
                    })
                }
                Err(e) => {
                    let _ = records.send(applier.abort(!e.is_disk_full()));
                    Err(e)
                }
            };
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "applied");
            drop(records);
            let indexed = indexer
                .join()
                .unwrap_or_else(|_| Err(Error::Usage("the index thread panicked".into())));
            tracing::debug!(
                ms = started.elapsed().as_millis() as u64,
                "DST index updated"
            );
            let applied = applied?;
            indexed.map(|()| applied)
        })?;
        report.wire_bytes_sent = wire;
        report.entries_deleted = applied.entries_deleted;
        if applied.max_delete_hit || applied.deletes_skipped {
            report.files_deleted = 0;
            report.entries_deleted = 0;
        }
        report.chunk_bytes_sent = applied.chunk_bytes_received;
        report.max_delete_hit = applied.max_delete_hit;
        report.deletes_skipped |= applied.deletes_skipped;
        report.errors = applied.errors;
    }
    report.duration_s = started.elapsed().as_secs_f64();
    let mut theirs = report.clone();
    if !opts.itemize {
        let keep_deletes = opts.max_delete.is_some();
        theirs
            .changes
            .retain(|c| keep_deletes && c.line.starts_with("- "));
    }
    t.send(&Msg::Report(Box::new(theirs)))?;
    Ok(report)
}

fn expect_sender_done(t: &mut dyn Transport) -> Result<u64> {
    match t.recv()? {
        Msg::SenderDone { wire_bytes_sent } => Ok(wire_bytes_sent),
        Msg::Error(e) => Err(Error::Peer(e)),
        other => Err(protocol(format!(
            "expected SenderDone, got {}",
            other.name()
        ))),
    }
}

fn scan_destination(
    side: &Side,
    opts: &SessionOptions,
    exists: bool,
) -> Result<(Index, Manifest, ScanReport)> {
    let (mut index, index_path) = open_index(side)?;
    if !exists {
        // Dry run into a folder that does not exist yet: it is empty.
        return Ok((index, Manifest::default(), ScanReport::default()));
    }
    let mut scan_opts = opts.scan_options(side);
    scan_opts.skip = index_skips(&index_path);
    let (report, manifest) = crate::scan::scan_manifest(&side.root, &mut index, &scan_opts)?;
    Ok((index, manifest, report))
}

/// Receives and validates the source manifest (entries without chunk
/// lists), which comes in path order, each path once.
fn receive_manifest(t: &mut dyn Transport) -> Result<(Manifest, SourceDone)> {
    let mut entries: Vec<crate::entry::Entry> = Vec::new();
    let done = loop {
        match t.recv()? {
            Msg::Entries(batch) => {
                if entries.len() + batch.len() > MAX_ENTRIES {
                    return Err(protocol(format!(
                        "the manifest exceeds {MAX_ENTRIES} entries"
                    )));
                }
                for mut w in batch {
                    if !w.chunks.is_empty() {
                        return Err(protocol("chunk lists come on request, not in the manifest"));
                    }
                    // Tiling is checked once the list arrives.
                    let size = std::mem::take(&mut w.meta.size);
                    let mut e = check_entry(w, &ChunkParams::default())?;
                    e.meta.size = size;
                    if entries.last().is_some_and(|last| last.path >= e.path) {
                        return Err(protocol(format!(
                            "the manifest is out of path order or lists a path twice (at {})",
                            e.path.display()
                        )));
                    }
                    entries.push(e);
                }
            }
            Msg::SourceDone(done) => break done,
            Msg::Error(e) => return Err(Error::Peer(e)),
            other => {
                return Err(protocol(format!(
                    "expected the manifest, got {}",
                    other.name()
                )))
            }
        }
    };
    done.params
        .validate()
        .map_err(|e| protocol(e.to_string()))?;
    // Already in order: collecting builds the map in one pass.
    let m = Manifest {
        entries: entries.into_iter().map(|e| (e.path.clone(), e)).collect(),
        params: done.params,
    };
    check_tree(&m)?;
    Ok((m, done))
}

/// Asks for the chunk lists of the source files whose content the
/// destination does not already hold at the same path, and checks that
/// each list tiles its file. Files are named by their position in the
/// manifest. Returns, for each chunk listed, its first position in the
/// lists as the sender sent them (empty when none was asked for).
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
    for part in spans(wanted.iter().copied()).chunks(NEED_PER_MSG) {
        t.send(&Msg::WantChunks(part.to_vec()))?;
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
                    return Err(protocol(format!(
                        "the chunk lists exceed {MAX_CHUNKS} chunks"
                    )));
                }
                if wanted.binary_search(&index).is_err() {
                    return Err(protocol(format!("unrequested chunk list {index}")));
                }
                lists.push((index, chunks));
            }
            Msg::ChunksDone => break,
            Msg::Error(e) => return Err(Error::Peer(e)),
            other => {
                return Err(protocol(format!(
                    "expected FileChunks, got {}",
                    other.name()
                )))
            }
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
fn need_runs(needs: &[Need], listed: &HashMap<Hash, u32>) -> Result<Vec<NeedRun>> {
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

/// Rounds of Need → Data until everything arrived or nothing more can.
/// Returns the sender's wire byte count.
fn transfer(
    t: &mut dyn Transport,
    applier: &mut Applier,
    plan: &Plan,
    dst_scan: &ScanReport,
    (opts, side, peer_udp, listed, bulk_udp_failed): (
        &SessionOptions,
        &Side,
        bool,
        &HashMap<Hash, u32>,
        bool,
    ),
    warnings: &mut Vec<String>,
    path_used: &mut String,
) -> Result<u64> {
    applier.start(&dst_scan.temp_files)?;
    let mut needs: Vec<Need> = plan
        .stream
        .iter()
        .enumerate()
        .map(|(i, c)| Need::new(i as u32, c))
        .collect();
    let mut round = 1;
    let fallback = format!(
        "no UDP datagram got through for {} s (blocked by a firewall?); \
         the data went over the control connection instead",
        udp::AUTO_FALLBACK.as_secs()
    );
    // A bulk run that found UDP blocked spares the data phase the wait.
    let mut udp_failed = bulk_udp_failed;
    if udp_failed {
        warnings.push(fallback.clone());
    }
    let mut data_path: Option<&str> = None;
    while !needs.is_empty() && round <= MAX_ROUNDS {
        for part in need_runs(&needs, listed)?.chunks(NEED_PER_MSG) {
            t.send(&Msg::Need(part.to_vec()))?;
        }
        let use_udp = !udp_failed && peer_udp && udp::wanted(&opts.data, side, t.split().is_some());
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
            match udp::receive(t, prepared, &needs, &opts.data, side, applier.feed())? {
                true => {
                    data_path.get_or_insert("udp");
                }
                false => {
                    // Ask for the same chunks again, on the control connection.
                    udp_failed = true;
                    warnings.push(fallback.clone());
                    round += 1;
                    continue;
                }
            }
        } else {
            data_path.get_or_insert("control connection");
            loop {
                match t.recv()? {
                    Msg::Data { idx, bytes } => applier.receive_chunk(idx, bytes)?,
                    Msg::Unavailable { idx } => applier.chunk_unavailable(idx)?,
                    Msg::RoundDone { round: r } if r == round => break,
                    Msg::Error(e) => return Err(Error::Peer(e)),
                    other => return Err(protocol(format!("expected Data, got {}", other.name()))),
                }
            }
        }
        needs = applier
            .take_refetch()?
            .into_iter()
            .map(|(idx, c)| Need::new(idx, &c))
            .collect();
        round += 1;
    }
    t.send(&Msg::NeedDone {
        round,
        count: 0,
        udp: None,
    })?;
    *path_used = data_path.unwrap_or("none").to_string();
    expect_sender_done(t)
}

/// Records what the apply step wrote in the destination's index, batch by
/// batch as they come, in one transaction.
fn record_updates(index: &mut Index, updates: chan::Receiver<IndexUpdate>) -> Result<()> {
    let w = index.writer()?;
    for u in updates {
        for e in &u.put {
            w.put_path(e)?;
        }
        for (path, meta, checked) in &u.meta {
            w.update_meta(path, meta, *checked)?;
        }
        for p in &u.delete {
            w.delete_path(p)?;
        }
    }
    w.commit()
}

fn plan_report(plan: &Plan, dry_run: bool) -> SyncReport {
    let s = &plan.stats;
    SyncReport {
        dry_run,
        files_total: s.files_total,
        bytes_total: s.bytes_total,
        files_created: s.files_created,
        files_updated: s.files_updated,
        files_deleted: s.files_deleted,
        entries_deleted: s.entries_deleted,
        dirs_created: s.dirs_created,
        symlinks_created: s.symlinks_created,
        meta_updated: s.meta_updated,
        chunk_bytes_sent: s.chunk_bytes_to_send,
        bytes_reused: s.bytes_reused,
        changes: plan.changes.iter().map(ChangeLine::from).collect(),
        data_path: "none".into(),
        ..SyncReport::default()
    }
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

    fn receive(entries: Vec<WireEntry>) -> Result<(Manifest, SourceDone)> {
        let (mut tx, mut rx) = MemoryTransport::pair(8);
        tx.send(&Msg::Entries(entries)).unwrap();
        tx.send(&Msg::SourceDone(SourceDone {
            params: ChunkParams::default(),
            partial: false,
            protect: Vec::new(),
            warnings: Vec::new(),
        }))
        .unwrap();
        receive_manifest(&mut rx)
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
                Err(Error::Protocol(m)) => assert!(m.contains("path order"), "{m}"),
                other => panic!("accepted: {:?}", other.map(|m| m.0.entries.len())),
            }
        }
    }
}
