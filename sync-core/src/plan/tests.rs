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
