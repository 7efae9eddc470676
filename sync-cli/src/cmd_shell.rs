//! `sluice completions SHELL` and `sluice manpage`: a shell's completion
//! script and the man page, both generated from the clap definitions in
//! `args`, so they say what `--help` says and never drift from it.
//!
//! The man page is one page, sluice(1), because `man sluice` is what users
//! type (as for rg(1) or rsync(1)): the global options, then a COMMANDS
//! section with a subsection per command (`log show` included) holding its
//! usage, its long help, its options and the notes that close its `--help`,
//! then EXIT STATUS. clap_mangen renders the option lists; the layout around
//! them is ours, since clap_mangen's own page covers one command and points
//! to per-command pages (sluice-sync(1)) that a single install line would
//! not bring. Notes shared by several commands (the itemised format, the
//! config file) are printed under the first and referred to after; the exit
//! codes, which close most `--help` texts, only under EXIT STATUS.
//!
//! Both write to a buffer first: clap_complete panics on a write error,
//! and `sluice completions bash | head` must end quietly.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Context;
use clap::{Args, Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

use crate::args::Cli;
use crate::exit::{self, Code};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn completions(a: CompletionsArgs) -> anyhow::Result<Code> {
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut Cli::command(), "sluice", &mut script);
    print(&script).context("writing the completion script")
}

pub fn manpage() -> anyhow::Result<Code> {
    print(man_page(Cli::command()).as_bytes()).context("writing the man page")
}

fn print(bytes: &[u8]) -> anyhow::Result<Code> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(Code::Ok)
}

/// The whole page, as roff source starting with its `.TH` line.
fn man_page(cli: Command) -> String {
    let name = cli.get_name().to_owned();
    let man = Man::new(cli.clone());
    // Written here because clap_mangen leaves the empty date unquoted, which
    // shifts the fields after it. No date: the page is the same on every build.
    let version = cli.get_version().unwrap_or_default();
    let mut page = format!(
        ".TH {} 1 \"\" \"{name} {version}\" \"User Commands\"\n",
        name.to_uppercase()
    );
    // Each rendered part opens with the string definitions roff needs for
    // apostrophes; the page has them once, right after the title.
    page += &Roff::new().render();

    let mut roff = Roff::new();
    // Ragged right and no hyphens, so that paths and flags stay whole.
    roff.control("ad", ["l"]).control("nh", []);
    roff.control("SH", ["NAME"]);
    let about = cli.get_about().map(|a| a.to_string()).unwrap_or_default();
    let about = about.strip_prefix(&format!("{name}: ")).unwrap_or(&about);
    roff.text([roman(format!("{name} - {}", about.trim_end_matches('.')))]);

    let commands = commands(&cli, &name);
    roff.control("SH", ["SYNOPSIS"]);
    usage(&mut roff, &mut cli.clone(), &name);
    for (path, cmd) in &commands {
        roff.control("br", []);
        usage(&mut roff, &mut cmd.clone(), path);
    }

    roff.control("SH", ["DESCRIPTION"]);
    if let Some(long) = cli.get_long_about() {
        paragraphs(&mut roff, &long.to_string());
        roff.control("PP", []);
    }
    roff.text([roman(
        "Each command is described under COMMANDS below. The options under \
         OPTIONS apply to every command; the exit codes are listed under EXIT STATUS.",
    )]);
    page += &body(&roff);
    page += &part(|w| man.render_options_section(w));

    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    page += &body(&roff);
    let mut noted: HashMap<String, &str> = HashMap::new();
    for (path, cmd) in &commands {
        page += &command_section(path, cmd, &mut noted);
    }

    let mut roff = Roff::new();
    if let Some(rest) = notes(&cli) {
        roff.control("SH", ["NOTES"]);
        preformatted(&mut roff, &rest);
    }
    roff.control("SH", ["EXIT STATUS"]);
    preformatted(&mut roff, exit::HELP);
    page + &body(&roff)
}

/// Every command below the top one, depth first, with its full name
/// (`sluice log show`); help flags left to the top one's OPTIONS.
fn commands(cmd: &Command, path: &str) -> Vec<(String, Command)> {
    let mut all = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_path = format!("{path} {}", sub.get_name());
        let sub_cmd = sub
            .clone()
            .bin_name(&sub_path)
            .disable_help_flag(true)
            .disable_help_subcommand(true);
        let below = commands(&sub_cmd, &sub_path);
        all.push((sub_path, sub_cmd));
        all.extend(below);
    }
    all
}

/// One command's subsection: usage, long help, options, notes.
fn command_section<'a>(
    path: &'a str,
    cmd: &Command,
    noted: &mut HashMap<String, &'a str>,
) -> String {
    let mut roff = Roff::new();
    roff.control("SS", [path]);
    usage(&mut roff, &mut cmd.clone(), path);
    if let Some(about) = cmd.get_long_about().or_else(|| cmd.get_about()) {
        roff.control("PP", []);
        paragraphs(&mut roff, &about.to_string());
    }
    let mut section = body(&roff);
    if cmd.get_arguments().next().is_some() {
        let man = Man::new(cmd.clone());
        let options = part(|w| man.render_options_section(w));
        // clap_mangen heads the list `.SH OPTIONS`; here it is part of
        // the command's subsection.
        section += options.strip_prefix(".SH OPTIONS\n").unwrap_or(&options);
    }
    if let Some(text) = notes(cmd) {
        let mut roff = Roff::new();
        roff.control("PP", []);
        match noted.get(&text) {
            Some(first) => {
                roff.text([roman("See the notes under "), bold(*first), roman(".")]);
            }
            None => {
                preformatted(&mut roff, &text);
                noted.insert(text, path);
            }
        }
        section += &body(&roff);
    }
    section
}

/// The command's usage lines, its name in bold.
fn usage(roff: &mut Roff, cmd: &mut Command, path: &str) {
    let text = cmd.render_usage().to_string();
    let text = text.strip_prefix("Usage: ").unwrap_or(&text);
    for (i, line) in text.lines().map(str::trim).enumerate() {
        if i > 0 {
            roff.control("br", []);
        }
        match line.strip_prefix(path) {
            Some(rest) => roff.text([bold(path), roman(rest)]),
            None => roff.text([roman(line)]),
        };
    }
}

/// The text that closes the command's `--help`, less the exit codes.
fn notes(cmd: &Command) -> Option<String> {
    let text = cmd.get_after_long_help().or_else(|| cmd.get_after_help())?;
    let text = text.to_string().replace(exit::HELP, "");
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Help text as filled paragraphs.
fn paragraphs(roff: &mut Roff, text: &str) {
    for line in text.lines() {
        if line.trim().is_empty() {
            roff.control("PP", []);
        } else {
            roff.text([roman(line)]);
        }
    }
}

/// Text laid out in lines and columns, kept as it is.
fn preformatted(roff: &mut Roff, text: &str) {
    roff.control("nf", []);
    for line in text.lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
}

/// A rendered part without the string definitions it opens with.
fn part(render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> String {
    let mut buf = Vec::new();
    render(&mut buf).expect("writing to a Vec");
    strip_preamble(String::from_utf8(buf).expect("roff of UTF-8 help text"))
}

fn body(roff: &Roff) -> String {
    strip_preamble(roff.render())
}

fn strip_preamble(text: String) -> String {
    let preamble = Roff::new().render();
    match text.strip_prefix(&preamble) {
        Some(rest) => rest.to_owned(),
        None => text,
    }
}
