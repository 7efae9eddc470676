//! The one-message mailbox between a phase's socket thread and its writer
//! thread: only the newest control message waits (each restates its side's
//! state), then the phase's `DataDone`.
//!
//! It never blocks the socket thread on the connection: a TCP connection
//! stalled by loss only delays the writer.

use std::io;
use std::sync::Mutex;

use crate::error::Result;
use crate::session::msg::Msg;
use crate::session::transport::MsgWrite;

/// What waits for the writer thread: the newest control message not yet
/// written (an older one still waiting is replaced: each restates its
/// side's state), then the phase's `DataDone`.
#[derive(Default)]
struct Slot {
    newest: Option<Msg>,
    done: Option<Msg>,
    /// The writer failed; what it said.
    failed: Option<String>,
}

/// A one-message mailbox between a socket thread and the writer thread.
#[derive(Default)]
pub(super) struct Mailbox {
    slot: Mutex<Slot>,
    ready: std::sync::Condvar,
}

impl Mailbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn put(&self, msg: Msg) -> io::Result<()> {
        let mut slot = self.lock();
        if let Some(e) = &slot.failed {
            return Err(io::Error::other(e.clone()));
        }
        slot.newest = Some(msg);
        self.ready.notify_one();
        Ok(())
    }

    pub(super) fn finish(&self, done: Msg) {
        self.lock().done = Some(done);
        self.ready.notify_one();
    }

    /// The writer thread: writes what is put until `DataDone` is written.
    pub(super) fn write_all(&self, writer: &mut dyn MsgWrite) -> Result<()> {
        loop {
            let (msg, last) = {
                let mut slot = self.lock();
                loop {
                    if let Some(m) = slot.newest.take() {
                        break (m, false);
                    }
                    if let Some(m) = slot.done.take() {
                        break (m, true);
                    }
                    slot = self.ready.wait(slot).unwrap_or_else(|p| p.into_inner());
                }
            };
            if let Err(e) = writer.send(&msg) {
                self.lock().failed = Some(e.to_string());
                return Err(e);
            }
            if last {
                return Ok(());
            }
        }
    }
}
