//! The destination is never written through a symlink, temp files from dead
//! runs are cleaned up, and a full disk leaves nothing half-written.

use crate::util::*;

#[test]
fn a_symlink_in_dst_where_a_folder_belongs_is_replaced_not_followed() {
    let d = Dir::new();
    let (src, dst, outside) = (d.path("src"), d.path("dst"), d.path("outside"));
    write(&src.join("d/file"), b"must land inside dst");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    std::os::unix::fs::symlink(&outside, dst.join("d")).unwrap();
    let (code, report, stderr) = d.sync(&src, &dst, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "wrote through the symlink"
    );
    assert!(std::fs::symlink_metadata(dst.join("d")).unwrap().is_dir());
    assert_same_tree(&src, &dst);
    assert!(lines(&report).contains(&"T d/".to_string()));
}

#[test]
fn temp_files_of_a_dead_run_are_removed() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("sub/f"), b"f");
    write(&dst.join("sub/.sluice-tmp.f.deadbeef"), b"half a file");
    let (code, _, _) = d.sync(&src, &dst, &[]);
    assert_eq!(code, 0);
    assert!(!dst.join("sub/.sluice-tmp.f.deadbeef").exists());
    assert_same_tree(&src, &dst);
}

/// A 1 MiB tmpfs as DST (needs root and mount: fails under `CI=true` without them, skipped elsewhere).
#[test]
fn disk_full_is_a_clear_error_with_nothing_half_written() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("small"));
    write(&src.join("a-small"), b"fits");
    write(&src.join("b-big"), &noise(3, 3 << 20));
    std::fs::create_dir_all(&dst).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&dst)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        return unavailable("cannot mount a tmpfs for the disk-full test (not root?)");
    }
    let (code, _, stderr) = {
        let out = d.sluice(&["sync".as_ref(), src.as_os_str(), dst.as_os_str()]);
        (
            out.status.code(),
            (),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let leftover: Vec<_> = std::fs::read_dir(&dst)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let _ = std::process::Command::new("umount").arg(&dst).status();
    assert_eq!(code, Some(11), "{stderr}");
    assert!(stderr.contains("No space left"), "{stderr}");
    assert!(
        !leftover.iter().any(|n| n == "b-big"),
        "partial file at its final path: {leftover:?}"
    );
    assert!(
        !leftover
            .iter()
            .any(|n| n.to_string_lossy().starts_with(".sluice-tmp")),
        "temp file left: {leftover:?}"
    );
}
