//! Exit codes, chosen to match rsync's where the meaning is the same.

use sync_core::Error;

/// What `sluice` exits with. Documented in `--help` and the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Everything was done.
    Ok = 0,
    /// An error stopped the run (the message says which).
    Error = 1,
    /// Bad command line (clap exits with 2 itself).
    Usage = 2,
    /// SRC or DST is unusable (missing, not a folder, nested in the other).
    Paths = 3,
    /// The index file is foreign, corrupt or from a newer sluice.
    Index = 5,
    /// The destination disk is full.
    DiskFull = 11,
    /// The peer broke the protocol or runs an incompatible version.
    Protocol = 12,
    /// Partial: some entries could not be read or written; the rest was done.
    Partial = 23,
    /// Deletions stopped by `--max-delete`.
    MaxDelete = 25,
    /// Another run is writing to the destination (rsync has no such code).
    LockBusy = 40,
}

/// The exit code table, as a literal so `--help` texts can `concat!` it.
#[macro_export]
macro_rules! exit_codes_help {
    () => {
        "Exit codes:
  0   success
  1   error (see the message)
  2   bad command line
  3   SRC or DST unusable (missing, not a folder, one inside the other)
  5   index file foreign, corrupt, or written by a newer sluice
  11  destination disk full
  12  protocol error or incompatible peer
  23  partial: some entries could not be read or written (named in warnings)
  25  --max-delete limit reached; nothing was deleted
  40  another run is writing to the destination (see --wait-lock)"
    };
}

/// The codes as a table for `--help`.
pub const HELP: &str = exit_codes_help!();

impl Code {
    /// The code for an error that stopped the run.
    pub fn of_error(err: &anyhow::Error) -> Code {
        match err.chain().find_map(|e| e.downcast_ref::<Error>()) {
            Some(Error::NotAnIndex { .. } | Error::IndexTooNew { .. }) => Code::Index,
            Some(e) if e.is_disk_full() => Code::DiskFull,
            Some(Error::Protocol(_) | Error::Version(_)) => Code::Protocol,
            Some(Error::LockBusy(_)) => Code::LockBusy,
            _ => Code::Error,
        }
    }
}

/// True when the error is stdout having been closed (`sluice diff | head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
