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
