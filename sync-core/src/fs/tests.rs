//! The confinement promises: no symlink under the root is followed, every
//! name is one component, and operations land relative to the root's
//! descriptor whatever happens to its path.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Dir, Tree};
use crate::entry::{Kind, Meta};
use crate::path::RelPath;

fn rel(s: &str) -> RelPath {
    RelPath::new(s.as_bytes().to_vec()).unwrap()
}

/// A temp dir holding `root/` (with `root/sub/file`) and `outside/secret`.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/file"), b"in the tree").unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"not in the tree").unwrap();
    (dir, root, outside)
}

fn names_in(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_symlink_in_a_path_component_is_refused() {
    let (_dir, root, outside) = setup();
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    let mut tree = Tree::open(&root).unwrap();
    let through = rel("link/secret");
    assert!(tree.open_read(&through).is_err());
    // Through a symlink, nothing is there (the kernel says ENOTDIR).
    assert!(tree.lstat(&through).unwrap().is_none());
    assert!(tree.mkdir(&rel("link/new")).is_err());
    assert!(tree.create_temp(&rel("link/x"), b"tmp").is_err());
    assert!(tree.remove(&through, false).is_err());
    assert!(tree.symlink(&rel("link/l"), b"/etc", b"tmp").is_err());
    assert!(tree
        .hard_link(&rel("sub/file"), &rel("link/h"), b"tmp")
        .is_err());
    let meta = tree.meta(&rel("sub/file")).unwrap().unwrap();
    assert!(tree.set_meta(&through, &meta, false).is_err());
    assert_eq!(
        names_in(&outside),
        ["secret"],
        "nothing made or removed outside"
    );
    assert_eq!(
        std::fs::read(outside.join("secret")).unwrap(),
        b"not in the tree"
    );
}

#[test]
fn a_symlink_as_the_last_component_is_acted_on_itself() {
    let (_dir, root, outside) = setup();
    std::os::unix::fs::symlink(outside.join("secret"), root.join("sub/link")).unwrap();
    let mut tree = Tree::open(&root).unwrap();
    let link = rel("sub/link");
    let e = tree.open_read(&link).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(rustix::io::Errno::LOOP.raw_os_error())
    );
    assert_eq!(tree.meta(&link).unwrap().unwrap().kind, Kind::Symlink);
    let meta = tree.meta(&rel("sub/file")).unwrap().unwrap();
    assert!(
        tree.set_meta(&link, &meta, false).is_err(),
        "mode is never set through a symlink"
    );
    let secret_mtime = || std::fs::metadata(outside.join("secret")).unwrap().mtime();
    let before = secret_mtime();
    let mut old = meta;
    old.mtime_ns = 1_500_000_000 * 1_000_000_000;
    tree.set_meta(&link, &old, true).unwrap();
    let own = std::fs::symlink_metadata(root.join("sub/link")).unwrap();
    assert_eq!(own.mtime(), 1_500_000_000, "the link's own mtime");
    assert_eq!(secret_mtime(), before, "its target untouched");
    tree.remove(&link, false).unwrap();
    assert_eq!(names_in(&root.join("sub")), ["file"]);
    assert_eq!(
        names_in(&outside),
        ["secret"],
        "the link went, not its target"
    );
}

#[test]
fn a_name_is_one_component_so_nothing_outside_the_root_opens() {
    let (_dir, root, _outside) = setup();
    let dir = Dir::open(&root).unwrap();
    for name in [&b".."[..], b"../outside", b"sub/file", b"", b".", b"/etc"] {
        let e = dir.open_read(name).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name:?}");
        assert!(dir.open_dir(name).is_err(), "{name:?}");
        assert!(dir.stat(name).is_err(), "{name:?}");
    }
    assert!(dir.rename(b"sub", b"../moved").is_err());
    assert!(dir.unlink(b"sub/file").is_err());
    assert!(root.join("sub/file").exists());
    // Paths that would climb out cannot even be named.
    assert!(RelPath::new(b"../outside/secret".to_vec()).is_err());
    assert!(RelPath::new(b"/etc/passwd".to_vec()).is_err());
}

#[test]
fn rename_and_unlink_act_relative_to_the_root_descriptor() {
    let (dir, root, _outside) = setup();
    let mut tree = Tree::open(&root).unwrap();
    // The root's path now names something else: the tree still works on
    // the folder it opened.
    let moved = dir.path().join("moved");
    std::fs::rename(&root, &moved).unwrap();
    std::fs::create_dir(&root).unwrap();
    let path = rel("sub/new");
    let mut f = tree.create_temp(&path, b".tmp").unwrap();
    f.write_all(b"fresh").unwrap();
    assert!(tree.create_temp(&path, b".tmp").is_err(), "exclusive");
    tree.rename_temp(&path, b".tmp").unwrap();
    assert_eq!(std::fs::read(moved.join("sub/new")).unwrap(), b"fresh");
    tree.remove(&rel("sub/file"), false).unwrap();
    tree.remove(&rel("sub/file"), false).unwrap(); // absent counts as done
    tree.remove_temp(&path, b".gone").unwrap();
    assert_eq!(names_in(&moved.join("sub")), ["new"]);
    assert!(names_in(&root).is_empty(), "nothing landed at the old path");
    let mut s = String::new();
    tree.open_read(&path)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "fresh");
}

#[test]
fn remove_tree_removes_a_link_to_a_folder_not_the_folder() {
    let (_dir, root, outside) = setup();
    std::os::unix::fs::symlink(&outside, root.join("sub/out")).unwrap();
    std::fs::create_dir(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("sub/deeper/f"), b"x").unwrap();
    let mut tree = Tree::open(&root).unwrap();
    assert_eq!(tree.remove_tree(&rel("sub")).unwrap(), 5);
    assert!(names_in(&root).is_empty());
    assert_eq!(names_in(&outside), ["secret"]);
    assert_eq!(tree.remove_tree(&rel("sub")).unwrap(), 0);
}

#[test]
fn links_replace_a_file_and_metadata_is_set_without_following() {
    let (_dir, root, _outside) = setup();
    std::fs::write(root.join("sub/old"), b"replaced").unwrap();
    let mut tree = Tree::open(&root).unwrap();
    tree.symlink(&rel("sub/old"), b"file", b".t1").unwrap();
    assert_eq!(
        std::fs::read_link(root.join("sub/old")).unwrap(),
        Path::new("file")
    );
    tree.hard_link(&rel("sub/file"), &rel("h"), b".t2").unwrap();
    let (a, b) = (
        std::fs::metadata(root.join("sub/file")).unwrap(),
        std::fs::metadata(root.join("h")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    let mut meta: Meta = tree.meta(&rel("h")).unwrap().unwrap();
    meta.mode = 0o640;
    meta.mtime_ns = 1_000_000_000 * 1_600_000_000 + 5;
    tree.set_meta(&rel("h"), &meta, false).unwrap();
    let got = tree.meta(&rel("h")).unwrap().unwrap();
    assert_eq!((got.mode, got.mtime_ns), (0o640, meta.mtime_ns));
    tree.mkdir(&rel("sub/made")).unwrap();
    let made = std::fs::metadata(root.join("sub/made")).unwrap();
    assert_eq!(made.permissions().mode() & 0o777, 0o700);
    assert!(names_in(&root.join("sub"))
        .iter()
        .all(|n| !n.starts_with(".t")));
}

#[test]
fn a_dir_reads_names_links_and_files_of_one_folder() {
    let (_dir, root, _outside) = setup();
    std::os::unix::fs::symlink("file", root.join("sub/l")).unwrap();
    let sub = Dir::open(&root).unwrap().open_dir(b"sub").unwrap();
    let mut names: Vec<_> = sub.names().unwrap().into_iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(names, ["file", "l"]);
    assert_eq!(sub.readlink(b"l").unwrap(), b"file");
    let mut s = String::new();
    sub.open_read_noatime(b"file")
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "in the tree");
    assert!(sub.open_read_noatime(b"l").is_err());
    assert!(sub.open_dir(b"l").is_err());
    assert_eq!(sub.stat(b"file").unwrap().st_size, 11);
    assert!(Dir::open_nofollow(&root.join("sub/l")).is_err());
}
