//! What the history stores of one run: the start, the end, and the row
//! read back. Plain data; [`super::History`] does the SQL.

use serde::Serialize;

use crate::session::SyncReport;

/// A run's row in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

/// A `sluice watch`'s row: its rounds point to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct WatchId(pub i64);

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for WatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum RunKind {
    #[serde(rename = "sync")]
    Sync,
    /// `sluice diff` or `sync --dry-run`.
    #[serde(rename = "diff")]
    Diff,
    /// One round of a `sluice watch`.
    #[serde(rename = "watch-round")]
    WatchRound,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Sync => "sync",
            RunKind::Diff => "diff",
            RunKind::WatchRound => "watch-round",
        }
    }

    pub fn parse(s: &str) -> Option<RunKind> {
        [RunKind::Sync, RunKind::Diff, RunKind::WatchRound]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Not finished: its process is still alive.
    Running,
    /// Everything was done.
    Ok,
    /// Done except some entries (or, with `--max-delete`, the deletions).
    Partial,
    /// An error stopped it, or it was refused before it began.
    Failed,
    /// Its process ended without finishing the row (killed, crashed,
    /// powered off).
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Running,
            Outcome::Ok,
            Outcome::Partial,
            Outcome::Failed,
            Outcome::Interrupted,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// A run as it begins (written before the session, so that a run that
/// never ends still leaves a row).
#[derive(Clone, Debug)]
pub struct RunStart<'a> {
    pub kind: RunKind,
    pub watch: Option<WatchId>,
    pub job: Option<&'a str>,
    /// SRC and DST as the user wrote them.
    pub source: &'a str,
    pub destination: &'a str,
    /// Unix time in nanoseconds ([`super::now_ns`]).
    pub started_ns: i64,
}

/// A `sluice watch` as it begins.
#[derive(Clone, Debug)]
pub struct WatchStart<'a> {
    pub job: Option<&'a str>,
    pub source: &'a str,
    pub destination: &'a str,
    pub started_ns: i64,
}

/// A run as it ends.
#[derive(Clone, Debug)]
pub struct RunEnd<'a> {
    pub ended_ns: i64,
    /// [`Outcome::Ok`], [`Outcome::Partial`], [`Outcome::Failed`] or
    /// [`Outcome::Interrupted`].
    pub outcome: Outcome,
    pub exit_code: i32,
    /// The session's report (`None` when it failed before one was made).
    pub report: Option<&'a SyncReport>,
    /// True when the report lists every change (`SessionOptions::itemize`);
    /// otherwise its list is empty or only the deletions.
    pub itemized: bool,
    pub error: Option<&'a str>,
}

/// The figures of a run that ended with a report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunCounts {
    pub files_total: u64,
    pub bytes_total: u64,
    pub files_created: u64,
    pub files_updated: u64,
    pub files_deleted: u64,
    pub entries_deleted: u64,
    pub dirs_created: u64,
    pub symlinks_created: u64,
    pub meta_updated: u64,
    /// Chunk payload shipped.
    pub chunk_bytes_sent: u64,
    pub bytes_reused: u64,
    /// Everything the sender put on the wire.
    pub wire_bytes_sent: u64,
    /// The session's own duration (the row's start and end also cover
    /// checking the arguments and connecting).
    pub duration_s: f64,
    pub data_path: String,
    /// Mean rate on the wire over the session, bits per second.
    pub rate_bps: Option<f64>,
    pub warnings: u64,
    pub errors: u64,
}

impl RunCounts {
    pub fn of(r: &SyncReport) -> RunCounts {
        RunCounts {
            files_total: r.files_total,
            bytes_total: r.bytes_total,
            files_created: r.files_created,
            files_updated: r.files_updated,
            files_deleted: r.files_deleted,
            entries_deleted: r.entries_deleted,
            dirs_created: r.dirs_created,
            symlinks_created: r.symlinks_created,
            meta_updated: r.meta_updated,
            chunk_bytes_sent: r.chunk_bytes_sent,
            bytes_reused: r.bytes_reused,
            wire_bytes_sent: r.wire_bytes_sent,
            duration_s: r.duration_s,
            data_path: r.data_path.clone(),
            rate_bps: (r.duration_s > 0.0).then(|| r.wire_bytes_sent as f64 * 8.0 / r.duration_s),
            warnings: r.warnings.len() as u64,
            errors: r.errors.len() as u64,
        }
    }

    /// Entries created, updated, deleted or given new metadata (what
    /// `sluice watch` prints as "changed").
    pub fn changed(&self) -> u64 {
        self.files_created
            + self.files_updated
            + self.meta_updated
            + self.dirs_created
            + self.symlinks_created
            + self.entries_deleted
    }
}

/// One run read back.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunRow {
    pub id: RunId,
    pub kind: RunKind,
    pub watch: Option<WatchId>,
    pub job: Option<String>,
    pub started_ns: i64,
    pub ended_ns: Option<i64>,
    pub source: String,
    pub destination: String,
    pub pid: u32,
    /// As stored, except that a run still "running" whose process is gone
    /// reads as [`Outcome::Interrupted`].
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub counts: Option<RunCounts>,
    pub loss_pct: Option<f64>,
    pub rtt_ms: Option<f64>,
    /// See [`RunEnd::itemized`].
    pub itemized: bool,
    /// Change lines kept, and those beyond [`super::MAX_CHANGES`] only counted.
    pub changes_stored: u64,
    pub changes_dropped: u64,
}

/// Which runs [`super::History::list`] returns, newest first.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Runs started at or after this (unix ns).
    pub since_ns: Option<i64>,
    pub job: Option<String>,
    /// Only runs that did not end well: failed, partial or interrupted.
    pub failed_only: bool,
    /// At most this many (`None`: all).
    pub limit: Option<usize>,
}
