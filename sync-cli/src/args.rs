//! The command line, as clap types. Doc comments are the `--help` text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

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
    /// Also append the log (warnings and errors; more with -v) to FILE,
    /// each line with its time.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<std::path::PathBuf>,
    /// The jobs file for --job, `jobs` and `job` [default:
    /// $XDG_CONFIG_HOME/sluice/config.toml, else ~/.config/sluice/config.toml].
    /// (`serve` reads its own --config, the daemon's.)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
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
    /// Make DST an exact mirror of SRC's contents.
    ///
    /// DST receives SRC's contents (as `rsync -a SRC/ DST/` does, whether or
    /// not SRC ends in a slash) and is created if missing. Only chunks that
    /// DST has nowhere in its tree are shipped; everything else is assembled
    /// from DST's own files, so renamed or moved files cost no data. Every
    /// file is written to a hidden temporary file, checked against its
    /// BLAKE3 hash, and renamed into place.
    #[command(after_help = ITEMISED_HELP)]
    Sync(SyncArgs),
    /// Show what `sync` would change, changing nothing (same as `sync --dry-run`).
    #[command(after_help = ITEMISED_HELP)]
    Diff(SyncArgs),
    /// Keep DST a mirror of SRC: a first sync, then a round for each burst
    /// of changes, until stopped (SIGINT or SIGTERM; SIGHUP syncs in full,
    /// after reading the job's configuration again under --job).
    ///
    /// SRC must be on this host; DST may be local, ssh or a daemon (one
    /// connection, kept open between rounds). Each round looks only at the
    /// paths the file-system events named, so a change in a big tree costs
    /// milliseconds. If SRC disappears, is replaced (an unmounted disk), or
    /// with --delete becomes empty, nothing is synced until it is back.
    /// Output: one line per round that changed something (--json: one
    /// object per round).
    #[command(after_help = ITEMISED_HELP)]
    Watch(WatchArgs),
    /// List past runs of sync, diff and watch rounds, newest first; `log
    /// show ID` shows one run and the entries it changed.
    ///
    /// Every run is recorded as it starts, in
    /// $XDG_STATE_HOME/sluice/history.db (else ~/.local/state/sluice/),
    /// unless run with --no-history; a run whose process died unfinished
    /// is listed as interrupted. Times are UTC.
    Log(crate::cmd_log::LogArgs),
    /// Serve the remote end of syncs: over ssh (`--stdio`), or as a daemon
    /// serving the modules of a config file to clients with allowed keys
    /// (`--config FILE [--listen ADDR:PORT]`).
    Serve(ServeArgs),
    /// Make a key pair for `sluice serve` or for a client of one.
    ///
    /// Writes the private key (hex, mode 0600) to FILE and the public key to
    /// FILE.pub, and prints the public key.
    Keygen(KeygenArgs),
    /// List the jobs of the config file: each one's name, SRC -> DST, and
    /// the options it runs with ([defaults] and its own) as flags.
    #[command(after_help = crate::config::HELP)]
    Jobs(JobsArgs),
    /// Print how to run a job on a schedule: a systemd service and timer,
    /// then the crontab line that does the same.
    #[command(after_help = crate::config::HELP)]
    Job(JobArgs),
    /// Print the completion script for SHELL.
    ///
    /// Install it where the shell looks: for bash `sluice completions bash >
    /// ~/.local/share/bash-completion/completions/sluice`; for zsh `sluice
    /// completions zsh > DIR/_sluice`, DIR being in $fpath; for fish `sluice
    /// completions fish > ~/.config/fish/completions/sluice.fish`.
    Completions(crate::cmd_shell::CompletionsArgs),
    /// Print the man page (roff): every command on one page, sluice(1).
    ///
    /// Install it with `sluice manpage > ~/.local/share/man/man1/sluice.1`;
    /// then `man sluice`.
    Manpage,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("when").required(true).args(["every", "on_calendar"])))]
pub struct JobArgs {
    /// The job (a [job.NAME] table of the config file).
    pub name: String,
    /// Print a sluice-NAME.service and sluice-NAME.timer pair that run
    /// `sluice sync --job NAME` (the only output form so far).
    #[arg(long, required = true)]
    pub systemd: bool,
    /// Run every INTERVAL: a whole number of s, m, h, d or w (15m, 1h, 1d),
    /// the first time soon after boot.
    #[arg(long, value_name = "INTERVAL", value_parser = crate::cmd_jobs::parse_every)]
    pub every: Option<crate::cmd_jobs::Every>,
    /// Run at the times of a systemd calendar SPEC (daily, 'Mon..Fri 02:00';
    /// see systemd.time(7)), catching up after the machine was off.
    #[arg(long, value_name = "SPEC", value_parser = crate::cmd_jobs::parse_calendar)]
    pub on_calendar: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["stdio", "config"])))]
pub struct ServeArgs {
    /// Speak the session protocol on stdin/stdout (what `sync` runs over ssh).
    #[arg(long, conflicts_with_all = ["listen", "config"])]
    pub stdio: bool,
    /// Run as a daemon on ADDR:PORT (overrides `listen` in the config file).
    #[arg(long, value_name = "ADDR:PORT", requires = "config")]
    pub listen: Option<SocketAddr>,
    /// The daemon's config file (TOML: key, modules, limits; see the README).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Threads for scanning (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// UDP ports to receive data on (LOW-HIGH; 0: any free port).
    #[arg(long, value_name = "LOW-HIGH", default_value = "33001-33016",
          value_parser = sync_core::units::parse_ports)]
    pub udp_ports: std::ops::RangeInclusive<u16>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (sessions,
    /// failures, bytes, last success, open connections). A loopback
    /// address only, unless --metrics-public.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        requires = "config",
        conflicts_with = "stdio"
    )]
    pub metrics: Option<SocketAddr>,
    /// Allow --metrics on an address other hosts can reach (the figures
    /// show when and how much this host syncs).
    #[arg(long, requires = "metrics")]
    pub metrics_public: bool,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key [default: ~/.config/sluice/id].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace an existing key file.
    #[arg(long)]
    pub force: bool,
}

/// The itemised format, shown under `sync --help` and `diff --help`.
pub const ITEMISED_HELP: &str = concat!(
    "Itemised changes (printed by diff, --dry-run and --itemize-changes):
  + PATH          created (folders end in /)
  M PATH          content changed (or symlink target)
  m PATH          metadata only (mode or mtime)
  - PATH          deleted (only with --delete)
  R OLD -> NEW    moved: NEW is created from OLD's content, OLD is deleted
  T PATH          replaced by an entry of another kind (file/folder/symlink)
  h PATH => LEAD  made a hard link to LEAD (--hard-links)
Then a summary: files and bytes in SRC, entries to create/update/delete, and
the chunk bytes that are (or would be) sent after reuse.

",
    crate::exit_codes_help!()
);

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The source folder: a local path, `[user@]host:path` (ssh) or
    /// `sluice://host[:port]/module/path` (a `sluice serve` daemon).
    // Not required with --job: the job's SRC and DST are filled in before
    // this type is built (config::resolve), so it always holds both.
    #[arg(required = false, required_unless_present = "job")]
    pub src: PathBuf,
    /// The destination folder (created if missing): a local path,
    /// `[user@]host:path` (ssh) or `sluice://host[:port]/module/path`. At
    /// most one side may be remote.
    #[arg(required = false, required_unless_present = "job")]
    pub dst: PathBuf,
    /// Run the job NAME of the config file: its SRC, DST and options, with
    /// [defaults] under them and flags given here over them (SRC and DST
    /// given here replace the job's).
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
    /// The ssh command for remote paths, split on spaces
    /// (e.g. 'ssh -p 2222 -i key').
    #[arg(long, value_name = "CMD", default_value = "ssh")]
    pub rsh: String,
    /// Path of the sluice binary on the remote host.
    #[arg(long, value_name = "PATH", default_value = "sluice")]
    pub remote_sluice: String,
    /// Give up connecting to the remote end after SECONDS: a daemon's
    /// connect and handshake (exit 35), ssh's ConnectTimeout (exit 5).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub contimeout: Option<u64>,
    /// End the run (exit 30) when nothing arrives from or can be sent to
    /// the remote end for SECONDS. Both ends send keepalives every
    /// SECONDS/4 (at most every 10 s) while they work, so a long scan does
    /// not count as silence. Default: wait as long as it takes.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
    pub timeout: Option<u32>,
    /// Private key for sluice:// daemons [default: ~/.config/sluice/id]
    /// (make one with `sluice keygen`).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The daemon's public key (64 hex digits), required for sluice://
    /// addresses: the connection fails unless the server holds its private key.
    #[arg(long, value_name = "HEX")]
    pub server_key: Option<String>,
    /// Delete entries in DST that SRC does not have (excluded entries are kept).
    #[arg(long)]
    pub delete: bool,
    /// Change nothing; print the itemised changes and a summary.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print one line per change (implied by --dry-run and diff).
    #[arg(short = 'i', long)]
    pub itemize_changes: bool,
    /// With --delete, delete nothing if more than N entries would go (exit 25).
    #[arg(long, value_name = "N")]
    pub max_delete: Option<u64>,
    /// Allow --delete to empty DST when SRC is empty.
    #[arg(long)]
    pub allow_empty_source: bool,
    /// If another run is writing to DST, wait up to SECONDS for it to end
    /// (default: fail at once, exit 40). Without a value: 24 hours.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_value_t = 0,
          default_missing_value = "86400")]
    pub wait_lock: u64,
    /// Preserve hard links among SRC files (otherwise each name is a separate file).
    #[arg(short = 'H', long)]
    pub hard_links: bool,
    #[command(flatten)]
    pub scan: ScanArgs,
    /// Index file for SRC instead of the default location.
    #[arg(long, value_name = "FILE")]
    pub src_index: Option<PathBuf>,
    /// Index file for DST instead of the default location.
    #[arg(long, value_name = "FILE")]
    pub dst_index: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Draw the progress display of sync and diff on stderr even when it is
    /// not a terminal (it is drawn on a terminal anyway; never with -q or
    /// --json).
    #[arg(long)]
    pub progress: bool,
    #[command(flatten)]
    pub data: crate::data_args::DataArgs,
    /// UDP ports to receive on when this side receives (LOW-HIGH; 0: any).
    #[arg(long, value_name = "LOW-HIGH", default_value = "33001-33016",
          value_parser = sync_core::units::parse_ports)]
    pub udp_ports: std::ops::RangeInclusive<u16>,
    /// Local address to receive UDP data on when this side receives
    /// (default: all addresses).
    #[arg(long, value_name = "ADDR")]
    pub udp_bind: Option<std::net::IpAddr>,
    /// Keep the run history (`sluice log`) for N days; older runs are
    /// dropped at most once a day (0: keep every run).
    #[arg(long, value_name = "N", default_value_t = sync_core::history::KEEP_DAYS)]
    pub history_days: u32,
    /// Do not record this run in the history (`sluice log`).
    #[arg(long)]
    pub no_history: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Gather changes until none came for MS milliseconds, then sync them
    /// in one round.
    #[arg(long, value_name = "MS", default_value_t = 20)]
    pub debounce: u64,
    /// ... but start a round at most MS milliseconds after its first change,
    /// even while changes keep coming.
    #[arg(long, value_name = "MS", default_value_t = 250)]
    pub max_delay: u64,
    /// Also sync in full (every entry's metadata compared) every SECONDS,
    /// as a safety net.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub rescan_interval: u64,
    /// Where file-system events cannot be had (network file systems, the
    /// inotify watch limit reached), sync in full every SECONDS.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub poll_interval: u64,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (rounds,
    /// failures, bytes, last success, pending changes, change-to-mirror
    /// latency). A loopback address only, unless --metrics-public.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
    /// Allow --metrics on an address other hosts can reach (the figures
    /// show when and how much this host syncs).
    #[arg(long, requires = "metrics")]
    pub metrics_public: bool,
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
