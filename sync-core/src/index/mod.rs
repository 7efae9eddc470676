//! The index: one SQLite file per tree.
//!
//! This module owns the `rusqlite::Connection`. It stores every entry's
//! metadata and every file's chunk list, and answers "what did this tree look
//! like at the last scan", a path range at a time ([`Index::reads`]). It
//! never reads the tree.
//!
//! # Compatibility
//! The schema is an append-only list of migrations ([`schema`]) applied in one
//! exclusive transaction. An index written by a newer sluice is refused with
//! [`Error::IndexTooNew`], and a file that is not a sluice index with
//! [`Error::NotAnIndex`]; neither is modified (the checks run before any
//! pragma that writes).
//!
//! # Locking
//! SQLite's own locks serialise writers; a second sluice on the same index
//! waits up to [`BUSY_TIMEOUT`] and then fails with a clear error.
//!
//! # Performance
//! WAL journaling where the filesystem allows it, `synchronous=NORMAL`,
//! cached prepared statements, and writes batched into transactions by
//! [`Writer`]. Chunks are keyed by `(entry, ordinal)` with a secondary index
//! on the hash, which only a destination asks of its index: a first scan
//! goes without it, and a first sync into an empty tree builds it once at
//! the end (see [`Index::drop_hash_index`] and [`recent`]).
//!
//! # Filesystems
//! WAL needs shared memory; on filesystems without it (some network mounts)
//! SQLite falls back to its rollback journal, which we accept silently.

pub mod location;
pub mod recent;
pub mod schema;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::chunk::{ChunkParams, ChunkRef, Hash};
use crate::entry::{Entry, Kind, Meta};
use crate::error::{Error, Result};
use crate::manifest::{ChunkLocation, Manifest};
use crate::path::RelPath;
use crate::scope::Scopes;

/// Upserts one meta row (used by [`Index::set_meta`], [`Writer::set_meta`]
/// and the migration that records the format version).
const SET_META: &str =
    "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value";

/// How long to wait for another process holding the index.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// An open index file.
pub struct Index {
    conn: Connection,
    path: PathBuf,
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

    fn err(&self, e: rusqlite::Error) -> Error {
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

    fn checked_path(&self, bytes: Vec<u8>) -> Result<RelPath> {
        RelPath::new(bytes).map_err(|e| self.corrupt(&e.to_string()))
    }

    fn corrupt(&self, why: &str) -> Error {
        Error::NotAnIndex {
            path: self.path.clone(),
            reason: format!("corrupt entry: {why}"),
        }
    }

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

    /// Starts a batch of writes in one transaction.
    pub fn writer(&mut self) -> Result<Writer<'_>> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| Error::sqlite(&path, e))?;
        Ok(Writer { tx, path })
    }

    /// Counts for reports: (entries, chunks, unique chunks, unique chunk bytes).
    pub fn chunk_stats(&self) -> Result<(u64, u64, u64, u64)> {
        let q = |sql: &str| -> Result<i64> {
            self.conn
                .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
                .map(|v| v.unwrap_or(0))
                .map_err(|e| self.err(e))
        };
        Ok((
            q("SELECT count(*) FROM entries")? as u64,
            q("SELECT count(*) FROM chunks")? as u64,
            q("SELECT count(DISTINCT hash) FROM chunks")? as u64,
            q("SELECT sum(length) FROM (SELECT max(length) AS length FROM chunks GROUP BY hash)")?
                as u64,
        ))
    }

    /// True when any file's chunks are recorded.
    pub fn has_chunks(&self) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM chunks LIMIT 1")
            .and_then(|mut s| s.exists([]))
            .map_err(|e| self.err(e))
    }

    /// Drops the hash index (which files hold chunk H), for a run that adds
    /// a whole tree's chunks at once. New hashes land all over that index,
    /// so every commit rewrites most of it: a first sync of a million small
    /// files into an empty tree took 78-94 s with it kept up and 54-55 s
    /// without (2026-12-07, 9683f3c). [`Index::build_hash_index`] makes it
    /// again, sorted, in one pass.
    pub fn drop_hash_index(&self) -> Result<()> {
        self.conn
            .execute_batch("DROP INDEX IF EXISTS chunks_by_hash")
            .map_err(|e| self.err(e))
    }

    /// Makes the hash index if it is missing (after a first scan, or a run
    /// killed before it could make it again). A destination calls this
    /// before it looks chunks up.
    pub fn build_hash_index(&self) -> Result<()> {
        self.conn
            .execute_batch("CREATE INDEX IF NOT EXISTS chunks_by_hash ON chunks(hash)")
            .map_err(|e| self.err(e))
    }

    /// True when any file in the tree holds a chunk with this hash.
    pub fn has_chunk(&self, hash: &Hash) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM chunks WHERE hash = ?1 LIMIT 1")
            .and_then(|mut s| s.exists([&hash.0[..]]))
            .map_err(|e| self.err(e))
    }
}

/// What a rescan needs of one recorded path, in 24 bytes (a full record
/// with its path takes about 250): so a rescan of a million entries holds
/// about 45 MB instead of 500.
#[derive(Clone, Copy, Debug)]
pub struct ScanRecord {
    pub id: i64,
    /// [`stat_print`] of the recorded metadata.
    pub stat: u64,
    /// A file whose record has a content hash ([`ScanRecord::HASHED`]),
    /// and whose content may have changed within its timestamp's
    /// granularity ([`ScanRecord::RACY`]).
    pub flags: u8,
}

impl ScanRecord {
    pub const HASHED: u8 = 1;
    pub const RACY: u8 = 2;

    /// A file record the scanner may trust without reading the file again,
    /// if its metadata still matches.
    pub fn trusted(&self) -> bool {
        self.flags & (Self::HASHED | Self::RACY) == Self::HASHED
    }
}

/// Records by [`path_key`], as one sorted vector: 40 bytes an entry where
/// a hash map takes 90 (it rounds its table up to a power of two).
/// A lookup reads one bucket of about 8 adjacent records, found through
/// `starts` by the key's top bits (keys are uniform): a binary search over
/// a million records costs 20 cache misses, 2 s per rescan of a million.
#[derive(Debug, Default)]
pub struct ScanRecords {
    sorted: Vec<(u128, ScanRecord)>,
    /// `starts[b]`: the first record whose key's top `bits` bits are `b`.
    starts: Vec<u32>,
    bits: u32,
    /// The largest row id (for [`IdSet`]).
    pub max_id: i64,
}

impl ScanRecords {
    fn new(mut sorted: Vec<(u128, ScanRecord)>, max_id: i64) -> ScanRecords {
        sorted.sort_unstable_by_key(|(k, _)| *k);
        let bits = (sorted.len() / 8).max(1).ilog2().min(30);
        let buckets = 1usize << bits;
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut at = 0;
        for b in 0..buckets {
            while at < sorted.len() && (bucket(sorted[at].0, bits) as usize) < b {
                at += 1;
            }
            starts.push(at as u32);
        }
        starts.push(sorted.len() as u32);
        ScanRecords {
            sorted,
            starts,
            bits,
            max_id,
        }
    }

    pub fn get(&self, key: u128) -> Option<&ScanRecord> {
        let b = bucket(key, self.bits) as usize;
        let (lo, hi) = (
            *self.starts.get(b)? as usize,
            *self.starts.get(b + 1)? as usize,
        );
        self.sorted[lo..hi]
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, r)| r)
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    pub fn clear(&mut self) {
        *self = ScanRecords::new(Vec::new(), self.max_id);
    }

    pub fn iter(&self) -> impl Iterator<Item = &ScanRecord> {
        self.sorted.iter().map(|(_, r)| r)
    }
}

/// The top `bits` bits of a key.
fn bucket(key: u128, bits: u32) -> u128 {
    key.checked_shr(128 - bits).unwrap_or(0)
}

/// A set of row ids: a bitmap when the ids are dense enough (one bit per
/// possible id), a hash set otherwise.
pub enum IdSet {
    Bits(Vec<u64>),
    Hashed(std::collections::HashSet<i64>),
}

impl IdSet {
    /// For ids of `records`.
    pub fn for_records(records: &ScanRecords) -> IdSet {
        let max = records.max_id.max(0) as u64;
        if max <= 64 * records.len() as u64 + (1 << 20) {
            IdSet::Bits(vec![0; (max / 64 + 1) as usize])
        } else {
            IdSet::Hashed(std::collections::HashSet::with_capacity(records.len()))
        }
    }

    pub fn insert(&mut self, id: i64) {
        match self {
            IdSet::Bits(b) => match usize::try_from(id).ok().filter(|&i| i / 64 < b.len()) {
                Some(i) => b[i / 64] |= 1 << (i % 64),
                None => {
                    // An id past the bitmap (a row added by this scan) is
                    // never asked about.
                }
            },
            IdSet::Hashed(h) => {
                h.insert(id);
            }
        }
    }

    pub fn contains(&self, id: i64) -> bool {
        match self {
            IdSet::Bits(b) => usize::try_from(id)
                .ok()
                .and_then(|i| b.get(i / 64).map(|w| w & (1 << (i % 64)) != 0))
                .unwrap_or(false),
            IdSet::Hashed(h) => h.contains(&id),
        }
    }
}

/// A path's key in [`ScanRecords`]: 128 bits of its BLAKE3 hash (two
/// paths of one tree share a key with odds far below a disk's error rate).
pub fn path_key(path: &[u8]) -> u128 {
    let h = blake3::hash(path);
    u128::from_le_bytes(h.as_bytes()[..16].try_into().expect("16 bytes"))
}

/// A fingerprint of the metadata a rescan compares: for files the fields
/// of [`Meta::same_stat`], for folders and symlinks every field (their
/// record stands only if nothing changed).
pub fn stat_print(m: &Meta) -> u64 {
    use std::hash::{Hash as _, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    (m.kind.code(), m.size, m.mtime_ns, m.ino, m.ctime_ns).hash(&mut h);
    if m.kind != Kind::File {
        (m.mode, m.dev, m.nlink).hash(&mut h);
    }
    h.finish()
}

impl Index {
    /// Every recorded path as a [`ScanRecord`], for the scanner's stat
    /// comparison.
    pub fn scan_records(&self) -> Result<ScanRecords> {
        let count: i64 = self
            .conn
            .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let mut sorted = Vec::with_capacity(count.max(0) as usize);
        let mut max_id = 0;
        self.push_records("", [], &mut sorted, &mut max_id)?;
        Ok(ScanRecords::new(sorted, max_id))
    }

    /// The records of what `scopes` cover, for a scan of only that.
    pub fn scope_records(&self, scopes: &Scopes) -> Result<ScanRecords> {
        if scopes.whole_tree() {
            return self.scan_records();
        }
        let mut sorted = Vec::new();
        let mut max_id = 0;
        for f in scopes.folders() {
            self.push_records("WHERE path = ?1", [f.as_bytes()], &mut sorted, &mut max_id)?;
        }
        for t in scopes.trees() {
            let (below, past) = subtree_bounds(t);
            self.push_records(
                "WHERE path = ?1 OR (path >= ?2 AND path < ?3)",
                [t.as_bytes(), &below, &past],
                &mut sorted,
                &mut max_id,
            )?;
        }
        Ok(ScanRecords::new(sorted, max_id))
    }

    fn push_records<const N: usize>(
        &self,
        filter: &str,
        args: [&[u8]; N],
        sorted: &mut Vec<(u128, ScanRecord)>,
        max_id: &mut i64,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT id, path, kind, size, mtime_ns, mode, ino, dev, ctime_ns, nlink, hash IS NOT NULL, checked_ns FROM entries {filter}"
            ))
            .map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args))
            .map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let id: i64 = r.get(0).map_err(|e| self.err(e))?;
            let path = r.get_ref(1).map_err(|e| self.err(e))?;
            let path = path.as_blob().map_err(|_| self.corrupt("path type"))?;
            let meta = meta_from_row(r, 2)
                .map_err(|e| self.err(e))?
                .ok_or_else(|| self.corrupt("unknown entry kind"))?;
            let hashed: bool = r.get(10).map_err(|e| self.err(e))?;
            let checked_ns: i64 = r.get(11).map_err(|e| self.err(e))?;
            let mut flags = 0;
            if hashed {
                flags |= ScanRecord::HASHED;
            }
            if meta.is_racy(checked_ns) {
                flags |= ScanRecord::RACY;
            }
            *max_id = (*max_id).max(id);
            sorted.push((
                path_key(path),
                ScanRecord {
                    id,
                    stat: stat_print(&meta),
                    flags,
                },
            ));
        }
        Ok(())
    }
}

/// The byte range that holds exactly the paths below `path` (not `path`
/// itself): from `path/` up to, not including, `path0` ('0' follows '/').
/// The root's subtree is the whole tree, which callers read as such.
fn subtree_bounds(path: &RelPath) -> (Vec<u8>, Vec<u8>) {
    debug_assert!(!path.is_root(), "the whole tree is read without bounds");
    let mut below = path.as_bytes().to_vec();
    below.push(b'/');
    let mut past = path.as_bytes().to_vec();
    past.push(b'0');
    (below, past)
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

fn meta_from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Option<Meta>> {
    let Some(kind) = Kind::from_code(r.get(at)?) else {
        return Ok(None);
    };
    Ok(Some(Meta {
        kind,
        size: r.get::<_, i64>(at + 1)? as u64,
        mtime_ns: r.get(at + 2)?,
        mode: r.get::<_, i64>(at + 3)? as u32,
        ino: r.get::<_, i64>(at + 4)? as u64,
        dev: r.get::<_, i64>(at + 5)? as u64,
        ctime_ns: r.get(at + 6)?,
        nlink: r.get::<_, i64>(at + 7)? as u64,
    }))
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

#[cfg(test)]
mod tests;
