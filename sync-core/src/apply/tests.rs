use super::*;
use crate::index::Index;
use crate::plan::{diff, PlanOptions};
use crate::scan::{scan, ScanOptions};

fn manifest_of(root: &std::path::Path) -> crate::manifest::Manifest {
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
    let mut a = Applier::new(Tree::open(&dst).unwrap(), &plan, ApplyOptions::default());
    a.start(&[]).unwrap();
    for (i, c) in plan.stream.iter().enumerate() {
        let data: &[u8] = if c.length == 11 {
            b"version two"
        } else {
            b"untouched"
        };
        a.receive_chunk(i as u32, data).unwrap();
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
        &plan,
        ApplyOptions::default(),
    );
    a.start(&[]).unwrap();
    assert!(a.receive_chunk(0, b"x").is_err());
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
    let mut a = Applier::new(Tree::open(&dst).unwrap(), &plan, ApplyOptions::default());
    a.start(&[]).unwrap();
    for (i, c) in plan.stream.iter().enumerate().take(total / 2) {
        a.receive_chunk(i as u32, &chunk_bytes(c)).unwrap();
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

    let mut b = Applier::new(Tree::open(&dst).unwrap(), &plan2, ApplyOptions::default());
    b.start(&scan.temp_files).unwrap();
    for (i, c) in plan2.stream.iter().enumerate() {
        b.receive_chunk(i as u32, &chunk_bytes(c)).unwrap();
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
