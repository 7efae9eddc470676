//! `sluice sync` and `sluice diff` on real trees.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use std::process::Command;

use crate::util::*;

const KIB: usize = 1024;
const Y2100_NS: i64 = 4_102_444_800 * 1_000_000_000 + 123_456_789;

/// A tree with everything a mirror must get right.
fn odd_tree(root: &Path) -> Vec<std::os::unix::net::UnixListener> {
    let names: Vec<&[u8]> = vec![
        b"with space",
        b"new\nline",
        b"tab\there",
        b"bad\xff\xfeutf8",
        "caf\u{e9}".as_bytes(),
        "cafe\u{301}".as_bytes(),
    ];
    for (i, n) in names.iter().enumerate() {
        write(
            &root.join("names").join(std::ffi::OsStr::from_bytes(n)),
            &noise(i as u64, 100 + i),
        );
    }
    write(&root.join("names").join("x".repeat(255)), b"long name");
    let mut deep = root.join("deep");
    for i in 0..40 {
        deep.push(format!("level{i}"));
    }
    write(&deep.join("bottom.txt"), b"down here");
    write(&root.join("empty-file"), b"");
    std::fs::create_dir_all(root.join("empty/folder")).unwrap();
    for (i, len) in [
        16 * KIB - 1,
        16 * KIB,
        16 * KIB + 1,
        64 * KIB,
        256 * KIB,
        256 * KIB + 1,
        1024 * KIB,
    ]
    .into_iter()
    .enumerate()
    {
        write(
            &root.join(format!("sizes/{len}.bin")),
            &noise(100 + i as u64, len),
        );
    }
    std::fs::create_dir_all(root.join("links")).unwrap();
    std::os::unix::fs::symlink("../sizes/65536.bin", root.join("links/relative")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("links/absolute")).unwrap();
    std::os::unix::fs::symlink("nowhere/at/all", root.join("links/dangling")).unwrap();
    std::os::unix::fs::symlink("loop-b", root.join("links/loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", root.join("links/loop-b")).unwrap();
    for (name, mode) in [("ro", 0o444), ("private", 0o600), ("exec", 0o755)] {
        let p = root.join(format!("modes/{name}"));
        write(&p, name.as_bytes());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::create_dir_all(root.join("modes/setgid-dir")).unwrap();
    write(&root.join("modes/setgid-dir/inside"), b"group");
    std::fs::set_permissions(
        root.join("modes/setgid-dir"),
        std::fs::Permissions::from_mode(0o2755),
    )
    .unwrap();
    write(&root.join("times/epoch"), b"1970");
    set_mtime(&root.join("times/epoch"), 0);
    write(&root.join("times/future"), b"2100");
    set_mtime(&root.join("times/future"), Y2100_NS);
    write(&root.join("hard/one"), &noise(7, 50_000));
    std::fs::hard_link(root.join("hard/one"), root.join("hard/two")).unwrap();
    let sparse = std::fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(20 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"island", 10 << 20).unwrap();
    std::fs::create_dir_all(root.join("special")).unwrap();
    mkfifo(&root.join("special/fifo"));
    let sock = mksocket(&root.join("special/socket"));
    // Folder mtimes last, since creating entries changes them.
    set_mtime(&root.join("times"), 1_000_000_000_123);
    vec![sock]
}

#[test]
fn mirrors_a_tree_of_odd_entries_exactly() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    let _keep = odd_tree(&src);
    let (code, report, stderr) = d.sync(&src, &dst, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("fifo skipped") && stderr.contains("socket skipped"),
        "{stderr}"
    );
    assert_same_tree(&src, &dst);
    // Without --hard-links, hard links become separate files.
    let (a, b) = (
        std::fs::metadata(dst.join("hard/one")).unwrap(),
        std::fs::metadata(dst.join("hard/two")).unwrap(),
    );
    assert_ne!(a.ino(), b.ino());
    assert_eq!(n(&report, "files_deleted"), 0);
    assert!(n(&report, "files_created") >= 20);

    // A second run changes nothing and ships nothing.
    let (code, report, _) = d.sync(&src, &dst, &[]);
    assert_eq!(code, 0);
    assert_eq!(lines(&report), Vec::<String>::new());
    assert_eq!(n(&report, "chunk_bytes_sent"), 0);
    assert_same_tree(&src, &dst);
}

#[test]
fn hard_links_are_preserved_on_request() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("a"), &noise(1, 100_000));
    std::fs::hard_link(src.join("a"), src.join("b")).unwrap();
    let (code, report, stderr) = d.sync(&src, &dst, &["--hard-links"]);
    assert_eq!(code, 0, "{stderr}");
    assert_same_tree(&src, &dst);
    let (a, b) = (
        std::fs::metadata(dst.join("a")).unwrap(),
        std::fs::metadata(dst.join("b")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert!(
        lines(&report).contains(&"h b => a".to_string()),
        "{:?}",
        lines(&report)
    );
}

fn big_tree(src: &Path) {
    for i in 0..3u64 {
        write(
            &src.join(format!("big/file{i}.bin")),
            &noise(1000 + i, 3 << 20),
        );
    }
    write(&src.join("log.txt"), &noise(5, 300_000));
    write(&src.join("gone.txt"), b"delete me");
    write(&src.join("swap/was-file"), b"file");
    std::fs::create_dir_all(src.join("swap/was-dir")).unwrap();
    write(&src.join("swap/was-dir/child"), b"child");
    write(&src.join("swap/was-link-target"), b"t");
    std::os::unix::fs::symlink("was-link-target", src.join("swap/was-link")).unwrap();
    write(&src.join("chmod-me"), b"mode");
    write(&src.join("touch-me"), b"time");
}

#[test]
fn resync_after_edits_ships_only_a_few_chunks() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    big_tree(&src);
    let (code, first, stderr) = d.sync(&src, &dst, &["--delete"]);
    assert_eq!(code, 0, "{stderr}");
    assert_same_tree(&src, &dst);
    assert!(n(&first, "chunk_bytes_sent") >= 9 << 20);

    // A renamed folder of large files costs zero chunk bytes.
    std::fs::rename(src.join("big"), src.join("renamed")).unwrap();
    let (code, report, stderr) = d.sync(&src, &dst, &["--delete"]);
    assert_eq!(code, 0, "{stderr}");
    assert_same_tree(&src, &dst);
    assert_eq!(n(&report, "chunk_bytes_sent"), 0, "{report}");
    let l = lines(&report);
    assert!(
        l.contains(&"R big/file0.bin -> renamed/file0.bin".to_string()),
        "{l:?}"
    );
    assert!(l.contains(&"- big/".to_string()), "{l:?}");

    // Insertion, append, deletion, type swaps, chmod only, mtime only.
    let f1 = src.join("renamed/file1.bin");
    let mut data = std::fs::read(&f1).unwrap();
    data.splice(1_500_000..1_500_000, noise(9, 100));
    std::fs::write(&f1, &data).unwrap();
    let mut log = std::fs::read(src.join("log.txt")).unwrap();
    log.extend(noise(10, 5000));
    std::fs::write(src.join("log.txt"), &log).unwrap();
    std::fs::remove_file(src.join("gone.txt")).unwrap();
    std::fs::remove_file(src.join("swap/was-file")).unwrap();
    std::fs::create_dir(src.join("swap/was-file")).unwrap();
    std::fs::remove_dir_all(src.join("swap/was-dir")).unwrap();
    std::os::unix::fs::symlink("was-link-target", src.join("swap/was-dir")).unwrap();
    std::fs::remove_file(src.join("swap/was-link")).unwrap();
    write(&src.join("swap/was-link"), b"now a file");
    std::fs::set_permissions(src.join("chmod-me"), std::fs::Permissions::from_mode(0o600)).unwrap();
    set_mtime(&src.join("touch-me"), 1_234_567_890_123_456_789);
    let (code, report, stderr) = d.sync(&src, &dst, &["--delete"]);
    assert_eq!(code, 0, "{stderr}");
    assert_same_tree(&src, &dst);
    let sent = n(&report, "chunk_bytes_sent");
    // The insertion touches a couple of 64 KiB-average chunks, the append
    // the log's last chunk; everything else is local.
    assert!(sent > 0 && sent < 1 << 20, "sent {sent} bytes: {report}");
    let l = lines(&report);
    for want in [
        "M renamed/file1.bin",
        "M log.txt",
        "- gone.txt",
        "T swap/was-file/",
        "T swap/was-dir",
        "T swap/was-link",
        "m chmod-me",
        "m touch-me",
    ] {
        assert!(l.contains(&want.to_string()), "missing {want:?} in {l:?}");
    }
}

#[test]
fn dry_run_and_diff_change_nothing() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    big_tree(&src);
    let (code, _, _) = d.sync(&src, &dst, &[]);
    assert_eq!(code, 0);
    std::fs::rename(src.join("big/file0.bin"), src.join("moved.bin")).unwrap();
    write(&src.join("new.txt"), b"new");
    std::fs::remove_file(src.join("gone.txt")).unwrap();
    std::fs::set_permissions(src.join("chmod-me"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let before = snapshot(&dst);

    let out = d.sluice(&[
        "diff".as_ref(),
        "--delete".as_ref(),
        src.as_os_str(),
        dst.as_os_str(),
    ]);
    assert_exit(&out, 0);
    let text = String::from_utf8(out.stdout).unwrap();
    let mut itemised: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("source: "))
        .collect();
    itemised.sort();
    assert_eq!(
        itemised,
        [
            "+ new.txt",
            "- gone.txt",
            "R big/file0.bin -> moved.bin",
            "m chmod-me"
        ]
    );
    assert!(text.contains("would send 3 B of chunks"), "{text}");
    assert!(snapshot(&dst) == before, "diff changed the destination");

    let (code, report, _) = d.sync(&src, &dst, &["--dry-run", "--delete"]);
    assert_eq!(code, 0);
    assert_eq!(report["dry_run"], true);
    assert_eq!(n(&report, "files_created"), 2);
    assert_eq!(n(&report, "files_deleted"), 2);
    assert_eq!(n(&report, "chunk_bytes_sent"), 3);
    assert!(n(&report, "wire_bytes_sent") > 0);
    assert!(
        snapshot(&dst) == before,
        "--dry-run changed the destination"
    );

    // Dry run into a destination that does not exist creates nothing.
    let (code, report, _) = d.sync(&src, &d.path("not-yet"), &["--dry-run"]);
    assert_eq!(code, 0);
    assert!(n(&report, "files_created") > 0);
    assert!(!d.path("not-yet").exists());
}

#[test]
fn delete_guards() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    for i in 0..5 {
        write(&src.join(format!("f{i}")), b"x");
    }
    assert_eq!(d.sync(&src, &dst, &[]).0, 0);
    for i in 0..5 {
        std::fs::remove_file(src.join(format!("f{i}"))).unwrap();
    }
    // An empty source with --delete is the unmounted-disk accident.
    let out = d.sluice(&[
        "sync".as_ref(),
        "--delete".as_ref(),
        src.as_os_str(),
        dst.as_os_str(),
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-empty-source"));
    assert!(dst.join("f0").exists());

    write(&src.join("keep"), b"k");
    let (code, report, _) = d.sync(&src, &dst, &["--delete", "--max-delete", "3"]);
    assert_eq!(code, 25);
    assert_eq!(n(&report, "files_deleted"), 0);
    assert!(dst.join("f0").exists() && dst.join("keep").exists());

    let (code, _, _) = d.sync(&src, &dst, &["--delete", "--max-delete", "5"]);
    assert_eq!(code, 0);
    assert_same_tree(&src, &dst);

    std::fs::remove_file(src.join("keep")).unwrap();
    let (code, _, _) = d.sync(&src, &dst, &["--delete", "--allow-empty-source"]);
    assert_eq!(code, 0);
    assert_same_tree(&src, &dst);
}

#[test]
fn bad_paths_are_refused_before_anything_is_written() {
    let d = Dir::new();
    let src = d.path("src");
    write(&src.join("a"), b"a");
    write(&d.path("file"), b"not a folder");
    let cases: Vec<(std::path::PathBuf, std::path::PathBuf, &str)> = vec![
        (d.path("missing"), d.path("dst"), "missing"),
        (d.path("file"), d.path("dst"), "not a folder"),
        (src.clone(), d.path("file"), "not a folder"),
        (src.clone(), src.join("inside"), "inside the source"),
        (src.join("."), d.path("src/../src"), "same folder"),
        (d.path("src"), d.path(""), "inside the destination"),
    ];
    for (s, t, what) in cases {
        let out = d.sluice(&["sync".as_ref(), s.as_os_str(), t.as_os_str()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{what}: {err}");
        assert!(
            err.contains(what) || err.contains("No such file"),
            "{what}: {err}"
        );
    }
    assert!(!d.path("dst").exists());
    assert!(!src.join("inside").exists());
}

#[test]
fn excludes_apply_to_both_sides() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("keep.txt"), b"k");
    write(&src.join("skip.o"), b"o");
    write(&src.join("sub/.sluiceignore"), b"*.tmp\n");
    write(&src.join("sub/x.tmp"), b"t");
    write(
        &dst.join("local.o"),
        b"kept: excluded entries are not deleted",
    );
    let (code, report, _) = d.sync(&src, &dst, &["--delete", "--exclude", "*.o"]);
    assert_eq!(code, 0);
    assert!(dst.join("keep.txt").exists() && dst.join("sub/.sluiceignore").exists());
    assert!(!dst.join("skip.o").exists() && !dst.join("sub/x.tmp").exists());
    assert!(dst.join("local.o").exists());
    assert_eq!(n(&report, "files_deleted"), 0);
}

#[test]
fn tree_comparison_catches_differences() {
    // The helper every test relies on must itself fail on a difference.
    let d = Dir::new();
    write(&d.path("a/f"), b"1");
    write(&d.path("b/f"), b"2");
    set_mtime(&d.path("a/f"), 5);
    set_mtime(&d.path("b/f"), 5);
    let r = std::panic::catch_unwind(|| assert_same_tree(&d.path("a"), &d.path("b")));
    assert!(r.is_err());
}

#[test]
fn a_local_sync_over_udp_mirrors_exactly() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    let _keep = odd_tree(&src);
    write(&src.join("big.bin"), &noise(5, 5 << 20));
    let (code, report, stderr) = d.sync(&src, &dst, &["--transport", "udp"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["data_path"], "udp");
    assert_same_tree(&src, &dst);
    let (chunks, wire) = (
        n(&report, "chunk_bytes_sent"),
        n(&report, "wire_bytes_sent"),
    );
    // Datagram headers and tags count on the wire.
    assert!(chunks > 5 << 20 && wire > chunks, "{chunks} {wire}");

    // Unencrypted and with a fixed rate too (small tree, so it stays quick).
    write(&src.join("more.bin"), &noise(6, 1 << 20));
    let (code, report, stderr) = d.sync(
        &src,
        &dst,
        &[
            "--transport",
            "udp",
            "--cipher",
            "none",
            "--policy",
            "fixed",
            "--rate",
            "400M",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["data_path"], "udp");
    assert_same_tree(&src, &dst);
}

/// Issue 24: a run whose chunks went by UDP reports the link's mean loss
/// and round-trip time (in --json, the summary and its history row); one
/// whose chunks stayed in the process has none to report.
#[test]
fn a_udp_run_reports_loss_and_rtt_and_an_in_process_one_null() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("big.bin"), &noise(7, 2 << 20));
    let (code, report, stderr) = d.sync(&src, &dst, &["--transport", "udp"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["data_path"], "udp");
    let loss = report["loss_pct"].as_f64().expect("numeric loss_pct");
    assert!((0.0..=100.0).contains(&loss), "{report}");
    let rtt = report["rtt_ms"].as_f64().expect("numeric rtt_ms");
    // Loopback, queues included: well under a second.
    assert!((0.0..1000.0).contains(&rtt), "{report}");
    let id = report["history_id"].to_string();
    let shown = d.sluice(&[
        "log".as_ref(),
        "show".as_ref(),
        id.as_ref(),
        "--json".as_ref(),
    ]);
    let row: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(row["loss_pct"], report["loss_pct"], "{row}");
    assert_eq!(row["rtt_ms"], report["rtt_ms"], "{row}");

    // The summary's line for it.
    write(&src.join("more.bin"), &noise(8, 1 << 20));
    let out = d.sluice(&[
        "sync".as_ref(),
        "--transport".as_ref(),
        "udp".as_ref(),
        src.as_os_str(),
        dst.as_os_str(),
    ]);
    assert_exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("link: ")).unwrap_or("");
    assert!(
        line.starts_with("link: loss ") && line.contains(" %, rtt ") && line.ends_with(" ms"),
        "{text}"
    );

    write(&src.join("third.bin"), &noise(9, 1 << 20));
    let (code, report, stderr) = d.sync(&src, &dst, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["data_path"], "control connection");
    assert!(
        report["loss_pct"].is_null() && report["rtt_ms"].is_null(),
        "{report}"
    );
    assert_same_tree(&src, &dst);
}

/// A tree whose manifest and chunk lists outgrow the bulk threshold
/// (256 KiB) sends them as datagrams too; files sharing content make the
/// needed chunks non-consecutive in the lists, and a second sync after
/// edits asks for a scattered few. Both copies are exact.
#[test]
fn a_manifest_too_big_for_the_control_connection_goes_as_datagrams() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    for i in 0..6000u64 {
        // Every third file repeats an earlier one's content.
        let seed = if i % 3 == 2 { i - 2 } else { i };
        write(
            &src.join(format!("d{:02}/file-with-a-long-name-{i:05}", i / 100)),
            &noise(seed, 600),
        );
    }
    let run = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec!["sync".as_ref(), "--json".as_ref()];
        args.extend(
            ["--transport", "udp"]
                .iter()
                .chain(extra)
                .map(std::ffi::OsStr::new),
        );
        args.extend([src.as_os_str(), dst.as_os_str()]);
        let out = Command::new(sluice_bin())
            .args(&args)
            .env("XDG_STATE_HOME", d.path("state"))
            .env("SLUICE_LOG", "sync_core::session=debug")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let stderr = run(&[]);
    assert_same_tree(&src, &dst);
    assert!(stderr.contains("bulk run sent as datagrams"), "{stderr}");
    for i in (0..6000u64).step_by(97) {
        write(
            &src.join(format!("d{:02}/file-with-a-long-name-{i:05}", i / 100)),
            &noise(i + 7, 900),
        );
    }
    run(&["--cipher", "none"]);
    assert_same_tree(&src, &dst);
}

#[test]
fn data_flags_are_checked() {
    let d = Dir::new();
    write(&d.path("src/f"), b"f");
    for bad in [
        vec!["--policy", "fixed"],
        vec!["--rate", "1X"],
        vec!["--packet-size", "10000"],
        vec!["--rate", "1M", "--min-rate", "2M"],
    ] {
        let mut args: Vec<&std::ffi::OsStr> = vec!["sync".as_ref()];
        args.extend(bad.iter().map(|s| std::ffi::OsStr::new(*s)));
        args.push(d.path("src").into_os_string().leak());
        args.push(d.path("dst").into_os_string().leak());
        let out = d.sluice(&args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!d.path("dst").exists());
}

/// rsync's rule: a source folder that cannot be read must not turn into
/// deletions at the destination. Runs as "nobody" (root reads everything).
#[test]
fn a_source_io_error_disables_deletions() {
    if !is_root() {
        return unavailable("needs root to run sluice as another user");
    }
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("ok"), b"fine");
    write(&src.join("locked/inner"), b"unreadable for nobody");
    std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    write(&dst.join("extra"), b"only at the destination");
    for p in [&dst, &dst.join("extra")] {
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    }
    let args = [
        "sync".as_ref(),
        "--json".as_ref(),
        "--delete".as_ref(),
        src.as_os_str(),
        dst.as_os_str(),
    ];
    let out = sluice_as_nobody(&d, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(23), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert!(
        report.to_string().contains("deletions disabled"),
        "{report}"
    );
    assert!(dst.join("extra").exists(), "deleted despite the I/O error");
    assert_eq!(std::fs::read(dst.join("ok")).unwrap(), b"fine");
    // Readable again (the copy made of the locked folder too): the same
    // command deletes.
    for locked in [src.join("locked"), dst.join("locked")] {
        std::fs::set_permissions(locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = sluice_as_nobody(&d, &args);
    assert_exit(&out, 0);
    assert!(!dst.join("extra").exists());
}

/// With test settings for tiny windows and messages, a tree crosses dozens
/// of windows and hundreds of frames, and still syncs exactly, edits and
/// renames included.
#[test]
fn a_tree_crosses_many_windows_and_frames() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    many_entries(&src);
    let (code, report, stderr) =
        d.sync_env(src.as_ref(), dst.as_ref(), &["--delete"], SMALL_WINDOWS);
    assert_eq!(code, 0, "{stderr}");
    assert_same_tree(&src, &dst);
    assert!(windows_logged(&stderr) >= 40, "{}", windows_logged(&stderr));
    // The copy of the big file, windows after it, is made from the first
    // one at the destination (the empty destination's index goes without
    // its hash index during this run, and finds it all the same).
    let sent = n(&report, "chunk_bytes_sent");
    assert!((700_000..800_000).contains(&sent), "{report}");

    edit_many(&src);
    let (code, report, stderr) = d.sync_env(
        src.as_ref(),
        dst.as_ref(),
        &["--delete", "--itemize-changes"],
        SMALL_WINDOWS,
    );
    assert_eq!(code, 0, "{stderr}");
    assert_same_tree(&src, &dst);
    let l = lines(&report);
    assert!(
        l.contains(&"R f03/entry-0 -> g03/entry-0".to_string()),
        "{l:?}"
    );
    assert!(l.contains(&"T f09".to_string()), "{l:?}");
    // Only the edited part of the big file travels, and no renamed file.
    assert!(n(&report, "chunk_bytes_sent") < 300_000, "{report}");
}
