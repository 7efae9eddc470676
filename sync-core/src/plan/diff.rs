//! `diff(source, destination) → Plan`.

use std::collections::{HashMap, HashSet};

use super::op::*;
use super::{Plan, PlanOptions};
use crate::chunk::Hash;
use crate::entry::{Entry, Kind, Meta};
use crate::manifest::{ChunkLocation, Manifest};
use crate::path::RelPath;

/// Computes the plan that makes `dst` mirror `src`.
pub fn diff(src: &Manifest, dst: &Manifest, opts: &PlanOptions) -> Plan {
    let mut plan = Plan::default();
    let protected = |p: &RelPath| {
        opts.protect
            .iter()
            .any(|q| p.starts_with(q) || q.starts_with(p))
    };

    // Every path with its entry on each side, found in one pass over both.
    let pairs = crate::manifest::pair_up(src, dst);

    // 1. Which destination entries go away (deleted, or replaced by another kind).
    let mut doomed: HashSet<&RelPath> = HashSet::new();
    for p in &pairs {
        let Some(d) = p.dst else { continue };
        let path = &d.path;
        if path.is_root() {
            continue;
        }
        match p.src {
            Some(s) if s.meta.kind == d.meta.kind => {}
            Some(_) if protected(path) => {}
            Some(_) if d.meta.kind == Kind::Dir && !opts.delete && has_children(dst, path) => {
                // As rsync: a non-empty folder is only replaced with --delete.
                plan.conflicts.push((
                    path.clone(),
                    "a non-empty folder is in the way; use --delete to replace it".into(),
                ));
            }
            Some(_) => {
                doomed.insert(path);
            }
            None if protected(path) => {}
            None => {
                if opts.delete {
                    doomed.insert(path);
                }
            }
        }
    }

    // 2. Hard-link groups among source files.
    let mut leaders: HashMap<(u64, u64), &RelPath> = HashMap::new();
    let mut follower_of: HashMap<&RelPath, &RelPath> = HashMap::new();
    if opts.hard_links {
        for e in src.files().filter(|e| e.meta.nlink > 1) {
            match leaders.get(&(e.meta.dev, e.meta.ino)) {
                Some(leader) => {
                    follower_of.insert(&e.path, leader);
                }
                None => {
                    leaders.insert((e.meta.dev, e.meta.ino), &e.path);
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
        if e.meta.kind != Kind::File || protected(&e.path) {
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
                .is_some_and(|e| !protected(&e.path) && !follower_of.contains_key(&e.path))
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

    for (hash, loc) in &opts.extra_sources {
        stable.entry(*hash).or_insert_with(|| loc.clone());
    }

    // 4. Walk the source in path order (parents first).
    let mut rescue_slot: HashMap<Hash, u32> = HashMap::new();
    let mut stream_slot: HashMap<Hash, u32> = HashMap::new();
    let mut created_by_hash: HashMap<Hash, RelPath> = HashMap::new();
    for p in &pairs {
        let (Some(s), d) = (p.src, p.dst) else {
            continue;
        };
        let path = &s.path;
        if s.meta.kind == Kind::File {
            plan.stats.files_total += 1;
            plan.stats.bytes_total += s.meta.size;
        }
        if protected(path) || plan.conflicts.iter().any(|(c, _)| path.starts_with(c)) {
            continue;
        }
        let replaces = d
            .filter(|d| d.meta.kind != s.meta.kind)
            .map(|d| d.meta.kind);
        let same_kind = d.filter(|d| d.meta.kind == s.meta.kind);
        match s.meta.kind {
            Kind::Dir if path.is_root() => {
                if d.is_none_or(|d| !same_dir_meta(&d.meta, &s.meta)) {
                    plan.dir_meta.push((path.clone(), s.meta));
                }
            }
            Kind::Dir => match same_kind {
                Some(d) => {
                    if d.meta.mode != s.meta.mode {
                        plan.changes.push(change(ChangeKind::Meta, s, None));
                        plan.stats.meta_updated += 1;
                    }
                    if !same_dir_meta(&d.meta, &s.meta) {
                        plan.dir_meta.push((path.clone(), s.meta));
                    }
                }
                None => {
                    plan.dirs.push(DirOp {
                        path: path.clone(),
                        replaces,
                    });
                    plan.dir_meta.push((path.clone(), s.meta));
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
                    let linked = same_kind.zip(dst.get(leader)).is_some_and(|(d, l)| {
                        d.meta.ino == l.meta.ino && d.meta.dev == l.meta.dev && d.hash == s.hash
                    });
                    if !linked {
                        plan.hard_links.push(HardLinkOp {
                            path: path.clone(),
                            leader: (*leader).clone(),
                            meta: s.meta,
                            replaces: d.map(|d| d.meta.kind),
                        });
                        plan.changes
                            .push(change(ChangeKind::HardLink, s, Some((*leader).clone())));
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
                    let piece = if let Some(loc) = stable.get(&c.hash) {
                        plan.stats.bytes_reused += c.length as u64;
                        Piece::Local {
                            chunk: *c,
                            from: loc.clone(),
                        }
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
                        if let Some(h) = s.hash {
                            created_by_hash.entry(h).or_insert_with(|| path.clone());
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

    // 5. Deletions, deepest first; a deleted file whose content reappears
    // under a new name is shown as a rename.
    let mut deletes: Vec<&Entry> = doomed.iter().filter_map(|p| dst.get(p)).collect();
    deletes.sort_by(|a, b| {
        b.path
            .depth()
            .cmp(&a.path.depth())
            .then_with(|| b.path.cmp(&a.path))
    });
    let mut renamed_to: HashMap<RelPath, RelPath> = HashMap::new();
    let replaced: HashSet<&RelPath> = doomed
        .iter()
        .copied()
        .filter(|p| src.get(p).is_some())
        .collect();
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
    for d in &deletes {
        // A path replaced by another kind, and everything below it, goes
        // when its replacement is put in place, not in the delete pass.
        if !replaced.contains(&d.path) && !under_replaced(&d.path) {
            plan.deletes.push((d.path.clone(), d.meta.kind));
        }
        plan.stats.entries_deleted += 1;
        if d.meta.kind == Kind::File {
            plan.stats.files_deleted += 1;
        }
        if src.get(&d.path).is_some() {
            continue; // replaced by another kind: already listed as `T`
        }
        match d.hash.and_then(|h| created_by_hash.remove(&h)) {
            Some(new) => {
                renamed_to.insert(new, d.path.clone());
            }
            None => plan.changes.push(change(ChangeKind::Delete, d, None)),
        }
    }
    for c in &mut plan.changes {
        if c.change == ChangeKind::Create {
            if let Some(old) = renamed_to.remove(&c.path) {
                c.change = ChangeKind::Rename;
                c.from = Some(old);
            }
        }
    }
    plan.changes.sort_by(|a, b| {
        a.path
            .cmp(&b.path)
            .then(a.change.marker().cmp(&b.change.marker()))
    });
    // Writing or removing an entry changes its folder's mtime: restore it.
    let mut touched: HashSet<RelPath> = plan.dir_meta.iter().map(|(p, _)| p.clone()).collect();
    for c in &plan.changes {
        if c.change == ChangeKind::Meta {
            continue;
        }
        let mut parents = vec![c.path.parent()];
        if let Some(from) = &c.from {
            parents.push(from.parent());
        }
        for p in parents {
            if touched.insert(p.clone()) {
                if let Some(s) = src.get(&p).filter(|s| s.meta.kind == Kind::Dir) {
                    plan.dir_meta.push((p, s.meta));
                }
            }
        }
    }
    plan.dir_meta
        .sort_by(|a, b| b.0.depth().cmp(&a.0.depth()).then_with(|| b.0.cmp(&a.0)));
    plan
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
