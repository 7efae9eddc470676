//! The run history: what each `sluice sync`, `diff` and watch round did,
//! for `sluice log`.
//!
//! This module owns the history's `rusqlite::Connection`, one SQLite file
//! per user ([`History::default_path`]). A run's row is written as it
//! starts ([`History::start`]) and completed as it ends
//! ([`History::finish`]) with its outcome, exit code, the report's figures
//! and its change lines. It never runs or judges a sync: callers treat its
//! errors as warnings, so a broken history never fails a run.
//!
//! # Interrupted runs
//! A row is "running" until finished, with the process that wrote it
//! ([`process::Process`]); a running row whose process is gone reads as
//! [`Outcome::Interrupted`] (killed, crashed, powered off). Nothing is
//! rewritten for that: readers may have a read-only file.
//!
//! # Compatibility
//! The index's rules ([`schema`]): append-only migrations in one exclusive
//! transaction; a foreign or newer file is refused with
//! [`Error::NotAHistory`] and not modified.
//!
//! # Locking
//! Parallel cron jobs and a watch may all write here. Every write is one
//! short transaction; SQLite serialises them, waiting up to
//! [`BUSY_TIMEOUT`].
//!
//! # Size
//! Runs older than the retention go, at most once a day
//! ([`History::trim_daily`]), and a run keeps at most [`MAX_CHANGES`]
//! change lines (the rest are counted).

pub mod process;
pub mod run;
pub mod schema;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::entry::Kind;
use crate::error::{Error, Result};
use crate::session::ChangeLine;
pub use process::Process;
pub use run::{
    Filter, Outcome, RunCounts, RunEnd, RunId, RunKind, RunRow, RunStart, WatchId, WatchStart,
};

/// The history's file name in the state folder.
pub const FILE_NAME: &str = "history.db";

/// How long a write waits for another process's: the history must not hold
/// a sync up for long (a write that gives up is a warning).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Change lines kept per run: at about 100 bytes each, 10 MB for a run
/// that rewrote a big tree, whose list says little more than its counts.
pub const MAX_CHANGES: usize = 100_000;

/// Days of runs kept unless told otherwise (`--history-days`).
pub const KEEP_DAYS: u32 = 90;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// When [`History::trim_daily`] last trimmed (unix ns), in `meta`.
const LAST_TRIM: &str = "last_trim_ns";

/// The columns [`run_row`] reads, in its order.
const RUN_COLUMNS: &str = "id, kind, watch_session, job, started_ns, ended_ns, source, destination,
    pid, pid_start, outcome, exit_code, error, files_total, bytes_total, files_created,
    files_updated, files_deleted, entries_deleted, dirs_created, symlinks_created, meta_updated,
    chunk_bytes_sent, bytes_reused, wire_bytes_sent, duration_s, data_path, rate_bps, warnings,
    errors, loss_pct, rtt_ms, itemized, changes_stored, changes_dropped";

/// Unix time in nanoseconds, as the history stores it.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// An open run history.
pub struct History {
    conn: Connection,
    path: PathBuf,
}

impl History {
    /// `$XDG_STATE_HOME/sluice/history.db`, else `~/.local/state/sluice/`.
    pub fn default_path() -> Result<PathBuf> {
        let dir = crate::index::location::state_dir().map_err(|e| match e {
            Error::Usage(_) => Error::Usage("neither XDG_STATE_HOME nor HOME is set".into()),
            e => e,
        })?;
        Ok(dir.join(FILE_NAME))
    }

    /// Opens (creating if missing) the history at [`History::default_path`].
    pub fn open_default() -> Result<History> {
        History::open(&History::default_path()?)
    }

    /// Opens (creating if missing) the history at `path`, refusing foreign
    /// and newer files without modifying them, and migrating older ones.
    pub fn open(path: &Path) -> Result<History> {
        let conn = crate::sqlite_file::open(path, |e| Error::history(path, e))?;
        let mut h = History {
            conn,
            path: path.to_path_buf(),
        };
        h.prepare()?;
        Ok(h)
    }

    /// A history held in memory (tests).
    pub fn open_in_memory() -> Result<History> {
        let conn = Connection::open_in_memory().map_err(|e| Error::history(":memory:", e))?;
        let mut h = History {
            conn,
            path: PathBuf::from(":memory:"),
        };
        h.prepare()?;
        Ok(h)
    }

    /// The file this history lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        Error::history(&self.path, e)
    }

    fn refuse(&self, reason: impl Into<String>) -> Error {
        Error::NotAHistory {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn prepare(&mut self) -> Result<()> {
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| self.err(e))?;
        // Nothing below writes until the file is known to be ours.
        let read = |sql: &str| -> Result<i64> {
            self.conn
                .query_row(sql, [], |r| r.get(0))
                .map_err(|e| match e.sqlite_error_code() {
                    Some(rusqlite::ErrorCode::NotADatabase) => {
                        self.refuse("it is not an SQLite database")
                    }
                    _ => self.err(e),
                })
        };
        let version = read("PRAGMA user_version")?;
        let app_id = read("PRAGMA application_id")?;
        let tables = read("SELECT count(*) FROM sqlite_master")?;
        if app_id != i64::from(schema::APPLICATION_ID) && (app_id != 0 || tables > 0 || version > 0)
        {
            return Err(self.refuse(
                if app_id == i64::from(crate::index::schema::APPLICATION_ID) {
                    "it is a sluice index, not a run history"
                } else {
                    "it is an SQLite database of another program"
                },
            ));
        }
        if version > i64::from(schema::LATEST) {
            return Err(self.refuse(format!(
                "written by a newer sluice: format {version}, this one reads up to {}",
                schema::LATEST
            )));
        }
        let sql = |e| Error::history(&self.path, e);
        let _: String = self
            .conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sql)?;
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        if version < i64::from(schema::LATEST) {
            self.migrate()?;
        }
        Ok(())
    }

    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        crate::sqlite_file::migrate(
            &mut self.conn,
            schema::APPLICATION_ID,
            schema::MIGRATIONS,
            |e| Error::history(&path, e),
            |_, _| Ok(()),
        )
    }

    /// The schema version of the open file.
    pub fn version(&self) -> Result<u32> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Records a run as it begins, as running by this process.
    pub fn start(&self, s: &RunStart) -> Result<RunId> {
        let me = Process::current();
        self.conn
            .prepare_cached(
                "INSERT INTO runs(kind, watch_session, job, started_ns, source, destination, pid, pid_start, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'running')",
            )
            .and_then(|mut st| {
                st.insert(params![
                    s.kind.as_str(),
                    s.watch.map(|w| w.0),
                    s.job,
                    s.started_ns,
                    s.source,
                    s.destination,
                    me.pid,
                    me.start,
                ])
            })
            .map(RunId)
            .map_err(|e| self.err(e))
    }

    /// Completes a run's row: outcome, figures and (up to [`MAX_CHANGES`])
    /// change lines, in one transaction.
    pub fn finish(&mut self, id: RunId, end: &RunEnd) -> Result<()> {
        let path = self.path.clone();
        let sql = |e| Error::history(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let counts = end.report.map(RunCounts::of);
        let changes = end.report.map_or(&[][..], |r| &r.changes[..]);
        let stored = changes.len().min(MAX_CHANGES);
        let n = |f: fn(&RunCounts) -> u64| counts.as_ref().map(|c| f(c) as i64);
        tx.prepare_cached(
            "UPDATE runs SET ended_ns = ?2, outcome = ?3, exit_code = ?4, error = ?5,
               files_total = ?6, bytes_total = ?7, files_created = ?8, files_updated = ?9,
               files_deleted = ?10, entries_deleted = ?11, dirs_created = ?12,
               symlinks_created = ?13, meta_updated = ?14, chunk_bytes_sent = ?15,
               bytes_reused = ?16, wire_bytes_sent = ?17, duration_s = ?18, data_path = ?19,
               rate_bps = ?20, warnings = ?21, errors = ?22, loss_pct = ?23, rtt_ms = ?24,
               itemized = ?25, changes_stored = ?26, changes_dropped = ?27
             WHERE id = ?1",
        )
        .and_then(|mut st| {
            st.execute(params![
                id.0,
                end.ended_ns,
                end.outcome.as_str(),
                end.exit_code,
                end.error,
                n(|c| c.files_total),
                n(|c| c.bytes_total),
                n(|c| c.files_created),
                n(|c| c.files_updated),
                n(|c| c.files_deleted),
                n(|c| c.entries_deleted),
                n(|c| c.dirs_created),
                n(|c| c.symlinks_created),
                n(|c| c.meta_updated),
                n(|c| c.chunk_bytes_sent),
                n(|c| c.bytes_reused),
                n(|c| c.wire_bytes_sent),
                counts.as_ref().map(|c| c.duration_s),
                counts.as_ref().map(|c| c.data_path.as_str()),
                counts.as_ref().and_then(|c| c.rate_bps),
                n(|c| c.warnings),
                n(|c| c.errors),
                end.report.and_then(|r| r.loss_pct),
                end.report.and_then(|r| r.rtt_ms),
                end.itemized,
                stored as i64,
                (changes.len() - stored) as i64,
            ])
        })
        .map_err(sql)?;
        // A row finished twice keeps the second list.
        tx.prepare_cached("DELETE FROM changes WHERE run = ?1")
            .and_then(|mut st| st.execute([id.0]))
            .map_err(sql)?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO changes(run, ordinal, change, kind, path, from_path, line)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sql)?;
            for (i, c) in changes[..stored].iter().enumerate() {
                st.execute(params![
                    id.0,
                    i as i64,
                    change_name(c),
                    c.kind.code(),
                    c.path,
                    c.from,
                    c.line
                ])
                .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }

    /// Deletes a run and its change lines (a watch round that turned out
    /// to change nothing).
    pub fn discard(&mut self, id: RunId) -> Result<()> {
        let path = self.path.clone();
        let sql = |e| Error::history(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        tx.prepare_cached("DELETE FROM changes WHERE run = ?1")
            .and_then(|mut st| st.execute([id.0]))
            .map_err(sql)?;
        tx.prepare_cached("DELETE FROM runs WHERE id = ?1")
            .and_then(|mut st| st.execute([id.0]))
            .map_err(sql)?;
        tx.commit().map_err(sql)
    }

    /// Records a `sluice watch` as it begins; its rounds name it in
    /// [`RunStart::watch`].
    pub fn start_watch(&self, s: &WatchStart) -> Result<WatchId> {
        let me = Process::current();
        self.conn
            .prepare_cached(
                "INSERT INTO watch_sessions(job, started_ns, source, destination, pid, pid_start)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut st| {
                st.insert(params![
                    s.job,
                    s.started_ns,
                    s.source,
                    s.destination,
                    me.pid,
                    me.start
                ])
            })
            .map(WatchId)
            .map_err(|e| self.err(e))
    }

    /// Records the end of a `sluice watch` and how many rounds it ran
    /// (rounds that changed nothing have no row of their own).
    pub fn finish_watch(&self, id: WatchId, ended_ns: i64, rounds: u64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE watch_sessions SET ended_ns = ?2, rounds = ?3 WHERE id = ?1")
            .and_then(|mut st| st.execute(params![id.0, ended_ns, rounds as i64]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The runs `f` selects, newest first.
    pub fn list(&self, f: &Filter) -> Result<Vec<RunRow>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE (?1 IS NULL OR started_ns >= ?1) AND (?2 IS NULL OR job = ?2)
                   AND (?3 = 0 OR outcome <> 'ok')
                 ORDER BY started_ns DESC, id DESC"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![f.since_ns, f.job, f.failed_only], run_row)
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let row = row.map_err(|e| self.err(e))?;
            // A running row is not a failure, but an interrupted one is,
            // and only its process tells them apart.
            if f.failed_only && row.outcome == Outcome::Running {
                continue;
            }
            out.push(row);
            if f.limit.is_some_and(|n| out.len() >= n) {
                break;
            }
        }
        Ok(out)
    }

    /// One run and its change lines (`None`: no such run).
    pub fn show(&self, id: RunId) -> Result<Option<(RunRow, Vec<ChangeLine>)>> {
        let row = self
            .conn
            .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))
            .and_then(|mut st| st.query_row([id.0], run_row).optional())
            .map_err(|e| self.err(e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT change, kind, path, from_path, line FROM changes WHERE run = ?1 ORDER BY ordinal",
            )
            .map_err(|e| self.err(e))?;
        let changes = st
            .query_map([id.0], |r| {
                let name: String = r.get(0)?;
                Ok(ChangeLine {
                    change: serde_json::from_value(serde_json::Value::String(name))
                        .map_err(|e| bad(0, e.to_string()))?,
                    kind: Kind::from_code(r.get(1)?).ok_or_else(|| bad(1, "unknown kind"))?,
                    path: r.get(2)?,
                    from: r.get(3)?,
                    line: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(Some((row, changes)))
    }

    /// Deletes the runs (with their change lines) started more than
    /// `keep_days` before `now_ns`, and the watch sessions left without
    /// rounds; returns how many runs went.
    pub fn trim(&mut self, keep_days: u32, now_ns: i64) -> Result<u64> {
        let path = self.path.clone();
        let sql = |e| Error::history(&path, e);
        let cutoff = now_ns.saturating_sub(i64::from(keep_days).saturating_mul(DAY_NS));
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        tx.execute(
            "DELETE FROM changes WHERE run IN (SELECT id FROM runs WHERE started_ns < ?1)",
            [cutoff],
        )
        .map_err(sql)?;
        let runs = tx
            .execute("DELETE FROM runs WHERE started_ns < ?1", [cutoff])
            .map_err(sql)?;
        tx.execute(
            "DELETE FROM watch_sessions WHERE coalesce(ended_ns, started_ns) < ?1
               AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.watch_session = watch_sessions.id)",
            [cutoff],
        )
        .map_err(sql)?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![LAST_TRIM, now_ns.to_string()],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(runs as u64)
    }

    /// [`History::trim`], unless it ran less than a day ago; `keep_days`
    /// 0 keeps every run.
    pub fn trim_daily(&mut self, keep_days: u32, now_ns: i64) -> Result<u64> {
        if keep_days == 0 {
            return Ok(0);
        }
        let last: Option<String> = self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut st| st.query_row([LAST_TRIM], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        let last = last.and_then(|v| v.parse::<i64>().ok());
        if last.is_some_and(|t| (0..DAY_NS).contains(&(now_ns - t))) {
            return Ok(0);
        }
        self.trim(keep_days, now_ns)
    }
}

/// A change's name as in `--json` (`create`, `update`, ...).
fn change_name(c: &ChangeLine) -> String {
    match serde_json::to_value(c.change) {
        Ok(serde_json::Value::String(s)) => s,
        _ => c.change.marker().to_string(),
    }
}

fn bad(col: usize, what: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, what.into().into())
}

/// A [`RUN_COLUMNS`] row.
fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let u =
        |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0) as u64) };
    let kind: String = r.get(1)?;
    let outcome: String = r.get(10)?;
    let mut outcome = Outcome::parse(&outcome).ok_or_else(|| bad(10, "unknown outcome"))?;
    let pid = r.get::<_, i64>(8)? as u32;
    let process = Process {
        pid,
        start: r.get(9)?,
    };
    if outcome == Outcome::Running && !process.is_alive() {
        outcome = Outcome::Interrupted;
    }
    let counts = match r.get::<_, Option<i64>>(13)? {
        None => None,
        Some(_) => Some(RunCounts {
            files_total: u(13)?,
            bytes_total: u(14)?,
            files_created: u(15)?,
            files_updated: u(16)?,
            files_deleted: u(17)?,
            entries_deleted: u(18)?,
            dirs_created: u(19)?,
            symlinks_created: u(20)?,
            meta_updated: u(21)?,
            chunk_bytes_sent: u(22)?,
            bytes_reused: u(23)?,
            wire_bytes_sent: u(24)?,
            duration_s: r.get::<_, Option<f64>>(25)?.unwrap_or(0.0),
            data_path: r.get::<_, Option<String>>(26)?.unwrap_or_default(),
            rate_bps: r.get(27)?,
            warnings: u(28)?,
            errors: u(29)?,
        }),
    };
    Ok(RunRow {
        id: RunId(r.get(0)?),
        kind: RunKind::parse(&kind).ok_or_else(|| bad(1, "unknown kind"))?,
        watch: r.get::<_, Option<i64>>(2)?.map(WatchId),
        job: r.get(3)?,
        started_ns: r.get(4)?,
        ended_ns: r.get(5)?,
        source: r.get(6)?,
        destination: r.get(7)?,
        pid,
        outcome,
        exit_code: r.get(11)?,
        error: r.get(12)?,
        counts,
        loss_pct: r.get(30)?,
        rtt_ms: r.get(31)?,
        itemized: r.get(32)?,
        changes_stored: u(33)?,
        changes_dropped: u(34)?,
    })
}
