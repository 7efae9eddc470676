//! `sluice watch SRC DST`: a first sync, then a round for each burst of
//! changes at SRC, until SIGINT or SIGTERM.
//!
//! Events (inotify, through `sync_core::watch::events`) are gathered by the
//! debouncer; each batch becomes a round: a session scoped to the paths the
//! events named, so that neither side walks its tree. A full sync runs
//! instead after an event overflow, on SIGHUP, every `--rescan-interval`,
//! after the destination came back, and (polling) where events cannot be
//! had. Rounds to a remote destination share one connection, kept alive
//! between rounds.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use sync_core::history::{RunCounts, RunId, RunKind, WatchId};
use sync_core::metrics::{Kind, Metrics};
use sync_core::scope::{Scopes, MAX_SCOPES};
use sync_core::session::msg::Msg;
use sync_core::session::{SessionOptions, SyncReport};
use sync_core::watch::debounce::{Batch, Debouncer};
use sync_core::watch::events::{self, Event, Ignore, Watcher};

use crate::args::WatchArgs;
use crate::cmd_sync::{Conn, Prepared};
use crate::exit::Code;
use crate::output;
use crate::record::Recorder;

/// Longest sleep of the loop: how late it notices a signal.
const TICK: Duration = Duration::from_millis(250);
/// A keepalive on an idle connection this often (a daemon drops a
/// connection silent for its `idle_timeout_secs`, 30 by default).
const KEEPALIVE: Duration = Duration::from_secs(10);
/// Retries of an unreachable destination start at this and double.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// ... up to this.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// How often a watch held back looks at the source again.
const RECHECK: Duration = Duration::from_secs(1);

pub fn run(a: WatchArgs, quiet: bool) -> anyhow::Result<Code> {
    if a.sync.dry_run {
        eprintln!(
            "sluice: error: watch cannot --dry-run (use `sluice diff` to see what would change)"
        );
        return Ok(Code::Usage);
    }
    let prepared = match Prepared::new(&a.sync, false, false)? {
        Ok(p) => p,
        Err(refused) => return Ok(refused.code),
    };
    if prepared.remote_source() {
        eprintln!(
            "sluice: error: watch needs the source on this host (it watches SRC for changes)"
        );
        return Ok(Code::Usage);
    }
    let metrics = Arc::new(Metrics::new(Kind::Watch));
    if let Some(addr) = a.metrics {
        crate::metrics_http::start(addr, a.metrics_public, Arc::clone(&metrics))?;
    }
    // Started as `watch --job NAME`: SIGHUP reads the job's configuration
    // again (see Watch::reload).
    let from_job = std::env::args_os().any(|a| {
        use std::os::unix::ffi::OsStrExt;
        a == "--job" || a.as_bytes().starts_with(b"--job=")
    });
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal ends the process at once.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))?;
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))?;
    let mut history = Recorder::open(&a.sync);
    let watch_id = history.start_watch();

    let mut w = Watch {
        src: prepared.src.root.clone(),
        root_id: None,
        ignore: ignore_list(&prepared)?,
        watcher: None,
        events: crossbeam_channel::never(),
        polling: None,
        debounce: Debouncer::new(
            Duration::from_millis(a.debounce),
            Duration::from_millis(a.max_delay.max(a.debounce)),
        ),
        conn: None,
        last_sent: Instant::now(),
        retry: None,
        paused: None,
        recheck: None,
        round: 0,
        history,
        watch_id,
        metrics,
        json: a.sync.json,
        quiet,
        itemize: a.sync.itemize_changes,
        prepared,
        rescan_every: Duration::from_secs(a.rescan_interval.max(1)),
        poll_every: Duration::from_secs(a.poll_interval.max(1)),
    };
    w.root_id = root_identity(&w.src).ok();
    // Watch first, then sync: a change made during the first sync is
    // named by an event and synced by the next round.
    w.start_watching();
    let started = Instant::now();
    w.debounce.rescan("first sync".into(), started);
    let mut next_rescan = started + w.rescan_every;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let mut wake = now + TICK;
        for t in [
            w.debounce.next_wake(),
            w.retry.map(|r| r.at),
            w.recheck,
            w.polling,
            Some(next_rescan),
        ]
        .into_iter()
        .flatten()
        {
            wake = wake.min(t);
        }
        match w.events.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(e) => {
                w.take(e);
                while let Ok(e) = w.events.try_recv() {
                    w.take(e);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if w.polling.is_none() {
                    w.say("the file watcher stopped; falling back to periodic full syncs");
                    w.poll_from(Instant::now());
                }
            }
        }
        let now = Instant::now();
        if hup.swap(false, Ordering::Relaxed) {
            if from_job {
                w.reload();
            }
            w.debounce.rescan("SIGHUP".into(), now);
        }
        if now >= next_rescan {
            w.debounce
                .rescan("periodic rescan (--rescan-interval)".into(), now);
            next_rescan = now + w.rescan_every;
        }
        if w.polling.is_some_and(|p| now >= p) {
            w.debounce.rescan("polling".into(), now);
            w.poll_from(now);
        }
        if w.recheck.is_some_and(|t| now >= t) {
            w.recheck = None;
            w.debounce.rescan("the source came back".into(), now);
        }
        // While the destination is unreachable, changes wait for the retry.
        let waiting = w.retry.is_some_and(|r| now < r.at);
        if w.retry.is_some() && !waiting {
            w.debounce.rescan("catching up".into(), now);
        }
        if let Some(batch) = (!waiting).then(|| w.debounce.poll(now)).flatten() {
            let full = batch.rescan.is_some();
            w.round(batch);
            if full {
                next_rescan = Instant::now() + w.rescan_every;
                give_back_memory();
            }
        }
        w.metrics.set_pending(!w.debounce.is_empty());
        w.keepalive();
    }
    w.history.finish_watch(w.watch_id, w.round);
    if !quiet && !w.json {
        eprintln!("sluice: watch stopped");
    }
    Ok(Code::Ok)
}

/// A retry of an unreachable destination.
#[derive(Clone, Copy)]
struct Retry {
    at: Instant,
    wait: Duration,
}

struct Watch {
    prepared: Prepared,
    src: PathBuf,
    /// SRC's root folder when the watch started: (device, inode).
    root_id: Option<(u64, u64)>,
    ignore: Ignore,
    watcher: Option<Watcher>,
    events: crossbeam_channel::Receiver<Event>,
    /// Without events: when the next full sync is due.
    polling: Option<Instant>,
    debounce: Debouncer,
    conn: Option<Conn>,
    /// When the connection last carried something.
    last_sent: Instant,
    retry: Option<Retry>,
    /// Why rounds are held back (said once), if they are.
    paused: Option<String>,
    /// While held back: when to look at the source again.
    recheck: Option<Instant>,
    round: u64,
    /// Rounds that changed something or failed get a row, under this
    /// watch's.
    history: Recorder,
    watch_id: Option<WatchId>,
    /// Served by `--metrics`; kept up to date whether served or not.
    metrics: Arc<Metrics>,
    json: bool,
    quiet: bool,
    itemize: bool,
    rescan_every: Duration,
    poll_every: Duration,
}

impl Watch {
    fn say(&self, what: &str) {
        eprintln!("sluice: warning: {what}");
    }

    /// Reads the job's configuration again by starting this same command
    /// line afresh in this process (exec): options, paths and excludes are
    /// then the file's as it is now. The connection is closed and this
    /// watch's history row ended first; the lock and the watches are
    /// descriptors that close with the exec, and the new start takes them
    /// again and syncs in full. If the exec fails, the watch goes on as it
    /// was (and syncs in full).
    fn reload(&mut self) {
        use std::os::unix::process::CommandExt;
        self.say("SIGHUP: reading the job's configuration again");
        self.conn = None;
        self.history.finish_watch(self.watch_id, self.round);
        let _ = std::io::stdout().flush();
        let err = match std::env::current_exe() {
            Ok(exe) => std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .exec(),
            Err(e) => e,
        };
        self.say(&format!(
            "cannot start again to read the configuration ({err}); going on with the old one"
        ));
    }

    fn poll_from(&mut self, now: Instant) {
        self.polling = Some(now + self.poll_every);
    }

    /// Starts (or restarts) the watcher; where events cannot be had,
    /// polls with full syncs instead.
    fn start_watching(&mut self) {
        self.watcher = None;
        self.events = crossbeam_channel::never();
        if let Some(why) = events::needs_polling(&self.src) {
            self.say(&format!(
                "{}: {why}; syncing in full every {} s instead of on events",
                self.src.display(),
                self.poll_every.as_secs()
            ));
            self.poll_from(Instant::now());
            return;
        }
        match Watcher::start(&self.src, self.ignore.clone()) {
            Ok((watcher, events)) => {
                self.watcher = Some(watcher);
                self.events = events;
                self.polling = None;
            }
            Err(e) => {
                self.say(&format!(
                    "cannot watch {}: {e}; syncing in full every {} s instead",
                    self.src.display(),
                    self.poll_every.as_secs()
                ));
                self.poll_from(Instant::now());
            }
        }
    }

    fn take(&mut self, e: Event) {
        let now = Instant::now();
        match e {
            Event::Paths(paths) => {
                for p in paths {
                    self.debounce.add(p, now);
                }
            }
            Event::Rescan(why) => self.debounce.rescan(why, now),
            Event::Trouble(why) => {
                self.say(&why);
                self.debounce.rescan(why, now);
                if self.polling.is_none() {
                    self.poll_from(now);
                }
            }
        }
    }

    /// Holds rounds back while SRC's root is missing, replaced, or (with
    /// `--delete`) empty: the unmounted-disk accident must not empty the
    /// mirror. Returns why, if so.
    fn hold_back(&self) -> Option<String> {
        let id = match root_identity(&self.src) {
            Ok(id) => id,
            Err(e) => {
                return Some(format!(
                    "the source {} is gone ({e}); waiting for it to come back, nothing is deleted meanwhile",
                    self.src.display()
                ))
            }
        };
        if self.root_id.is_some_and(|was| was != id) {
            return Some(format!(
                "the source {} is now another folder or file system (unmounted?); waiting for the original to come back, nothing is synced meanwhile",
                self.src.display()
            ));
        }
        let opts = &self.prepared.opts;
        if opts.delete && !opts.allow_empty_source && is_empty_dir(&self.src) {
            return Some(format!(
                "the source {} is empty; with --delete that would empty the destination, so nothing is synced until it has entries again (or pass --allow-empty-source)",
                self.src.display()
            ));
        }
        None
    }

    fn round(&mut self, batch: Batch) {
        if let Some(why) = self.hold_back() {
            if self.paused.as_deref() != Some(why.as_str()) {
                self.say(&why);
                self.paused = Some(why);
            }
            // Nothing is lost: once it is back, a full sync runs.
            self.recheck = Some(Instant::now() + RECHECK);
            return;
        }
        if self.paused.take().is_some() {
            self.say("the source is back; syncing in full");
            // Watches on a folder that went away are gone with it.
            self.start_watching();
        }
        let full = batch.rescan.is_some() || batch.paths.len() > MAX_SCOPES;
        let opts = SessionOptions {
            scopes: (!full).then(|| Scopes::new(batch.paths.iter().cloned())),
            itemize: self.itemize || self.json,
            ..self.prepared.opts.clone()
        };
        let id = self.history.start(RunKind::WatchRound, self.watch_id);
        if self.conn.is_none() {
            match self.prepared.connect() {
                Ok(c) => self.conn = c,
                Err(e) => return self.failed(e, id),
            }
        }
        let started = Instant::now();
        let result = self.prepared.run(&opts, self.conn.as_mut());
        self.last_sent = Instant::now();
        match result {
            Ok(report) => {
                if let Some(r) = self.retry.take() {
                    if r.wait > RETRY_FIRST || self.prepared.remote_name().is_some() {
                        self.say("the destination is back; caught up");
                    }
                }
                self.round += 1;
                // Counted before it is printed: whoever read the line finds it.
                self.metrics.run_done(&report, std::time::SystemTime::now());
                if batch.rescan.is_none() {
                    self.metrics.change_mirrored(batch.first_event.elapsed());
                }
                self.print(&report, &batch, full, started);
                self.record(id, &report, opts.itemize);
            }
            Err(e) => self.failed(e, id),
        }
    }

    /// Keeps a round's row if it changed something or had problems; a
    /// watch on a quiet tree (or polling every few seconds) would
    /// otherwise fill the history with empty rounds.
    fn record(&mut self, id: Option<RunId>, r: &SyncReport, itemized: bool) {
        let code = crate::cmd_sync::outcome(r);
        if code == Code::Ok && r.warnings.is_empty() && RunCounts::of(r).changed() == 0 {
            self.history.discard(id);
        } else {
            self.history.finished(id, r, code, itemized);
        }
    }

    /// A round that could not run: said once, retried with backoff as a
    /// full sync (which also covers the changes made meanwhile).
    /// Only the first failure of a series keeps its row in the history:
    /// the retries until it works say nothing new.
    fn failed(&mut self, e: sync_core::Error, id: Option<RunId>) {
        self.conn = None;
        self.metrics.run_failed();
        let wait = match self.retry {
            None => {
                let to = self
                    .prepared
                    .remote_name()
                    .unwrap_or_else(|| "the destination".to_string());
                eprintln!("sluice: error: a round to {to} failed: {e}; retrying until it works");
                let message = e.to_string();
                let code = Code::of_error(&anyhow::Error::new(e));
                self.history.failed(id, code, &message);
                RETRY_FIRST
            }
            Some(r) => {
                self.history.discard(id);
                (r.wait * 2).min(RETRY_MAX)
            }
        };
        self.retry = Some(Retry {
            at: Instant::now() + wait,
            wait,
        });
    }

    /// Keeps an idle connection open.
    fn keepalive(&mut self) {
        if self.last_sent.elapsed() < KEEPALIVE {
            return;
        }
        self.last_sent = Instant::now();
        if let Some(conn) = &mut self.conn {
            if conn.transport().send(&Msg::Keepalive).is_err() {
                // Gone while idle: the next round reconnects and syncs in full.
                self.conn = None;
                self.debounce.rescan("reconnecting".into(), Instant::now());
            }
        }
    }

    fn print(&self, r: &SyncReport, batch: &Batch, full: bool, started: Instant) {
        for w in &r.warnings {
            let w = w
                .strip_prefix(sync_core::session::PARTIAL_MARK)
                .unwrap_or(w);
            eprintln!("sluice: warning: {w}");
        }
        for e in &r.errors {
            eprintln!("sluice: error: {}: {}", e.path, e.message);
        }
        let latency = batch.first_event.elapsed();
        let changed = r.files_created
            + r.files_updated
            + r.meta_updated
            + r.dirs_created
            + r.symlinks_created
            + r.entries_deleted;
        if self.json {
            let v = serde_json::json!({
                "round": self.round,
                "full": full,
                "reason": batch.rescan,
                "paths": batch.paths.len(),
                "events": batch.events,
                "changed": changed,
                "files_created": r.files_created,
                "files_updated": r.files_updated,
                "entries_deleted": r.entries_deleted,
                "meta_updated": r.meta_updated,
                "chunk_bytes_sent": r.chunk_bytes_sent,
                "wire_bytes_sent": r.wire_bytes_sent,
                "bytes_reused": r.bytes_reused,
                "latency_ms": latency.as_secs_f64() * 1000.0,
                "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
                "changes": r.changes,
                "warnings": r.warnings,
                "errors": r.errors,
            });
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{v}");
            let _ = out.flush();
            return;
        }
        if self.quiet || (changed == 0 && !full) {
            return;
        }
        let mut out = std::io::stdout().lock();
        if self.itemize {
            for c in &r.changes {
                let _ = writeln!(out, "{}", c.line);
            }
        }
        let what = match &batch.rescan {
            Some(why) => format!("full sync ({why})"),
            None => format!("round {}", self.round),
        };
        let _ = writeln!(
            out,
            "{what}: {changed} changed ({} created, {} updated, {} deleted, {} metadata only), {} shipped, {} ms after the first change",
            r.files_created + r.dirs_created + r.symlinks_created,
            r.files_updated,
            r.entries_deleted,
            r.meta_updated,
            output::bytes(r.chunk_bytes_sent),
            latency.as_millis()
        );
        let _ = out.flush();
    }
}

/// Returns the heap that a full sync used and freed to the system: glibc
/// keeps it otherwise, and a watch idles for hours. Watching linux-6.12,
/// the process stayed at 180 MB resident after its first sync without
/// this.
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        // SAFETY: malloc_trim only releases free heap pages; it takes no
        // pointers and is safe to call at any time.
        libc::malloc_trim(0);
    }
}

/// (device, inode) of a folder, refusing anything else.
fn root_identity(p: &Path) -> std::io::Result<(u64, u64)> {
    let m = std::fs::symlink_metadata(p)?;
    if !m.is_dir() {
        return Err(std::io::Error::other("not a folder"));
    }
    Ok((m.dev(), m.ino()))
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
}

/// What the watcher must not report: SRC's index and its journal files
/// (they may live inside the tree) and, for a local pair, DST.
fn ignore_list(p: &Prepared) -> anyhow::Result<Ignore> {
    let index = match &p.src.index {
        Some(i) => i.clone(),
        None => sync_core::index::location::default_index_path(&p.src.root)?,
    };
    let mut paths = vec![index.clone()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut s = index.as_os_str().to_owned();
        s.push(suffix);
        paths.push(s.into());
    }
    let under = if p.remote_name().is_none() {
        vec![p.dst.root.clone()]
    } else {
        Vec::new()
    };
    Ok(Ignore { paths, under })
}
