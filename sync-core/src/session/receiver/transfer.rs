//! The transfer rounds of one window: Need → Data (over UDP or the control
//! connection, whole or as deltas), re-asking for chunks that failed their
//! check, until everything arrived or nothing more can; and the [`Link`],
//! how chunks travel, settled over the session's windows. Chunks go to the
//! window's [`Applier`]; nothing here plans or touches the index.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::need_runs;
use crate::apply::Applier;
use crate::chunk::Hash;
use crate::error::{Error, ProtocolError, Result};
use crate::plan::Plan;
use crate::session::msg::{batches, size, Msg, Need};
use crate::session::{shrink, udp, SessionOptions, Side, Transport};

/// Rounds of re-requests for chunks that failed local verification.
const MAX_ROUNDS: u32 = 3;

/// How chunks travel, settled over the windows of a session.
pub(super) struct Link<'a> {
    pub(super) opts: &'a SessionOptions,
    pub(super) side: &'a Side,
    pub(super) peer_udp: bool,
    /// No datagram got through once: the rest goes on the control connection.
    pub(super) udp_failed: bool,
    /// Set when a bulk run of the sender's messages found UDP blocked.
    pub(super) bulk_udp_failed: Arc<std::sync::atomic::AtomicBool>,
    pub(super) data_path: Option<&'static str>,
    pub(super) fallback_said: bool,
    /// Chunk bytes as they travelled (compressed, or as deltas); chunks
    /// that came as deltas and the bytes that saved.
    pub(super) encoded_bytes: u64,
    pub(super) delta_chunks: u64,
    pub(super) delta_saved: u64,
}

/// One window's rounds of Need → Data until everything arrived or nothing
/// more can; ends with the empty round that closes the window.
pub(super) fn transfer(
    t: &mut dyn Transport,
    applier: &mut Applier,
    plan: &Plan,
    listed: &HashMap<Hash, u32>,
    link: &mut Link,
    warnings: &mut Vec<String>,
    bases: Vec<shrink::BaseSpec>,
) -> Result<()> {
    let mut bases = Some(bases);
    let mut shrunk = shrink::Bases::default();
    // Chunks whose delta did not check out: asked for again, whole.
    let mut again: Vec<u32> = Vec::new();
    let mut needs: Vec<Need> = plan
        .stream
        .iter()
        .enumerate()
        .map(|(i, c)| Need::new(i as u32, c))
        .collect();
    let local_pieces = plan.files.iter().any(|f| {
        f.pieces
            .iter()
            .any(|p| !matches!(p, crate::plan::Piece::Remote { .. }))
    });
    let mut round = 1;
    let fallback = format!(
        "no UDP datagram got through for {} s (blocked by a firewall?); \
         the data went over the control connection instead",
        udp::AUTO_FALLBACK.as_secs()
    );
    // A bulk run that found UDP blocked spares the data phase the wait.
    link.udp_failed |= link.bulk_udp_failed.load(Ordering::Relaxed);
    if link.udp_failed && !link.fallback_said {
        link.fallback_said = true;
        warnings.push(fallback.clone());
    }
    while !needs.is_empty() && round <= MAX_ROUNDS {
        let (opts, side) = (link.opts, link.side);
        let use_udp =
            !link.udp_failed && link.peer_udp && udp::wanted(&opts.data, side, t.split().is_some());
        if let Some(specs) = bases.take() {
            shrunk = shrink::Bases::send(t, specs, &side.root)?;
        }
        for part in batches(need_runs(&needs, listed)?, |_| size::need_run()) {
            t.send(&Msg::Need(part))?;
        }
        let prepared = if use_udp {
            Some(udp::prepare(&opts.data, side)?)
        } else {
            None
        };
        t.send(&Msg::NeedDone {
            round,
            count: needs.len() as u32,
            udp: prepared.as_ref().map(|p| p.offer().clone()),
        })?;
        if let Some(prepared) = prepared {
            let wire = if shrink::sized(&opts.data) {
                // Deltas first (on this connection), then every size.
                let mut sizes = Vec::with_capacity(needs.len());
                while sizes.len() < needs.len() {
                    let Some(msg) = take_delta(t.recv()?, &mut shrunk, applier, plan, &mut again)?
                    else {
                        continue;
                    };
                    match msg {
                        Msg::Sizes(part) => sizes.extend(part),
                        Msg::Error(e) => return Err(Error::Peer(e)),
                        other => {
                            return Err(ProtocolError::unexpected("Sizes", other.name()).into())
                        }
                    }
                }
                shrink::wire_needs(&needs, &sizes)?
            } else {
                needs.clone()
            };
            let phase_started = Instant::now();
            // Every chunk came as a delta: no phase (the sender agrees).
            if wire.is_empty() {
                link.data_path.get_or_insert("control connection");
            } else if udp::receive(
                t,
                prepared,
                (&needs, &wire),
                &opts.data,
                side,
                applier.feed(),
            )? {
                link.data_path.get_or_insert("udp");
                link.encoded_bytes += wire.iter().map(|n| u64::from(n.length)).sum::<u64>();
            } else {
                // Ask for the same chunks again, on the control connection
                // (not those that came as deltas).
                let streamed: HashSet<u32> = wire.iter().map(|n| n.idx).collect();
                needs.retain(|n| streamed.contains(&n.idx));
                needs.extend(
                    again
                        .drain(..)
                        .map(|idx| Need::new(idx, &plan.stream[idx as usize])),
                );
                link.udp_failed = true;
                if !link.fallback_said {
                    link.fallback_said = true;
                    // Over before the wait: the sender gave up on UDP.
                    warnings.push(if phase_started.elapsed() < udp::AUTO_FALLBACK {
                        "the sender could not send over UDP (its log says why); \
                         the data went over the control connection instead"
                            .to_string()
                    } else {
                        fallback.clone()
                    });
                }
                round += 1;
                continue;
            }
        } else {
            link.data_path.get_or_insert("control connection");
            loop {
                let Some(msg) = take_delta(t.recv()?, &mut shrunk, applier, plan, &mut again)?
                else {
                    continue;
                };
                match msg {
                    Msg::Data { idx, bytes } => {
                        shrunk.encoded_bytes += bytes.len() as u64;
                        applier.receive_chunk(idx, bytes)?
                    }
                    Msg::Streamed { idx, bytes } => {
                        let bytes = shrunk.unstream(&bytes, expected(plan, idx)?)?;
                        applier.receive_chunk(idx, bytes)?
                    }
                    Msg::Unavailable { idx } => applier.chunk_unavailable(idx)?,
                    Msg::RoundDone { round: r } if r == round => break,
                    Msg::Error(e) => return Err(Error::Peer(e)),
                    other => return Err(ProtocolError::unexpected("Data", other.name()).into()),
                }
            }
        }
        // Only a local copy that fails its check is asked for again; with
        // none in the plan, the window closes without waiting for its
        // writes, which go on while the next window is planned.
        needs = if local_pieces {
            applier
                .take_refetch()?
                .into_iter()
                .map(|(idx, c)| Need::new(idx, &c))
                .collect()
        } else {
            Vec::new()
        };
        for idx in again.drain(..) {
            needs.push(Need::new(idx, expected(plan, idx)?));
        }
        round += 1;
    }
    link.encoded_bytes += shrunk.encoded_bytes;
    link.delta_chunks += shrunk.deltas;
    link.delta_saved += shrunk.delta_saved;
    t.send(&Msg::NeedDone {
        round,
        count: 0,
        udp: None,
    })
}

/// The length and hash of shipped chunk `idx`.
fn expected(plan: &Plan, idx: u32) -> Result<&crate::plan::StreamChunk> {
    shrink::expected(&plan.stream, idx)
}

/// Hands a delta message's chunk to the writers (or notes it to be asked
/// for again, whole); any other message comes back.
fn take_delta(
    msg: Msg,
    shrunk: &mut shrink::Bases,
    applier: &mut Applier,
    plan: &Plan,
    again: &mut Vec<u32>,
) -> Result<Option<Msg>> {
    if !matches!(msg, Msg::Delta { .. } | Msg::StreamedDelta { .. }) {
        return Ok(Some(msg));
    }
    match shrunk.take_delta(msg, &plan.stream)? {
        shrink::Taken::Rebuilt(idx, bytes) => applier.feed().chunk(idx, bytes, true)?,
        shrink::Taken::Again(idx) => again.push(idx),
    }
    Ok(None)
}
