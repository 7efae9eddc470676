//! What the index and the run history do alike with their SQLite files:
//! open one read-write (making its folder), and bring its schema up to
//! date from an append-only list of migrations in one exclusive
//! transaction, stamping `application_id` and `user_version`. Each caller
//! keeps its own checks and errors (whose file it is, what is too new).

use std::path::Path;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

/// Opens (creating it and its folder if missing) the SQLite file at
/// `path`, for one thread at a time; `sql` names the file in errors.
pub fn open(path: &Path, sql: impl Fn(rusqlite::Error) -> Error) -> Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags).map_err(sql)
}

/// Applies the `migrations` not yet applied and stamps `app_id` and their
/// count, in one exclusive transaction. The version is read again inside
/// it (another process may have migrated first) and handed to `within`,
/// which runs in the same transaction before the commit.
pub fn migrate(
    conn: &mut Connection,
    app_id: i32,
    migrations: &[&str],
    sql: impl Fn(rusqlite::Error) -> Error,
    within: impl FnOnce(&Transaction<'_>, u32) -> Result<()>,
) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .map_err(&sql)?;
    let now: u32 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(&sql)?;
    let latest = migrations.len() as u32;
    for m in &migrations[now.min(latest) as usize..] {
        tx.execute_batch(m).map_err(&sql)?;
    }
    tx.pragma_update(None, "application_id", app_id)
        .map_err(&sql)?;
    tx.pragma_update(None, "user_version", latest)
        .map_err(&sql)?;
    within(&tx, now)?;
    tx.commit().map_err(sql)
}
