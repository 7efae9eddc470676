//! Where a tree's index lives when `--index` is not given.
//!
//! Indexes live outside the tree they describe, so that scanning a tree
//! never sees its own index and a read-only tree can still be indexed:
//! `$XDG_STATE_HOME/sluice/` (else `~/.local/state/sluice/`), one file per
//! canonical root path, named after the root's last component and a hash
//! of the whole path.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The folder that holds default index files.
pub fn state_dir() -> Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(x);
        if p.is_absolute() {
            return Ok(p.join("sluice"));
        }
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::Usage("neither XDG_STATE_HOME nor HOME is set; pass --index".into())
        })?;
    Ok(PathBuf::from(home).join(".local/state/sluice"))
}

/// The default index file for a canonical root path.
pub fn default_index_path(canonical_root: &Path) -> Result<PathBuf> {
    Ok(state_dir()?.join(index_file_name(canonical_root)))
}

/// `<last component>-<16 hex digits of BLAKE3(path)>.db`.
pub fn index_file_name(canonical_root: &Path) -> String {
    let hash = blake3::hash(canonical_root.as_os_str().as_bytes());
    let base: String = canonical_root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into())
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    format!("{base}-{}.db", &hash.to_hex()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_per_root_and_are_tame() {
        let a = index_file_name(Path::new("/data/photos"));
        let b = index_file_name(Path::new("/backup/photos"));
        assert_ne!(a, b);
        assert!(a.starts_with("photos-") && a.ends_with(".db"));
        let odd = index_file_name(Path::new("/x/we ird\nname"));
        assert!(!odd.contains(' ') && !odd.contains('\n'));
    }
}
