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
use super::{Plan, PlanOptions, PlanStats};
use crate::chunk::Hash;
use crate::entry::{Entry, Kind, Meta};
use crate::manifest::{ChunkLocation, Manifest};
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
struct Doomed {
    path: RelPath,
    kind: Kind,
    hash: Option<Hash>,
    /// Replaced by a source entry of another kind (not a deletion).
    replaced: bool,
}

/// Plans a tree window by window; see the module comment.
pub struct Planner {
    opts: PlanOptions,
    /// How many change lines to keep (`usize::MAX`: all of them; 0:
    /// deletions only, which `--max-delete` reports). A bound keeps the
    /// first lines of a huge run for its history without holding them all.
    keep_changes: usize,
    extra: HashMap<Hash, ChunkLocation>,
    conflicts: Vec<(RelPath, String)>,
    /// First path of each hard-linked source file, by (device, inode).
    leaders: HashMap<(u64, u64), RelPath>,
    doomed: Vec<Doomed>,
    replaced: HashSet<RelPath>,
    /// Every source folder's metadata (parents of changed entries get it
    /// back at the end).
    src_dirs: HashMap<RelPath, Meta>,
    touched: HashSet<RelPath>,
    dir_meta: Vec<(RelPath, Meta)>,
    /// Created files by content, to show a deleted one as renamed.
    created_by_hash: HashMap<Hash, RelPath>,
    changes: Vec<Change>,
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

    fn protected(&self, p: &RelPath) -> bool {
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

        // 1. Which destination entries go away (deleted, or replaced by another kind).
        let mut doomed: HashSet<&RelPath> = HashSet::new();
        for p in &pairs {
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

        // 2. Hard-link groups among source files.
        let mut follower_of: HashMap<&RelPath, RelPath> = HashMap::new();
        if self.opts.hard_links {
            for e in src.files().filter(|e| e.meta.nlink > 1) {
                match self.leaders.get(&(e.meta.dev, e.meta.ino)) {
                    Some(leader) => {
                        follower_of.insert(&e.path, leader.clone());
                    }
                    None => {
                        self.leaders
                            .insert((e.meta.dev, e.meta.ino), e.path.clone());
                    }
                }
            }
        }

        // 3. Files whose content changes make their chunks unsafe to read later.
        let mut overwritten: HashSet<&RelPath> = doomed.clone();
        for p in &pairs {
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
        let mut stable: HashMap<Hash, ChunkLocation> = HashMap::new();
        let mut endangered: HashMap<Hash, ChunkLocation> = HashMap::new();
        // The chunk maps cost a hash-map entry per destination chunk: build them
        // only when some source file's content is missing at its path.
        let content_needed = pairs.iter().any(|p| {
            p.content_missing()
                && p.src
                    .is_some_and(|e| !self.protected(&e.path) && !follower_of.contains_key(&e.path))
        });
        for d in dst.files().filter(|_| content_needed) {
            let map = if overwritten.contains(&d.path) {
                &mut endangered
            } else {
                &mut stable
            };
            for c in &d.chunks {
                map.entry(c.hash).or_insert_with(|| ChunkLocation {
                    path: d.path.clone(),
                    offset: c.offset,
                    length: c.length,
                });
            }
        }

        // 4. Walk the source in path order (parents first).
        let mut rescue_slot: HashMap<Hash, u32> = HashMap::new();
        let mut stream_slot: HashMap<Hash, u32> = HashMap::new();
        for p in &pairs {
            let (Some(s), d) = (p.src, p.dst) else {
                continue;
            };
            let path = &s.path;
            if s.meta.kind == Kind::File {
                plan.stats.files_total += 1;
                plan.stats.bytes_total += s.meta.size;
            }
            if self.protected(path) || self.conflicts.iter().any(|(c, _)| path.starts_with(c)) {
                continue;
            }
            let replaces = d
                .filter(|d| d.meta.kind != s.meta.kind)
                .map(|d| d.meta.kind);
            let same_kind = d.filter(|d| d.meta.kind == s.meta.kind);
            match s.meta.kind {
                Kind::Dir if path.is_root() => {
                    if d.is_none_or(|d| !same_dir_meta(&d.meta, &s.meta)) {
                        self.dir_meta(path.clone(), s.meta);
                    }
                }
                Kind::Dir => match same_kind {
                    Some(d) => {
                        if d.meta.mode != s.meta.mode {
                            plan.changes.push(change(ChangeKind::Meta, s, None));
                            plan.stats.meta_updated += 1;
                        }
                        if !same_dir_meta(&d.meta, &s.meta) {
                            self.dir_meta(path.clone(), s.meta);
                        }
                    }
                    None => {
                        plan.dirs.push(DirOp {
                            path: path.clone(),
                            replaces,
                        });
                        self.dir_meta(path.clone(), s.meta);
                        plan.stats.dirs_created += 1;
                        let kind = if replaces.is_some() {
                            ChangeKind::TypeChange
                        } else {
                            ChangeKind::Create
                        };
                        plan.changes.push(change(kind, s, None));
                    }
                },
                Kind::Symlink => match same_kind {
                    Some(d) if d.target == s.target => {
                        if d.meta.mtime_ns != s.meta.mtime_ns {
                            plan.meta.push((path.clone(), s.meta));
                            plan.changes.push(change(ChangeKind::Meta, s, None));
                            plan.stats.meta_updated += 1;
                        }
                    }
                    _ => {
                        plan.symlinks.push(LinkOp {
                            entry: s.clone(),
                            replaces,
                        });
                        plan.stats.symlinks_created += 1;
                        let kind = match (d, replaces) {
                            (None, _) => ChangeKind::Create,
                            (Some(_), Some(_)) => ChangeKind::TypeChange,
                            (Some(_), None) => ChangeKind::Update,
                        };
                        plan.changes.push(change(kind, s, None));
                    }
                },
                Kind::File => {
                    if let Some(leader) = follower_of.get(path) {
                        let leader_now =
                            dst.get(leader).cloned().or_else(|| elsewhere.entry(leader));
                        let linked = same_kind.zip(leader_now).is_some_and(|(d, l)| {
                            d.meta.ino == l.meta.ino && d.meta.dev == l.meta.dev && d.hash == s.hash
                        });
                        if !linked {
                            plan.hard_links.push(HardLinkOp {
                                path: path.clone(),
                                leader: leader.clone(),
                                meta: s.meta,
                                replaces: d.map(|d| d.meta.kind),
                            });
                            plan.changes.push(change(
                                ChangeKind::HardLink,
                                s,
                                Some(leader.clone()),
                            ));
                        }
                        continue;
                    }
                    if let Some(d) = same_kind.filter(|d| d.hash == s.hash) {
                        if d.meta.mode != s.meta.mode || d.meta.mtime_ns != s.meta.mtime_ns {
                            plan.meta.push((path.clone(), s.meta));
                            plan.changes.push(change(ChangeKind::Meta, s, None));
                            plan.stats.meta_updated += 1;
                        }
                        continue;
                    }
                    let mut pieces = Vec::with_capacity(s.chunks.len());
                    for c in &s.chunks {
                        let local = stable
                            .get(&c.hash)
                            .or_else(|| self.extra.get(&c.hash))
                            .cloned()
                            .or_else(|| {
                                // Outside the window, unless this window
                                // overwrites it.
                                (!endangered.contains_key(&c.hash))
                                    .then(|| elsewhere.chunk(&c.hash, c.length))
                                    .flatten()
                            });
                        let piece = if let Some(from) = local {
                            plan.stats.bytes_reused += c.length as u64;
                            Piece::Local { chunk: *c, from }
                        } else if let Some(loc) = endangered.get(&c.hash) {
                            plan.stats.bytes_reused += c.length as u64;
                            let next = plan.rescue.len() as u32;
                            let slot = *rescue_slot.entry(c.hash).or_insert_with(|| {
                                plan.rescue.push((c.hash, loc.clone()));
                                next
                            });
                            Piece::Rescued { chunk: *c, slot }
                        } else {
                            let next = plan.stream.len() as u32;
                            let stream = *stream_slot.entry(c.hash).or_insert_with(|| {
                                plan.stream.push(StreamChunk {
                                    hash: c.hash,
                                    length: c.length,
                                });
                                plan.stats.chunk_bytes_to_send += c.length as u64;
                                next
                            });
                            Piece::Remote { chunk: *c, stream }
                        };
                        pieces.push(piece);
                    }
                    plan.stats.bytes_to_write += s.meta.size;
                    let kind = match (d, replaces) {
                        (None, _) => {
                            plan.stats.files_created += 1;
                            let room = self.created_by_hash.len() < self.keep_changes;
                            if let Some(h) = s.hash.filter(|_| room) {
                                self.created_by_hash
                                    .entry(h)
                                    .or_insert_with(|| path.clone());
                            }
                            ChangeKind::Create
                        }
                        (Some(_), Some(_)) => {
                            plan.stats.files_created += 1;
                            ChangeKind::TypeChange
                        }
                        (Some(_), None) => {
                            plan.stats.files_updated += 1;
                            ChangeKind::Update
                        }
                    };
                    plan.changes.push(change(kind, s, None));
                    plan.files.push(FileOp {
                        entry: s.clone(),
                        pieces,
                        replaces,
                    });
                }
            }
        }
        // Writing an entry changes its folder's mtime: restore it at the end.
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
        plan
    }

    fn dir_meta(&mut self, path: RelPath, meta: Meta) {
        if self.touched.insert(path.clone()) {
            self.dir_meta.push((path, meta));
        }
    }

    /// The folder `p` will need its metadata set again.
    fn touch(&mut self, p: RelPath) {
        if !self.touched.contains(&p) {
            if let Some(meta) = self.src_dirs.get(&p).copied() {
                self.dir_meta(p, meta);
            }
        }
    }

    /// After the last window: deletions (deepest first; a deleted file whose
    /// content reappears under a new name is shown as a rename) and folder
    /// metadata (deepest first), as a plan of their own.
    pub fn finish(&mut self) -> Plan {
        let mut plan = Plan::default();
        let mut doomed = std::mem::take(&mut self.doomed);
        doomed.sort_by(|a, b| {
            b.path
                .depth()
                .cmp(&a.path.depth())
                .then_with(|| b.path.cmp(&a.path))
        });
        let replaced = std::mem::take(&mut self.replaced);
        let under_replaced = |p: &RelPath| {
            let mut a = p.parent();
            while !a.is_root() {
                if replaced.contains(&a) {
                    return true;
                }
                a = a.parent();
            }
            false
        };
        let mut renamed_to: HashMap<RelPath, RelPath> = HashMap::new();
        let mut changes = Vec::new();
        for d in &doomed {
            // A path replaced by another kind, and everything below it, goes
            // when its replacement is put in place, not in the delete pass.
            if !d.replaced && !under_replaced(&d.path) {
                plan.deletes.push((d.path.clone(), d.kind));
            }
            plan.stats.entries_deleted += 1;
            if d.kind == Kind::File {
                plan.stats.files_deleted += 1;
            }
            if d.replaced {
                continue; // already listed as `T`
            }
            match d.hash.and_then(|h| self.created_by_hash.remove(&h)) {
                Some(new) => {
                    renamed_to.insert(new, d.path.clone());
                }
                None => changes.push(Change {
                    change: ChangeKind::Delete,
                    path: d.path.clone(),
                    kind: d.kind,
                    from: None,
                }),
            }
        }
        for c in &mut self.changes {
            if c.change == ChangeKind::Create {
                if let Some(old) = renamed_to.remove(&c.path) {
                    c.change = ChangeKind::Rename;
                    c.from = Some(old);
                }
            }
        }
        let mut parents: Vec<RelPath> = changes.iter().map(|c| c.path.parent()).collect();
        parents.extend(
            self.changes
                .iter()
                .filter_map(|c| c.from.as_ref().filter(|_| c.change == ChangeKind::Rename))
                .map(|from| from.parent()),
        );
        for p in parents {
            self.touch(p);
        }
        self.changes.extend(changes.iter().cloned());
        plan.changes = changes;
        self.changes.sort_by(|a, b| {
            a.path
                .cmp(&b.path)
                .then(a.change.marker().cmp(&b.change.marker()))
        });
        plan.dir_meta = std::mem::take(&mut self.dir_meta);
        plan.dir_meta
            .sort_by(|a, b| b.0.depth().cmp(&a.0.depth()).then_with(|| b.0.cmp(&a.0)));
        add_stats(&mut self.stats, &plan.stats);
        plan
    }

    /// The change lines kept so far (all of them once finished), in path order.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }
}

fn add_stats(total: &mut PlanStats, s: &PlanStats) {
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

fn change(kind: ChangeKind, e: &Entry, from: Option<RelPath>) -> Change {
    Change {
        change: kind,
        path: e.path.clone(),
        kind: e.meta.kind,
        from,
    }
}

fn same_dir_meta(a: &Meta, b: &Meta) -> bool {
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
