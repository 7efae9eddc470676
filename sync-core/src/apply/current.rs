//! [`CurrentFile`]: the path of a file being written, for a progress
//! display. It never slows the writers: they only look at a flag.
//!
//! The display asks ([`CurrentFile::ask`]) each time it draws; the next
//! writer to start a file answers by storing that file's path. A million
//! small files thus cost one relaxed atomic load each, and one path copy
//! per frame (10 a second) at most.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// A sampled "file being written now".
#[derive(Debug, Default)]
pub struct CurrentFile {
    asked: AtomicBool,
    path: Mutex<String>,
}

impl CurrentFile {
    /// The display wants a fresh path: the next file started answers.
    pub fn ask(&self) {
        self.asked.store(true, Ordering::Relaxed);
    }

    /// A writer starts a file: stores its path if asked (`path` is only
    /// called then).
    pub fn offer(&self, path: impl FnOnce() -> String) {
        if self.asked.load(Ordering::Relaxed) && self.asked.swap(false, Ordering::Relaxed) {
            let path = path();
            *self.path.lock().unwrap_or_else(|e| e.into_inner()) = path;
        }
    }

    /// The last path stored (empty before any).
    pub fn get(&self) -> String {
        self.path.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::CurrentFile;

    #[test]
    fn answers_only_when_asked() {
        let c = CurrentFile::default();
        c.offer(|| unreachable!("not asked yet"));
        assert_eq!(c.get(), "");
        c.ask();
        c.offer(|| "a/b".into());
        c.offer(|| unreachable!("answered already"));
        assert_eq!(c.get(), "a/b");
    }
}
