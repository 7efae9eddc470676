//! The scan's walker: lists folders on several threads, never follows a
//! symlink, and `lstat`s each entry relative to its open folder (one path
//! component for the kernel to look up, not the whole path). Each folder is
//! opened from its parent's [`Dir`] with `O_NOFOLLOW`, so a folder
//! swapped for a symlink while the walk runs is refused, not followed out
//! of the tree.
//!
//! Exclusions follow gitignore rules: `--exclude`/`--exclude-from` patterns
//! relative to the root, then `.sluiceignore` files (and `.gitignore` files
//! on request) in the folders on the way down, the innermost match deciding
//! and `.sluiceignore` taking precedence over `.gitignore`, as the `ignore`
//! crate's walker orders them. An excluded folder is not entered.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use rustix::fs::{FileType, Stat};
use rustix::io::Errno;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use super::filter::IGNORE_FILE;
use crate::fs::Dir;
use crate::path::RelPath;
use crate::scope::Scopes;

/// One folder waiting to be listed.
pub(super) struct Folder {
    /// Its parent's descriptor and its name (opened when listed); for the
    /// root, its own descriptor.
    at: At,
    pub full: PathBuf,
    pub rel: RelPath,
    rules: Option<Arc<Rules>>,
}

enum At {
    Open(Arc<Dir>),
    Child(Arc<Dir>, OsString),
}

/// Opens a folder by path, refusing a symlink in its place.
pub(super) fn open_root(root: &Path) -> std::io::Result<Arc<Dir>> {
    Dir::open_nofollow(root).map(Arc::new)
}

impl Folder {
    /// The root folder of a walk, already open.
    pub fn root(root: &Path, dir: Arc<Dir>) -> Folder {
        Folder {
            at: At::Open(dir),
            full: root.to_path_buf(),
            rel: RelPath::root(),
            rules: None,
        }
    }

    /// Opens the folder itself, refusing a symlink in its place.
    fn open(&self) -> std::io::Result<Arc<Dir>> {
        match &self.at {
            At::Open(dir) => Ok(Arc::clone(dir)),
            At::Child(parent, name) => parent.open_dir(name.as_bytes()).map(Arc::new),
        }
    }
}

/// Where an entry is: its folder's descriptor and its name, for opening or
/// reading it without resolving its path again.
pub(super) struct Place<'a> {
    pub dir: &'a Arc<Dir>,
    pub name: &'a OsStr,
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
    /// An entry that is skipped (its name cannot be stored, or it cannot
    /// be looked at).
    Skipped {
        path: String,
        message: String,
        io_error: bool,
    },
    /// An entry listed in its folder and gone when looked at.
    Vanished { path: String },
}

/// The per-entry work a walk drives: one per walker thread.
pub(super) trait Visitor {
    /// Handles one entry, found at `place`; false stops the walk.
    fn entry(&mut self, rel: RelPath, st: &Stat, place: &Place<'_>) -> bool;
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
    root: Folder,
    filters: &Filters<'_>,
    threads: usize,
    visitor: &(dyn Fn() -> V + Sync),
) {
    let queue = Queue {
        state: Mutex::new(QueueState {
            folders: vec![root],
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
    let dir = match folder.open() {
        Ok(fd) => fd,
        Err(e) => return (Vec::new(), unreadable(visitor, e.to_string())),
    };
    let entries = match dir.names() {
        Ok(v) => v,
        Err(e) => return (Vec::new(), unreadable(visitor, e.to_string())),
    };
    visitor.listed(entries.len());
    let (rules, keep_going) = folder_rules(&folder, &entries, filters, visitor);
    if !keep_going {
        return (Vec::new(), false);
    }
    let mut subfolders = Vec::new();
    for (name, listed_type) in entries {
        let bytes = name.as_bytes();
        let full = || folder.full.join(&name);
        if bytes.starts_with(filters.temp_prefix) {
            if let Some(rel) = folder.rel.child(bytes) {
                if !visitor.temp(rel) {
                    return (subfolders, false);
                }
            }
            continue;
        }
        let Some(rel) = folder.rel.child(bytes) else {
            let go = visitor.trouble(Trouble::Skipped {
                path: full().display().to_string(),
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
            .any(|s| s.file_name() == Some(name.as_os_str()) && *s == full())
        {
            continue;
        }
        let stat = || dir.stat(bytes);
        // The listing's type (no system call) decides the rules, as the
        // `ignore` walker does; a filesystem that does not fill it in
        // costs an `lstat` first.
        let (is_dir, st) = if listed_type == FileType::Unknown {
            let st = stat();
            (st.as_ref().is_ok_and(is_folder), Some(st))
        } else {
            (listed_type == FileType::Directory, None)
        };
        if is_excluded(filters, rules.as_deref(), &rel, full, is_dir) {
            continue;
        }
        let st = match st.unwrap_or_else(stat) {
            Ok(st) => st,
            Err(e) => {
                let go = visitor.trouble(if e.kind() == std::io::ErrorKind::NotFound {
                    Trouble::Vanished {
                        path: rel.display(),
                    }
                } else {
                    Trouble::Skipped {
                        path: rel.display(),
                        message: e.to_string(),
                        io_error: true,
                    }
                });
                if !go {
                    return (subfolders, false);
                }
                continue;
            }
        };
        if is_folder(&st) {
            subfolders.push(Folder {
                at: At::Child(Arc::clone(&dir), name.clone()),
                full: full(),
                rel: rel.clone(),
                rules: rules.clone(),
            });
        }
        let place = Place {
            dir: &dir,
            name: &name,
        };
        if !visitor.entry(rel, &st, &place) {
            return (subfolders, false);
        }
    }
    (subfolders, true)
}

/// Visits what `scopes` cover below `root` (whose own entry is the
/// caller's): each folder above a tree by itself with `top`, each tree's
/// top entry with `top`, and everything below a tree that is a folder by
/// [`walk`]. Folders on the way are opened one component at a time from
/// the root with `O_NOFOLLOW`, and the ignore files in them apply as in a
/// full walk. A path that is gone, excluded, or below something that is no
/// longer a folder is not visited (so its old record goes).
pub(super) fn walk_scopes<V: Visitor>(
    root: Folder,
    scopes: &Scopes,
    filters: &Filters<'_>,
    threads: usize,
    top: &mut V,
    visitor: &(dyn Fn() -> V + Sync),
) {
    let root_dir = match root.open() {
        Ok(fd) => fd,
        Err(e) => {
            top.trouble(Trouble::Unreadable {
                path: root.rel.display(),
                message: e.to_string(),
            });
            return;
        }
    };
    let (rules, go) = rules_here(&root, &root_dir, filters, top);
    if !go {
        return;
    }
    // The open folders from the root down to the last path's parent.
    let mut chain = vec![Opened {
        rel: RelPath::root(),
        full: root.full.clone(),
        dir: root_dir,
        rules,
        excluded: false,
    }];
    let mut paths: Vec<(&RelPath, bool)> = scopes
        .folders()
        .iter()
        .map(|f| (f, false))
        .chain(scopes.trees().iter().map(|t| (t, true)))
        .filter(|(p, _)| !p.is_root())
        .collect();
    paths.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (path, tree) in paths {
        let parent = path.parent();
        while !parent.starts_with(&chain.last().expect("the root stays").rel) {
            chain.pop();
        }
        // Open the folders between the deepest open one and the parent.
        let mut reachable = true;
        while chain.last().expect("the root stays").rel != parent {
            let at = chain.last().expect("the root stays");
            if at.excluded {
                reachable = false;
                break;
            }
            let depth = at.rel.depth();
            let name = parent.components().nth(depth).expect("parent is deeper");
            let rel = at.rel.child(name).expect("a component of a stored path");
            let name = OsStr::from_bytes(name);
            let full = at.full.join(name);
            let excluded = is_excluded(filters, at.rules.as_deref(), &rel, || full.clone(), true);
            let dir = match at.dir.open_dir(name.as_bytes()) {
                Ok(dir) => Arc::new(dir),
                Err(e) => {
                    // Gone, or no longer a folder: nothing below it is
                    // there any more. Anything else leaves it unknown.
                    let gone = matches!(
                        Errno::from_io_error(&e),
                        Some(Errno::NOENT | Errno::NOTDIR | Errno::LOOP)
                    );
                    if !gone && !excluded {
                        let go = top.trouble(Trouble::Unreadable {
                            path: rel.display(),
                            message: e.to_string(),
                        });
                        if !go {
                            return;
                        }
                    }
                    reachable = false;
                    break;
                }
            };
            let folder = Folder {
                at: At::Open(Arc::clone(&dir)),
                full: full.clone(),
                rel: rel.clone(),
                rules: at.rules.clone(),
            };
            let (rules, go) = if excluded {
                (None, true)
            } else {
                rules_here(&folder, &dir, filters, top)
            };
            if !go {
                return;
            }
            chain.push(Opened {
                rel,
                full,
                dir,
                rules,
                excluded,
            });
        }
        let at = chain.last().expect("the root stays");
        if !reachable || at.excluded {
            continue;
        }
        let name = OsStr::from_bytes(path.file_name());
        let full = at.full.join(name);
        if name.as_bytes().starts_with(filters.temp_prefix) || filters.skip.contains(&full) {
            continue;
        }
        let st = match at.dir.stat(name.as_bytes()) {
            Ok(st) => st,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    let go = top.trouble(Trouble::Skipped {
                        path: path.display(),
                        message: e.to_string(),
                        io_error: true,
                    });
                    if !go {
                        return;
                    }
                }
                continue;
            }
        };
        let folder = is_folder(&st);
        if is_excluded(filters, at.rules.as_deref(), path, || full.clone(), folder) {
            continue;
        }
        let place = Place { dir: &at.dir, name };
        if !top.entry(path.clone(), &st, &place) {
            return;
        }
        if tree && folder {
            let below = Folder {
                at: At::Child(Arc::clone(&at.dir), name.to_owned()),
                full,
                rel: path.clone(),
                rules: at.rules.clone(),
            };
            walk(below, filters, threads, visitor);
        }
    }
}

/// A folder opened on the way to a scope.
struct Opened {
    rel: RelPath,
    full: PathBuf,
    dir: Arc<Dir>,
    /// The ignore rules that apply inside it.
    rules: Option<Arc<Rules>>,
    /// Excluded itself: nothing below it is visited.
    excluded: bool,
}

/// The rules inside `folder` (open as `dir`), found without listing it:
/// its parent's, plus its own ignore files if it has any.
fn rules_here(
    folder: &Folder,
    dir: &Dir,
    filters: &Filters<'_>,
    visitor: &mut dyn Visitor,
) -> (Option<Arc<Rules>>, bool) {
    let mut present = Vec::new();
    for name in [IGNORE_FILE, ".gitignore"] {
        if dir.stat(name.as_bytes()).is_ok() {
            present.push((OsString::from(name), FileType::RegularFile));
        }
    }
    folder_rules(folder, &present, filters, visitor)
}

/// True when the `--exclude` patterns or the ignore files in `rules`
/// leave `rel` out.
/// `full` is only made when ignore files apply.
fn is_excluded(
    filters: &Filters<'_>,
    rules: Option<&Rules>,
    rel: &RelPath,
    full: impl FnOnce() -> PathBuf,
    is_dir: bool,
) -> bool {
    (!filters.excludes.is_empty()
        && filters
            .excludes
            .matched(rel.as_os_str(), is_dir)
            .is_ignore())
        || rules.is_some_and(|r| r.excludes(&full(), is_dir))
}

fn is_folder(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode as _) == FileType::Directory
}

/// The rules that apply inside `folder`: its parent's, plus its own ignore
/// files if it has any.
fn folder_rules(
    folder: &Folder,
    entries: &[(OsString, FileType)],
    filters: &Filters<'_>,
    visitor: &mut dyn Visitor,
) -> (Option<Arc<Rules>>, bool) {
    let has = |name: &str| entries.iter().any(|(n, _)| n == name);
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

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
