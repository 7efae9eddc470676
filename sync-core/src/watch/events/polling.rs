//! Which file systems do not report changes made by other machines, so a
//! watch on them must be backed by periodic rescans.
//!
//! It only asks `statfs`; it never watches or reads anything.

use std::path::Path;

/// Why `root` must be polled with periodic rescans, if its file system does
/// not report changes made by other machines (network and FUSE file systems
/// deliver inotify events only for changes made through this kernel), as a
/// clause for the caller to put after the path. `None` for local file
/// systems, and when `root` cannot be queried: starting the watch will
/// report that error.
pub fn needs_polling(root: &Path) -> Option<String> {
    let stat = rustix::fs::statfs(root).ok()?;
    // `f_type` is a C long holding a 32-bit magic number; where long is 32
    // bits, CIFS's 0xFF534D42 reads negative, so compare the low 32 bits.
    let name = remote_fs_name(stat.f_type as u32)?;
    Some(format!(
        "it is on {name}, which does not report changes made from other machines"
    ))
}

/// The name of a file system that does not report remote changes, by its
/// `statfs` magic number (linux/magic.h).
fn remote_fs_name(magic: u32) -> Option<&'static str> {
    Some(match magic {
        0x6969 => "NFS",
        0x517B => "SMB",
        0xFF53_4D42 => "CIFS",
        0xFE53_4D42 => "SMB2",
        0x6573_5546 => "a FUSE file system (such as sshfs)",
        0x0102_1997 => "9p",
        0x00C3_6400 => "Ceph",
        0x5346_414F => "AFS",
        0x7375_7245 => "Coda",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_file_systems_need_polling() {
        assert_eq!(remote_fs_name(0x6969), Some("NFS"));
        assert_eq!(remote_fs_name(0xFE53_4D42), Some("SMB2"));
        assert_eq!(remote_fs_name(0x0102_1997), Some("9p"));
        // CIFS's magic as a 32-bit long reads negative.
        assert_eq!(remote_fs_name((-11_317_950_i64) as u32), Some("CIFS"));
        // ext4, tmpfs, btrfs, xfs, overlayfs.
        for local in [0xEF53, 0x0102_1994, 0x9123_683E, 0x5846_5342, 0x794C_7630] {
            assert_eq!(remote_fs_name(local), None);
        }
        let dir = tempfile::tempdir().unwrap();
        let local = rustix::fs::statfs(dir.path()).unwrap().f_type as u32;
        assert_eq!(
            needs_polling(dir.path()).is_some(),
            remote_fs_name(local).is_some()
        );
        assert_eq!(needs_polling(&dir.path().join("missing")), None);
    }
}
