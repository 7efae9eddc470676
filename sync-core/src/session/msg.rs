//! Session messages: the protocol version, the bounds, and every message.
//!
//! Every message crosses the control channel as one frame (see
//! [`super::transport`]) holding a postcard-encoded [`Msg`]. Decoding never
//! trusts the peer: sizes are bounded by the frame limit, and a received
//! manifest is checked entry by entry in [`super::check`] (re-exported
//! here: [`check_entry`], [`check_tree`]).

use serde::{Deserialize, Serialize};

use crate::chunk::{ChunkParams, ChunkRef, Hash};
use crate::entry::{Entry, Meta};
use crate::plan::StreamChunk;

pub(crate) use super::check::no_root;
pub use super::check::{check_chunks, check_entry, check_tree, TreeCheck};
use super::{SessionOptions, SyncReport};

/// The session protocol version; peers must match exactly. 2: parity
/// datagrams of the tail codes, and even block sizes. 3: the sender's
/// status says where its tail codes may start. 4: bulky message runs
/// (manifest, chunk lists) may travel as UDP datagrams ([`Msg::Bulk`]),
/// wanted chunk lists and needed chunks are sent as runs. 5: the tree goes
/// window by window ([`Msg::WindowEnd`]), and no message grows with it.
/// 6: sessions may be scoped ([`SessionOptions::scopes`]), one connection
/// may carry several in turn, with [`Msg::Keepalive`] between them. 7:
/// keepalives during sessions (`--timeout`), compressed chunks and deltas
/// ([`Msg::Streamed`], [`Msg::Delta`], [`Msg::Sizes`]), vanished source
/// files and the report's new figures. 8: a dry run samples chunks to
/// estimate what compression and deltas make of them
/// ([`SyncReport::encoded_sample_bytes`]).
pub const PROTOCOL_VERSION: u32 = 8;
/// Bytes a list message (entries, chunk lists, requests, report lines)
/// aims at: far under [`super::transport::MAX_FRAME`], so no list ever
/// outgrows a frame, and large enough that framing costs nothing.
pub const BATCH_BYTES: usize = 1 << 20;
/// Source entries per window unless the session says otherwise: the
/// receiver holds one window's entries, plan and chunk lists at a time.
pub const WINDOW_ENTRIES: u32 = 32768;
/// Most entries a window may hold (a bound on the receiver's memory).
pub const MAX_WINDOW: u32 = 1 << 20;
/// Most entries a received manifest may list in all.
pub const MAX_ENTRIES: usize = 1 << 32;
/// Most chunks one window's lists may hold (16 TB at 64 KiB each).
pub const MAX_CHUNKS: usize = 256_000_000;

/// The byte budget of one list message: [`BATCH_BYTES`], or for tests the
/// value of `SLUICE_TEST_BATCH_BYTES` (at least 256), which makes a small
/// tree cross many frames.
pub fn batch_bytes() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        std::env::var("SLUICE_TEST_BATCH_BYTES")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .map_or(BATCH_BYTES, |n| n.clamp(256, BATCH_BYTES))
    })
}

/// Cuts `items` into messages of about [`batch_bytes`] each (an item
/// larger than that goes alone); `size` bounds an item's encoded size.
pub fn batches<T>(items: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let budget = batch_bytes();
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for item in items {
        let n = size(&item);
        if !batch.is_empty() && bytes + n > budget {
            out.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += n;
        batch.push(item);
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

/// Encoded size bounds of list items (postcard: a varint takes at most
/// 10 bytes, a length prefix at most 5).
pub mod size {
    use super::*;

    pub fn entry(w: &WireEntry) -> usize {
        w.path.len() + w.target.len() + 120 + w.chunks.len() * chunk()
    }
    pub const fn chunk() -> usize {
        48
    }
    pub const fn span() -> usize {
        10
    }
    pub const fn need_run() -> usize {
        15
    }
    pub fn bytes(b: &[u8]) -> usize {
        b.len() + 5
    }
    pub fn change(c: &crate::session::ChangeLine) -> usize {
        c.path.len() + c.line.len() + c.from.as_ref().map_or(0, |f| f.len()) + 24
    }
    pub fn error(e: &crate::apply::ApplyError) -> usize {
        e.path.len() + e.message.len() + 10
    }
}

/// Which half of a session a peer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Sender,
    Receiver,
}

/// The first message each side sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    /// `sluice 0.1.0`, for error messages.
    pub software: String,
    pub role: Role,
    /// The initiator's options (the answering side sends its copy back).
    pub options: SessionOptions,
    /// The folder a serving peer should work on (from the initiator only).
    pub path: Option<serde_bytes::ByteBuf>,
    /// What this side can do beyond the base protocol ([`CAPABILITIES`]).
    pub capabilities: Vec<String>,
}

/// Capabilities this build offers: chunks over UDP (`udp`).
pub const CAPABILITIES: &[&str] = &["udp"];

/// An entry of the source manifest, as sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireEntry {
    #[serde(with = "serde_bytes")]
    pub path: Vec<u8>,
    pub meta: Meta,
    #[serde(with = "serde_bytes")]
    pub target: Vec<u8>,
    pub hash: Option<Hash>,
    pub chunks: Vec<ChunkRef>,
}

/// What the sender says after its scan, before the first window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub params: ChunkParams,
    /// The scan hit an I/O error: the receiver must not delete.
    pub partial: bool,
    /// Entries the source's manifest will list (for progress).
    pub entries: u64,
}

/// Where and how the receiver takes this round's chunks over UDP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpOffer {
    /// The receiver's UDP port (the sender knows its address).
    pub port: u16,
    /// Secret the per-direction datagram keys are derived from; it only
    /// ever crosses the already-protected control channel.
    pub secret: [u8; 32],
    /// Largest IP packet and the IP+UDP header size the layout assumes.
    pub packet_size: u16,
    pub ip_overhead: u16,
    /// False for `--cipher none`.
    pub encrypt: bool,
}

/// Consecutive requests: needs `idx .. idx + count` are the chunks the
/// sender listed at positions `ordinal .. ordinal + count` of its chunk
/// lists (counted across every `FileChunks` it sent, in order), so a
/// request costs a few bytes per run instead of a hash per chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedRun {
    pub idx: u32,
    pub ordinal: u32,
    pub count: u32,
}

/// Consecutive manifest positions `start .. start + count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: u32,
    pub count: u32,
}

/// Packs ascending positions into spans.
pub fn spans(positions: impl IntoIterator<Item = u32>) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for p in positions {
        match out.last_mut() {
            Some(s) if s.start.checked_add(s.count) == Some(p) => s.count += 1,
            _ => out.push(Span { start: p, count: 1 }),
        }
    }
    out
}

/// One piece of a bulky message run sent as datagrams: its length and
/// BLAKE3 hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkPiece {
    pub length: u32,
    pub hash: Hash,
}

/// One requested chunk: its stream index, hash and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Need {
    pub idx: u32,
    pub hash: Hash,
    pub length: u32,
}

impl Need {
    /// A request for stream chunk `idx`, which is `c`.
    pub fn new(idx: u32, c: &StreamChunk) -> Need {
        Need {
            idx,
            hash: c.hash,
            length: c.length,
        }
    }

    pub fn chunk(&self) -> StreamChunk {
        StreamChunk {
            hash: self.hash,
            length: self.length,
        }
    }
}

/// Everything that crosses the control channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    Hello(Hello),
    /// Part of the source manifest.
    Entries(Vec<WireEntry>),
    /// The receiver wants the chunk lists of these manifest entries (by
    /// their position in the manifest as sent), in this order.
    WantChunks(Vec<Span>),
    /// End of the receiver's chunk-list requests.
    WantDone,
    /// (Part of) the chunk list of manifest entry `index`.
    FileChunks {
        index: u32,
        chunks: Vec<ChunkRef>,
    },
    /// Every requested chunk list was sent.
    ChunksDone,
    /// The source's scan is done: first message after the hellos.
    Source(SourceInfo),
    /// Paths left out because they kept changing (never deleted at DST);
    /// after [`Msg::Source`], before the first window.
    Protect(Vec<serde_bytes::ByteBuf>),
    /// The source scan's warnings, same place.
    Warnings(Vec<String>),
    /// End of one window of the manifest (`last`: of the whole manifest).
    WindowEnd {
        last: bool,
    },
    /// Chunks the receiver asks for.
    Need(Vec<NeedRun>),
    /// End of one round's requests; an empty round ends the transfer. With
    /// `udp`, this round's chunks travel as UDP datagrams, not `Data`.
    NeedDone {
        round: u32,
        count: u32,
        udp: Option<UdpOffer>,
    },
    /// A control message of the UDP data phase (`proto::ControlMsg`, encoded).
    Proto(serde_bytes::ByteBuf),
    /// This side's UDP data phase is over (`ok`: it completed).
    DataDone {
        ok: bool,
    },
    /// One chunk's bytes.
    Data {
        idx: u32,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// The sender cannot supply this chunk (its source changed).
    Unavailable {
        idx: u32,
    },
    /// The sender has sent everything of this round.
    RoundDone {
        round: u32,
    },
    /// The sender's last word: what it put on the wire, how many source
    /// entries vanished during the run (the paths of those found gone when
    /// their chunks were read came before, in [`Msg::Vanished`]), and what
    /// its UDP data phases measured (`None`: no chunk went by UDP).
    SenderDone {
        wire_bytes_sent: u64,
        vanished: u64,
        link: Option<super::LinkFigures>,
    },
    /// The receiver's final report, its lists sent before it in
    /// [`Msg::ReportLines`].
    Report(Box<SyncReport>),
    /// Part of the final report's lists.
    ReportLines {
        changes: Vec<super::ChangeLine>,
        warnings: Vec<String>,
        errors: Vec<crate::apply::ApplyError>,
    },
    /// The peer gives up; the text says why.
    Error(String),
    /// The sender's next messages, encoded back to back as frames and cut
    /// into these pieces, are bulky enough to go as UDP datagrams: the
    /// receiver answers `BulkReady`.
    Bulk(Vec<BulkPiece>),
    /// The receiver takes the bulk run on this UDP offer, or (`None`) wants
    /// its messages on the control connection.
    BulkReady(Option<UdpOffer>),
    /// The receiver has the whole bulk run (`ok`), or gave up on UDP and
    /// wants its messages on the control connection.
    BulkDone {
        ok: bool,
    },
    /// The sender is still there: between two sessions on one connection
    /// (a watch that waits for changes), and during a session run with
    /// `--timeout`. Never answered; transports drop it on reading.
    Keepalive,
    /// Instead of the receiver's hello: another run holds the
    /// destination's lock (the text names it).
    Busy(String),
    /// Source files that were gone when the sender came to read their
    /// chunks (printable paths); before [`Msg::SenderDone`].
    Vanished(Vec<String>),
    /// Receiver, before a round's `Need` runs on the control connection:
    /// the destination's old bytes for the shipped chunks `chunks` (stream
    /// indices), as small-piece hashes. The sender may answer each of them
    /// once with [`Msg::Delta`].
    Base {
        chunks: Vec<u32>,
        sig: crate::delta::fine::Signature,
    },
    /// One chunk, as a delta against its [`Msg::Base`].
    Delta {
        idx: u32,
        delta: crate::delta::fine::Delta,
    },
    /// One chunk on the control connection, as the next piece of the
    /// window's zstd stream ([`crate::delta::stream`]).
    Streamed {
        idx: u32,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// A run of the sender's messages (manifest entries, chunk lists),
    /// encoded back to back and compressed with zstd as one frame of
    /// `length` bytes when decoded (at most `ZIP_MAX`, 16 MiB).
    Zipped {
        length: u32,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// One chunk as a delta against its [`Msg::Base`] whose new bytes
    /// (`literal_len` of them) are the next piece of the window's zstd
    /// stream, so they have the chunks before them as history.
    StreamedDelta {
        idx: u32,
        refs: Vec<(u32, u32)>,
        ops: Vec<crate::delta::fine::Op>,
        literal_len: u32,
        #[serde(with = "serde_bytes")]
        literals: Vec<u8>,
    },
    /// Sender, after a `NeedDone` that offers UDP, when chunks are
    /// compressed: each requested chunk's length in the datagram stream,
    /// in request order (shorter than the chunk: one zstd frame; equal: as
    /// it is). In batches, until there is one per request.
    Sizes(Vec<u32>),
}

impl Msg {
    /// A short name for "unexpected message" errors.
    pub fn name(&self) -> &'static str {
        match self {
            Msg::Hello(_) => "Hello",
            Msg::Entries(_) => "Entries",
            Msg::WantChunks(_) => "WantChunks",
            Msg::WantDone => "WantDone",
            Msg::FileChunks { .. } => "FileChunks",
            Msg::ChunksDone => "ChunksDone",
            Msg::Source(_) => "Source",
            Msg::Protect(_) => "Protect",
            Msg::Warnings(_) => "Warnings",
            Msg::WindowEnd { .. } => "WindowEnd",
            Msg::Need(_) => "Need",
            Msg::NeedDone { .. } => "NeedDone",
            Msg::Proto(_) => "Proto",
            Msg::DataDone { .. } => "DataDone",
            Msg::Data { .. } => "Data",
            Msg::Base { .. } => "Base",
            Msg::Delta { .. } => "Delta",
            Msg::Sizes(_) => "Sizes",
            Msg::Streamed { .. } => "Streamed",
            Msg::Zipped { .. } => "Zipped",
            Msg::StreamedDelta { .. } => "StreamedDelta",
            Msg::Unavailable { .. } => "Unavailable",
            Msg::RoundDone { .. } => "RoundDone",
            Msg::SenderDone { .. } => "SenderDone",
            Msg::Report(_) => "Report",
            Msg::ReportLines { .. } => "ReportLines",
            Msg::Error(_) => "Error",
            Msg::Bulk(_) => "Bulk",
            Msg::BulkReady(_) => "BulkReady",
            Msg::BulkDone { .. } => "BulkDone",
            Msg::Keepalive => "Keepalive",
            Msg::Busy(_) => "Busy",
            Msg::Vanished(_) => "Vanished",
        }
    }
}

impl WireEntry {
    /// The wire form of an index entry for the manifest: without its chunk
    /// list, which is sent on request.
    pub fn without_chunks(e: &Entry) -> WireEntry {
        WireEntry {
            path: e.path.as_bytes().to_vec(),
            meta: e.meta,
            target: e.target.clone().unwrap_or_default(),
            hash: e.hash,
            chunks: Vec::new(),
        }
    }
}
