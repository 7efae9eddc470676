//! [`Applier`]: assembling files from local and shipped chunks.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::journal;
use super::tree::{temp_name, Tree};
use super::{io_err, kind_is_dir, ApplyError, ApplyOptions, ApplyReport, IndexUpdate, StreamMap};
use crate::chunk::{ChunkRef, Hash};
use crate::entry::{Entry, Kind};
use crate::error::{Error, Result};
use crate::manifest::ChunkLocation;
use crate::path::RelPath;
use crate::plan::{FileOp, Piece, Plan, StreamChunk};

/// Temp files kept open at once while chunks arrive.
const MAX_OPEN: usize = 128;

#[derive(Default)]
struct FileState {
    file: Option<File>,
    created: bool,
    /// The journal of shipped chunks, for files large enough to have one.
    journal: Option<File>,
    journal_len: u64,
    /// Stream chunks still to arrive.
    missing: u32,
    failed: bool,
    done: bool,
}

/// Executes one plan against one destination tree.
pub struct Applier<'p> {
    tree: Tree,
    plan: &'p Plan,
    opts: ApplyOptions,
    tag: String,
    files: Vec<FileState>,
    stream: StreamMap,
    /// Stream chunks added after the plan (local copies that failed).
    extra: Vec<u32>,
    extra_by_hash: HashMap<Hash, u32>,
    spool: Option<File>,
    /// Offset of each rescue slot in the spool; `None` if it could not be saved.
    spool_at: Vec<Option<u64>>,
    source: Option<(RelPath, File)>,
    open: usize,
    report: ApplyReport,
    update: IndexUpdate,
    buf: Vec<u8>,
    written: Option<Arc<AtomicU64>>,
    leftovers: Vec<RelPath>,
}

/// Errors that end the whole run rather than one file.
fn is_fatal(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EROFS) | Some(libc::EIO)
    )
}

impl<'p> Applier<'p> {
    /// Prepares to apply `plan` to the folder `tree`.
    pub fn new(tree: Tree, plan: &'p Plan, opts: ApplyOptions) -> Self {
        let tag = format!(
            "{:08x}",
            std::process::id() ^ (crate::entry::now_ns() as u32)
        );
        let mut stream = StreamMap::default();
        for c in &plan.stream {
            stream.push(*c);
        }
        let mut files: Vec<FileState> = plan.files.iter().map(|_| FileState::default()).collect();
        for (i, f) in plan.files.iter().enumerate() {
            for p in &f.pieces {
                if let Piece::Remote { chunk, stream: s } = p {
                    stream.dests[*s as usize].push((i as u32, chunk.offset));
                    files[i].missing += 1;
                }
            }
        }
        Applier {
            tree,
            plan,
            opts,
            tag,
            files,
            stream,
            extra: Vec::new(),
            extra_by_hash: HashMap::new(),
            spool: None,
            spool_at: Vec::new(),
            source: None,
            open: 0,
            report: ApplyReport::default(),
            update: IndexUpdate::default(),
            buf: Vec::new(),
            written: None,
            leftovers: Vec::new(),
        }
    }

    /// Adds the bytes of every file put in place to `counter`.
    pub fn count_into(&mut self, counter: Arc<AtomicU64>) {
        self.written = Some(counter);
    }

    fn fail(&mut self, path: &RelPath, message: String) {
        self.report.errors.push(ApplyError {
            path: path.display(),
            message,
        });
    }

    /// Step 1: rescue, make folders, write files that need nothing from the
    /// sender. `leftovers` are temp files found by the scan: their journaled
    /// chunks may be sources in this plan, so they go only in [`finish`].
    ///
    /// [`finish`]: Applier::finish
    pub fn start(&mut self, leftovers: &[RelPath]) -> Result<()> {
        self.leftovers = leftovers.to_vec();
        self.rescue()?;
        let plan = self.plan;
        for d in &plan.dirs {
            if let Err(e) = self.make_dir(&d.path, d.replaces) {
                if is_fatal(&e) {
                    return Err(io_err(&self.tree, &d.path, e));
                }
                self.fail(&d.path, format!("cannot create folder: {e}"));
            }
        }
        for i in 0..plan.files.len() {
            if self.files[i].missing == 0 {
                self.open_file(i)?;
                self.finalize(i)?;
            }
        }
        Ok(())
    }

    fn make_dir(&mut self, path: &RelPath, replaces: Option<Kind>) -> std::io::Result<()> {
        if replaces.is_some() {
            self.report.entries_deleted += self.tree.remove_tree(path)?;
        }
        match self.tree.mkdir(path) {
            Err(e)
                if e.raw_os_error() == Some(libc::EEXIST)
                    && self.tree.lstat(path)?.is_some_and(|m| m.is_dir()) =>
            {
                Ok(())
            }
            r => r,
        }
    }

    /// Saves chunks whose only destination copies are about to go.
    fn rescue(&mut self) -> Result<()> {
        let plan = self.plan;
        if plan.rescue.is_empty() {
            return Ok(());
        }
        let root = RelPath::new(b"rescue".to_vec()).expect("valid");
        let name = temp_name(&root, &self.tag);
        let spool = self
            .tree
            .create_temp(&root, &name)
            .map_err(|e| io_err(&self.tree, &root, e))?;
        let mut at = 0u64;
        for (hash, loc) in &plan.rescue {
            let slot = match self.read_local(loc, hash) {
                Ok(Some(())) => {
                    let len = loc.length as u64;
                    spool
                        .write_all_at(&self.buf[..loc.length as usize], at)
                        .map_err(|e| io_err(&self.tree, &root, e))?;
                    at += len;
                    Some(at - len)
                }
                Ok(None) => None,
                Err(e) if is_fatal(&e) => return Err(io_err(&self.tree, &loc.path, e)),
                Err(_) => None,
            };
            self.spool_at.push(slot);
        }
        // Unlink now: the open descriptor keeps the data until we finish.
        self.tree
            .remove_temp(&root, &name)
            .map_err(|e| io_err(&self.tree, &root, e))?;
        self.spool = Some(spool);
        Ok(())
    }

    /// Reads a chunk from a destination file into `self.buf`; `Ok(None)` if
    /// its bytes no longer match their hash.
    fn read_local(&mut self, loc: &ChunkLocation, hash: &Hash) -> std::io::Result<Option<()>> {
        let reuse = matches!(&self.source, Some((p, _)) if *p == loc.path);
        if !reuse {
            self.source = Some((loc.path.clone(), self.tree.open_read(&loc.path)?));
        }
        let (_, f) = self.source.as_ref().expect("just opened");
        self.buf.resize(loc.length as usize, 0);
        match f.read_exact_at(&mut self.buf, loc.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        Ok((Hash::of(&self.buf) == *hash).then_some(()))
    }

    /// Creates file `i`'s temp file (if not yet) and copies in its local pieces.
    fn open_file(&mut self, i: usize) -> Result<Option<&File>> {
        let op: &FileOp = &self.plan.files[i];
        let path = &op.entry.path;
        if self.files[i].failed {
            return Ok(None);
        }
        if self.files[i].file.is_none() {
            let name = temp_name(path, &self.tag);
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
            if !self.files[i].created {
                self.files[i].created = true;
                file.set_len(op.entry.meta.size)
                    .map_err(|e| io_err(&self.tree, path, e))?;
                self.files[i].file = Some(file);
                self.copy_local_pieces(i)?;
            } else {
                self.files[i].file = Some(file);
            }
        }
        Ok(self.files[i].file.as_ref())
    }

    fn close_some(&mut self, keep: usize) {
        if let Some(s) = self
            .files
            .iter_mut()
            .enumerate()
            .find(|(j, s)| *j != keep && s.file.is_some())
        {
            s.1.file = None;
            self.open -= 1;
        }
    }

    fn copy_local_pieces(&mut self, i: usize) -> Result<()> {
        let op: &'p FileOp = &self.plan.files[i];
        for p in &op.pieces {
            let ok = match p {
                Piece::Remote { .. } => continue,
                Piece::Local { chunk, from } => match self.read_local(from, &chunk.hash) {
                    Ok(r) => r.is_some(),
                    Err(e) if is_fatal(&e) => return Err(io_err(&self.tree, &from.path, e)),
                    Err(_) => false,
                },
                Piece::Rescued { chunk, slot } => self.read_spool(*slot, chunk)?,
            };
            if ok {
                let f = self.files[i].file.as_ref().expect("open");
                f.write_all_at(&self.buf, p.chunk().offset)
                    .map_err(|e| io_err(&self.tree, &op.entry.path, e))?;
                self.report.chunks_reused += 1;
            } else {
                self.refetch(i, p.chunk());
            }
        }
        Ok(())
    }

    fn read_spool(&mut self, slot: u32, chunk: &ChunkRef) -> Result<bool> {
        let (Some(spool), Some(Some(at))) = (&self.spool, self.spool_at.get(slot as usize)) else {
            return Ok(false);
        };
        self.buf.resize(chunk.length as usize, 0);
        spool
            .read_exact_at(&mut self.buf, *at)
            .map_err(|e| Error::io(self.tree.root_path(), e))?;
        Ok(Hash::of(&self.buf) == chunk.hash)
    }

    /// A local chunk was not usable: ask the sender for it in the next round.
    fn refetch(&mut self, i: usize, chunk: &ChunkRef) {
        let idx = match self.extra_by_hash.get(&chunk.hash) {
            Some(&idx) if !self.stream.arrived[idx as usize] => idx,
            _ => {
                let idx = self.stream.push(StreamChunk {
                    hash: chunk.hash,
                    length: chunk.length,
                });
                self.extra_by_hash.insert(chunk.hash, idx);
                self.extra.push(idx);
                idx
            }
        };
        self.stream.dests[idx as usize].push((i as u32, chunk.offset));
        self.files[i].missing += 1;
        self.report.chunks_refetched += 1;
    }

    /// Adds a temporary file of this run to remove in [`Applier::finish`]
    /// (kept by [`Applier::abort`], so a later run can resume from it).
    ///
    /// [`Applier::finish`]: Applier::finish
    pub fn add_leftover(&mut self, path: RelPath) {
        self.leftovers.push(path);
    }

    /// Chunks to ask the sender for in another round, with their stream
    /// indices; empties the list.
    pub fn take_refetch(&mut self) -> Vec<(u32, StreamChunk)> {
        std::mem::take(&mut self.extra)
            .into_iter()
            .map(|i| (i, self.stream.chunks[i as usize]))
            .collect()
    }

    /// Step 2: one shipped chunk, by stream index.
    pub fn receive_chunk(&mut self, idx: u32, data: &[u8]) -> Result<()> {
        let Some(expect) = self.stream.chunks.get(idx as usize).copied() else {
            return Err(Error::Protocol(format!(
                "peer sent chunk {idx}, which was never requested"
            )));
        };
        if self.stream.arrived[idx as usize] {
            return Ok(());
        }
        if data.len() != expect.length as usize || Hash::of(data) != expect.hash {
            // The sender reads chunks from live files without re-hashing:
            // a mismatch means the source file changed since its scan.
            self.chunk_unavailable(idx);
            return Ok(());
        }
        self.report.chunk_bytes_received += data.len() as u64;
        self.stream.arrived[idx as usize] = true;
        let dests = std::mem::take(&mut self.stream.dests[idx as usize]);
        for (i, off) in dests {
            let i = i as usize;
            let path = &self.plan.files[i].entry.path;
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
            self.journal(i, off, &expect)?;
            self.files[i].missing -= 1;
            if self.files[i].missing == 0 {
                self.finalize(i)?;
            }
        }
        Ok(())
    }

    /// Records a shipped chunk in file `i`'s journal (large files only).
    fn journal(&mut self, i: usize, offset: u64, c: &StreamChunk) -> Result<()> {
        let op: &'p FileOp = &self.plan.files[i];
        let remote = op
            .pieces
            .iter()
            .filter(|p| matches!(p, Piece::Remote { .. }))
            .count();
        if (remote as u32) < journal::MIN_CHUNKS {
            return Ok(());
        }
        let path = &op.entry.path;
        let name = journal::name_for(&temp_name(path, &self.tag));
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
            let path = &self.plan.files[i].entry.path;
            let _ = self
                .tree
                .remove_temp(path, &journal::name_for(&temp_name(path, &self.tag)));
        }
    }

    /// The sender could not supply chunk `idx` (its source changed).
    pub fn chunk_unavailable(&mut self, idx: u32) {
        let Some(dests) = self.stream.dests.get_mut(idx as usize).map(std::mem::take) else {
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
        let path = self.plan.files[i].entry.path.clone();
        if s.created {
            let _ = self.tree.remove_temp(&path, &temp_name(&path, &self.tag));
        }
        self.drop_journal(i);
        self.fail(&path, message);
    }

    /// Verifies file `i` as a whole, sets its metadata and renames it into place.
    fn finalize(&mut self, i: usize) -> Result<()> {
        let op: &'p FileOp = &self.plan.files[i];
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
        // Every chunk was verified as it was written; a file of several
        // chunks is read back once to prove they landed in the right places.
        if op.entry.chunks.len() > 1 && whole_hash(&file, &mut self.buf).ok() != op.entry.hash {
            self.files[i].file = Some(file);
            self.open += 1;
            self.abandon(i, "assembled file failed its BLAKE3 check".into());
            return Ok(());
        }
        let name = temp_name(path, &self.tag);
        let placed = Tree::set_file_meta(&file, &op.entry.meta).and_then(|()| {
            if kind_is_dir(op.replaces) {
                self.report.entries_deleted += self.tree.remove_tree(path)?;
            }
            self.tree.rename_temp(path, &name)
        });
        drop(file);
        if let Err(e) = placed {
            let _ = self.tree.remove_temp(path, &name);
            if is_fatal(&e) {
                return Err(io_err(&self.tree, path, e));
            }
            self.files[i].failed = true;
            self.fail(path, format!("cannot put in place: {e}"));
            return Ok(());
        }
        self.files[i].done = true;
        self.drop_journal(i);
        self.report.files_written += 1;
        if let Some(c) = &self.written {
            c.fetch_add(op.entry.meta.size, Ordering::Relaxed);
        }
        self.report.bytes_written += op.entry.meta.size;
        let mut entry = op.entry.clone();
        if let Ok(Some(m)) = self.tree.meta(path) {
            entry.meta = m;
            entry.checked_ns = m.trusted_checked_ns();
            self.update.put.push(entry);
        }
        Ok(())
    }

    /// Step 3: links, metadata, deletions, folder metadata. Returns the
    /// report and the records for the destination's index.
    pub fn finish(mut self) -> Result<(ApplyReport, IndexUpdate)> {
        let plan = self.plan;
        for i in 0..plan.files.len() {
            let s = &self.files[i];
            if !s.done && !s.failed {
                self.abandon(i, "not all of its chunks arrived".into());
            }
        }
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
        self.spool = None;
        Ok((self.report, self.update))
    }

    fn delete(&mut self) -> Result<()> {
        let plan = self.plan;
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

    /// Stops after a fatal error: removes this run's temp files, except,
    /// with `keep_partial`, those whose journals record shipped chunks (the
    /// next run resumes from them). A full disk keeps nothing: the space is
    /// what the user needs back.
    pub fn abort(mut self, keep_partial: bool) -> IndexUpdate {
        for i in 0..self.files.len() {
            if keep_partial && self.files[i].journal_len > 0 && !self.files[i].done {
                let s = &mut self.files[i];
                s.file = None;
                s.journal = None;
                s.failed = true;
                continue;
            }
            self.abandon(i, "run aborted".into());
        }
        std::mem::take(&mut self.update)
    }

    /// Records so far (for the index after an abort).
    pub fn report(&self) -> &ApplyReport {
        &self.report
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
