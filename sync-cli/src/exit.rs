//! Exit codes, chosen to match rsync's where the meaning is the same.

use sync_core::Error;

/// What `sluice` exits with. Documented in `--help` and the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Everything was done.
    Ok = 0,
    /// A bad command line, option value, config file or job; or another
    /// error that the message explains (rsync: syntax or usage).
    Usage = 1,
    /// SRC or DST is unusable: missing, not a folder, nested in the other
    /// (rsync: errors selecting input/output files).
    Paths = 3,
    /// The remote end could not be started or reached: ssh failed, no
    /// sluice there, the daemon refused the connection (rsync: error
    /// starting client-server protocol).
    Start = 5,
    /// The connection broke during the run (rsync: socket I/O).
    Socket = 10,
    /// Reading or writing files or the index failed, the disk is full
    /// (rsync: file I/O).
    FileIo = 11,
    /// The peer broke the protocol (rsync: protocol data stream).
    Protocol = 12,
    /// Stopped by SIGINT, SIGTERM or SIGHUP (rsync: the same).
    Interrupted = 20,
    /// Partial: some entries could not be read or written; the rest was done.
    Partial = 23,
    /// Partial only because source files vanished during the run (rsync:
    /// partial transfer due to vanished source files). Any other problem
    /// makes it [`Code::Partial`].
    Vanished = 24,
    /// Deletions stopped by `--max-delete`.
    MaxDelete = 25,
    /// Nothing came from or could be sent to the remote end for
    /// `--timeout` (rsync: timeout in data send/receive).
    Timeout = 30,
    /// No daemon connection within `--contimeout` (rsync: timeout waiting
    /// for daemon connection).
    ConnectTimeout = 35,
    /// Another run is writing to the destination (no rsync code).
    LockBusy = 40,
    /// The peer runs a sluice that speaks another protocol (no rsync code).
    Incompatible = 41,
    /// The daemon did not accept us: its key is not `--server-key`, or
    /// ours may not use the module (no rsync code).
    Refused = 42,
    /// The index file is foreign, corrupt or from a newer sluice (no
    /// rsync code).
    Index = 43,
}

/// The exit code table, as a literal so `--help` texts can `concat!` it.
#[macro_export]
macro_rules! exit_codes_help {
    () => {
        "Exit codes (rsync's numbers where the meaning is the same):
  0   success
  1   bad command line, option, config file or job (or an error the message explains)
  3   SRC or DST unusable (missing, not a folder, one inside the other)
  5   the remote end could not be started or reached (ssh, remote sluice, daemon)
  10  the connection broke during the run
  11  file or index I/O failed (disk full, unwritable destination)
  12  protocol error
  20  stopped by SIGINT, SIGTERM or SIGHUP
  23  partial: some entries could not be read or written (named in warnings)
  24  partial only because source files vanished during the run
  25  --max-delete limit reached; nothing was deleted
  30  nothing came from or could be sent to the remote end for --timeout SECONDS
  35  no daemon connection within --contimeout
  40  another run is writing to the destination (see --wait-lock)
  41  the peer runs an incompatible sluice
  42  the daemon refused us (server key or access)
  43  index file foreign, corrupt, or written by a newer sluice"
    };
}

/// The codes as a table for `--help`.
pub const HELP: &str = exit_codes_help!();

impl Code {
    /// The code for an error that stopped the run.
    pub fn of_error(err: &anyhow::Error) -> Code {
        if let Some(e) = err.chain().find_map(|e| e.downcast_ref::<Error>()) {
            return Code::of(e);
        }
        if err
            .chain()
            .any(|e| e.downcast_ref::<std::io::Error>().is_some())
        {
            return Code::FileIo;
        }
        Code::Usage
    }

    /// The code for one of the engine's errors.
    pub fn of(e: &Error) -> Code {
        match e {
            Error::NotAnIndex { .. } | Error::IndexTooNew { .. } => Code::Index,
            Error::Io { .. } | Error::Sqlite { .. } => Code::FileIo,
            Error::Protocol(_) | Error::UnsafePath { .. } => Code::Protocol,
            Error::Version(_) => Code::Incompatible,
            Error::LockBusy(_) => Code::LockBusy,
            Error::Start(_) => Code::Start,
            Error::Closed(_) => Code::Socket,
            Error::Refused(_) => Code::Refused,
            Error::TimedOut(_) => Code::Timeout,
            Error::ConnectTimeout(_) => Code::ConnectTimeout,
            _ => Code::Usage,
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
