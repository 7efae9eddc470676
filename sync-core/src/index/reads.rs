//! The read side: whole-tree loads into a [`Manifest`] and the windowed,
//! path-ordered [`Reads`] a session plans a big tree with.
//!
//! Every query here is a `SELECT`; this file never writes (see
//! `writer.rs`) and never touches the tree on disk.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{meta_from_row, subtree_bounds, Index};
use crate::chunk::{ChunkRef, Hash};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::manifest::{ChunkLocation, Manifest};
use crate::path::RelPath;
use crate::scope::Scopes;

impl Index {
    /// Loads every entry with its chunks.
    pub fn manifest(&self) -> Result<Manifest> {
        let mut m = self.entries_manifest()?;
        self.load_chunks(&mut m)?;
        Ok(m)
    }

    /// Loads every entry, without chunk lists (see [`Index::load_chunks`]):
    /// a sync where nothing changed needs none.
    pub fn entries_manifest(&self) -> Result<Manifest> {
        Ok(Manifest {
            params: self.chunk_params()?.unwrap_or_default(),
            entries: self
                .reads()
                .entries(None, None, usize::MAX)?
                .into_iter()
                .map(|(_, e)| (e.path.clone(), e))
                .collect(),
        })
    }

    /// Fills in the chunk lists of the entries of `m` (loaded by
    /// [`Index::entries_manifest`] from this index) that have none.
    pub fn load_chunks(&self, m: &mut Manifest) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT e.path, c.offset, c.length, c.hash FROM chunks c JOIN entries e ON e.id = c.entry ORDER BY c.entry, c.ordinal",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        // The rows of one entry come together: the entry they fill, if
        // it had no list yet.
        let mut current: Option<(Vec<u8>, Option<RelPath>)> = None;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let raw: Vec<u8> = r.get(0).map_err(|e| self.err(e))?;
            let hash: Vec<u8> = r.get(3).map_err(|e| self.err(e))?;
            let chunk = ChunkRef {
                offset: r.get::<_, i64>(1).map_err(|e| self.err(e))? as u64,
                length: r.get::<_, i64>(2).map_err(|e| self.err(e))? as u32,
                hash: Hash::from_slice(&hash).ok_or_else(|| self.corrupt("chunk hash length"))?,
            };
            if current.as_ref().is_none_or(|(bytes, _)| *bytes != raw) {
                let path = self.checked_path(raw.clone())?;
                let fill = m.entries.get(&path).is_some_and(|e| e.chunks.is_empty());
                current = Some((raw, fill.then_some(path)));
            }
            if let Some((_, Some(path))) = &current {
                if let Some(e) = m.entries.get_mut(path) {
                    e.chunks.push(chunk);
                }
            }
        }
        Ok(())
    }
}

/// Path-ordered reads of part of a tree, for a session that plans and
/// ships a big tree window by window instead of holding all of it.
pub struct Reads<'c> {
    conn: &'c Connection,
    path: &'c Path,
}

/// Columns of an entry row, as [`Reads::entry_row`] reads them.
const ENTRY_COLUMNS: &str =
    "id, path, kind, size, mtime_ns, mode, ino, dev, ctime_ns, nlink, hash, checked_ns, target";

impl Index {
    /// Windowed reads on this index.
    pub fn reads(&self) -> Reads<'_> {
        Reads {
            conn: &self.conn,
            path: &self.path,
        }
    }
}

impl Reads<'_> {
    fn err(&self, e: rusqlite::Error) -> Error {
        Error::sqlite(self.path, e)
    }

    fn corrupt(&self, why: &str) -> Error {
        Error::NotAnIndex {
            path: self.path.to_path_buf(),
            reason: format!("corrupt entry: {why}"),
        }
    }

    fn entry_row(&self, r: &rusqlite::Row<'_>) -> Result<(i64, Entry)> {
        let id: i64 = r.get(0).map_err(|e| self.err(e))?;
        let raw: Vec<u8> = r.get(1).map_err(|e| self.err(e))?;
        let path = RelPath::new(raw).map_err(|e| self.corrupt(&e.to_string()))?;
        let meta = meta_from_row(r, 2)
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.corrupt("unknown entry kind"))?;
        let hash = match r.get_ref(10).map_err(|e| self.err(e))? {
            rusqlite::types::ValueRef::Null => None,
            rusqlite::types::ValueRef::Blob(b) => {
                Some(Hash::from_slice(b).ok_or_else(|| self.corrupt("file hash length"))?)
            }
            _ => return Err(self.corrupt("file hash type")),
        };
        let checked_ns: i64 = r.get(11).map_err(|e| self.err(e))?;
        let target: Option<Vec<u8>> = r.get(12).map_err(|e| self.err(e))?;
        Ok((
            id,
            Entry {
                path,
                meta,
                target,
                hash,
                chunks: Vec::new(),
                checked_ns,
            },
        ))
    }

    /// Up to `limit` entries in path order (without chunk lists, with their
    /// row ids): those after `after` (from the first when `None`) and, when
    /// `upto` is given, not after it.
    pub fn entries(
        &self,
        after: Option<&RelPath>,
        upto: Option<&RelPath>,
        limit: usize,
    ) -> Result<Vec<(i64, Entry)>> {
        // The smallest path after `p` is `p` + NUL, which no path contains.
        let lower = match after {
            Some(p) => {
                let mut b = p.as_bytes().to_vec();
                b.push(0);
                b
            }
            None => Vec::new(),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        let mut push = |rows: &mut rusqlite::Rows<'_>| -> Result<()> {
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                out.push(self.entry_row(r)?);
            }
            Ok(())
        };
        match upto {
            Some(upto) => {
                let mut stmt = self
                    .conn
                    .prepare_cached(&format!(
                        "SELECT {ENTRY_COLUMNS} FROM entries WHERE path >= ?1 AND path <= ?2 ORDER BY path LIMIT ?3"
                    ))
                    .map_err(|e| self.err(e))?;
                let mut rows = stmt
                    .query(params![lower, upto.as_bytes(), limit])
                    .map_err(|e| self.err(e))?;
                push(&mut rows)?;
            }
            None => {
                let mut stmt = self
                    .conn
                    .prepare_cached(&format!(
                        "SELECT {ENTRY_COLUMNS} FROM entries WHERE path >= ?1 ORDER BY path LIMIT ?2"
                    ))
                    .map_err(|e| self.err(e))?;
                let mut rows = stmt.query(params![lower, limit]).map_err(|e| self.err(e))?;
                push(&mut rows)?;
            }
        }
        Ok(out)
    }

    /// The entries `scopes` cover (without chunk lists, with their row
    /// ids), in path order.
    pub fn scope_entries(&self, scopes: &Scopes) -> Result<Vec<(i64, Entry)>> {
        if scopes.whole_tree() {
            return self.entries(None, None, usize::MAX);
        }
        let mut out = Vec::new();
        for f in scopes.folders() {
            self.push_entries("WHERE path = ?1", [f.as_bytes()], &mut out)?;
        }
        for t in scopes.trees() {
            let (below, past) = subtree_bounds(t);
            self.push_entries(
                "WHERE path = ?1 OR (path >= ?2 AND path < ?3)",
                [t.as_bytes(), &below, &past],
                &mut out,
            )?;
        }
        out.sort_unstable_by(|a, b| a.1.path.as_bytes().cmp(b.1.path.as_bytes()));
        Ok(out)
    }

    fn push_entries<const N: usize>(
        &self,
        filter: &str,
        args: [&[u8]; N],
        out: &mut Vec<(i64, Entry)>,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM entries {filter}"))
            .map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args))
            .map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            out.push(self.entry_row(r)?);
        }
        Ok(())
    }

    /// The chunk list of entry row `id`.
    pub fn chunks_of(&self, id: i64) -> Result<Vec<ChunkRef>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT offset, length, hash FROM chunks WHERE entry = ?1 ORDER BY ordinal",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([id]).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let hash: Vec<u8> = r.get(2).map_err(|e| self.err(e))?;
            out.push(ChunkRef {
                offset: r.get::<_, i64>(0).map_err(|e| self.err(e))? as u64,
                length: r.get::<_, i64>(1).map_err(|e| self.err(e))? as u32,
                hash: Hash::from_slice(&hash).ok_or_else(|| self.corrupt("chunk hash length"))?,
            });
        }
        Ok(out)
    }

    /// Chunk `ordinal` of entry `id`, if recorded.
    pub fn chunk_at(&self, id: i64, ordinal: u32) -> Result<Option<ChunkRef>> {
        let row: Option<(i64, i64, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT offset, length, hash FROM chunks WHERE entry = ?1 AND ordinal = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![id, ordinal as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
            })
            .map_err(|e| self.err(e))?;
        row.map(|(offset, length, hash)| {
            Ok(ChunkRef {
                offset: offset as u64,
                length: length as u32,
                hash: Hash::from_slice(&hash).ok_or_else(|| self.corrupt("chunk hash length"))?,
            })
        })
        .transpose()
    }

    /// The path of entry `id`, if it is still recorded.
    pub fn path_of(&self, id: i64) -> Result<Option<RelPath>> {
        let raw: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT path FROM entries WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        raw.map(|raw| RelPath::new(raw).map_err(|e| self.corrupt(&e.to_string())))
            .transpose()
    }

    /// Where a chunk with this hash and length is, if any file holds one:
    /// up to `limit` places.
    pub fn find_chunk(&self, hash: &Hash, length: u32, limit: usize) -> Result<Vec<ChunkLocation>> {
        // Two statements, not a join: SQLite prepares the join again at
        // every call (its planner weighs the bound hash), which cost 15 %
        // of a first sync's CPU.
        let mut stmt = self
            .conn
            .prepare_cached("SELECT entry, offset FROM chunks WHERE hash = ?1 AND length = ?2")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query(params![&hash.0[..], length as i64])
            .map_err(|e| self.err(e))?;
        let mut found = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            if found.len() == limit {
                break;
            }
            let entry: i64 = r.get(0).map_err(|e| self.err(e))?;
            let offset: i64 = r.get(1).map_err(|e| self.err(e))?;
            found.push((entry, offset as u64));
        }
        drop(rows);
        let mut out = Vec::with_capacity(found.len());
        for (entry, offset) in found {
            if let Some(path) = self.path_of(entry)? {
                out.push(ChunkLocation {
                    path,
                    offset,
                    length,
                });
            }
        }
        Ok(out)
    }

    /// The entry at `path` (without chunks).
    pub fn entry(&self, path: &RelPath) -> Result<Option<Entry>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ENTRY_COLUMNS} FROM entries WHERE path = ?1"
            ))
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([path.as_bytes()]).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            Some(r) => Ok(Some(self.entry_row(r)?.1)),
            None => Ok(None),
        }
    }

    /// True when some entry lies below the folder `path`.
    pub fn has_children(&self, path: &RelPath) -> Result<bool> {
        // Children sort from "path/" up to, not including, "path0".
        let (lo, hi) = if path.is_root() {
            (vec![], vec![0xff; 1])
        } else {
            let mut lo = path.as_bytes().to_vec();
            lo.push(b'/');
            let mut hi = path.as_bytes().to_vec();
            hi.push(b'/' + 1);
            (lo, hi)
        };
        self.conn
            .prepare_cached("SELECT 1 FROM entries WHERE path > ?1 AND path < ?2 LIMIT 1")
            .and_then(|mut s| s.exists(params![lo, hi]))
            .map_err(|e| self.err(e))
    }
}
