//! The command line, as clap types. Doc comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit;

/// sluice: mirror directory trees fast, shipping only the chunks the
/// destination lacks.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, after_help = exit::HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors; no progress or summary.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build or refresh the index of a tree and print its statistics.
    ///
    /// The index is a SQLite file kept outside the tree
    /// ($XDG_STATE_HOME/sluice/, else ~/.local/state/sluice/), one per
    /// canonical root path. Only files whose size, mtime, inode or ctime
    /// changed are read again.
    #[command(after_help = exit::HELP)]
    Index(IndexArgs),
}

/// Options that choose which entries a scan sees and how it reads them.
#[derive(Debug, Args, Clone, Default)]
pub struct ScanArgs {
    /// Skip entries matching PATTERN (gitignore syntax; repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Read exclude patterns from FILE, one per line (repeatable).
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Vec<PathBuf>,
    /// Also honour .gitignore files (.sluiceignore files are always honoured).
    #[arg(long)]
    pub gitignore: bool,
    /// Read every file again, even if its metadata is unchanged.
    #[arg(short = 'c', long)]
    pub checksum: bool,
    /// Threads for scanning (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// The folder to index.
    pub path: PathBuf,
    /// Index file to use instead of the default location.
    #[arg(long, value_name = "FILE")]
    pub index: Option<PathBuf>,
    #[command(flatten)]
    pub scan: ScanArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}
