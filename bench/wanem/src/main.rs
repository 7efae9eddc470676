//! The `wanem` binary: a thin driver over [`wanem::Link`]. Parses the
//! command line (`args`), starts the link, says `ready`, waits for
//! SIGINT/SIGTERM or --duration while printing periodic counters, then
//! stops the link and reports. Exit codes: 0 after a clean stop, 1 when
//! the link could not start or failed, 2 for a bad command line.

mod args;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use wanem::{Counters, Error, Link};

fn main() -> ExitCode {
    let args = args::Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wanem: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &args::Args) -> Result<(), Error> {
    let config = args.link_config()?;
    // Blocked in every thread (the forwarders inherit the mask) and taken
    // synchronously below, so no signal handler runs at all.
    let signals = block_termination_signals();
    eprintln!(
        "wanem: seed {} (repeat this run with --seed {})",
        config.seed, config.seed
    );
    eprintln!("wanem: A->B {:?}", config.a_to_b);
    eprintln!("wanem: B->A {:?}", config.b_to_a);
    let link = Link::start(config)?;
    if let Some(file) = &args.ready_file {
        std::fs::write(file, "ready\n")
            .map_err(|e| Error::io(format!("cannot write {}", file.display()), e))?;
    }
    // A closed stdout must not stop the link: the ready file may be in use.
    let _ = writeln!(std::io::stdout(), "ready").and_then(|()| std::io::stdout().flush());

    let started = Instant::now();
    let end = args.duration().map(|d| started + d);
    let interval = args.stats_interval.map(Duration::from_secs_f64);
    let mut next_stats = interval.map(|i| started + i);
    let mut previous = link.counters();
    let mut failed = false;
    loop {
        let now = Instant::now();
        if end.is_some_and(|end| now >= end) {
            break;
        }
        if let (Some(at), Some(every)) = (next_stats, interval) {
            if now >= at {
                let current = link.counters();
                eprintln!("{}", progress_line(&previous, &current));
                previous = current;
                next_stats = Some(at + every);
            }
        }
        if !link.is_running() {
            eprintln!("wanem: a forwarding direction stopped; shutting down");
            failed = true;
            break;
        }
        let until = [end, next_stats]
            .into_iter()
            .flatten()
            .fold(now + Duration::from_millis(200), Instant::min);
        if let Some(signal) = wait_signal(&signals, until.saturating_duration_since(now)) {
            eprintln!("wanem: signal {signal}, stopping");
            break;
        }
    }
    let counters = link.stop();
    eprint!("{counters}");
    if let Some(file) = &args.stats {
        std::fs::write(file, counters.to_json() + "\n")
            .map_err(|e| Error::io(format!("cannot write {}", file.display()), e))?;
    }
    if failed {
        return Err(Error::Config(
            "the link stopped before it was asked to".into(),
        ));
    }
    Ok(())
}

/// `t=..s A->B in .. out .. Mbit/s, lost .., qdrop .., queue .. ms | B->A ..`
/// over the interval since `before`.
fn progress_line(before: &Counters, now: &Counters) -> String {
    let secs = (now.elapsed_secs - before.elapsed_secs).max(1e-9);
    let mut line = format!("wanem: t={:.1}s", now.elapsed_secs);
    for (name, b, n) in [
        ("A->B", &before.a_to_b, &now.a_to_b),
        ("B->A", &before.b_to_a, &now.b_to_a),
    ] {
        let mbit = |x: u64, y: u64| (x - y) as f64 * 8.0 / secs / 1e6;
        line += &format!(
            " {name} in {:.1} out {:.1} Mbit/s, lost {}, qdrop {}, max queue {:.1} ms;",
            mbit(n.bytes_in, b.bytes_in),
            mbit(n.bytes_out, b.bytes_out),
            n.lost_packets - b.lost_packets,
            n.queue_dropped_packets - b.queue_dropped_packets,
            n.max_queue_ms,
        );
    }
    line.pop();
    line
}

fn block_termination_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before
    // use; pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits up to `timeout` for one of `set`; returns the signal number.
fn wait_signal(set: &libc::sigset_t, timeout: Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: valid set and timespec; siginfo may be null.
    let signal = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (signal > 0).then_some(signal)
}

#[cfg(test)]
mod tests {
    use super::args::Args;
    use clap::Parser;
    use std::time::Duration;
    use wanem::QueueLimit;

    fn config(line: &str) -> Result<wanem::LinkConfig, String> {
        let argv = ["wanem", "--ns-a", "a", "--ns-b", "b"]
            .into_iter()
            .chain(line.split_whitespace());
        let args = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
        args.link_config().map_err(|e| e.to_string())
    }

    #[test]
    fn both_directions_then_overrides() {
        let c = config("--rate 300M --delay 50ms --loss 1% --ab-loss 5% --ba-loss 0 --ba-rate 1G")
            .unwrap();
        assert_eq!((c.a_to_b.loss, c.b_to_a.loss), (0.05, 0.0));
        assert_eq!(
            (c.a_to_b.rate_bps, c.b_to_a.rate_bps),
            (Some(300_000_000), Some(1_000_000_000))
        );
        assert_eq!(c.b_to_a.delay, Duration::from_millis(50));
    }

    #[test]
    fn queue_levels_and_switches() {
        let c = config("--queue 20ms --ab-queue-bytes 1M --jitter 1ms --delay 5ms --ba-reorder")
            .unwrap();
        assert_eq!(c.a_to_b.queue, QueueLimit::Bytes(1_000_000));
        assert_eq!(c.b_to_a.queue, QueueLimit::Time(Duration::from_millis(20)));
        assert!(!c.a_to_b.reorder && c.b_to_a.reorder);
        assert!(config("--queue 20ms --queue-bytes 1M")
            .unwrap_err()
            .contains("not both"));
    }

    #[test]
    fn bad_values_name_the_problem() {
        assert!(config("--rate 300X")
            .unwrap_err()
            .contains("invalid rate '300X'"));
        assert!(config("--ge 1%,2%")
            .unwrap_err()
            .contains("four percentages"));
        assert!(config("--jitter 5ms")
            .unwrap_err()
            .contains("larger than the delay"));
        assert!(config("--duration -1").is_err());
        assert!(config("--addr-b 10.1.1.1").unwrap_err().contains("subnet"));
    }

    #[test]
    fn seed_is_taken_as_given() {
        assert_eq!(config("--seed 42").unwrap().seed, 42);
    }
}
