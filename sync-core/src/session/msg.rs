//! Session messages and their validation.
//!
//! Every message crosses the control channel as one frame (see
//! [`super::transport`]) holding a postcard-encoded [`Msg`]. Decoding never
//! trusts the peer: sizes are bounded by the frame limit, paths go through
//! [`RelPath::new`], and a received manifest must form a tree whose files'
//! chunks tile them exactly ([`check_entry`], [`check_tree`]).

use serde::{Deserialize, Serialize};

use crate::chunk::{ChunkParams, ChunkRef, Hash};
use crate::entry::{Entry, Kind, Meta};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::path::RelPath;
use crate::plan::StreamChunk;

use super::{SessionOptions, SyncReport};

/// The session protocol version; peers must match exactly. 2: parity
/// datagrams of the tail codes, and even block sizes. 3: the sender's
/// status says where its tail codes may start. 4: bulky message runs
/// (manifest, chunk lists) may travel as UDP datagrams ([`Msg::Bulk`]),
/// wanted chunk lists and needed chunks are sent as runs.
pub const PROTOCOL_VERSION: u32 = 4;
/// Entries per `Entries` message.
pub const ENTRIES_PER_MSG: usize = 2048;
/// Chunks per `FileChunks` message (longer lists span several).
pub const CHUNKS_PER_MSG: usize = 16384;
/// Chunks per `Need` message.
pub const NEED_PER_MSG: usize = 16384;
/// Most entries a received manifest may list (a bound on the receiver's
/// memory, far above real trees: 78,000 entries for a kernel source tree).
pub const MAX_ENTRIES: usize = 50_000_000;
/// Most chunks a received manifest may list in all (16 TB at 64 KiB each).
pub const MAX_CHUNKS: usize = 256_000_000;

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

/// What the sender reports after its scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceDone {
    pub params: ChunkParams,
    /// The scan hit an I/O error: the receiver must not delete.
    pub partial: bool,
    /// Paths left out because they kept changing (never deleted at DST).
    pub protect: Vec<serde_bytes::ByteBuf>,
    pub warnings: Vec<String>,
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
    /// End of the source manifest.
    SourceDone(SourceDone),
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
    /// The sender's last word: what it put on the wire.
    SenderDone {
        wire_bytes_sent: u64,
    },
    /// The receiver's final report.
    Report(Box<SyncReport>),
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
            Msg::SourceDone(_) => "SourceDone",
            Msg::Need(_) => "Need",
            Msg::NeedDone { .. } => "NeedDone",
            Msg::Proto(_) => "Proto",
            Msg::DataDone { .. } => "DataDone",
            Msg::Data { .. } => "Data",
            Msg::Unavailable { .. } => "Unavailable",
            Msg::RoundDone { .. } => "RoundDone",
            Msg::SenderDone { .. } => "SenderDone",
            Msg::Report(_) => "Report",
            Msg::Error(_) => "Error",
            Msg::Bulk(_) => "Bulk",
            Msg::BulkReady(_) => "BulkReady",
            Msg::BulkDone { .. } => "BulkDone",
        }
    }
}

/// A protocol error: the peer sent something it should not have.
pub fn protocol(what: impl Into<String>) -> Error {
    Error::Protocol(what.into())
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

/// Validates one received entry and turns it into an [`Entry`].
pub fn check_entry(w: WireEntry, params: &ChunkParams) -> Result<Entry> {
    let path = RelPath::new(w.path)?;
    let m = &w.meta;
    match m.kind {
        Kind::File => {
            let hash = w
                .hash
                .ok_or_else(|| protocol(format!("file {} has no hash", path.display())))?;
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
                return Err(protocol(format!(
                    "symlink {} has a bad target",
                    path.display()
                )));
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
            return Err(protocol(format!(
                "file {} has a malformed chunk list",
                path.display()
            )));
        }
        at += c.length as u64;
    }
    if at != size {
        return Err(protocol(format!(
            "file {}: chunks cover {at} of {size} bytes",
            path.display()
        )));
    }
    Ok(())
}

/// Every entry's parent must be a folder of the manifest, and the root a
/// folder: so no received path can sit below a symlink or a file.
pub fn check_tree(m: &Manifest) -> Result<()> {
    let dirs: std::collections::HashSet<&[u8], foldhash::fast::RandomState> = m
        .entries
        .values()
        .filter(|e| e.meta.kind == Kind::Dir)
        .map(|e| e.path.as_bytes())
        .collect();
    if !dirs.contains(&b""[..]) {
        return Err(protocol("the manifest has no root folder"));
    }
    for path in m.entries.keys().filter(|p| !p.is_root()) {
        let bytes = path.as_bytes();
        let parent = &bytes[..bytes.iter().rposition(|&b| b == b'/').unwrap_or(0)];
        if !dirs.contains(parent) {
            return Err(protocol(format!(
                "{} has no parent folder in the manifest",
                path.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Meta;

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
