//! What the index records about one entry of a tree.

use std::os::unix::fs::MetadataExt;

use rustix::fs::FileType;
use serde::{Deserialize, Serialize};

use crate::chunk::{ChunkRef, Hash};
use crate::path::RelPath;

/// The kinds of entry sluice mirrors. Sockets, fifos and devices are skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

impl Kind {
    /// The integer stored in the index.
    pub fn code(self) -> i64 {
        match self {
            Kind::File => 0,
            Kind::Dir => 1,
            Kind::Symlink => 2,
        }
    }

    /// The kind for a stored integer.
    pub fn from_code(code: i64) -> Option<Kind> {
        match code {
            0 => Some(Kind::File),
            1 => Some(Kind::Dir),
            2 => Some(Kind::Symlink),
            _ => None,
        }
    }

    /// The kind of an `st_mode`, or `None` for sockets, fifos and devices.
    pub fn of_mode(mode: u32) -> Option<Kind> {
        match FileType::from_raw_mode(mode) {
            FileType::Symlink => Some(Kind::Symlink),
            FileType::Directory => Some(Kind::Dir),
            FileType::RegularFile => Some(Kind::File),
            _ => None,
        }
    }
}

/// The `lstat` fields sluice keeps, as two APIs give them.
struct RawStat {
    mode: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    dev: u64,
    nlink: u64,
}

/// Metadata from `lstat`, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub kind: Kind,
    /// Bytes (files), target length (symlinks), 0 (folders).
    pub size: u64,
    /// Modification time, nanoseconds since the epoch (may be negative).
    pub mtime_ns: i64,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub ino: u64,
    pub dev: u64,
    pub ctime_ns: i64,
    pub nlink: u64,
}

/// Files whose change time lies within this window of the moment their
/// content was captured are "racily clean" (git's term): a write in the same
/// clock tick would not show in their metadata, so they are read again.
/// Linux stamps files from a coarse clock (one jiffy, at most 10 ms).
pub const RACY_WINDOW_NS: i64 = 100_000_000;
/// The window on filesystems that store whole seconds (FAT has 2 s).
pub const RACY_WINDOW_COARSE_NS: i64 = 2_000_000_000;

impl Meta {
    /// Reads the fields from `std::fs::Metadata` (which must come from `lstat`).
    pub fn from_std(md: &std::fs::Metadata) -> Option<Meta> {
        Meta::from_raw(RawStat {
            mode: md.mode(),
            size: md.size(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
            ino: md.ino(),
            dev: md.dev(),
            nlink: md.nlink(),
        })
    }

    /// The metadata of a raw `stat` (as `lstat`/`fstatat` return it), or
    /// `None` for sockets, fifos and devices.
    #[allow(clippy::unnecessary_cast)] // field types differ between targets
    pub fn from_stat(st: &rustix::fs::Stat) -> Option<Meta> {
        Meta::from_raw(RawStat {
            mode: st.st_mode as u32,
            size: st.st_size as u64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
            ino: st.st_ino as u64,
            dev: st.st_dev as u64,
            nlink: st.st_nlink as u64,
        })
    }

    fn from_raw(st: RawStat) -> Option<Meta> {
        let kind = Kind::of_mode(st.mode)?;
        let ns = |(s, n): (i64, i64)| s * 1_000_000_000 + n;
        Some(Meta {
            kind,
            size: if kind == Kind::Dir { 0 } else { st.size },
            mtime_ns: ns(st.mtime),
            mode: st.mode & 0o7777,
            ino: st.ino,
            dev: st.dev,
            ctime_ns: ns(st.ctime),
            nlink: st.nlink,
        })
    }

    /// True when a file with this metadata may be assumed to hold the same
    /// bytes as one recorded with `old` (git's stat check).
    pub fn same_stat(&self, old: &Meta) -> bool {
        self.kind == old.kind
            && self.size == old.size
            && self.mtime_ns == old.mtime_ns
            && self.ino == old.ino
            && self.ctime_ns == old.ctime_ns
    }

    /// True when content captured at `checked_ns` may not match this
    /// metadata (see [`RACY_WINDOW_NS`]).
    pub fn is_racy(&self, checked_ns: i64) -> bool {
        let coarse = self.ctime_ns % 1_000_000_000 == 0 && self.mtime_ns % 1_000_000_000 == 0;
        let window = if coarse {
            RACY_WINDOW_COARSE_NS
        } else {
            RACY_WINDOW_NS
        };
        self.ctime_ns >= checked_ns.saturating_sub(window)
    }

    /// A capture time that marks content we wrote ourselves (and verified)
    /// as settled.
    pub fn trusted_checked_ns(&self) -> i64 {
        self.ctime_ns.saturating_add(RACY_WINDOW_COARSE_NS + 1)
    }
}

/// One entry of a tree: its path, metadata and, for files, content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: RelPath,
    pub meta: Meta,
    /// Symlink target, raw bytes, exactly as `readlink` returned it.
    pub target: Option<Vec<u8>>,
    /// Whole-file BLAKE3 (files only).
    pub hash: Option<Hash>,
    /// The file's chunks in order (files only).
    pub chunks: Vec<ChunkRef>,
    /// When the content was captured (ns since the epoch), for the racy check.
    pub checked_ns: i64,
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_stat_and_std_metadata_give_the_same_meta() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"twelve bytes").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        let (fifo, mode) = (dir.path().join("p"), rustix::fs::Mode::from_raw_mode(0o644));
        rustix::fs::mknodat(rustix::fs::CWD, fifo, FileType::Fifo, mode, 0).unwrap();
        for name in ["", "f", "l", "p"] {
            let p = dir.path().join(name);
            let from_std = Meta::from_std(&std::fs::symlink_metadata(&p).unwrap());
            let from_stat = Meta::from_stat(&rustix::fs::lstat(&p).unwrap());
            assert_eq!(from_std, from_stat, "{name:?}");
        }
        assert_eq!(
            Meta::from_stat(&rustix::fs::lstat(&file).unwrap())
                .unwrap()
                .size,
            12
        );
    }
}
