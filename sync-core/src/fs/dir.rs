//! One open folder, and the operations on one name inside it.
//!
//! A [`Dir`] owns a folder's descriptor; every method that takes a `name`
//! acts on that single entry of the folder (`openat`, `fstatat`,
//! `renameat`, … relative to the descriptor) and never follows a symlink
//! standing in the name's place. A name is checked to be one path
//! component first: a `/` in it would make the kernel resolve, and follow
//! symlinks in, the components before the last. This file never walks a
//! path; [`super::Tree`] does, one `Dir` at a time.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;

/// How folders are opened: for listing and as a base for `*at` calls.
const FOLDER: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// Added to every open of a name: no symlink in its place is followed, and
/// no descriptor leaks into a child process.
const CONFINED: OFlags = OFlags::NOFOLLOW.union(OFlags::CLOEXEC);

/// Mode of the files and folders we create, until their own metadata is
/// set: nobody else sees a half-made entry's content.
const PRIVATE_FILE: u32 = 0o600;
const PRIVATE_FOLDER: u32 = 0o700;

/// An open folder.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

/// `name` as one path component, or `InvalidInput`.
fn one(name: &[u8]) -> io::Result<&[u8]> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{:?} is not a single name inside a folder",
                String::from_utf8_lossy(name)
            ),
        ));
    }
    Ok(name)
}

impl Dir {
    /// Opens the folder at `path`, following symlinks on the way: the
    /// caller names a root it chose.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(path, FOLDER, Mode::empty())?;
        Ok(Dir { fd })
    }

    /// Opens the folder at `path`, refusing a symlink as its last component.
    pub fn open_nofollow(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(path, FOLDER | OFlags::NOFOLLOW, Mode::empty())?;
        Ok(Dir { fd })
    }

    /// A second descriptor of the same folder.
    pub fn try_clone(&self) -> io::Result<Dir> {
        let fd = rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)?;
        Ok(Dir { fd })
    }

    /// The folder's own `stat`.
    pub fn stat_self(&self) -> io::Result<Stat> {
        Ok(rustix::fs::fstat(&self.fd)?)
    }

    /// The folder's own metadata, as `std` gives it.
    pub fn metadata_self(&self) -> io::Result<std::fs::Metadata> {
        File::from(self.fd.try_clone()?).metadata()
    }

    /// Sets the folder's own permission bits and mtime.
    pub fn set_meta_self(&self, mode: u32, mtime_ns: i64) -> io::Result<()> {
        set_fd_meta(self.fd.as_fd(), mode, mtime_ns)
    }

    /// The names in the folder (without `.` and `..`), with the type the
    /// listing gives (`Unknown` where the filesystem does not say).
    pub fn names(&self) -> io::Result<Vec<(OsString, FileType)>> {
        let mut out = Vec::new();
        for de in rustix::fs::Dir::read_from(&self.fd)? {
            let de = de?;
            let name = de.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.push((OsStr::from_bytes(name).to_owned(), de.file_type()));
            }
        }
        Ok(out)
    }

    /// Opens the folder `name`, refusing a symlink in its place.
    pub fn open_dir(&self, name: &[u8]) -> io::Result<Dir> {
        let fd = rustix::fs::openat(&self.fd, one(name)?, FOLDER | CONFINED, Mode::empty())?;
        Ok(Dir { fd })
    }

    /// `lstat` of `name`.
    pub fn stat(&self, name: &[u8]) -> io::Result<Stat> {
        Ok(rustix::fs::statat(
            &self.fd,
            one(name)?,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// `lstat` of `name`, as `std` gives it: opened with `O_PATH` (which
    /// works for every kind, a symlink included) and `fstat`ed.
    pub fn metadata(&self, name: &[u8]) -> io::Result<std::fs::Metadata> {
        let fd = rustix::fs::openat(&self.fd, one(name)?, OFlags::PATH | CONFINED, Mode::empty())?;
        File::from(fd).metadata()
    }

    /// The target of the symlink `name`.
    pub fn readlink(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        let target = rustix::fs::readlinkat(&self.fd, one(name)?, Vec::new())?;
        Ok(target.into_bytes())
    }

    /// Opens `name` with `flags`, never through a symlink.
    fn open_file(&self, name: &[u8], flags: OFlags) -> io::Result<File> {
        let mode = Mode::from_raw_mode(PRIVATE_FILE);
        let fd = rustix::fs::openat(&self.fd, one(name)?, flags | CONFINED, mode)?;
        Ok(File::from(fd))
    }

    /// Opens the file `name` for reading.
    pub fn open_read(&self, name: &[u8]) -> io::Result<File> {
        self.open_file(name, OFlags::RDONLY)
    }

    /// Opens the file `name` for reading without touching its access time
    /// where the kernel lets us (`O_NOATIME` needs the file's owner).
    pub fn open_read_noatime(&self, name: &[u8]) -> io::Result<File> {
        match self.open_file(name, OFlags::RDONLY | OFlags::NOATIME) {
            Err(e) if Errno::from_io_error(&e) == Some(Errno::PERM) => self.open_read(name),
            r => r,
        }
    }

    /// Creates the file `name`, which must not exist, for reading and
    /// writing, mode 0600.
    pub fn create_new(&self, name: &[u8]) -> io::Result<File> {
        self.open_file(name, OFlags::RDWR | OFlags::CREATE | OFlags::EXCL)
    }

    /// Opens the existing file `name` for reading and writing.
    pub fn open_rw(&self, name: &[u8]) -> io::Result<File> {
        self.open_file(name, OFlags::RDWR)
    }

    /// Creates the folder `name`, mode 0700.
    pub fn mkdir(&self, name: &[u8]) -> io::Result<()> {
        let mode = Mode::from_raw_mode(PRIVATE_FOLDER);
        Ok(rustix::fs::mkdirat(&self.fd, one(name)?, mode)?)
    }

    /// Renames `from` over `to`, both in this folder.
    pub fn rename(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        Ok(rustix::fs::renameat(
            &self.fd,
            one(from)?,
            &self.fd,
            one(to)?,
        )?)
    }

    /// Removes the file or symlink `name` (never what a symlink points to).
    pub fn unlink(&self, name: &[u8]) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(
            &self.fd,
            one(name)?,
            AtFlags::empty(),
        )?)
    }

    /// Removes the empty folder `name`.
    pub fn rmdir(&self, name: &[u8]) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(
            &self.fd,
            one(name)?,
            AtFlags::REMOVEDIR,
        )?)
    }

    /// Creates the symlink `name` pointing at `target` (stored, never
    /// resolved here).
    pub fn symlink(&self, target: &[u8], name: &[u8]) -> io::Result<()> {
        Ok(rustix::fs::symlinkat(target, &self.fd, one(name)?)?)
    }

    /// Makes `to_name` in folder `to` another name of this folder's `name`
    /// (a symlink there is linked itself, not followed).
    pub fn hard_link(&self, name: &[u8], to: &Dir, to_name: &[u8]) -> io::Result<()> {
        Ok(rustix::fs::linkat(
            &self.fd,
            one(name)?,
            &to.fd,
            one(to_name)?,
            AtFlags::empty(),
        )?)
    }

    /// Sets the permission bits and mtime of `name` without following a
    /// symlink; a symlink (`is_link`) gets its mtime only.
    pub fn set_meta(&self, name: &[u8], mode: u32, mtime_ns: i64, is_link: bool) -> io::Result<()> {
        let name = one(name)?;
        if is_link {
            let times = mtime_only(mtime_ns);
            return Ok(rustix::fs::utimensat(
                &self.fd,
                name,
                &times,
                AtFlags::SYMLINK_NOFOLLOW,
            )?);
        }
        // Open without following, then act on the descriptor; NONBLOCK so a
        // fifo swapped in does not hang the open.
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | CONFINED;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::empty())?;
        set_fd_meta(fd.as_fd(), mode, mtime_ns)
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Sets permission bits and mtime on an open file.
pub fn set_file_meta(file: &File, mode: u32, mtime_ns: i64) -> io::Result<()> {
    set_fd_meta(file.as_fd(), mode, mtime_ns)
}

fn set_fd_meta(fd: BorrowedFd<'_>, mode: u32, mtime_ns: i64) -> io::Result<()> {
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?;
    Ok(rustix::fs::futimens(fd, &mtime_only(mtime_ns))?)
}

/// The `[atime, mtime]` pair that leaves atime alone and sets mtime.
fn mtime_only(mtime_ns: i64) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: mtime_ns.div_euclid(1_000_000_000),
            tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
        },
    }
}
