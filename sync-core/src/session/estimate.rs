//! A dry run's estimate of what compression and deltas make of the data.
//!
//! What a chunk takes on the wire is known only once the sender has
//! encoded it, so a dry run asks for a sample of a window's chunks in one
//! round on the control connection, exactly as a real run would ask for
//! them (with the same bases for deltas), counts what came, writes
//! nothing, and scales the counts to the window. The sample is a few runs
//! of neighbouring chunks spread over the window's stream, so that they
//! compress with neighbours as history the way the whole stream would;
//! a window with little to ship sends all of it and the figures are exact.

use std::collections::{HashMap, HashSet};

use super::msg::{batches, size, Msg, Need};
use super::shrink::{self, BaseSpec, Taken};
use super::Transport;
use crate::chunk::Hash;
use crate::error::{Error, ProtocolError, Result};
use crate::plan::Plan;

/// Chunk bytes a window's sample holds at most: a few tenths of a second
/// of reading and compressing, whatever the window ships.
pub const SAMPLE_BYTES: u64 = 8 << 20;

/// Places in the stream the sample is taken from.
const SPOTS: u64 = 8;

/// A window's estimated figures (exact when `sampled` is the window's
/// whole stream).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Chunk bytes that went through the sender's encoding.
    pub sampled: u64,
    /// The window's chunk bytes after compression and deltas.
    pub encoded: u64,
    /// Chunks that would travel as deltas, and the bytes they would save.
    pub deltas: u64,
    pub delta_saved: u64,
}

impl Estimate {
    pub fn add(&mut self, o: Estimate) {
        self.sampled += o.sampled;
        self.encoded += o.encoded;
        self.deltas += o.deltas;
        self.delta_saved += o.delta_saved;
    }
}

/// The stream chunks a window's sample asks for: all of them when they
/// come to at most [`SAMPLE_BYTES`], else [`SPOTS`] runs of neighbours,
/// each starting at an even share of the stream's bytes.
pub fn pick(plan: &Plan) -> Vec<u32> {
    let total: u64 = plan.stream.iter().map(|c| u64::from(c.length)).sum();
    if total <= SAMPLE_BYTES {
        return (0..plan.stream.len() as u32).collect();
    }
    let per_spot = SAMPLE_BYTES / SPOTS;
    let mut picked = Vec::new();
    let (mut at, mut next_spot, mut spot) = (0u64, 0u64, 0u64);
    let mut taking = 0u64;
    for (i, c) in plan.stream.iter().enumerate() {
        if taking == 0 && spot < SPOTS && at >= next_spot {
            taking = per_spot;
            spot += 1;
            next_spot = total / SPOTS * spot;
        }
        if taking > 0 {
            picked.push(i as u32);
            taking = taking.saturating_sub(u64::from(c.length));
        }
        at += u64::from(c.length);
    }
    picked
}

/// Asks the sender for `picked` in round 1 and counts what it sends,
/// then ends the window (`NeedDone` of no chunks). `bases`: the window's
/// bases, kept for the picked chunks only. With nothing picked, the
/// window's chunks count at their length.
pub fn sample(
    t: &mut dyn Transport,
    plan: &Plan,
    listed: &HashMap<Hash, u32>,
    picked: &[u32],
    bases: Vec<BaseSpec>,
    root: &std::path::Path,
) -> Result<Estimate> {
    // Nothing picked: the chunks travel as they are.
    let mut estimate = Estimate {
        encoded: plan.stream.iter().map(|c| u64::from(c.length)).sum(),
        ..Estimate::default()
    };
    if !picked.is_empty() {
        let set: HashSet<u32> = picked.iter().copied().collect();
        let mut shrunk = shrink::Bases::send(t, shrink::only(bases, &set), root)?;
        let needs: Vec<Need> = picked
            .iter()
            .map(|&i| Need::new(i, &plan.stream[i as usize]))
            .collect();
        for part in batches(super::receiver::need_runs(&needs, listed)?, |_| {
            size::need_run()
        }) {
            t.send(&Msg::Need(part))?;
        }
        t.send(&Msg::NeedDone {
            round: 1,
            count: needs.len() as u32,
            udp: None,
        })?;
        // Chunks the sender could not read, or whose delta did not check
        // out: counted at their length.
        let mut whole = 0u64;
        let mut missing = 0u64;
        loop {
            match t.recv()? {
                m @ (Msg::Delta { .. } | Msg::StreamedDelta { .. }) => {
                    if let Taken::Again(idx) = shrunk.take_delta(m, &plan.stream)? {
                        whole += u64::from(shrink::expected(&plan.stream, idx)?.length);
                    }
                }
                Msg::Data { bytes, .. } => shrunk.encoded_bytes += bytes.len() as u64,
                Msg::Streamed { idx, bytes } => {
                    shrunk.unstream(&bytes, shrink::expected(&plan.stream, idx)?)?;
                }
                Msg::Unavailable { idx } => {
                    missing += u64::from(shrink::expected(&plan.stream, idx)?.length)
                }
                Msg::RoundDone { round: 1 } => break,
                Msg::Error(e) => return Err(Error::Peer(e)),
                other => return Err(ProtocolError::unexpected("Data", other.name()).into()),
            }
        }
        let raw: u64 = needs.iter().map(|n| u64::from(n.length)).sum();
        estimate = scale(
            plan,
            raw - missing.min(raw),
            picked.len() as u64,
            Estimate {
                sampled: 0,
                encoded: shrunk.encoded_bytes + whole,
                deltas: shrunk.deltas,
                delta_saved: shrunk.delta_saved,
            },
        );
    }
    t.send(&Msg::NeedDone {
        round: 2,
        count: 0,
        udp: None,
    })?;
    Ok(estimate)
}

/// What `got` (the counts of `raw` chunk bytes in `chunks` chunks) comes
/// to over the whole window: bytes scale by bytes, delta counts by chunks.
fn scale(plan: &Plan, raw: u64, chunks: u64, got: Estimate) -> Estimate {
    let total: u64 = plan.stream.iter().map(|c| u64::from(c.length)).sum();
    let by = |x: u64, of: u64, all: u64| {
        if of == 0 {
            0
        } else {
            (x as f64 * all as f64 / of as f64).round() as u64
        }
    };
    Estimate {
        sampled: raw,
        encoded: by(got.encoded, raw, total),
        deltas: by(got.deltas, chunks, plan.stream.len() as u64),
        delta_saved: by(got.delta_saved, raw, total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::StreamChunk;

    fn plan_of(lengths: &[u32]) -> Plan {
        Plan {
            stream: lengths
                .iter()
                .enumerate()
                .map(|(i, &length)| StreamChunk {
                    hash: Hash::of(&(i as u64).to_le_bytes()),
                    length,
                })
                .collect(),
            ..Plan::default()
        }
    }

    #[test]
    fn a_small_window_is_sampled_whole() {
        let plan = plan_of(&[1000, 2000, 3000]);
        assert_eq!(pick(&plan), vec![0, 1, 2]);
    }

    #[test]
    fn a_large_window_gives_runs_at_even_shares_within_the_budget() {
        // 1,000 chunks of 64 KiB: 62.5 MiB.
        let plan = plan_of(&[64 << 10; 1000]);
        let picked = pick(&plan);
        let bytes = picked.len() as u64 * (64 << 10);
        assert!((SAMPLE_BYTES..SAMPLE_BYTES + SPOTS * (64 << 10)).contains(&bytes));
        // Eight runs of 16 neighbours, the first at the start, the last
        // in the last eighth.
        assert_eq!(picked.len(), 128);
        assert_eq!(&picked[..16], &(0..16).collect::<Vec<_>>()[..]);
        let starts: Vec<u32> = picked
            .windows(2)
            .filter(|w| w[1] != w[0] + 1)
            .map(|w| w[1])
            .collect();
        assert_eq!(starts.len(), 7);
        assert!(starts[6] >= 875, "{starts:?}");
        assert!(picked.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn counts_scale_to_the_window() {
        let plan = plan_of(&[1000; 100]);
        let e = scale(
            &plan,
            10_000,
            10,
            Estimate {
                sampled: 0,
                encoded: 2_500,
                deltas: 2,
                delta_saved: 1_000,
            },
        );
        assert_eq!(
            e,
            Estimate {
                sampled: 10_000,
                encoded: 25_000,
                deltas: 20,
                delta_saved: 10_000,
            }
        );
        assert_eq!(scale(&plan, 0, 0, Estimate::default()).encoded, 0);
    }
}
