//! Step 4 of planning a window: each source entry, in path order (parents
//! first), against the destination's entry at its path.
//!
//! A folder is created or has its metadata fixed; a symlink is made again
//! when its target changed; a file is linked to its hard-link leader, has
//! its metadata fixed when its content is the same, or is assembled from
//! pieces: chunks the destination holds (in place, or rescued from a file
//! this plan overwrites) and chunks the transfer stream brings, each
//! shipped once however many files need it.

use std::collections::HashMap;

use super::diff::{change, same_dir_meta, Elsewhere, Planner};
use super::op::*;
use super::Plan;
use crate::chunk::{ChunkRef, Hash};
use crate::entry::{Entry, Kind};
use crate::manifest::{ChunkLocation, Manifest};
use crate::path::RelPath;

/// Where a window's chunks can come from, and the slots already given.
#[derive(Default)]
pub(super) struct Sources<'a> {
    /// Hard-linked source files that are not their group's leader.
    pub followers: HashMap<&'a RelPath, RelPath>,
    /// Chunks in destination files this plan leaves alone.
    pub stable: HashMap<Hash, ChunkLocation>,
    /// Chunks only in destination files this plan overwrites or deletes.
    pub endangered: HashMap<Hash, ChunkLocation>,
    rescue_slot: HashMap<Hash, u32>,
    stream_slot: HashMap<Hash, u32>,
}

impl<'a> Sources<'a> {
    pub fn new(followers: HashMap<&'a RelPath, RelPath>) -> Self {
        Sources {
            followers,
            ..Sources::default()
        }
    }
}

impl Planner {
    /// Plans source entry `s`; `d` is the destination's entry at its path.
    pub(super) fn plan_entry(
        &mut self,
        s: &Entry,
        d: Option<&Entry>,
        dst: &Manifest,
        elsewhere: &dyn Elsewhere,
        sources: &mut Sources<'_>,
        plan: &mut Plan,
    ) {
        let path = &s.path;
        if s.meta.kind == Kind::File {
            plan.stats.files_total += 1;
            plan.stats.bytes_total += s.meta.size;
        }
        if self.protected(path) || self.conflicts.iter().any(|(c, _)| path.starts_with(c)) {
            return;
        }
        match s.meta.kind {
            Kind::Dir => self.plan_dir(s, d, plan),
            Kind::Symlink => plan_symlink(s, d, plan),
            Kind::File => {
                if let Some(leader) = sources.followers.get(path) {
                    let leader_now = dst.get(leader).cloned().or_else(|| elsewhere.entry(leader));
                    plan_follower(s, d, leader, leader_now, plan);
                } else {
                    self.plan_file(s, d, elsewhere, sources, plan);
                }
            }
        }
    }

    fn plan_dir(&mut self, s: &Entry, d: Option<&Entry>, plan: &mut Plan) {
        let path = &s.path;
        if path.is_root() {
            if d.is_none_or(|d| !same_dir_meta(&d.meta, &s.meta)) {
                self.dir_meta(path.clone(), s.meta);
            }
            return;
        }
        match d.filter(|d| d.meta.kind == Kind::Dir) {
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
                let replaces = d.map(|d| d.meta.kind);
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
        }
    }

    fn plan_file(
        &mut self,
        s: &Entry,
        d: Option<&Entry>,
        elsewhere: &dyn Elsewhere,
        sources: &mut Sources<'_>,
        plan: &mut Plan,
    ) {
        let path = &s.path;
        let replaces = d.filter(|d| d.meta.kind != Kind::File).map(|d| d.meta.kind);
        let same_kind = d.filter(|d| d.meta.kind == Kind::File);
        if let Some(d) = same_kind.filter(|d| d.hash == s.hash) {
            if d.meta.mode != s.meta.mode || d.meta.mtime_ns != s.meta.mtime_ns {
                plan.meta.push((path.clone(), s.meta));
                plan.changes.push(change(ChangeKind::Meta, s, None));
                plan.stats.meta_updated += 1;
            }
            return;
        }
        let pieces = s
            .chunks
            .iter()
            .map(|c| self.piece(c, elsewhere, sources, plan))
            .collect();
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

    /// Where chunk `c` of a file being written comes from: the destination
    /// (in this window, a spool of rescued chunks, or outside the window),
    /// else the transfer stream.
    fn piece(
        &self,
        c: &ChunkRef,
        elsewhere: &dyn Elsewhere,
        sources: &mut Sources<'_>,
        plan: &mut Plan,
    ) -> Piece {
        let local = sources
            .stable
            .get(&c.hash)
            .or_else(|| self.extra.get(&c.hash))
            .cloned()
            .or_else(|| {
                // Outside the window, unless this window overwrites it.
                (!sources.endangered.contains_key(&c.hash))
                    .then(|| elsewhere.chunk(&c.hash, c.length))
                    .flatten()
            });
        if let Some(from) = local {
            plan.stats.bytes_reused += c.length as u64;
            return Piece::Local { chunk: *c, from };
        }
        if let Some(loc) = sources.endangered.get(&c.hash) {
            plan.stats.bytes_reused += c.length as u64;
            let next = plan.rescue.len() as u32;
            let slot = *sources.rescue_slot.entry(c.hash).or_insert_with(|| {
                plan.rescue.push((c.hash, loc.clone()));
                next
            });
            return Piece::Rescued { chunk: *c, slot };
        }
        let next = plan.stream.len() as u32;
        let stream = *sources.stream_slot.entry(c.hash).or_insert_with(|| {
            plan.stream.push(StreamChunk {
                hash: c.hash,
                length: c.length,
            });
            plan.stats.chunk_bytes_to_send += c.length as u64;
            next
        });
        Piece::Remote { chunk: *c, stream }
    }
}

fn plan_symlink(s: &Entry, d: Option<&Entry>, plan: &mut Plan) {
    let replaces = d
        .filter(|d| d.meta.kind != Kind::Symlink)
        .map(|d| d.meta.kind);
    match d.filter(|d| d.meta.kind == Kind::Symlink) {
        Some(d) if d.target == s.target => {
            if d.meta.mtime_ns != s.meta.mtime_ns {
                plan.meta.push((s.path.clone(), s.meta));
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
    }
}

/// A hard-linked file that is not its group's leader: linked to the
/// leader unless it already is, with the same content.
fn plan_follower(
    s: &Entry,
    d: Option<&Entry>,
    leader: &RelPath,
    leader_now: Option<Entry>,
    plan: &mut Plan,
) {
    let same_kind = d.filter(|d| d.meta.kind == Kind::File);
    let linked = same_kind.zip(leader_now).is_some_and(|(d, l)| {
        d.meta.ino == l.meta.ino && d.meta.dev == l.meta.dev && d.hash == s.hash
    });
    if !linked {
        plan.hard_links.push(HardLinkOp {
            path: s.path.clone(),
            leader: leader.clone(),
            meta: s.meta,
            replaces: d.map(|d| d.meta.kind),
        });
        plan.changes
            .push(change(ChangeKind::HardLink, s, Some(leader.clone())));
    }
}
