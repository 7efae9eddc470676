//! The progress display of `sync` and `diff`, drawn on stderr by its own
//! thread from the session's [`Progress`] counters; it writes nothing else.
//!
//! While the trees are scanned, a spinner counts entries found and files
//! read. Then one bar: bytes written of bytes to write (for a push, whose
//! writer is remote, chunk bytes shipped of chunk bytes asked for), the
//! rate, the ETA,
//! "planned N of M entries" while windows are still being planned, and a
//! file being written; while this side sends over UDP, the link's loss and
//! round trip as the sending driver measures them. A big tree is planned window by window, so the byte
//! total grows as the run goes; the bar's length is never less than what
//! is done, so it never shows more than 100 %, and a run that succeeds
//! ends at exactly 100 %. A dry run writes nothing: its bar counts the
//! entries planned.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sync_core::session::{Progress, PHASE_SCAN, PHASE_TRANSFER};

/// Counters are read and the bar drawn this often: smooth enough, and
/// one path copy per frame costs the writers nothing measurable.
const TICK: Duration = Duration::from_millis(100);

/// Two lines: the numbers fit in 80 columns, the path gets a line.
const BYTES: &str = "{bar:25} {percent:>3}% {binary_bytes}/{binary_total_bytes} \
                     {binary_bytes_per_sec} ETA {eta}\n{wide_msg}";
const ENTRIES: &str = "{bar:25} {percent:>3}% {pos}/{len} entries planned {wide_msg}";

/// Where to draw: stderr when it is a terminal, or (`forced`, from
/// `--progress`) stderr whatever it is.
fn target(forced: bool) -> ProgressDrawTarget {
    if forced {
        // `stderr_with_hz` hides itself off a terminal (and with TERM=dumb).
        ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), 10)
    } else {
        ProgressDrawTarget::stderr_with_hz(10)
    }
}

/// Draws until `ended` is set: `true` when the run succeeded (the bar is
/// then left at 100 %), `false` when it failed (the bar stays where it was).
pub fn show(p: &Progress, dry_run: bool, forced: bool, ended: &OnceLock<bool>) {
    let bar = ProgressBar::with_draw_target(None, target(forced))
        .with_style(ProgressStyle::default_spinner());
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut phase = PHASE_SCAN;
    let succeeded = loop {
        if let Some(&ok) = ended.get() {
            break ok;
        }
        phase = next_phase(&bar, phase, p, dry_run);
        match phase {
            PHASE_SCAN => bar.set_message(crate::scan_opts::progress_line(&p.scan)),
            PHASE_TRANSFER => {
                update(&bar, p, dry_run);
                p.current.ask();
            }
            _ => {
                update(&bar, p, dry_run);
                bar.set_message("finishing: links, deletions, folder times, index");
            }
        }
        std::thread::sleep(TICK);
    };
    // A quick run may end before the bar was ever drawn.
    phase = next_phase(&bar, phase, p, dry_run);
    if succeeded && phase != PHASE_SCAN {
        update(&bar, p, dry_run);
        let len = bar.length().unwrap_or(0).max(bar.position());
        bar.set_length(len);
        bar.set_position(len);
        let entries = p.entries_total.load(Ordering::Relaxed);
        bar.finish_with_message(if dry_run {
            String::new()
        } else {
            format!("{entries} entries")
        });
    } else if phase == PHASE_SCAN {
        bar.finish_and_clear();
        return;
    } else {
        bar.abandon();
    }
    // The last frame stays; what is printed next starts on a line of its own.
    eprintln!();
}

/// The session's phase now; leaving the scan turns the spinner into the bar.
fn next_phase(bar: &ProgressBar, seen: u8, p: &Progress, dry_run: bool) -> u8 {
    let now = p.phase.load(Ordering::Relaxed);
    if now != seen && seen == PHASE_SCAN {
        bar.disable_steady_tick();
        bar.set_message("");
        let template = if dry_run { ENTRIES } else { BYTES };
        bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
        bar.reset_elapsed();
        bar.reset_eta();
    }
    now
}

/// Moves the bar to the counters: position = done, length = the larger
/// of the total planned so far and done.
fn update(bar: &ProgressBar, p: &Progress, dry_run: bool) {
    let (planned, entries) = (
        p.entries_planned.load(Ordering::Relaxed),
        p.entries_total.load(Ordering::Relaxed),
    );
    let (done, total) = if dry_run {
        (planned, entries)
    } else {
        (
            p.bytes_done.load(Ordering::Relaxed),
            p.bytes_total.load(Ordering::Relaxed),
        )
    };
    // Length first: the bar never sees done > length.
    bar.set_length(total.max(done));
    bar.set_position(done);
    let current = p.current.get();
    // The UDP link as this side sends on it (a push or a local UDP sync).
    let link = match p.link.get() {
        Some((loss, rtt)) => format!("loss {loss:.1} %, rtt {rtt:.0} ms: "),
        None => String::new(),
    };
    bar.set_message(match (dry_run, planned < entries) {
        (true, _) => String::new(),
        (false, true) => format!("{link}planned {planned} of {entries} entries: {current}"),
        (false, false) => format!("{link}{current}"),
    });
}
