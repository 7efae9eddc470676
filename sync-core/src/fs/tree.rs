//! Confined access to one tree by path: every operation resolves its path
//! from the tree's root one component at a time, each folder opened from
//! its parent's descriptor with `O_NOFOLLOW`, so no symlink anywhere under
//! the root is ever followed, whatever a plan or a peer says.
//!
//! [`Tree`] owns the root's descriptor and the last parent folder it
//! opened (plans visit paths in sorted order and consecutive entries
//! usually share a folder); it knows nothing about plans or temp-file
//! naming, which are the apply step's.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use super::dir::{self, Dir};
use crate::entry::Meta;
use crate::path::RelPath;

/// A folder tree opened for confined access.
pub struct Tree {
    root: Dir,
    root_path: PathBuf,
    cached: Option<(RelPath, Dir)>,
}

/// True when `e` is one of `errnos`.
fn is(e: &io::Error, errnos: &[Errno]) -> bool {
    Errno::from_io_error(e).is_some_and(|n| errnos.contains(&n))
}

/// `r`, with "it is not there" counting as done.
fn absent_is_ok(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if is(&e, &[Errno::NOENT]) => Ok(()),
        r => r,
    }
}

impl Tree {
    /// Opens the folder at `root` (which must exist; a symlink naming the
    /// root is followed, as the user named it).
    pub fn open(root: &Path) -> io::Result<Tree> {
        Ok(Tree {
            root: Dir::open(root)?,
            root_path: root.to_path_buf(),
            cached: None,
        })
    }

    /// A second handle on the same root (its own descriptor and cache), for
    /// another thread.
    pub fn try_clone(&self) -> io::Result<Tree> {
        Ok(Tree {
            root: self.root.try_clone()?,
            root_path: self.root_path.clone(),
            cached: None,
        })
    }

    /// The root's path, for messages.
    pub fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// Folder `dir`, opened one component at a time without following
    /// symlinks.
    fn dir(&mut self, dir: &RelPath) -> io::Result<&Dir> {
        if dir.is_root() {
            return Ok(&self.root);
        }
        if self.cached.as_ref().is_some_and(|(p, _)| p == dir) {
            return Ok(&self.cached.as_ref().expect("just checked").1);
        }
        let mut at: Option<Dir> = None;
        for comp in dir.components() {
            let next = at.as_ref().unwrap_or(&self.root).open_dir(comp)?;
            at = Some(next);
        }
        let at = at.expect("non-root path has a component");
        Ok(&self.cached.insert((dir.clone(), at)).1)
    }

    /// Forgets the cached folder (after it may have been removed or replaced).
    pub fn forget(&mut self) {
        self.cached = None;
    }

    /// The parent folder and the final name of `path`.
    fn parent<'p>(&mut self, path: &'p RelPath) -> io::Result<(&Dir, &'p [u8])> {
        Ok((self.dir(&path.parent())?, path.file_name()))
    }

    /// `lstat` of `path`; `None` if it does not exist (or a parent is missing).
    pub fn lstat(&mut self, path: &RelPath) -> io::Result<Option<std::fs::Metadata>> {
        if path.is_root() {
            return self.root.metadata_self().map(Some);
        }
        let (dir, name) = match self.parent(path) {
            Ok(x) => x,
            Err(e) if is(&e, &[Errno::NOENT, Errno::NOTDIR]) => return Ok(None),
            Err(e) => return Err(e),
        };
        match dir.metadata(name) {
            Ok(md) => Ok(Some(md)),
            Err(e) if is(&e, &[Errno::NOENT]) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Our record of what is at `path` now.
    pub fn meta(&mut self, path: &RelPath) -> io::Result<Option<Meta>> {
        Ok(self.lstat(path)?.and_then(|m| Meta::from_std(&m)))
    }

    /// Opens a regular file for reading, refusing symlinks.
    pub fn open_read(&mut self, path: &RelPath) -> io::Result<File> {
        let (dir, name) = self.parent(path)?;
        dir.open_read(name)
    }

    /// Creates a new file named `temp` beside `path`, exclusively, mode 0600.
    pub fn create_temp(&mut self, path: &RelPath, temp: &[u8]) -> io::Result<File> {
        self.dir(&path.parent())?.create_new(temp)
    }

    /// Reopens a temp file created by [`Tree::create_temp`] for writing.
    pub fn reopen_temp(&mut self, path: &RelPath, temp: &[u8]) -> io::Result<File> {
        self.dir(&path.parent())?.open_rw(temp)
    }

    /// Renames `temp` (in `path`'s folder) over `path`.
    pub fn rename_temp(&mut self, path: &RelPath, temp: &[u8]) -> io::Result<()> {
        let (dir, name) = self.parent(path)?;
        dir.rename(temp, name)
    }

    /// Removes the name `temp` in `path`'s folder, if present.
    pub fn remove_temp(&mut self, path: &RelPath, temp: &[u8]) -> io::Result<()> {
        absent_is_ok(self.dir(&path.parent())?.unlink(temp))
    }

    /// Creates folder `path` (mode 0700 until its metadata is set).
    pub fn mkdir(&mut self, path: &RelPath) -> io::Result<()> {
        let (dir, name) = self.parent(path)?;
        dir.mkdir(name)
    }

    /// Creates a symlink at `path` (replacing whatever non-folder is there,
    /// atomically, through a temporary name).
    pub fn symlink(&mut self, path: &RelPath, target: &[u8], temp: &[u8]) -> io::Result<()> {
        let (dir, name) = self.parent(path)?;
        dir.symlink(target, temp)?;
        replace_with(dir, temp, name)
    }

    /// Makes `path` another name of `leader` (replacing a non-folder).
    pub fn hard_link(&mut self, leader: &RelPath, path: &RelPath, temp: &[u8]) -> io::Result<()> {
        // Keep the leader's folder open while the cache moves on.
        let (ldir, lname) = self.parent(leader)?;
        let ldir = ldir.try_clone()?;
        let (dir, name) = self.parent(path)?;
        ldir.hard_link(lname, dir, temp)?;
        replace_with(dir, temp, name)
    }

    /// Removes a file or symlink (never following it) or an empty folder.
    pub fn remove(&mut self, path: &RelPath, is_dir: bool) -> io::Result<()> {
        let (dir, name) = self.parent(path)?;
        absent_is_ok(if is_dir {
            dir.rmdir(name)
        } else {
            dir.unlink(name)
        })?;
        if is_dir {
            self.forget();
        }
        Ok(())
    }

    /// Removes `path` and, if it is a folder, everything below it, never
    /// following symlinks. Returns how many entries were removed.
    pub fn remove_tree(&mut self, path: &RelPath) -> io::Result<u64> {
        let Some(md) = self.lstat(path)? else {
            return Ok(0);
        };
        if !md.is_dir() {
            self.remove(path, false)?;
            return Ok(1);
        }
        let mut removed = 0;
        let names = self.dir(path)?.names()?;
        for (n, _) in names {
            let mut child = path.as_bytes().to_vec();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(n.as_encoded_bytes());
            let child = RelPath::new(child).map_err(io::Error::other)?;
            removed += self.remove_tree(&child)?;
        }
        self.forget();
        self.remove(path, true)?;
        Ok(removed + 1)
    }

    /// Sets permission bits and mtime on an open file.
    pub fn set_file_meta(file: &File, meta: &Meta) -> io::Result<()> {
        dir::set_file_meta(file, meta.mode, meta.mtime_ns)
    }

    /// Sets mode and mtime of the entry at `path` without following a
    /// symlink (a symlink gets its mtime only).
    pub fn set_meta(&mut self, path: &RelPath, meta: &Meta, is_link: bool) -> io::Result<()> {
        if path.is_root() {
            return self.root.set_meta_self(meta.mode, meta.mtime_ns);
        }
        let (dir, name) = self.parent(path)?;
        dir.set_meta(name, meta.mode, meta.mtime_ns, is_link)
    }
}

/// Renames the just-made `temp` over `name` in `dir`, removing `temp` if
/// that fails.
fn replace_with(dir: &Dir, temp: &[u8], name: &[u8]) -> io::Result<()> {
    dir.rename(temp, name).inspect_err(|_| {
        let _ = dir.unlink(temp);
    })
}
