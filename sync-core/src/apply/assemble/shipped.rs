//! Chunks shipped by the sender: checked against their hash, written at
//! every place this shard needs them, and recorded in the journal of a
//! large file so an interrupted run can resume.
//!
//! A chunk the sender could not supply, or that fails its check (its
//! source changed), abandons the files that needed it. It never reads the
//! destination and never puts a file in place.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::Shard;
use crate::apply::journal;
use crate::apply::tree::temp_name;
use crate::apply::{io_err, is_fatal};
use crate::chunk::Hash;
use crate::error::Result;
use crate::plan::StreamChunk;

impl Shard {
    /// One shipped chunk: verify it, write it everywhere this shard needs it.
    pub(super) fn receive(
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
    pub(super) fn drop_journal(&mut self, i: usize) {
        let s = &mut self.files[i];
        if s.journal.take().is_some() || s.journal_len > 0 {
            let path = &self.cx.plan.files[i].entry.path;
            let _ = self
                .tree
                .remove_temp(path, &journal::name_for(&temp_name(path, &self.cx.tag)));
        }
    }

    /// The sender could not supply chunk `idx` (its source changed).
    pub(super) fn unavailable(&mut self, idx: u32) {
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
}
