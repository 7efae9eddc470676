//! Figures of a long-running sluice (a watch, a daemon) for Prometheus.
//!
//! Owns a registry of counters and gauges kept in atomics, which the watch
//! loop and the daemon's connection threads update, and its text in the
//! Prometheus exposition format, version 0.0.4 ([`Metrics::render`]). It
//! never does I/O and never reads a clock: callers pass the time a run
//! ended. Serving the text over HTTP is the CLI's job.
//!
//! Each figure is read on its own, so a scrape during a run may see the run
//! counted but not yet its bytes; the next scrape is whole. A histogram's
//! `_count` is the sum of its buckets as read, so it always matches `+Inf`.
//!
//! Not here yet: datagram loss and round-trip time ([`SyncReport`] carries
//! them now, as `loss_pct` and `rtt_ms`).

use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::session::SyncReport;

/// Upper bounds of the latency histogram's buckets, in milliseconds: 10 ms
/// to 10 s in 1-2.5-5 steps. A local round takes about 25 ms (median) and
/// the budget for a change is 500 ms at p99, so both fall between bounds
/// that tell them apart; past 10 s something is wrong whatever the figure.
pub const LATENCY_BUCKETS_MS: [u64; 10] = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// Which process the figures describe: each shows only its own families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `sluice watch`: runs are rounds; adds pending rounds and latency.
    Watch,
    /// `sluice serve --config`: runs are sessions; adds open connections.
    Daemon,
}

/// The registry; see the module doc. Shared as an `Arc` by its updaters
/// and the thread that serves it.
#[derive(Debug)]
pub struct Metrics {
    kind: Kind,
    runs: AtomicU64,
    failures: AtomicU64,
    shipped_bytes: AtomicU64,
    wire_bytes: AtomicU64,
    /// Unix seconds as `f64` bits; 0 before the first success.
    last_success: AtomicU64,
    /// `f64` bits, bits per second.
    shipped_rate: AtomicU64,
    wire_rate: AtomicU64,
    pending: AtomicBool,
    connections: AtomicU64,
    latency: Histogram,
}

/// Change-to-mirror latencies, in [`LATENCY_BUCKETS_MS`].
#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket, not cumulative; the last is above every
    /// bound.
    counts: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    sum_ns: AtomicU64,
}

impl Metrics {
    pub fn new(kind: Kind) -> Metrics {
        Metrics {
            kind,
            runs: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            shipped_bytes: AtomicU64::new(0),
            wire_bytes: AtomicU64::new(0),
            last_success: AtomicU64::new(0f64.to_bits()),
            shipped_rate: AtomicU64::new(0f64.to_bits()),
            wire_rate: AtomicU64::new(0f64.to_bits()),
            pending: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            latency: Histogram::default(),
        }
    }

    /// A run (round or session) that ended with a report at `ended`. One
    /// that left entries unsynced (partial, `--max-delete`) counts as
    /// failed; a dry run ships nothing, so its bytes are not counted.
    pub fn run_done(&self, r: &SyncReport, ended: SystemTime) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        if !r.dry_run {
            self.shipped_bytes
                .fetch_add(r.chunk_bytes_sent, Ordering::Relaxed);
            self.wire_bytes
                .fetch_add(r.wire_bytes_sent, Ordering::Relaxed);
            set_f64(&self.shipped_rate, rate(r.chunk_bytes_sent, r.duration_s));
            set_f64(&self.wire_rate, rate(r.wire_bytes_sent, r.duration_s));
        }
        if r.partial() || r.max_delete_hit {
            self.failures.fetch_add(1, Ordering::Relaxed);
        } else {
            let at = ended.duration_since(UNIX_EPOCH).unwrap_or_default();
            set_f64(&self.last_success, at.as_secs_f64());
        }
    }

    /// A run that ended without a report (connection lost, refused, ...).
    pub fn run_failed(&self) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A watch round started by file-system events mirrored them `latency`
    /// after the first one.
    pub fn change_mirrored(&self, latency: Duration) {
        let i = LATENCY_BUCKETS_MS
            .iter()
            .position(|&ms| latency <= Duration::from_millis(ms))
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.latency.counts[i].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Whether the watch's debouncer holds changes not yet synced.
    pub fn set_pending(&self, pending: bool) {
        self.pending.store(pending, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// The figures in the text exposition format, version 0.0.4 (serve
    /// as `text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let o = &mut out;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let what = match self.kind {
            Kind::Watch => "watch rounds (the first sync included)",
            Kind::Daemon => "daemon sessions",
        };
        let counters = [
            (
                "sluice_runs_total",
                format!("Runs ended: {what}."),
                &self.runs,
            ),
            (
                "sluice_run_failures_total",
                format!("Runs that failed or left entries unsynced: {what}."),
                &self.failures,
            ),
            (
                "sluice_shipped_bytes_total",
                "Chunk payload shipped (what the destination lacked).".into(),
                &self.shipped_bytes,
            ),
            (
                "sluice_wire_bytes_total",
                "Bytes the sending side put on the wire, framing and control included.".into(),
                &self.wire_bytes,
            ),
        ];
        for (name, help, value) in counters {
            family(o, name, "counter", &help);
            sample(o, name, get(value));
        }
        let gauges = [
            (
                "sluice_last_success_timestamp_seconds",
                "When the last run that synced everything ended (unix seconds; 0: none yet).",
                &self.last_success,
            ),
            (
                "sluice_last_run_shipped_bits_per_second",
                "Chunk payload rate of the last run, over its whole duration.",
                &self.shipped_rate,
            ),
            (
                "sluice_last_run_wire_bits_per_second",
                "Wire rate of the last run, over its whole duration.",
                &self.wire_rate,
            ),
        ];
        for (name, help, value) in gauges {
            family(o, name, "gauge", help);
            sample(o, name, get_f64(value));
        }
        match self.kind {
            Kind::Watch => {
                let name = "sluice_rounds_pending";
                family(o, name, "gauge", "1 while changes wait for a round (being gathered, or for the destination to come back), else 0.");
                sample(o, name, u8::from(self.pending.load(Ordering::Relaxed)));
                self.latency.render(o);
            }
            Kind::Daemon => {
                let name = "sluice_connections_open";
                family(o, name, "gauge", "Client connections open now.");
                sample(o, name, get(&self.connections));
            }
        }
        out
    }
}

impl Histogram {
    fn render(&self, o: &mut String) {
        let name = "sluice_change_to_mirror_seconds";
        family(o, name, "histogram", "From a round's first file-system event to the end of the round that mirrored it (rounds started by events).");
        let mut count = 0;
        for (i, c) in self.counts.iter().enumerate() {
            count += c.load(Ordering::Relaxed);
            let le = match LATENCY_BUCKETS_MS.get(i) {
                Some(&ms) => (ms as f64 / 1000.0).to_string(),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(o, "{name}_bucket{{le=\"{le}\"}} {count}");
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        sample(o, &format!("{name}_sum"), sum);
        sample(o, &format!("{name}_count"), count);
    }
}

/// Bits per second of `bytes` over `secs` (0 for an instant run).
fn rate(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 && secs.is_finite() {
        bytes as f64 * 8.0 / secs
    } else {
        0.0
    }
}

fn set_f64(a: &AtomicU64, v: f64) {
    a.store(v.to_bits(), Ordering::Relaxed);
}

fn get_f64(a: &AtomicU64) -> f64 {
    f64::from_bits(a.load(Ordering::Relaxed))
}

/// The HELP and TYPE lines (no text here needs the format's escapes).
fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample without labels. Rust prints floats without exponents and
/// integral ones without a fraction, both of which Prometheus parses.
fn sample(o: &mut String, name: &str, value: impl Display) {
    let _ = writeln!(o, "{name} {value}");
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
