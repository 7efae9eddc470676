//! A job as a command line: the arguments `sync --job NAME` stands for,
//! parsed by clap into the same types as typed arguments.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser};

use super::{clap_message, with_value, Config, ConfigError};
use crate::args::Cli;

/// The subcommands that take `--job`.
const JOB_COMMANDS: [&str; 3] = ["sync", "diff", "watch"];

/// The command line to run: as parsed, or for `sync`, `diff` and `watch`
/// with `--job NAME`, as the job makes it.
pub fn resolve(matches: &ArgMatches) -> Result<Cli, ConfigError> {
    if job_of(matches).is_none() {
        return Ok(
            Cli::from_arg_matches(matches).unwrap_or_else(|e| e.format(&mut Cli::command()).exit())
        );
    }
    let config = Config::load(matches.get_one::<PathBuf>("config").map(PathBuf::as_path))?;
    config.resolve(matches)
}

/// The subcommand, its matches and the job of `SUB --job NAME`.
fn job_of(matches: &ArgMatches) -> Option<(&str, &ArgMatches, &str)> {
    let (sub, m) = matches.subcommand()?;
    if !JOB_COMMANDS.contains(&sub) {
        return None;
    }
    m.get_one::<String>("job").map(|j| (sub, m, j.as_str()))
}

impl Config {
    /// [`resolve`] with this file.
    pub fn resolve(&self, matches: &ArgMatches) -> Result<Cli, ConfigError> {
        let argv = self.command_line(matches)?;
        Cli::try_parse_from(&argv).map_err(|e| {
            let (_, _, name) = job_of(matches).expect("a job's command line");
            ConfigError {
                file: self.file.clone(),
                line: self.jobs.get(name).map(|j| j.line),
                what: format!("job.{name}: {}", clap_message(&e)),
            }
        })
    }

    /// The arguments `sluice SUB --job NAME ...` stands for: each flag as
    /// the user typed it, else as the job sets it, else as `[defaults]`
    /// does; SRC and DST as typed, else the job's.
    pub fn command_line(&self, matches: &ArgMatches) -> Result<Vec<OsString>, ConfigError> {
        let (sub, typed, name) = job_of(matches).expect("a command line with --job");
        let job = self.job(name)?;
        let cli = Cli::command();
        let mut argv: Vec<OsString> = vec!["sluice".into()];
        for arg in cli.get_arguments() {
            argv.extend(as_typed(arg, matches));
        }
        argv.push(sub.into());
        let cmd = cli
            .find_subcommand(sub)
            .expect("a subcommand that takes --job");
        let mut places = Vec::new();
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            let given = as_typed(arg, typed);
            if arg.is_positional() {
                if !given.is_empty() {
                    places.extend(given);
                } else if id == "src" {
                    places.push(job.src.clone());
                } else if id == "dst" {
                    places.push(job.dst.clone());
                }
            } else if !given.is_empty() {
                argv.extend(given);
            } else if let Some(s) = job.settings.get(id).or_else(|| self.defaults.get(id)) {
                argv.extend(s.args());
            }
        }
        argv.push("--".into());
        argv.extend(places);
        Ok(argv)
    }
}

/// `arg` as the user typed it, as arguments again; nothing if it was not
/// typed (a default, or absent).
fn as_typed(arg: &Arg, m: &ArgMatches) -> Vec<OsString> {
    let id = arg.get_id().as_str();
    if m.value_source(id) != Some(ValueSource::CommandLine) {
        return Vec::new();
    }
    let raw = || m.get_raw(id).into_iter().flatten().map(OsStr::to_owned);
    if arg.is_positional() {
        return raw().collect();
    }
    let flag = match (arg.get_long(), arg.get_short()) {
        (Some(long), _) => format!("--{long}"),
        (None, Some(short)) => format!("-{short}"),
        (None, None) => unreachable!("an option has a long or a short name"),
    };
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => vec![flag.into()],
        ArgAction::Count => vec![flag.into(); usize::from(m.get_count(id))],
        _ => {
            let given: Vec<OsString> = raw().map(|v| with_value(&flag, &v)).collect();
            // A flag whose value is optional, typed without one.
            if given.is_empty() {
                vec![flag.into()]
            } else {
                given
            }
        }
    }
}
