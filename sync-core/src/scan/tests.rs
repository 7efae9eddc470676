use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::chunk::Hash;
use crate::entry::Kind;
use crate::scope::Scopes;
use std::sync::atomic::Ordering;

/// Files must be older than the racy window to count as settled.
fn settle() {
    std::thread::sleep(Duration::from_millis(
        2 * (crate::entry::RACY_WINDOW_NS / 1_000_000) as u64,
    ));
}

/// Makes `dirs` (with parents) under `root`, then `files`, each holding its
/// own path.
fn make_tree(root: &Path, dirs: &[&str], files: &[&str]) {
    for d in dirs {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in files {
        std::fs::write(root.join(f), f).unwrap();
    }
}

fn scan_it(root: &Path, ix: &mut Index, opts: &ScanOptions) -> ScanReport {
    scan(root, ix, opts).expect("scan")
}

fn names(ix: &Index) -> Vec<Vec<u8>> {
    ix.manifest()
        .unwrap()
        .entries
        .keys()
        .map(|k| k.as_bytes().to_vec())
        .collect()
}

/// Scans with `excludes`; the indexed paths, lossily as text.
fn scan_names(root: &Path, ix: &mut Index, excludes: Excludes) -> Vec<String> {
    let o = ScanOptions { excludes, ..opts() };
    scan_it(root, ix, &o);
    names(ix)
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

fn opts() -> ScanOptions {
    ScanOptions {
        chunk_params: ChunkParams::default(),
        ..ScanOptions::default()
    }
}

#[test]
fn odd_names_round_trip_through_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let odd: Vec<&[u8]> = vec![
        b"with\nnewline",
        b"with\ttab",
        b"\xff\xfe not utf8",
        "caf\u{e9}".as_bytes(),
        "cafe\u{301}".as_bytes(),
        &[b'L'; 255],
    ];
    for n in &odd {
        std::fs::write(dir.path().join(std::ffi::OsStr::from_bytes(n)), n).unwrap();
    }
    let mut ix = Index::open_in_memory().unwrap();
    let r = scan_it(dir.path(), &mut ix, &opts());
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let m = ix.manifest().unwrap();
    for n in &odd {
        let e = m.get(&RelPath::new(n.to_vec()).unwrap()).expect("indexed");
        assert_eq!(e.hash, Some(Hash::of(n)));
    }
    assert_eq!(m.entries.len(), odd.len() + 1); // plus the root
}

#[test]
fn rescans_read_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("d")).unwrap();
    for i in 0..20 {
        std::fs::write(root.join(format!("d/f{i}")), vec![i as u8; 1000 + i]).unwrap();
    }
    std::fs::write(root.join("gone"), b"bye").unwrap();
    settle();
    let mut ix = Index::open_in_memory().unwrap();
    let r1 = scan_it(root, &mut ix, &opts());
    assert_eq!(r1.files_read, 21);

    let r2 = scan_it(root, &mut ix, &opts());
    assert_eq!(r2.files_read, 0, "nothing changed");
    assert_eq!(r2.files, 21);

    std::fs::write(root.join("d/f3"), b"changed").unwrap();
    std::fs::remove_file(root.join("gone")).unwrap();
    settle();
    let r3 = scan_it(root, &mut ix, &opts());
    assert_eq!(r3.files_read, 1);
    assert_eq!(r3.removed, 1);
    let m = ix.manifest().unwrap();
    assert_eq!(
        m.get(&RelPath::new(b"d/f3".to_vec()).unwrap())
            .unwrap()
            .hash,
        Some(Hash::of(b"changed"))
    );
    assert!(m.get(&RelPath::new(b"gone".to_vec()).unwrap()).is_none());

    let all = ScanOptions {
        checksum: true,
        ..opts()
    };
    assert_eq!(scan_it(root, &mut ix, &all).files_read, 20);
}

#[test]
fn a_racily_clean_file_is_read_again_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fresh"), b"v1").unwrap();
    let mut ix = Index::open_in_memory().unwrap();
    assert_eq!(scan_it(dir.path(), &mut ix, &opts()).files_read, 1);
    // Written within the racy window of the first capture: read again...
    settle();
    assert_eq!(scan_it(dir.path(), &mut ix, &opts()).files_read, 1);
    // ...after which it is settled.
    assert_eq!(scan_it(dir.path(), &mut ix, &opts()).files_read, 0);
}

#[test]
fn symlinks_are_recorded_not_followed_and_specials_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("real")).unwrap();
    std::fs::write(root.join("real/x"), b"x").unwrap();
    std::os::unix::fs::symlink("real", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/dangling", root.join("dangling")).unwrap();
    let mode = rustix::fs::Mode::from_raw_mode(0o644);
    let fifo = rustix::fs::FileType::Fifo;
    rustix::fs::mknodat(rustix::fs::CWD, root.join("pipe"), fifo, mode, 0).unwrap();
    let mut ix = Index::open_in_memory().unwrap();
    let r = scan_it(root, &mut ix, &opts());
    assert_eq!(r.symlinks, 2);
    assert!(!r.partial(), "a fifo is skipped, not an error");
    assert!(r
        .warnings
        .iter()
        .any(|w| w.path == "pipe" && w.message.contains("fifo")));
    let m = ix.manifest().unwrap();
    let link = m.get(&RelPath::new(b"link".to_vec()).unwrap()).unwrap();
    assert_eq!(link.meta.kind, Kind::Symlink);
    assert_eq!(link.target.as_deref(), Some(&b"real"[..]));
    assert!(m.get(&RelPath::new(b"link/x".to_vec()).unwrap()).is_none());
    assert_eq!(
        m.get(&RelPath::new(b"dangling".to_vec()).unwrap())
            .unwrap()
            .target
            .as_deref(),
        Some(&b"/nonexistent/dangling"[..])
    );
}

#[test]
fn ignore_rules() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_tree(
        root,
        &["a/build", "b", "logs"],
        &[
            "a/keep.c",
            "a/drop.o",
            "a/build/out",
            "b/drop.o",
            "b/x.tmp",
            "logs/l1",
            "top.bak",
            "g.txt",
        ],
    );
    // .sluiceignore applies below its folder only.
    std::fs::write(root.join("a/.sluiceignore"), "*.o\nbuild/\n").unwrap();
    std::fs::write(root.join(".gitignore"), "g.txt\n").unwrap();
    let from = root.join("../excl-list");
    std::fs::write(&from, "# comment\n\n*.bak\n").unwrap();
    let mut ix = Index::open_in_memory().unwrap();
    let excludes = Excludes {
        patterns: vec!["*.tmp".into(), "/logs".into()],
        from_files: vec![from.clone()],
        gitignore: false,
    };
    let got = scan_names(root, &mut ix, excludes);
    assert_eq!(
        got,
        [
            "",
            ".gitignore",
            "a",
            "a/.sluiceignore",
            "a/keep.c",
            "b",
            "b/drop.o",
            "g.txt"
        ]
    );

    let o = ScanOptions {
        excludes: Excludes {
            gitignore: true,
            ..Excludes::default()
        },
        ..opts()
    };
    scan_it(root, &mut ix, &o);
    let got = names(&ix);
    assert!(!got.contains(&b"g.txt".to_vec()));
    assert!(got.contains(&b"top.bak".to_vec()));
    std::fs::remove_file(from).unwrap();
}

#[test]
fn a_file_that_keeps_changing_is_left_out_never_mixed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy");
    // Large enough that one read pass spans many appends.
    std::fs::write(&path, vec![1u8; 32 << 20]).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < 200_000 {
                f.write_all(&[n as u8; 64]).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(10));
    let mut ix = Index::open_in_memory().unwrap();
    let r = scan_it(dir.path(), &mut ix, &opts());
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(r.unstable, vec![RelPath::new(b"busy".to_vec()).unwrap()]);
    assert!(r.partial());
    assert!(ix
        .manifest()
        .unwrap()
        .get(&RelPath::new(b"busy".to_vec()).unwrap())
        .is_none());

    // Once it settles it is captured whole.
    let r = scan_it(dir.path(), &mut ix, &opts());
    assert!(r.unstable.is_empty());
    let data = std::fs::read(&path).unwrap();
    let m = ix.manifest().unwrap();
    let e = m.get(&RelPath::new(b"busy".to_vec()).unwrap()).unwrap();
    assert_eq!(e.hash, Some(Hash::of(&data)));
    assert_eq!(
        e.chunks.iter().map(|c| c.length as u64).sum::<u64>(),
        data.len() as u64
    );
}

#[test]
fn changed_chunk_params_rebuild_the_index() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), vec![7u8; 100_000]).unwrap();
    let mut ix = Index::open_in_memory().unwrap();
    scan_it(dir.path(), &mut ix, &opts());
    let small = ScanOptions {
        chunk_params: ChunkParams {
            min: 1024,
            avg: 4096,
            max: 16384,
        },
        ..opts()
    };
    let r = scan_it(dir.path(), &mut ix, &small);
    assert_eq!(r.files_read, 1);
    assert_eq!(ix.chunk_params().unwrap(), Some(small.chunk_params));
    assert!(ix
        .manifest()
        .unwrap()
        .files()
        .all(|f| f.chunks.iter().all(|c| c.length <= 16384)));
}

#[test]
fn a_rescan_reads_only_what_changed_and_the_index_follows_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::write(root.join("a/one"), vec![7u8; 300_000]).unwrap();
    std::fs::write(root.join("a/b/two"), b"two").unwrap();
    std::fs::write(root.join("gone"), b"soon gone").unwrap();
    std::os::unix::fs::symlink("a/one", root.join("link")).unwrap();
    settle();
    let mut ix = Index::open_in_memory().unwrap();
    let paths = |ix: &Index| -> Vec<String> {
        let m = ix.manifest().unwrap();
        m.entries.keys().map(|p| p.display()).collect()
    };
    let report = scan(root, &mut ix, &opts()).unwrap();
    assert_eq!(report.files_read, 3);
    assert_eq!(
        paths(&ix),
        [".", "a", "a/b", "a/b/two", "a/one", "gone", "link"]
    );
    // Nothing changed: every record stands.
    let report = scan(root, &mut ix, &opts()).unwrap();
    assert_eq!((report.files_read, report.removed), (0, 0));
    std::fs::write(root.join("a/b/two"), b"two, longer").unwrap();
    std::fs::remove_file(root.join("gone")).unwrap();
    std::fs::remove_file(root.join("link")).unwrap();
    std::os::unix::fs::symlink("a/b/two", root.join("link")).unwrap();
    std::fs::create_dir(root.join("new")).unwrap();
    let report = scan(root, &mut ix, &opts()).unwrap();
    assert_eq!((report.files_read, report.removed), (1, 1));
    assert_eq!(
        paths(&ix),
        [".", "a", "a/b", "a/b/two", "a/one", "link", "new"]
    );
    let m = ix.manifest().unwrap();
    let link = m.get(&RelPath::new(b"link".to_vec()).unwrap()).unwrap();
    assert_eq!(link.target.as_deref(), Some(&b"a/b/two"[..]));
    let two = m.get(&RelPath::new(b"a/b/two".to_vec()).unwrap()).unwrap();
    assert_eq!(two.hash, Some(crate::chunk::Hash::of(b"two, longer")));
}

#[test]
fn the_innermost_ignore_file_decides_and_sluiceignore_beats_gitignore() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_tree(
        root,
        &["sub/deep", "skipped"],
        &[
            "a.log",
            "sub/keep.log",
            "sub/x.log",
            "sub/deep/keep.log",
            "sub/b.tmp",
            "skipped/inner",
        ],
    );
    std::fs::write(root.join(".sluiceignore"), "*.log\nskipped/\n").unwrap();
    std::fs::write(root.join("sub/.sluiceignore"), "!keep.log\n*.tmp\n").unwrap();
    std::fs::write(root.join("sub/.gitignore"), "!b.tmp\nx.log\n").unwrap();
    let mut ix = Index::open_in_memory().unwrap();
    let gitignore = Excludes {
        gitignore: true,
        ..Excludes::default()
    };
    let got = scan_names(root, &mut ix, gitignore);
    // The root's `*.log` is undone below `sub` for keep.log (also in
    // sub/deep: the nearest file with a match decides); sub's .sluiceignore
    // excludes b.tmp although its .gitignore lets it in; x.log is excluded
    // by the root's rule; a folder excluded is not entered.
    assert_eq!(
        got,
        [
            "",
            ".sluiceignore",
            "sub",
            "sub/.gitignore",
            "sub/.sluiceignore",
            "sub/deep",
            "sub/deep/keep.log",
            "sub/keep.log",
        ]
    );
}

fn rel(s: &str) -> RelPath {
    RelPath::new(s.as_bytes().to_vec()).unwrap()
}

/// A scoped scan leaves the index as a full scan would, for what the
/// scopes cover, and reads, lists and drops nothing else.
#[test]
fn a_scoped_scan_looks_only_at_its_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_tree(
        root,
        &["a/b", "c", "gone"],
        &["a/b/x", "a/b/y", "a/z", "c/w", "gone/v", "top"],
    );
    let mut ix = Index::open_in_memory().unwrap();
    // Settled files, so that no record is read again for being racy.
    settle();
    scan_it(root, &mut ix, &opts());
    std::fs::write(root.join("a/b/x"), b"edited").unwrap();
    std::fs::write(root.join("a/b/new"), b"new").unwrap();
    std::fs::remove_dir_all(root.join("gone")).unwrap();
    // Outside the scopes: changed too, but not looked at.
    std::fs::write(root.join("c/w"), b"unseen edit").unwrap();
    std::fs::write(root.join("c/unseen"), b"unseen").unwrap();
    settle();
    let scopes = Scopes::new([rel("a/b/x"), rel("a/b/new"), rel("gone")]);
    let report = scan_scopes(root, &mut ix, &opts(), &scopes).expect("scan");
    assert_eq!(report.files_read, 2, "{report:?}");
    // The root, a, a/b (folders above) and the two files.
    assert_eq!(report.entries, 5, "{report:?}");
    assert_eq!(report.removed, 2, "gone and gone/v: {report:?}");
    let got: Vec<String> = names(&ix)
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(
        got,
        ["", "a", "a/b", "a/b/new", "a/b/x", "a/b/y", "a/z", "c", "c/w", "top"]
    );
    let reads = ix.reads();
    let x = reads.entry(&rel("a/b/x")).unwrap().unwrap();
    assert_eq!(x.hash, Some(Hash::of(b"edited")));
    let w = reads.entry(&rel("c/w")).unwrap().unwrap();
    assert_eq!(
        w.hash,
        Some(Hash::of(b"c/w")),
        "outside the scopes: as it was"
    );

    // A full scan afterwards finds only what the scopes left out.
    let full = scan_it(root, &mut ix, &opts());
    assert_eq!(full.files_read, 2, "c/w and c/unseen: {full:?}");
}

/// A scope below an excluded folder, or below what is now a symlink, is
/// not entered; the records there go as a full scan would drop them.
#[test]
fn a_scoped_scan_honours_excludes_and_refuses_symlinked_folders() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    make_tree(&root, &["d", "skip"], &[]);
    std::fs::write(root.join("d/f"), b"f").unwrap();
    std::fs::write(root.join("skip/s"), b"s").unwrap();
    std::fs::write(root.join(".sluiceignore"), b"skip/\n").unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("f"), b"not in the tree").unwrap();
    let mut ix = Index::open_in_memory().unwrap();
    scan_it(&root, &mut ix, &opts());
    std::fs::remove_dir_all(root.join("d")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("d")).unwrap();
    let scopes = Scopes::new([rel("d/f"), rel("skip/s")]);
    let report = scan_scopes(&root, &mut ix, &opts(), &scopes).expect("scan");
    assert_eq!(report.files_read, 0, "{report:?}");
    let got: Vec<String> = names(&ix)
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(got, ["", ".sluiceignore", "d"]);
    let d = ix.reads().entry(&rel("d")).unwrap().unwrap();
    assert_eq!(d.meta.kind, Kind::Symlink);
}
