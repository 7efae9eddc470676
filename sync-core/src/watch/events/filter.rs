//! The mapping from the kernel's absolute paths to paths relative to the
//! watched root, dropping sluice's own files: temporary files and whatever
//! [`Ignore`] lists, under any spelling the kernel may use for them.
//!
//! It never touches the watch; it only resolves the ignored paths once,
//! when the watch starts.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::Ignore;
use crate::error::{Error, Result};
use crate::path::RelPath;
use crate::scan::TEMP_PREFIX;

/// Maps absolute paths to relative ones and drops sluice's own files.
#[derive(Debug)]
pub(super) struct Filter {
    root: PathBuf,
    paths: Vec<RelPath>,
    under: Vec<RelPath>,
}

impl Filter {
    /// `root` is canonical. Ignored paths outside it can never match and are
    /// dropped; an ignored folder holding the root would leave nothing to
    /// watch and is refused.
    pub(super) fn new(root: &Path, ignore: &Ignore) -> Result<Filter> {
        let mut filter = Filter {
            root: root.to_path_buf(),
            paths: Vec::new(),
            under: Vec::new(),
        };
        for path in &ignore.paths {
            let found: Vec<RelPath> = spellings(path)
                .filter_map(|p| filter.relative(&p))
                .collect();
            filter.paths.extend(found);
        }
        for folder in &ignore.under {
            for spelling in spellings(folder) {
                if root.starts_with(&spelling) {
                    return Err(Error::Usage(format!(
                        "{} lies inside {}, which watch ignores",
                        root.display(),
                        folder.display()
                    )));
                }
                let found = filter.relative(&spelling);
                filter.under.extend(found);
            }
        }
        Ok(filter)
    }

    /// `path` relative to the root.
    pub(super) fn relative(&self, path: &Path) -> Option<RelPath> {
        let rest = path.strip_prefix(&self.root).ok()?;
        RelPath::new(rest.as_os_str().as_bytes().to_vec()).ok()
    }

    /// `path` relative to the root, unless it is outside the root, cannot be
    /// stored, or is one of sluice's own files.
    pub(super) fn keep(&self, path: &Path) -> Option<RelPath> {
        let rel = self.relative(path)?;
        let temp = rel
            .components()
            .any(|name| name.starts_with(TEMP_PREFIX.as_bytes()));
        let ignored = self.paths.contains(&rel) || self.under.iter().any(|u| rel.starts_with(u));
        (!temp && !ignored).then_some(rel)
    }
}

/// The ways the kernel may spell `path` in an event: as given (made
/// absolute) and with symlinks resolved. A file that does not exist yet
/// (an index's `-wal` comes and goes) is resolved through its folder.
fn spellings(path: &Path) -> impl Iterator<Item = PathBuf> {
    let given = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let resolved = std::fs::canonicalize(&given).ok().or_else(|| {
        let folder = std::fs::canonicalize(given.parent()?).ok()?;
        Some(folder.join(given.file_name()?))
    });
    let differs = resolved.as_ref() != Some(&given);
    std::iter::once(given).chain(resolved.filter(|_| differs))
}
