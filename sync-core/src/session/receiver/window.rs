//! One window of the tree on both sides: the source's manifest window as
//! it arrives (checked: path order, each path once, no chunk lists yet),
//! the destination's entries of the same range, and the rest of the
//! destination as the planner may ask about it. Nothing here fetches chunk
//! lists or writes to the destination.

use crate::chunk::{ChunkParams, Hash};
use crate::error::{Error, ProtocolError, Result};
use crate::index::recent::RecentChunks;
use crate::index::Index;
use crate::manifest::Manifest;
use crate::path::RelPath;
use crate::plan;
use crate::session::msg::{check_entry, Msg, SourceInfo, TreeCheck, MAX_WINDOW};
use crate::session::Transport;

/// Receives and checks one window of the source manifest (entries without
/// chunk lists, in path order, each path once, continuing the previous
/// windows); returns it and whether it is the last.
pub(super) fn receive_window(
    t: &mut dyn Transport,
    check: &mut TreeCheck,
    info: &SourceInfo,
) -> Result<(Manifest, bool)> {
    let mut entries: Vec<crate::entry::Entry> = Vec::new();
    let last = loop {
        match t.recv()? {
            Msg::Entries(batch) => {
                if entries.len() + batch.len() > MAX_WINDOW as usize {
                    return Err(ProtocolError::over_limit(
                        "entries of a window",
                        entries.len() + batch.len(),
                        MAX_WINDOW,
                    )
                    .into());
                }
                for mut w in batch {
                    if !w.chunks.is_empty() {
                        return Err(ProtocolError::invalid(
                            "Entries",
                            "a chunk list in the manifest (they come on request)",
                        )
                        .into());
                    }
                    // Tiling is checked once the list arrives.
                    let size = std::mem::take(&mut w.meta.size);
                    let mut e = check_entry(w, &ChunkParams::default())?;
                    e.meta.size = size;
                    check.push(&e)?;
                    entries.push(e);
                }
            }
            Msg::WindowEnd { last } => break last,
            Msg::Error(e) => return Err(Error::Peer(e)),
            other => return Err(ProtocolError::unexpected("the manifest", other.name()).into()),
        }
    };
    if check.count() == 0 {
        return Err(crate::session::msg::no_root().into());
    }
    // Already in order: collecting builds the map in one pass.
    let m = Manifest {
        entries: entries.into_iter().map(|e| (e.path.clone(), e)).collect(),
        params: info.params,
    };
    Ok((m, last))
}

/// The destination's entries of one window's range, with their row ids in
/// the same order.
pub(super) struct DstWindow {
    pub(super) manifest: Manifest,
    pub(super) ids: Vec<i64>,
}

/// Read from `index`, or for a scoped session from `scoped` (the entries
/// its scopes cover, in path order).
pub(super) fn dst_window(
    index: &Index,
    scoped: Option<&[(i64, crate::entry::Entry)]>,
    after: Option<&RelPath>,
    upto: Option<&RelPath>,
) -> Result<DstWindow> {
    let rows = match scoped {
        // A scoped session's range: part of what its scopes cover.
        Some(all) => {
            let from = after.map_or(0, |a| {
                all.partition_point(|(_, e)| e.path.as_bytes() <= a.as_bytes())
            });
            let to = upto.map_or(all.len(), |u| {
                all.partition_point(|(_, e)| e.path.as_bytes() <= u.as_bytes())
            });
            all[from..to.max(from)].to_vec()
        }
        None => index.reads().entries(after, upto, usize::MAX)?,
    };
    let mut ids = Vec::with_capacity(rows.len());
    let entries = rows
        .into_iter()
        .map(|(id, e)| {
            ids.push(id);
            (e.path.clone(), e)
        })
        .collect();
    Ok(DstWindow {
        manifest: Manifest {
            entries,
            params: index.chunk_params()?.unwrap_or_default(),
        },
        ids,
    })
}

/// The destination outside the window, as its index has it now (earlier
/// windows' writes included). Index errors are kept for
/// [`IndexElsewhere::result`]: the planner's questions have no error path.
pub(super) struct IndexElsewhere<'a> {
    index: &'a Index,
    /// Where chunks are looked up while the index has no hash index.
    recent: Option<&'a RecentChunks>,
    error: std::cell::RefCell<Option<Error>>,
}

impl<'a> IndexElsewhere<'a> {
    pub(super) fn new(index: &'a Index, recent: Option<&'a RecentChunks>) -> Self {
        IndexElsewhere {
            index,
            recent,
            error: std::cell::RefCell::new(None),
        }
    }

    fn keep<T>(&self, r: Result<T>, or: T) -> T {
        r.unwrap_or_else(|e| {
            self.error.borrow_mut().get_or_insert(e);
            or
        })
    }

    pub(super) fn result(self) -> Result<()> {
        match self.error.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl plan::Elsewhere for IndexElsewhere<'_> {
    fn chunk(&self, hash: &Hash, length: u32) -> Option<crate::manifest::ChunkLocation> {
        let found = match self.recent {
            Some(recent) => recent.find(&self.index.reads(), hash, length, 1),
            None => self.index.reads().find_chunk(hash, length, 1),
        };
        self.keep(found, Vec::new()).into_iter().next()
    }

    fn entry(&self, path: &RelPath) -> Option<crate::entry::Entry> {
        let found = self.index.reads().entry(path);
        self.keep(found, None)
    }

    fn has_children(&self, path: &RelPath) -> bool {
        let found = self.index.reads().has_children(path);
        self.keep(found, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Kind, Meta};
    use crate::session::msg::WireEntry;
    use crate::session::transport::MemoryTransport;

    fn dir(path: &[u8]) -> WireEntry {
        WireEntry {
            path: path.to_vec(),
            meta: Meta {
                kind: Kind::Dir,
                size: 0,
                mtime_ns: 0,
                mode: 0o755,
                ino: 0,
                dev: 0,
                ctime_ns: 0,
                nlink: 1,
            },
            target: Vec::new(),
            hash: None,
            chunks: Vec::new(),
        }
    }

    fn receive(entries: Vec<WireEntry>) -> Result<(Manifest, bool)> {
        let (mut tx, mut rx) = MemoryTransport::pair(8);
        tx.send(&Msg::Entries(entries)).unwrap();
        tx.send(&Msg::WindowEnd { last: true }).unwrap();
        let info = SourceInfo {
            params: ChunkParams::default(),
            partial: false,
            entries: 0,
        };
        receive_window(&mut rx, &mut TreeCheck::default(), &info)
    }

    #[test]
    fn a_manifest_out_of_path_order_or_with_a_path_twice_is_refused() {
        let ok = receive(vec![dir(b""), dir(b"a"), dir(b"a b"), dir(b"a/x")]).unwrap();
        assert_eq!(ok.0.entries.len(), 4);
        for bad in [
            vec![dir(b""), dir(b"b"), dir(b"a")],
            vec![dir(b""), dir(b"a"), dir(b"a")],
        ] {
            match receive(bad) {
                Err(Error::Protocol(ProtocolError::Invalid { problem, .. })) => {
                    assert!(problem.contains("path order"), "{problem}")
                }
                other => panic!("accepted: {:?}", other.map(|m| m.0.entries.len())),
            }
        }
    }
}
