//! Relative paths inside a tree, as raw bytes.
//!
//! File names need not be UTF-8, so every path sluice stores or sends is the
//! raw byte string of the path relative to the tree's root, components joined
//! by `/`. The empty path is the root itself. [`RelPath::new`] is the single
//! gate for paths that come from an index or a peer: it refuses anything that
//! could step outside the tree (`..`, absolute paths, empty or `.`
//! components, NUL bytes, over-long names).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Longest path we accept, in bytes (Linux's PATH_MAX).
pub const MAX_PATH_LEN: usize = 4096;
/// Longest single name we accept, in bytes (Linux's NAME_MAX).
pub const MAX_NAME_LEN: usize = 255;

/// A validated path relative to a tree's root.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(Vec<u8>);

impl RelPath {
    /// The root of the tree.
    pub fn root() -> Self {
        RelPath(Vec::new())
    }

    /// Validates raw bytes as a relative path.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self> {
        let bytes = bytes.into();
        if let Err(reason) = check(&bytes) {
            return Err(Error::UnsafePath {
                path: String::from_utf8_lossy(&bytes).into_owned(),
                reason,
            });
        }
        Ok(RelPath(bytes))
    }

    /// A range bound that is not itself a valid path (e.g. `a/`), for
    /// searching sorted maps.
    pub(crate) fn bound(bytes: Vec<u8>) -> Self {
        RelPath(bytes)
    }

    /// `self/name`, for a name read from a folder listing; `None` if the
    /// name is not a single valid component or the result is too long.
    pub fn child(&self, name: &[u8]) -> Option<RelPath> {
        if name.contains(&b'/')
            || name.contains(&0)
            || check_name(name).is_err()
            || self.0.len() + 1 + name.len() > MAX_PATH_LEN
        {
            return None;
        }
        let mut bytes = Vec::with_capacity(self.0.len() + 1 + name.len());
        if !self.0.is_empty() {
            bytes.extend_from_slice(&self.0);
            bytes.push(b'/');
        }
        bytes.extend_from_slice(name);
        Some(RelPath(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Consumes the path, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// True for the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path as an `OsStr`, for joining onto a root.
    pub fn as_os_str(&self) -> &OsStr {
        OsStr::from_bytes(&self.0)
    }

    /// `root` joined with this path.
    pub fn under(&self, root: &Path) -> PathBuf {
        if self.0.is_empty() {
            root.to_path_buf()
        } else {
            root.join(self.as_os_str())
        }
    }

    /// The parent path (the root's parent is the root).
    pub fn parent(&self) -> RelPath {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => RelPath(self.0[..i].to_vec()),
            None => RelPath::root(),
        }
    }

    /// The last component.
    pub fn file_name(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// The components from the root down.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// Number of components (the root has 0).
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// True if `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        other.0.is_empty()
            || (self.0.starts_with(&other.0)
                && (self.0.len() == other.0.len() || self.0[other.0.len()] == b'/'))
    }

    /// A lossy, printable form with control characters escaped, for humans.
    pub fn display(&self) -> String {
        let s = String::from_utf8_lossy(&self.0);
        let mut out = String::with_capacity(s.len());
        for ch in s.chars() {
            match ch {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        if out.is_empty() {
            out.push('.');
        }
        out
    }
}

impl std::fmt::Debug for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

fn check(bytes: &[u8]) -> std::result::Result<(), &'static str> {
    if bytes.is_empty() {
        return Ok(());
    }
    if bytes.len() > MAX_PATH_LEN {
        return Err("longer than PATH_MAX");
    }
    if bytes[0] == b'/' {
        return Err("absolute path");
    }
    if bytes.contains(&0) {
        return Err("NUL byte in path");
    }
    bytes.split(|&b| b == b'/').try_for_each(check_name)
}

/// One path component (without `/`).
fn check_name(name: &[u8]) -> std::result::Result<(), &'static str> {
    match name {
        b"" => Err("empty component"),
        b"." => Err("`.` component"),
        b".." => Err("`..` component"),
        c if c.len() > MAX_NAME_LEN => Err("name longer than NAME_MAX"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escapes() {
        for bad in [
            &b"/etc/passwd"[..],
            b"..",
            b"a/../b",
            b"a//b",
            b"a/./b",
            b"a/",
            b"a\0b",
        ] {
            assert!(RelPath::new(bad.to_vec()).is_err(), "{bad:?}");
        }
        assert!(RelPath::new(vec![b'x'; 256]).is_err());
        assert!(RelPath::new(vec![b'x'; 255]).is_ok());
    }

    #[test]
    fn child_checks_the_name_and_the_length() {
        let a = RelPath::new(b"a".to_vec()).unwrap();
        assert_eq!(RelPath::root().child(b"x").unwrap().as_bytes(), b"x");
        assert_eq!(a.child(b"x y").unwrap().as_bytes(), b"a/x y");
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
            assert!(a.child(bad).is_none(), "{bad:?}");
        }
        assert!(a.child(&[b'x'; 256]).is_none());
        let long = RelPath::new(vec![b'x'; 255]).unwrap();
        let mut deep = long.clone();
        while deep.as_bytes().len() + 256 <= MAX_PATH_LEN {
            deep = deep.child(&[b'x'; 255]).unwrap();
        }
        assert!(deep.child(&[b'x'; 255]).is_none());
    }

    #[test]
    fn accepts_odd_names() {
        for good in [&b"a b/c\nd"[..], b"\xff\xfe", b"...", b".hidden/x"] {
            assert!(RelPath::new(good.to_vec()).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn parent_and_prefix() {
        let p = RelPath::new(b"a/b/c".to_vec()).unwrap();
        assert_eq!(p.parent().as_bytes(), b"a/b");
        assert_eq!(p.file_name(), b"c");
        assert!(p.starts_with(&RelPath::new(b"a/b".to_vec()).unwrap()));
        assert!(!p.starts_with(&RelPath::new(b"a/bc".to_vec()).unwrap()));
        assert!(p.starts_with(&RelPath::root()));
        assert_eq!(
            RelPath::new(b"a".to_vec()).unwrap().parent(),
            RelPath::root()
        );
        assert_eq!(p.depth(), 3);
    }
}
