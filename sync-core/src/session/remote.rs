//! Where a sync's ends are, and reaching a remote end over ssh.
//!
//! `[user@]host:path` means ssh (as with rsync: a colon before any slash);
//! `sluice://[user@]host[:port]/path` means a daemon. Anything else is a
//! local path (write `./a:b` for a local name with a colon).

use std::io::{BufReader, BufWriter, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use super::alive::Timed;
use super::serve::PREAMBLE;
use super::StreamTransport;
use crate::error::{Error, Result};

/// One end of a sync, as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    /// `[user@]host:path` over ssh.
    Ssh {
        host: String,
        path: Vec<u8>,
    },
    /// `sluice://[user@]host[:port]/path`, served by `sluice serve`.
    Daemon {
        host: String,
        port: Option<u16>,
        path: String,
    },
}

impl Location {
    /// Parses a command-line argument.
    pub fn parse(arg: &std::ffi::OsStr) -> Location {
        use std::os::unix::ffi::OsStrExt;
        let b = arg.as_bytes();
        if let Some(rest) = b.strip_prefix(b"sluice://") {
            let rest = String::from_utf8_lossy(rest).into_owned();
            let (authority, path) = match rest.find('/') {
                Some(i) => (rest[..i].to_string(), rest[i + 1..].to_string()),
                None => (rest.clone(), String::new()),
            };
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_string(), p.parse().ok()),
                _ => (authority, None),
            };
            return Location::Daemon { host, port, path };
        }
        let colon = b.iter().position(|&c| c == b':');
        let slash = b.iter().position(|&c| c == b'/');
        match colon {
            Some(c) if c > 0 && slash.is_none_or(|s| c < s) => Location::Ssh {
                host: String::from_utf8_lossy(&b[..c]).into_owned(),
                path: if c + 1 == b.len() {
                    b".".to_vec()
                } else {
                    b[c + 1..].to_vec()
                },
            },
            _ => Location::Local(PathBuf::from(arg)),
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self, Location::Local(_))
    }
}

/// How to start the remote end.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// The ssh command and its arguments (`--rsh`), split on whitespace.
    pub rsh: String,
    /// The sluice binary on the remote host (`--remote-sluice`).
    pub remote_sluice: String,
    /// `--contimeout`: passed to ssh as `-o ConnectTimeout=N` when the
    /// command is ssh.
    pub connect_timeout: Option<u64>,
    /// `--timeout`: once the remote sluice has answered, a read or write
    /// on its pipes that cannot proceed for this long fails.
    pub io_timeout: Option<Duration>,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            rsh: "ssh".into(),
            remote_sluice: "sluice".into(),
            connect_timeout: None,
            io_timeout: None,
        }
    }
}

/// A running ssh child and the transport over its pipes.
pub struct SshSession {
    pub child: Child,
    pub transport: StreamTransport<BufReader<Timed<ChildStdout>>, BufWriter<Timed<ChildStdin>>>,
}

impl Drop for SshSession {
    fn drop(&mut self) {
        // Closing our end of the pipes ends the remote side; reap the child.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `RSH host REMOTE_SLUICE serve --stdio` and checks that a sluice
/// server answered (not a banner, not "command not found").
pub fn connect_ssh(host: &str, opts: &SshOptions) -> Result<SshSession> {
    let mut words = opts.rsh.split_whitespace();
    let program = words
        .next()
        .ok_or_else(|| Error::Usage("--rsh is empty".into()))?;
    let mut cmd = Command::new(program);
    if let Some(secs) = opts.connect_timeout.filter(|_| program.ends_with("ssh")) {
        cmd.arg("-o").arg(format!("ConnectTimeout={secs}"));
    }
    cmd.args(words)
        .arg(host)
        .arg(&opts.remote_sluice)
        .args(["serve", "--stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Start(format!("cannot run {program:?} (set --rsh): {e}")))?;
    let stdout = child.stdout.take().expect("piped");
    let stdin = child.stdin.take().expect("piped");
    let mut reader = BufReader::new(Timed::new(stdout));
    let mut got = Vec::with_capacity(PREAMBLE.len());
    let read = (&mut reader)
        .take(PREAMBLE.len() as u64)
        .read_to_end(&mut got);
    if read.is_err() || got.len() < PREAMBLE.len() {
        let status = child.wait().ok().and_then(|s| s.code());
        let why = match status {
            Some(127) => format!(
                "{:?} was not found on {host} (install sluice there, or give its path with --remote-sluice)",
                opts.remote_sluice
            ),
            Some(255) => format!("ssh could not connect to {host} (see ssh's message above)"),
            Some(c) => format!("the remote command ended (exit {c}) before sluice answered"),
            None => "the remote command ended before sluice answered".into(),
        };
        return Err(Error::Start(why));
    }
    if got != PREAMBLE {
        // Only what is already buffered: the remote may still be running.
        let mut line = got.clone();
        line.extend_from_slice(&reader.buffer()[..reader.buffer().len().min(200)]);
        let text = String::from_utf8_lossy(&line);
        let first = text.lines().next().unwrap_or("").trim();
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::Start(format!(
            "the remote shell printed {first:?} on stdout before sluice started; \
             remove that output from the login scripts on {host} (banners belong on stderr)"
        )));
    }
    let mut writer = Timed::new(stdin);
    let timeouts = reader
        .get_mut()
        .set_timeout(opts.io_timeout)
        .and_then(|_| writer.set_timeout(opts.io_timeout));
    if let Err(e) = timeouts {
        return Err(Error::io("<ssh pipes>", e));
    }
    Ok(SshSession {
        child,
        transport: StreamTransport::new(reader, BufWriter::new(writer)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations_like_rsync() {
        let p = |s: &str| Location::parse(std::ffi::OsStr::new(s));
        assert_eq!(
            p("host:dir/x"),
            Location::Ssh {
                host: "host".into(),
                path: b"dir/x".to_vec()
            }
        );
        assert_eq!(
            p("me@host:/abs"),
            Location::Ssh {
                host: "me@host".into(),
                path: b"/abs".to_vec()
            }
        );
        assert_eq!(
            p("host:"),
            Location::Ssh {
                host: "host".into(),
                path: b".".to_vec()
            }
        );
        assert_eq!(p("./a:b"), Location::Local("./a:b".into()));
        assert_eq!(p("/x/a:b"), Location::Local("/x/a:b".into()));
        assert_eq!(p(":x"), Location::Local(":x".into()));
        assert_eq!(
            p("sluice://me@h:7000/backups/x"),
            Location::Daemon {
                host: "me@h".into(),
                port: Some(7000),
                path: "backups/x".into()
            }
        );
    }
}
