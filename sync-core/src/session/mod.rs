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
mod check;
mod estimate;
mod figures;
mod hello;
pub mod lock;
pub mod msg;
mod receiver;
pub mod remote;
mod report;
mod sender;
pub mod serve;
mod shrink;
pub mod transport;
mod udp;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::scan::{Excludes, ScanOptions};

pub use figures::LinkFigures;
pub use hello::{next_hello, read_hello, Opening};
pub use receiver::run_receiver;
pub use report::{ChangeLine, SyncReport, PARTIAL_MARK};
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
