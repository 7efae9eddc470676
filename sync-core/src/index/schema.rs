//! The index schema as an append-only list of migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied; an index
//! whose version is above [`LATEST`] was written by a newer sluice and is
//! refused without being touched. `PRAGMA application_id` marks the file as
//! ours, so a foreign SQLite database is never migrated into one. Never edit
//! a migration that has shipped: append a new one.

/// `PRAGMA application_id` of sluice indexes ("sluc").
pub const APPLICATION_ID: i32 = 0x736c_7563;

/// Each element upgrades the schema by one version.
pub const MIGRATIONS: &[&str] = &[
    // 1: entries, their chunks, and key/value metadata.
    V1,
    // 2: "is chunk H anywhere in this tree?" as one index lookup, and a
    // history of scans.
    "CREATE INDEX chunks_by_hash ON chunks(hash);
     CREATE TABLE scans (
        id INTEGER PRIMARY KEY,
        started_ns INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        entries INTEGER NOT NULL,
        files_read INTEGER NOT NULL,
        bytes_read INTEGER NOT NULL,
        warnings INTEGER NOT NULL
     );",
];

/// The schema version this build writes.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// Version 1, kept as text so the upgrade test can build an old index.
pub const V1: &str = "
CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE entries (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
    kind INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    dev INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    nlink INTEGER NOT NULL,
    target BLOB,
    hash BLOB,
    checked_ns INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE chunks (
    entry INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (entry, ordinal)
) WITHOUT ROWID;
";
