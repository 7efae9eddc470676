//! [`Shard`]: one writer thread assembling its share of the plan's files
//! from local and shipped chunks.
//!
//! Every file belongs to exactly one shard, so no two threads ever touch the
//! same temporary file or final path. A shard owns its own [`Tree`] handle
//! (and folder cache) on the destination root; it learns what to do from
//! [`Job`]s sent by the [`super::Applier`] in order, and hands back its
//! report and index records when it is told to finish or abort.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crossbeam_channel as chan;

use super::journal;
use super::tree::{temp_name, Tree};
use super::{io_err, is_fatal, kind_is_dir, ApplyError, ApplyReport, Fatal, IndexUpdate, Reader};
use crate::chunk::{ChunkRef, Hash};
use crate::entry::Meta;
use crate::error::Result;
use crate::path::RelPath;
use crate::plan::{FileOp, Piece, Plan, StreamChunk};

/// Temp files one shard keeps open at once while chunks arrive.
const MAX_OPEN: usize = 64;
/// What a queued job costs besides its chunk's bytes.
pub(super) const JOB_COST: u64 = 256;

/// What the applier asks of a shard, in order.
pub(super) enum Job {
    /// Write the shard's files that need nothing from the sender.
    Start,
    /// A shipped chunk, checked against its hash here unless `verified`.
    /// `count` is set on exactly one of the shards that need it, so its
    /// bytes are counted once.
    Chunk {
        idx: u32,
        expect: StreamChunk,
        data: Arc<Vec<u8>>,
        count: bool,
        verified: bool,
    },
    /// The sender could not supply stream chunk `idx`.
    Unavailable(u32),
    /// More places that need stream chunk `idx` (local copies that failed).
    Expect { idx: u32, dests: Vec<(u32, u64)> },
    /// Reply with the local chunks that failed their check since the last
    /// flush (file, chunk); also proves every earlier job is done.
    Flush(chan::Sender<Vec<(u32, ChunkRef)>>),
    /// Give up on files still incomplete and hand back the results.
    Finish,
    /// Stop after a fatal error; with `keep_partial`, keep journaled temp
    /// files for the next run.
    Abort { keep_partial: bool },
}

impl Job {
    /// What the job counts against its writer's queue budget.
    pub fn cost(&self) -> u64 {
        match self {
            Job::Chunk { data, .. } => data.len() as u64 + JOB_COST,
            _ => JOB_COST,
        }
    }
}

/// Bytes queued for one writer: the applier waits while the writer is
/// over its budget (but never when its queue is empty, so one chunk larger
/// than the budget still goes through).
pub(super) struct Budget {
    limit: u64,
    /// Bytes queued, and whether the writer is gone (then nobody waits).
    used: Mutex<(u64, bool)>,
    freed: Condvar,
}

impl Budget {
    pub fn new(limit: u64) -> Budget {
        Budget {
            limit,
            used: Mutex::new((0, false)),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, bool)> {
        self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn acquire(&self, n: u64) {
        let mut used = self.lock();
        while !used.1 && used.0 > 0 && used.0 + n > self.limit {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        used.0 += n;
    }

    pub fn release(&self, n: u64) {
        let mut used = self.lock();
        used.0 = used.0.saturating_sub(n);
        self.freed.notify_one();
    }

    /// The writer stopped (or died): never make the applier wait again.
    fn close(&self) {
        self.lock().1 = true;
        self.freed.notify_all();
    }
}

/// What a shard hands back.
pub(super) struct ShardOut {
    pub report: ApplyReport,
    pub update: IndexUpdate,
}

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

/// The whole-file hash of a file, computed while it is written.
///
/// Bytes written at the end of the hashed prefix are hashed at once;
/// bytes written beyond it (a chunk that completed before an earlier one,
/// as over a lossy path) are remembered as a range and read back from the
/// file once the gap before them fills, so a transfer that completes
/// chunks out of order is not followed by a read of the whole file. A
/// 2 GiB file pushed at 300 Mbit/s with 1 % loss had spent 0.5 s on that
/// final read (2026-12-07, bench/wan.sh).
#[derive(Default)]
enum InOrder {
    /// A file of one chunk: verifying the chunk verified the file.
    NotNeeded,
    #[default]
    NothingWritten,
    /// BLAKE3 of the first `.1` bytes, and the ranges written beyond them
    /// (start -> end).
    Hashing(Box<blake3::Hasher>, u64, BTreeMap<u64, u64>),
    /// Bytes already hashed were written again, too many ranges waited, or
    /// the file could not be read: the file is read back to be checked.
    Broken,
}

/// Most ranges waiting beyond the hashed prefix (about 64 GiB of 64 KiB
/// chunks written ahead of a gap); past that the file is read back at the
/// end instead.
const MAX_AHEAD: usize = 1 << 20;

impl FileState {
    /// Notes `data` written at `offset`.
    fn wrote(&mut self, offset: u64, data: &[u8]) {
        self.in_order = match std::mem::take(&mut self.in_order) {
            InOrder::NotNeeded => InOrder::NotNeeded,
            InOrder::Broken => InOrder::Broken,
            InOrder::NothingWritten => self.advance(
                Box::new(blake3::Hasher::new()),
                0,
                BTreeMap::new(),
                offset,
                data,
            ),
            InOrder::Hashing(h, n, ahead) => self.advance(h, n, ahead, offset, data),
        };
    }

    fn advance(
        &self,
        mut h: Box<blake3::Hasher>,
        mut n: u64,
        mut ahead: BTreeMap<u64, u64>,
        offset: u64,
        data: &[u8],
    ) -> InOrder {
        let end = offset + data.len() as u64;
        if offset > n {
            if ahead.insert(offset, end).is_some_and(|e| e != end) || ahead.len() > MAX_AHEAD {
                return InOrder::Broken;
            }
            return InOrder::Hashing(h, n, ahead);
        }
        if offset < n {
            return InOrder::Broken;
        }
        h.update(data);
        n = end;
        // The gap before some ranges may be filled now: hash them from the file.
        while let Some((&start, &stop)) = ahead.first_key_value() {
            if start != n {
                // A later gap remains (or ranges overlap: checked at the end).
                if start < n {
                    return InOrder::Broken;
                }
                break;
            }
            ahead.pop_first();
            let Some(file) = self.file.as_ref() else {
                return InOrder::Broken;
            };
            if hash_range(file, &mut h, start, stop).is_err() {
                return InOrder::Broken;
            }
            n = stop;
        }
        InOrder::Hashing(h, n, ahead)
    }

    /// The whole file's hash, if every byte was hashed as written.
    fn hash_in_order(&mut self, size: u64) -> Option<Hash> {
        match std::mem::take(&mut self.in_order) {
            InOrder::Hashing(h, n, ahead) if n == size && ahead.is_empty() => {
                Some(h.finalize().into())
            }
            _ => None,
        }
    }
}

/// Feeds bytes `start..stop` of `file` to `h`.
fn hash_range(file: &File, h: &mut blake3::Hasher, start: u64, stop: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; ((stop - start) as usize).min(1 << 20)];
    let mut at = start;
    while at < stop {
        let n = ((stop - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], at)?;
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok(())
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

/// Index records sent on at a time.
const RECORD_BATCH: usize = 512;

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

    /// Creates file `i`'s temp file (if not yet) and copies in its local pieces.
    fn open_file(&mut self, i: usize) -> Result<Option<&File>> {
        let plan = Arc::clone(&self.cx.plan);
        let op: &FileOp = &plan.files[i];
        let path = &op.entry.path;
        if self.files[i].failed {
            return Ok(None);
        }
        if self.files[i].file.is_none() {
            let name = temp_name(path, &self.cx.tag);
            let opened = if self.files[i].created {
                self.tree.reopen_temp(path, &name)
            } else {
                self.tree.create_temp(path, &name)
            };
            let file = match opened {
                Ok(f) => f,
                Err(e) if is_fatal(&e) => return Err(io_err(&self.tree, path, e)),
                Err(e) => {
                    self.files[i].failed = true;
                    self.fail(path, format!("cannot create: {e}"));
                    return Ok(None);
                }
            };
            if self.open >= MAX_OPEN {
                self.close_some(i);
            }
            self.open += 1;
            let fresh = !self.files[i].created;
            if fresh {
                if let Some(c) = &self.cx.current {
                    c.offer(|| path.display());
                }
            }
            self.files[i].created = true;
            self.files[i].file = Some(file);
            if fresh {
                self.copy_local_pieces(i, op)?;
            }
        }
        Ok(self.files[i].file.as_ref())
    }

    fn close_some(&mut self, keep: usize) {
        let files = &mut self.files;
        if let Some(&j) = self
            .mine
            .iter()
            .find(|&&j| j as usize != keep && files[j as usize].file.is_some())
        {
            files[j as usize].file = None;
            self.open -= 1;
        }
    }

    fn copy_local_pieces(&mut self, i: usize, op: &FileOp) -> Result<()> {
        for p in &op.pieces {
            let ok = match p {
                Piece::Remote { .. } => continue,
                Piece::Local { chunk, from } => {
                    match self.reader.read(&mut self.tree, from, &chunk.hash) {
                        Ok(ok) => ok,
                        Err(e) if is_fatal(&e) => return Err(io_err(&self.tree, &from.path, e)),
                        Err(_) => false,
                    }
                }
                Piece::Rescued { chunk, slot } => self.read_rescued(*slot, chunk)?,
            };
            if ok {
                let s = &mut self.files[i];
                let at = p.chunk().offset;
                let f = s.file.as_ref().expect("open");
                f.write_all_at(&self.reader.buf, at)
                    .map_err(|e| io_err(&self.tree, &op.entry.path, e))?;
                s.wrote(at, &self.reader.buf);
                self.report.chunks_reused += 1;
            } else {
                self.refetch.push((i as u32, *p.chunk()));
                self.files[i].missing += 1;
                self.report.chunks_refetched += 1;
            }
        }
        Ok(())
    }

    fn read_rescued(&mut self, slot: u32, chunk: &ChunkRef) -> Result<bool> {
        let Some(rescued) = &self.cx.rescued else {
            return Ok(false);
        };
        let Some(Some(at)) = rescued.at.get(slot as usize) else {
            return Ok(false);
        };
        let buf = &mut self.reader.buf;
        buf.resize(chunk.length as usize, 0);
        rescued
            .file
            .read_exact_at(buf, *at)
            .map_err(|e| crate::error::Error::io(self.tree.root_path(), e))?;
        Ok(Hash::of(buf) == chunk.hash)
    }

    /// One shipped chunk: verify it, write it everywhere this shard needs it.
    fn receive(
        &mut self,
        idx: u32,
        expect: &StreamChunk,
        data: &[u8],
        count: bool,
        verified: bool,
    ) -> Result<()> {
        if data.len() != expect.length as usize || !verified && Hash::of(data) != expect.hash {
            // The sender reads chunks from live files without re-hashing:
            // a mismatch means the source file changed since its scan.
            self.unavailable(idx);
            return Ok(());
        }
        if count {
            self.report.chunk_bytes_received += data.len() as u64;
        }
        let dests = self
            .dests
            .get_mut(idx as usize)
            .map(std::mem::take)
            .unwrap_or_default();
        let plan = Arc::clone(&self.cx.plan);
        for (i, off) in dests {
            let i = i as usize;
            let path = &plan.files[i].entry.path;
            let Some(f) = self.open_file(i)? else {
                continue;
            };
            if let Err(e) = f.write_all_at(data, off) {
                if is_fatal(&e) {
                    return Err(io_err(&self.tree, path, e));
                }
                self.abandon(i, format!("write failed: {e}"));
                continue;
            }
            self.files[i].wrote(off, data);
            self.journal(i, off, expect)?;
            self.files[i].missing -= 1;
            if self.files[i].missing == 0 {
                self.finalize(i)?;
            }
        }
        Ok(())
    }

    /// Records a shipped chunk in file `i`'s journal (large files only).
    fn journal(&mut self, i: usize, offset: u64, c: &StreamChunk) -> Result<()> {
        if !self.files[i].journaled {
            return Ok(());
        }
        let plan = Arc::clone(&self.cx.plan);
        let path = &plan.files[i].entry.path;
        let name = journal::name_for(&temp_name(path, &self.cx.tag));
        if self.files[i].journal.is_none() {
            let opened = if self.files[i].journal_len == 0 {
                self.tree.create_temp(path, &name)
            } else {
                self.tree.reopen_temp(path, &name)
            };
            match opened {
                Ok(f) => self.files[i].journal = Some(f),
                Err(e) if is_fatal(&e) => return Err(io_err(&self.tree, path, e)),
                // Without a journal the file still completes; only resume suffers.
                Err(_) => return Ok(()),
            }
        }
        let rec = journal::record(offset, c.length, &c.hash);
        let s = &mut self.files[i];
        if let Some(j) = &s.journal {
            match j.write_all_at(&rec, s.journal_len) {
                Ok(()) => s.journal_len += rec.len() as u64,
                Err(e) if is_fatal(&e) => return Err(io_err(&self.tree, path, e)),
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Removes file `i`'s journal, if it has one.
    fn drop_journal(&mut self, i: usize) {
        let s = &mut self.files[i];
        if s.journal.take().is_some() || s.journal_len > 0 {
            let path = &self.cx.plan.files[i].entry.path;
            let _ = self
                .tree
                .remove_temp(path, &journal::name_for(&temp_name(path, &self.cx.tag)));
        }
    }

    /// The sender could not supply chunk `idx` (its source changed).
    fn unavailable(&mut self, idx: u32) {
        let Some(dests) = self.dests.get_mut(idx as usize).map(std::mem::take) else {
            return;
        };
        for (i, _) in dests {
            self.abandon(
                i as usize,
                "changed at the source during the transfer; not updated".into(),
            );
        }
    }

    /// Gives up on file `i`: its temp file goes, its target stays as it was.
    fn abandon(&mut self, i: usize, message: String) {
        let s = &mut self.files[i];
        if s.failed || s.done {
            return;
        }
        s.failed = true;
        if s.file.take().is_some() {
            self.open -= 1;
        }
        let path = self.cx.plan.files[i].entry.path.clone();
        if s.created {
            let _ = self
                .tree
                .remove_temp(&path, &temp_name(&path, &self.cx.tag));
        }
        self.drop_journal(i);
        self.fail(&path, message);
    }

    /// Verifies file `i` as a whole, sets its metadata and renames it into place.
    fn finalize(&mut self, i: usize) -> Result<()> {
        let plan = Arc::clone(&self.cx.plan);
        let op: &FileOp = &plan.files[i];
        let path = &op.entry.path;
        if self.files[i].failed || self.files[i].done {
            return Ok(());
        }
        let Some(file) = self.files[i].file.take() else {
            // Reopen to finish (it was closed to bound open descriptors).
            self.open_file(i)?;
            return self.finalize(i);
        };
        self.open -= 1;
        // Every chunk was verified as it was written; for a file of several
        // chunks, the whole file's hash proves they landed in the right
        // places: hashed as written when that was in order, else read back.
        if op.entry.chunks.len() > 1
            && self.files[i]
                .hash_in_order(op.entry.meta.size)
                .map_or_else(|| whole_hash(&file, &mut self.reader.buf).ok(), Some)
                != op.entry.hash
        {
            self.files[i].file = Some(file);
            self.open += 1;
            self.abandon(i, "assembled file failed its BLAKE3 check".into());
            return Ok(());
        }
        let name = temp_name(path, &self.cx.tag);
        let placed = Tree::set_file_meta(&file, &op.entry.meta).and_then(|()| {
            if kind_is_dir(op.replaces) {
                self.report.entries_deleted += self.tree.remove_tree(path)?;
            }
            self.tree.rename_temp(path, &name)
        });
        if let Err(e) = placed {
            drop(file);
            let _ = self.tree.remove_temp(path, &name);
            if is_fatal(&e) {
                return Err(io_err(&self.tree, path, e));
            }
            self.files[i].failed = true;
            self.fail(path, format!("cannot put in place: {e}"));
            return Ok(());
        }
        // The descriptor still names the file now at `path` (a rename
        // changes its ctime, so this is read after it).
        let meta = file.metadata().ok().and_then(|m| Meta::from_std(&m));
        drop(file);
        self.files[i].done = true;
        self.drop_journal(i);
        self.report.files_written += 1;
        if let Some(c) = &self.cx.written {
            c.fetch_add(op.entry.meta.size, Ordering::Relaxed);
        }
        self.report.bytes_written += op.entry.meta.size;
        if let Some(m) = meta {
            let mut entry = op.entry.clone();
            entry.meta = m;
            entry.checked_ns = m.trusted_checked_ns();
            self.update.put.push(entry);
            if let Some(records) = &self.cx.records {
                if self.update.put.len() >= RECORD_BATCH {
                    // A gone recorder only means the records come at the end.
                    let _ = records.send(std::mem::take(&mut self.update));
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

/// BLAKE3 of a whole file, read from the start.
fn whole_hash(mut file: &File, buf: &mut Vec<u8>) -> std::io::Result<Hash> {
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(0))?;
    buf.resize(1 << 20, 0);
    let mut h = blake3::Hasher::new();
    loop {
        let n = file.read(buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_order_hash_covers_exactly_in_order_writes() {
        let data = crate::chunk::tests::noise(3, 100_000);
        let whole: Hash = blake3::hash(&data).into();
        let mut s = FileState::default();
        s.wrote(0, &data[..40_000]);
        s.wrote(40_000, &data[40_000..]);
        assert_eq!(s.hash_in_order(100_000), Some(whole));

        let mut s = FileState::default();
        s.wrote(0, &data[..40_000]);
        assert_eq!(s.hash_in_order(100_000), None, "short of the size");

        // A one-chunk file is not hashed again as it is written.
        let mut s = FileState {
            in_order: InOrder::NotNeeded,
            ..FileState::default()
        };
        s.wrote(0, &data);
        assert!(matches!(s.in_order, InOrder::NotNeeded));

        // Out of order: what came early is read back from the file once
        // the gap before it fills.
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        let mut s = FileState {
            file: Some(file),
            ..FileState::default()
        };
        for (from, to) in [(70_000, 100_000), (40_000, 70_000), (0, 40_000)] {
            s.file
                .as_ref()
                .unwrap()
                .write_all_at(&data[from..to], from as u64)
                .unwrap();
            s.wrote(from as u64, &data[from..to]);
        }
        assert!(matches!(&s.in_order, InOrder::Hashing(_, 100_000, ahead) if ahead.is_empty()));
        assert_eq!(s.hash_in_order(100_000), Some(whole));

        // Hashed bytes written again: read back at the end instead.
        let mut s = FileState::default();
        s.wrote(0, &data[..40_000]);
        s.wrote(0, &data[..40_000]);
        assert_eq!(s.hash_in_order(100_000), None, "rewritten: read back");

        // A gap never filled, or no file to read the early bytes from.
        let mut s = FileState::default();
        s.wrote(40_000, &data[40_000..]);
        assert_eq!(s.hash_in_order(100_000), None, "a gap: read back");
        let mut s = FileState::default();
        s.wrote(40_000, &data[40_000..]);
        s.wrote(0, &data[..40_000]);
        assert_eq!(s.hash_in_order(100_000), None, "no file to read: read back");
    }
}
