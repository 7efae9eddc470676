//! The run history's schema as an append-only list of migrations.
//!
//! The index's rules ([`crate::index::schema`]): `PRAGMA user_version`
//! holds the number of migrations applied, a file above [`LATEST`] was
//! written by a newer sluice and is refused untouched, and `PRAGMA
//! application_id` marks the file as a history (not an index, not another
//! program's database). Never edit a migration that has shipped: append one.

/// `PRAGMA application_id` of sluice run histories ("slhi"; indexes are "sluc").
pub const APPLICATION_ID: i32 = 0x736c_6869;

/// Each element upgrades the schema by one version.
pub const MIGRATIONS: &[&str] = &[
    // 1: runs, the watch sessions that group rounds, and changed paths.
    V1,
];

/// The schema version this build writes.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// Version 1. Counts are NULL for a run that ended without a report (it
/// failed, or is still running); `loss_pct` and `rtt_ms` stay NULL until
/// the report carries them.
pub const V1: &str = "
CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE watch_sessions (
    id INTEGER PRIMARY KEY,
    job TEXT,
    started_ns INTEGER NOT NULL,
    ended_ns INTEGER,
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_start TEXT,
    rounds INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    watch_session INTEGER,
    job TEXT,
    started_ns INTEGER NOT NULL,
    ended_ns INTEGER,
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_start TEXT,
    outcome TEXT NOT NULL,
    exit_code INTEGER,
    error TEXT,
    files_total INTEGER,
    bytes_total INTEGER,
    files_created INTEGER,
    files_updated INTEGER,
    files_deleted INTEGER,
    entries_deleted INTEGER,
    dirs_created INTEGER,
    symlinks_created INTEGER,
    meta_updated INTEGER,
    chunk_bytes_sent INTEGER,
    bytes_reused INTEGER,
    wire_bytes_sent INTEGER,
    duration_s REAL,
    data_path TEXT,
    rate_bps REAL,
    warnings INTEGER,
    errors INTEGER,
    loss_pct REAL,
    rtt_ms REAL,
    itemized INTEGER NOT NULL DEFAULT 0,
    changes_stored INTEGER NOT NULL DEFAULT 0,
    changes_dropped INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_start ON runs(started_ns);
CREATE INDEX runs_by_job ON runs(job, started_ns);
CREATE INDEX runs_by_session ON runs(watch_session) WHERE watch_session IS NOT NULL;
CREATE TABLE changes (
    run INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    change TEXT NOT NULL,
    kind INTEGER NOT NULL,
    path TEXT NOT NULL,
    from_path TEXT,
    line TEXT NOT NULL,
    PRIMARY KEY (run, ordinal)
) WITHOUT ROWID;
";
