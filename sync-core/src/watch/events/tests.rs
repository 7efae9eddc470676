//! The watcher on real folders: what the kernel reports after real
//! changes reaches the channel, filtered, and a broken or dropped watch
//! says so. These wait on inotify (up to [`WAIT`] each); the translation
//! itself is tested without the kernel beside the handler.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::time::{Duration, Instant};

use crossbeam_channel as chan;

use super::*;

/// Longest any test waits for the kernel.
const WAIT: Duration = Duration::from_secs(5);

fn p(s: &str) -> RelPath {
    RelPath::new(s.as_bytes().to_vec()).unwrap()
}

/// Receives events until every path in `want` has been named, failing
/// after [`WAIT`]; returns every path named on the way, in order.
fn wait_for(rx: &chan::Receiver<Event>, want: &[&str]) -> Vec<RelPath> {
    let deadline = Instant::now() + WAIT;
    let mut missing: HashSet<RelPath> = want.iter().map(|s| p(s)).collect();
    let mut seen = Vec::new();
    while !missing.is_empty() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Event::Paths(paths)) => {
                for path in paths {
                    missing.remove(&path);
                    seen.push(path);
                }
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => panic!("no event for {missing:?} within {WAIT:?}; saw {seen:?}"),
        }
    }
    seen
}

/// Discards what is queued and what arrives within 100 ms of it.
fn drain(rx: &chan::Receiver<Event>) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline && rx.recv_timeout(Duration::from_millis(100)).is_ok() {}
}

#[test]
fn create_modify_and_delete_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_watcher, rx) = Watcher::start(dir.path(), Ignore::default()).unwrap();
    let file = dir.path().join("a");
    fs::write(&file, b"1").unwrap();
    wait_for(&rx, &["a"]);
    drain(&rx);
    let mut f = fs::OpenOptions::new().append(true).open(&file).unwrap();
    io::Write::write_all(&mut f, b"2").unwrap();
    drop(f);
    wait_for(&rx, &["a"]);
    drain(&rx);
    fs::remove_file(&file).unwrap();
    wait_for(&rx, &["a"]);
}

#[test]
fn a_rename_names_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("old"), b"x").unwrap();
    let (_watcher, rx) = Watcher::start(dir.path(), Ignore::default()).unwrap();
    fs::rename(dir.path().join("old"), dir.path().join("new")).unwrap();
    wait_for(&rx, &["old", "new"]);
}

#[test]
fn a_new_subfolder_is_named_and_then_watched() {
    let dir = tempfile::tempdir().unwrap();
    let (_watcher, rx) = Watcher::start(dir.path(), Ignore::default()).unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    wait_for(&rx, &["sub"]);
    // notify adds the new folder's watch after reporting it; write until
    // a write inside it is seen, which proves the watch is in place.
    let file = dir.path().join("sub/f");
    let deadline = Instant::now() + WAIT;
    loop {
        fs::write(&file, b"x").unwrap();
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Event::Paths(paths)) if paths.contains(&p("sub/f")) => break,
            Ok(Event::Paths(_)) | Err(_) => {}
            Ok(other) => panic!("unexpected {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "no event for sub/f within {WAIT:?}"
        );
    }
}

#[test]
fn sluice_files_and_ignored_paths_are_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    fs::create_dir_all(real.join("dest")).unwrap();
    // The root and the ignored paths are given through a symlink; the
    // kernel reports the resolved paths.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let ignore = Ignore {
        paths: vec![link.join("index.db"), link.join("index.db-wal")],
        under: vec![link.join("dest")],
    };
    let (watcher, rx) = Watcher::start(&link, ignore).unwrap();
    assert_eq!(watcher.root(), fs::canonicalize(&real).unwrap());
    for name in [".sluice-tmp.a.1", "index.db", "index.db-wal", "dest/f"] {
        fs::write(real.join(name), b"x").unwrap();
    }
    fs::create_dir(real.join(".sluice-tmp.d")).unwrap();
    fs::create_dir(real.join("dest/sub")).unwrap();
    fs::write(real.join("marker"), b"x").unwrap();
    // Events arrive in order, so all of the above came before the marker.
    let seen = wait_for(&rx, &["marker"]);
    assert!(seen.iter().all(|path| *path == p("marker")), "{seen:?}");
}

#[test]
fn removing_the_root_is_trouble() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    fs::create_dir(&root).unwrap();
    let (_watcher, rx) = Watcher::start(&root, Ignore::default()).unwrap();
    fs::remove_dir(&root).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Event::Trouble(t)) => {
                assert!(t.contains("removed"), "{t}");
                break;
            }
            Ok(_) => {}
            Err(_) => panic!("no trouble within {WAIT:?}"),
        }
    }
}

#[test]
fn dropping_the_watcher_disconnects_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let (watcher, rx) = Watcher::start(dir.path(), Ignore::default()).unwrap();
    drop(watcher);
    let deadline = Instant::now() + WAIT;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Err(chan::RecvTimeoutError::Disconnected) => break,
            Err(chan::RecvTimeoutError::Timeout) => panic!("still connected after {WAIT:?}"),
            Ok(_) => {}
        }
    }
}

#[test]
fn a_missing_root_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = Watcher::start(&missing, Ignore::default()).unwrap_err();
    assert!(
        err.to_string().contains(&*missing.to_string_lossy()),
        "{err}"
    );
}

#[test]
fn an_ignored_folder_holding_the_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    fs::create_dir(&root).unwrap();
    let ignore = Ignore {
        paths: Vec::new(),
        under: vec![dir.path().to_path_buf()],
    };
    let err = Watcher::start(&root, ignore).unwrap_err();
    assert!(err.to_string().contains("lies inside"), "{err}");
}
