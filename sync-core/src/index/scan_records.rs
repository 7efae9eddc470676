//! What a rescan compares against: one compact [`ScanRecord`] per recorded
//! path, looked up by [`path_key`], and the [`IdSet`] of rows a scan saw.
//!
//! The scanner (`crate::scan`) decides what changed; this file only loads
//! the records and keeps them small (a million entries in about 45 MB). It
//! never writes.

use std::collections::HashSet;

use super::{meta_from_row, subtree_bounds, Index};
use crate::entry::{Kind, Meta};
use crate::error::Result;
use crate::scope::Scopes;

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
    Hashed(HashSet<i64>),
}

impl IdSet {
    /// For ids of `records`.
    pub fn for_records(records: &ScanRecords) -> IdSet {
        let max = records.max_id.max(0) as u64;
        if max <= 64 * records.len() as u64 + (1 << 20) {
            IdSet::Bits(vec![0; (max / 64 + 1) as usize])
        } else {
            IdSet::Hashed(HashSet::with_capacity(records.len()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i64) -> ScanRecord {
        ScanRecord {
            id,
            stat: id as u64,
            flags: ScanRecord::HASHED,
        }
    }

    #[test]
    fn every_record_is_found_by_its_key_and_no_other() {
        let keys: Vec<u128> = (0..1000u32)
            .map(|i| path_key(format!("d/{i}").as_bytes()))
            .collect();
        let records = ScanRecords::new(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (*k, record(i as i64)))
                .collect(),
            999,
        );
        assert_eq!(records.len(), 1000);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(records.get(*k).map(|r| r.id), Some(i as i64));
        }
        assert!(records.get(path_key(b"d/absent")).is_none());
        assert!(records.get(0).is_none() && records.get(u128::MAX).is_none());
    }

    #[test]
    fn cleared_records_find_nothing_and_keep_max_id() {
        let mut records = ScanRecords::new(vec![(path_key(b"a"), record(7))], 7);
        assert!(records.get(path_key(b"a")).is_some());
        records.clear();
        assert!(records.is_empty());
        assert!(records.get(path_key(b"a")).is_none());
        assert_eq!(records.max_id, 7);
    }

    #[test]
    fn id_sets_are_bitmaps_when_dense_and_hashed_when_sparse() {
        let dense = ScanRecords::new(vec![(1, record(5))], 5);
        let mut bits = IdSet::for_records(&dense);
        assert!(matches!(bits, IdSet::Bits(_)));
        bits.insert(5);
        // Past the bitmap: a row this scan added, never asked about.
        bits.insert(1 << 40);
        bits.insert(-1);
        assert!(bits.contains(5));
        assert!(!bits.contains(4) && !bits.contains(1 << 40) && !bits.contains(-1));

        let sparse = ScanRecords::new(vec![(1, record(1 << 40))], 1 << 40);
        let mut hashed = IdSet::for_records(&sparse);
        assert!(matches!(hashed, IdSet::Hashed(_)));
        hashed.insert(1 << 40);
        assert!(hashed.contains(1 << 40) && !hashed.contains(5));
    }

    #[test]
    fn stat_print_ignores_a_files_mode_but_not_a_folders() {
        let file = Meta {
            kind: Kind::File,
            size: 3,
            mtime_ns: 1,
            mode: 0o644,
            ino: 2,
            dev: 1,
            ctime_ns: 1,
            nlink: 1,
        };
        let chmod = Meta {
            mode: 0o600,
            ..file
        };
        assert_eq!(stat_print(&file), stat_print(&chmod));
        assert_ne!(stat_print(&file), stat_print(&Meta { size: 4, ..file }));
        let dir = Meta {
            kind: Kind::Dir,
            ..file
        };
        let dir_chmod = Meta {
            kind: Kind::Dir,
            ..chmod
        };
        assert_ne!(stat_print(&dir), stat_print(&dir_chmod));
    }
}
