//! Checks of what a peer sends about a tree: each manifest entry (a safe
//! path, a well-formed symlink target, chunks that tile the file exactly)
//! and the manifest as a whole (in path order, every entry below a folder
//! it lists, starting at the root, within its bounds). Nothing here reads
//! a socket or a file; the receiver calls it on every window it takes.

use crate::chunk::{ChunkParams, ChunkRef};
use crate::entry::{Entry, Kind};
use crate::error::{ProtocolError, Result};
use crate::manifest::Manifest;
use crate::path::RelPath;

use super::msg::{WireEntry, MAX_ENTRIES};

/// A manifest entry that breaks the protocol's rules, named by its path.
pub(crate) fn entry_error(path: &RelPath, problem: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::invalid("manifest entry", format!("{}: {problem}", path.display()))
}

/// A manifest (or window) that does not start at the tree's root folder.
pub(crate) fn no_root() -> ProtocolError {
    ProtocolError::invalid("manifest", "no root folder")
}

/// Validates one received entry and turns it into an [`Entry`].
pub fn check_entry(w: WireEntry, params: &ChunkParams) -> Result<Entry> {
    let path = RelPath::new(w.path)?;
    let m = &w.meta;
    match m.kind {
        Kind::File => {
            let hash = w
                .hash
                .ok_or_else(|| entry_error(&path, "a file without a hash"))?;
            check_chunks(&path, m.size, &w.chunks, params)?;
            Ok(Entry {
                path,
                meta: w.meta,
                target: None,
                hash: Some(hash),
                chunks: w.chunks,
                checked_ns: 0,
            })
        }
        Kind::Symlink => {
            if w.target.is_empty()
                || w.target.len() > crate::path::MAX_PATH_LEN
                || w.target.contains(&0)
            {
                return Err(
                    entry_error(&path, "a symlink with an empty, overlong or NUL target").into(),
                );
            }
            Ok(Entry {
                path,
                meta: w.meta,
                target: Some(w.target),
                hash: None,
                chunks: Vec::new(),
                checked_ns: 0,
            })
        }
        Kind::Dir => Ok(Entry {
            path,
            meta: w.meta,
            target: None,
            hash: None,
            chunks: Vec::new(),
            checked_ns: 0,
        }),
    }
}

/// Chunks must tile the file exactly, each within the chunk size limit.
pub fn check_chunks(
    path: &RelPath,
    size: u64,
    chunks: &[ChunkRef],
    params: &ChunkParams,
) -> Result<()> {
    let mut at = 0u64;
    for c in chunks {
        if c.offset != at || c.length == 0 || c.length > params.max {
            return Err(entry_error(
                path,
                "a chunk list with a gap, an empty or an oversized chunk",
            )
            .into());
        }
        at += c.length as u64;
    }
    if at != size {
        return Err(
            entry_error(path, format!("chunks that cover {at} of its {size} bytes")).into(),
        );
    }
    Ok(())
}

/// Checks a manifest entry by entry, in the order received, across
/// windows: paths strictly ascending (each once), the root folder first,
/// and every other entry's parent a folder received before it; so no
/// received path can sit below a symlink or a file. Holds one path per
/// folder.
#[derive(Default)]
pub struct TreeCheck {
    dirs: std::collections::HashSet<Vec<u8>, foldhash::fast::RandomState>,
    last: Option<RelPath>,
    count: usize,
}

impl TreeCheck {
    pub fn push(&mut self, e: &Entry) -> Result<()> {
        if self.count >= MAX_ENTRIES {
            return Err(
                ProtocolError::over_limit("manifest entries", self.count + 1, MAX_ENTRIES).into(),
            );
        }
        if self.last.as_ref().is_some_and(|last| *last >= e.path) {
            return Err(entry_error(&e.path, "out of path order, or listed twice").into());
        }
        if self.count == 0 {
            if !e.path.is_root() || e.meta.kind != Kind::Dir {
                return Err(no_root().into());
            }
        } else {
            let bytes = e.path.as_bytes();
            let parent = &bytes[..bytes.iter().rposition(|&b| b == b'/').unwrap_or(0)];
            if !self.dirs.contains(parent) {
                return Err(entry_error(&e.path, "no parent folder in the manifest").into());
            }
        }
        if e.meta.kind == Kind::Dir {
            self.dirs.insert(e.path.as_bytes().to_vec());
        }
        self.last = Some(e.path.clone());
        self.count += 1;
        Ok(())
    }

    /// The last path checked.
    pub fn last(&self) -> Option<&RelPath> {
        self.last.as_ref()
    }

    /// Entries checked so far.
    pub fn count(&self) -> usize {
        self.count
    }
}

/// [`TreeCheck`] over a whole manifest.
pub fn check_tree(m: &Manifest) -> Result<()> {
    let mut check = TreeCheck::default();
    for e in m.entries.values() {
        check.push(e)?;
    }
    if check.count() == 0 {
        return Err(no_root().into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::Hash;
    use crate::entry::Meta;
    use crate::error::Error;

    fn meta(kind: Kind, size: u64) -> Meta {
        Meta {
            kind,
            size,
            mtime_ns: 0,
            mode: 0o644,
            ino: 0,
            dev: 0,
            ctime_ns: 0,
            nlink: 1,
        }
    }

    fn wire(path: &[u8], kind: Kind, target: &[u8], chunks: Vec<ChunkRef>) -> WireEntry {
        let size = chunks.iter().map(|c| c.length as u64).sum();
        WireEntry {
            path: path.to_vec(),
            meta: meta(kind, size),
            target: target.to_vec(),
            hash: (kind == Kind::File).then(|| Hash::of(b"x")),
            chunks,
        }
    }

    fn manifest(entries: Vec<WireEntry>) -> Result<Manifest> {
        let mut m = Manifest::default();
        for w in entries {
            let e = check_entry(w, &ChunkParams::default())?;
            m.entries.insert(e.path.clone(), e);
        }
        check_tree(&m)?;
        Ok(m)
    }

    #[test]
    fn peer_paths_that_escape_are_refused() {
        for bad in [
            &b"../etc/passwd"[..],
            b"/etc/passwd",
            b"a/../../b",
            b"a//b",
            b"",
        ] {
            let r = check_entry(wire(bad, Kind::File, b"", vec![]), &ChunkParams::default());
            if bad.is_empty() {
                continue; // the root itself is allowed (as a folder)
            }
            assert!(r.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_file_below_a_symlink_or_a_file_is_refused() {
        let root = wire(b"", Kind::Dir, b"", vec![]);
        let link = wire(b"a", Kind::Symlink, b"/etc", vec![]);
        let below = wire(b"a/passwd", Kind::File, b"", vec![]);
        assert!(matches!(
            manifest(vec![root.clone(), link, below.clone()]),
            Err(Error::Protocol(_))
        ));
        let file = wire(b"a", Kind::File, b"", vec![]);
        assert!(manifest(vec![root.clone(), file, below.clone()]).is_err());
        assert!(
            manifest(vec![root.clone(), below]).is_err(),
            "missing parent"
        );
        assert!(
            manifest(vec![wire(b"x", Kind::Dir, b"", vec![])]).is_err(),
            "no root"
        );
        let dir = wire(b"a", Kind::Dir, b"", vec![]);
        let ok = wire(b"a/passwd", Kind::File, b"", vec![]);
        assert!(manifest(vec![root, dir, ok]).is_ok());
    }

    #[test]
    fn malformed_chunk_lists_and_targets_are_refused() {
        let c = |offset, length| ChunkRef {
            offset,
            length,
            hash: Hash::of(b"c"),
        };
        let p = ChunkParams::default();
        let path = RelPath::new(b"f".to_vec()).unwrap();
        assert!(check_chunks(&path, 10, &[c(0, 10)], &p).is_ok());
        assert!(
            check_chunks(&path, 10, &[c(0, 5), c(6, 4)], &p).is_err(),
            "gap"
        );
        assert!(check_chunks(&path, 10, &[c(0, 5)], &p).is_err(), "short");
        assert!(
            check_chunks(&path, 0, &[c(0, 0)], &p).is_err(),
            "empty chunk"
        );
        assert!(
            check_chunks(&path, 1 << 20, &[c(0, 1 << 20)], &p).is_err(),
            "over max"
        );
        let mut w = wire(b"f", Kind::File, b"", vec![c(0, 10)]);
        w.hash = None;
        assert!(check_entry(w, &p).is_err(), "file without hash");
        assert!(
            check_entry(wire(b"l", Kind::Symlink, b"", vec![]), &p).is_err(),
            "empty target"
        );
        assert!(
            check_entry(wire(b"l", Kind::Symlink, b"a\0b", vec![]), &p).is_err(),
            "NUL"
        );
    }
}
