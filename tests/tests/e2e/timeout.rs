//! `--timeout`: a silent remote end ends the run with exit 30; a busy one
//! (keepalives, no data) does not.

use std::time::{Duration, Instant};

use crate::util::{assert_same_tree, local_rsh, sluice_bin, write, Dir};

fn push(d: &Dir, env: &str, timeout: &str) -> (i32, String, Duration) {
    let (src, dst) = (d.path("src"), d.path("dst"));
    let target = format!("host:{}", dst.display());
    let rsh = local_rsh(d, env);
    let remote = sluice_bin().display().to_string();
    let started = Instant::now();
    let out = d.sluice(&[
        "sync".as_ref(),
        "-q".as_ref(),
        "--timeout".as_ref(),
        timeout.as_ref(),
        "--rsh".as_ref(),
        rsh.as_ref(),
        "--remote-sluice".as_ref(),
        remote.as_ref(),
        src.as_os_str(),
        target.as_ref(),
    ]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn a_busy_remote_keeps_the_run_alive_past_the_timeout() {
    let d = Dir::new();
    write(&d.path("src/a"), b"a");
    // The remote receiver pauses 2.5 s with its keepalives running: a
    // 1 s timeout must not fire.
    let (code, stderr, took) = push(&d, "SLUICE_TEST_STALL=busy:2500", "1");
    assert_eq!(code, 0, "{stderr}");
    assert!(took >= Duration::from_millis(2500), "{took:?}");
    assert_same_tree(&d.path("src"), &d.path("dst"));
}

#[test]
fn a_silent_remote_ends_the_run_with_30() {
    let d = Dir::new();
    write(&d.path("src/a"), b"a");
    // The same pause before its keepalives start: silence.
    let (code, stderr, took) = push(&d, "SLUICE_TEST_STALL=silent:20000", "1");
    assert_eq!(code, 30, "{stderr}");
    assert!(stderr.contains("--timeout"), "{stderr}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(!d.path("dst/a").exists());
}

#[test]
fn a_timeout_of_zero_is_refused() {
    let d = Dir::new();
    write(&d.path("src/a"), b"a");
    let (code, stderr, _) = push(&d, "X=1", "0");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("'0' for '--timeout"), "{stderr}");
}
