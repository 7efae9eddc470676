//! [`Shard`]: one writer thread assembling its share of the plan's files
//! from local and shipped chunks.
//!
//! Every file belongs to exactly one shard, so no two threads ever touch the
//! same temporary file or final path. A shard owns its own [`Tree`] handle
//! (and folder cache) on the destination root; it learns what to do from
//! [`Job`]s sent by the [`super::Applier`] in order, and hands back its
//! report and index records when it is told to finish or abort.
//!
//! The shard is one type, its work one file each:
//! - `queue`: the [`Job`]s the applier sends and the byte [`Budget`] that
//!   bounds them;
//! - `local`: a file's temp file, opened (or reopened) and filled with the
//!   pieces found at the destination or rescued;
//! - `shipped`: chunks from the sender, checked, written wherever they are
//!   needed and journaled;
//! - `place`: a complete file checked whole and renamed into place, or
//!   abandoned;
//! - `in_order`: the whole-file hash computed as the file is written.
//!
//! This file holds the shard's state, its job loop and how it ends. It
//! never writes outside the destination root's temp files and final paths,
//! and never talks to the sender.

mod in_order;
mod local;
mod place;
mod queue;
mod shipped;

use std::fs::File;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crossbeam_channel as chan;

use super::journal;
use super::tree::Tree;
use super::{ApplyError, ApplyReport, Fatal, IndexUpdate, Reader};
use crate::chunk::ChunkRef;
use crate::error::Result;
use crate::path::RelPath;
use crate::plan::{Piece, Plan};

use in_order::InOrder;
pub(super) use queue::{Budget, Job};

/// What a shard hands back.
pub(super) struct ShardOut {
    pub report: ApplyReport,
    pub update: IndexUpdate,
}

/// Where one of the shard's files stands.
#[derive(Default)]
struct FileState {
    file: Option<File>,
    created: bool,
    /// The journal of shipped chunks, for files large enough to have one.
    journal: Option<File>,
    journal_len: u64,
    /// Stream chunks still to arrive.
    missing: u32,
    /// Enough chunks are shipped for this file to keep a journal of them.
    journaled: bool,
    failed: bool,
    done: bool,
    in_order: InOrder,
}

/// Chunks saved aside before anything was overwritten.
pub(super) struct Rescued {
    pub file: File,
    /// Offset of each rescue slot; `None` if it could not be saved.
    pub at: Vec<Option<u64>>,
}

/// Shared settings of every shard of one run.
pub(super) struct ShardContext {
    pub plan: Arc<Plan>,
    pub tag: Arc<str>,
    pub rescued: Option<Arc<Rescued>>,
    pub written: Option<Arc<AtomicU64>>,
    /// Where a progress display samples the file being written.
    pub current: Option<Arc<super::CurrentFile>>,
    pub fatal: Fatal,
    /// Where index records go as files are put in place (else all at the end).
    pub records: Option<chan::Sender<IndexUpdate>>,
}

/// One writer: its files' states, where each stream chunk goes, and what
/// it will hand back.
pub(super) struct Shard {
    tree: Tree,
    cx: ShardContext,
    /// The files this shard writes, in plan order.
    mine: Vec<u32>,
    /// Per plan file (only this shard's are used).
    files: Vec<FileState>,
    /// Per stream chunk: every (file, offset in file) of this shard that needs it.
    dests: Vec<Vec<(u32, u64)>>,
    refetch: Vec<(u32, ChunkRef)>,
    reader: Reader,
    open: usize,
    report: ApplyReport,
    update: IndexUpdate,
    /// A fatal error happened here: only bookkeeping jobs are served.
    dead: bool,
    budget: Arc<Budget>,
}

impl Shard {
    pub fn new(tree: Tree, cx: ShardContext, mine: Vec<u32>, budget: Arc<Budget>) -> Shard {
        let plan = Arc::clone(&cx.plan);
        let mut files: Vec<FileState> = plan.files.iter().map(|_| FileState::default()).collect();
        let mut dests = vec![Vec::new(); plan.stream.len()];
        for &i in &mine {
            for p in &plan.files[i as usize].pieces {
                if let Piece::Remote { chunk, stream } = p {
                    dests[*stream as usize].push((i, chunk.offset));
                    files[i as usize].missing += 1;
                }
            }
            let f = &mut files[i as usize];
            f.journaled = f.missing >= journal::MIN_CHUNKS;
            if plan.files[i as usize].entry.chunks.len() <= 1 {
                f.in_order = InOrder::NotNeeded;
            }
        }
        Shard {
            tree,
            cx,
            mine,
            files,
            dests,
            refetch: Vec::new(),
            reader: Reader::default(),
            open: 0,
            report: ApplyReport::default(),
            update: IndexUpdate::default(),
            dead: false,
            budget,
        }
    }

    /// Serves jobs until told to finish or abort (or the applier is gone).
    pub fn run(mut self, jobs: chan::Receiver<Job>) -> ShardOut {
        for job in jobs.iter() {
            let cost = job.cost();
            let r = match job {
                Job::Finish => return self.finish(),
                Job::Abort { keep_partial } => return self.abort(keep_partial),
                Job::Flush(reply) => {
                    let _ = reply.send(std::mem::take(&mut self.refetch));
                    Ok(())
                }
                _ if self.dead => Ok(()),
                Job::Start => self.start(),
                Job::Chunk {
                    idx,
                    expect,
                    data,
                    count,
                    verified,
                } => self.receive(idx, &expect, &data, count, verified),
                Job::Unavailable(idx) => {
                    self.unavailable(idx);
                    Ok(())
                }
                Job::Expect { idx, dests } => {
                    let i = idx as usize;
                    if self.dests.len() <= i {
                        self.dests.resize(i + 1, Vec::new());
                    }
                    self.dests[i].extend(dests);
                    Ok(())
                }
            };
            self.budget.release(cost);
            if let Err(e) = r {
                self.dead = true;
                self.cx.fatal.set(e);
            }
        }
        self.abort(true)
    }

    fn fail(&mut self, path: &RelPath, message: String) {
        self.report.errors.push(ApplyError {
            path: path.display(),
            message,
        });
    }

    fn start(&mut self) -> Result<()> {
        for k in 0..self.mine.len() {
            let i = self.mine[k] as usize;
            if self.files[i].missing == 0 {
                self.open_file(i)?;
                // A local chunk that failed its check is now missing.
                if self.files[i].missing == 0 {
                    self.finalize(i)?;
                }
            }
        }
        Ok(())
    }
    fn finish(mut self) -> ShardOut {
        if self.dead {
            return self.abort(true);
        }
        for k in 0..self.mine.len() {
            let i = self.mine[k] as usize;
            let s = &self.files[i];
            if !s.done && !s.failed {
                self.abandon(i, "not all of its chunks arrived".into());
            }
        }
        self.out()
    }

    /// Removes this run's temp files, except, with `keep_partial`, those
    /// whose journals record shipped chunks (the next run resumes from them).
    fn abort(mut self, keep_partial: bool) -> ShardOut {
        for k in 0..self.mine.len() {
            let i = self.mine[k] as usize;
            if keep_partial && self.files[i].journal_len > 0 && !self.files[i].done {
                let s = &mut self.files[i];
                s.file = None;
                s.journal = None;
                s.failed = true;
                continue;
            }
            self.abandon(i, "run aborted".into());
        }
        self.out()
    }

    fn out(mut self) -> ShardOut {
        ShardOut {
            report: std::mem::take(&mut self.report),
            update: std::mem::take(&mut self.update),
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        self.budget.close();
    }
}
