//! A file's temp file: created (or reopened, after it was closed to bound
//! open descriptors) and, when new, filled with the pieces the destination
//! already has, read from other files or from the rescued chunks.
//!
//! A local piece that fails its check becomes a chunk to fetch from the
//! sender. It never writes shipped chunks and never puts a file in place.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::Shard;
use crate::apply::tree::temp_name;
use crate::apply::{io_err, is_fatal};
use crate::chunk::{ChunkRef, Hash};
use crate::error::Result;
use crate::plan::{FileOp, Piece};

/// Temp files one shard keeps open at once while chunks arrive.
const MAX_OPEN: usize = 64;

impl Shard {
    /// Creates file `i`'s temp file (if not yet) and copies in its local pieces.
    pub(super) fn open_file(&mut self, i: usize) -> Result<Option<&File>> {
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
}
