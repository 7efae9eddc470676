//! `sluice`: fast directory mirroring over long, lossy networks.
//!
//! This crate only parses arguments, prints, and maps outcomes to exit
//! codes; everything else lives in `sync-core`.

mod args;
mod cmd_index;
mod cmd_jobs;
mod cmd_keygen;
mod cmd_log;
mod cmd_serve;
mod cmd_shell;
mod cmd_sync;
mod cmd_watch;
mod config;
mod data_args;
mod exit;
mod metrics_http;
mod output;
mod progress;
mod record;
mod scan_opts;
mod summary;
mod utc;

use clap::CommandFactory;

fn main() {
    let matches = match args::Cli::command().try_get_matches() {
        Ok(m) => m,
        // --help and --version print and exit 0; a bad command line exits
        // 1, as rsync's syntax errors do (clap's own default is 2).
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            std::process::exit(exit::Code::Usage as i32);
        }
    };
    // `--job NAME` turns into the command line the job stands for.
    let cli = match config::resolve(&matches) {
        Ok(cli) => cli,
        Err(err) => {
            eprintln!("sluice: error: {err}");
            std::process::exit(exit::Code::Usage as i32);
        }
    };
    // A daemon logs its connections (info) unless told otherwise.
    let daemon = matches!(&cli.command, args::Command::Serve(a) if a.config.is_some());
    let verbose = if daemon {
        cli.verbose.max(1)
    } else {
        cli.verbose
    };
    if let Err(e) = output::init_logging(verbose, cli.quiet, cli.log_file.as_deref()) {
        eprintln!("sluice: error: {e}");
        std::process::exit(exit::Code::Usage as i32);
    }
    let code = match run(cli) {
        Ok(code) => code,
        Err(err) => {
            if exit::is_broken_pipe(&err) {
                exit::Code::Ok
            } else {
                eprintln!("sluice: error: {err:#}");
                exit::Code::of_error(&err)
            }
        }
    };
    std::process::exit(code as i32);
}

fn run(cli: args::Cli) -> anyhow::Result<exit::Code> {
    match cli.command {
        args::Command::Index(a) => cmd_index::run(a, cli.quiet),
        args::Command::Sync(a) => cmd_sync::run(a, false, cli.quiet),
        args::Command::Diff(a) => cmd_sync::run(a, true, cli.quiet),
        args::Command::Watch(a) => cmd_watch::run(a, cli.quiet),
        args::Command::Log(a) => cmd_log::run(a),
        args::Command::Serve(a) => cmd_serve::run(a),
        args::Command::Keygen(a) => cmd_keygen::run(a),
        args::Command::Jobs(a) => cmd_jobs::list(a, cli.config.as_deref()),
        args::Command::Job(a) => cmd_jobs::systemd(a, cli.config.as_deref()),
        args::Command::Completions(a) => cmd_shell::completions(a),
        args::Command::Manpage => cmd_shell::manpage(),
    }
}
