//! Which entries a scan skips: `.sluiceignore` files anywhere in the tree,
//! `--exclude` patterns, `--exclude-from` files and, on request,
//! `.gitignore`. All use gitignore syntax, matched relative to the root.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::{Error, Result};

/// Name of the per-folder ignore files sluice honours.
pub const IGNORE_FILE: &str = ".sluiceignore";

/// Exclude rules as the user gave them.
#[derive(Clone, Debug, Default)]
pub struct Excludes {
    /// `--exclude PATTERN`, in order.
    pub patterns: Vec<String>,
    /// `--exclude-from FILE`: one pattern per line, `#` comments.
    pub from_files: Vec<PathBuf>,
    /// Honour `.gitignore` files too.
    pub gitignore: bool,
}

impl Excludes {
    /// Compiles the command-line rules for a tree rooted at `root`.
    pub fn build(&self, root: &Path) -> Result<Arc<Gitignore>> {
        let mut b = GitignoreBuilder::new(root);
        for file in &self.from_files {
            let text = std::fs::read(file).map_err(|e| Error::io(file, e))?;
            for line in text.split(|&c| c == b'\n') {
                let line = String::from_utf8_lossy(line);
                let line = line.trim_end_matches('\r');
                b.add_line(Some(file.clone()), line)
                    .map_err(|e| Error::Usage(format!("{}: {e}", file.display())))?;
            }
        }
        for p in &self.patterns {
            b.add_line(None, p)
                .map_err(|e| Error::Usage(format!("--exclude {p:?}: {e}")))?;
        }
        let gi = b
            .build()
            .map_err(|e| Error::Usage(format!("exclude patterns: {e}")))?;
        Ok(Arc::new(gi))
    }
}
