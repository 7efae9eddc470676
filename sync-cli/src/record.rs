//! Recording runs in the run history (`sync_core::history`) for `sluice log`.
//!
//! A history that cannot be opened or written never fails a run: its first
//! problem is printed as one warning (`sluice: warning: history: ...`), and
//! later writes are still tried, silently, so that a watch whose history was
//! busy once goes on recording.

use sync_core::history::{
    self, History, Outcome, RunEnd, RunId, RunKind, RunStart, WatchId, WatchStart,
};
use sync_core::session::SyncReport;

use crate::args::SyncArgs;
use crate::exit::Code;

/// This process's runs, as they start and end.
pub struct Recorder {
    db: Option<History>,
    warned: bool,
    job: Option<String>,
    source: String,
    destination: String,
}

impl Recorder {
    /// Opens the default history (trimmed at most once a day to
    /// `--history-days`), or none with `--no-history`.
    pub fn open(a: &SyncArgs) -> Recorder {
        let mut r = Recorder {
            db: None,
            warned: false,
            job: a.job.clone(),
            source: a.src.to_string_lossy().into_owned(),
            destination: a.dst.to_string_lossy().into_owned(),
        };
        if a.no_history {
            return r;
        }
        match History::open_default() {
            Ok(mut h) => {
                if let Err(e) = h.trim_daily(a.history_days, history::now_ns()) {
                    r.warn(&e);
                }
                r.db = Some(h);
            }
            Err(e) => r.warn(&e),
        }
        r
    }

    fn warn(&mut self, e: &sync_core::Error) {
        if !self.warned {
            eprintln!("sluice: warning: history: {e}");
            self.warned = true;
        }
    }

    /// Records a run as it begins (`None`: not recorded).
    pub fn start(&mut self, kind: RunKind, watch: Option<WatchId>) -> Option<RunId> {
        let db = self.db.as_ref()?;
        let r = db.start(&RunStart {
            kind,
            watch,
            job: self.job.as_deref(),
            source: &self.source,
            destination: &self.destination,
            started_ns: history::now_ns(),
        });
        r.map_err(|e| self.warn(&e)).ok()
    }

    /// Records a run that ended with a report and the exit code it earned;
    /// `itemized` as in [`RunEnd::itemized`].
    pub fn finished(&mut self, id: Option<RunId>, report: &SyncReport, code: Code, itemized: bool) {
        self.finish(
            id,
            &RunEnd {
                ended_ns: history::now_ns(),
                outcome: outcome_of(code),
                exit_code: code as i32,
                report: Some(report),
                itemized,
                error: None,
            },
        );
    }

    /// Records a run that an error stopped, or that was refused.
    pub fn failed(&mut self, id: Option<RunId>, code: Code, message: &str) {
        self.finish(
            id,
            &RunEnd {
                ended_ns: history::now_ns(),
                outcome: Outcome::Failed,
                exit_code: code as i32,
                report: None,
                itemized: false,
                error: Some(message),
            },
        );
    }

    fn finish(&mut self, id: Option<RunId>, end: &RunEnd) {
        let (Some(id), Some(db)) = (id, self.db.as_mut()) else {
            return;
        };
        if let Err(e) = db.finish(id, end) {
            self.warn(&e);
        }
    }

    /// Forgets a run started for nothing (a watch round that changed
    /// nothing).
    pub fn discard(&mut self, id: Option<RunId>) {
        let (Some(id), Some(db)) = (id, self.db.as_mut()) else {
            return;
        };
        if let Err(e) = db.discard(id) {
            self.warn(&e);
        }
    }

    /// Records a `sluice watch` as it begins.
    pub fn start_watch(&mut self) -> Option<WatchId> {
        let db = self.db.as_ref()?;
        let r = db.start_watch(&WatchStart {
            job: self.job.as_deref(),
            source: &self.source,
            destination: &self.destination,
            started_ns: history::now_ns(),
        });
        r.map_err(|e| self.warn(&e)).ok()
    }

    /// Records the end of a `sluice watch` and how many rounds it ran.
    pub fn finish_watch(&mut self, id: Option<WatchId>, rounds: u64) {
        let (Some(id), Some(db)) = (id, self.db.as_ref()) else {
            return;
        };
        if let Err(e) = db.finish_watch(id, history::now_ns(), rounds) {
            self.warn(&e);
        }
    }
}

/// How a run that exited with `code` ended: `--max-delete` stopped only
/// the deletions, and vanished source files left only themselves unsynced,
/// so like a partial run the rest was done.
pub fn outcome_of(code: Code) -> Outcome {
    match code {
        Code::Ok => Outcome::Ok,
        Code::Partial | Code::Vanished | Code::MaxDelete => Outcome::Partial,
        _ => Outcome::Failed,
    }
}
