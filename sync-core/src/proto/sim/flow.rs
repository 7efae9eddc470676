//! One flow of a simulation: a pair of endpoints, a [`Sender`] and a
//! [`Receiver`], the control channel between them (delayed queues both
//! ways), and the receiving driver's duties: writing what arrives to a
//! modelled sink (a spool, or a check against a regenerable pattern,
//! optionally behind a slow disk) and verifying completed chunks.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::rng::mix;
use super::{FlowResult, FlowSpec, Pattern, Payload, SimConfig, TailEvent};
use crate::proto::crypto::SessionSecret;
use crate::proto::layout::{ChunkSpec, Layout, LayoutConfig};
use crate::proto::receiver::{Event as RxEvent, Receiver, ReceiverStats};
use crate::proto::sender::{BlockSource, Sender, SenderStats};

pub(super) struct Flow {
    pub(super) spec: FlowSpec,
    pub(super) layout: Arc<Layout>,
    pub(super) sender: Option<Sender>,
    pub(super) receiver: Receiver,
    pub(super) source: Source,
    pub(super) spool: Option<Vec<u8>>,
    pub(super) bad: Vec<bool>,
    pub(super) to_receiver: VecDeque<(Instant, Vec<u8>)>,
    pub(super) to_sender: VecDeque<(Instant, Vec<u8>)>,
    pub(super) disk_queue: f64,
    pub(super) disk_written: u64,
    pub(super) disk_at: Instant,
    pub(super) first_copy_dropped: Vec<u64>,
    /// Until when the receiver would still be decoding a tail code in
    /// real time, and the decoded bytes accounted for so far.
    pub(super) decoding_until: Option<Instant>,
    pub(super) decoded: u64,
    pub(super) result: FlowResult,
}

impl Flow {
    /// Flow `i` of a run that starts at `t0`: both endpoints made, nothing sent.
    pub(super) fn new(
        i: usize,
        spec: FlowSpec,
        config: &SimConfig,
        layout_config: LayoutConfig,
        t0: Instant,
    ) -> Flow {
        let layout = Arc::new(
            Layout::new(layout_config, chunks_of(&spec.payload, spec.chunk_len))
                .expect("sim layout"),
        );
        let secret = secret_for(config.seed, i);
        let start = t0 + spec.start;
        let receiver = Receiver::new(spec.receiver.clone(), layout.clone(), &secret, start);
        let (source, spool) = match &spec.payload {
            Payload::Memory(v) => (Source::Memory(Shared(v.clone())), Some(vec![0u8; v.len()])),
            Payload::Pattern { seed, .. } => (Source::Pattern(Pattern(*seed)), None),
        };
        let sender = Sender::new(spec.sender.clone(), layout.clone(), &secret, start);
        Flow {
            bad: vec![false; layout.chunk_count()],
            result: FlowResult {
                completed: None,
                sender_done: false,
                stream_len: layout.stream_len(),
                data_ok: true,
                bad_chunks: 0,
                backpressure_drops: 0,
                arrived: 0,
                delivered: Vec::new(),
                sender: SenderStats::default(),
                receiver: ReceiverStats::default(),
                last_new: None,
                timeline: Vec::new(),
                tail: Vec::new(),
            },
            spec,
            layout,
            sender: Some(sender),
            receiver,
            source,
            spool,
            to_receiver: VecDeque::new(),
            to_sender: VecDeque::new(),
            disk_queue: 0.0,
            disk_written: 0,
            disk_at: start,
            first_copy_dropped: Vec::new(),
            decoding_until: None,
            decoded: 0,
        }
    }

    /// When this flow starts, for a run that starts at `t0`.
    pub(super) fn start(&self, t0: Instant) -> Instant {
        t0 + self.spec.start
    }

    /// The driver's side of a new block (received or rebuilt): record it
    /// and write or check it. `bucket` is the goodput bucket `now` falls in.
    pub(super) fn deliver(
        &mut self,
        now: Instant,
        t0: Instant,
        bucket: usize,
        block: u64,
        offset: u64,
        data: &[u8],
    ) {
        if self.result.last_new.is_some() {
            self.result.tail.push(TailEvent {
                at: now.saturating_duration_since(t0 + self.spec.start),
                block,
                delivered: true,
            });
        }
        if self.result.delivered.len() <= bucket {
            self.result.delivered.resize(bucket + 1, 0);
        }
        self.result.delivered[bucket] += data.len() as u64;
        match (&mut self.spool, &self.source) {
            (Some(spool), _) => {
                let o = offset as usize;
                spool[o..o + data.len()].copy_from_slice(data);
            }
            (None, Source::Pattern(p)) => {
                if !p.matches(offset, data) {
                    self.result.data_ok = false;
                    for c in self.layout.block_chunks(block) {
                        self.bad[c] = true;
                    }
                }
            }
            (None, Source::Memory(_)) => {}
        }
        if let Some(dk) = self.spec.disk {
            self.disk_queue += data.len() as f64;
            let fill = (self.disk_queue / dk.queue_bytes as f64 * 1000.0) as u16;
            self.receiver.handle_sink(now, fill, self.disk_written);
        }
    }
    /// The slow disk writes what it could since it was last looked at.
    pub(super) fn drain_disk(&mut self, rate: u64, now: Instant) {
        let dt = now.saturating_duration_since(self.disk_at).as_secs_f64();
        let drained = (rate as f64 * dt).min(self.disk_queue);
        self.disk_queue -= drained;
        self.disk_written += drained as u64;
        self.disk_at = now;
    }
}

pub(super) enum Source {
    Memory(Shared),
    Pattern(Pattern),
}

impl Source {
    pub(super) fn block_source(&mut self) -> &mut dyn BlockSource {
        match self {
            Source::Memory(m) => m,
            Source::Pattern(p) => p,
        }
    }
}

/// In-memory stream shared with the flow spec (no copy of the payload).
pub(super) struct Shared(pub(super) Arc<Vec<u8>>);

impl BlockSource for Shared {
    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(stream_offset).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A per-flow session secret derived from the run's seed.
pub(super) fn secret_for(seed: u64, flow: usize) -> SessionSecret {
    let mut s = [0u8; 32];
    for (i, part) in s.chunks_mut(8).enumerate() {
        part.copy_from_slice(&mix(seed ^ ((flow as u64) << 8) ^ i as u64).to_le_bytes());
    }
    SessionSecret(s)
}

pub(super) fn chunks_of(payload: &Payload, chunk_len: u32) -> Vec<ChunkSpec> {
    let len = match payload {
        Payload::Memory(v) => v.len() as u64,
        Payload::Pattern { len, .. } => *len,
    };
    let chunk_len = u64::from(chunk_len.max(1));
    let mut out = Vec::new();
    let mut o = 0;
    while o < len {
        let n = chunk_len.min(len - o);
        let hash = match payload {
            Payload::Memory(v) => *blake3::hash(&v[o as usize..(o + n) as usize]).as_bytes(),
            Payload::Pattern { .. } => [0; 32],
        };
        out.push(ChunkSpec {
            len: n as u32,
            hash,
        });
        o += n;
    }
    out
}

/// The driver's side of receiver events: verify completed chunks.
pub(super) fn drain_receiver_events(
    f: &mut Flow,
    now: Instant,
    t0: Instant,
    encode_secs_per_byte: f64,
) {
    while let Some(ev) = f.receiver.poll_event() {
        match ev {
            RxEvent::ChunkComplete(c) => {
                let ok = match &f.spool {
                    Some(spool) => {
                        let r = f.layout.chunk_range(c);
                        let got = blake3::hash(&spool[r.start as usize..r.end as usize]);
                        *got.as_bytes() == f.layout.chunks()[c].hash
                    }
                    None => !std::mem::replace(&mut f.bad[c], false),
                };
                if !ok {
                    f.result.bad_chunks += 1;
                }
                f.receiver.handle_chunk_verified(now, c, ok);
            }
            RxEvent::Complete => {
                // The real time coding would have taken: decoding still
                // running, and the encoding of the last code, which
                // delayed its parity (earlier codes are encoded while the
                // pacer waits anyway).
                let last_coded = f
                    .sender
                    .as_ref()
                    .map_or(f.result.sender.last_coded_bytes, |s| {
                        s.stats().last_coded_bytes
                    });
                let done = f.decoding_until.map_or(now, |t| t.max(now));
                let encode = Duration::from_secs_f64(last_coded as f64 * encode_secs_per_byte);
                let at = done.saturating_duration_since(t0 + f.spec.start);
                f.result.completed = Some(at + encode);
            }
            RxEvent::ChunkUnverifiable(_) | RxEvent::TimedOut => {
                f.result.data_ok = false;
            }
        }
    }
}
