//! The kernel's limits and the watch's start failures, in the user's terms
//! and with the command that fixes them.
//!
//! It only words messages (reading the current watch limit for its fix);
//! it never decides what happens after the trouble.

use std::io;
use std::path::Path;

use notify::ErrorKind;
use rustix::io::Errno;

use crate::error::Error;

/// The kernel's limit on watched folders, per user.
const MAX_USER_WATCHES: &str = "/proc/sys/fs/inotify/max_user_watches";
/// The message for the kernel's watch limit, with the fix: twice the
/// `current` limit when it could be read.
pub(super) fn watch_limit_message(current: Option<u64>) -> String {
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
pub(super) fn read_limit() -> Option<u64> {
    std::fs::read_to_string(MAX_USER_WATCHES)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// An error from starting the watch, in the user's terms, naming the path.
pub(super) fn start_error(root: &Path, err: notify::Error) -> Error {
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
