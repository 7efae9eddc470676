use super::*;
use crate::plan::ChangeKind;
use crate::session::SyncReport;

const NOW: i64 = 1_765_000_000 * 1_000_000_000;

fn line(change: ChangeKind, path: &str, kind: Kind, from: Option<&str>) -> ChangeLine {
    let line = match from {
        Some(f) => format!("R {f} -> {path}"),
        None => format!("{} {path}", change.marker()),
    };
    ChangeLine {
        change,
        path: path.into(),
        kind,
        from: from.map(Into::into),
        line,
    }
}

fn report() -> SyncReport {
    SyncReport {
        files_total: 3,
        bytes_total: 3000,
        files_created: 1,
        files_updated: 1,
        dirs_created: 1,
        chunk_bytes_sent: 1000,
        wire_bytes_sent: 1200,
        bytes_reused: 500,
        data_path: "udp".into(),
        duration_s: 0.5,
        changes: vec![
            line(ChangeKind::Create, "a", Kind::File, None),
            line(ChangeKind::Update, "b", Kind::File, None),
            line(ChangeKind::Rename, "d/c", Kind::File, Some("c")),
        ],
        ..SyncReport::default()
    }
}

fn start(h: &History, kind: RunKind, at: i64) -> RunId {
    h.start(&RunStart {
        kind,
        watch: None,
        job: None,
        source: "/data/src",
        destination: "host:/backup",
        started_ns: at,
    })
    .unwrap()
}

fn end(outcome: Outcome, exit_code: i32, report: Option<&SyncReport>) -> RunEnd<'_> {
    RunEnd {
        ended_ns: NOW + 1_000_000_000,
        outcome,
        exit_code,
        report,
        itemized: true,
        error: None,
    }
}

fn all(h: &History) -> Vec<RunRow> {
    h.list(&Filter::default()).unwrap()
}

#[test]
fn migrating_twice_keeps_rows_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("state/history.db");
    {
        let mut h = History::open(&p).unwrap();
        let id = start(&h, RunKind::Sync, NOW);
        h.finish(id, &end(Outcome::Ok, 0, Some(&report()))).unwrap();
    }
    let h = History::open(&p).unwrap();
    assert_eq!(h.version().unwrap(), schema::LATEST);
    let rows = all(&h);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, Outcome::Ok);
}

#[test]
fn a_newer_history_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("history.db");
    {
        let c = Connection::open(&p).unwrap();
        c.execute_batch("CREATE TABLE future (x INTEGER);").unwrap();
        c.pragma_update(None, "application_id", schema::APPLICATION_ID)
            .unwrap();
        c.pragma_update(None, "user_version", schema::LATEST + 1)
            .unwrap();
    }
    let before = std::fs::read(&p).unwrap();
    match History::open(&p) {
        Err(Error::NotAHistory { reason, .. }) => assert!(reason.contains("newer"), "{reason}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer history was opened"),
    }
    assert_eq!(std::fs::read(&p).unwrap(), before);
    assert!(!dir.path().join("history.db-wal").exists());
}

#[test]
fn an_index_or_a_text_file_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("tree.db");
    drop(crate::index::Index::open(&index).unwrap());
    let text = dir.path().join("notes.db");
    std::fs::write(
        &text,
        "not a database at all, just some text that is long enough",
    )
    .unwrap();
    for p in [index, text] {
        let before = std::fs::read(&p).unwrap();
        assert!(
            matches!(History::open(&p), Err(Error::NotAHistory { .. })),
            "{}",
            p.display()
        );
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }
}

#[test]
fn a_successful_run_keeps_its_counts_and_changes() {
    let mut h = History::open_in_memory().unwrap();
    let id = start(&h, RunKind::Sync, NOW);
    assert_eq!(all(&h)[0].outcome, Outcome::Running);
    h.finish(id, &end(Outcome::Ok, 0, Some(&report()))).unwrap();
    let (row, changes) = h.show(id).unwrap().unwrap();
    assert_eq!(row.outcome, Outcome::Ok);
    assert_eq!(row.exit_code, Some(0));
    assert_eq!(row.source, "/data/src");
    assert_eq!(row.destination, "host:/backup");
    assert_eq!(row.ended_ns, Some(NOW + 1_000_000_000));
    let c = row.counts.unwrap();
    assert_eq!(c, RunCounts::of(&report()));
    assert_eq!(c.changed(), 3);
    assert_eq!(c.rate_bps, Some(1200.0 * 8.0 / 0.5));
    assert_eq!((row.changes_stored, row.changes_dropped), (3, 0));
    assert_eq!(changes, report().changes);
    assert!(h.show(RunId(id.0 + 1)).unwrap().is_none());
}

#[test]
fn a_failed_run_keeps_its_error_and_no_counts() {
    let mut h = History::open_in_memory().unwrap();
    let ok = start(&h, RunKind::Sync, NOW);
    h.finish(ok, &end(Outcome::Ok, 0, Some(&report()))).unwrap();
    let failed = start(&h, RunKind::Sync, NOW + 10);
    h.finish(
        failed,
        &RunEnd {
            error: Some("destination /x exists and is not a folder"),
            ..end(Outcome::Failed, 3, None)
        },
    )
    .unwrap();
    let rows = all(&h);
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [failed, ok]);
    let only = h
        .list(&Filter {
            failed_only: true,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(only.len(), 1);
    let r = &only[0];
    assert_eq!(
        (r.id, r.outcome, r.exit_code),
        (failed, Outcome::Failed, Some(3))
    );
    assert_eq!(
        r.error.as_deref(),
        Some("destination /x exists and is not a folder")
    );
    assert!(r.counts.is_none());
    assert!(h.show(failed).unwrap().unwrap().1.is_empty());
}

#[test]
fn a_running_row_whose_process_is_gone_reads_as_interrupted() {
    let h = History::open_in_memory().unwrap();
    let alive = start(&h, RunKind::Sync, NOW);
    let gone = start(&h, RunKind::Diff, NOW + 1);
    // As if written by a process of another boot.
    h.conn
        .execute(
            "UPDATE runs SET pid_start = 'another-boot:1' WHERE id = ?1",
            [gone.0],
        )
        .unwrap();
    let rows = all(&h);
    assert_eq!(
        rows.iter().map(|r| (r.id, r.outcome)).collect::<Vec<_>>(),
        [(gone, Outcome::Interrupted), (alive, Outcome::Running)]
    );
    let failed = h
        .list(&Filter {
            failed_only: true,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, gone);
}

#[test]
fn filters_select_by_time_job_and_count() {
    let mut h = History::open_in_memory().unwrap();
    for i in 0..5 {
        let id = h
            .start(&RunStart {
                kind: RunKind::Sync,
                watch: None,
                job: (i % 2 == 0).then_some("nightly"),
                source: "a",
                destination: "b",
                started_ns: NOW + i * DAY_NS,
            })
            .unwrap();
        h.finish(id, &end(Outcome::Ok, 0, None)).unwrap();
    }
    let since = |d: i64| Filter {
        since_ns: Some(NOW + d * DAY_NS),
        ..Filter::default()
    };
    assert_eq!(h.list(&since(3)).unwrap().len(), 2);
    let nightly = h
        .list(&Filter {
            job: Some("nightly".into()),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(nightly.len(), 3);
    let last_two = h
        .list(&Filter {
            limit: Some(2),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(
        last_two.iter().map(|r| r.started_ns).collect::<Vec<_>>(),
        [NOW + 4 * DAY_NS, NOW + 3 * DAY_NS]
    );
}

#[test]
fn watch_rounds_name_their_session() {
    let mut h = History::open_in_memory().unwrap();
    let w = h
        .start_watch(&WatchStart {
            job: None,
            source: "a",
            destination: "b",
            started_ns: NOW,
        })
        .unwrap();
    let round = h
        .start(&RunStart {
            kind: RunKind::WatchRound,
            watch: Some(w),
            job: None,
            source: "a",
            destination: "b",
            started_ns: NOW + 5,
        })
        .unwrap();
    h.finish(round, &end(Outcome::Ok, 0, Some(&report())))
        .unwrap();
    h.finish_watch(w, NOW + 100, 7).unwrap();
    let rows = all(&h);
    assert_eq!(
        (rows[0].kind, rows[0].watch),
        (RunKind::WatchRound, Some(w))
    );
}

#[test]
fn trim_drops_old_runs_with_their_changes_at_most_daily() {
    let mut h = History::open_in_memory().unwrap();
    let old = start(&h, RunKind::Sync, NOW - 100 * DAY_NS);
    h.finish(old, &end(Outcome::Ok, 0, Some(&report())))
        .unwrap();
    let recent = start(&h, RunKind::Sync, NOW - DAY_NS);
    h.finish(recent, &end(Outcome::Ok, 0, Some(&report())))
        .unwrap();
    let w = h
        .start_watch(&WatchStart {
            job: None,
            source: "a",
            destination: "b",
            started_ns: NOW - 95 * DAY_NS,
        })
        .unwrap();
    h.finish_watch(w, NOW - 94 * DAY_NS, 3).unwrap();

    assert_eq!(h.trim_daily(KEEP_DAYS, NOW).unwrap(), 1);
    assert_eq!(all(&h).iter().map(|r| r.id).collect::<Vec<_>>(), [recent]);
    let count = |sql: &str| -> i64 { h.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM changes"), 3);
    assert_eq!(count("SELECT count(*) FROM watch_sessions"), 0);

    // Within a day, no second trim; a day later, one.
    let older = start(&h, RunKind::Sync, NOW - 200 * DAY_NS);
    assert_eq!(h.trim_daily(KEEP_DAYS, NOW + DAY_NS / 2).unwrap(), 0);
    assert!(h.show(older).unwrap().is_some());
    assert_eq!(h.trim_daily(KEEP_DAYS, NOW + DAY_NS).unwrap(), 1);
    assert!(h.show(older).unwrap().is_none());
    // 0 keeps everything.
    start(&h, RunKind::Sync, 0);
    assert_eq!(h.trim_daily(0, NOW + 10 * DAY_NS).unwrap(), 0);
    assert_eq!(all(&h).len(), 2);
}

#[test]
fn a_long_change_list_is_cut_and_counted() {
    let mut h = History::open_in_memory().unwrap();
    let mut r = report();
    r.changes = (0..MAX_CHANGES + 7)
        .map(|i| line(ChangeKind::Create, &format!("f{i:06}"), Kind::File, None))
        .collect();
    let id = start(&h, RunKind::Sync, NOW);
    h.finish(id, &end(Outcome::Ok, 0, Some(&r))).unwrap();
    let (row, changes) = h.show(id).unwrap().unwrap();
    assert_eq!(
        (row.changes_stored, row.changes_dropped),
        (MAX_CHANGES as u64, 7)
    );
    assert_eq!(changes.len(), MAX_CHANGES);
    assert_eq!(changes[..], r.changes[..MAX_CHANGES]);
    // Finishing again replaces the list instead of failing on it.
    h.finish(id, &end(Outcome::Ok, 0, Some(&report()))).unwrap();
    assert_eq!(h.show(id).unwrap().unwrap().1, report().changes);
}
