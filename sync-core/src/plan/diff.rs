//! `diff(source, destination) → Plan`, whole or window by window.
//!
//! A [`Planner`] plans a tree in windows: consecutive path ranges of the
//! source with the destination's entries of the same range. What must hold
//! for the whole tree (hard-link leaders, deletions, folder metadata, the
//! renames shown) is kept between windows and settled by
//! [`Planner::finish`]; what lies outside the window at the destination
//! (a chunk held by a file elsewhere, a folder's children past the window)
//! is asked of an [`Elsewhere`]. So a session holds one window of a tree of
//! millions, not the tree. [`diff`] is one window over whole manifests.

use std::collections::{HashMap, HashSet};

use super::op::*;
use super::walk::Sources;
use super::{Plan, PlanOptions, PlanStats};
use crate::chunk::Hash;
use crate::entry::{Entry, Kind, Meta};
use crate::manifest::{ChunkLocation, Manifest, Pair};
use crate::path::RelPath;

/// What the destination holds outside the window being planned.
pub trait Elsewhere {
    /// A place outside the window holding a chunk with this hash and length.
    fn chunk(&self, hash: &Hash, length: u32) -> Option<ChunkLocation>;
    /// The destination's entry at `path`, outside the window.
    fn entry(&self, path: &RelPath) -> Option<Entry>;
    /// True when the folder `path` has entries below it outside the window.
    fn has_children(&self, path: &RelPath) -> bool;
}

/// The window is the whole destination: nothing lies elsewhere.
pub struct Nowhere;

impl Elsewhere for Nowhere {
    fn chunk(&self, _: &Hash, _: u32) -> Option<ChunkLocation> {
        None
    }
    fn entry(&self, _: &RelPath) -> Option<Entry> {
        None
    }
    fn has_children(&self, _: &RelPath) -> bool {
        false
    }
}

/// Computes the plan that makes `dst` mirror `src`.
pub fn diff(src: &Manifest, dst: &Manifest, opts: &PlanOptions) -> Plan {
    let mut planner = Planner::new(opts.clone(), usize::MAX);
    let mut plan = planner.window(src, dst, &Nowhere);
    let last = planner.finish();
    plan.deletes = last.deletes;
    plan.dir_meta = last.dir_meta;
    plan.changes = planner.take_changes();
    plan.stats = planner.stats.clone();
    plan
}

/// A destination entry that goes away.
pub(super) struct Doomed {
    pub(super) path: RelPath,
    pub(super) kind: Kind,
    pub(super) hash: Option<Hash>,
    /// Replaced by a source entry of another kind (not a deletion).
    pub(super) replaced: bool,
}

/// Plans a tree window by window; see the module comment.
pub struct Planner {
    pub(super) opts: PlanOptions,
    /// How many change lines to keep (`usize::MAX`: all of them; 0:
    /// deletions only, which `--max-delete` reports). A bound keeps the
    /// first lines of a huge run for its history without holding them all.
    pub(super) keep_changes: usize,
    pub(super) extra: HashMap<Hash, ChunkLocation>,
    pub(super) conflicts: Vec<(RelPath, String)>,
    /// First path of each hard-linked source file, by (device, inode).
    pub(super) leaders: HashMap<(u64, u64), RelPath>,
    pub(super) doomed: Vec<Doomed>,
    pub(super) replaced: HashSet<RelPath>,
    /// Every source folder's metadata (parents of changed entries get it
    /// back at the end).
    pub(super) src_dirs: HashMap<RelPath, Meta>,
    pub(super) touched: HashSet<RelPath>,
    pub(super) dir_meta: Vec<(RelPath, Meta)>,
    /// Created files by content, to show a deleted one as renamed.
    pub(super) created_by_hash: HashMap<Hash, RelPath>,
    pub(super) changes: Vec<Change>,
    /// Totals over every window planned (and the deletions, once finished).
    pub stats: PlanStats,
}

impl Planner {
    pub fn new(mut opts: PlanOptions, keep_changes: usize) -> Planner {
        let mut extra = HashMap::new();
        for (hash, loc) in std::mem::take(&mut opts.extra_sources) {
            extra.entry(hash).or_insert(loc);
        }
        Planner {
            opts,
            keep_changes,
            extra,
            conflicts: Vec::new(),
            leaders: HashMap::new(),
            doomed: Vec::new(),
            replaced: HashSet::new(),
            src_dirs: HashMap::new(),
            touched: HashSet::new(),
            dir_meta: Vec::new(),
            created_by_hash: HashMap::new(),
            changes: Vec::new(),
            stats: PlanStats::default(),
        }
    }

    pub(super) fn protected(&self, p: &RelPath) -> bool {
        self.opts
            .protect
            .iter()
            .any(|q| p.starts_with(q) || q.starts_with(p))
    }

    /// Plans one window: `src` holds the source's entries of a path range
    /// (every entry after the previous window's), `dst` the destination's
    /// entries of the same range. The plan's deletions and folder metadata
    /// wait for [`Planner::finish`]; its change lines are kept here.
    pub fn window(&mut self, src: &Manifest, dst: &Manifest, elsewhere: &dyn Elsewhere) -> Plan {
        let mut plan = Plan::default();
        let pairs = crate::manifest::pair_up(src, dst);
        for e in src.entries.values().filter(|e| e.meta.kind == Kind::Dir) {
            self.src_dirs.insert(e.path.clone(), e.meta);
        }
        let doomed = self.doom(&pairs, dst, elsewhere, &mut plan);
        let followers = self.link_groups(src);
        let mut sources = self.chunk_sources(&pairs, dst, doomed, followers);
        for p in &pairs {
            if let Some(s) = p.src {
                self.plan_entry(s, p.dst, dst, elsewhere, &mut sources, &mut plan);
            }
        }
        self.close_window(&mut plan);
        plan
    }

    /// Step 1: the destination entries that go away, deleted (with
    /// `--delete`) or replaced by an entry of another kind; a non-empty
    /// folder in the way of a file is a conflict without `--delete`.
    fn doom<'a>(
        &mut self,
        pairs: &[Pair<'a>],
        dst: &Manifest,
        elsewhere: &dyn Elsewhere,
        plan: &mut Plan,
    ) -> HashSet<&'a RelPath> {
        let mut doomed = HashSet::new();
        for p in pairs {
            let Some(d) = p.dst else { continue };
            let path = &d.path;
            if path.is_root() {
                continue;
            }
            let replaced = match p.src {
                Some(s) if s.meta.kind == d.meta.kind => continue,
                Some(_) if self.protected(path) => continue,
                Some(_)
                    if d.meta.kind == Kind::Dir
                        && !self.opts.delete
                        && (has_children(dst, path) || elsewhere.has_children(path)) =>
                {
                    // As rsync: a non-empty folder is only replaced with --delete.
                    let why = "a non-empty folder is in the way; use --delete to replace it";
                    self.conflicts.push((path.clone(), why.into()));
                    plan.conflicts.push((path.clone(), why.into()));
                    continue;
                }
                Some(_) => true,
                None if self.protected(path) || !self.opts.delete => continue,
                None => false,
            };
            doomed.insert(path);
            if replaced {
                self.replaced.insert(path.clone());
            }
            self.doomed.push(Doomed {
                path: path.clone(),
                kind: d.meta.kind,
                hash: d.hash,
                replaced,
            });
        }
        doomed
    }

    /// Step 2: hard-link groups among the window's source files (with
    /// `--hard-links`): each follower and its group's leader, the first
    /// path of the group in the whole tree.
    fn link_groups<'a>(&mut self, src: &'a Manifest) -> HashMap<&'a RelPath, RelPath> {
        let mut followers = HashMap::new();
        if !self.opts.hard_links {
            return followers;
        }
        for e in src.files().filter(|e| e.meta.nlink > 1) {
            match self.leaders.get(&(e.meta.dev, e.meta.ino)) {
                Some(leader) => {
                    followers.insert(&e.path, leader.clone());
                }
                None => {
                    self.leaders
                        .insert((e.meta.dev, e.meta.ino), e.path.clone());
                }
            }
        }
        followers
    }

    /// Step 3: where the destination holds each chunk in this window,
    /// split by whether the plan overwrites or deletes that file (then the
    /// chunk must be rescued before the first write).
    fn chunk_sources<'a>(
        &self,
        pairs: &[Pair<'a>],
        dst: &Manifest,
        doomed: HashSet<&'a RelPath>,
        followers: HashMap<&'a RelPath, RelPath>,
    ) -> Sources<'a> {
        let mut overwritten = doomed;
        for p in pairs {
            let (Some(e), Some(d)) = (p.src, p.dst) else {
                continue;
            };
            if e.meta.kind != Kind::File || self.protected(&e.path) {
                continue;
            }
            if d.meta.kind == Kind::File && d.hash != e.hash {
                overwritten.insert(&e.path);
            }
        }
        let mut sources = Sources::new(followers);
        // The chunk maps cost a hash-map entry per destination chunk: build them
        // only when some source file's content is missing at its path.
        let content_needed = pairs.iter().any(|p| {
            p.content_missing()
                && p.src.is_some_and(|e| {
                    !self.protected(&e.path) && !sources.followers.contains_key(&e.path)
                })
        });
        for d in dst.files().filter(|_| content_needed) {
            let map = if overwritten.contains(&d.path) {
                &mut sources.endangered
            } else {
                &mut sources.stable
            };
            for c in &d.chunks {
                map.entry(c.hash).or_insert_with(|| ChunkLocation {
                    path: d.path.clone(),
                    offset: c.offset,
                    length: c.length,
                });
            }
        }
        sources
    }

    /// Step 5: folders whose entries were written get their metadata back
    /// at the end (writing changes a folder's mtime); the window's totals
    /// and change lines join the planner's.
    fn close_window(&mut self, plan: &mut Plan) {
        let parents: Vec<RelPath> = plan
            .changes
            .iter()
            .filter(|c| c.change != ChangeKind::Meta)
            .flat_map(|c| {
                std::iter::once(c.path.parent()).chain(c.from.as_ref().map(|f| f.parent()))
            })
            .collect();
        for p in parents {
            self.touch(p);
        }
        add_stats(&mut self.stats, &plan.stats);
        let room = self.keep_changes.saturating_sub(self.changes.len());
        self.changes.extend(plan.changes.iter().take(room).cloned());
    }

    pub(super) fn dir_meta(&mut self, path: RelPath, meta: Meta) {
        if self.touched.insert(path.clone()) {
            self.dir_meta.push((path, meta));
        }
    }

    /// The folder `p` will need its metadata set again.
    pub(super) fn touch(&mut self, p: RelPath) {
        if !self.touched.contains(&p) {
            if let Some(meta) = self.src_dirs.get(&p).copied() {
                self.dir_meta(p, meta);
            }
        }
    }

    /// The change lines kept so far (all of them once finished), in path order.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }
}

pub(super) fn add_stats(total: &mut PlanStats, s: &PlanStats) {
    total.files_total += s.files_total;
    total.bytes_total += s.bytes_total;
    total.files_created += s.files_created;
    total.files_updated += s.files_updated;
    total.dirs_created += s.dirs_created;
    total.symlinks_created += s.symlinks_created;
    total.meta_updated += s.meta_updated;
    total.entries_deleted += s.entries_deleted;
    total.files_deleted += s.files_deleted;
    total.bytes_to_write += s.bytes_to_write;
    total.chunk_bytes_to_send += s.chunk_bytes_to_send;
    total.bytes_reused += s.bytes_reused;
}

pub(super) fn change(kind: ChangeKind, e: &Entry, from: Option<RelPath>) -> Change {
    Change {
        change: kind,
        path: e.path.clone(),
        kind: e.meta.kind,
        from,
    }
}

pub(super) fn same_dir_meta(a: &Meta, b: &Meta) -> bool {
    a.mode == b.mode && a.mtime_ns == b.mtime_ns
}

/// True when the folder at `path` has entries below it.
fn has_children(m: &Manifest, path: &RelPath) -> bool {
    // Children sort after "path/", not necessarily right after "path"
    // ("a b" < "a/x" bytewise).
    let mut prefix = path.as_bytes().to_vec();
    prefix.push(b'/');
    let start = RelPath::bound(prefix);
    m.entries
        .range(start..)
        .next()
        .is_some_and(|(p, _)| p.starts_with(path))
}
