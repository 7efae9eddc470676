//! `sluice log`: the runs in the history, newest first; `sluice log show
//! ID`: one run and the entries it changed.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};
use sync_core::history::{self, Filter, History, RunId, RunRow};

use crate::exit::Code;
use crate::output;
use crate::utc::{self, Since};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LogArgs {
    #[command(subcommand)]
    pub command: Option<LogCommand>,
    /// Only runs started since DATE: YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC),
    /// or an age: a whole number of s, m, h, d or w (30m, 2h, 3d).
    #[arg(long, value_name = "DATE", value_parser = utc::parse_since)]
    pub since: Option<Since>,
    /// Only runs of the job NAME.
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
    /// Only runs that did not succeed: failed, partial or interrupted.
    #[arg(long)]
    pub failed: bool,
    /// At most N runs (0: all).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
    /// Print a JSON array of runs instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Show one run: its figures and the entries it changed.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The run (the first column of `sluice log`).
    pub id: i64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: LogArgs) -> anyhow::Result<Code> {
    let path = History::default_path()?;
    // Reading creates nothing: no file is an empty history.
    let db = if path.exists() {
        Some(History::open(&path).context("cannot read the run history")?)
    } else {
        None
    };
    if let Some(LogCommand::Show(s)) = &a.command {
        let found = match &db {
            Some(db) => db.show(RunId(s.id))?,
            None => None,
        };
        let Some((row, changes)) = found else {
            anyhow::bail!("no run {} in the history {}", s.id, path.display());
        };
        if s.json {
            let mut v = row_json(&row)?;
            v["changes"] = serde_json::to_value(&changes)?;
            output::print_json(&v)?;
        } else {
            print_run(&row, &changes)?;
        }
        return Ok(Code::Ok);
    }
    let filter = Filter {
        since_ns: a.since.map(|s| s.to_ns(history::now_ns())),
        job: a.job.clone(),
        failed_only: a.failed,
        limit: (a.limit > 0).then_some(a.limit),
    };
    let rows = match &db {
        Some(db) => db.list(&filter)?,
        None => Vec::new(),
    };
    if a.json {
        let rows = rows
            .iter()
            .map(row_json)
            .collect::<anyhow::Result<Vec<_>>>()?;
        output::print_json(&serde_json::Value::Array(rows))?;
        return Ok(Code::Ok);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:>5}  {:<20}  {:<11}  {:<12}  {:<14}  {:>8}  {:>10}  {:>9}  SRC -> DST",
        "ID", "STARTED (UTC)", "KIND", "JOB", "OUTCOME/EXIT", "CHANGED", "SHIPPED", "DURATION"
    )?;
    for r in &rows {
        let outcome = format!(
            "{}/{}",
            r.outcome.as_str(),
            r.exit_code.map_or("-".into(), |c| c.to_string())
        );
        writeln!(
            out,
            "{:>5}  {:<20}  {:<11}  {:<12}  {:<14}  {:>8}  {:>10}  {:>9}  {} -> {}",
            r.id,
            utc::format(r.started_ns),
            r.kind.as_str(),
            r.job.as_deref().unwrap_or("-"),
            outcome,
            r.counts
                .as_ref()
                .map_or("-".into(), |c| c.changed().to_string()),
            r.counts
                .as_ref()
                .map_or("-".into(), |c| output::bytes(c.chunk_bytes_sent)),
            duration(r),
            r.source,
            r.destination
        )?;
    }
    Ok(Code::Ok)
}

/// A row as JSON, with its times also in ISO form.
fn row_json(r: &RunRow) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(r)?;
    v["started"] = utc::format(r.started_ns).into();
    v["ended"] = r.ended_ns.map(utc::format).into();
    Ok(v)
}

/// From start to end, as `2.31 s` (`-` while running).
fn duration(r: &RunRow) -> String {
    match r.ended_ns {
        Some(end) => format!("{:.2} s", (end - r.started_ns) as f64 / 1e9),
        None => "-".into(),
    }
}

/// `80.0 Mbit/s`-style rates.
fn rate(bps: f64) -> String {
    let (v, unit) = match bps {
        b if b >= 1e9 => (b / 1e9, "Gbit/s"),
        b if b >= 1e6 => (b / 1e6, "Mbit/s"),
        b if b >= 1e3 => (b / 1e3, "kbit/s"),
        b => (b, "bit/s"),
    };
    format!("{v:.1} {unit}")
}

fn print_run(r: &RunRow, changes: &[sync_core::session::ChangeLine]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let exit = r
        .exit_code
        .map_or(String::new(), |c| format!(" (exit {c})"));
    writeln!(
        out,
        "run {}: {}, {}{exit}",
        r.id,
        r.kind.as_str(),
        r.outcome.as_str()
    )?;
    writeln!(out, "started      {}", utc::format(r.started_ns))?;
    if let Some(end) = r.ended_ns {
        writeln!(out, "ended        {} ({})", utc::format(end), duration(r))?;
    }
    if let Some(job) = &r.job {
        writeln!(out, "job          {job}")?;
    }
    if let Some(w) = r.watch {
        writeln!(out, "watch        session {w}")?;
    }
    writeln!(out, "source       {}", r.source)?;
    writeln!(out, "destination  {}", r.destination)?;
    writeln!(out, "process      {}", r.pid)?;
    if let Some(e) = &r.error {
        writeln!(out, "error        {e}")?;
    }
    if let Some(c) = &r.counts {
        writeln!(
            out,
            "files        {} ({}) in source; {} created, {} updated, {} deleted, {} metadata only",
            c.files_total,
            output::bytes(c.bytes_total),
            c.files_created,
            c.files_updated,
            c.files_deleted,
            c.meta_updated
        )?;
        writeln!(
            out,
            "data         {} of chunks shipped ({} on the wire{}{}); {} reused from the destination; session {:.2} s",
            output::bytes(c.chunk_bytes_sent),
            output::bytes(c.wire_bytes_sent),
            if c.data_path.is_empty() { String::new() } else { format!(", {}", c.data_path) },
            c.rate_bps.map_or(String::new(), |b| format!(", {}", rate(b))),
            output::bytes(c.bytes_reused),
            c.duration_s
        )?;
        if c.warnings + c.errors > 0 {
            writeln!(
                out,
                "problems     {} warnings, {} errors",
                c.warnings, c.errors
            )?;
        }
    }
    if r.loss_pct.is_some() || r.rtt_ms.is_some() {
        let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
        writeln!(
            out,
            "link         loss {} %, RTT {} ms",
            f(r.loss_pct),
            f(r.rtt_ms)
        )?;
    }
    if r.counts.is_none() && changes.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "changes ({}):", r.changes_stored + r.changes_dropped)?;
    for c in changes {
        writeln!(out, "{}", c.line)?;
    }
    if r.changes_dropped > 0 {
        writeln!(out, "... and {} more, not kept", r.changes_dropped)?;
    }
    if !r.itemized && r.counts.as_ref().is_some_and(|c| c.changed() > 0) {
        writeln!(
            out,
            "(this run did not itemise its changes: run with -i or --json to record them)"
        )?;
    }
    Ok(())
}
