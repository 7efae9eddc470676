//! The debouncer: gathers change notices into batches, one batch per round.
//!
//! It owns the timing policy of watch mode and nothing else: no clock, no
//! thread, no file system. The driver hands it each notice with the time it
//! arrived ([`Debouncer::add`], [`Debouncer::rescan`]), asks it when to wake
//! ([`Debouncer::next_wake`]) and takes a [`Batch`] when one is due
//! ([`Debouncer::poll`]). Because time is a parameter, its tests run in
//! virtual time.
//!
//! A batch is due once the tree has been quiet for `quiet`, so the handful of
//! notices one save makes (create, writes, close, rename) become one round;
//! or once `max_delay` has passed since its first notice, so a file rewritten
//! without pause, or a 50,000-file `tar x`, still gets rounds: a few large
//! ones rather than thousands of small ones or none at all.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::path::RelPath;

/// Quiet time that closes a batch: long enough to gather the notices of one
/// save (they come within a few milliseconds), short enough to leave most of
/// the 100 ms median budget (close to mirror) for the round itself.
pub const DEFAULT_QUIET: Duration = Duration::from_millis(20);

/// Longest a batch stays open under a steady stream of changes: a round
/// starts at least every 250 ms, which leaves half of the 500 ms p99 budget
/// for the round's own work.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_millis(250);

/// Distinct paths a batch holds before it becomes a full rescan: about 10 MB
/// of paths, and past this many a rescan (which only reads changed files)
/// costs little more than re-reading the list, while memory stays bounded.
pub const MAX_PATHS: usize = 100_000;

/// What one round should look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Changed paths, deduplicated and sorted. A path inside another listed
    /// path is left out: a round re-reads a listed folder's whole subtree.
    /// Empty when `rescan` is set.
    pub paths: Vec<RelPath>,
    /// Why the whole tree must be rescanned instead, if it must.
    pub rescan: Option<String>,
    /// When the batch's first notice arrived, for measuring latency.
    pub first_event: Instant,
    /// How many notices the batch gathered (paths and rescan requests).
    pub events: usize,
}

/// The batch being gathered.
#[derive(Debug)]
struct Open {
    paths: HashSet<RelPath>,
    rescan: Option<String>,
    first_event: Instant,
    last_event: Instant,
    events: usize,
}

/// Gathers change notices into [`Batch`]es; see the module doc.
#[derive(Debug)]
pub struct Debouncer {
    quiet: Duration,
    max_delay: Duration,
    max_paths: usize,
    open: Option<Open>,
}

impl Debouncer {
    /// A debouncer that closes a batch after `quiet` without notices, or
    /// `max_delay` after its first notice, whichever comes first.
    pub fn new(quiet: Duration, max_delay: Duration) -> Self {
        Debouncer {
            quiet,
            max_delay,
            max_paths: MAX_PATHS,
            open: None,
        }
    }

    /// Sets how many distinct paths a batch holds before it turns into a
    /// full rescan (default [`MAX_PATHS`]).
    pub fn with_max_paths(mut self, max_paths: usize) -> Self {
        self.max_paths = max_paths;
        self
    }

    /// Records that `path` changed at `now`.
    pub fn add(&mut self, path: RelPath, now: Instant) {
        let max_paths = self.max_paths;
        let open = self.touch(now);
        if open.rescan.is_some() {
            // The rescan covers the path.
            return;
        }
        open.paths.insert(path);
        if open.paths.len() > max_paths {
            open.rescan = Some(format!(
                "too many changes at once (more than {max_paths} paths)"
            ));
            open.paths = HashSet::new();
        }
    }

    /// Asks for a full rescan, for `reason`: the batch will say so and
    /// carry no paths, since the rescan covers them. The first reason given
    /// in a batch is the one kept.
    pub fn rescan(&mut self, reason: String, now: Instant) {
        let open = self.touch(now);
        if open.rescan.is_none() {
            open.rescan = Some(reason);
            open.paths = HashSet::new();
        }
    }

    /// The gathered batch if it is due at `now`, leaving the debouncer
    /// empty; `None` if nothing is gathered or the batch is still open.
    pub fn poll(&mut self, now: Instant) -> Option<Batch> {
        let due = self.next_wake()?;
        if now < due {
            return None;
        }
        let open = self.open.take()?;
        Some(Batch {
            paths: outermost(open.paths),
            rescan: open.rescan,
            first_event: open.first_event,
            events: open.events,
        })
    }

    /// When the gathered batch falls due, for the driver's timer; `None`
    /// when nothing is gathered.
    pub fn next_wake(&self) -> Option<Instant> {
        let open = self.open.as_ref()?;
        // A duration too large to add to an Instant means "never"; the other
        // deadline still applies. If both overflow, the batch is due at once
        // rather than never (a notice must not be lost).
        let quiet_end = open.last_event.checked_add(self.quiet);
        let max_end = open.first_event.checked_add(self.max_delay);
        Some(match (quiet_end, max_end) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => open.last_event,
        })
    }

    /// True when no notice is waiting.
    pub fn is_empty(&self) -> bool {
        self.open.is_none()
    }

    /// Opens a batch if none is open and records one notice at `now`.
    fn touch(&mut self, now: Instant) -> &mut Open {
        let open = self.open.get_or_insert_with(|| Open {
            paths: HashSet::new(),
            rescan: None,
            first_event: now,
            last_event: now,
            events: 0,
        });
        // A caller's stale `now` must not move the quiet deadline back.
        open.last_event = open.last_event.max(now);
        open.events = open.events.saturating_add(1);
        open
    }
}

/// The paths sorted, without those that lie inside another one of them.
fn outermost(paths: HashSet<RelPath>) -> Vec<RelPath> {
    if paths.contains(&RelPath::root()) {
        return vec![RelPath::root()];
    }
    let mut out: Vec<RelPath> = paths
        .iter()
        .filter(|path| !has_listed_ancestor(path, &paths))
        .cloned()
        .collect();
    out.sort_unstable();
    out
}

/// True if a proper ancestor of `path` (other than the root) is in `paths`.
/// Walks up the parents rather than comparing neighbours in sorted order:
/// byte order puts `a b` between `a` and `a/b`.
fn has_listed_ancestor(path: &RelPath, paths: &HashSet<RelPath>) -> bool {
    let mut up = path.parent();
    while !up.is_root() {
        if paths.contains(&up) {
            return true;
        }
        up = up.parent();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RelPath {
        RelPath::new(s.as_bytes().to_vec()).unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn debouncer() -> Debouncer {
        Debouncer::new(ms(20), ms(250))
    }

    #[test]
    fn nothing_gathered_means_no_batch_and_no_wake() {
        let t0 = Instant::now();
        let mut d = debouncer();
        assert!(d.is_empty());
        assert_eq!(d.next_wake(), None);
        assert_eq!(d.poll(t0 + ms(1000)), None);
    }

    #[test]
    fn batch_is_due_after_the_quiet_period() {
        let t0 = Instant::now();
        let mut d = debouncer();
        d.add(p("a"), t0);
        d.add(p("b"), t0 + ms(5));
        assert_eq!(d.next_wake(), Some(t0 + ms(25)));
        assert_eq!(d.poll(t0 + ms(24)), None);
        let batch = d.poll(t0 + ms(25)).unwrap();
        assert_eq!(batch.paths, vec![p("a"), p("b")]);
        assert_eq!(batch.rescan, None);
        assert_eq!(batch.first_event, t0);
        assert_eq!(batch.events, 2);
        assert!(d.is_empty());
        assert_eq!(d.poll(t0 + ms(100)), None);
    }

    #[test]
    fn continuous_stream_still_gets_rounds_every_max_delay() {
        let t0 = Instant::now();
        let mut d = debouncer();
        let mut batches = Vec::new();
        // One write every 10 ms for two seconds: never quiet for 20 ms.
        for i in 0..200u64 {
            let now = t0 + ms(i * 10);
            if let Some(batch) = d.poll(now) {
                batches.push(batch);
            }
            d.add(p("log"), now);
        }
        // The first round closes at 250 ms, the next 250 ms after its first
        // event, and so on: 2 s of stream gives 7 full rounds, none early.
        assert_eq!(batches.len(), 7);
        for batch in &batches {
            assert_eq!(batch.paths, vec![p("log")]);
            assert_eq!(batch.events, 25);
        }
        for pair in batches.windows(2) {
            assert_eq!(pair[1].first_event - pair[0].first_event, ms(250));
        }
        // The eighth batch opened at 1750 ms is due at 2000 ms, before its
        // quiet period would end.
        let last = d.next_wake().unwrap();
        assert_eq!(last, t0 + ms(2000));
        assert_eq!(d.poll(last).unwrap().events, 25);
    }

    #[test]
    fn max_delay_bounds_the_wake_under_a_stream() {
        let t0 = Instant::now();
        let mut d = debouncer();
        d.add(p("a"), t0);
        d.add(p("a"), t0 + ms(240));
        // Quiet would end at 260 ms, but the batch is 250 ms old by then.
        assert_eq!(d.next_wake(), Some(t0 + ms(250)));
        d.add(p("b"), t0 + ms(100));
        assert_eq!(d.next_wake(), Some(t0 + ms(250)));
    }

    #[test]
    fn paths_are_deduplicated_sorted_and_outermost() {
        let t0 = Instant::now();
        let mut d = debouncer();
        for s in ["z", "a/b/c", "a b", "a/b", "a", "a b/x", "ab/c", "z", "a/b"] {
            d.add(p(s), t0);
        }
        let batch = d.poll(t0 + ms(20)).unwrap();
        // `a b` and `ab/c` are not inside `a`; `a/b` and `a/b/c` are.
        assert_eq!(batch.paths, vec![p("a"), p("a b"), p("ab/c"), p("z")]);
        assert_eq!(batch.events, 9);
    }

    #[test]
    fn the_root_covers_everything() {
        let t0 = Instant::now();
        let mut d = debouncer();
        d.add(p("a/b"), t0);
        d.add(RelPath::root(), t0);
        d.add(p("c"), t0);
        let batch = d.poll(t0 + ms(20)).unwrap();
        assert_eq!(batch.paths, vec![RelPath::root()]);
        assert_eq!(batch.rescan, None);
    }

    #[test]
    fn rescan_drops_paths_and_keeps_the_first_reason() {
        let t0 = Instant::now();
        let mut d = debouncer();
        d.add(p("a"), t0);
        d.rescan("queue overflow".into(), t0 + ms(5));
        d.add(p("b"), t0 + ms(10));
        d.rescan("later".into(), t0 + ms(12));
        assert_eq!(d.next_wake(), Some(t0 + ms(32)));
        let batch = d.poll(t0 + ms(32)).unwrap();
        assert_eq!(batch.paths, Vec::<RelPath>::new());
        assert_eq!(batch.rescan.as_deref(), Some("queue overflow"));
        assert_eq!(batch.events, 4);
        assert_eq!(batch.first_event, t0);
        // The next batch starts afresh.
        d.add(p("c"), t0 + ms(40));
        let batch = d.poll(t0 + ms(60)).unwrap();
        assert_eq!(batch.paths, vec![p("c")]);
        assert_eq!(batch.rescan, None);
    }

    #[test]
    fn too_many_paths_turn_into_a_rescan() {
        let t0 = Instant::now();
        let mut d = debouncer().with_max_paths(3);
        for s in ["a", "b", "c", "a"] {
            d.add(p(s), t0);
        }
        assert_eq!(d.poll(t0 + ms(20)).unwrap().paths.len(), 3);
        for s in ["a", "b", "c", "d", "e"] {
            d.add(p(s), t0 + ms(30));
        }
        let batch = d.poll(t0 + ms(50)).unwrap();
        assert!(batch.paths.is_empty());
        let reason = batch.rescan.unwrap();
        assert!(reason.contains("too many changes"), "{reason}");
        assert_eq!(batch.events, 5);
    }

    #[test]
    fn the_default_bound_holds_a_large_untar() {
        let t0 = Instant::now();
        let mut d = debouncer();
        for i in 0..MAX_PATHS {
            d.add(p(&format!("d/{i}")), t0);
        }
        assert_eq!(d.poll(t0 + ms(20)).unwrap().paths.len(), MAX_PATHS);
        for i in 0..=MAX_PATHS {
            d.add(p(&format!("d/{i}")), t0 + ms(30));
        }
        assert!(d.poll(t0 + ms(50)).unwrap().rescan.is_some());
    }

    #[test]
    fn a_stale_now_does_not_move_deadlines_back() {
        let t0 = Instant::now();
        let mut d = debouncer();
        d.add(p("a"), t0 + ms(10));
        d.add(p("b"), t0);
        assert_eq!(d.next_wake(), Some(t0 + ms(30)));
    }

    #[test]
    fn zero_and_huge_durations_do_not_panic() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(Duration::ZERO, Duration::MAX);
        d.add(p("a"), t0);
        assert_eq!(d.next_wake(), Some(t0));
        assert!(d.poll(t0).is_some());
        let mut d = Debouncer::new(Duration::MAX, Duration::MAX);
        d.add(p("a"), t0);
        assert_eq!(d.next_wake(), Some(t0));
        assert!(d.poll(t0).is_some());
    }
}
