//! The walker's own tests: what a walk reports, in order, and what it
//! refuses.

use super::*;

/// Records what a walk reports.
#[derive(Default)]
struct Seen {
    entries: Vec<String>,
    unreadable: Vec<String>,
}

impl Visitor for Seen {
    fn entry(&mut self, rel: RelPath, _: &Stat, _: &Place<'_>) -> bool {
        self.entries.push(rel.display());
        true
    }
    fn temp(&mut self, _: RelPath) -> bool {
        true
    }
    fn trouble(&mut self, t: Trouble) -> bool {
        if let Trouble::Unreadable { path, .. } = t {
            self.unreadable.push(path);
        }
        true
    }
}

#[test]
fn a_folder_swapped_for_a_symlink_is_refused_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/mine"), b"in the tree").unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"not in the tree").unwrap();
    let excludes = Gitignore::empty();
    let filters = Filters {
        excludes: &excludes,
        gitignore: false,
        temp_prefix: b".sluice-tmp.",
        skip: &[],
    };
    let mut seen = Seen::default();
    let top = Folder::root(&root, open_root(&root).unwrap());
    let (mut subfolders, go) = list(top, &filters, &mut seen);
    assert!(go);
    assert_eq!(seen.entries, ["sub"]);
    let sub = subfolders.pop().unwrap();
    // Between listing the root and entering `sub`, `sub` becomes a
    // symlink to a folder outside the tree.
    std::fs::remove_dir_all(root.join("sub")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("sub")).unwrap();
    let (below, _) = list(sub, &filters, &mut seen);
    assert!(below.is_empty());
    assert_eq!(seen.entries, ["sub"], "nothing from outside the tree");
    assert_eq!(seen.unreadable, ["sub"]);
}
