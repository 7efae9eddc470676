use super::*;
use crate::chunk::{ChunkParams, ChunkRef, Hash};
use crate::entry::{Entry, Meta};
use crate::manifest::Manifest;

fn meta(kind: Kind, size: u64) -> Meta {
    Meta {
        kind,
        size,
        mtime_ns: 1_000,
        mode: 0o644,
        ino: 1,
        dev: 1,
        ctime_ns: 1,
        nlink: 1,
    }
}

/// A manifest from `(path, chunk seeds)` files; folders are implied.
fn tree(files: &[(&str, &[u8])]) -> Manifest {
    let mut m = Manifest {
        params: ChunkParams::default(),
        ..Manifest::default()
    };
    let dir = |p: RelPath| Entry {
        path: p,
        meta: meta(Kind::Dir, 0),
        target: None,
        hash: None,
        chunks: vec![],
        checked_ns: 0,
    };
    m.entries.insert(RelPath::root(), dir(RelPath::root()));
    for (path, seeds) in files {
        let path = RelPath::new(path.as_bytes().to_vec()).unwrap();
        let mut p = path.parent();
        while !p.is_root() {
            m.entries.insert(p.clone(), dir(p.clone()));
            p = p.parent();
        }
        let chunks: Vec<ChunkRef> = seeds
            .iter()
            .enumerate()
            .map(|(i, s)| ChunkRef {
                offset: i as u64 * 100,
                length: 100,
                hash: Hash::of(&[*s]),
            })
            .collect();
        let whole = Hash::of(seeds);
        m.entries.insert(
            path.clone(),
            Entry {
                path,
                meta: meta(Kind::File, 100 * seeds.len() as u64),
                target: None,
                hash: Some(whole),
                chunks,
                checked_ns: 0,
            },
        );
    }
    m
}

fn lines(p: &Plan) -> Vec<String> {
    p.changes.iter().map(|c| c.line()).collect()
}

#[test]
fn a_renamed_folder_ships_nothing_and_reads_as_a_rename() {
    let dst = tree(&[("old/a", b"abc"), ("old/b", b"de")]);
    let src = tree(&[("new/a", b"abc"), ("new/b", b"de")]);
    let p = diff(
        &src,
        &dst,
        &PlanOptions {
            delete: true,
            ..PlanOptions::default()
        },
    );
    assert!(p.stream.is_empty());
    assert_eq!(p.stats.chunk_bytes_to_send, 0);
    assert_eq!(p.stats.bytes_reused, 500);
    assert_eq!(
        lines(&p),
        ["+ new/", "R old/a -> new/a", "R old/b -> new/b", "- old/"]
    );
    // The old files are deleted, so their chunks are rescued first.
    assert_eq!(p.rescue.len(), 5);
}

#[test]
fn only_chunks_missing_everywhere_are_shipped_once() {
    let dst = tree(&[("x", b"ab")]);
    let src = tree(&[("x", b"ab"), ("y", b"bcc"), ("z", b"c")]);
    let p = diff(&src, &dst, &PlanOptions::default());
    let shipped: Vec<Hash> = p.stream.iter().map(|c| c.hash).collect();
    assert_eq!(shipped, [Hash::of(b"c")]);
    assert!(
        p.rescue.is_empty(),
        "x is untouched, so its chunks are read in place"
    );
}

#[test]
fn swapping_two_files_rescues_their_chunks() {
    let dst = tree(&[("a", b"1"), ("b", b"2")]);
    let src = tree(&[("a", b"2"), ("b", b"1")]);
    let p = diff(&src, &dst, &PlanOptions::default());
    assert!(p.stream.is_empty());
    assert_eq!(p.rescue.len(), 2);
    assert!(p
        .files
        .iter()
        .all(|f| matches!(f.pieces[0], Piece::Rescued { .. })));
}

#[test]
fn no_delete_keeps_extra_entries_and_a_busy_folder() {
    let dst = tree(&[("extra", b"e"), ("d/inner", b"i")]);
    let mut src = tree(&[]);
    let d = RelPath::new(b"d".to_vec()).unwrap();
    let file = Entry {
        path: d.clone(),
        meta: meta(Kind::File, 0),
        target: None,
        hash: Some(Hash::of(b"")),
        chunks: vec![],
        checked_ns: 0,
    };
    src.entries.insert(d.clone(), file);
    let p = diff(&src, &dst, &PlanOptions::default());
    assert!(p.deletes.is_empty());
    assert_eq!(
        p.conflicts.len(),
        1,
        "a non-empty folder needs --delete to be replaced"
    );
    assert!(p.files.is_empty());
    let p = diff(
        &src,
        &dst,
        &PlanOptions {
            delete: true,
            ..PlanOptions::default()
        },
    );
    assert_eq!(lines(&p), ["T d", "- d/inner", "- extra"]);
    // d/inner goes with the folder it is in, not in the delete pass.
    assert_eq!(
        p.deletes,
        [(RelPath::new(b"extra".to_vec()).unwrap(), Kind::File)]
    );
}

#[test]
fn protected_paths_are_neither_written_nor_deleted() {
    let dst = tree(&[("busy", b"old"), ("gone", b"g")]);
    let src = tree(&[]);
    let opts = PlanOptions {
        delete: true,
        protect: vec![RelPath::new(b"busy".to_vec()).unwrap()],
        ..PlanOptions::default()
    };
    let p = diff(&src, &dst, &opts);
    assert_eq!(lines(&p), ["- gone"]);
}

#[test]
fn metadata_only_changes_are_itemised_as_such() {
    let dst = tree(&[("f", b"same")]);
    let mut src = tree(&[("f", b"same")]);
    src.entries.values_mut().last().unwrap().meta.mode = 0o600;
    let p = diff(&src, &dst, &PlanOptions::default());
    assert_eq!(lines(&p), ["m f"]);
    assert_eq!(p.meta.len(), 1);
    assert!(p.files.is_empty() && p.stream.is_empty());
}

/// The destination as its index answers while a session applies windows:
/// what it held, with each window's writes in place.
struct Emulated(std::cell::RefCell<Manifest>);

impl Elsewhere for Emulated {
    fn chunk(&self, hash: &Hash, length: u32) -> Option<crate::manifest::ChunkLocation> {
        let m = self.0.borrow();
        let found = m.files().find_map(|e| {
            e.chunks
                .iter()
                .find(|c| c.hash == *hash && c.length == length)
                .map(|c| crate::manifest::ChunkLocation {
                    path: e.path.clone(),
                    offset: c.offset,
                    length,
                })
        });
        found
    }
    fn entry(&self, path: &RelPath) -> Option<Entry> {
        self.0.borrow().get(path).cloned()
    }
    fn has_children(&self, path: &RelPath) -> bool {
        let m = self.0.borrow();
        m.entries.keys().any(|p| p != path && p.starts_with(path))
    }
}

/// What a plan does, in a form two ways of planning can be compared by.
#[derive(Debug, PartialEq)]
struct Outcome {
    lines: Vec<String>,
    files: Vec<String>,
    links: Vec<String>,
    meta: Vec<String>,
    deletes: Vec<(RelPath, Kind)>,
    dir_meta: Vec<RelPath>,
    shipped: std::collections::BTreeSet<Hash>,
    created: (u64, u64, u64, u64),
}

fn outcome(plans: &[Plan], last: &Plan, lines: Vec<String>, stats: &PlanStats) -> Outcome {
    let all = || plans.iter();
    let mut links: Vec<String> = all()
        .flat_map(|p| {
            p.symlinks
                .iter()
                .map(|l| l.entry.path.display())
                .chain(p.hard_links.iter().map(|h| h.path.display()))
        })
        .collect();
    links.sort();
    Outcome {
        lines,
        files: all()
            .flat_map(|p| p.files.iter().map(|f| f.entry.path.display()))
            .collect(),
        links,
        meta: all()
            .flat_map(|p| p.meta.iter().map(|(m, _)| m.display()))
            .collect(),
        deletes: last.deletes.clone(),
        dir_meta: last.dir_meta.iter().map(|(p, _)| p.clone()).collect(),
        shipped: all()
            .flat_map(|p| p.stream.iter().map(|c| c.hash))
            .collect(),
        created: (
            stats.files_created,
            stats.files_updated,
            stats.dirs_created,
            stats.entries_deleted,
        ),
    }
}

/// Plans `src` against `dst` in windows that end at the positions `cuts`
/// of the source's path order, as a session does.
fn in_windows(src: &Manifest, dst: &Manifest, opts: &PlanOptions, cuts: &[usize]) -> Outcome {
    let mut planner = Planner::new(opts.clone(), usize::MAX);
    let index = Emulated(std::cell::RefCell::new(dst.clone()));
    let entries: Vec<&Entry> = src.entries.values().collect();
    let mut plans = Vec::new();
    let mut from = 0;
    let mut after: Option<RelPath> = None;
    let ends: Vec<usize> = cuts.iter().copied().chain([entries.len()]).collect();
    for (k, &end) in ends.iter().enumerate() {
        let last = k == ends.len() - 1;
        let window = Manifest {
            entries: entries[from..end]
                .iter()
                .map(|e| (e.path.clone(), (*e).clone()))
                .collect(),
            params: src.params,
        };
        let upto = (!last).then(|| entries[end - 1].path.clone());
        let range = Manifest {
            entries: dst
                .entries
                .iter()
                .filter(|(p, _)| after.as_ref().is_none_or(|a| *p > a))
                .filter(|(p, _)| upto.as_ref().is_none_or(|u| *p <= u))
                .map(|(p, e)| (p.clone(), e.clone()))
                .collect(),
            params: dst.params,
        };
        let plan = planner.window(&window, &range, &index);
        // The window is applied: the index now holds what it wrote.
        let mut now = index.0.borrow_mut();
        for f in &plan.files {
            now.entries.insert(f.entry.path.clone(), f.entry.clone());
        }
        for l in &plan.symlinks {
            now.entries.insert(l.entry.path.clone(), l.entry.clone());
        }
        drop(now);
        plans.push(plan);
        from = end;
        after = upto;
    }
    let last = planner.finish();
    let lines = planner.take_changes().iter().map(|c| c.line()).collect();
    outcome(&plans, &last, lines, &planner.stats)
}

/// A tree with something of every kind of change: a renamed folder, an
/// edited file, content that moves to another folder, a file that becomes
/// a folder and a folder that becomes a file, a retargeted symlink, hard
/// links, and a copy of one file far from it.
fn busy_trees() -> (Manifest, Manifest) {
    let mut dst = tree(&[
        ("a/keep", b"k"),
        ("a/edit", b"xy"),
        ("b/old/one", b"12"),
        ("b/old/two", b"34"),
        ("c/file-to-dir", b"f"),
        ("c/dir-to-file/inner", b"i"),
        ("z/moved", b"mv"),
    ]);
    let mut src = tree(&[
        ("a/keep", b"k"),
        ("a/edit", b"xz"),
        ("a/copy", b"12"),
        ("b/new/one", b"12"),
        ("b/new/two", b"34"),
        ("c/file-to-dir/now", b"n"),
        ("d/moved-here", b"mv"),
        ("e/fresh", b"pq"),
        ("y/far-copy", b"pq"),
    ]);
    let p = |s: &str| RelPath::new(s.as_bytes().to_vec()).unwrap();
    let mut file = tree(&[("c/dir-to-file", b"d")]);
    let e = file.entries.remove(&p("c/dir-to-file")).unwrap();
    src.entries.insert(p("c/dir-to-file"), e);
    let link = |target: &[u8]| Entry {
        path: p("l"),
        meta: meta(Kind::Symlink, 0),
        target: Some(target.to_vec()),
        hash: None,
        chunks: vec![],
        checked_ns: 0,
    };
    dst.entries.insert(p("l"), link(b"a/keep"));
    src.entries.insert(p("l"), link(b"a/edit"));
    for (path, ino) in [("h/first", 7), ("i/second", 7)] {
        let mut t = tree(&[(path, b"hh")]);
        let mut e = t.entries.remove(&p(path)).unwrap();
        e.meta.nlink = 2;
        e.meta.ino = ino;
        for (q, d) in t.entries {
            src.entries.insert(q, d);
        }
        src.entries.insert(p(path), e);
    }
    (src, dst)
}

/// A session plans a tree window by window; wherever the windows end, the
/// plan is the same as the whole tree's: the same lines, writes, links,
/// deletions, folders to touch up, and chunks shipped.
#[test]
fn a_tree_split_at_any_boundary_plans_the_same() {
    let (src, dst) = busy_trees();
    let n = src.entries.len();
    for delete in [true, false] {
        let opts = PlanOptions {
            delete,
            hard_links: true,
            ..PlanOptions::default()
        };
        let whole = in_windows(&src, &dst, &opts, &[]);
        let p = diff(&src, &dst, &opts);
        assert_eq!(
            whole,
            outcome(std::slice::from_ref(&p), &p, lines(&p), &p.stats),
            "one window is diff"
        );
        assert!(whole.lines.iter().any(|l| l.starts_with("R ")) == delete);
        for cut in 1..n {
            assert_eq!(
                in_windows(&src, &dst, &opts, &[cut]),
                whole,
                "cut after entry {cut}, delete {delete}"
            );
        }
        for size in 1..n {
            let cuts: Vec<usize> = (size..n).step_by(size).collect();
            assert_eq!(
                in_windows(&src, &dst, &opts, &cuts),
                whole,
                "windows of {size}, delete {delete}"
            );
        }
    }
}

/// A bounded change list keeps the first lines only (and the rename
/// bookkeeping stays within the same bound).
#[test]
fn a_bounded_change_list_keeps_the_first_lines() {
    let src = tree(&[("a", b"1"), ("b", b"2"), ("c", b"3"), ("d", b"4")]);
    let dst = tree(&[]);
    let mut planner = Planner::new(PlanOptions::default(), 2);
    planner.window(&src, &dst, &Nowhere);
    planner.finish();
    let kept = planner.take_changes();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(planner.stats.files_created, 4);
}
