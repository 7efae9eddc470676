//! The handler notify calls on its own thread: translates each of its
//! events into an [`Event`] (or nothing) and queues it for the driver,
//! replacing what does not fit the queue by one rescan.
//!
//! It never blocks notify's thread and never reads the changed files.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel as chan;
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{ErrorKind, EventKind};

use super::filter::Filter;
use super::trouble::{read_limit, watch_limit_message};
use super::Event;
use crate::path::RelPath;

/// Receives notify's events on its thread and forwards them as [`Event`]s.
pub(super) struct Handler {
    pub(super) root: PathBuf,
    pub(super) filter: Filter,
    pub(super) tx: chan::Sender<Event>,
    /// Events queued beyond which the rest become one rescan.
    pub(super) queue_limit: usize,
    /// True while events are being replaced by the rescan already queued.
    pub(super) dropping: bool,
    /// Set once the watch limit has been reported, so it is said once.
    pub(super) limit_reported: Arc<AtomicBool>,
}

impl notify::EventHandler for Handler {
    fn handle_event(&mut self, event: notify::Result<notify::Event>) {
        let event = match event {
            Ok(event) => self.translate(event),
            Err(err) if matches!(err.kind, ErrorKind::MaxFilesWatch) => {
                if self.limit_reported.swap(true, Ordering::Relaxed) {
                    None
                } else {
                    Some(Event::Trouble(watch_limit_message(read_limit())))
                }
            }
            Err(err) => Some(Event::Trouble(format!(
                "watching {}: {err}; changes may go unseen, so watch falls back \
                 to periodic full rescans",
                self.root.display()
            ))),
        };
        if let Some(event) = event {
            self.send(event);
        }
    }
}

impl Handler {
    /// The event for one notify event; `None` if nothing of interest changed.
    fn translate(&self, event: notify::Event) -> Option<Event> {
        if event.need_rescan() {
            return Some(Event::Rescan(
                "the kernel dropped change notices (inotify queue overflow; \
                 raising fs.inotify.max_queued_events makes it rarer)"
                    .to_string(),
            ));
        }
        match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
            EventKind::Access(_) => return None,
            _ => {}
        }
        let root_gone = matches!(
            event.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From))
        ) && event
            .paths
            .iter()
            .any(|p| self.filter.relative(p).is_some_and(|rel| rel.is_root()));
        if root_gone {
            // The kernel drops a watch whose folder is gone: nothing more
            // would be reported, even if a folder of that name comes back.
            return Some(Event::Trouble(format!(
                "{} was removed or moved away, so its watch ended; watch falls back \
                 to periodic full rescans",
                self.root.display()
            )));
        }
        if event.paths.is_empty() {
            return Some(Event::Rescan(format!(
                "a change notice named no path ({:?})",
                event.kind
            )));
        }
        let paths: Vec<RelPath> = event
            .paths
            .iter()
            .filter_map(|p| self.filter.keep(p))
            .collect();
        (!paths.is_empty()).then_some(Event::Paths(paths))
    }

    /// Queues `event`, or replaces it by a rescan while the queue is full.
    /// Troubles always go through: they are few and say something a rescan
    /// does not.
    fn send(&mut self, event: Event) {
        // Send errors mean the receiver is gone and nobody is listening.
        if self.tx.len() >= self.queue_limit && !matches!(event, Event::Trouble(_)) {
            if !self.dropping {
                self.dropping = true;
                let _ = self.tx.send(Event::Rescan(format!(
                    "more than {} change notices waited to be handled",
                    self.queue_limit
                )));
            }
            return;
        }
        self.dropping = false;
        let _ = self.tx.send(event);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use notify::event::{CreateKind, Flag, MetadataKind, RemoveKind};
    use notify::EventHandler as _;

    use super::*;
    use crate::watch::events::{Ignore, EVENT_QUEUE};

    fn p(s: &str) -> RelPath {
        RelPath::new(s.as_bytes().to_vec()).unwrap()
    }

    /// A handler for a root that does not exist, fed events by hand.
    fn handler(queue_limit: usize) -> (Handler, chan::Receiver<Event>) {
        let root = PathBuf::from("/nonexistent-sluice-root");
        let ignore = Ignore {
            paths: vec![root.join(".index")],
            under: vec![root.join("dest")],
        };
        let (tx, rx) = chan::unbounded();
        let handler = Handler {
            root: root.clone(),
            filter: Filter::new(&root, &ignore).unwrap(),
            tx,
            queue_limit,
            dropping: false,
            limit_reported: Arc::default(),
        };
        (handler, rx)
    }

    fn notice(kind: EventKind, paths: &[&str]) -> notify::Event {
        paths.iter().fold(notify::Event::new(kind), |event, path| {
            event.add_path(Path::new("/nonexistent-sluice-root").join(path))
        })
    }

    #[test]
    fn translate_names_paths_and_drops_reads() {
        let (h, _rx) = handler(EVENT_QUEUE);
        let paths = |v: &[&str]| Some(Event::Paths(v.iter().map(|s| p(s)).collect()));
        let create = EventKind::Create(CreateKind::File);
        assert_eq!(h.translate(notice(create, &["a"])), paths(&["a"]));
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(
            h.translate(notice(both, &["a", "b/c"])),
            paths(&["a", "b/c"])
        );
        let written = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(h.translate(notice(written, &["a"])), paths(&["a"]));
        for read in [
            AccessKind::Open(AccessMode::Any),
            AccessKind::Close(AccessMode::Read),
            AccessKind::Read,
        ] {
            assert_eq!(h.translate(notice(EventKind::Access(read), &["a"])), None);
        }
        // The root itself: its attributes name it, its removal ends the watch.
        let chmod = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));
        assert_eq!(h.translate(notice(chmod, &[""])), paths(&[""]));
        for gone in [
            EventKind::Remove(RemoveKind::Folder),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
        ] {
            let event = h.translate(notice(gone, &[""]));
            assert!(
                matches!(&event, Some(Event::Trouble(t)) if t.contains("moved away")),
                "{event:?}"
            );
            assert_eq!(h.translate(notice(gone, &["a"])), paths(&["a"]));
        }
        // A rename whose one end is ignored.
        assert_eq!(h.translate(notice(both, &["dest/x", "y"])), paths(&["y"]));
        // Outside the root, unstorable, or sluice's own: nothing.
        let any = EventKind::Any;
        let outside = notify::Event::new(any).add_path("/elsewhere/a".into());
        assert_eq!(h.translate(outside), None);
        assert_eq!(h.translate(notice(any, &["a/../b"])), None);
        assert_eq!(h.translate(notice(any, &["d/.sluice-tmp.x.1"])), None);
        assert_eq!(
            h.translate(notice(any, &[".index", "dest", "dest/a/b"])),
            None
        );
        assert_eq!(
            h.translate(notice(any, &[".index-wal"])),
            paths(&[".index-wal"])
        );
    }

    #[test]
    fn overflow_and_pathless_notices_ask_for_a_rescan() {
        let (h, _rx) = handler(EVENT_QUEUE);
        let overflow = notify::Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert!(matches!(h.translate(overflow), Some(Event::Rescan(r)) if r.contains("overflow")));
        let pathless = notify::Event::new(EventKind::Modify(ModifyKind::Any));
        assert!(matches!(h.translate(pathless), Some(Event::Rescan(_))));
    }

    #[test]
    fn a_full_queue_becomes_one_rescan() {
        let (mut h, rx) = handler(2);
        let create = EventKind::Create(CreateKind::File);
        for name in ["a", "b", "c", "d"] {
            h.handle_event(Ok(notice(create, &[name])));
        }
        h.handle_event(Err(notify::Error::generic("read failed")));
        assert_eq!(rx.try_recv().unwrap(), Event::Paths(vec![p("a")]));
        assert_eq!(rx.try_recv().unwrap(), Event::Paths(vec![p("b")]));
        assert!(matches!(rx.try_recv().unwrap(), Event::Rescan(_)));
        assert!(matches!(rx.try_recv().unwrap(), Event::Trouble(t) if t.contains("read failed")));
        assert!(rx.try_recv().is_err());
        // Once drained, events flow again.
        h.handle_event(Ok(notice(create, &["e"])));
        assert_eq!(rx.try_recv().unwrap(), Event::Paths(vec![p("e")]));
    }

    #[test]
    fn the_watch_limit_is_reported_once_with_its_fix() {
        let (mut h, rx) = handler(EVENT_QUEUE);
        for _ in 0..3 {
            h.handle_event(Err(notify::Error::new(ErrorKind::MaxFilesWatch)));
        }
        let Ok(Event::Trouble(message)) = rx.try_recv() else {
            panic!("no trouble reported");
        };
        assert!(
            message.contains("sysctl fs.inotify.max_user_watches="),
            "{message}"
        );
        assert!(message.contains("periodic full rescans"), "{message}");
        assert!(rx.try_recv().is_err());
        let fix = watch_limit_message(Some(8192));
        assert!(
            fix.contains("`sysctl fs.inotify.max_user_watches=16384`"),
            "{fix}"
        );
        assert!(watch_limit_message(None).contains("<twice the current value>"));
    }
}
