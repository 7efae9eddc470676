//! `sluice index` on real trees.

use std::os::unix::fs::PermissionsExt;

use crate::util::*;

#[test]
fn index_reports_and_rescans_incrementally() {
    let d = Dir::new();
    let root = d.path("tree");
    write(&root.join("a/one"), &noise(1, 300_000));
    write(&root.join("a/copy"), &noise(1, 300_000));
    write(&root.join("b"), b"small");
    std::thread::sleep(std::time::Duration::from_millis(250));
    let run = || {
        let out = d.sluice(&["index".as_ref(), "--json".as_ref(), root.as_os_str()]);
        assert_exit(&out, 0);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = run();
    assert_eq!(n(&first, "files"), 3);
    assert_eq!(n(&first, "files_read"), 3);
    assert_eq!(n(&first, "bytes"), 600_005);
    assert!(first["dedup_ratio"].as_f64().unwrap() > 1.9, "{first}");
    assert!(n(&first, "unique_chunks") < n(&first, "chunks"));
    let second = run();
    assert_eq!(n(&second, "files_read"), 0);
    assert!(
        d.path("state/sluice").read_dir().unwrap().count() >= 1,
        "index kept under XDG_STATE_HOME"
    );
}

#[test]
fn a_foreign_index_file_is_refused_and_untouched() {
    let d = Dir::new();
    write(&d.path("tree/f"), b"f");
    write(&d.path("notes.db"), b"my precious notes");
    let out = d.sluice(&[
        "index".as_ref(),
        "--index".as_ref(),
        d.path("notes.db").as_os_str(),
        d.path("tree").as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(43));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a sluice index"));
    assert_eq!(
        std::fs::read(d.path("notes.db")).unwrap(),
        b"my precious notes"
    );
}

/// Runs as an unprivileged user (root reads everything), if `setpriv` exists.
#[test]
fn an_unreadable_file_is_a_warning_and_a_partial_exit() {
    let d = Dir::new();
    let root = d.path("tree");
    write(&root.join("ok"), b"fine");
    write(&root.join("secret"), b"hidden");
    std::fs::set_permissions(root.join("secret"), std::fs::Permissions::from_mode(0o000)).unwrap();
    if !is_root() {
        // Not root: permissions already apply.
        let out = d.sluice(&["index".as_ref(), root.as_os_str()]);
        assert_eq!(out.status.code(), Some(23));
        return;
    }
    let out = sluice_as_nobody(&d, &["index".as_ref(), root.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(23), "{err}");
    assert!(
        err.contains("secret") && err.contains("ermission denied"),
        "{err}"
    );
}

/// The scan holds folder descriptors open while files wait to be read: a
/// tree of many folders must index fully under a small descriptor limit.
#[test]
fn many_folders_index_under_a_small_descriptor_limit() {
    let d = Dir::new();
    let root = d.path("tree");
    for i in 0..600 {
        write(&root.join(format!("d{i}/x")), format!("{i}").as_bytes());
        write(&root.join(format!("d{i}/y")), b"y");
    }
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" index --json \"$1\"")
        .arg(sluice_bin())
        .arg(&root)
        .env("XDG_STATE_HOME", d.path("state"))
        .output()
        .expect("run sh");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(n(&report, "files"), 1200, "{err}");
    assert_eq!(n(&report, "files_read"), 1200);
}
