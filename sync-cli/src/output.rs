//! Terminal output: logging setup, warnings, human-readable sizes.

use std::io::IsTerminal;

/// Sets up `tracing` output on stderr; `SLUICE_LOG` overrides the level.
pub fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    // Debug output (and any SLUICE_LOG filter) carries the seconds since
    // start, so that phases can be timed; the default output does not.
    let timed = verbose >= 2 || std::env::var_os("SLUICE_LOG").is_some();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_is_tty())
        .with_target(false);
    if timed {
        builder
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .init();
    } else {
        builder.without_time().init();
    }
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
