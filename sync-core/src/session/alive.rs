//! `--timeout`: noticing a peer that has gone silent, without mistaking a
//! busy one for it.
//!
//! The initiating side bounds every read and write on its connection: no
//! byte for [`SessionOptions::timeout`] seconds ends the run with
//! [`Error::TimedOut`] (a daemon connection uses the socket's timeouts;
//! ssh's pipes are wrapped in [`Timed`], which polls before each read and
//! write). A side can be silent for long stretches while it works: a
//! scan of a million files, a plan, a commit. So while a session runs with
//! a timeout, each half sends [`Msg::Keepalive`] every [`interval`] from a
//! thread of its own ([`Beats`]); transports drop keepalives on reading.
//!
//! What this detects: a broken path, a vanished host, a remote process
//! that is gone or stopped. A remote process that lives but hangs in its
//! own work (say, on a dead NFS mount) still beats; that is the price of
//! never ending a slow but working run.
//!
//! [`SessionOptions::timeout`]: super::SessionOptions::timeout
//! [`Msg::Keepalive`]: super::msg::Msg::Keepalive

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel as chan;
use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::transport::{Pinger, Transport};
use super::SessionOptions;
#[cfg(doc)]
use crate::error::Error;

/// How often a busy side says it is alive under a timeout of `secs`: four
/// times per timeout, so one late or lost beat never ends a run, and at
/// most every 10 s (beats are 5 bytes; a daemon's idle timeout is 30 s).
pub fn interval(secs: u32) -> Duration {
    (Duration::from_secs(secs.into()) / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(10))
}

/// The keepalives of one half of a session: none without a timeout.
pub fn beats(t: &mut dyn Transport, opts: &SessionOptions) -> Beats {
    match opts.timeout {
        0 => Beats::start(None, Duration::ZERO),
        secs => Beats::start(t.pinger(), interval(secs)),
    }
}

/// Test hook: `SLUICE_TEST_STALL=busy:MS` makes a receiver pause for MS
/// after its keepalives started (as during a long scan), `silent:MS`
/// before (as a hung peer would). Read only here.
pub fn test_stall(when: &str) {
    let Ok(v) = std::env::var("SLUICE_TEST_STALL") else {
        return;
    };
    let ms = v.strip_prefix(when).and_then(|r| r.strip_prefix(':'));
    if let Some(ms) = ms.and_then(|m| m.parse().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// A thread that sends keepalives until dropped.
pub struct Beats {
    stop: Option<chan::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Beats {
    /// Starts beating every `every` through `ping` (nothing when `ping` is
    /// `None`). The thread ends at the first failed send: the session then
    /// fails on its own.
    pub fn start(ping: Option<Pinger>, every: Duration) -> Beats {
        let Some(mut ping) = ping else {
            return Beats {
                stop: None,
                thread: None,
            };
        };
        let (stop, stopped) = chan::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("keepalive".into())
            .spawn(move || {
                while let Err(chan::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    if let Err(e) = ping() {
                        tracing::debug!("keepalive not sent: {e}");
                        return;
                    }
                }
            })
            .map_err(|e| tracing::warn!("cannot start the keepalive thread: {e}"))
            .ok();
        Beats {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Beats {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A pipe end whose reads and writes fail with [`io::ErrorKind::TimedOut`]
/// when they cannot proceed for `timeout` (`None`: they wait forever).
pub struct Timed<F> {
    inner: F,
    timeout: Option<Duration>,
}

impl<F: AsFd> Timed<F> {
    /// Wraps `inner`, without a timeout yet.
    pub fn new(inner: F) -> Timed<F> {
        Timed {
            inner,
            timeout: None,
        }
    }

    /// Sets the timeout. With one, the descriptor is made non-blocking so
    /// that a write never blocks past the poll that allowed it.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let flags = rustix::fs::fcntl_getfl(&self.inner)?;
        let flags = match timeout {
            Some(_) => flags | rustix::fs::OFlags::NONBLOCK,
            None => flags - rustix::fs::OFlags::NONBLOCK,
        };
        rustix::fs::fcntl_setfl(&self.inner, flags)?;
        self.timeout = timeout;
        Ok(())
    }

    /// Waits until the descriptor is ready for `flags`, within the timeout.
    fn wait(&self, flags: PollFlags, deadline: Instant, what: &str) -> io::Result<()> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "nothing {what} the other side for {} s (--timeout)",
                        self.timeout.unwrap_or_default().as_secs()
                    ),
                ));
            }
            let left = Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            let mut fds = [PollFd::new(&self.inner, flags)];
            match poll(&mut fds, Some(&left)) {
                Ok(0) => continue,
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl<F: AsFd + Read> Read for Timed<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(timeout) = self.timeout else {
            return self.inner.read(buf);
        };
        let deadline = Instant::now() + timeout;
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(PollFlags::IN, deadline, "came from")?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }
}

impl<F: AsFd + Write> Write for Timed<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(timeout) = self.timeout else {
            return self.inner.write(buf);
        };
        let deadline = Instant::now() + timeout;
        loop {
            match self.inner.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(PollFlags::OUT, deadline, "could be sent to")?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_silent_pipe_times_out_and_a_talking_one_does_not() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut timed = Timed::new(a);
        timed.set_timeout(Some(Duration::from_millis(200))).unwrap();
        b.write_all(b"hi").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(timed.read(&mut buf).unwrap(), 2);
        let started = Instant::now();
        let err = timed.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(err.to_string().contains("--timeout"), "{err}");
    }

    #[test]
    fn a_full_pipe_times_out_on_write() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut timed = Timed::new(a);
        timed.set_timeout(Some(Duration::from_millis(200))).unwrap();
        let block = vec![0u8; 1 << 16];
        let err = (0..10_000)
            .find_map(|_| timed.write_all(&block).err())
            .expect("a socket buffer is finite");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    }

    #[test]
    fn beats_arrive_until_dropped() {
        let (tx, rx) = chan::unbounded();
        let ping: Pinger = Box::new(move || {
            let _ = tx.send(());
            Ok(())
        });
        let beats = Beats::start(Some(ping), Duration::from_millis(10));
        for _ in 0..3 {
            rx.recv_timeout(Duration::from_secs(5)).expect("a beat");
        }
        drop(beats);
        // The thread has ended: its sender is gone once the queue drains.
        while rx.try_recv().is_ok() {}
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(1)),
            Err(chan::RecvTimeoutError::Disconnected)
        ));
    }

    #[test]
    fn the_interval_is_a_quarter_of_the_timeout_within_bounds() {
        assert_eq!(interval(1), Duration::from_millis(250));
        assert_eq!(interval(8), Duration::from_secs(2));
        assert_eq!(interval(600), Duration::from_secs(10));
    }
}
