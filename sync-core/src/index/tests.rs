use rusqlite::Connection;

use super::*;
use crate::chunk::{ChunkRef, Hash};
use crate::entry::{Entry, Kind, Meta};
use crate::error::Error;

fn file_entry(path: &[u8], data: &[u8]) -> Entry {
    Entry {
        path: RelPath::new(path.to_vec()).unwrap(),
        meta: Meta {
            kind: Kind::File,
            size: data.len() as u64,
            mtime_ns: -1_500_000_001,
            mode: 0o644,
            ino: u64::MAX,
            dev: 7,
            ctime_ns: 1,
            nlink: 1,
        },
        target: None,
        hash: Some(Hash::of(data)),
        chunks: vec![ChunkRef {
            offset: 0,
            length: data.len() as u32,
            hash: Hash::of(data),
        }],
        checked_ns: 5,
    }
}

#[test]
fn migrating_twice_keeps_data_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("i.db");
    {
        let mut ix = Index::open(&p).unwrap();
        let w = ix.writer().unwrap();
        w.put(&file_entry(b"a", b"hello"), None).unwrap();
        w.commit().unwrap();
    }
    let ix = Index::open(&p).unwrap();
    assert_eq!(ix.version().unwrap(), schema::LATEST);
    assert_eq!(
        ix.meta("format_version").unwrap(),
        Some(schema::LATEST.to_string())
    );
    let m = ix.manifest().unwrap();
    assert_eq!(m.entries.len(), 1);
    let e = m.entries.values().next().unwrap();
    assert_eq!(e, &file_entry(b"a", b"hello"));
}

#[test]
fn upgrades_an_index_of_version_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("old.db");
    {
        let c = Connection::open(&p).unwrap();
        c.execute_batch(schema::V1).unwrap();
        c.pragma_update(None, "application_id", schema::APPLICATION_ID)
            .unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute(
            "INSERT INTO entries(path, kind, size, mtime_ns, mode, ino, dev, ctime_ns, nlink) VALUES (x'6f6c64', 1, 0, 0, 493, 1, 1, 0, 2)",
            [],
        )
        .unwrap();
    }
    let ix = Index::open(&p).unwrap();
    assert_eq!(ix.version().unwrap(), 2);
    let m = ix.manifest().unwrap();
    assert_eq!(m.entries.keys().next().unwrap().as_bytes(), b"old");
    // The v2 objects exist.
    let n: i64 = ix
        .conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('chunks_by_hash', 'scans')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn refuses_a_newer_index_without_touching_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("new.db");
    {
        let c = Connection::open(&p).unwrap();
        c.execute_batch("CREATE TABLE future(x);").unwrap();
        c.pragma_update(None, "application_id", schema::APPLICATION_ID)
            .unwrap();
        c.pragma_update(None, "user_version", schema::LATEST + 1)
            .unwrap();
    }
    let before = std::fs::read(&p).unwrap();
    match Index::open(&p) {
        Err(Error::IndexTooNew { found, .. }) => assert_eq!(found, schema::LATEST + 1),
        other => panic!("expected IndexTooNew, got {:?}", other.err()),
    }
    assert_eq!(std::fs::read(&p).unwrap(), before);
    assert!(!dir.path().join("new.db-wal").exists());
}

#[test]
fn refuses_foreign_files_without_touching_them() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"dear diary, today I indexed nothing\n").unwrap();
    assert!(matches!(Index::open(&text), Err(Error::NotAnIndex { .. })));
    assert_eq!(
        std::fs::read(&text).unwrap(),
        b"dear diary, today I indexed nothing\n"
    );

    let other = dir.path().join("other.db");
    {
        let c = Connection::open(&other).unwrap();
        c.execute_batch("CREATE TABLE customers(name TEXT); INSERT INTO customers VALUES ('x');")
            .unwrap();
    }
    let before = std::fs::read(&other).unwrap();
    let err = Index::open(&other).err().expect("foreign database refused");
    assert!(matches!(err, Error::NotAnIndex { .. }), "{err}");
    assert!(err.to_string().contains("other.db"));
    assert_eq!(std::fs::read(&other).unwrap(), before);
}

#[test]
fn odd_names_round_trip_exactly() {
    let names: Vec<Vec<u8>> = vec![
        b"new\nline".to_vec(),
        b"tab\there".to_vec(),
        b"bad\xff\xfeutf8".to_vec(),
        "caf\u{e9}".as_bytes().to_vec(),   // NFC
        "cafe\u{301}".as_bytes().to_vec(), // NFD
        vec![b'n'; 255],
    ];
    let mut ix = Index::open_in_memory().unwrap();
    let w = ix.writer().unwrap();
    for n in &names {
        w.put(&file_entry(n, n), None).unwrap();
    }
    w.commit().unwrap();
    let m = ix.manifest().unwrap();
    let mut got: Vec<_> = m.entries.keys().map(|k| k.as_bytes().to_vec()).collect();
    let mut want = names.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn replacing_an_entry_drops_its_old_chunks() {
    let mut ix = Index::open_in_memory().unwrap();
    let w = ix.writer().unwrap();
    let id = w.put(&file_entry(b"f", b"one"), None).unwrap();
    let id2 = w.put(&file_entry(b"f", b"two"), Some(id)).unwrap();
    w.commit().unwrap();
    assert_eq!(id, id2);
    assert!(!ix.has_chunk(&Hash::of(b"one")).unwrap());
    assert!(ix.has_chunk(&Hash::of(b"two")).unwrap());
    assert_eq!(ix.chunk_stats().unwrap().1, 1);
}
