//! The run history: `sluice log` after real runs, and a broken history
//! that must not fail a sync.

use std::ffi::OsStr;
use std::path::Path;

use crate::util::*;
use crate::watch::{Watching, SHOW_UP};

/// `sluice log ARGS...`, which must exit 0; its stdout.
fn log_text(d: &Dir, args: &[&str]) -> String {
    let mut all: Vec<&OsStr> = vec!["log".as_ref()];
    all.extend(args.iter().map(OsStr::new));
    let out = d.sluice(&all);
    assert_exit(&out, 0);
    String::from_utf8(out.stdout).unwrap()
}

/// `sluice log ARGS... --json`.
fn log_json(d: &Dir, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let text = log_text(d, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn runs(d: &Dir, args: &[&str]) -> Vec<serde_json::Value> {
    log_json(d, args)
        .as_array()
        .expect("an array of runs")
        .clone()
}

fn small_tree(root: &Path) {
    write(&root.join("a"), b"hello");
    write(&root.join("sub/b"), b"world");
}

#[test]
fn a_sync_is_listed_with_its_counts_and_shown_with_its_changes() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    small_tree(&src);
    let (code, report, stderr) = d.sync(&src, &dst, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("history"), "{stderr}");

    let listed = runs(&d, &[]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let r = &listed[0];
    assert_eq!(r["kind"], "sync", "{r}");
    assert_eq!(r["outcome"], "ok", "{r}");
    assert_eq!(r["exit_code"], 0, "{r}");
    assert_eq!(r["source"], src.to_str().unwrap(), "{r}");
    assert_eq!(r["destination"], dst.to_str().unwrap(), "{r}");
    assert!(r["job"].is_null() && r["watch"].is_null(), "{r}");
    for key in [
        "files_total",
        "files_created",
        "chunk_bytes_sent",
        "bytes_total",
    ] {
        assert_eq!(r["counts"][key], report[key], "{key}: {r}");
    }
    assert_eq!(r["counts"]["files_total"], 2, "{r}");
    assert!(r["started"].as_str().unwrap().ends_with('Z'), "{r}");
    assert!(r["ended_ns"].as_i64().unwrap() >= r["started_ns"].as_i64().unwrap());

    let id = r["id"].as_i64().unwrap().to_string();
    let shown = log_json(&d, &["show", &id]);
    assert_eq!(shown["changes"], report["changes"], "{shown}");
    let text = log_text(&d, &["show", &id]);
    assert!(
        text.starts_with(&format!("run {id}: sync, ok (exit 0)\n")),
        "{text}"
    );
    for line in lines(&report) {
        assert!(
            text.contains(&format!("\n{line}\n")),
            "{line:?} not in:\n{text}"
        );
    }

    let table = log_text(&d, &[]);
    let row = table.lines().nth(1).expect("a header and a row");
    assert!(
        row.contains(" sync ")
            && row.contains(" ok/0 ")
            && row.ends_with(&format!("{} -> {}", src.display(), dst.display())),
        "{table}"
    );
}

#[test]
fn a_failed_run_is_listed_with_failed() {
    let d = Dir::new();
    let src = d.path("src");
    small_tree(&src);
    assert_eq!(d.sync(&src, &d.path("dst"), &[]).0, 0);
    let file = d.path("file");
    write(&file, b"not a folder");
    let out = d.sluice(&["sync".as_ref(), src.as_os_str(), file.as_os_str()]);
    assert_exit(&out, 3);

    let failed = runs(&d, &["--failed"]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    let r = &failed[0];
    assert_eq!(r["outcome"], "failed", "{r}");
    assert_eq!(r["exit_code"], 3, "{r}");
    let error = r["error"].as_str().unwrap();
    assert!(error.contains("exists and is not a folder"), "{r}");
    assert!(r["counts"].is_null(), "{r}");
    // Newest first; without --failed both are there.
    let all = runs(&d, &[]);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["id"], r["id"]);
    let text = log_text(&d, &["show", &r["id"].to_string()]);
    assert!(text.contains(&format!("error        {error}")), "{text}");
}

#[test]
fn filters_by_time_and_count() {
    let d = Dir::new();
    let src = d.path("src");
    small_tree(&src);
    assert_eq!(d.sync(&src, &d.path("one"), &[]).0, 0);
    assert_eq!(d.sync(&src, &d.path("two"), &["--dry-run"]).0, 0);
    assert_eq!(runs(&d, &["--since", "1h"]).len(), 2);
    assert_eq!(runs(&d, &["--since", "2099-01-01"]).len(), 0);
    assert_eq!(runs(&d, &["--since", "2000-01-01T00:00"]).len(), 2);
    let newest = runs(&d, &["--limit", "1"]);
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0]["kind"], "diff", "{newest:?}");
    assert_eq!(runs(&d, &["--job", "nightly"]).len(), 0);
    let out = d.sluice(&["log".as_ref(), "--since".as_ref(), "yesterday".as_ref()]);
    assert_exit(&out, 1);
}

#[test]
fn a_plain_run_records_its_changes_too() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    small_tree(&src);
    // Not itemised on the terminal (no -i, no --json)...
    let out = d.sluice(&["sync".as_ref(), src.as_os_str(), dst.as_os_str()]);
    assert_exit(&out, 0);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("+ "));
    // ...but its changes are in the history all the same.
    let r = &runs(&d, &[])[0];
    assert_eq!(r["itemized"], true, "{r}");
    assert_eq!(r["counts"]["files_created"], 2, "{r}");
    let text = log_text(&d, &["show", &r["id"].to_string()]);
    assert!(!text.contains("did not itemise"), "{text}");
    assert!(text.contains("+ "), "{text}");
}

#[test]
fn an_unwritable_history_warns_once_and_the_sync_succeeds() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    small_tree(&src);
    std::fs::create_dir_all(d.path("state/sluice/history.db")).unwrap();
    let (code, _, stderr) = d.sync(&src, &dst, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.matches("sluice: warning: history: ").count(),
        1,
        "{stderr}"
    );
    assert_same_tree(&src, &dst);
    // Reading it is an error of its own.
    let out = d.sluice(&["log".as_ref()]);
    assert_exit(&out, 1);
}

#[test]
fn no_history_records_nothing() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    small_tree(&src);
    let (code, _, stderr) = d.sync(&src, &dst, &["--no-history"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!d.path("state/sluice/history.db").exists());
    assert_eq!(runs(&d, &[]).len(), 0);
    let out = d.sluice(&["log".as_ref(), "show".as_ref(), "1".as_ref()]);
    assert_exit(&out, 1);
}

#[test]
fn watch_rounds_are_listed_under_their_watch() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    small_tree(&src);
    let mut w = Watching::start(&d, &[], &src, dst.to_str().unwrap());
    w.round(SHOW_UP);
    write(&src.join("c"), b"new");
    w.until_same(&src, &dst);
    assert_eq!(w.stop(libc::SIGTERM), Some(0));

    // Only rounds that changed something have a row.
    let rounds = runs(&d, &[]);
    assert!(!rounds.is_empty());
    for r in &rounds {
        assert_eq!(r["kind"], "watch-round", "{r}");
        assert_eq!(r["outcome"], "ok", "{r}");
        assert_eq!(r["watch"], rounds[0]["watch"], "{r}");
    }
    assert!(rounds[0]["watch"].is_i64(), "{rounds:?}");
    let created: u64 = rounds
        .iter()
        .map(|r| r["counts"]["files_created"].as_u64().unwrap())
        .sum();
    assert_eq!(created, 3, "{rounds:?}");
}
