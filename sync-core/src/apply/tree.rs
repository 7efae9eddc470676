//! The destination as the apply step sees it: a [`Tree`] (confined access
//! by path, which lives in [`crate::fs`]) and the names of the temporary
//! files a run makes beside its targets.
//!
//! This module owns the temp-file naming only; it makes no system calls.

use crate::path::RelPath;

pub use crate::fs::Tree;

/// A temporary name for `path`'s final component: hidden, recognisable,
/// unique per run, and never longer than NAME_MAX.
pub fn temp_name(path: &RelPath, tag: &str) -> Vec<u8> {
    let base = path.file_name();
    let keep = base.len().min(200);
    let mut n = crate::scan::TEMP_PREFIX.as_bytes().to_vec();
    n.extend_from_slice(&base[..keep]);
    n.push(b'.');
    n.extend_from_slice(tag.as_bytes());
    n
}
