//! Confined access to one tree: every operation resolves its path from the
//! tree's root one component at a time with `O_NOFOLLOW`, so no symlink
//! anywhere under the root is ever followed, whatever a plan or a peer says.
//!
//! This module owns the file descriptors; it knows nothing about plans.
//! The last parent folder opened is cached, because plans visit paths in
//! sorted order and consecutive entries usually share a folder.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::entry::Meta;
use crate::path::RelPath;

/// A folder tree opened for confined access.
pub struct Tree {
    root: OwnedFd,
    root_path: PathBuf,
    cached: Option<(RelPath, OwnedFd)>,
}

fn cstr(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn open_dir_at(dirfd: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    let fd = check(unsafe {
        libc::openat(
            dirfd,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn timespec(ns: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: ns.div_euclid(1_000_000_000) as libc::time_t,
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    }
}

/// The `[atime, mtime]` pair that leaves atime alone and sets mtime.
fn mtime_only(mtime_ns: i64) -> [libc::timespec; 2] {
    [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        timespec(mtime_ns),
    ]
}

impl Tree {
    /// Opens the folder at `root` (which must exist).
    pub fn open(root: &Path) -> io::Result<Tree> {
        let c = cstr(root.as_os_str().as_bytes())?;
        let fd = check(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        Ok(Tree {
            root: unsafe { OwnedFd::from_raw_fd(fd) },
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

    /// A descriptor of folder `dir`, opened without following symlinks.
    fn dir(&mut self, dir: &RelPath) -> io::Result<RawFd> {
        if dir.is_root() {
            return Ok(self.root.as_raw_fd());
        }
        if let Some((p, fd)) = &self.cached {
            if p == dir {
                return Ok(fd.as_raw_fd());
            }
        }
        let mut fd: Option<OwnedFd> = None;
        for comp in dir.components() {
            let at = fd.as_ref().map_or(self.root.as_raw_fd(), |f| f.as_raw_fd());
            fd = Some(open_dir_at(at, &cstr(comp)?)?);
        }
        let fd = fd.expect("non-root path has a component");
        let raw = fd.as_raw_fd();
        self.cached = Some((dir.clone(), fd));
        Ok(raw)
    }

    /// Forgets the cached folder (after it may have been removed or replaced).
    pub fn forget(&mut self) {
        self.cached = None;
    }

    /// The parent folder's descriptor and the final name of `path`.
    fn parent(&mut self, path: &RelPath) -> io::Result<(RawFd, CString)> {
        let name = cstr(path.file_name())?;
        Ok((self.dir(&path.parent())?, name))
    }

    /// `lstat` of `path`; `None` if it does not exist (or a parent is missing).
    pub fn lstat(&mut self, path: &RelPath) -> io::Result<Option<std::fs::Metadata>> {
        if path.is_root() {
            return File::from(self.root.try_clone()?).metadata().map(Some);
        }
        let (dirfd, name) = match self.parent(path) {
            Ok(x) => x,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        // Open with O_PATH|O_NOFOLLOW and fstat: works for every kind.
        let fd = unsafe {
            libc::openat(
                dirfd,
                name.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                _ => Err(e),
            };
        }
        let f = unsafe { File::from_raw_fd(fd) };
        f.metadata().map(Some)
    }

    /// Our record of what is at `path` now.
    pub fn meta(&mut self, path: &RelPath) -> io::Result<Option<Meta>> {
        Ok(self.lstat(path)?.and_then(|m| Meta::from_std(&m)))
    }

    /// Opens `name` in folder `dir` with `flags` plus `O_NOFOLLOW | O_CLOEXEC`.
    fn open_in(&mut self, dir: &RelPath, name: &[u8], flags: libc::c_int) -> io::Result<File> {
        let dirfd = self.dir(dir)?;
        let name = cstr(name)?;
        let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let fd =
            check(unsafe { libc::openat(dirfd, name.as_ptr(), flags, 0o600 as libc::c_uint) })?;
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Opens a regular file for reading, refusing symlinks.
    pub fn open_read(&mut self, path: &RelPath) -> io::Result<File> {
        self.open_in(&path.parent(), path.file_name(), libc::O_RDONLY)
    }

    /// Creates a new file named `temp` beside `path`, exclusively, mode 0600.
    pub fn create_temp(&mut self, path: &RelPath, temp: &[u8]) -> io::Result<File> {
        self.open_in(
            &path.parent(),
            temp,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
        )
    }

    /// Reopens a temp file created by [`Tree::create_temp`] for writing.
    pub fn reopen_temp(&mut self, path: &RelPath, temp: &[u8]) -> io::Result<File> {
        self.open_in(&path.parent(), temp, libc::O_RDWR)
    }

    /// Renames `temp` (in `path`'s folder) over `path`.
    pub fn rename_temp(&mut self, path: &RelPath, temp: &[u8]) -> io::Result<()> {
        let (dirfd, name) = self.parent(path)?;
        let from = cstr(temp)?;
        check(unsafe { libc::renameat(dirfd, from.as_ptr(), dirfd, name.as_ptr()) }).map(|_| ())
    }

    /// Removes the name `temp` in `path`'s folder, if present.
    pub fn remove_temp(&mut self, path: &RelPath, temp: &[u8]) -> io::Result<()> {
        let dirfd = self.dir(&path.parent())?;
        let name = cstr(temp)?;
        match check(unsafe { libc::unlinkat(dirfd, name.as_ptr(), 0) }) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Creates folder `path` (mode 0700 until its metadata is set).
    pub fn mkdir(&mut self, path: &RelPath) -> io::Result<()> {
        let (dirfd, name) = self.parent(path)?;
        check(unsafe { libc::mkdirat(dirfd, name.as_ptr(), 0o700) }).map(|_| ())
    }

    /// Creates a symlink at `path` (replacing whatever non-folder is there,
    /// atomically, through a temporary name).
    pub fn symlink(&mut self, path: &RelPath, target: &[u8], temp: &[u8]) -> io::Result<()> {
        let (dirfd, name) = self.parent(path)?;
        let t = cstr(target)?;
        let tmp = cstr(temp)?;
        check(unsafe { libc::symlinkat(t.as_ptr(), dirfd, tmp.as_ptr()) })?;
        if let Err(e) = check(unsafe { libc::renameat(dirfd, tmp.as_ptr(), dirfd, name.as_ptr()) })
        {
            unsafe { libc::unlinkat(dirfd, tmp.as_ptr(), 0) };
            return Err(e);
        }
        Ok(())
    }

    /// Makes `path` another name of `leader` (replacing a non-folder).
    pub fn hard_link(&mut self, leader: &RelPath, path: &RelPath, temp: &[u8]) -> io::Result<()> {
        let (ldir, lname) = self.parent(leader)?;
        // Keep the leader's folder open while the cache moves on.
        let ldir = unsafe { libc::fcntl(ldir, libc::F_DUPFD_CLOEXEC, 0) };
        let ldir = unsafe { OwnedFd::from_raw_fd(check(ldir)?) };
        let (dirfd, name) = self.parent(path)?;
        let tmp = cstr(temp)?;
        check(unsafe { libc::linkat(ldir.as_raw_fd(), lname.as_ptr(), dirfd, tmp.as_ptr(), 0) })?;
        if let Err(e) = check(unsafe { libc::renameat(dirfd, tmp.as_ptr(), dirfd, name.as_ptr()) })
        {
            unsafe { libc::unlinkat(dirfd, tmp.as_ptr(), 0) };
            return Err(e);
        }
        Ok(())
    }

    /// Removes a file or symlink (never following it) or an empty folder.
    pub fn remove(&mut self, path: &RelPath, is_dir: bool) -> io::Result<()> {
        let (dirfd, name) = self.parent(path)?;
        let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
        match check(unsafe { libc::unlinkat(dirfd, name.as_ptr(), flags) }) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r.map(|_| ()),
        }?;
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
        let names: Vec<Vec<u8>> = {
            let dirfd = self.dir(path)?;
            let dup = check(unsafe { libc::fcntl(dirfd, libc::F_DUPFD_CLOEXEC, 0) })?;
            read_dir_names(dup)?
        };
        for n in names {
            let mut child = path.as_bytes().to_vec();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(&n);
            let child = RelPath::new(child).map_err(io::Error::other)?;
            removed += self.remove_tree(&child)?;
        }
        self.forget();
        self.remove(path, true)?;
        Ok(removed + 1)
    }

    /// Sets permission bits and mtime on an open file.
    pub fn set_file_meta(file: &File, meta: &Meta) -> io::Result<()> {
        let fd = file.as_raw_fd();
        check(unsafe { libc::fchmod(fd, meta.mode as libc::mode_t) })?;
        let ts = mtime_only(meta.mtime_ns);
        check(unsafe { libc::futimens(fd, ts.as_ptr()) }).map(|_| ())
    }

    /// Sets mode and mtime of the entry at `path` without following a
    /// symlink (a symlink gets its mtime only).
    pub fn set_meta(&mut self, path: &RelPath, meta: &Meta, is_link: bool) -> io::Result<()> {
        let ts = mtime_only(meta.mtime_ns);
        if path.is_root() {
            let fd = self.root.as_raw_fd();
            check(unsafe { libc::fchmod(fd, meta.mode as libc::mode_t) })?;
            return check(unsafe { libc::futimens(fd, ts.as_ptr()) }).map(|_| ());
        }
        let (dirfd, name) = self.parent(path)?;
        if is_link {
            return check(unsafe {
                libc::utimensat(dirfd, name.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
            })
            .map(|_| ());
        }
        // Open without following, then act on the descriptor.
        let fd = check(unsafe {
            libc::openat(
                dirfd,
                name.as_ptr(),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        })?;
        let f = unsafe { OwnedFd::from_raw_fd(fd) };
        check(unsafe { libc::fchmod(f.as_raw_fd(), meta.mode as libc::mode_t) })?;
        check(unsafe { libc::futimens(f.as_raw_fd(), ts.as_ptr()) }).map(|_| ())
    }
}

/// The names in a folder (not `.` and `..`); takes ownership of `fd`.
fn read_dir_names(fd: RawFd) -> io::Result<Vec<Vec<u8>>> {
    let dir = unsafe { libc::fdopendir(fd) };
    if dir.is_null() {
        let e = io::Error::last_os_error();
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let mut names = Vec::new();
    loop {
        let ent = unsafe { libc::readdir64(dir) };
        if ent.is_null() {
            break;
        }
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    unsafe { libc::closedir(dir) };
    Ok(names)
}

/// A temporary name for `path`'s final component: hidden, recognisable,
/// unique per run, and never longer than NAME_MAX.
pub fn temp_name(path: &RelPath, tag: &str) -> Vec<u8> {
    let base = path.file_name();
    let keep = base.len().min(200);
    let mut n = crate::scan::TEMP_PREFIX.as_bytes().to_vec();
    n.extend_from_slice(&base[..keep]);
    n.push(b'.');
    n.extend_from_slice(tag.as_bytes());
    n
}
