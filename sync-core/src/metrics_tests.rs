use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::session::PARTIAL_MARK;

fn report(chunk: u64, wire: u64, secs: f64) -> SyncReport {
    SyncReport {
        chunk_bytes_sent: chunk,
        wire_bytes_sent: wire,
        duration_s: secs,
        ..SyncReport::default()
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The value of the sample `series` (name and labels as printed).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// Checks the text against the 0.0.4 format as Prometheus parses it:
/// HELP then TYPE once per family, before its samples; samples named by
/// their family (a histogram's with `_bucket`, `_sum`, `_count`); values
/// that parse as floats; buckets cumulative, ending at `+Inf` = `_count`.
fn check_format(text: &str) {
    assert!(text.ends_with('\n'), "the last line ends in a newline");
    let mut families = HashSet::new();
    let mut current: Option<(String, String)> = None;
    let mut lines = text.lines();
    let mut last_bucket = 0.0;
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.is_empty() && !help.contains('\\'), "{line}");
            assert!(families.insert(name.to_string()), "{name} twice");
            let ty = lines.next().expect("TYPE after HELP");
            let kind = ty
                .strip_prefix(&format!("# TYPE {name} "))
                .unwrap_or_else(|| panic!("TYPE of {name} after its HELP, got {ty}"));
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{ty}");
            assert!(name.starts_with("sluice_"), "{name}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
            current = Some((name.to_string(), kind.to_string()));
            last_bucket = 0.0;
            continue;
        }
        let (series, v) = line.rsplit_once(' ').expect("series value");
        let v: f64 = v.parse().unwrap_or_else(|_| panic!("value of {line}"));
        assert!(v.is_finite() && v >= 0.0, "{line}");
        let (family, kind) = current.as_ref().expect("a sample before any TYPE");
        if kind == "histogram" {
            if let Some(le) = series.strip_prefix(&format!("{family}_bucket{{le=\"")) {
                let le = le.strip_suffix("\"}").expect("one le label");
                assert!(le == "+Inf" || le.parse::<f64>().is_ok(), "{line}");
                assert!(v >= last_bucket, "buckets are cumulative: {line}");
                last_bucket = v;
            } else if series == format!("{family}_count") {
                assert_eq!(v, last_bucket, "_count is the +Inf bucket");
            } else {
                assert_eq!(series, format!("{family}_sum"));
            }
        } else {
            assert_eq!(series, family, "{line}");
        }
    }
}

#[test]
fn a_new_watch_renders_zeros() {
    let m = Metrics::new(Kind::Watch);
    let text = m.render();
    check_format(&text);
    let want = "\
# HELP sluice_runs_total Runs ended: watch rounds (the first sync included).
# TYPE sluice_runs_total counter
sluice_runs_total 0
# HELP sluice_run_failures_total Runs that failed or left entries unsynced: watch rounds (the first sync included).
# TYPE sluice_run_failures_total counter
sluice_run_failures_total 0
# HELP sluice_shipped_bytes_total Chunk payload shipped (what the destination lacked).
# TYPE sluice_shipped_bytes_total counter
sluice_shipped_bytes_total 0
# HELP sluice_wire_bytes_total Bytes the sending side put on the wire, framing and control included.
# TYPE sluice_wire_bytes_total counter
sluice_wire_bytes_total 0
# HELP sluice_last_success_timestamp_seconds When the last run that synced everything ended (unix seconds; 0: none yet).
# TYPE sluice_last_success_timestamp_seconds gauge
sluice_last_success_timestamp_seconds 0
# HELP sluice_last_run_shipped_bits_per_second Chunk payload rate of the last run, over its whole duration.
# TYPE sluice_last_run_shipped_bits_per_second gauge
sluice_last_run_shipped_bits_per_second 0
# HELP sluice_last_run_wire_bits_per_second Wire rate of the last run, over its whole duration.
# TYPE sluice_last_run_wire_bits_per_second gauge
sluice_last_run_wire_bits_per_second 0
# HELP sluice_rounds_pending 1 while changes wait for a round (being gathered, or for the destination to come back), else 0.
# TYPE sluice_rounds_pending gauge
sluice_rounds_pending 0
# HELP sluice_change_to_mirror_seconds From a round's first file-system event to the end of the round that mirrored it (rounds started by events).
# TYPE sluice_change_to_mirror_seconds histogram
sluice_change_to_mirror_seconds_bucket{le=\"0.01\"} 0
sluice_change_to_mirror_seconds_bucket{le=\"0.025\"} 0
sluice_change_to_mirror_seconds_bucket{le=\"0.05\"} 0
sluice_change_to_mirror_seconds_bucket{le=\"0.1\"} 0
sluice_change_to_mirror_seconds_bucket{le=\"0.25\"} 0
sluice_change_to_mirror_seconds_bucket{le=\"0.5\"} 0
sluice_change_to_mirror_seconds_bucket{le=\"1\"} 0
sluice_change_to_mirror_seconds_bucket{le=\"2.5\"} 0
sluice_change_to_mirror_seconds_bucket{le=\"5\"} 0
sluice_change_to_mirror_seconds_bucket{le=\"10\"} 0
sluice_change_to_mirror_seconds_bucket{le=\"+Inf\"} 0
sluice_change_to_mirror_seconds_sum 0
sluice_change_to_mirror_seconds_count 0
";
    assert_eq!(text, want);
}

#[test]
fn runs_add_up_bytes_and_failures() {
    let m = Metrics::new(Kind::Watch);
    m.run_done(&report(1000, 1200, 0.5), at(1_700_000_000));
    m.run_done(&report(24, 100, 0.0), at(1_700_000_010));
    let mut partial = report(5, 50, 1.0);
    partial
        .warnings
        .push(format!("{PARTIAL_MARK}a: unreadable"));
    m.run_done(&partial, at(1_700_000_020));
    let mut capped = report(0, 10, 1.0);
    capped.max_delete_hit = true;
    m.run_done(&capped, at(1_700_000_030));
    m.run_failed();
    let text = m.render();
    check_format(&text);
    assert_eq!(value(&text, "sluice_runs_total"), 5.0);
    assert_eq!(value(&text, "sluice_run_failures_total"), 3.0);
    assert_eq!(value(&text, "sluice_shipped_bytes_total"), 1029.0);
    assert_eq!(value(&text, "sluice_wire_bytes_total"), 1360.0);
    // The partial run and the one --max-delete stopped are no success.
    assert_eq!(
        value(&text, "sluice_last_success_timestamp_seconds"),
        1_700_000_010.0
    );
    // The last run with a report: 10 wire bytes in 1 s, nothing shipped.
    assert_eq!(value(&text, "sluice_last_run_shipped_bits_per_second"), 0.0);
    assert_eq!(value(&text, "sluice_last_run_wire_bits_per_second"), 80.0);
}

#[test]
fn rates_are_bits_per_second_of_the_last_run() {
    let m = Metrics::new(Kind::Daemon);
    m.run_done(&report(1_000_000, 1_250_000, 2.0), at(1));
    let text = m.render();
    assert_eq!(
        value(&text, "sluice_last_run_shipped_bits_per_second"),
        4_000_000.0
    );
    assert_eq!(
        value(&text, "sluice_last_run_wire_bits_per_second"),
        5_000_000.0
    );
    // A run too short to time has no rate rather than an infinite one.
    m.run_done(&report(10, 10, 0.0), at(2));
    let text = m.render();
    check_format(&text);
    assert_eq!(value(&text, "sluice_last_run_wire_bits_per_second"), 0.0);
}

#[test]
fn a_dry_run_ships_nothing() {
    let m = Metrics::new(Kind::Daemon);
    let mut dry = report(4096, 5000, 1.0);
    dry.dry_run = true;
    m.run_done(&dry, at(42));
    let text = m.render();
    assert_eq!(value(&text, "sluice_runs_total"), 1.0);
    assert_eq!(value(&text, "sluice_shipped_bytes_total"), 0.0);
    assert_eq!(value(&text, "sluice_wire_bytes_total"), 0.0);
    assert_eq!(value(&text, "sluice_last_success_timestamp_seconds"), 42.0);
}

#[test]
fn latencies_fall_in_inclusive_buckets() {
    let m = Metrics::new(Kind::Watch);
    for ms in [3, 10, 11, 25, 400, 20_000] {
        m.change_mirrored(Duration::from_millis(ms));
    }
    let text = m.render();
    check_format(&text);
    let bucket = |le: &str| {
        value(
            &text,
            &format!("sluice_change_to_mirror_seconds_bucket{{le=\"{le}\"}}"),
        )
    };
    assert_eq!(bucket("0.01"), 2.0, "10 ms is in le=0.01");
    assert_eq!(bucket("0.025"), 4.0);
    assert_eq!(bucket("0.25"), 4.0);
    assert_eq!(bucket("0.5"), 5.0);
    assert_eq!(bucket("10"), 5.0, "20 s is above every bound");
    assert_eq!(bucket("+Inf"), 6.0);
    assert_eq!(value(&text, "sluice_change_to_mirror_seconds_count"), 6.0);
    let sum = value(&text, "sluice_change_to_mirror_seconds_sum");
    assert!((sum - 20.449).abs() < 1e-9, "{sum}");
}

#[test]
fn the_watch_shows_pending_rounds() {
    let m = Metrics::new(Kind::Watch);
    m.set_pending(true);
    assert_eq!(value(&m.render(), "sluice_rounds_pending"), 1.0);
    m.set_pending(false);
    assert_eq!(value(&m.render(), "sluice_rounds_pending"), 0.0);
    assert!(!m.render().contains("sluice_connections_open"));
}

#[test]
fn the_daemon_shows_connections_and_no_watch_figures() {
    let m = Metrics::new(Kind::Daemon);
    m.connection_opened();
    m.connection_opened();
    m.connection_closed();
    let text = m.render();
    check_format(&text);
    assert_eq!(value(&text, "sluice_connections_open"), 1.0);
    assert!(text.contains("Runs ended: daemon sessions."), "{text}");
    assert!(!text.contains("sluice_rounds_pending"), "{text}");
    assert!(!text.contains("sluice_change_to_mirror"), "{text}");
}

#[test]
fn figures_from_many_threads_all_count() {
    let m = std::sync::Arc::new(Metrics::new(Kind::Daemon));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let m = std::sync::Arc::clone(&m);
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    m.run_done(&report(3, 4, 1.0), at(1));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let text = m.render();
    assert_eq!(value(&text, "sluice_runs_total"), 4000.0);
    assert_eq!(value(&text, "sluice_shipped_bytes_total"), 12_000.0);
}
