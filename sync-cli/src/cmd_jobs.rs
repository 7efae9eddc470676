//! `sluice jobs`: the jobs of the config file. `sluice job NAME --systemd`:
//! a systemd service and timer that run one on a schedule, and the crontab
//! line that does the same.
//!
//! Nothing here runs a job or installs anything: the units are printed for
//! the user to read and put in place.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde_json::json;

use crate::args::{JobArgs, JobsArgs};
use crate::config::{Config, ConfigError, Job, Setting, Value};
use crate::exit::Code;
use crate::output;

mod units;

pub use units::{parse_calendar, parse_every, Every};
use units::{shell_flag, units, When};

pub fn list(a: JobsArgs, config: Option<&Path>) -> anyhow::Result<Code> {
    let config = match Config::load(config) {
        Ok(c) => c,
        Err(e) => return Ok(refuse(&e)),
    };
    if a.json {
        let jobs: Vec<_> = config.jobs.values().map(|j| job_json(&config, j)).collect();
        output::print_json(&json!({
            "config": config.file.display().to_string(),
            "jobs": jobs,
        }))?;
        return Ok(Code::Ok);
    }
    let mut out = std::io::stdout().lock();
    if config.jobs.is_empty() {
        let why = if config.exists {
            "it has no [job.NAME] tables"
        } else {
            "it does not exist"
        };
        writeln!(out, "no jobs in {} ({why})", config.file.display())?;
        return Ok(Code::Ok);
    }
    let width = config.jobs.keys().map(String::len).max().unwrap_or(0);
    for job in config.jobs.values() {
        let (src, dst) = (job.src.to_string_lossy(), job.dst.to_string_lossy());
        writeln!(out, "{:width$}  {src} -> {dst}", job.name)?;
        let flags: Vec<String> = config
            .settings_of(job)
            .iter()
            .flat_map(|s| s.args())
            .map(|a| shell_flag(&a.to_string_lossy()))
            .collect();
        if !flags.is_empty() {
            writeln!(out, "{:width$}  {}", "", flags.join(" "))?;
        }
    }
    Ok(Code::Ok)
}

pub fn systemd(a: JobArgs, config_flag: Option<&Path>) -> anyhow::Result<Code> {
    let config = match Config::load(config_flag) {
        Ok(c) => c,
        Err(e) => return Ok(refuse(&e)),
    };
    let job = match config.job(&a.name) {
        Ok(j) => j,
        Err(e) => return Ok(refuse(&e)),
    };
    let exe = std::env::current_exe().context("cannot find the path of this sluice binary")?;
    let mut command = vec![utf8(exe.as_os_str())?];
    if let Some(f) = config_flag {
        let f = std::fs::canonicalize(f).with_context(|| format!("{}", f.display()))?;
        command.extend(["--config".to_string(), utf8(f.as_os_str())?]);
    }
    command.extend(["sync".to_string(), "--job".to_string(), job.name.clone()]);
    let when = match (a.every, a.on_calendar) {
        (Some(every), _) => When::Every(every),
        (None, Some(spec)) => When::Calendar(spec),
        (None, None) => unreachable!("clap requires --every or --on-calendar"),
    };
    write!(
        std::io::stdout().lock(),
        "{}",
        units(&job.name, &command, &when)
    )?;
    Ok(Code::Ok)
}

/// Prints a config problem; the exit code for it.
fn refuse(e: &ConfigError) -> Code {
    eprintln!("sluice: error: {e}");
    Code::Usage
}

fn utf8(s: &OsStr) -> anyhow::Result<String> {
    s.to_str()
        .map(str::to_string)
        .with_context(|| format!("{s:?} is not UTF-8, and a unit file cannot name it"))
}

fn job_json(config: &Config, job: &Job) -> serde_json::Value {
    let options: serde_json::Map<String, serde_json::Value> = config
        .settings_of(job)
        .into_iter()
        .map(|s| (s.flag.clone(), setting_json(s)))
        .collect();
    json!({
        "name": job.name,
        "src": job.src.to_string_lossy(),
        "dst": job.dst.to_string_lossy(),
        "line": job.line,
        "options": options,
    })
}

fn setting_json(s: &Setting) -> serde_json::Value {
    match &s.value {
        Value::Switch(on) => json!(on),
        Value::One(v) => json!(v.to_string_lossy()),
        Value::List(vs) => json!(vs.iter().map(|v| v.to_string_lossy()).collect::<Vec<_>>()),
    }
}
