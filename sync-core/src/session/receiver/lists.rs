//! Chunk lists: asking the sender for the lists of the window's files the
//! destination lacks, checking that each tiles its file, and naming needed
//! chunks by their position in those lists ([`need_runs`], shared with the
//! dry run's estimate). Nothing here plans or moves chunk data.

use std::collections::HashMap;

use crate::chunk::Hash;
use crate::error::{Error, ProtocolError, Result};
use crate::manifest::Manifest;
use crate::session::msg::{batches, check_chunks, size, spans, Msg, Need, NeedRun, MAX_CHUNKS};
use crate::session::Transport;

/// Asks for the chunk lists of the window's source files whose content the
/// destination does not already hold at the same path, and checks that
/// each list tiles its file. Files are named by their position in the
/// window. Returns, for each chunk listed, its first position in the lists
/// as the sender sent them (empty when none was asked for).
pub(super) fn fetch_chunk_lists(
    t: &mut dyn Transport,
    src: &mut Manifest,
    dst: &Manifest,
) -> Result<HashMap<Hash, u32>> {
    let mut wanted: Vec<u32> = crate::manifest::pair_up(src, dst)
        .into_iter()
        .filter(|p| p.content_missing() && p.src.is_some_and(|s| s.meta.size > 0))
        .map(|p| p.src_pos as u32)
        .collect();
    wanted.sort_unstable();
    for part in batches(spans(wanted.iter().copied()), |_| size::span()) {
        t.send(&Msg::WantChunks(part))?;
    }
    t.send(&Msg::WantDone)?;
    let mut total = 0usize;
    // A long list may come in several messages, in order.
    let mut lists: Vec<(u32, Vec<crate::chunk::ChunkRef>)> = Vec::new();
    loop {
        match t.recv()? {
            Msg::FileChunks { index, chunks } => {
                total += chunks.len();
                if total > MAX_CHUNKS {
                    return Err(ProtocolError::over_limit(
                        "chunks in the lists",
                        total,
                        MAX_CHUNKS,
                    )
                    .into());
                }
                if wanted.binary_search(&index).is_err() {
                    return Err(ProtocolError::unknown("chunk list", index, "requested").into());
                }
                lists.push((index, chunks));
            }
            Msg::ChunksDone => break,
            Msg::Error(e) => return Err(Error::Peer(e)),
            other => return Err(ProtocolError::unexpected("FileChunks", other.name()).into()),
        }
    }
    lists.sort_by_key(|(i, _)| *i);
    let mut lists = lists.into_iter().peekable();
    let mut asked = wanted.iter().peekable();
    for (i, e) in src.entries.values_mut().enumerate() {
        let i = i as u32;
        while let Some((_, chunks)) = lists.next_if(|(at, _)| *at == i) {
            e.chunks.extend(chunks);
        }
        if asked.next_if(|&&at| at == i).is_some() {
            check_chunks(&e.path, e.meta.size, &e.chunks, &src.params)?;
        }
    }
    // The sender counts listed chunks in the order it sent the lists: the
    // order asked for, ascending.
    let mut listed = HashMap::new();
    let mut ordinal = 0u32;
    let mut asked = wanted.iter().peekable();
    for (i, e) in src.entries.values().enumerate() {
        if asked.next_if(|&&at| at == i as u32).is_some() {
            for c in &e.chunks {
                listed.entry(c.hash).or_insert(ordinal);
                ordinal += 1;
            }
        }
    }
    Ok(listed)
}

/// `needs` as runs of the sender's listed chunks.
pub(in crate::session) fn need_runs(
    needs: &[Need],
    listed: &HashMap<Hash, u32>,
) -> Result<Vec<NeedRun>> {
    let mut runs: Vec<NeedRun> = Vec::new();
    for n in needs {
        let ordinal = *listed
            .get(&n.hash)
            .ok_or_else(|| Error::Usage("a needed chunk is in no list the sender sent".into()))?;
        match runs.last_mut() {
            Some(r) if r.idx + r.count == n.idx && r.ordinal + r.count == ordinal => r.count += 1,
            _ => runs.push(NeedRun {
                idx: n.idx,
                ordinal,
                count: 1,
            }),
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs become runs where both their stream indexes and their list
    /// positions follow on; a chunk listed twice is named by its first
    /// position; a chunk in no list is an error, not a guess.
    #[test]
    fn needs_pack_into_runs_of_listed_positions() {
        let h = |i: u8| Hash([i; 32]);
        let need = |idx: u32, i: u8| Need {
            idx,
            hash: h(i),
            length: 100,
        };
        // Lists as sent: 1 2 3 1 4 5.
        let mut listed = HashMap::new();
        for (ordinal, i) in [1u8, 2, 3, 1, 4, 5].into_iter().enumerate() {
            listed.entry(h(i)).or_insert(ordinal as u32);
        }
        let needs = [
            need(0, 1),
            need(1, 2),
            need(2, 3),
            need(3, 4),
            need(4, 5),
            need(7, 2),
        ];
        let runs = need_runs(&needs, &listed).unwrap();
        let run = |idx, ordinal, count| NeedRun {
            idx,
            ordinal,
            count,
        };
        assert_eq!(runs, vec![run(0, 0, 3), run(3, 4, 2), run(7, 1, 1)]);
        assert!(need_runs(&[need(0, 9)], &listed).is_err());
        assert_eq!(spans([1, 2, 3, 5, 7, 8]).len(), 3);
        assert_eq!(
            spans([4u32]).first().map(|s| (s.start, s.count)),
            Some((4, 1))
        );
    }
}
