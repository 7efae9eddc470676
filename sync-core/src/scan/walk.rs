//! The scan's walker: lists folders on several threads, never follows a
//! symlink, and `lstat`s each entry relative to its open folder (one path
//! component for the kernel to look up, not the whole path).
//!
//! Exclusions follow gitignore rules: `--exclude`/`--exclude-from` patterns
//! relative to the root, then `.sluiceignore` files (and `.gitignore` files
//! on request) in the folders on the way down, the innermost match deciding
//! and `.sluiceignore` taking precedence over `.gitignore`, as the `ignore`
//! crate's walker orders them. An excluded folder is not entered.

use std::ffi::OsStr;
use std::fs::{DirEntry, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use super::filter::IGNORE_FILE;
use crate::path::RelPath;

/// One folder waiting to be listed.
pub(super) struct Folder {
    pub full: PathBuf,
    pub rel: RelPath,
    rules: Option<Arc<Rules>>,
}

impl Folder {
    /// The root folder of a walk.
    pub fn root(root: &Path) -> Folder {
        Folder {
            full: root.to_path_buf(),
            rel: RelPath::root(),
            rules: None,
        }
    }
}

/// Ignore files met on the way down to a folder, innermost first.
struct Rules {
    sluice: Option<Gitignore>,
    git: Option<Gitignore>,
    outer: Option<Arc<Rules>>,
}

impl Rules {
    /// True when the ignore files exclude `full`.
    fn excludes(&self, full: &Path, is_dir: bool) -> bool {
        let (mut sluice, mut git) = (Match::None, Match::None);
        let mut at = Some(self);
        while let Some(r) = at {
            if let (true, Some(g)) = (sluice.is_none(), &r.sluice) {
                sluice = g.matched(full, is_dir);
            }
            if let (true, Some(g)) = (git.is_none(), &r.git) {
                git = g.matched(full, is_dir);
            }
            at = r.outer.as_deref();
        }
        if sluice.is_none() {
            git.is_ignore()
        } else {
            sluice.is_ignore()
        }
    }
}

/// What a walk reports besides entries.
pub(super) enum Trouble {
    /// A folder or an ignore file could not be read: part of the tree is
    /// unaccounted for.
    Unreadable { path: String, message: String },
    /// An entry that is skipped (vanished, or its name cannot be stored).
    Skipped {
        path: String,
        message: String,
        io_error: bool,
    },
}

/// The per-entry work a walk drives: one per walker thread.
pub(super) trait Visitor {
    /// Handles one entry below the root (`full` builds its full path);
    /// false stops the walk.
    fn entry(&mut self, rel: RelPath, md: &Metadata, full: &dyn Fn() -> PathBuf) -> bool;
    /// A temporary file of ours; false stops the walk.
    fn temp(&mut self, rel: RelPath) -> bool;
    /// Something went wrong; false stops the walk.
    fn trouble(&mut self, t: Trouble) -> bool;
    /// Called once per folder listed with the number of entries in it.
    fn listed(&mut self, _entries: usize) {}
    /// Called when this thread's part of the walk is over.
    fn finish(&mut self) {}
}

/// What to leave out, besides the ignore files found on the way.
pub(super) struct Filters<'a> {
    pub excludes: &'a Gitignore,
    pub gitignore: bool,
    /// Names never to visit (prefix of sluice's temporary files).
    pub temp_prefix: &'a [u8],
    /// Full paths never to visit (an index file inside the tree).
    pub skip: &'a [PathBuf],
}

struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

struct QueueState {
    folders: Vec<Folder>,
    /// Threads listing a folder now.
    busy: usize,
    /// Threads waiting for a folder.
    sleeping: usize,
    stop: bool,
}

/// Walks everything below `root` (the root itself is the caller's) on
/// `threads` threads, each with a visitor made by `visitor`.
pub(super) fn walk<V: Visitor>(
    root: &Path,
    filters: &Filters<'_>,
    threads: usize,
    visitor: &(dyn Fn() -> V + Sync),
) {
    let queue = Queue {
        state: Mutex::new(QueueState {
            folders: vec![Folder::root(root)],
            busy: 0,
            sleeping: 0,
            stop: false,
        }),
        wake: Condvar::new(),
    };
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut v = visitor();
                work(&queue, filters, &mut v);
                v.finish();
            });
        }
    });
}

fn work(queue: &Queue, filters: &Filters<'_>, visitor: &mut dyn Visitor) {
    let lock = || queue.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let folder = {
            let mut st = lock();
            loop {
                if st.stop {
                    return;
                }
                if let Some(f) = st.folders.pop() {
                    st.busy += 1;
                    break f;
                }
                if st.busy == 0 {
                    // Nothing queued and nobody listing: the walk is over.
                    if st.sleeping > 0 {
                        queue.wake.notify_all();
                    }
                    return;
                }
                st.sleeping += 1;
                st = queue.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                st.sleeping -= 1;
            }
        };
        let (subfolders, keep_going) = list(folder, filters, visitor);
        let mut st = lock();
        st.busy -= 1;
        if !keep_going {
            st.stop = true;
        }
        let over = st.busy == 0 && st.folders.is_empty() && subfolders.is_empty();
        let wake = !subfolders.is_empty() || over || st.stop;
        st.folders.extend(subfolders);
        // Waking costs a system call: only when someone sleeps.
        if wake && st.sleeping > 0 {
            queue.wake.notify_all();
        }
        if st.stop {
            return;
        }
    }
}

/// Lists one folder: visits its entries, returns the folders to enter and
/// whether to go on.
fn list(folder: Folder, filters: &Filters<'_>, visitor: &mut dyn Visitor) -> (Vec<Folder>, bool) {
    let unreadable = |visitor: &mut dyn Visitor, message: String| {
        visitor.trouble(Trouble::Unreadable {
            path: folder.rel.display(),
            message,
        })
    };
    let entries: Vec<DirEntry> = match std::fs::read_dir(&folder.full) {
        Ok(rd) => {
            let mut v = Vec::new();
            for de in rd {
                match de {
                    Ok(de) => v.push(de),
                    Err(e) => {
                        return (Vec::new(), unreadable(visitor, e.to_string()));
                    }
                }
            }
            v
        }
        Err(e) => return (Vec::new(), unreadable(visitor, e.to_string())),
    };
    visitor.listed(entries.len());
    let (rules, keep_going) = folder_rules(&folder, &entries, filters, visitor);
    if !keep_going {
        return (Vec::new(), false);
    }
    let mut subfolders = Vec::new();
    for de in entries {
        let name = de.file_name();
        let name = name.as_bytes();
        let full = || folder.full.join(OsStr::from_bytes(name));
        if name.starts_with(filters.temp_prefix) {
            if let Some(rel) = folder.rel.child(name) {
                if !visitor.temp(rel) {
                    return (subfolders, false);
                }
            }
            continue;
        }
        let Some(rel) = folder.rel.child(name) else {
            let path = folder.full.join(OsStr::from_bytes(name));
            let go = visitor.trouble(Trouble::Skipped {
                path: path.display().to_string(),
                message: "name too long or not representable; skipped".into(),
                io_error: false,
            });
            if !go {
                return (subfolders, false);
            }
            continue;
        };
        if filters
            .skip
            .iter()
            .any(|s| s.file_name().is_some_and(|n| n.as_bytes() == name) && *s == full())
        {
            continue;
        }
        // The listing's type (no system call) decides the rules, as the
        // `ignore` walker does.
        let is_dir = de.file_type().is_ok_and(|t| t.is_dir());
        if !filters.excludes.is_empty()
            && filters
                .excludes
                .matched(rel.as_os_str(), is_dir)
                .is_ignore()
        {
            continue;
        }
        if rules.as_ref().is_some_and(|r| r.excludes(&full(), is_dir)) {
            continue;
        }
        let md = match de.metadata() {
            Ok(md) => md,
            Err(e) => {
                let go = visitor.trouble(Trouble::Skipped {
                    path: rel.display(),
                    message: e.to_string(),
                    io_error: e.kind() != std::io::ErrorKind::NotFound,
                });
                if !go {
                    return (subfolders, false);
                }
                continue;
            }
        };
        if md.is_dir() {
            subfolders.push(Folder {
                full: full(),
                rel: rel.clone(),
                rules: rules.clone(),
            });
        }
        if !visitor.entry(rel, &md, &full) {
            return (subfolders, false);
        }
    }
    (subfolders, true)
}

/// The rules that apply inside `folder`: its parent's, plus its own ignore
/// files if it has any.
fn folder_rules(
    folder: &Folder,
    entries: &[DirEntry],
    filters: &Filters<'_>,
    visitor: &mut dyn Visitor,
) -> (Option<Arc<Rules>>, bool) {
    let has = |name: &str| entries.iter().any(|de| de.file_name() == name);
    let sluice = has(IGNORE_FILE);
    let git = filters.gitignore && has(".gitignore");
    if !sluice && !git {
        return (folder.rules.clone(), true);
    }
    let mut keep_going = true;
    let mut load = |name: &str| {
        let mut b = GitignoreBuilder::new(&folder.full);
        let file = folder.full.join(name);
        let mut errors = b.add(&file).into_iter().collect::<Vec<_>>();
        let gi = match b.build() {
            Ok(gi) => Some(gi),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        for e in errors {
            keep_going &= visitor.trouble(Trouble::Unreadable {
                path: folder
                    .rel
                    .child(name.as_bytes())
                    .map_or_else(|| file.display().to_string(), |r| r.display()),
                message: e.to_string(),
            });
        }
        gi
    };
    let rules = Rules {
        sluice: if sluice { load(IGNORE_FILE) } else { None },
        git: if git { load(".gitignore") } else { None },
        outer: folder.rules.clone(),
    };
    (Some(Arc::new(rules)), keep_going)
}
