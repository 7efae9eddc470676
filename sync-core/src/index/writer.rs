//! The write side: [`Writer`], one batch of entry, chunk, meta and scan-log
//! writes in one immediate transaction.
//!
//! Batching is where write speed comes from (one commit per batch, not per
//! row). This file never reads beyond what a write needs (a path's row id)
//! and never touches the tree on disk.

use std::path::PathBuf;

use rusqlite::{params, OptionalExtension};

use super::{Index, SET_META};
use crate::entry::{Entry, Meta};
use crate::error::{Error, Result};
use crate::path::RelPath;

impl Index {
    /// Starts a batch of writes in one transaction.
    pub fn writer(&mut self) -> Result<Writer<'_>> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| Error::sqlite(&path, e))?;
        Ok(Writer { tx, path })
    }
}

/// A batch of index writes, committed together.
pub struct Writer<'a> {
    tx: rusqlite::Transaction<'a>,
    path: PathBuf,
}

impl Writer<'_> {
    fn err(&self, e: rusqlite::Error) -> Error {
        Error::sqlite(&self.path, e)
    }

    /// Inserts or replaces an entry and its chunks. `replaces` is the id of
    /// the row previously stored for that path, whose chunks are dropped.
    pub fn put(&self, e: &Entry, replaces: Option<i64>) -> Result<i64> {
        if let Some(old) = replaces {
            self.tx
                .prepare_cached("DELETE FROM chunks WHERE entry = ?1")
                .and_then(|mut s| s.execute([old]))
                .map_err(|x| self.err(x))?;
        }
        let m = &e.meta;
        let id: i64 = self
            .tx
            .prepare_cached(
                "INSERT INTO entries(path, kind, size, mtime_ns, mode, ino, dev, ctime_ns, nlink, target, hash, checked_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT(path) DO UPDATE SET kind = excluded.kind, size = excluded.size,
                   mtime_ns = excluded.mtime_ns, mode = excluded.mode, ino = excluded.ino,
                   dev = excluded.dev, ctime_ns = excluded.ctime_ns, nlink = excluded.nlink,
                   target = excluded.target, hash = excluded.hash, checked_ns = excluded.checked_ns
                 RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        e.path.as_bytes(),
                        m.kind.code(),
                        m.size as i64,
                        m.mtime_ns,
                        m.mode as i64,
                        m.ino as i64,
                        m.dev as i64,
                        m.ctime_ns,
                        m.nlink as i64,
                        e.target.as_deref(),
                        e.hash.as_ref().map(|h| &h.0[..]),
                        e.checked_ns,
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(|x| self.err(x))?;
        if replaces.is_some_and(|old| old != id) {
            // The conflict path keeps the row id; anything else is a bug in
            // the caller's bookkeeping, but stale chunks must not survive it.
            self.delete_chunks(id)?;
        }
        if !e.chunks.is_empty() {
            let mut stmt = self
                .tx
                .prepare_cached("INSERT INTO chunks(entry, ordinal, offset, length, hash) VALUES (?1, ?2, ?3, ?4, ?5)")
                .map_err(|x| self.err(x))?;
            for (i, c) in e.chunks.iter().enumerate() {
                stmt.execute(params![
                    id,
                    i as i64,
                    c.offset as i64,
                    c.length as i64,
                    &c.hash.0[..]
                ])
                .map_err(|x| self.err(x))?;
            }
        }
        Ok(id)
    }

    fn delete_chunks(&self, id: i64) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM chunks WHERE entry = ?1")
            .and_then(|mut s| s.execute([id]))
            .map(|_| ())
            .map_err(|x| self.err(x))
    }

    /// Removes an entry and its chunks by row id.
    pub fn delete(&self, id: i64) -> Result<()> {
        self.delete_chunks(id)?;
        self.tx
            .prepare_cached("DELETE FROM entries WHERE id = ?1")
            .and_then(|mut s| s.execute([id]))
            .map(|_| ())
            .map_err(|x| self.err(x))
    }

    /// Removes the entry at `path` (and its chunks), if present.
    pub fn delete_path(&self, path: &RelPath) -> Result<()> {
        let id: Option<i64> = self
            .tx
            .prepare_cached("SELECT id FROM entries WHERE path = ?1")
            .and_then(|mut s| s.query_row([path.as_bytes()], |r| r.get(0)).optional())
            .map_err(|x| self.err(x))?;
        match id {
            Some(id) => self.delete(id),
            None => Ok(()),
        }
    }

    /// Replaces the record at `e.path`, whatever row held it before.
    pub fn put_path(&self, e: &Entry) -> Result<i64> {
        self.delete_path(&e.path)?;
        self.put(e, None)
    }

    /// Updates the metadata of the entry at `path`, keeping its content record.
    pub fn update_meta(&self, path: &RelPath, m: &Meta, checked_ns: i64) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE entries SET size = ?2, mtime_ns = ?3, mode = ?4, ino = ?5, dev = ?6, ctime_ns = ?7, nlink = ?8, checked_ns = ?9 WHERE path = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    path.as_bytes(),
                    m.size as i64,
                    m.mtime_ns,
                    m.mode as i64,
                    m.ino as i64,
                    m.dev as i64,
                    m.ctime_ns,
                    m.nlink as i64,
                    checked_ns
                ])
            })
            .map(|_| ())
            .map_err(|x| self.err(x))
    }

    /// Removes every entry and chunk (chunking parameters changed).
    pub fn clear(&self) -> Result<()> {
        self.tx
            .execute_batch("DELETE FROM chunks; DELETE FROM entries;")
            .map_err(|x| self.err(x))
    }

    /// Sets a meta value inside the batch.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.tx
            .prepare_cached(SET_META)
            .and_then(|mut s| s.execute([key, value]))
            .map(|_| ())
            .map_err(|x| self.err(x))
    }

    /// Appends a row to the scan history.
    pub fn log_scan(&self, s: &ScanLog) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO scans(started_ns, duration_ms, entries, files_read, bytes_read, warnings) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    s.started_ns,
                    s.duration_ms as i64,
                    s.entries as i64,
                    s.files_read as i64,
                    s.bytes_read as i64,
                    s.warnings as i64
                ])
            })
            .map(|_| ())
            .map_err(|x| self.err(x))
    }

    /// Makes the batch durable.
    pub fn commit(self) -> Result<()> {
        let path = self.path;
        self.tx.commit().map_err(|e| Error::sqlite(path, e))
    }
}

/// One row of the scan history.
#[derive(Clone, Debug, Default)]
pub struct ScanLog {
    pub started_ns: i64,
    pub duration_ms: u64,
    pub entries: u64,
    pub files_read: u64,
    pub bytes_read: u64,
    pub warnings: u64,
}
