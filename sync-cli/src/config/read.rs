//! Reading the file: toml's `DeTable` (values with their spans) walked
//! table by table, each key looked up among `watch`'s flags and each value
//! run through the flag's own clap parser.

use std::ffi::{OsStr, OsString};
use std::ops::Range;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, CommandFactory};
use sync_core::session::remote::Location;
use toml::de::{DeString, DeTable, DeValue};
use toml::Spanned;

use super::{
    clap_message, did_you_mean, with_value, Config, ConfigError, Job, Setting, Settings, Value,
};
use crate::args::Cli;

/// The subcommand whose flags are the keys: `watch` has all of `sync`'s.
const KEYS_FROM: &str = "watch";

/// Reads the text of a config file.
pub(super) fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let r = Reader::new(text, file);
    let doc = DeTable::parse(text).map_err(|e| r.syntax(&e))?;
    let mut config = Config::empty(file.to_path_buf(), true);
    for (key, value) in by_position(doc.get_ref()) {
        match &**key.get_ref() {
            "defaults" => config.defaults = r.defaults(value)?,
            "job" => {
                for (name, table) in by_position(r.table("job", value)?) {
                    let job = r.job(name, table)?;
                    config.jobs.insert(job.name.clone(), job);
                }
            }
            other => {
                let hint = did_you_mean(other, ["defaults", "job"])
                    .unwrap_or_else(|| " (the file holds [defaults] and [job.NAME] tables)".into());
                return Err(r.error(key.span(), format!("unknown key {other:?}{hint}")));
            }
        }
    }
    Ok(config)
}

/// A table's entries in the order the file has them, so that the first
/// problem in the file is the one reported.
#[allow(clippy::type_complexity)]
fn by_position<'t, 'i>(
    t: &'t DeTable<'i>,
) -> Vec<(&'t Spanned<DeString<'i>>, &'t Spanned<DeValue<'i>>)> {
    let mut entries: Vec<_> = t.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

/// The flags a file may set: long flags of `watch` that are switches or
/// take values (not `--job`, not `--help`).
fn settable(cmd: &clap::Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|a| {
        a.get_long().is_some()
            && a.get_id().as_str() != "job"
            && matches!(
                a.get_action(),
                ArgAction::SetTrue | ArgAction::Set | ArgAction::Append
            )
    })
}

/// Reads one file's text: spans to lines, keys to flags, values checked.
struct Reader<'a> {
    text: &'a str,
    file: &'a Path,
    /// Where relative paths in the file start: the file's folder.
    base: PathBuf,
    /// `watch`: its flags are the keys, its parsers check the values.
    options: clap::Command,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str, file: &'a Path) -> Reader<'a> {
        let base = std::path::absolute(file)
            .ok()
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let options = Cli::command()
            .find_subcommand(KEYS_FROM)
            .expect("the watch subcommand")
            .clone();
        Reader {
            text,
            file,
            base,
            options,
        }
    }

    fn line(&self, offset: usize) -> usize {
        let before = &self.text.as_bytes()[..offset.min(self.text.len())];
        before.iter().filter(|&&b| b == b'\n').count() + 1
    }

    fn error(&self, span: Range<usize>, what: String) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: Some(self.line(span.start)),
            what,
        }
    }

    fn syntax(&self, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim().replace('\n', "; ");
        ConfigError {
            file: self.file.to_path_buf(),
            line: e.span().map(|s| self.line(s.start)),
            what: format!("not valid TOML: {message}"),
        }
    }

    fn table<'t, 'i>(
        &self,
        at: &str,
        v: &'t Spanned<DeValue<'i>>,
    ) -> Result<&'t DeTable<'i>, ConfigError> {
        v.get_ref().as_table().ok_or_else(|| {
            let found = a_type(v.get_ref());
            self.error(v.span(), format!("{at}: expected a table, found {found}"))
        })
    }

    fn defaults(&self, v: &Spanned<DeValue<'_>>) -> Result<Settings, ConfigError> {
        let mut settings = Settings::new();
        for (key, value) in by_position(self.table("defaults", v)?) {
            if matches!(&**key.get_ref(), "src" | "dst") {
                let what = format!(
                    "defaults: {:?} belongs in a [job.NAME] table",
                    key.get_ref()
                );
                return Err(self.error(key.span(), what));
            }
            self.setting("defaults", key, value, &mut settings)?;
        }
        Ok(settings)
    }

    fn job(
        &self,
        name: &Spanned<DeString<'_>>,
        v: &Spanned<DeValue<'_>>,
    ) -> Result<Job, ConfigError> {
        let at = format!("job.{}", name.get_ref());
        if !is_job_name(name.get_ref()) {
            let what = format!(
                "{at}: a job name is letters, digits, '-', '_' and '.', not first '-' or '.' \
                 (it names systemd units)"
            );
            return Err(self.error(name.span(), what));
        }
        let (mut src, mut dst) = (None, None);
        let mut settings = Settings::new();
        for (key, value) in by_position(self.table(&at, v)?) {
            let place = match &**key.get_ref() {
                "src" => &mut src,
                "dst" => &mut dst,
                _ => {
                    self.setting(&at, key, value, &mut settings)?;
                    continue;
                }
            };
            match value.get_ref() {
                DeValue::String(s) if !s.is_empty() => *place = Some(self.place(s)),
                other => {
                    let found = match other {
                        DeValue::String(_) => "an empty string",
                        other => a_type(other),
                    };
                    let what = format!(
                        "{at}.{}: expected a folder (a path, host:path or sluice://...), found {found}",
                        key.get_ref()
                    );
                    return Err(self.error(value.span(), what));
                }
            }
        }
        let missing = |key: &str| {
            let what = format!("{at}: no {key:?} (every job names its SRC and DST folders)");
            self.error(name.span(), what)
        };
        Ok(Job {
            name: name.get_ref().to_string(),
            line: self.line(name.span().start),
            src: src.ok_or_else(|| missing("src"))?,
            dst: dst.ok_or_else(|| missing("dst"))?,
            settings,
        })
    }

    /// `key = value` of the table `at`, into `settings`.
    fn setting(
        &self,
        at: &str,
        key: &Spanned<DeString<'_>>,
        value: &Spanned<DeValue<'_>>,
        settings: &mut Settings,
    ) -> Result<(), ConfigError> {
        let name: &str = key.get_ref();
        let long = name.replace('_', "-");
        let Some(arg) = settable(&self.options).find(|a| a.get_long() == Some(long.as_str()))
        else {
            let mut known: Vec<&str> = settable(&self.options).filter_map(Arg::get_long).collect();
            if at != "defaults" {
                known.extend(["src", "dst"]);
            }
            // Suggested as the key was written: dashes or underscores.
            let hint = did_you_mean(&long, known)
                .map(|h| {
                    if name.contains('_') {
                        h.replace('-', "_")
                    } else {
                        h
                    }
                })
                .unwrap_or_default();
            return Err(self.error(key.span(), format!("{at}: unknown key {name:?}{hint}")));
        };
        let value = self
            .value(arg, value)
            .map_err(|(span, why)| self.error(span, format!("{at}.{name}: {why}")))?;
        let setting = Setting {
            flag: long.clone(),
            value,
        };
        if settings
            .insert(arg.get_id().as_str().to_string(), setting)
            .is_some()
        {
            let what = format!("{at}: {name:?} sets --{long} a second time");
            return Err(self.error(key.span(), what));
        }
        Ok(())
    }

    /// What `v` gives the flag `arg`.
    fn value(&self, arg: &Arg, v: &Spanned<DeValue<'_>>) -> Result<Value, (Range<usize>, String)> {
        // `--wait-lock` may come without its value: `wait_lock = true`.
        let value_optional = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
        match (arg.get_action(), v.get_ref()) {
            (ArgAction::SetTrue, DeValue::Boolean(on)) => Ok(Value::Switch(*on)),
            (ArgAction::SetTrue, other) => Err((
                v.span(),
                format!("expected true or false, found {}", a_type(other)),
            )),
            (_, DeValue::Boolean(on)) if value_optional => Ok(Value::Switch(*on)),
            (ArgAction::Append, DeValue::Array(items)) => items
                .iter()
                .map(|item| self.one(arg, item))
                .collect::<Result<_, _>>()
                .map(Value::List),
            (ArgAction::Append, _) => Ok(Value::List(vec![self.one(arg, v)?])),
            (_, DeValue::Array(_)) => Err((v.span(), "takes one value, not a list".into())),
            _ => Ok(Value::One(self.one(arg, v)?)),
        }
    }

    /// One value of the flag `arg`: a string or a number, checked by the
    /// flag's own parser.
    fn one(&self, arg: &Arg, v: &Spanned<DeValue<'_>>) -> Result<OsString, (Range<usize>, String)> {
        let text = match v.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
                .map_or_else(|_| i.to_string(), |n| n.to_string()),
            DeValue::Float(f) => f.as_str().to_string(),
            other => {
                let what = format!("expected a string or a number, found {}", a_type(other));
                return Err((v.span(), what));
            }
        };
        let is_path = arg.get_value_parser().type_id() == std::any::TypeId::of::<PathBuf>();
        let value = if is_path {
            self.path(&text)
        } else {
            text.into()
        };
        self.check(arg, &value).map_err(|why| (v.span(), why))?;
        Ok(value)
    }

    /// Runs `--flag=value` through clap, as if typed.
    fn check(&self, arg: &Arg, value: &OsStr) -> Result<(), String> {
        let flag = format!("--{}", arg.get_long().expect("settable flags are long"));
        let probe = [
            OsString::from(KEYS_FROM),
            "--job=-".into(),
            with_value(&flag, value),
        ];
        match self.options.clone().try_get_matches_from(probe) {
            Ok(_) => Ok(()),
            Err(e) => Err(value_problem(&e, value)),
        }
    }

    /// A path from the file: `~/` is the home folder, and a relative path
    /// starts at the file's folder (a job runs from anywhere: cron, systemd).
    fn path(&self, s: &str) -> OsString {
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
        match (s.strip_prefix('~'), home) {
            (Some(rest), Some(mut home)) if rest.is_empty() || rest.starts_with('/') => {
                home.push(rest);
                home
            }
            _ if Path::new(s).is_absolute() => s.into(),
            _ => self.base.join(s).into_os_string(),
        }
    }

    /// SRC or DST: a local path as [`Reader::path`], a remote one as written.
    fn place(&self, s: &str) -> OsString {
        if Location::parse(OsStr::new(s)).is_local() {
            self.path(s)
        } else {
            s.into()
        }
    }
}

/// Job names end up in unit names and command lines.
fn is_job_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// "a string", "a list", ...: what a TOML value is, for messages.
fn a_type(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

/// What clap found wrong with a value, without its usage text.
fn value_problem(e: &clap::Error, value: &OsStr) -> String {
    use clap::error::{ContextKind, ContextValue};
    let value = value.to_string_lossy();
    if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
        return format!("{value:?} is not one of {}", valid.join(", "));
    }
    match std::error::Error::source(e).map(|why| why.to_string()) {
        Some(why) if why.contains(&*value) => why,
        Some(why) => format!("{value:?}: {why}"),
        None => clap_message(e),
    }
}
