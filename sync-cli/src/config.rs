//! The config file: named jobs (`[job.NAME]`: SRC, DST and options) and
//! options for all of them (`[defaults]`), for `sync`/`diff`/`watch --job`,
//! `sluice jobs` and `sluice job`.
//!
//! A key is a long flag of `sync` or `watch`, with dashes or underscores,
//! and takes what the flag takes: true or false for a flag without a value,
//! a string or number for one with a value, a list for a repeatable one.
//! Keys are looked up in clap's definition of the flags and values are run
//! through clap's own parsers, so the file accepts exactly what the command
//! line does and a new flag needs no change here. Every error names the
//! file, the line and the key (from the spans of toml's `DeTable`).
//!
//! A job runs as the command line it stands for: [`resolve`] rebuilds the
//! arguments of `sync --job NAME` with each flag as the user typed it (clap's
//! `ValueSource::CommandLine`), else as the job sets it, else as `[defaults]`
//! does, and clap parses them into the same `SyncArgs` as ever. This module
//! reads one file and runs nothing.
//!
//! `read` turns the text into a [`Config`]; `merge` turns a job and the
//! command line into the arguments to parse.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};

mod merge;
mod read;
#[cfg(test)]
mod tests;

pub use merge::resolve;

/// The file format, shown under `jobs --help` and `job --help`.
pub const HELP: &str = "\
The config file ($XDG_CONFIG_HOME/sluice/config.toml, else
~/.config/sluice/config.toml, or --config FILE) is TOML:

  [defaults]                 # options for every job
  rate = \"200M\"
  exclude = [\"*.tmp\"]

  [job.photos]               # sluice sync --job photos
  src = \"~/photos\"           # relative paths start at the file's folder
  dst = \"nas:/srv/photos\"
  delete = true
  max_delete = 100

A key is a flag of sync or watch without its leading -- (max-delete or
max_delete); a flag without a value takes true or false, a repeatable one a
list. Flags typed on the command line win over the job's, the job's over
[defaults]; a list replaces the list below it.";

/// A problem with the config file, or with the job a command line names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// The line the problem is on, when it is on one.
    pub line: Option<usize>,
    /// The table and key, and what is wrong.
    pub what: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {line}: {}", self.file.display(), self.what),
            None => write!(f, "{}: {}", self.file.display(), self.what),
        }
    }
}

impl std::error::Error for ConfigError {}

/// How the file sets one flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A flag without a value (`delete = true`); `false` leaves it off,
    /// also where `[defaults]` turns it on.
    Switch(bool),
    /// The value of a flag that takes one.
    One(OsString),
    /// The values of a repeatable flag.
    List(Vec<OsString>),
}

/// One flag as the file sets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The flag's long name (`max-delete`).
    pub flag: String,
    pub value: Value,
}

impl Setting {
    /// The setting as command-line arguments.
    pub fn args(&self) -> Vec<OsString> {
        let flag = format!("--{}", self.flag);
        match &self.value {
            Value::Switch(on) => on.then(|| flag.into()).into_iter().collect(),
            Value::One(v) => vec![with_value(&flag, v)],
            Value::List(vs) => vs.iter().map(|v| with_value(&flag, v)).collect(),
        }
    }
}

/// A table's settings, by clap argument id (`max_delete`).
pub type Settings = BTreeMap<String, Setting>;

/// A `[job.NAME]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub name: String,
    /// The line of its `[job.NAME]` header.
    pub line: usize,
    pub src: OsString,
    pub dst: OsString,
    pub settings: Settings,
}

/// A config file, read and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub file: PathBuf,
    /// False for a default file that does not exist (no jobs).
    pub exists: bool,
    pub defaults: Settings,
    pub jobs: BTreeMap<String, Job>,
}

impl Config {
    fn empty(file: PathBuf, exists: bool) -> Config {
        Config {
            file,
            exists,
            defaults: Settings::new(),
            jobs: BTreeMap::new(),
        }
    }

    /// Reads `--config FILE`, which must exist, else the default file,
    /// which need not.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let file = match explicit {
            Some(f) => f.to_path_buf(),
            None => default_path(),
        };
        match std::fs::read_to_string(&file) {
            Ok(text) => Config::parse(&text, &file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                Ok(Config::empty(file, false))
            }
            Err(e) => Err(ConfigError {
                file,
                line: None,
                what: format!("cannot read it: {e}"),
            }),
        }
    }

    /// Reads the text of a config file (`file` names it in errors, and
    /// relative paths in it start at its folder).
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        read::parse(text, file)
    }

    /// The job called `name`, or an error naming the jobs there are.
    pub fn job(&self, name: &str) -> Result<&Job, ConfigError> {
        self.jobs.get(name).ok_or_else(|| {
            let what = if !self.exists {
                format!(
                    "no job {name:?}: the file does not exist (write it, or pass --config FILE)"
                )
            } else if self.jobs.is_empty() {
                format!("no job {name:?}: the file has no [job.NAME] tables")
            } else {
                let names: Vec<&str> = self.jobs.keys().map(String::as_str).collect();
                let hint = did_you_mean(name, names.iter().copied()).unwrap_or_default();
                format!("no job {name:?}{hint}; the jobs are: {}", names.join(", "))
            };
            ConfigError {
                file: self.file.clone(),
                line: None,
                what,
            }
        })
    }

    /// What `job` runs with besides SRC and DST: its settings over
    /// `[defaults]`, by argument id.
    pub fn settings_of<'a>(&'a self, job: &'a Job) -> Vec<&'a Setting> {
        let mut all: BTreeMap<&str, &Setting> =
            self.defaults.iter().map(|(k, s)| (k.as_str(), s)).collect();
        all.extend(job.settings.iter().map(|(k, s)| (k.as_str(), s)));
        all.into_values().collect()
    }
}

/// `$XDG_CONFIG_HOME/sluice/config.toml`, else `~/.config/sluice/config.toml`.
pub fn default_path() -> PathBuf {
    let nonempty = |var| std::env::var_os(var).filter(|v| !v.is_empty());
    let base = match (nonempty("XDG_CONFIG_HOME"), nonempty("HOME")) {
        (Some(x), _) => PathBuf::from(x),
        (None, Some(h)) => PathBuf::from(h).join(".config"),
        // Nowhere to look: a name that says so, and that does not exist.
        (None, None) => PathBuf::from("$HOME/.config"),
    };
    base.join("sluice").join("config.toml")
}

/// `--flag=value` (or `-fvalue`).
fn with_value(flag: &str, value: &OsStr) -> OsString {
    let mut arg = OsString::from(flag);
    if flag.starts_with("--") {
        arg.push("=");
    }
    arg.push(value);
    arg
}

/// The first line of a clap error, without `error: `.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// ` (did you mean "delete"?)` when `name` is a typo or two away from a
/// known one.
fn did_you_mean<'k>(name: &str, known: impl IntoIterator<Item = &'k str>) -> Option<String> {
    let (_, best) = known
        .into_iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|&(d, _)| d <= 2 && d < name.len())
        .min()?;
    Some(format!(" (did you mean {best:?}?)"))
}

/// Levenshtein distance (insertions, deletions, substitutions).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}
