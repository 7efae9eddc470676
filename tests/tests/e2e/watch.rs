//! `sluice watch` with a real watcher on real folders: every change must
//! reach the mirror within a bounded time, and nothing else may.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::util::*;

/// How long any one change may take to show up at the mirror in a test
/// (the benchmark holds the real figures; this only bounds a failure).
pub const SHOW_UP: Duration = Duration::from_secs(15);

/// Held (shared) by a watch from its start to its first round, when its
/// inotify queue exists; held alone by the test that shrinks the queue
/// size every new inotify instance gets.
static QUEUE_SIZE: RwLock<()> = RwLock::new(());

/// A running `sluice watch --json`, its rounds read from stdout.
pub struct Watching {
    child: Child,
    rounds: Receiver<serde_json::Value>,
    stderr: Receiver<String>,
    /// Until the first round: see [`QUEUE_SIZE`].
    starting: Option<RwLockReadGuard<'static, ()>>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watching {
    pub fn start(d: &Dir, args: &[&str], src: &Path, dst: &str) -> Watching {
        let starting = QUEUE_SIZE.read().unwrap_or_else(|e| e.into_inner());
        Watching::start_with(d, args, src, dst, Some(starting))
    }

    fn start_with(
        d: &Dir,
        args: &[&str],
        src: &Path,
        dst: &str,
        starting: Option<RwLockReadGuard<'static, ()>>,
    ) -> Watching {
        let mut argv: Vec<&std::ffi::OsStr> = vec!["watch".as_ref(), "--json".as_ref()];
        argv.extend(args.iter().map(std::ffi::OsStr::new));
        argv.extend([src.as_os_str(), dst.as_ref()]);
        Watching::start_argv(d, &argv, starting)
    }

    /// `sluice ARGV...` (a watch, however it is named).
    fn start_argv(
        d: &Dir,
        argv: &[&std::ffi::OsStr],
        starting: Option<RwLockReadGuard<'static, ()>>,
    ) -> Watching {
        let mut child = Command::new(sluice_bin())
            .args(argv)
            .env("XDG_STATE_HOME", d.path("state"))
            .env_remove("SLUICE_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sluice watch");
        let (tx, rounds) = crossbeam_channel::unbounded();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let (etx, stderr) = crossbeam_channel::unbounded();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if etx.send(line).is_err() {
                    return;
                }
            }
        });
        Watching {
            child,
            rounds,
            stderr,
            starting,
        }
    }

    /// The next round's report.
    pub fn round(&mut self, within: Duration) -> serde_json::Value {
        match self.rounds.recv_timeout(within) {
            Ok(v) => {
                self.starting = None;
                v
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "no round within {within:?}; stderr: {}",
                    self.stderr_so_far()
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("watch ended; stderr: {}", self.stderr_so_far())
            }
        }
    }

    /// The rounds reported so far (without waiting).
    pub fn rounds_so_far(&self) -> Vec<serde_json::Value> {
        self.rounds.try_iter().collect()
    }

    pub fn stderr_so_far(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// Waits until `dst` equals `src` (type, content, mode, mtime, symlink
    /// target); returns the rounds seen meanwhile.
    pub fn until_same(&self, src: &Path, dst: &Path) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + SHOW_UP;
        let mut seen = Vec::new();
        loop {
            seen.extend(self.rounds.try_iter());
            let (a, b) = (try_snapshot(src), try_snapshot(dst));
            if a.is_ok() && a.ok() == b.ok() {
                // Let a round that is still finishing report.
                std::thread::sleep(Duration::from_millis(50));
                seen.extend(self.rounds.try_iter());
                return seen;
            }
            if Instant::now() > deadline {
                assert_same_tree(src, dst);
                panic!("trees differ");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: i32) {
        unsafe {
            // SAFETY: kill(2) on the pid of a child this test started.
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Sends `signal` and waits for the exit code.
    pub fn stop(mut self, signal: i32) -> Option<i32> {
        self.signal(signal);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("watch did not stop within 10 s of signal {signal}");
    }
}

fn sum(rounds: &[serde_json::Value], key: &str) -> u64 {
    rounds.iter().map(|r| n(r, key)).sum()
}

#[test]
fn changes_of_every_kind_reach_the_mirror() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("a.txt"), b"first");
    write(&src.join("sub/b.txt"), b"second");
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    let mut w = Watching::start(&d, &["--delete"], &src, dst.to_str().unwrap());
    let first = w.round(SHOW_UP);
    assert_eq!(first["full"], true, "{first}");
    w.until_same(&src, &dst);

    type Step<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let steps: Vec<Step> = vec![
        ("create", Box::new(|| write(&src.join("new.txt"), b"new"))),
        ("modify", Box::new(|| write(&src.join("a.txt"), b"changed"))),
        (
            "append",
            Box::new(|| {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(src.join("sub/b.txt"))
                    .unwrap();
                f.write_all(b" and more").unwrap();
            }),
        ),
        (
            "chmod",
            Box::new(|| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(
                    src.join("new.txt"),
                    std::fs::Permissions::from_mode(0o600),
                )
                .unwrap()
            }),
        ),
        (
            "mtime only",
            Box::new(|| set_mtime(&src.join("a.txt"), 1_000_000_000_123)),
        ),
        (
            "symlink retargeted",
            Box::new(|| {
                std::fs::remove_file(src.join("link")).unwrap();
                std::os::unix::fs::symlink("sub/b.txt", src.join("link")).unwrap();
            }),
        ),
        (
            "rename",
            Box::new(|| std::fs::rename(src.join("new.txt"), src.join("sub/moved.txt")).unwrap()),
        ),
        (
            "delete",
            Box::new(|| std::fs::remove_file(src.join("a.txt")).unwrap()),
        ),
        (
            "new folder with files",
            Box::new(|| {
                write(&src.join("deep/er/x"), b"x");
                write(&src.join("deep/y"), b"y");
            }),
        ),
        (
            "folder replaced by a file",
            Box::new(|| {
                std::fs::remove_dir_all(src.join("deep")).unwrap();
                write(&src.join("deep"), b"now a file");
            }),
        ),
        (
            "folder renamed",
            Box::new(|| std::fs::rename(src.join("sub"), src.join("sub2")).unwrap()),
        ),
    ];
    for (what, step) in steps {
        step();
        let rounds = w.until_same(&src, &dst);
        for r in &rounds {
            assert_eq!(r["errors"], serde_json::json!([]), "{what}: {r}");
        }
    }
    // Every round after the first looked at the paths named, not the tree.
    let later = w.rounds_so_far();
    assert!(later.iter().all(|r| r["full"] == false), "{later:?}");
}

#[test]
fn a_renamed_folder_of_large_files_ships_nothing() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    for i in 0..3 {
        write(&src.join(format!("big/{i}.bin")), &noise(i, 3 << 20));
    }
    let mut w = Watching::start(&d, &["--delete"], &src, dst.to_str().unwrap());
    w.round(SHOW_UP);
    w.until_same(&src, &dst);
    std::fs::rename(src.join("big"), src.join("moved")).unwrap();
    let rounds = w.until_same(&src, &dst);
    assert!(!rounds.is_empty());
    assert_eq!(sum(&rounds, "chunk_bytes_sent"), 0, "{rounds:?}");
}

#[test]
fn a_burst_of_files_becomes_a_few_rounds() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    std::fs::create_dir_all(&src).unwrap();
    let mut w = Watching::start(&d, &[], &src, dst.to_str().unwrap());
    w.round(SHOW_UP);
    for i in 0..10_000 {
        write(
            &src.join(format!("burst/{:02}/{i}", i % 50)),
            format!("file {i}").as_bytes(),
        );
    }
    let rounds = w.until_same(&src, &dst);
    assert!(rounds.len() < 200, "{} rounds", rounds.len());
    assert_eq!(
        sum(&rounds, "files_created"),
        10_000,
        "each file created once"
    );
}

#[test]
fn a_file_rewritten_continuously_ends_identical() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("log"), b"start");
    let mut w = Watching::start(&d, &[], &src, dst.to_str().unwrap());
    w.round(SHOW_UP);
    let until = Instant::now() + Duration::from_secs(2);
    let mut i = 0u64;
    while Instant::now() < until {
        write(&src.join("log"), &noise(i, 200_000));
        i += 1;
    }
    w.until_same(&src, &dst);
    assert!(i > 10);
}

#[test]
fn a_vanished_source_deletes_nothing_and_the_watch_waits() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("keep/a"), b"a");
    write(&src.join("b"), b"b");
    let mut w = Watching::start(&d, &["--delete"], &src, dst.to_str().unwrap());
    w.round(SHOW_UP);
    w.until_same(&src, &dst);
    let before = snapshot(&dst);
    // The unmounted-disk accident: the source goes away.
    std::fs::rename(&src, d.path("elsewhere")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(snapshot(&dst), before, "nothing deleted at the mirror");
    // Emptied in place, with --delete: nothing deleted either.
    std::fs::create_dir(&src).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(snapshot(&dst), before, "nothing deleted at the mirror");
    let said = w.stderr_so_far();
    assert!(said.contains("nothing is"), "{said}");
    assert_eq!(w.stop(libc::SIGTERM), Some(0));
}

#[test]
fn sigterm_and_sigint_end_a_watch_with_exit_0() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let d = Dir::new();
        let (src, dst) = (d.path("src"), d.path("dst"));
        write(&src.join("a"), b"a");
        let mut w = Watching::start(&d, &[], &src, dst.to_str().unwrap());
        w.round(SHOW_UP);
        assert_eq!(w.stop(signal), Some(0));
        assert_same_tree(&src, &dst);
    }
}

#[test]
fn sighup_syncs_in_full() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("a"), b"a");
    let mut w = Watching::start(&d, &[], &src, dst.to_str().unwrap());
    w.round(SHOW_UP);
    w.signal(libc::SIGHUP);
    let r = w.round(SHOW_UP);
    assert_eq!(r["full"], true, "{r}");
    assert_eq!(r["reason"], "SIGHUP", "{r}");
}

#[test]
fn the_destination_inside_the_source_is_refused() {
    let d = Dir::new();
    let src = d.path("src");
    write(&src.join("a"), b"a");
    let out = d.sluice(&[
        "watch".as_ref(),
        src.as_os_str(),
        src.join("mirror").as_os_str(),
    ]);
    assert_exit(&out, 3);
}

/// When the kernel drops change notices (its inotify queue overflowed),
/// the next round is a full sync, and nothing is missed.
#[test]
fn an_event_queue_overflow_brings_a_full_sync() {
    let knob = Path::new("/proc/sys/fs/inotify/max_queued_events");
    let Ok(was) = std::fs::read_to_string(knob) else {
        return unavailable(&format!("cannot read {}", knob.display()));
    };
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("a"), b"a");
    // Every inotify instance made while the knob is low gets a short queue:
    // no other watch may start meanwhile.
    let alone = QUEUE_SIZE.write().unwrap_or_else(|e| e.into_inner());
    if std::fs::write(knob, "16").is_err() {
        drop(alone);
        return unavailable(&format!("cannot set {} (not root?)", knob.display()));
    }
    let mut w = Watching::start_with(&d, &[], &src, dst.to_str().unwrap(), None);
    w.round(SHOW_UP);
    std::fs::write(knob, was.trim()).unwrap();
    drop(alone);
    for i in 0..2_000 {
        write(&src.join(format!("many/{i}")), b"x");
    }
    let rounds = w.until_same(&src, &dst);
    let full: Vec<_> = rounds.iter().filter(|r| r["full"] == true).collect();
    assert!(
        full.iter()
            .any(|r| r["reason"].as_str().is_some_and(|t| t.contains("overflow"))),
        "{rounds:?}"
    );
}

/// Started from a job, a watch reads the job's configuration again on
/// SIGHUP: an exclude added to the file takes effect.
#[test]
fn sighup_reads_the_jobs_configuration_again() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("a"), b"a");
    let config = d.path("config.toml");
    let job = |extra: &str| {
        format!(
            "[job.mirror]\nsrc = \"{}\"\ndst = \"{}\"\n{extra}",
            src.display(),
            dst.display()
        )
    };
    std::fs::write(&config, job("")).unwrap();
    let starting = QUEUE_SIZE.read().unwrap_or_else(|e| e.into_inner());
    let argv: Vec<&std::ffi::OsStr> = vec![
        "--config".as_ref(),
        config.as_os_str(),
        "watch".as_ref(),
        "--json".as_ref(),
        "--job".as_ref(),
        "mirror".as_ref(),
    ];
    let mut w = Watching::start_argv(&d, &argv, Some(starting));
    w.round(SHOW_UP);
    w.until_same(&src, &dst);
    std::fs::write(&config, job("exclude = [\"*.skip\"]\n")).unwrap();
    w.signal(libc::SIGHUP);
    // The restarted watch begins with a full sync.
    let r = w.round(SHOW_UP);
    assert_eq!(r["full"], true, "{r}");
    write(&src.join("b.keep"), b"b");
    write(&src.join("c.skip"), b"c");
    let deadline = Instant::now() + SHOW_UP;
    while !dst.join("b.keep").exists() {
        assert!(Instant::now() < deadline, "{}", w.stderr_so_far());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!dst.join("c.skip").exists(), "the new exclude is in force");
    let said = w.stderr_so_far();
    assert!(
        said.contains("reading the job's configuration again"),
        "{said}"
    );
}
