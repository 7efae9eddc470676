//! What a session reports: the totals, the itemised change lines and the
//! warnings and errors a run collected, as `--json` prints them and as the
//! receiver sends them back to the sender.

use serde::{Deserialize, Serialize};

use crate::apply::ApplyError;
use crate::entry::Kind;
use crate::plan::{Change, ChangeKind};

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
    /// over the phases ([`super::LinkFigures`]). `None` when no chunk went by UDP.
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
