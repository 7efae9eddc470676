//! The one error type of the crate: every way starting or running a link
//! can fail, each carrying what the user needs to fix it.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Values that do not make a link (bad address pair, jitter > delay...).
    #[error("{0}")]
    Config(String),
    /// A value typed by the user could not be read.
    #[error(transparent)]
    Parse(#[from] crate::units::ParseError),
    #[error("network namespace '{0}' does not exist (create it first with `ip netns add {0}`)")]
    NoNamespace(String),
    #[error("cannot open /dev/net/tun: {0} (is the tun module loaded, and are we root?)")]
    NoTun(#[source] io::Error),
    /// An `ip` command failed; `stderr` is what it said.
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
