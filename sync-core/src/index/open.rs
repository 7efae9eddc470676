//! The [`Index`] type: opening a file, refusing foreign and newer ones,
//! locking, pragmas, migration, and the meta table.
//!
//! Everything here runs before (or beside) the entry and chunk tables:
//! this file decides whether a file is ours and how SQLite is tuned for
//! it. It never reads or writes entries or chunks (see `reads.rs` and
//! `writer.rs`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use super::{schema, SET_META};
use crate::chunk::ChunkParams;
use crate::error::{Error, Result};
use crate::path::RelPath;

/// How long to wait for another process holding the index.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// An open index file.
pub struct Index {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
}

impl Index {
    /// Opens (creating if missing) the index at `path`, refusing foreign and
    /// newer files without modifying them, and migrating older ones.
    pub fn open(path: &Path) -> Result<Index> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        check_header(path)?;
        let conn = crate::sqlite_file::open(path, |e| Error::sqlite(path, e))?;
        let mut index = Index {
            conn,
            path: path.to_path_buf(),
        };
        index.prepare()?;
        Ok(index)
    }

    /// [`Index::open`] for a second connection that only reads, with
    /// SQLite's default page cache (2 MiB) instead of the writer's 16: its
    /// range reads and lookups are served by the OS page cache as well.
    /// With 16 MiB on all four connections of a local sync, a first sync of
    /// a million files peaked at 234-250 MB (2026-12-07).
    pub fn open_reader(path: &Path) -> Result<Index> {
        let index = Index::open(path)?;
        index
            .conn
            .pragma_update(None, "cache_size", -2000)
            .map_err(|e| index.err(e))?;
        Ok(index)
    }

    /// An index held in memory (tests, dry runs on throwaway trees).
    pub fn open_in_memory() -> Result<Index> {
        let conn = Connection::open_in_memory().map_err(|e| Error::sqlite(":memory:", e))?;
        let mut index = Index {
            conn,
            path: PathBuf::from(":memory:"),
        };
        index.prepare()?;
        Ok(index)
    }

    /// The file this index lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn err(&self, e: rusqlite::Error) -> Error {
        Error::sqlite(&self.path, e)
    }

    fn prepare(&mut self) -> Result<()> {
        let path = self.path.clone();
        let sql = |e| Error::sqlite(&path, e);
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
        let version: u32 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| not_an_index(&path, e))?;
        let app_id: i32 = self
            .conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(|e| not_an_index(&path, e))?;
        let tables: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| not_an_index(&path, e))?;
        if app_id != schema::APPLICATION_ID && (app_id != 0 || tables > 0 || version > 0) {
            return Err(Error::NotAnIndex {
                path,
                reason: "it is an SQLite database of another program".into(),
            });
        }
        if version > schema::LATEST {
            return Err(Error::IndexTooNew {
                path,
                found: version,
                supported: schema::LATEST,
            });
        }
        // From here on the file is ours to write.
        let _: String = self
            .conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sql)?;
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        if version < schema::LATEST {
            self.migrate(version)?;
        }
        // 16 MiB of page cache (SQLite's default is 2): new chunks land at
        // random places of the hash index, and with a small cache every
        // commit writes most of that index again. A first sync of a million
        // files wrote 10.7 GB with the default and 7.2 GB with this (plus
        // 64K-row scan commits), and took 66 s instead of 94.
        self.conn
            .pragma_update(None, "cache_size", -16384)
            .map_err(sql)?;
        Ok(())
    }

    fn migrate(&mut self, from: u32) -> Result<()> {
        let path = self.path.clone();
        crate::sqlite_file::migrate(
            &mut self.conn,
            schema::APPLICATION_ID,
            schema::MIGRATIONS,
            |e| Error::sqlite(&path, e),
            |tx, now| {
                if now < from {
                    return Err(Error::NotAnIndex {
                        path: path.clone(),
                        reason: "its version went backwards while opening".into(),
                    });
                }
                // Also readable with any SQLite tool, beside the pragma.
                tx.execute(SET_META, ["format_version", &schema::LATEST.to_string()])
                    .map(drop)
                    .map_err(|e| Error::sqlite(&path, e))
            },
        )
    }

    /// The schema version of the open file.
    pub fn version(&self) -> Result<u32> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// A value from the meta table.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// Sets a value in the meta table.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .prepare_cached(SET_META)
            .and_then(|mut s| s.execute([key, value]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The chunking parameters the stored chunks were cut with, if any.
    pub fn chunk_params(&self) -> Result<Option<ChunkParams>> {
        match self.meta("chunk_params")? {
            None => Ok(None),
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| Error::NotAnIndex {
                    path: self.path.clone(),
                    reason: format!("bad chunk_params: {e}"),
                }),
        }
    }

    /// Records the chunking parameters.
    pub fn set_chunk_params(&self, p: ChunkParams) -> Result<()> {
        let s = serde_json::to_string(&p).expect("params serialise");
        self.set_meta("chunk_params", &s)
    }

    /// `bytes` as a path, or the error for a corrupt row.
    pub(super) fn checked_path(&self, bytes: Vec<u8>) -> Result<RelPath> {
        RelPath::new(bytes).map_err(|e| self.corrupt(&e.to_string()))
    }

    /// The error for a row this index could not have written.
    pub(super) fn corrupt(&self, why: &str) -> Error {
        Error::NotAnIndex {
            path: self.path.clone(),
            reason: format!("corrupt entry: {why}"),
        }
    }
}

fn not_an_index(path: &Path, e: rusqlite::Error) -> Error {
    Error::NotAnIndex {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Refuses a non-empty file that does not start with SQLite's magic header,
/// before SQLite gets a chance to touch it.
fn check_header(path: &Path) -> Result<()> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut head = [0u8; 16];
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    if got == 0 || &head[..got] == b"SQLite format 3\0" {
        Ok(())
    } else {
        Err(Error::NotAnIndex {
            path: path.to_path_buf(),
            reason: "it is not an SQLite database".into(),
        })
    }
}
