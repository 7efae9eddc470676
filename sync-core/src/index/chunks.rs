//! Tree-wide questions about the chunk table, and upkeep of its hash index
//! (`chunks_by_hash`: which files hold chunk H).
//!
//! Only a destination asks the hash index anything, so a run that adds a
//! whole tree's chunks drops it and builds it again once at the end. This
//! file never reads or writes single entries (see `reads.rs`, `writer.rs`).

use super::Index;
use crate::chunk::Hash;
use crate::error::Result;

impl Index {
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
