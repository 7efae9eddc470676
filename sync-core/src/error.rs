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
    Protocol(#[from] ProtocolError),
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

/// How a peer broke the protocol: which message or field, and what bound
/// or rule it broke. Data, so tests (and a future fuzzer) can match on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A message that this step of the exchange does not accept.
    #[error("expected {expected}, got {got}")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    /// A count or length over the bound this side accepts.
    #[error("{what}: {value} is over the limit of {limit}")]
    OverLimit {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    /// A reference to a chunk, list or entry that the exchange never named.
    #[error("{what} {index} was never {named}")]
    Unknown {
        what: &'static str,
        index: u64,
        named: &'static str,
    },
    /// Two figures that must agree and do not.
    #[error("{what}: {stated} announced, {found} found")]
    Mismatch {
        what: &'static str,
        stated: u64,
        found: u64,
    },
    /// A message (or field) whose content breaks the protocol's rules.
    #[error("{message}: {problem}")]
    Invalid {
        message: &'static str,
        problem: String,
    },
    /// Bytes that do not decode, decompress or authenticate.
    #[error("{what} does not decode: {why}")]
    Undecodable { what: &'static str, why: String },
    /// A compressed chunk, delta or signature over one of its bounds.
    #[error("{0}")]
    Delta(#[from] crate::delta::DeltaError),
}

impl ProtocolError {
    pub fn unexpected(expected: &'static str, got: &'static str) -> Self {
        ProtocolError::Unexpected { expected, got }
    }

    pub fn over_limit(
        what: &'static str,
        value: impl TryInto<u64>,
        limit: impl TryInto<u64>,
    ) -> Self {
        ProtocolError::OverLimit {
            what,
            value: value.try_into().unwrap_or(u64::MAX),
            limit: limit.try_into().unwrap_or(u64::MAX),
        }
    }

    pub fn unknown(what: &'static str, index: impl TryInto<u64>, named: &'static str) -> Self {
        ProtocolError::Unknown {
            what,
            index: index.try_into().unwrap_or(u64::MAX),
            named,
        }
    }

    pub fn mismatch(
        what: &'static str,
        stated: impl TryInto<u64>,
        found: impl TryInto<u64>,
    ) -> Self {
        ProtocolError::Mismatch {
            what,
            stated: stated.try_into().unwrap_or(u64::MAX),
            found: found.try_into().unwrap_or(u64::MAX),
        }
    }

    pub fn invalid(message: &'static str, problem: impl Into<String>) -> Self {
        ProtocolError::Invalid {
            message,
            problem: problem.into(),
        }
    }

    pub fn undecodable(what: &'static str, why: impl std::fmt::Display) -> Self {
        ProtocolError::Undecodable {
            what,
            why: why.to_string(),
        }
    }
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
