//! Terminal output: logging setup, warnings, human-readable sizes.

use std::io::IsTerminal;
use std::path::Path;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// Sets up `tracing` output on stderr (and appended to `log_file`, each
/// line with its UTC time); `SLUICE_LOG` overrides the level.
pub fn init_logging(verbose: u8, quiet: bool, log_file: Option<&Path>) -> Result<(), String> {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level))
    };
    // Debug output (and any SLUICE_LOG filter) carries the seconds since
    // start, so that phases can be timed; the default output does not.
    let timed = verbose >= 2 || std::env::var_os("SLUICE_LOG").is_some();
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(stderr_is_tty())
        .with_target(false);
    let stderr_layer = if timed {
        stderr_layer
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .boxed()
    } else {
        stderr_layer.without_time().boxed()
    };
    let file_layer = match log_file {
        None => None,
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("--log-file {}: {e}", path.display()))?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::sync::Mutex::new(file))
                    .with_ansi(false)
                    .with_target(false)
                    .with_filter(filter()),
            )
        }
    };
    tracing_subscriber::registry()
        .with(stderr_layer.with_filter(filter()))
        .with(file_layer)
        .init();
    Ok(())
}

/// Prints a warning line on stderr.
pub fn warn(path: &str, message: &str) {
    eprintln!("sluice: warning: {path}: {message}");
}

/// True when stderr is a terminal (progress bars only then).
pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// `1.50 GiB`-style sizes.
pub fn bytes(n: u64) -> String {
    scaled(n, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"], 2)
}

/// `18.1 Mbit/s`-style rates from bits per second.
pub fn rate(bps: u64) -> String {
    scaled(
        bps,
        1000.0,
        &["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"],
        1,
    )
}

/// `n` in the largest of `units` (each `step` times the one before) that
/// keeps it at 1 or more, with `decimals` places (none in the first unit).
fn scaled(n: u64, step: f64, units: &[&str], decimals: usize) -> String {
    let mut v = n as f64;
    let mut u = 0;
    while v >= step && u + 1 < units.len() {
        v /= step;
        u += 1;
    }
    if u == 0 {
        format!("{n} {}", units[0])
    } else {
        format!("{v:.decimals$} {}", units[u])
    }
}

/// Prints a JSON value on stdout, pretty when stdout is a terminal.
pub fn print_json(v: &serde_json::Value) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let text = if std::io::stdout().is_terminal() {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    }
    .map_err(std::io::Error::other)?;
    writeln!(out, "{text}")
}
