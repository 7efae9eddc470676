//! `--metrics ADDR:PORT`: a watch and a daemon serve their figures to
//! Prometheus over HTTP on loopback; scraped here with a bare TcpStream.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::{keygen, module};
use crate::util::*;
use crate::watch::{Watching, SHOW_UP};

/// A port nobody listens on now (the OS's pick for port 0).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `METHOD PATH` to 127.0.0.1:`port`; returns the status code and body.
fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    let (head, body) = got.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok());
    (
        status.unwrap_or_else(|| panic!("no status in {head}")),
        body.to_string(),
    )
}

/// The value of the sample `series` in a scrape, if it is there.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// Scrapes `/metrics` until `done` holds (at most [`SHOW_UP`]); returns the
/// last scrape.
fn scrape_until(port: u16, done: impl Fn(&dyn Fn(&str) -> f64) -> bool) -> String {
    let deadline = Instant::now() + SHOW_UP;
    loop {
        let (status, text) = http(port, "GET", "/metrics");
        assert_eq!(status, 200, "{text}");
        let get = |series: &str| value(&text, series).unwrap_or(-1.0);
        if done(&get) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "figures never got there:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_watch_serves_its_rounds_bytes_and_latency() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("a"), b"first");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut w = Watching::start(&d, &["--metrics", &addr], &src, dst.to_str().unwrap());
    w.round(SHOW_UP);
    write(&src.join("big.bin"), &noise(7, 200_000));
    w.until_same(&src, &dst);

    let text = scrape_until(port, |get| {
        get("sluice_runs_total") >= 2.0
            && get("sluice_shipped_bytes_total") >= 200_000.0
            && get("sluice_change_to_mirror_seconds_count") >= 1.0
            && get("sluice_rounds_pending") == 0.0
    });
    let get = |series: &str| value(&text, series).unwrap();
    assert_eq!(get("sluice_run_failures_total"), 0.0, "{text}");
    assert!(
        get("sluice_wire_bytes_total") > get("sluice_shipped_bytes_total"),
        "{text}"
    );
    // A unix time of this century.
    assert!(
        get("sluice_last_success_timestamp_seconds") > 1.6e9,
        "{text}"
    );
    assert!(get("sluice_last_run_wire_bits_per_second") >= 0.0, "{text}");
    assert_eq!(
        get("sluice_change_to_mirror_seconds_bucket{le=\"+Inf\"}"),
        get("sluice_change_to_mirror_seconds_count"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE sluice_runs_total counter\n"),
        "{text}"
    );
    assert!(!text.contains("sluice_connections_open"), "{text}");

    assert_eq!(http(port, "GET", "/").0, 404);
    assert_eq!(http(port, "GET", "/metrics/x").0, 404);
    assert_eq!(http(port, "POST", "/metrics").0, 405);
    assert_eq!(http(port, "HEAD", "/metrics"), (200, String::new()));
    assert_eq!(w.stop(libc::SIGTERM), Some(0));
}

/// The figures show when and how much a host syncs: an address other hosts
/// reach needs --metrics-public, and without it nothing runs at all.
#[test]
fn a_public_metrics_address_is_refused_without_the_flag() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("a"), b"a");
    let mut child = Command::new(sluice_bin())
        .args(["watch", "--metrics", "0.0.0.0:9"])
        .arg(&src)
        .arg(&dst)
        .env("XDG_STATE_HOME", d.path("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = wait_exit(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("--metrics-public"),
        "{stderr}"
    );
    assert!(!dst.exists(), "refused before the first sync");

    // The flag means nothing alone.
    let out = d.sluice(&[
        "watch".as_ref(),
        "--metrics-public".as_ref(),
        src.as_os_str(),
        dst.as_os_str(),
    ]);
    assert!(!out.status.success());
    assert!(!dst.exists());
}

/// Waits (at most 10 s) for `child` to exit, killing it otherwise.
fn wait_exit(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `sluice serve` daemon; killed when dropped.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The port that follows `needle` in the log at `log` (waits at most 10 s).
fn port_in_log(log: &Path, needle: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(at) = text.find(needle) {
            let digits: String = text[at + needle.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(port) = digits.parse() {
                return port;
            }
        }
        assert!(Instant::now() < deadline, "no {needle:?} in {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_daemon_serves_its_sessions_and_connections() {
    let d = Dir::new();
    let client = keygen(&d, "keys/client");
    let server_pub = keygen(&d, "keys/server");
    let store = d.path("store");
    std::fs::create_dir_all(&store).unwrap();
    let config = d.path("serve.toml");
    let key = d.path("keys/server");
    let rw = module("rw", &store, "read-write", &[&client]);
    std::fs::write(&config, format!("key = \"{}\"\n{rw}", key.display())).unwrap();
    let log = d.path("daemon.log");
    // Both on port 0: the daemon logs the ports it got.
    let _daemon = Serving(
        Command::new(sluice_bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(&config)
            .env("XDG_STATE_HOME", d.path("server-state"))
            .env_remove("SLUICE_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let port = port_in_log(&log, "listening on 127.0.0.1:");
    let metrics = port_in_log(&log, "metrics on http://127.0.0.1:");

    let src = d.path("src");
    write(&src.join("big.bin"), &noise(5, 300_000));
    let url = format!("sluice://127.0.0.1:{port}/rw");
    let key = d.path("keys/client");
    let args = [
        "sync".as_ref(),
        "--key".as_ref(),
        key.as_os_str(),
        "--server-key".as_ref(),
        server_pub.as_ref(),
        src.as_os_str(),
        url.as_ref(),
    ];
    assert_exit(&d.sluice(&args), 0);
    let text = scrape_until(metrics, |get| {
        get("sluice_runs_total") == 1.0 && get("sluice_connections_open") == 0.0
    });
    let get = |series: &str| value(&text, series).unwrap();
    assert!(get("sluice_shipped_bytes_total") >= 300_000.0, "{text}");
    assert_eq!(get("sluice_run_failures_total"), 0.0, "{text}");
    assert!(
        get("sluice_last_success_timestamp_seconds") > 1.6e9,
        "{text}"
    );
    assert!(!text.contains("sluice_rounds_pending"), "{text}");

    // A connection that has not said anything yet is open all the same.
    let idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    scrape_until(metrics, |get| get("sluice_connections_open") == 1.0);
    drop(idle);
    scrape_until(metrics, |get| get("sluice_connections_open") == 0.0);
}
