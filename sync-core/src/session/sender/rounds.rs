//! A window's rounds: the receiver's requests read, and the chunks shipped
//! on the control connection (one message each, encoded by
//! [`crate::session::shrink`]) or in a UDP phase, until the receiver's
//! empty round.
//!
//! It never decides which chunks are needed (the receiver does) and never
//! retries a failed UDP phase itself: the receiver repeats the round.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::pack::{pack_round, Packed, PackedSource};
use super::source::{ChunkReader, StreamSource};
use crate::chunk::Hash;
use crate::entry::Entry;
use crate::error::{Error, ProtocolError, Result};
use crate::session::msg::{batches, Msg, Need, MAX_CHUNKS};
use crate::session::{udp, LinkFigures, Side, Transport};

/// Ships one window's chunks, round by round, until the receiver's empty
/// round; returns the datagram bytes sent. What its UDP phases measured is
/// added to `link`.
pub(super) fn ship_window(
    t: &mut dyn Transport,
    page: &[(i64, Entry)],
    listed: &[(Hash, u32)],
    opts: &crate::session::SessionOptions,
    side: &Side,
    reader: &mut ChunkReader<'_>,
    link: &mut Option<LinkFigures>,
) -> Result<u64> {
    let mut datagram_bytes = 0;
    // Where each chunk is in the source; built on the first request (a
    // no-change sync never needs it).
    let mut locations = HashMap::new();
    // Deltas and compression for what goes on the control connection.
    let mut shrink = crate::session::shrink::Shrink::new(opts.data.compress);
    loop {
        let mut needs = Vec::new();
        let (round, count, udp_offer) = loop {
            match t.recv()? {
                Msg::Need(runs) => {
                    for r in runs {
                        if needs.len() + r.count as usize > MAX_CHUNKS {
                            return Err(ProtocolError::over_limit(
                                "chunks asked for",
                                needs.len() + r.count as usize,
                                MAX_CHUNKS,
                            )
                            .into());
                        }
                        for k in 0..r.count {
                            let (hash, length) = r
                                .ordinal
                                .checked_add(k)
                                .and_then(|o| listed.get(o as usize))
                                .ok_or_else(|| {
                                    ProtocolError::unknown(
                                        "chunk list position",
                                        r.ordinal.saturating_add(k),
                                        "listed",
                                    )
                                })?;
                            needs.push(Need {
                                idx: r.idx.wrapping_add(k),
                                hash: *hash,
                                length: *length,
                            });
                        }
                    }
                }
                Msg::Base { chunks, sig } => shrink.base(chunks, sig)?,
                Msg::NeedDone { round, count, udp } => break (round, count, udp),
                Msg::Error(e) => return Err(Error::Peer(e)),
                other => return Err(ProtocolError::unexpected("Need", other.name()).into()),
            }
        };
        if needs.len() != count as usize {
            return Err(ProtocolError::mismatch("chunks of a round", count, needs.len()).into());
        }
        if count == 0 {
            return Ok(datagram_bytes);
        }
        // A push's progress: chunk bytes shipped of chunk bytes asked for.
        let shipped = side.progress.as_deref().filter(|p| p.count_shipped);
        let round_bytes: u64 = needs.iter().map(|n| u64::from(n.length)).sum();
        let done_before = shipped.map_or(0, |p| {
            p.phase
                .store(crate::session::PHASE_TRANSFER, Ordering::Relaxed);
            p.bytes_total.fetch_add(round_bytes, Ordering::Relaxed);
            p.bytes_done.load(Ordering::Relaxed)
        });
        if locations.is_empty() {
            locations = crate::manifest::chunk_locations(page.iter().map(|(_, e)| e));
        }
        if let Some(offer) = udp_offer {
            // Compressed chunks: their lengths make the stream's layout,
            // so the round is compressed before its phase starts.
            let (needs, packed) = if crate::session::shrink::sized(&opts.data) {
                let Packed { sizes, packed } =
                    pack_round(t, &needs, &locations, reader, &mut shrink)?;
                let wire = crate::session::shrink::wire_needs(&needs, &sizes)?;
                for part in batches(sizes, |_| 5) {
                    t.send(&Msg::Sizes(part))?;
                }
                (wire, packed)
            } else {
                (needs, Vec::new())
            };
            if needs.is_empty() {
                // Every chunk went as a delta: no phase (the receiver agrees).
                continue;
            }
            let inner = StreamSource::new(&needs, &locations, reader);
            let mut source = PackedSource::new(inner, &needs, packed);
            match udp::send(
                t,
                &offer,
                &needs,
                &opts.data,
                side,
                &mut source,
                round_bytes,
            ) {
                Ok(Some(stats)) => {
                    if let Some(p) = shipped {
                        p.bytes_done
                            .store(done_before + round_bytes, Ordering::Relaxed);
                    }
                    datagram_bytes += stats.bytes;
                    link.get_or_insert_with(LinkFigures::default)
                        .add_phase(&stats);
                }
                Ok(None) => {}
                // The receiver decides: it repeats the round on the control
                // connection, or gives up and says why.
                Err(e) => tracing::warn!("UDP data phase failed: {e}"),
            }
            continue;
        }
        for need in needs {
            match locations
                .get(&need.hash)
                .filter(|l| l.length == need.length)
            {
                Some(loc) => match reader.read(loc) {
                    Some(bytes) => {
                        t.send(&shrink.encode(need.idx, bytes)?)?;
                        if let Some(p) = shipped {
                            p.bytes_done
                                .fetch_add(u64::from(need.length), Ordering::Relaxed);
                        }
                    }
                    None => t.send(&Msg::Unavailable { idx: need.idx })?,
                },
                None => t.send(&Msg::Unavailable { idx: need.idx })?,
            }
        }
        t.send(&Msg::RoundDone { round })?;
    }
}
