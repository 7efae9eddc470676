use std::io::{Read, Write};
use std::net::TcpStream;

use sync_core::metrics::Kind;

use super::*;

fn text(head: &str) -> String {
    String::from_utf8(respond(head.as_bytes(), || "sluice_runs_total 3\n".into())).unwrap()
}

fn status(answer: &str) -> &str {
    answer.lines().next().unwrap()
}

#[test]
fn get_metrics_answers_the_figures() {
    let a = text("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
    assert_eq!(status(&a), "HTTP/1.1 200 OK");
    assert!(
        a.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{a}"
    );
    assert!(a.contains("\r\nContent-Length: 20\r\n"), "{a}");
    assert!(a.ends_with("\r\n\r\nsluice_runs_total 3\n"), "{a}");
    // A query string is no other path; HTTP/1.0 is answered too.
    let a = text("GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert_eq!(status(&a), "HTTP/1.1 200 OK");
}

#[test]
fn head_has_the_headers_only() {
    let a = text("HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status(&a), "HTTP/1.1 200 OK");
    assert!(a.contains("Content-Length: 20\r\n"), "{a}");
    assert!(a.ends_with("Connection: close\r\n\r\n"), "{a}");
}

#[test]
fn other_paths_methods_and_garbage_are_refused() {
    assert_eq!(
        status(&text("GET / HTTP/1.1\r\n\r\n")),
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        status(&text("GET /metricsx HTTP/1.1\r\n\r\n")),
        "HTTP/1.1 404 Not Found"
    );
    let a = text("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status(&a), "HTTP/1.1 405 Method Not Allowed");
    assert!(a.contains("\r\nAllow: GET, HEAD\r\n"), "{a}");
    for bad in [
        "",
        "\r\n\r\n",
        "GET /metrics\r\n\r\n",
        "GET /metrics SMTP/1\r\n\r\n",
    ] {
        assert_eq!(status(&text(bad)), "HTTP/1.1 400 Bad Request", "{bad:?}");
    }
    let long = format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
    assert_eq!(
        status(&text(&long)),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

#[test]
fn a_public_address_needs_the_flag() {
    let m = Arc::new(Metrics::new(Kind::Watch));
    let err = start("0.0.0.0:0".parse().unwrap(), false, Arc::clone(&m)).unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("not a loopback address") && err.contains("--metrics-public"),
        "{err}"
    );
    let err = start("192.0.2.1:9100".parse().unwrap(), false, m).unwrap_err();
    assert!(err.to_string().contains("--metrics-public"), "{err}");
}

/// The thread on a real loopback socket: two scrapes in a row.
#[test]
fn serves_scrapes_on_loopback() {
    let m = Arc::new(Metrics::new(Kind::Daemon));
    let addr = start("127.0.0.1:0".parse().unwrap(), false, Arc::clone(&m)).unwrap();
    for runs in [0, 1] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        assert_eq!(status(&got), "HTTP/1.1 200 OK");
        assert!(
            got.contains(&format!("\nsluice_runs_total {runs}\n")),
            "{got}"
        );
        m.run_failed();
    }
}
