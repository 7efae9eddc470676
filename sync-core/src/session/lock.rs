//! One run at a time per destination.
//!
//! The receiving side takes an exclusive `flock(2)` on a lock file beside
//! the destination's index (`<index>.lock`, so one per destination root, in
//! the state folder rather than the tree) before it changes anything, and
//! holds it until its holder ends: a sync's process, a watch's whole run
//! (its rounds reuse it), a daemon or `serve --stdio` connection. The
//! kernel drops a `flock` when its holder dies, so the lock of a run that
//! was killed is simply taken over. The file's text names the holder
//! (pid, host, start) for the message a second run prints. Dry runs change
//! nothing at the destination and take no lock.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::FlockOperation;

use crate::error::{Error, Result};

/// How often a run waiting for a lock (`--wait-lock`) tries again.
const RETRY: Duration = Duration::from_millis(100);

/// The destination locks one holder has taken, released when the last
/// clone of it is dropped.
#[derive(Clone, Default)]
pub struct Locks(Arc<Mutex<HashMap<PathBuf, File>>>);

impl std::fmt::Debug for Locks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.0.lock().map(|m| m.len()).unwrap_or(0);
        write!(f, "Locks({held} held)")
    }
}

/// The lock file of the destination whose index is `index`.
pub fn lock_path(index: &Path) -> PathBuf {
    let mut p = index.as_os_str().to_owned();
    p.push(".lock");
    p.into()
}

impl Locks {
    /// Takes the lock of the destination whose index is `index`, unless
    /// this holder has it already; a lock another run holds is waited for
    /// up to `wait`, then refused with [`Error::LockBusy`].
    pub fn acquire(&self, index: &Path, wait: Duration) -> Result<()> {
        let path = lock_path(index);
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if held.contains_key(&path) {
            return Ok(());
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let deadline = Instant::now() + wait;
        loop {
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    if Instant::now() >= deadline {
                        return Err(Error::LockBusy(busy_message(&mut file, &path)));
                    }
                    std::thread::sleep(RETRY.min(deadline - Instant::now()));
                }
                Err(e) => return Err(Error::io(&path, e.into())),
            }
        }
        let me = format!(
            "{} {} {}\n",
            std::process::id(),
            unix_now(),
            hostname().replace(char::is_whitespace, "_")
        );
        let wrote = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(me.as_bytes()));
        if let Err(e) = wrote {
            // The lock is held all the same; only the holder's name is lost.
            tracing::warn!("{}: cannot note the lock's holder: {e}", path.display());
        }
        held.insert(path, file);
        Ok(())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// "another sluice run holds ...": who, from the lock file's text.
fn busy_message(file: &mut File, path: &Path) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    let mut words = text.split_whitespace();
    let holder = match (words.next(), words.next(), words.next()) {
        (Some(pid), Some(since), Some(host)) => {
            let ago = since.parse::<u64>().map_or(String::new(), |s| {
                format!(", started {} s ago", unix_now().saturating_sub(s))
            });
            format!("pid {pid} on {host}{ago}")
        }
        _ => "another process".into(),
    };
    format!(
        "another sluice run is writing to this destination ({holder}; lock {}); \
         try again later, or wait for it with --wait-lock SECONDS",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_named_then_takes_over() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("tree.db");
        let first = Locks::default();
        first.acquire(&index, Duration::ZERO).unwrap();
        // The same holder again (a watch's next round): fine.
        first.acquire(&index, Duration::ZERO).unwrap();
        let second = Locks::default();
        let t0 = Instant::now();
        let err = second
            .acquire(&index, Duration::from_millis(300))
            .unwrap_err();
        assert!(t0.elapsed() >= Duration::from_millis(300));
        let Error::LockBusy(msg) = err else {
            panic!("{err}")
        };
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        // The first holder goes (as a killed process would): the lock is
        // free, and a waiting run gets it.
        let waiting = std::thread::spawn({
            let index = index.clone();
            move || Locks::default().acquire(&index, Duration::from_secs(10))
        });
        std::thread::sleep(Duration::from_millis(200));
        drop(first);
        waiting.join().unwrap().unwrap();
    }
}
