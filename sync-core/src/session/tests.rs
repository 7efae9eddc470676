//! The whole engine as a property: after syncing A then B into one
//! destination, the destination equals B, whatever A and B are.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use proptest::prelude::*;

use super::*;

/// A small tree description: path → file content built from a few shared
/// blocks (so renames, copies and partial overlaps happen), or a symlink.
#[derive(Clone, Debug)]
enum Node {
    File(Vec<u8>, u32),
    Link(String),
}

fn block(i: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9u32.wrapping_mul(i as u32 + 1) | 1;
    (0..40_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        4 => (proptest::collection::vec(0u8..6, 0..8), prop_oneof![Just(0o644u32), Just(0o600), Just(0o755)])
            .prop_map(|(blocks, mode)| Node::File(blocks.iter().flat_map(|b| block(*b)).collect(), mode)),
        1 => "[a-c]{1,3}".prop_map(Node::Link),
    ]
}

fn tree() -> impl Strategy<Value = BTreeMap<String, Node>> {
    proptest::collection::btree_map("(d[0-2]/){0,2}[a-e]", node(), 0..10)
}

fn build(root: &Path, t: &BTreeMap<String, Node>) {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).unwrap();
    for (path, n) in t {
        let p = root.join(path);
        // A path may collide with a folder made for another path: skip it.
        if std::fs::create_dir_all(p.parent().unwrap()).is_err() || p.exists() {
            continue;
        }
        match n {
            Node::File(data, mode) => {
                std::fs::write(&p, data).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
            Node::Link(t) => std::os::unix::fs::symlink(t, &p).unwrap(),
        }
    }
}

fn listing(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name().min_depth(1) {
        let e = e.unwrap();
        let md = e.path().symlink_metadata().unwrap();
        let what = if md.is_symlink() {
            format!("link {:?}", std::fs::read_link(e.path()).unwrap())
        } else if md.is_dir() {
            "dir".to_string()
        } else {
            use std::os::unix::fs::MetadataExt;
            let data = std::fs::read(e.path()).unwrap();
            format!(
                "file {:o} {} {}",
                md.mode() & 0o7777,
                md.mtime_nsec() + md.mtime() * 1_000_000_000,
                blake3::hash(&data)
            )
        };
        out.push((
            e.path().strip_prefix(root).unwrap().display().to_string(),
            what,
        ));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn syncing_a_then_b_yields_b(a in tree(), b in tree()) {
        let dir = tempfile::tempdir().unwrap();
        let (sa, sb, dst) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("dst"));
        build(&sa, &a);
        build(&sb, &b);
        let side = |root: &Path, name: &str| Side { root: root.to_path_buf(), index: Some(dir.path().join(name)), threads: 2, progress: None, udp: UdpSide::local(), locks: Default::default() };
        let opts = SessionOptions { delete: true, allow_empty_source: true, ..SessionOptions::default() };
        let r1 = sync_local(&side(&sa, "a.db"), &side(&dst, "dst.db"), &opts).unwrap();
        prop_assert!(r1.errors.is_empty(), "{:?}", r1.errors);
        prop_assert_eq!(listing(&sa), listing(&dst));
        let r2 = sync_local(&side(&sb, "b.db"), &side(&dst, "dst.db"), &opts).unwrap();
        prop_assert!(r2.errors.is_empty(), "{:?}", r2.errors);
        prop_assert_eq!(listing(&sb), listing(&dst));
        // Nothing is shipped that the destination already had somewhere.
        prop_assert!(r2.chunk_bytes_sent <= r2.bytes_total);
    }
}
