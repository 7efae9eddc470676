//! The source manifest window by window: read from the index (and encoded)
//! a window ahead on a thread of its own, and each window's chunk lists
//! sent for the files the receiver asks about.
//!
//! It never ships chunk data: that is [`super::rounds`]' work.

use crossbeam_channel as chan;

use crate::chunk::Hash;
use crate::entry::Entry;
use crate::error::{Error, ProtocolError, Result};
use crate::index::Index;
use crate::path::RelPath;
use crate::scope::Scopes;
use crate::session::bulk::{self, BulkPath};
use crate::session::msg::{batches, size, Msg, WireEntry};
use crate::session::Transport;

/// One window of the source manifest, read and encoded ahead.
pub(super) struct Window {
    /// The entries with their index row ids.
    pub(super) entries: Vec<(i64, Entry)>,
    /// The messages that send them (ending with [`Msg::WindowEnd`]).
    pub(super) run: Vec<Msg>,
    pub(super) last: bool,
}

/// Reads the index in windows of `window` entries, in path order, until
/// the last one (or the session stops taking them). With `scopes`, only
/// the entries they cover (a watch round's, few, read at once).
pub(super) fn read_windows(
    index: &Index,
    scopes: Option<&Scopes>,
    window: usize,
    out: &chan::Sender<Result<Window>>,
) {
    let mut scoped = match scopes.map(|s| index.reads().scope_entries(s)) {
        Some(Ok(entries)) => Some(entries.into_iter().peekable()),
        Some(Err(e)) => {
            let _ = out.send(Err(e));
            return;
        }
        None => None,
    };
    let mut after: Option<RelPath> = None;
    loop {
        let (entries, last) = match &mut scoped {
            Some(rest) => {
                let entries: Vec<_> = rest.by_ref().take(window).collect();
                (entries, rest.peek().is_none())
            }
            None => {
                // One entry more than the window says whether another follows.
                let mut entries = match index.reads().entries(after.as_ref(), None, window + 1) {
                    Ok(entries) => entries,
                    Err(e) => {
                        let _ = out.send(Err(e));
                        return;
                    }
                };
                let last = entries.len() <= window;
                entries.truncate(window);
                (entries, last)
            }
        };
        after = entries.last().map(|(_, e)| e.path.clone());
        let mut run: Vec<Msg> = batches(
            entries
                .iter()
                .map(|(_, e)| WireEntry::without_chunks(e))
                .collect(),
            size::entry,
        )
        .into_iter()
        .map(Msg::Entries)
        .collect();
        run.push(Msg::WindowEnd { last });
        if out.send(Ok(Window { entries, run, last })).is_err() || last {
            return;
        }
    }
}

/// Answers the receiver's requests for one window's chunk lists; returns
/// every chunk listed, in the order sent (the receiver names needed chunks
/// by their position there), and the datagram bytes sent.
///
/// Lists are read from the index only for the files asked for, so a sync
/// where little changed does not load or ship every list.
pub(super) fn send_chunk_lists(
    t: &mut dyn Transport,
    page: &mut [(i64, Entry)],
    index: &Index,
    path: &BulkPath,
) -> Result<(Vec<(Hash, u32)>, u64)> {
    let mut wanted: Vec<u32> = Vec::new();
    loop {
        match t.recv()? {
            Msg::WantChunks(spans) => {
                for s in spans {
                    if wanted.len() + s.count as usize > page.len() {
                        return Err(ProtocolError::invalid(
                            "WantChunks",
                            "more chunk lists than the window has entries",
                        )
                        .into());
                    }
                    wanted.extend((0..s.count).map(|k| s.start.saturating_add(k)));
                }
            }
            Msg::WantDone => break,
            Msg::Error(e) => return Err(Error::Peer(e)),
            other => return Err(ProtocolError::unexpected("WantChunks", other.name()).into()),
        }
    }
    let reads = index.reads();
    let mut listed = Vec::new();
    let mut msgs = Vec::new();
    for at in wanted {
        let (id, e) = page
            .get_mut(at as usize)
            .ok_or_else(|| ProtocolError::unknown("manifest entry", at, "listed"))?;
        if e.chunks.is_empty() && e.meta.size > 0 {
            e.chunks = reads.chunks_of(*id)?;
        }
        listed.extend(e.chunks.iter().map(|c| (c.hash, c.length)));
        for part in batches(e.chunks.clone(), |_| size::chunk()) {
            msgs.push(Msg::FileChunks {
                index: at,
                chunks: part,
            });
        }
    }
    msgs.push(Msg::ChunksDone);
    let bytes = bulk::send_run(t, &msgs, path)?;
    Ok((listed, bytes))
}
