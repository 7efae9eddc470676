//! What an operator meets: two runs on one destination, exit codes.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::util::*;
use crate::watch::{Watching, SHOW_UP};

/// `sluice sync EXTRA... SRC DST`: exit code and stderr.
fn sync(d: &Dir, src: &std::path::Path, dst: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let mut args: Vec<&std::ffi::OsStr> = vec!["sync".as_ref(), "-q".as_ref()];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    args.extend([src.as_os_str(), dst.as_os_str()]);
    let out = d.sluice(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A second run to a destination that a watch is writing to exits 40 at
/// once, naming the watch; with --wait-lock it waits, then gets the lock
/// once the watch ends.
#[test]
fn two_runs_to_one_destination_never_overlap() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("a"), b"a");
    let mut w = Watching::start(&d, &[], &src, dst.to_str().unwrap());
    w.round(SHOW_UP);
    let (code, stderr) = sync(&d, &src, &dst, &[]);
    assert_eq!(code, 40, "{stderr}");
    assert!(
        stderr.contains("another sluice run is writing to this destination")
            && stderr.contains("pid "),
        "{stderr}"
    );
    // A dry run changes nothing and needs no lock.
    let (code, stderr) = sync(&d, &src, &dst, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");

    let t0 = Instant::now();
    let (code, _) = sync(&d, &src, &dst, &["--wait-lock", "1"]);
    assert_eq!(code, 40);
    assert!(t0.elapsed() >= Duration::from_secs(1));

    let waiting = {
        let (src, dst) = (src.clone(), dst.clone());
        let state = d.path("state");
        std::thread::spawn(move || {
            std::process::Command::new(sluice_bin())
                .args(["sync", "--wait-lock", "30"])
                .arg(&src)
                .arg(&dst)
                .env("XDG_STATE_HOME", state)
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(w.stop(libc::SIGTERM), Some(0));
    let out = waiting.join().unwrap();
    assert_exit(&out, 0);
}

/// A lock left by a process that died is no lock: the kernel dropped it.
#[test]
fn a_dead_holders_lock_is_taken_over() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("a"), b"a");
    let index = d.path("dst.db");
    let lock = d.path("dst.db.lock");
    std::fs::write(&lock, "999999 0 gone-host\n").unwrap();
    let index_arg = index.to_str().unwrap();
    let (code, stderr) = sync(&d, &src, &dst, &["--dst-index", index_arg]);
    assert_eq!(code, 0, "{stderr}");

    // Held by a live process (this test): refused, then free again.
    let f = std::fs::File::open(&lock).unwrap();
    // SAFETY: flock(2) on a descriptor this test owns and keeps open.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    let (code, stderr) = sync(&d, &src, &dst, &["--dst-index", index_arg]);
    assert_eq!(code, 40, "{stderr}");
    drop(f);
    let (code, stderr) = sync(&d, &src, &dst, &["--dst-index", index_arg]);
    assert_eq!(code, 0, "{stderr}");
}

/// A stand-in for the remote end: an `--rsh` script that ignores its
/// arguments, writes `reply` (printf format) to the client, then runs
/// `then` (e.g. reads what the client sends, so that its writes never
/// meet a closed pipe first).
fn fake_remote(d: &Dir, name: &str, reply: &str, then: &str) -> String {
    let script = d.path(name);
    std::fs::write(&script, format!("#!/bin/sh\nprintf '{reply}'\n{then}\n")).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script.display().to_string()
}

/// The exit codes not provoked elsewhere (23, 24 and 40 are in this
/// file's and index.rs's tests, 11 in safety.rs, 25 in sync.rs, 41 and 42 in
/// daemon.rs, 43 in index.rs).
#[test]
fn each_failure_has_its_exit_code() {
    let d = Dir::new();
    let src = d.path("src");
    write(&src.join("a"), b"a");
    let dst = d.path("dst");

    // 1: a bad command line (rsync's syntax error, not clap's 2).
    let (code, stderr) = sync(&d, &src, &dst, &["--no-such-flag"]);
    assert_eq!(code, 1, "{stderr}");
    // 3: a source that is not there.
    let (code, stderr) = sync(&d, &d.path("missing"), &dst, &[]);
    assert_eq!(code, 3, "{stderr}");
    // 5: the remote end cannot be started.
    let (code, stderr) = sync(&d, &src, "host:dst".as_ref(), &["--rsh", "/bin/false"]);
    assert_eq!(code, 5, "{stderr}");
    // 10: the remote end answers, then the connection is gone.
    let gone = fake_remote(&d, "gone.sh", "\\000sluice-serve-1\\n", "exit 0");
    let (code, stderr) = sync(&d, &src, "host:dst".as_ref(), &["--rsh", &gone]);
    assert_eq!(code, 10, "{stderr}");
    // 12: the remote end answers, then sends a frame no sluice would.
    let garbage = fake_remote(
        &d,
        "garbage.sh",
        "\\000sluice-serve-1\\n\\377\\377\\377\\377xxxx",
        "exec cat >/dev/null",
    );
    let (code, stderr) = sync(&d, &src, "host:dst".as_ref(), &["--rsh", &garbage]);
    assert_eq!(code, 12, "{stderr}");
    assert!(!dst.exists());
}

/// Issue 24's exit 24 (rsync's "partial transfer due to vanished source
/// files"): a source file that vanishes after the scan listed it (the test
/// hook SLUICE_TEST_VANISH deletes it then, before its chunks are read) is
/// counted, named in a warning and not synced, the rest is, and the run
/// exits 24. With another problem in the same run, 23 wins, as in rsync.
#[test]
fn a_source_file_that_vanishes_mid_run_exits_24() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("stays"), &noise(1, 300_000));
    write(&src.join("gone"), &noise(2, 300_000));
    let vanish = [("SLUICE_TEST_VANISH", "gone")];
    let (code, report, stderr) = d.sync_env(src.as_os_str(), dst.as_os_str(), &[], &vanish);
    assert_eq!(code, 24, "{stderr}");
    assert_eq!(report["exit_code"], 24, "{report}");
    assert_eq!(report["vanished"], 1, "{report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert!(
        stderr.contains("warning: gone: vanished from the source"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(dst.join("stays")).unwrap(), noise(1, 300_000));
    assert!(!dst.join("gone").exists());

    // A file where the destination has a non-empty folder (no --delete):
    // a partial run whatever vanished.
    write(&src.join("gone"), &noise(3, 300_000));
    write(&src.join("blocked"), b"a file");
    write(&dst.join("blocked/inside"), b"a folder in the way");
    let (code, report, stderr) = d.sync_env(src.as_os_str(), dst.as_os_str(), &[], &vanish);
    assert_eq!(code, 23, "{stderr}");
    assert_eq!(report["vanished"], 1, "{report}");
    assert!(!dst.join("gone").exists());
}

/// SIGTERM in the middle of a sync: exit 20, and nothing half-written is
/// visible at the destination (only whole files and hidden temporaries).
#[test]
fn a_stopped_sync_exits_20_and_leaves_only_whole_files() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    for i in 0..8 {
        write(&src.join(format!("f{i}")), &noise(i, 1 << 20));
    }
    // Slow enough to be caught in the middle: 8 MiB at 8 Mbit/s.
    let mut child = std::process::Command::new(sluice_bin())
        .args([
            "sync",
            "-q",
            "--transport",
            "udp",
            "--rate",
            "8M",
            "--policy",
            "fixed",
        ])
        .arg(&src)
        .arg(&dst)
        .env("XDG_STATE_HOME", d.path("state"))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    // SAFETY: kill(2) on the pid of a child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(20));
    let mut whole = 0;
    for e in std::fs::read_dir(&dst).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.starts_with(".sluice-tmp.") {
            continue;
        }
        let i: u64 = name[1..].parse().unwrap();
        assert_eq!(
            std::fs::read(dst.join(&name)).unwrap(),
            noise(i, 1 << 20),
            "{name}"
        );
        whole += 1;
    }
    assert!(whole < 8, "the sync was not stopped in the middle");
    // The next run finishes the job.
    let (code, stderr) = sync(&d, &src, &dst, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_same_tree(&src, &dst);
}

/// A fake daemon on 127.0.0.1 that does `behave` with the one connection
/// it takes; then `sluice sync EXTRA... SRC sluice://...` to it with real
/// client and server keys. Returns the exit code, stderr and the run's
/// wall time.
fn sync_to_fake_daemon(
    behave: impl FnOnce(std::net::TcpStream) + Send + 'static,
    extra: &[&str],
) -> (Option<i32>, String, Duration) {
    let d = Dir::new();
    let src = d.path("src");
    write(&src.join("a"), b"a");
    let keygen = |name: &str| {
        let out = d.sluice(&[
            "keygen".as_ref(),
            "--out".as_ref(),
            d.path(name).as_os_str(),
        ]);
        assert_exit(&out, 0);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    keygen("client");
    let server_pub = keygen("server");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        behave(s);
    });
    let key = d.path("client");
    let url = format!("sluice://127.0.0.1:{port}/rw");
    let mut args: Vec<&std::ffi::OsStr> = vec!["sync".as_ref()];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    args.extend([
        "--key".as_ref(),
        key.as_os_str(),
        "--server-key".as_ref(),
        server_pub.as_ref(),
        src.as_os_str(),
        url.as_ref(),
    ]);
    let t0 = Instant::now();
    let out = d.sluice(&args);
    let took = t0.elapsed();
    server.join().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        took,
    )
}

/// 41: a daemon of another protocol version (a fake one that only says
/// its preamble).
#[test]
fn an_incompatible_daemon_exits_41() {
    use std::io::{Read, Write};
    let (code, stderr, _) = sync_to_fake_daemon(
        |mut s| {
            s.write_all(&crate::util::future_preamble()).unwrap();
            let _ = s.read(&mut [0u8; 512]);
        },
        &[],
    );
    assert_eq!(code, Some(41), "{stderr}");
    assert!(stderr.contains("99.0"), "{stderr}");
}

/// 35: a daemon that takes the connection but never completes the
/// handshake, with --contimeout 1.
#[test]
fn a_silent_daemon_exits_35_after_contimeout() {
    let (code, stderr, took) = sync_to_fake_daemon(
        |s| {
            // Holds the connection, says nothing, until the client gives up.
            let _ = std::io::Read::read(&mut &s, &mut [0u8; 64]);
        },
        &["--contimeout", "1"],
    );
    assert_eq!(code, Some(35), "{stderr}");
    assert!(took < Duration::from_secs(8), "{took:?}");
}

/// --log-file appends the log with times; an unwritable one is a usage
/// error before anything runs, as is a --contimeout of 0.
#[test]
fn the_log_goes_to_a_file_too() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("a"), b"a");
    let log = d.path("sluice.log");
    let out = d.sluice(&[
        "sync".as_ref(),
        "-vv".as_ref(),
        "--log-file".as_ref(),
        log.as_os_str(),
        src.as_os_str(),
        dst.as_os_str(),
    ]);
    assert_exit(&out, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    let first = text.lines().next().unwrap_or("");
    assert!(
        first.starts_with("20") && first.contains("Z DEBUG"),
        "{text}"
    );
    let (code, stderr) = sync(&d, &src, &dst, &["--log-file", "/nonexistent/dir/x.log"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--log-file"), "{stderr}");
    let (code, stderr) = sync(&d, &src, &dst, &["--contimeout", "0"]);
    assert_eq!(code, 1, "{stderr}");
}
