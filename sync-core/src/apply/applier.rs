//! [`Applier`]: runs one plan against one destination, spreading the file
//! writes over writer threads ([`Shard`]s).
//!
//! The applier itself does what must happen once and in order: rescue,
//! folders (before any file), then links, metadata fixes, deletions and
//! folder metadata (after every file). Files go to the shards by a hash of
//! their path; each shipped chunk goes to the shards whose files need it.

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher};
use std::os::unix::fs::FileExt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crossbeam_channel as chan;

use super::assemble::{Budget, Job, Rescued, Shard, ShardContext, ShardOut};
use super::tree::{temp_name, Tree};
use super::{
    io_err, is_fatal, kind_is_dir, ApplyError, ApplyOptions, ApplyReport, CurrentFile, Fatal,
    IndexUpdate, Reader,
};
use crate::chunk::Hash;
use crate::entry::{Entry, Kind};
use crate::error::{Error, ProtocolError, Result};
use crate::path::RelPath;
use crate::plan::{Plan, StreamChunk};

/// Most writer threads.
pub const MAX_WRITERS: usize = 4;
/// Bytes of chunks queued per writer before the applier waits. Runs of
/// small files in one folder all go to one writer, so the queue is counted
/// in bytes, not jobs: a count small enough to bound memory would stall
/// the other writers behind it.
const QUEUE_BYTES: u64 = 16 << 20;

/// Local chunks a writer found unusable: (plan file, chunk).
type Refetch = Vec<(u32, crate::chunk::ChunkRef)>;

/// The applier's end of one writer's queue.
struct Queue {
    jobs: chan::Sender<Job>,
    budget: Arc<Budget>,
}

/// Where shipped chunks go: to the writers whose files need them. Borrowed
/// from the [`Applier`] ([`Applier::feed`]) by whatever receives chunks,
/// on whichever thread.
pub struct Feed {
    /// Every stream chunk (the plan's, then refetched ones).
    chunks: Vec<StreamChunk>,
    /// The writers whose files need each stream chunk.
    needed_by: Vec<Vec<u8>>,
    arrived: Vec<bool>,
    queues: Vec<Queue>,
    fatal: Fatal,
}

/// Executes one plan against one destination tree.
pub struct Applier {
    tree: Tree,
    plan: Arc<Plan>,
    opts: ApplyOptions,
    tag: Arc<str>,
    /// Writer of each plan file.
    owner: Vec<u8>,
    writer_count: usize,
    feed: Feed,
    /// Stream chunks added since the last [`Applier::take_refetch`].
    extra: Vec<u32>,
    extra_by_hash: HashMap<Hash, u32>,
    threads: Vec<std::thread::JoinHandle<ShardOut>>,
    written: Option<Arc<AtomicU64>>,
    current: Option<Arc<CurrentFile>>,
    records: Option<chan::Sender<IndexUpdate>>,
    leftovers: Vec<RelPath>,
    report: ApplyReport,
    update: IndexUpdate,
}

/// Files of one folder share a writer: two threads creating and renaming
/// in one folder contend for its lock.
fn writer_of(path: &RelPath, n: usize) -> u8 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.parent().as_bytes().hash(&mut h);
    (h.finish() % n as u64) as u8
}

impl Applier {
    /// Prepares to apply `plan` to the folder `tree`.
    pub fn new(tree: Tree, plan: Arc<Plan>, opts: ApplyOptions) -> Self {
        let tag: Arc<str> = format!(
            "{:08x}",
            std::process::id() ^ (crate::entry::now_ns() as u32)
        )
        .into();
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        let writer_count = opts
            .writers
            .unwrap_or(parallel)
            .clamp(1, MAX_WRITERS)
            .min(plan.files.len().max(1));
        let owner: Vec<u8> = plan
            .files
            .iter()
            .map(|f| writer_of(&f.entry.path, writer_count))
            .collect();
        let mut needed_by = vec![Vec::new(); plan.stream.len()];
        for (i, f) in plan.files.iter().enumerate() {
            for p in &f.pieces {
                if let crate::plan::Piece::Remote { stream, .. } = p {
                    let w: &mut Vec<u8> = &mut needed_by[*stream as usize];
                    if !w.contains(&owner[i]) {
                        w.push(owner[i]);
                    }
                }
            }
        }
        Applier {
            tree,
            feed: Feed {
                chunks: plan.stream.clone(),
                arrived: vec![false; plan.stream.len()],
                needed_by,
                queues: Vec::new(),
                fatal: Fatal::default(),
            },
            plan,
            opts,
            tag,
            owner,
            writer_count,
            extra: Vec::new(),
            extra_by_hash: HashMap::new(),
            threads: Vec::new(),
            written: None,
            current: None,
            records: None,
            leftovers: Vec::new(),
            report: ApplyReport::default(),
            update: IndexUpdate::default(),
        }
    }

    /// Adds the bytes of every file put in place to `counter` (call before
    /// [`Applier::start`]).
    pub fn count_into(&mut self, counter: Arc<AtomicU64>) {
        self.written = Some(counter);
    }

    /// Shows the path of a file as it starts being written, when `current`
    /// asks (call before [`Applier::start`]).
    pub fn show_current(&mut self, current: Arc<CurrentFile>) {
        self.current = Some(current);
    }

    /// Sends the index records of files as they are put in place, in
    /// batches (call before [`Applier::start`]); what [`Applier::finish`]
    /// and [`Applier::abort`] return is then only the rest.
    pub fn record_into(&mut self, records: chan::Sender<IndexUpdate>) {
        self.records = Some(records);
    }

    fn fail(&mut self, path: &RelPath, message: String) {
        self.report.errors.push(ApplyError {
            path: path.display(),
            message,
        });
    }

    /// Step 1: rescue, make folders, start the writers (which first write
    /// the files that need nothing from the sender). `leftovers` are temp
    /// files found by the scan: their journaled chunks may be sources in
    /// this plan, so they go only in [`Applier::finish`].
    pub fn start(&mut self, leftovers: &[RelPath]) -> Result<()> {
        self.leftovers = leftovers.to_vec();
        let rescued = self.rescue()?.map(Arc::new);
        let plan = Arc::clone(&self.plan);
        for d in &plan.dirs {
            if let Err(e) = self.make_dir(&d.path, d.replaces) {
                if is_fatal(&e) {
                    return Err(io_err(&self.tree, &d.path, e));
                }
                self.fail(&d.path, format!("cannot create folder: {e}"));
            }
        }
        let mut mine = vec![Vec::new(); self.writer_count];
        for (i, &w) in self.owner.iter().enumerate() {
            mine[w as usize].push(i as u32);
        }
        for (w, files) in mine.into_iter().enumerate() {
            let tree = self
                .tree
                .try_clone()
                .map_err(|e| Error::io(self.tree.root_path(), e))?;
            let cx = ShardContext {
                plan: Arc::clone(&plan),
                tag: Arc::clone(&self.tag),
                rescued: rescued.clone(),
                written: self.written.clone(),
                current: self.current.clone(),
                fatal: self.feed.fatal.clone(),
                records: self.records.clone(),
            };
            let budget = Arc::new(Budget::new(QUEUE_BYTES));
            let shard = Shard::new(tree, cx, files, Arc::clone(&budget));
            let (jobs, rx) = chan::unbounded();
            let thread = std::thread::Builder::new()
                .name(format!("sluice-writer-{w}"))
                .spawn(move || shard.run(rx))
                .map_err(|e| Error::io(self.tree.root_path(), e))?;
            let _ = jobs.send(Job::Start);
            self.feed.queues.push(Queue { jobs, budget });
            self.threads.push(thread);
        }
        Ok(())
    }

    fn make_dir(&mut self, path: &RelPath, replaces: Option<Kind>) -> std::io::Result<()> {
        if replaces.is_some() {
            self.report.entries_deleted += self.tree.remove_tree(path)?;
        }
        match self.tree.mkdir(path) {
            Err(e)
                if rustix::io::Errno::from_io_error(&e) == Some(rustix::io::Errno::EXIST)
                    && self.tree.lstat(path)?.is_some_and(|m| m.is_dir()) =>
            {
                Ok(())
            }
            r => r,
        }
    }

    /// Saves chunks whose only destination copies are about to go.
    fn rescue(&mut self) -> Result<Option<Rescued>> {
        let plan = Arc::clone(&self.plan);
        if plan.rescue.is_empty() {
            return Ok(None);
        }
        let root = RelPath::new(b"rescue".to_vec()).expect("valid");
        let name = temp_name(&root, &self.tag);
        let file = self
            .tree
            .create_temp(&root, &name)
            .map_err(|e| io_err(&self.tree, &root, e))?;
        let mut reader = Reader::default();
        let mut at = Vec::with_capacity(plan.rescue.len());
        let mut end = 0u64;
        for (hash, loc) in &plan.rescue {
            let slot = match reader.read(&mut self.tree, loc, hash) {
                Ok(true) => {
                    file.write_all_at(&reader.buf, end)
                        .map_err(|e| io_err(&self.tree, &root, e))?;
                    end += loc.length as u64;
                    Some(end - loc.length as u64)
                }
                Ok(false) => None,
                Err(e) if is_fatal(&e) => return Err(io_err(&self.tree, &loc.path, e)),
                Err(_) => None,
            };
            at.push(slot);
        }
        // Unlink now: the open descriptor keeps the data until we finish.
        self.tree
            .remove_temp(&root, &name)
            .map_err(|e| io_err(&self.tree, &root, e))?;
        Ok(Some(Rescued { file, at }))
    }

    /// Chunks to ask the sender for in another round (local copies that
    /// failed their check), with their stream indices; waits for the
    /// writers to finish what they were given.
    pub fn take_refetch(&mut self) -> Result<Vec<(u32, StreamChunk)>> {
        let feed = &mut self.feed;
        for (w, list) in feed.flush()? {
            let mut dests: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
            for (file, chunk) in list {
                let idx = match self.extra_by_hash.get(&chunk.hash) {
                    Some(&idx) if !feed.arrived[idx as usize] => idx,
                    _ => {
                        let idx = feed.chunks.len() as u32;
                        feed.chunks.push(StreamChunk {
                            hash: chunk.hash,
                            length: chunk.length,
                        });
                        feed.needed_by.push(Vec::new());
                        feed.arrived.push(false);
                        self.extra_by_hash.insert(chunk.hash, idx);
                        self.extra.push(idx);
                        idx
                    }
                };
                let by = &mut feed.needed_by[idx as usize];
                if !by.contains(&w) {
                    by.push(w);
                }
                dests.entry(idx).or_default().push((file, chunk.offset));
            }
            for (idx, dests) in dests {
                feed.send(w, Job::Expect { idx, dests })?;
            }
        }
        feed.check()?;
        Ok(std::mem::take(&mut self.extra)
            .into_iter()
            .map(|i| (i, feed.chunks[i as usize]))
            .collect())
    }

    /// Where shipped chunks go (after [`Applier::start`]).
    pub fn feed(&mut self) -> &mut Feed {
        &mut self.feed
    }

    /// Step 2: one shipped chunk, by stream index (see [`Feed::chunk`]).
    pub fn receive_chunk(&mut self, idx: u32, data: Vec<u8>) -> Result<()> {
        self.feed.chunk(idx, data, false)
    }

    /// The sender could not supply chunk `idx` (its source changed).
    pub fn chunk_unavailable(&mut self, idx: u32) -> Result<()> {
        self.feed.unavailable(idx)
    }

    /// Tells every writer `job()` and collects what they hand back.
    fn stop_writers(&mut self, job: impl Fn() -> Job) {
        for q in std::mem::take(&mut self.feed.queues) {
            let _ = q.jobs.send(job());
        }
        for thread in std::mem::take(&mut self.threads) {
            let Ok(out) = thread.join() else {
                self.report.errors.push(ApplyError {
                    path: String::new(),
                    message: "a writer thread panicked".into(),
                });
                continue;
            };
            let r = out.report;
            self.report.files_written += r.files_written;
            self.report.bytes_written += r.bytes_written;
            self.report.entries_deleted += r.entries_deleted;
            self.report.chunks_reused += r.chunks_reused;
            self.report.chunk_bytes_received += r.chunk_bytes_received;
            self.report.chunks_refetched += r.chunks_refetched;
            self.report.errors.extend(r.errors);
            self.update.put.extend(out.update.put);
            self.update.meta.extend(out.update.meta);
            self.update.delete.extend(out.update.delete);
        }
        self.report.errors.sort_by(|a, b| a.path.cmp(&b.path));
    }

    /// Step 3: waits for the writers, then links, metadata, deletions,
    /// folder metadata. Returns the report and the records for the
    /// destination's index.
    pub fn finish(mut self) -> Result<(ApplyReport, IndexUpdate)> {
        self.feed.flush()?;
        if let Some(e) = self.feed.fatal.take() {
            let keep = !e.is_disk_full();
            self.stop_writers(|| Job::Abort { keep_partial: keep });
            return Err(e);
        }
        self.stop_writers(|| Job::Finish);
        // Writers may have replaced folders: drop the cached descriptor.
        self.tree.forget();
        let plan = Arc::clone(&self.plan);
        for l in &plan.symlinks {
            let path = &l.entry.path;
            let target = l.entry.target.as_deref().unwrap_or_default();
            let name = temp_name(path, &self.tag);
            let r = (|| {
                if kind_is_dir(l.replaces) {
                    self.report.entries_deleted += self.tree.remove_tree(path)?;
                }
                self.tree.symlink(path, target, &name)?;
                self.tree.set_meta(path, &l.entry.meta, true)
            })();
            self.record(path, r, Some(&l.entry), false)?;
        }
        for h in &plan.hard_links {
            let name = temp_name(&h.path, &self.tag);
            let r = (|| {
                if kind_is_dir(h.replaces) {
                    self.report.entries_deleted += self.tree.remove_tree(&h.path)?;
                }
                self.tree.hard_link(&h.leader, &h.path, &name)
            })();
            self.record(&h.path, r, None, false)?;
        }
        for (path, meta) in &plan.meta {
            let r = self.tree.set_meta(path, meta, meta.kind == Kind::Symlink);
            self.record(path, r, None, true)?;
        }
        self.delete()?;
        for t in std::mem::take(&mut self.leftovers) {
            if let Err(e) = self.tree.remove(&t, false) {
                self.fail(&t, format!("cannot remove a leftover temporary file: {e}"));
            }
        }
        for (path, meta) in &plan.dir_meta {
            if self
                .tree
                .lstat(path)
                .ok()
                .flatten()
                .is_some_and(|m| m.is_dir())
            {
                let r = self.tree.set_meta(path, meta, false);
                self.record(path, r, None, false)?;
            }
        }
        Ok((
            std::mem::take(&mut self.report),
            std::mem::take(&mut self.update),
        ))
    }

    fn delete(&mut self) -> Result<()> {
        let plan = Arc::clone(&self.plan);
        if plan.deletes.is_empty() {
            return Ok(());
        }
        if self.opts.no_deletes {
            self.report.deletes_skipped = true;
            return Ok(());
        }
        if self
            .opts
            .max_delete
            .is_some_and(|max| plan.deletes.len() as u64 > max)
        {
            self.report.max_delete_hit = true;
            return Ok(());
        }
        for (path, kind) in &plan.deletes {
            match self.tree.remove(path, *kind == Kind::Dir) {
                Ok(()) => {
                    self.report.entries_deleted += 1;
                    self.update.delete.push(path.clone());
                }
                Err(e) if is_fatal(&e) => return Err(io_err(&self.tree, path, e)),
                Err(e) => self.fail(path, format!("cannot delete: {e}")),
            }
        }
        Ok(())
    }

    /// Records the outcome of one non-file operation; `meta_only` keeps
    /// the index's content record of the entry.
    fn record(
        &mut self,
        path: &RelPath,
        r: std::io::Result<()>,
        entry: Option<&Entry>,
        meta_only: bool,
    ) -> Result<()> {
        match r {
            Ok(()) => {
                if let Ok(Some(meta)) = self.tree.meta(path) {
                    if meta_only {
                        self.update
                            .meta
                            .push((path.clone(), meta, meta.trusted_checked_ns()));
                        return Ok(());
                    }
                    self.update.put.push(Entry {
                        path: path.clone(),
                        meta,
                        target: entry.and_then(|e| e.target.clone()),
                        hash: None,
                        chunks: Vec::new(),
                        checked_ns: meta.trusted_checked_ns(),
                    });
                }
                Ok(())
            }
            Err(e) if is_fatal(&e) => Err(io_err(&self.tree, path, e)),
            Err(e) => {
                self.fail(path, e.to_string());
                Ok(())
            }
        }
    }

    /// Stops after an error: removes this run's temp files, except, with
    /// `keep_partial`, those whose journals record shipped chunks (the next
    /// run resumes from them). A full disk keeps nothing: the space is what
    /// the user needs back.
    pub fn abort(mut self, keep_partial: bool) -> IndexUpdate {
        self.stop_writers(|| Job::Abort { keep_partial });
        std::mem::take(&mut self.update)
    }
}

impl Feed {
    /// A fatal error one of the writers hit, if any.
    fn check(&self) -> Result<()> {
        match self.fatal.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn send(&self, w: u8, job: Job) -> Result<()> {
        let queue = &self.queues[w as usize];
        queue.budget.acquire(job.cost());
        queue
            .jobs
            .send(job)
            .map_err(|_| Error::Usage("a writer thread stopped unexpectedly".into()))
    }

    /// Waits until every writer has done every job sent so far; returns the
    /// local chunks they found unusable.
    fn flush(&self) -> Result<Vec<(u8, Refetch)>> {
        let mut replies = Vec::new();
        for w in 0..self.queues.len() {
            let (tx, rx) = chan::bounded(1);
            self.send(w as u8, Job::Flush(tx))?;
            replies.push((w as u8, rx));
        }
        replies
            .into_iter()
            .map(|(w, rx)| {
                rx.recv()
                    .map(|list| (w, list))
                    .map_err(|_| Error::Usage("a writer thread stopped unexpectedly".into()))
            })
            .collect()
    }

    /// The length and hash shipped chunk `idx` must have.
    fn expected(&self, idx: u32) -> Option<StreamChunk> {
        self.chunks.get(idx as usize).copied()
    }

    /// One shipped chunk, by stream index. Writers check it against its
    /// hash unless `verified` says the caller already did. Waits while the
    /// writers that need it have too much queued.
    pub fn chunk(&mut self, idx: u32, data: Vec<u8>, verified: bool) -> Result<()> {
        self.check()?;
        let Some(expect) = self.expected(idx) else {
            return Err(ProtocolError::unknown("chunk", idx, "requested").into());
        };
        if std::mem::replace(&mut self.arrived[idx as usize], true) {
            return Ok(());
        }
        if self.queues.is_empty() {
            return Err(Error::Usage(
                "chunk received before the applier started".into(),
            ));
        }
        let data = Arc::new(data);
        for (k, &w) in self.needed_by[idx as usize].iter().enumerate() {
            self.send(
                w,
                Job::Chunk {
                    idx,
                    expect,
                    data: Arc::clone(&data),
                    count: k == 0,
                    verified,
                },
            )?;
        }
        Ok(())
    }

    /// The sender could not supply chunk `idx` (its source changed).
    pub fn unavailable(&mut self, idx: u32) -> Result<()> {
        let Some(by) = self.needed_by.get(idx as usize) else {
            return Ok(());
        };
        for &w in by {
            self.send(w, Job::Unavailable(idx))?;
        }
        Ok(())
    }
}

impl Drop for Applier {
    fn drop(&mut self) {
        // Dropped without finish or abort (a panic above us): keep what a
        // later run can resume from.
        if !self.threads.is_empty() {
            self.stop_writers(|| Job::Abort { keep_partial: true });
        }
    }
}
