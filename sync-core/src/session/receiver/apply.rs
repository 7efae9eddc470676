//! Applying a plan on the receiving side: the writers run while a
//! window's chunks arrive, then finish (last files, links, metadata) on a
//! thread of their own that also records the writes in the destination's
//! index, so the next window is received and planned meanwhile. Nothing
//! here speaks to the sender; the transfer rounds come in as `exchange`.

use std::sync::Arc;

use crossbeam_channel as chan;

use crate::apply::{Applier, ApplyOptions, ApplyReport, IndexUpdate, Tree};
use crate::error::{Error, Result};
use crate::index::recent::{self, RecentChunks};
use crate::index::Index;
use crate::path::RelPath;
use crate::plan::Plan;
use crate::session::Side;

/// Adds one plan's apply report to the session's total.
pub(super) fn add_applied(total: &mut ApplyReport, r: ApplyReport) {
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
pub(super) type Finishing<'s, 'i> =
    std::thread::ScopedJoinHandle<'s, (Result<ApplyReport>, &'i mut Index)>;

pub(super) fn join<'i>(f: Finishing<'_, 'i>) -> (Result<ApplyReport>, &'i mut Index) {
    f.join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Where a plan's writes are recorded: the destination's index, and
/// (while it goes without its hash index) this run's chunks.
pub(super) struct Recording<'i> {
    pub(super) index: &'i mut Index,
    pub(super) recent: Option<Arc<RecentChunks>>,
}

/// Starts applying one plan (a window's, or the last one's: deletions,
/// folder times, `leftovers` removed): `exchange` (the transfer rounds) runs
/// here, then the writers' last files, links and metadata, and the
/// window's index records, on a thread of their own. The flag says whether
/// the exchange went through (if not, the thread only cleans up and
/// returns the error).
pub(super) fn start_apply<'s, 'i: 's>(
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
