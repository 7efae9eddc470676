//! The library's error type.
//!
//! Errors carry the context a user needs to act on them: the path, the index
//! file, the peer. They never carry a backtrace or a panic payload: bad input
//! from disk or from a peer is an ordinary, reportable outcome.

use std::path::PathBuf;

/// Every way a sluice operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named path.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The index database failed.
    #[error("index {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The run history database (`sluice log`) failed.
    #[error("{}: {source}", path.display())]
    History {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The file is not a sluice run history, or one written by a newer
    /// sluice; it was not modified.
    #[error("{}: not a usable run history ({reason}); it was left untouched", path.display())]
    NotAHistory { path: PathBuf, reason: String },
    /// The file is not a sluice index (foreign or corrupt); it was not modified.
    #[error("{}: not a sluice index ({reason}); it was left untouched", path.display())]
    NotAnIndex { path: PathBuf, reason: String },
    /// The index was written by a newer sluice; it was not modified.
    #[error(
        "{}: index format {found} was written by a newer sluice (this one reads up to {supported}); it was left untouched",
        path.display()
    )]
    IndexTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("{0}")]
    Config(String),
    /// A path received from a plan or a peer is not a safe relative path.
    #[error("unsafe path {path:?}: {reason}")]
    UnsafePath { path: String, reason: &'static str },
    /// The peer broke the protocol (malformed or unexpected message).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer speaks another protocol version.
    #[error("{0}")]
    Version(String),
    /// The peer reported an error and gave up.
    #[error("peer: {0}")]
    Peer(String),
    /// The user asked for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// Another run holds the destination's lock; the text names it.
    #[error("{0}")]
    LockBusy(String),
    /// The remote end could not be started or reached (ssh failed, no
    /// sluice there, the daemon refused or did not answer the connection).
    #[error("{0}")]
    Start(String),
    /// The connection to the peer ended in the middle of a session.
    #[error("{0}")]
    Closed(String),
    /// The daemon did not accept us (its key is not the pinned one, or
    /// ours is not allowed on the module).
    #[error("{0}")]
    Refused(String),
    /// The peer said nothing for longer than allowed.
    #[error("{0}")]
    TimedOut(String),
    /// The daemon's connection or handshake took longer than
    /// `--contimeout`.
    #[error("{0}")]
    ConnectTimeout(String),
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps an SQLite error with the index file it happened on.
    pub fn sqlite(path: impl Into<PathBuf>, source: rusqlite::Error) -> Self {
        Error::Sqlite {
            path: path.into(),
            source,
        }
    }

    /// Wraps an SQLite error with the run history file it happened on.
    pub fn history(path: impl Into<PathBuf>, source: rusqlite::Error) -> Self {
        Error::History {
            path: path.into(),
            source,
        }
    }

    /// True when the error is the disk (or quota) being full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(
                rustix::io::Errno::from_io_error(source),
                Some(rustix::io::Errno::NOSPC | rustix::io::Errno::DQUOT)
            ),
            Error::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DiskFull)
            ),
            _ => false,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
