//! `--metrics ADDR:PORT` (watch, daemon): serves a [`Metrics`] registry on
//! `GET /metrics` over plain HTTP/1.1, for Prometheus to scrape.
//!
//! One thread answers one connection at a time, one request each, then
//! closes it (`Connection: close`). A scrape is one short request every
//! few seconds, so nothing more is needed, and a client that dawdles holds
//! one socket for at most [`TIMEOUT`] while the watch or the daemon goes
//! on undisturbed. Only the request line is looked at; headers are read
//! up to [`MAX_HEAD`] bytes and ignored. [`respond`] is pure, the rest is
//! socket plumbing.
//!
//! No crate: `prometheus-client` encodes OpenMetrics rather than the 0.0.4
//! text format, and an HTTP server crate would need more code around it to
//! bound a request's time and size than this whole file.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use sync_core::metrics::Metrics;

/// Longest a connection may take to send its request and read the answer:
/// a scrape on a loopback or LAN link takes milliseconds.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read (request line and headers); Prometheus sends
/// a few hundred bytes.
pub const MAX_HEAD: usize = 8192;
/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `addr` and serves `metrics` from a thread of its own, for the
/// life of the process. Refuses an address other hosts can reach unless
/// `public` (`--metrics-public`). Returns the address bound.
pub fn start(addr: SocketAddr, public: bool, metrics: Arc<Metrics>) -> anyhow::Result<SocketAddr> {
    if !public && !addr.ip().to_canonical().is_loopback() {
        bail!(
            "--metrics {addr} is not a loopback address: the figures show when and how much \
             this host syncs, so serving them to other hosts needs --metrics-public as well"
        );
    }
    let listener =
        TcpListener::bind(addr).map_err(|e| anyhow!("cannot serve metrics on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("sluice-metrics".into())
        .spawn(move || serve(&listener, &metrics))?;
    tracing::info!("metrics on http://{bound}/metrics");
    Ok(bound)
}

fn serve(listener: &TcpListener, metrics: &Metrics) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                if let Err(e) = answer(stream, metrics) {
                    tracing::debug!("metrics request: {e}");
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("metrics: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Reads one request from `stream` and answers it.
fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !ends_head(&head) && head.len() < MAX_HEAD {
        // The timeout covers the whole request, not each read: a client
        // sending a byte at a time gets no longer.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    stream.write_all(&respond(&head, || metrics.render()))?;
    stream.flush()
}

fn ends_head(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")
}

/// The whole answer (status line, headers, body) to a request whose head
/// is `head`, as much as was read of it; `render` gives the figures.
pub fn respond(head: &[u8], render: impl FnOnce() -> String) -> Vec<u8> {
    let complete = ends_head(head);
    if !complete && head.len() >= MAX_HEAD {
        return reply(
            "431 Request Header Fields Too Large",
            &[],
            "request too large\n",
        );
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return reply("400 Bad Request", &[], "bad request\n");
    };
    if !version.starts_with("HTTP/1.") {
        return reply("400 Bad Request", &[], "bad request\n");
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return reply(
            "404 Not Found",
            &[],
            "not found: the figures are at /metrics\n",
        );
    }
    match method {
        "GET" | "HEAD" => {
            let body = render();
            let mut r = reply("200 OK", &[("Content-Type", CONTENT_TYPE)], &body);
            if method == "HEAD" {
                // The same headers without the body (RFC 9110, 9.3.2).
                r.truncate(r.len() - body.len());
            }
            r
        }
        _ => reply(
            "405 Method Not Allowed",
            &[("Allow", "GET, HEAD")],
            "method not allowed\n",
        ),
    }
}

fn reply(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers.iter().any(|(n, _)| *n == "Content-Type") {
        out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    out.into_bytes()
}

#[cfg(test)]
#[path = "metrics_http_tests.rs"]
mod tests;
