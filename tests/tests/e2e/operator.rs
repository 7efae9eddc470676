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
