//! Scopes: the part of a tree one watch round looks at.
//!
//! A round names the paths its events named. Each is looked at with its
//! whole subtree (a folder moved in brings its contents; a file has none;
//! a path that is gone takes its old subtree with it), and every folder
//! above it by itself, so that folder times stay right and every entry a
//! round sends has its parent before it. Both sides of a round scan, send
//! and compare only what the scopes cover: what lies outside is neither
//! read nor deleted.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::ByteBuf;

use crate::error::{ProtocolError, Result};
use crate::path::RelPath;

/// Most paths one round may name; a watch turns a bigger burst into a
/// full sync. Bounds the session's opening message (about 100 bytes a
/// path: 10 MB, under the frame limit).
pub const MAX_SCOPES: usize = 100_000;

/// Paths looked at with their subtrees, and the folders above them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes {
    /// Sorted, none inside another.
    trees: Vec<RelPath>,
    /// Every folder above a tree that no tree covers, sorted.
    folders: Vec<RelPath>,
}

impl Scopes {
    /// Scopes for `paths`: each with its subtree.
    pub fn new(paths: impl IntoIterator<Item = RelPath>) -> Scopes {
        let mut trees: Vec<RelPath> = paths.into_iter().collect();
        trees.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        trees.dedup();
        // In byte order a path's subtree follows it (perhaps after
        // siblings such as `a.txt` after `a`), so keep a stack of the
        // trees kept and drop those inside one.
        let mut kept: Vec<RelPath> = Vec::with_capacity(trees.len());
        for t in trees {
            if !kept.iter().rev().any(|k| t.starts_with(k)) {
                kept.push(t);
            }
        }
        let mut folders: Vec<RelPath> = Vec::new();
        for t in &kept {
            let mut at = t.clone();
            while !at.is_root() {
                at = at.parent();
                folders.push(at.clone());
            }
        }
        folders.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        // None is inside a kept tree: its tree would be inside that one.
        folders.dedup();
        Scopes {
            trees: kept,
            folders,
        }
    }

    /// The paths looked at with their subtrees.
    pub fn trees(&self) -> &[RelPath] {
        &self.trees
    }

    /// The folders above them, looked at by themselves.
    pub fn folders(&self) -> &[RelPath] {
        &self.folders
    }

    /// True when the scopes cover the whole tree.
    pub fn whole_tree(&self) -> bool {
        self.trees.iter().any(RelPath::is_root)
    }

    /// True when `path` is a folder above a tree, or in a tree.
    pub fn covers(&self, path: &RelPath) -> bool {
        self.folders
            .binary_search_by(|f| f.as_bytes().cmp(path.as_bytes()))
            .is_ok()
            || covered(&self.trees, path)
    }

    pub fn is_empty(&self) -> bool {
        self.trees.is_empty()
    }
}

/// True when `path` lies in one of `trees` (sorted, none inside another).
fn covered(trees: &[RelPath], path: &RelPath) -> bool {
    // Each ancestor of `path` (and `path` itself) is a candidate.
    let mut at = path.clone();
    loop {
        if trees
            .binary_search_by(|t| t.as_bytes().cmp(at.as_bytes()))
            .is_ok()
        {
            return true;
        }
        if at.is_root() {
            return false;
        }
        at = at.parent();
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let raw: Vec<ByteBuf> = self
            .trees
            .iter()
            .map(|t| ByteBuf::from(t.as_bytes().to_vec()))
            .collect();
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Scopes, D::Error> {
        let raw = Vec::<ByteBuf>::deserialize(d)?;
        Scopes::from_wire(raw).map_err(serde::de::Error::custom)
    }
}

impl Scopes {
    /// Checks a peer's paths: each must be a path sluice could have made,
    /// and there may be at most [`MAX_SCOPES`].
    fn from_wire(raw: Vec<ByteBuf>) -> Result<Scopes> {
        if raw.len() > MAX_SCOPES {
            return Err(
                ProtocolError::over_limit("paths a round names", raw.len(), MAX_SCOPES).into(),
            );
        }
        let paths = raw
            .into_iter()
            .map(|p| RelPath::new(p.into_vec()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Scopes::new(paths))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RelPath {
        RelPath::new(s.as_bytes().to_vec()).unwrap()
    }

    fn names(v: &[RelPath]) -> Vec<String> {
        v.iter().map(|r| r.display()).collect()
    }

    #[test]
    fn trees_inside_trees_go_and_every_folder_above_is_kept() {
        let s = Scopes::new([p("a/b"), p("a/b.txt"), p("a/b/c"), p("x/y/z"), p("a/b")]);
        assert_eq!(names(s.trees()), ["a/b", "a/b.txt", "x/y/z"]);
        assert_eq!(names(s.folders()), [".", "a", "x", "x/y"]);
        for covered in ["a/b", "a/b/c/d", "a/b.txt", "x/y/z/w", "x/y", "a", ""] {
            assert!(s.covers(&p(covered)), "{covered}");
        }
        for not in ["a/c", "x/w", "a/bb", "x/y/zz"] {
            assert!(!s.covers(&p(not)), "{not}");
        }
        assert!(!s.whole_tree());
        assert!(Scopes::new([p("a"), RelPath::root()]).whole_tree());
    }

    #[test]
    fn a_tree_holding_a_folder_above_another_covers_it() {
        let s = Scopes::new([p("a"), p("a/b/c")]);
        assert_eq!(names(s.trees()), ["a"]);
        assert_eq!(names(s.folders()), ["."]);
    }

    #[test]
    fn round_trips_and_refuses_bad_paths() {
        let s = Scopes::new([p("a/b"), p("c")]);
        let bytes = postcard::to_stdvec(&s).unwrap();
        assert_eq!(postcard::from_bytes::<Scopes>(&bytes).unwrap(), s);
        let bad = postcard::to_stdvec(&vec![ByteBuf::from(b"../etc".to_vec())]).unwrap();
        assert!(postcard::from_bytes::<Scopes>(&bad).is_err());
        let many = vec![ByteBuf::from(b"a".to_vec()); MAX_SCOPES + 1];
        let many = postcard::to_stdvec(&many).unwrap();
        assert!(postcard::from_bytes::<Scopes>(&many).is_err());
    }
}
