//! Sessions: one sync, from handshake to commit, over any transport.
//!
//! A session has two halves. The **sender** scans the source, sends its
//! manifest, and ships the chunks it is asked for. The **receiver** scans
//! the destination, plans, applies, updates the destination's index, and
//! reports. The halves only talk through a [`Transport`]; a local sync runs
//! both in one process over a [`MemoryTransport`], and remote syncs run the
//! same code over ssh pipes or a daemon connection.
//!
//! ```text
//! sender                               receiver
//!   Hello  ───────────────────────────▶  (and back)
//!   Source, Protect…, Warnings… ─────▶  scan DST meanwhile
//!   ┌ for each window of the manifest (path order, WINDOW_ENTRIES):
//!   │ Entries… WindowEnd{last} ───────▶  read DST's entries of the range
//!   │                     ◀─────────── WantChunks… WantDone (lists of
//!   │                                   files DST lacks)
//!   │ FileChunks… ChunksDone ─────────▶  plan the window
//!   │                     ◀─────────── Need… NeedDone{round, count}
//!   │ Data… / Unavailable… RoundDone ─▶  apply as chunks land
//!   │                     ◀─────────── (more rounds for chunks that
//!   │                                   failed local verification)
//!   └                     ◀─────────── NeedDone{count: 0}; commit the
//!                                       window to DST's index
//!   Vanished… SenderDone ─────────────▶  deletions, folder metadata
//!                         ◀─────────── ReportLines… Report
//!
//! No message grows with the tree: lists are cut into messages of about
//! [`msg::BATCH_BYTES`], and each side holds one window of the tree (plus
//! what must span it: deletions, hard-link leaders, folders' metadata).
//! ```

pub mod alive;
mod bulk;
mod estimate;
mod figures;
pub mod lock;
pub mod msg;
mod receiver;
pub mod remote;
mod sender;
pub mod serve;
mod shrink;
pub mod transport;
mod udp;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::apply::ApplyError;
use crate::entry::Kind;
use crate::error::{Error, ProtocolError, Result};
use crate::plan::{Change, ChangeKind};
use crate::scan::{Excludes, ScanOptions};

pub use figures::LinkFigures;
pub use receiver::run_receiver;
pub use sender::run_sender;
pub use transport::{MemoryTransport, StreamTransport, Transport};

/// Options of a sync, chosen by the initiating side and sent to the other.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionOptions {
    pub delete: bool,
    pub dry_run: bool,
    pub checksum: bool,
    pub hard_links: bool,
    pub max_delete: Option<u64>,
    pub allow_empty_source: bool,
    /// Exclude patterns (gitignore syntax), `--exclude-from` lines first.
    pub excludes: Vec<String>,
    pub gitignore: bool,
    /// How shipped chunks travel.
    pub data: DataOptions,
    /// The initiator prints one line per change (`--itemize-changes`,
    /// `--dry-run`, `--json`): a remote receiver's report then lists them
    /// all. Otherwise it lists only deletions, and only under
    /// `--max-delete` (their count is the error's), which keeps the report
    /// of a big first sync from crawling over a lossy control connection.
    pub itemize: bool,
    /// Source entries per window (0: [`msg::WINDOW_ENTRIES`], or for tests
    /// `SLUICE_TEST_WINDOW` of the initiating side).
    pub window: u32,
    /// A watch round: both sides scan, send and compare only what these
    /// cover (`None`: the whole tree).
    pub scopes: Option<crate::scope::Scopes>,
    /// Seconds the receiver waits for another run's lock on the
    /// destination (`--wait-lock`; 0: refuse at once).
    pub wait_lock: u64,
    /// Without `itemize`: the report still lists the first this many
    /// changes (for the run history; 0: none).
    pub change_list: u32,
    /// `--timeout`: the initiator gives up when nothing arrives or can be
    /// sent for this many seconds, and both halves send keepalives while
    /// they work (0: no timeout, no keepalives; see [`alive`]).
    pub timeout: u32,
}

/// How shipped chunks travel (`--transport`, `--rate`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataOptions {
    pub transport: TransportChoice,
    /// Ceiling in bits per second (`None`: no ceiling).
    pub rate: Option<u64>,
    /// Floor in bits per second for `fair`.
    pub min_rate: Option<u64>,
    pub policy: Policy,
    /// Largest IP packet of a data datagram (1500, up to 9000 for jumbo frames).
    pub packet_size: u16,
    /// Encrypt and authenticate datagrams (false: `--cipher none`).
    pub encrypt: bool,
    /// zstd level for chunks on the control connection (`None`: sent as
    /// they are; `--compress`).
    pub compress: Option<i32>,
    /// Changed files' chunks on the control connection travel as deltas
    /// against the destination's old version (`--no-whole-file`).
    pub delta: bool,
}

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions {
            transport: TransportChoice::Auto,
            rate: None,
            min_rate: None,
            policy: Policy::Fair,
            packet_size: 1500,
            encrypt: true,
            compress: None,
            delta: false,
        }
    }
}

/// `--transport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransportChoice {
    /// UDP between hosts, falling back to the control connection when no
    /// datagram gets through; the in-process pipe for local syncs.
    Auto,
    /// UDP always (over loopback for a local sync); fail if it is blocked.
    Udp,
    /// Chunks on the control connection (or the in-process pipe).
    Tcp,
}

/// `--policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Policy {
    /// Adapt to the path's queueing delay, up to `--rate`.
    Fair,
    /// Send at `--rate` whatever happens.
    Fixed,
}

impl SessionOptions {
    /// Source entries per window, within [`msg::MAX_WINDOW`].
    pub fn window_entries(&self) -> u32 {
        match self.window {
            0 => msg::WINDOW_ENTRIES,
            n => n.min(msg::MAX_WINDOW),
        }
    }

    /// The initiator's window: its option, else `SLUICE_TEST_WINDOW`.
    fn settle_window(mut self) -> SessionOptions {
        if self.window == 0 {
            self.window = std::env::var("SLUICE_TEST_WINDOW")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
        self
    }

    /// The scan options both sides use (excluded entries are neither sent
    /// nor deleted, as with rsync).
    pub fn scan_options(&self, side: &Side) -> ScanOptions {
        let threads = side.threads;
        ScanOptions {
            excludes: Excludes {
                patterns: self.excludes.clone(),
                from_files: Vec::new(),
                gitignore: self.gitignore,
            },
            checksum: self.checksum,
            threads,
            progress: side.progress.as_ref().map(|p| Arc::clone(&p.scan)),
            ..ScanOptions::default()
        }
    }
}

/// One side's tree and the index that describes it.
#[derive(Clone, Debug)]
pub struct Side {
    /// The tree's root (canonical, or about to be created for a receiver).
    pub root: PathBuf,
    /// The index file; `None` for the default location.
    pub index: Option<PathBuf>,
    /// Scan threads (0: one per core).
    pub threads: usize,
    /// Live counters for a progress display.
    pub progress: Option<Arc<Progress>>,
    /// UDP: where the peer is (for a sender), and where to listen (for a
    /// receiver); see [`UdpSide`].
    pub udp: UdpSide,
    /// The destination locks this side's holder has taken (a receiver
    /// takes its destination's; see [`lock`]).
    pub locks: lock::Locks,
}

/// One side's UDP addressing.
#[derive(Clone, Debug)]
pub struct UdpSide {
    /// The peer's address, when this side sends (`None`: UDP impossible).
    pub peer: Option<std::net::IpAddr>,
    /// Address a receiver binds its UDP socket to.
    pub bind: std::net::IpAddr,
    /// Ports a receiver may listen on (`0..=0`: any free port).
    pub ports: std::ops::RangeInclusive<u16>,
    /// True between two local folders: `auto` then uses the in-process pipe.
    pub local: bool,
}

/// Default UDP ports a receiver tries, first free wins.
pub const DEFAULT_UDP_PORTS: std::ops::RangeInclusive<u16> = 33001..=33016;

impl UdpSide {
    /// Both halves in this process: loopback, any free port.
    pub fn local() -> UdpSide {
        UdpSide {
            peer: Some(std::net::Ipv4Addr::LOCALHOST.into()),
            bind: std::net::Ipv4Addr::LOCALHOST.into(),
            ports: 0..=0,
            local: true,
        }
    }

    /// A side talking to a peer at `peer` (if known).
    pub fn remote(peer: Option<std::net::IpAddr>, ports: std::ops::RangeInclusive<u16>) -> UdpSide {
        UdpSide {
            peer,
            bind: std::net::Ipv6Addr::UNSPECIFIED.into(),
            ports,
            local: false,
        }
    }
}

/// Counters a progress display can poll while a session runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// 0 scanning, 1 transferring, 2 finishing.
    pub phase: AtomicU8,
    /// Bytes of the files to write, as far as planned (it grows window
    /// by window).
    pub bytes_total: AtomicU64,
    /// Entries the source lists, and those planned so far.
    pub entries_total: AtomicU64,
    pub entries_planned: AtomicU64,
    /// Bytes of files written so far.
    pub bytes_done: Arc<AtomicU64>,
    /// The file being written, sampled when the display asks.
    pub current: Arc<crate::apply::CurrentFile>,
    /// Scan counters (both trees of a local sync add up here).
    pub scan: Arc<crate::scan::ScanProgress>,
    /// The UDP link as this side's sending driver last measured it
    /// (nothing while this side only receives).
    pub link: LinkGauge,
    /// The receiver is remote (a push): the sender counts the chunk bytes
    /// it ships into `bytes_done` of `bytes_total`, in place of the bytes
    /// the receiver writes.
    pub count_shipped: bool,
}

/// Loss and round trip of a running UDP phase, for a progress display.
#[derive(Debug, Default)]
pub struct LinkGauge {
    /// Loss in millionths, plus one (0: nothing measured yet).
    loss_ppm: AtomicU64,
    /// Smoothed round trip in microseconds (0: not measured yet).
    rtt_us: AtomicU64,
}

impl LinkGauge {
    /// Records the sender's figures (its round trip only once measured).
    pub fn set(&self, stats: &crate::proto::sender::SenderStats) {
        use std::sync::atomic::Ordering::Relaxed;
        let ppm = (stats.loss.clamp(0.0, 1.0) * 1e6) as u64;
        self.loss_ppm.store(ppm + 1, Relaxed);
        if stats.rtt_measured {
            self.rtt_us.store(stats.srtt.as_micros() as u64, Relaxed);
        }
    }

    /// Loss in percent and round trip in milliseconds, once measured.
    pub fn get(&self) -> Option<(f64, f64)> {
        use std::sync::atomic::Ordering::Relaxed;
        let (ppm, rtt) = (self.loss_ppm.load(Relaxed), self.rtt_us.load(Relaxed));
        (ppm > 0 && rtt > 0).then(|| ((ppm - 1) as f64 / 1e4, rtt as f64 / 1e3))
    }
}

/// [`Progress::phase`] values.
pub const PHASE_SCAN: u8 = 0;
pub const PHASE_TRANSFER: u8 = 1;
pub const PHASE_FINISH: u8 = 2;

/// One line of the itemised change list, in printable form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeLine {
    pub change: ChangeKind,
    pub path: String,
    pub kind: Kind,
    /// For renames the old path, for hard links the leader (null otherwise).
    /// Never skipped: the report also crosses the wire in a non-self-describing
    /// encoding, where every field must be present.
    pub from: Option<String>,
    /// The itemised line (`+ path`, `R old -> new`, ...).
    pub line: String,
}

impl From<&Change> for ChangeLine {
    fn from(c: &Change) -> Self {
        ChangeLine {
            change: c.change,
            path: c.path.display(),
            kind: c.kind,
            from: c.from.as_ref().map(|p| p.display()),
            line: c.line(),
        }
    }
}

/// What a sync did (or, in a dry run, would do). Printed by `--json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    pub dry_run: bool,
    /// Regular files and their bytes in the source.
    pub files_total: u64,
    pub bytes_total: u64,
    pub files_created: u64,
    pub files_updated: u64,
    /// Files among the deleted entries.
    pub files_deleted: u64,
    pub entries_deleted: u64,
    pub dirs_created: u64,
    pub symlinks_created: u64,
    pub meta_updated: u64,
    /// Chunk payload the sender shipped (would ship, in a dry run).
    pub chunk_bytes_sent: u64,
    /// The shipped chunks' bytes as they travelled: compressed with zstd,
    /// or as deltas against the destination's old version of their file
    /// (`--compress`, `--no-whole-file`); equal to `chunk_bytes_sent` when
    /// neither applied. A dry run estimates it from a sample
    /// (`encoded_sample_bytes`).
    pub chunk_bytes_encoded: u64,
    /// Chunks that travelled as deltas, and the bytes that saved (their
    /// length less what their deltas took); estimated in a dry run.
    pub delta_chunks: u64,
    pub delta_bytes_saved: u64,
    /// A dry run's sample: the chunk bytes the sender encoded to estimate
    /// the three figures above (exact when equal to `chunk_bytes_sent`);
    /// 0 in a run that is not a dry run.
    pub encoded_sample_bytes: u64,
    /// All bytes the sender put on the wire, framing and control included.
    pub wire_bytes_sent: u64,
    /// Bytes assembled from chunks already at the destination.
    pub bytes_reused: u64,
    /// How the chunks travelled: "udp", "control connection" (TCP, ssh or
    /// the in-process pipe of a local sync), or "none" when nothing was sent.
    pub data_path: String,
    /// Mean datagram loss of the UDP data phases, in percent: datagrams
    /// the receiver did not take per datagram the sender numbered, summed
    /// over the phases ([`LinkFigures`]). `None` when no chunk went by UDP.
    pub loss_pct: Option<f64>,
    /// The sender's smoothed round-trip time at the end of the last UDP
    /// data phase, in milliseconds (`None`: no UDP phase measured one).
    pub rtt_ms: Option<f64>,
    pub duration_s: f64,
    /// Source entries that vanished during the run (rsync's "file has
    /// vanished"): listed, then gone when the scan or the sender came to
    /// read them. They are not synced this run, and not errors: each has a
    /// warning, and a run whose only problems they are exits 24.
    pub vanished: u64,
    /// Deletions skipped: more than `--max-delete`.
    pub max_delete_hit: bool,
    /// Deletions skipped: the source scan was incomplete.
    pub deletes_skipped: bool,
    /// Problems on either side that left some entries unsynced.
    pub warnings: Vec<String>,
    pub errors: Vec<ApplyError>,
    pub changes: Vec<ChangeLine>,
}

impl SyncReport {
    /// True when some entries could not be read or written.
    pub fn partial(&self) -> bool {
        !self.errors.is_empty() || self.warnings.iter().any(|w| w.starts_with(PARTIAL_MARK))
    }
}

/// Warnings that make a run "partial" start with this.
pub const PARTIAL_MARK: &str = "error: ";

/// Checks the peer's hello against ours.
fn check_hello(peer: &msg::Hello, expect_role: msg::Role) -> Result<()> {
    if peer.version != msg::PROTOCOL_VERSION {
        return Err(Error::Version(format!(
            "incompatible peer: it runs {} (protocol {}), this is sluice {} (protocol {})",
            peer.software,
            peer.version,
            env!("CARGO_PKG_VERSION"),
            msg::PROTOCOL_VERSION
        )));
    }
    if peer.role != expect_role {
        return Err(ProtocolError::invalid(
            "Hello",
            format!("the peer wants to be the {:?} too", peer.role),
        )
        .into());
    }
    Ok(())
}

fn hello(role: msg::Role, options: &SessionOptions, path: Option<Vec<u8>>) -> msg::Msg {
    msg::Msg::Hello(msg::Hello {
        version: msg::PROTOCOL_VERSION,
        software: format!("sluice {}", env!("CARGO_PKG_VERSION")),
        role,
        options: options.clone(),
        path: path.map(serde_bytes::ByteBuf::from),
        capabilities: msg::CAPABILITIES.iter().map(|c| c.to_string()).collect(),
    })
}

/// What the two hellos settled.
pub(crate) struct Negotiated {
    pub options: SessionOptions,
    /// The peer's capabilities.
    pub peer_caps: Vec<String>,
}

impl Negotiated {
    /// True when the peer can take chunks over UDP.
    pub fn peer_has(&self, cap: &str) -> bool {
        self.peer_caps.iter().any(|c| c == cap)
    }
}

/// How a half starts its session.
#[derive(Clone, Debug)]
pub enum Opening {
    /// This side started the session: it sends the options (and, to a
    /// server, the path the server should work on) in its hello.
    Initiate {
        options: SessionOptions,
        remote_path: Option<Vec<u8>>,
    },
    /// This side answers: the peer's hello was already read (by a server
    /// deciding its role) or is read now (`None`).
    Answer(Option<msg::Hello>),
}

impl Opening {
    /// Exchanges hellos as `role`; returns the session's options and the
    /// peer's capabilities.
    fn open(self, t: &mut dyn Transport, role: msg::Role) -> Result<Negotiated> {
        self.open_checked(t, role, |_| Ok(()))
    }

    /// [`Opening::open`], with `check` run on the session's options before
    /// this side says hello (a receiver takes its lock there); a
    /// [`Error::LockBusy`] from it is told to the peer instead of a hello.
    fn open_checked(
        self,
        t: &mut dyn Transport,
        role: msg::Role,
        check: impl FnOnce(&SessionOptions) -> Result<()>,
    ) -> Result<Negotiated> {
        let peer_role = match role {
            msg::Role::Sender => msg::Role::Receiver,
            msg::Role::Receiver => msg::Role::Sender,
        };
        match self {
            Opening::Initiate {
                options,
                remote_path,
            } => {
                let options = options.settle_window();
                check(&options)?;
                t.send(&hello(role, &options, remote_path))?;
                let peer = read_hello(t)?;
                check_hello(&peer, peer_role)?;
                Ok(Negotiated {
                    options,
                    peer_caps: peer.capabilities,
                })
            }
            Opening::Answer(peer) => {
                let peer = match peer {
                    Some(h) => h,
                    None => read_hello(t)?,
                };
                if let Err(e) = check_hello(&peer, peer_role) {
                    // Tell the peer why, in its own terms, before giving up.
                    let _ = t.send(&hello(role, &peer.options, None));
                    return Err(e);
                }
                if let Err(e) = check(&peer.options) {
                    if let Error::LockBusy(why) = &e {
                        let _ = t.send(&msg::Msg::Busy(why.clone()));
                    }
                    return Err(e);
                }
                t.send(&hello(role, &peer.options, None))?;
                Ok(Negotiated {
                    options: peer.options,
                    peer_caps: peer.capabilities,
                })
            }
        }
    }
}

/// Reads the peer's hello.
pub fn read_hello(t: &mut dyn Transport) -> Result<msg::Hello> {
    match t.recv()? {
        msg::Msg::Hello(h) => Ok(h),
        msg::Msg::Busy(why) => Err(Error::LockBusy(why)),
        msg::Msg::Error(e) if e == crate::daemon::server::ACCESS_DENIED => Err(Error::Refused(e)),
        msg::Msg::Error(e) => Err(Error::Peer(e)),
        other => Err(ProtocolError::unexpected("Hello", other.name()).into()),
    }
}

/// What an answering side waits for after a session: the initiator's
/// next hello on the same connection (the next round of a watch; the
/// transport drops its keepalives meanwhile). `None` when the initiator
/// closed the connection (or it failed: with the session done, there is
/// nothing to lose).
pub fn next_hello(t: &mut dyn Transport) -> Result<Option<msg::Hello>> {
    match t.recv() {
        Ok(msg::Msg::Hello(h)) => Ok(Some(h)),
        Ok(msg::Msg::Error(e)) => Err(Error::Peer(e)),
        Ok(other) => Err(ProtocolError::unexpected("Hello between sessions", other.name()).into()),
        Err(e) => {
            tracing::debug!("connection over after a session: {e}");
            Ok(None)
        }
    }
}

/// Syncs two local folders: both halves in this process, over memory.
pub fn sync_local(src: &Side, dst: &Side, opts: &SessionOptions) -> Result<SyncReport> {
    let (mut a, mut b) = MemoryTransport::pair(64);
    std::thread::scope(|s| {
        let opening = Opening::Initiate {
            options: opts.clone(),
            remote_path: None,
        };
        let sender = s.spawn(|| run_sender(&mut a, src, Opening::Answer(None)));
        let received = run_receiver(&mut b, dst, opening);
        drop(b);
        let sent = sender
            .join()
            .unwrap_or_else(|_| Err(Error::Peer("sender thread panicked".into())));
        match (received, sent) {
            (Ok(report), _) => Ok(report),
            (Err(e), _) => Err(e),
        }
    })
}

/// Opens a side's index, at its default location unless given.
fn open_index(side: &Side) -> Result<(crate::index::Index, PathBuf)> {
    let path = index_path(side)?;
    Ok((crate::index::Index::open(&path)?, path))
}

/// Where a side's index is: its default location unless given.
fn index_path(side: &Side) -> Result<PathBuf> {
    match &side.index {
        Some(p) => Ok(p.clone()),
        None => crate::index::location::default_index_path(&side.root),
    }
}

/// Index files that live inside the tree are not part of it.
fn index_skips(path: &std::path::Path) -> Vec<PathBuf> {
    let mut skip = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        skip.push(p.into());
    }
    skip
}

#[cfg(test)]
mod tests;
