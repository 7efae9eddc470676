//! Settling a tree's plan after its last window: deletions, renames
//! shown as such, and folder metadata, as a plan of their own.

use std::collections::HashMap;

use super::diff::{add_stats, Planner};
use super::op::*;
use super::Plan;
use crate::entry::Kind;
use crate::path::RelPath;

impl Planner {
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
}
