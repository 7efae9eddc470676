//! The notify driver: turns the kernel's change notices for a source tree
//! into [`Event`]s on a channel.
//!
//! It owns the inotify watch (through `notify`'s recommended watcher,
//! recursive on the root, symlinks not followed) and the translation of
//! notify's events into paths relative to the root. It never reads the
//! changed files, never decides when a round runs (that is the
//! [`Debouncer`](super::Debouncer)'s job) and never scans.
//!
//! Every kind of change (create, write, close after writing, attributes,
//! remove, either end of a rename) just names its paths: the round `lstat`s
//! them and finds out what happened. Opens and reads are dropped, or the
//! round reading the tree would wake the next round forever. A folder
//! created or moved in is named itself, and the round re-reads its whole
//! subtree, so files written before notify had added a watch on it are not
//! missed. Sluice's own files are filtered out: temporary files (names
//! starting with [`TEMP_PREFIX`]) and whatever [`Ignore`] lists, such as the
//! index and its journal files, or a destination inside the source.
//!
//! Nothing is lost silently. When the kernel's queue overflows, or ours
//! fills because the driver is busy, an [`Event::Rescan`] takes the place of
//! what was dropped; when the watch itself breaks (the kernel's limit on
//! watched folders, the root removed or moved away, a read error), an
//! [`Event::Trouble`] says so.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel as chan;
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{ErrorKind, EventKind, RecursiveMode, Watcher as _};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::path::RelPath;
use crate::scan::TEMP_PREFIX;

/// Events held for the driver before the rest are replaced by one rescan:
/// about 16,000 files' worth at four notices a file, under 10 MB; a driver
/// this far behind is better served by one rescan than by a backlog.
pub const EVENT_QUEUE: usize = 65_536;

/// The kernel's limit on watched folders, per user.
const MAX_USER_WATCHES: &str = "/proc/sys/fs/inotify/max_user_watches";

/// What the watcher reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// These paths (relative to the root; the root itself is
    /// [`RelPath::root`]) changed, or their folder did.
    Paths(Vec<RelPath>),
    /// Changes were lost or could not be mapped to paths: rescan the whole
    /// tree. The text says why.
    Rescan(String),
    /// The watch is no longer complete and changes may go unseen from now
    /// on: the driver should rescan now and then periodically. The text says
    /// what happened and how to fix it.
    Trouble(String),
}

/// Paths whose changes are sluice's own and must not wake a round.
#[derive(Clone, Debug, Default)]
pub struct Ignore {
    /// Single files: the index and its `-wal`, `-shm` and `-journal` files
    /// when they live inside the tree. They need not exist yet.
    pub paths: Vec<PathBuf>,
    /// Folders whose whole subtree is ignored, such as a destination inside
    /// the source.
    pub under: Vec<PathBuf>,
}

/// A running watch on a source tree; dropping it stops the watch, and the
/// event channel then disconnects.
#[derive(Debug)]
pub struct Watcher {
    root: PathBuf,
    _inner: notify::RecommendedWatcher,
}

impl Watcher {
    /// Starts watching `root` recursively and returns the watcher with the
    /// channel its events arrive on.
    ///
    /// Hitting the kernel's limit on watched folders does not fail the start:
    /// the folders watched so far keep reporting, and an [`Event::Trouble`]
    /// on the channel names the fix. Any other failure is an error that
    /// names the path.
    pub fn start(root: &Path, ignore: Ignore) -> Result<(Watcher, chan::Receiver<Event>)> {
        let canonical = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
        let filter = Filter::new(&canonical, &ignore)?;
        let (tx, rx) = chan::unbounded();
        let limit_reported = Arc::new(AtomicBool::new(false));
        let handler = Handler {
            root: canonical.clone(),
            filter,
            tx: tx.clone(),
            queue_limit: EVENT_QUEUE,
            dropping: false,
            limit_reported: limit_reported.clone(),
        };
        // Symlinks are mirrored as links, never followed: following them
        // could watch (and spend the watch limit on) trees outside the root.
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut inner = notify::RecommendedWatcher::new(handler, config)
            .map_err(|e| start_error(&canonical, e))?;
        match inner.watch(&canonical, RecursiveMode::Recursive) {
            Ok(()) => {}
            Err(e) if matches!(e.kind, ErrorKind::MaxFilesWatch) => {
                if !limit_reported.swap(true, Ordering::Relaxed) {
                    // The receiver is still ours, so this cannot fail.
                    let _ = tx.send(Event::Trouble(watch_limit_message(read_limit())));
                }
            }
            Err(e) => return Err(start_error(&canonical, e)),
        }
        let watcher = Watcher {
            root: canonical,
            _inner: inner,
        };
        Ok((watcher, rx))
    }

    /// The watched root, with symlinks resolved: event paths are relative
    /// to it.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Why `root` must be polled with periodic rescans, if its file system does
/// not report changes made by other machines (network and FUSE file systems
/// deliver inotify events only for changes made through this kernel), as a
/// clause for the caller to put after the path. `None` for local file
/// systems, and when `root` cannot be queried: starting the watch will
/// report that error.
pub fn needs_polling(root: &Path) -> Option<String> {
    let stat = rustix::fs::statfs(root).ok()?;
    // `f_type` is a C long holding a 32-bit magic number; where long is 32
    // bits, CIFS's 0xFF534D42 reads negative, so compare the low 32 bits.
    let name = remote_fs_name(stat.f_type as u32)?;
    Some(format!(
        "it is on {name}, which does not report changes made from other machines"
    ))
}

/// The name of a file system that does not report remote changes, by its
/// `statfs` magic number (linux/magic.h).
fn remote_fs_name(magic: u32) -> Option<&'static str> {
    Some(match magic {
        0x6969 => "NFS",
        0x517B => "SMB",
        0xFF53_4D42 => "CIFS",
        0xFE53_4D42 => "SMB2",
        0x6573_5546 => "a FUSE file system (such as sshfs)",
        0x0102_1997 => "9p",
        0x00C3_6400 => "Ceph",
        0x5346_414F => "AFS",
        0x7375_7245 => "Coda",
        _ => return None,
    })
}

/// The message for the kernel's watch limit, with the fix: twice the
/// `current` limit when it could be read.
fn watch_limit_message(current: Option<u64>) -> String {
    let value = match current {
        Some(n) => n.saturating_mul(2).to_string(),
        None => "<twice the current value>".to_string(),
    };
    format!(
        "the kernel's limit on watched folders (fs.inotify.max_user_watches) was hit, \
         so changes in some folders go unseen; watch falls back to periodic full rescans. \
         To watch every folder, raise the limit as root: \
         `sysctl fs.inotify.max_user_watches={value}` \
         (and set it in /etc/sysctl.d/ to keep it after a reboot)"
    )
}

/// The current watch limit, if readable.
fn read_limit() -> Option<u64> {
    std::fs::read_to_string(MAX_USER_WATCHES)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// An error from starting the watch, in the user's terms, naming the path.
fn start_error(root: &Path, err: notify::Error) -> Error {
    let path = err
        .paths
        .first()
        .cloned()
        .unwrap_or_else(|| root.to_path_buf());
    match err.kind {
        ErrorKind::Io(e) if Errno::from_io_error(&e) == Some(Errno::MFILE) => {
            Error::Usage(format!(
                "{}: {e}: too many open files or inotify instances; \
                 if other programs hold many, raise the limit as root: \
                 `sysctl fs.inotify.max_user_instances=<twice the current value>`",
                path.display()
            ))
        }
        ErrorKind::Io(e) => Error::io(path, e),
        ErrorKind::PathNotFound => Error::io(path, io::ErrorKind::NotFound.into()),
        ErrorKind::Generic(message) => Error::io(path, io::Error::other(message)),
        _ => Error::io(path, io::Error::other(err.to_string())),
    }
}

/// Maps absolute paths to relative ones and drops sluice's own files.
#[derive(Debug)]
struct Filter {
    root: PathBuf,
    paths: Vec<RelPath>,
    under: Vec<RelPath>,
}

impl Filter {
    /// `root` is canonical. Ignored paths outside it can never match and are
    /// dropped; an ignored folder holding the root would leave nothing to
    /// watch and is refused.
    fn new(root: &Path, ignore: &Ignore) -> Result<Filter> {
        let mut filter = Filter {
            root: root.to_path_buf(),
            paths: Vec::new(),
            under: Vec::new(),
        };
        for path in &ignore.paths {
            let found: Vec<RelPath> = spellings(path)
                .filter_map(|p| filter.relative(&p))
                .collect();
            filter.paths.extend(found);
        }
        for folder in &ignore.under {
            for spelling in spellings(folder) {
                if root.starts_with(&spelling) {
                    return Err(Error::Usage(format!(
                        "{} lies inside {}, which watch ignores",
                        root.display(),
                        folder.display()
                    )));
                }
                let found = filter.relative(&spelling);
                filter.under.extend(found);
            }
        }
        Ok(filter)
    }

    /// `path` relative to the root.
    fn relative(&self, path: &Path) -> Option<RelPath> {
        let rest = path.strip_prefix(&self.root).ok()?;
        RelPath::new(rest.as_os_str().as_bytes().to_vec()).ok()
    }

    /// `path` relative to the root, unless it is outside the root, cannot be
    /// stored, or is one of sluice's own files.
    fn keep(&self, path: &Path) -> Option<RelPath> {
        let rel = self.relative(path)?;
        let temp = rel
            .components()
            .any(|name| name.starts_with(TEMP_PREFIX.as_bytes()));
        let ignored = self.paths.contains(&rel) || self.under.iter().any(|u| rel.starts_with(u));
        (!temp && !ignored).then_some(rel)
    }
}

/// The ways the kernel may spell `path` in an event: as given (made
/// absolute) and with symlinks resolved. A file that does not exist yet
/// (an index's `-wal` comes and goes) is resolved through its folder.
fn spellings(path: &Path) -> impl Iterator<Item = PathBuf> {
    let given = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let resolved = std::fs::canonicalize(&given).ok().or_else(|| {
        let folder = std::fs::canonicalize(given.parent()?).ok()?;
        Some(folder.join(given.file_name()?))
    });
    let differs = resolved.as_ref() != Some(&given);
    std::iter::once(given).chain(resolved.filter(|_| differs))
}

/// Receives notify's events on its thread and forwards them as [`Event`]s.
struct Handler {
    root: PathBuf,
    filter: Filter,
    tx: chan::Sender<Event>,
    /// Events queued beyond which the rest become one rescan.
    queue_limit: usize,
    /// True while events are being replaced by the rescan already queued.
    dropping: bool,
    /// Set once the watch limit has been reported, so it is said once.
    limit_reported: Arc<AtomicBool>,
}

impl notify::EventHandler for Handler {
    fn handle_event(&mut self, event: notify::Result<notify::Event>) {
        let event = match event {
            Ok(event) => self.translate(event),
            Err(err) if matches!(err.kind, ErrorKind::MaxFilesWatch) => {
                if self.limit_reported.swap(true, Ordering::Relaxed) {
                    None
                } else {
                    Some(Event::Trouble(watch_limit_message(read_limit())))
                }
            }
            Err(err) => Some(Event::Trouble(format!(
                "watching {}: {err}; changes may go unseen, so watch falls back \
                 to periodic full rescans",
                self.root.display()
            ))),
        };
        if let Some(event) = event {
            self.send(event);
        }
    }
}

impl Handler {
    /// The event for one notify event; `None` if nothing of interest changed.
    fn translate(&self, event: notify::Event) -> Option<Event> {
        if event.need_rescan() {
            return Some(Event::Rescan(
                "the kernel dropped change notices (inotify queue overflow; \
                 raising fs.inotify.max_queued_events makes it rarer)"
                    .to_string(),
            ));
        }
        match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
            EventKind::Access(_) => return None,
            _ => {}
        }
        let root_gone = matches!(
            event.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From))
        ) && event
            .paths
            .iter()
            .any(|p| self.filter.relative(p).is_some_and(|rel| rel.is_root()));
        if root_gone {
            // The kernel drops a watch whose folder is gone: nothing more
            // would be reported, even if a folder of that name comes back.
            return Some(Event::Trouble(format!(
                "{} was removed or moved away, so its watch ended; watch falls back \
                 to periodic full rescans",
                self.root.display()
            )));
        }
        if event.paths.is_empty() {
            return Some(Event::Rescan(format!(
                "a change notice named no path ({:?})",
                event.kind
            )));
        }
        let paths: Vec<RelPath> = event
            .paths
            .iter()
            .filter_map(|p| self.filter.keep(p))
            .collect();
        (!paths.is_empty()).then_some(Event::Paths(paths))
    }

    /// Queues `event`, or replaces it by a rescan while the queue is full.
    /// Troubles always go through: they are few and say something a rescan
    /// does not.
    fn send(&mut self, event: Event) {
        // Send errors mean the receiver is gone and nobody is listening.
        if self.tx.len() >= self.queue_limit && !matches!(event, Event::Trouble(_)) {
            if !self.dropping {
                self.dropping = true;
                let _ = self.tx.send(Event::Rescan(format!(
                    "more than {} change notices waited to be handled",
                    self.queue_limit
                )));
            }
            return;
        }
        self.dropping = false;
        let _ = self.tx.send(event);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::fs;
    use std::time::{Duration, Instant};

    use notify::event::{CreateKind, Flag, MetadataKind, RemoveKind};
    use notify::EventHandler as _;

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

    /// A handler for a root that does not exist, fed events by hand.
    fn handler(queue_limit: usize) -> (Handler, chan::Receiver<Event>) {
        let root = PathBuf::from("/nonexistent-sluice-root");
        let ignore = Ignore {
            paths: vec![root.join(".index")],
            under: vec![root.join("dest")],
        };
        let (tx, rx) = chan::unbounded();
        let handler = Handler {
            root: root.clone(),
            filter: Filter::new(&root, &ignore).unwrap(),
            tx,
            queue_limit,
            dropping: false,
            limit_reported: Arc::default(),
        };
        (handler, rx)
    }

    fn notice(kind: EventKind, paths: &[&str]) -> notify::Event {
        paths.iter().fold(notify::Event::new(kind), |event, path| {
            event.add_path(Path::new("/nonexistent-sluice-root").join(path))
        })
    }

    #[test]
    fn translate_names_paths_and_drops_reads() {
        let (h, _rx) = handler(EVENT_QUEUE);
        let paths = |v: &[&str]| Some(Event::Paths(v.iter().map(|s| p(s)).collect()));
        let create = EventKind::Create(CreateKind::File);
        assert_eq!(h.translate(notice(create, &["a"])), paths(&["a"]));
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(
            h.translate(notice(both, &["a", "b/c"])),
            paths(&["a", "b/c"])
        );
        let written = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(h.translate(notice(written, &["a"])), paths(&["a"]));
        for read in [
            AccessKind::Open(AccessMode::Any),
            AccessKind::Close(AccessMode::Read),
            AccessKind::Read,
        ] {
            assert_eq!(h.translate(notice(EventKind::Access(read), &["a"])), None);
        }
        // The root itself: its attributes name it, its removal ends the watch.
        let chmod = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));
        assert_eq!(h.translate(notice(chmod, &[""])), paths(&[""]));
        for gone in [
            EventKind::Remove(RemoveKind::Folder),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
        ] {
            let event = h.translate(notice(gone, &[""]));
            assert!(
                matches!(&event, Some(Event::Trouble(t)) if t.contains("moved away")),
                "{event:?}"
            );
            assert_eq!(h.translate(notice(gone, &["a"])), paths(&["a"]));
        }
        // A rename whose one end is ignored.
        assert_eq!(h.translate(notice(both, &["dest/x", "y"])), paths(&["y"]));
        // Outside the root, unstorable, or sluice's own: nothing.
        let any = EventKind::Any;
        let outside = notify::Event::new(any).add_path("/elsewhere/a".into());
        assert_eq!(h.translate(outside), None);
        assert_eq!(h.translate(notice(any, &["a/../b"])), None);
        assert_eq!(h.translate(notice(any, &["d/.sluice-tmp.x.1"])), None);
        assert_eq!(
            h.translate(notice(any, &[".index", "dest", "dest/a/b"])),
            None
        );
        assert_eq!(
            h.translate(notice(any, &[".index-wal"])),
            paths(&[".index-wal"])
        );
    }

    #[test]
    fn overflow_and_pathless_notices_ask_for_a_rescan() {
        let (h, _rx) = handler(EVENT_QUEUE);
        let overflow = notify::Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert!(matches!(h.translate(overflow), Some(Event::Rescan(r)) if r.contains("overflow")));
        let pathless = notify::Event::new(EventKind::Modify(ModifyKind::Any));
        assert!(matches!(h.translate(pathless), Some(Event::Rescan(_))));
    }

    #[test]
    fn a_full_queue_becomes_one_rescan() {
        let (mut h, rx) = handler(2);
        let create = EventKind::Create(CreateKind::File);
        for name in ["a", "b", "c", "d"] {
            h.handle_event(Ok(notice(create, &[name])));
        }
        h.handle_event(Err(notify::Error::generic("read failed")));
        assert_eq!(rx.try_recv().unwrap(), Event::Paths(vec![p("a")]));
        assert_eq!(rx.try_recv().unwrap(), Event::Paths(vec![p("b")]));
        assert!(matches!(rx.try_recv().unwrap(), Event::Rescan(_)));
        assert!(matches!(rx.try_recv().unwrap(), Event::Trouble(t) if t.contains("read failed")));
        assert!(rx.try_recv().is_err());
        // Once drained, events flow again.
        h.handle_event(Ok(notice(create, &["e"])));
        assert_eq!(rx.try_recv().unwrap(), Event::Paths(vec![p("e")]));
    }

    #[test]
    fn the_watch_limit_is_reported_once_with_its_fix() {
        let (mut h, rx) = handler(EVENT_QUEUE);
        for _ in 0..3 {
            h.handle_event(Err(notify::Error::new(ErrorKind::MaxFilesWatch)));
        }
        let Ok(Event::Trouble(message)) = rx.try_recv() else {
            panic!("no trouble reported");
        };
        assert!(
            message.contains("sysctl fs.inotify.max_user_watches="),
            "{message}"
        );
        assert!(message.contains("periodic full rescans"), "{message}");
        assert!(rx.try_recv().is_err());
        let fix = watch_limit_message(Some(8192));
        assert!(
            fix.contains("`sysctl fs.inotify.max_user_watches=16384`"),
            "{fix}"
        );
        assert!(watch_limit_message(None).contains("<twice the current value>"));
    }

    #[test]
    fn remote_file_systems_need_polling() {
        assert_eq!(remote_fs_name(0x6969), Some("NFS"));
        assert_eq!(remote_fs_name(0xFE53_4D42), Some("SMB2"));
        assert_eq!(remote_fs_name(0x0102_1997), Some("9p"));
        // CIFS's magic as a 32-bit long reads negative.
        assert_eq!(remote_fs_name((-11_317_950_i64) as u32), Some("CIFS"));
        // ext4, tmpfs, btrfs, xfs, overlayfs.
        for local in [0xEF53, 0x0102_1994, 0x9123_683E, 0x5846_5342, 0x794C_7630] {
            assert_eq!(remote_fs_name(local), None);
        }
        let dir = tempfile::tempdir().unwrap();
        let local = rustix::fs::statfs(dir.path()).unwrap().f_type as u32;
        assert_eq!(
            needs_polling(dir.path()).is_some(),
            remote_fs_name(local).is_some()
        );
        assert_eq!(needs_polling(&dir.path().join("missing")), None);
    }
}
