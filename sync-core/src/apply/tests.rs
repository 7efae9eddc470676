use super::*;
use crate::index::Index;
use crate::plan::{diff, PlanOptions};
use crate::scan::{scan, ScanOptions};
use std::sync::Arc;

pub(crate) fn manifest_of(root: &std::path::Path) -> crate::manifest::Manifest {
    let mut ix = Index::open_in_memory().unwrap();
    scan(root, &mut ix, &ScanOptions::default()).unwrap();
    ix.manifest().unwrap()
}

/// A chunk whose bytes no longer match (the source changed after its scan)
/// fails only its files: nothing reaches their final paths, no temp is left.
#[test]
fn a_chunk_that_changed_at_the_source_fails_only_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::write(src.join("changed"), b"version one").unwrap();
    std::fs::write(src.join("fine"), b"untouched").unwrap();
    let plan = diff(
        &manifest_of(&src),
        &manifest_of(&dst),
        &PlanOptions::default(),
    );
    assert_eq!(plan.stream.len(), 2);
    let mut a = Applier::new(
        Tree::open(&dst).unwrap(),
        Arc::new(plan.clone()),
        ApplyOptions::default(),
    );
    a.start(&[]).unwrap();
    for (i, c) in plan.stream.iter().enumerate() {
        let data: &[u8] = if c.length == 11 {
            b"version two"
        } else {
            b"untouched"
        };
        a.receive_chunk(i as u32, data.to_vec()).unwrap();
    }
    let (report, update) = a.finish().unwrap();
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.errors[0].path, "changed");
    assert!(!dst.join("changed").exists());
    assert_eq!(std::fs::read(dst.join("fine")).unwrap(), b"untouched");
    assert_eq!(
        update
            .put
            .iter()
            .filter(|e| e.path.as_bytes() == b"fine")
            .count(),
        1
    );
    let names: Vec<_> = std::fs::read_dir(&dst)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["fine"]);
}

#[test]
fn chunks_never_requested_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plan = crate::plan::Plan::default();
    let mut a = Applier::new(
        Tree::open(dir.path()).unwrap(),
        Arc::new(plan),
        ApplyOptions::default(),
    );
    a.start(&[]).unwrap();
    assert!(a.receive_chunk(0, b"x".to_vec()).is_err());
}

use crate::chunk::tests::noise;

/// A run that dies halfway leaves its temp file and journal; the next run
/// takes the journaled chunks locally and asks only for the rest.
#[test]
fn a_killed_run_resumes_without_resending_what_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    let data = noise(42, 3 << 20);
    std::fs::write(src.join("big"), &data).unwrap();
    let src_m = manifest_of(&src);
    let chunk_bytes = |c: &crate::plan::StreamChunk| {
        let e = src_m.files().next().unwrap();
        let k = e.chunks.iter().find(|k| k.hash == c.hash).unwrap();
        data[k.offset as usize..k.offset as usize + k.length as usize].to_vec()
    };

    let plan = diff(&src_m, &manifest_of(&dst), &PlanOptions::default());
    let total = plan.stream.len();
    assert!(total >= 8, "{total} chunks");
    let mut a = Applier::new(
        Tree::open(&dst).unwrap(),
        Arc::new(plan.clone()),
        ApplyOptions::default(),
    );
    a.start(&[]).unwrap();
    for (i, c) in plan.stream.iter().enumerate().take(total / 2) {
        a.receive_chunk(i as u32, chunk_bytes(c)).unwrap();
    }
    drop(a.abort(true)); // the connection went away
    assert!(!dst.join("big").exists(), "nothing at the final path");

    let mut ix = Index::open_in_memory().unwrap();
    let scan = scan(&dst, &mut ix, &ScanOptions::default()).unwrap();
    assert_eq!(
        scan.temp_files.len(),
        2,
        "temp file and its journal: {:?}",
        scan.temp_files
    );
    let extra = journal::leftover_sources(&mut Tree::open(&dst).unwrap(), &scan.temp_files);
    assert_eq!(extra.len(), total / 2);
    let opts = PlanOptions {
        extra_sources: extra,
        ..PlanOptions::default()
    };
    let plan2 = diff(&src_m, &ix.manifest().unwrap(), &opts);
    assert_eq!(
        plan2.stream.len(),
        total - total / 2,
        "only the missing half is asked for"
    );

    let mut b = Applier::new(
        Tree::open(&dst).unwrap(),
        Arc::new(plan2.clone()),
        ApplyOptions::default(),
    );
    b.start(&scan.temp_files).unwrap();
    for (i, c) in plan2.stream.iter().enumerate() {
        b.receive_chunk(i as u32, chunk_bytes(c)).unwrap();
    }
    let (report, _) = b.finish().unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(std::fs::read(dst.join("big")).unwrap(), data);
    let names: Vec<_> = std::fs::read_dir(&dst)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["big"], "leftovers removed");
}

/// The bytes of every chunk of `m`'s files, by hash.
pub(crate) fn chunk_bytes_of(
    root: &std::path::Path,
    m: &crate::manifest::Manifest,
) -> std::collections::HashMap<Hash, Vec<u8>> {
    let mut out = std::collections::HashMap::new();
    for e in m.files() {
        let data = std::fs::read(e.path.under(root)).unwrap();
        for c in &e.chunks {
            let at = c.offset as usize;
            out.insert(c.hash, data[at..at + c.length as usize].to_vec());
        }
    }
    out
}

/// Files spread over folders (so over several writers) that share
/// content: every file arrives whole, and each shipped chunk is counted once
/// however many writers need it.
#[test]
fn several_writers_share_chunks_and_count_them_once() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    let shared = noise(7, 300 << 10);
    for d in 0..12 {
        let folder = src.join(format!("d{d}"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("same"), &shared).unwrap();
        std::fs::write(folder.join("own"), noise(100 + d, 70 << 10)).unwrap();
    }
    std::fs::create_dir_all(&dst).unwrap();
    let src_m = manifest_of(&src);
    let bytes = chunk_bytes_of(&src, &src_m);
    let plan = diff(&src_m, &manifest_of(&dst), &PlanOptions::default());
    let opts = ApplyOptions {
        writers: Some(3),
        ..ApplyOptions::default()
    };
    let mut a = Applier::new(Tree::open(&dst).unwrap(), Arc::new(plan.clone()), opts);
    a.start(&[]).unwrap();
    for (i, c) in plan.stream.iter().enumerate() {
        a.receive_chunk(i as u32, bytes[&c.hash].clone()).unwrap();
    }
    assert!(a.take_refetch().unwrap().is_empty());
    let (report, update) = a.finish().unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.files_written, 24);
    let shipped: u64 = plan.stream.iter().map(|c| c.length as u64).sum();
    assert_eq!(report.chunk_bytes_received, shipped);
    assert!(
        shipped < 12 * (70 << 10) + 2 * (300 << 10),
        "shared content shipped once"
    );
    assert_eq!(
        update
            .put
            .iter()
            .filter(|e| e.meta.kind == Kind::File)
            .count(),
        24
    );
    for d in 0..12 {
        let folder = dst.join(format!("d{d}"));
        assert_eq!(std::fs::read(folder.join("same")).unwrap(), shared);
        assert_eq!(
            std::fs::read(folder.join("own")).unwrap(),
            noise(100 + d, 70 << 10)
        );
    }
}

/// A destination file that changed after it was indexed: its chunks fail
/// their check as they are copied, are asked for in another round, and the
/// file still arrives right.
#[test]
fn a_local_chunk_that_changed_since_its_scan_is_fetched_instead() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    let data = noise(9, 200 << 10);
    std::fs::write(src.join("renamed"), &data).unwrap();
    std::fs::write(dst.join("original"), &data).unwrap();
    let src_m = manifest_of(&src);
    let plan = diff(&src_m, &manifest_of(&dst), &PlanOptions::default());
    assert!(plan.stream.is_empty(), "a rename ships nothing");
    // Changed behind the index's back, same size.
    let mut changed = data.clone();
    changed[5] ^= 0xff;
    std::fs::write(dst.join("original"), &changed).unwrap();

    let mut a = Applier::new(
        Tree::open(&dst).unwrap(),
        Arc::new(plan),
        ApplyOptions::default(),
    );
    a.start(&[]).unwrap();
    let refetch = a.take_refetch().unwrap();
    assert_eq!(refetch.len(), 1, "only the chunk holding byte 5");
    let bytes = chunk_bytes_of(&src, &src_m);
    for (idx, c) in refetch {
        a.receive_chunk(idx, bytes[&c.hash].clone()).unwrap();
    }
    assert!(a.take_refetch().unwrap().is_empty());
    let (report, _) = a.finish().unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.chunks_refetched, 1);
    assert_eq!(std::fs::read(dst.join("renamed")).unwrap(), data);
}
