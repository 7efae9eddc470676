//! The end of one file: checked whole against its BLAKE3, given its
//! metadata and renamed over its target, with its index record sent on;
//! or abandoned, its temp file and journal removed and its target left as
//! it was.
//!
//! Nothing half-written is ever visible at a final path. It never writes
//! chunks.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Shard;
use crate::apply::tree::{temp_name, Tree};
use crate::apply::{io_err, is_fatal, kind_is_dir};
use crate::chunk::Hash;
use crate::entry::Meta;
use crate::error::Result;
use crate::plan::FileOp;

/// Index records sent on at a time.
const RECORD_BATCH: usize = 512;

impl Shard {
    /// Gives up on file `i`: its temp file goes, its target stays as it was.
    pub(super) fn abandon(&mut self, i: usize, message: String) {
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
    pub(super) fn finalize(&mut self, i: usize) -> Result<()> {
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
