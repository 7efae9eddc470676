//! Shared helpers: building the binary, temp trees, running sluice, and
//! comparing trees on type, content, mode, mtime (ns) and symlink target.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `sluice` binary, built once per test run.
pub fn sluice_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        // target/<profile>/deps/e2e-hash → target/<profile>/sluice
        let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
        let release = profile_dir.ends_with("release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "sync-cli", "--bin", "sluice"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build of sluice failed");
        profile_dir.join("sluice")
    })
}

/// A temporary folder holding a test's trees and its index files.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::Builder::new()
                .prefix("sluice-e2e")
                .tempdir()
                .expect("tempdir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Runs sluice with `args`, the state dir kept inside this Dir.
    pub fn sluice(&self, args: &[&OsStr]) -> Output {
        self.sluice_env(args, &[])
    }

    /// [`Dir::sluice`] with more environment variables.
    pub fn sluice_env(&self, args: &[&OsStr], env: &[(&str, &str)]) -> Output {
        Command::new(sluice_bin())
            .args(args)
            .env("XDG_STATE_HOME", self.path("state"))
            .env_remove("SLUICE_LOG")
            .envs(env.iter().copied())
            .output()
            .expect("run sluice")
    }

    /// `sluice sync --json extra... SRC DST` with more environment variables.
    pub fn sync_env(
        &self,
        src: &OsStr,
        dst: &OsStr,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (i32, serde_json::Value, String) {
        let mut args: Vec<&OsStr> = vec!["sync".as_ref(), "--json".as_ref()];
        args.extend(extra.iter().map(|s| OsStr::new(*s)));
        args.push(src);
        args.push(dst);
        let out = self.sluice_env(&args, env);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "no JSON ({e}); stdout {:?}; stderr {stderr}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        (out.status.code().unwrap_or(-1), json, stderr)
    }

    /// `sluice sync SRC DST extra...` with `--json`; returns (exit code, report).
    pub fn sync(&self, src: &Path, dst: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
        self.sync_os(src.as_os_str(), dst.as_os_str(), extra)
    }

    /// Push to a remote `host:path`.
    pub fn sync_to(
        &self,
        src: &Path,
        dst: &str,
        extra: &[&str],
    ) -> (i32, serde_json::Value, String) {
        self.sync_os(src.as_os_str(), dst.as_ref(), extra)
    }

    /// Pull from a remote `host:path`.
    pub fn sync_from(
        &self,
        src: &str,
        dst: &Path,
        extra: &[&str],
    ) -> (i32, serde_json::Value, String) {
        self.sync_os(src.as_ref(), dst.as_os_str(), extra)
    }

    fn sync_os(
        &self,
        src: &OsStr,
        dst: &OsStr,
        extra: &[&str],
    ) -> (i32, serde_json::Value, String) {
        self.sync_env(src, dst, extra, &[])
    }
}

/// Test settings that make a small tree cross many windows (7 entries
/// each) and many frames (list messages of about 256 bytes), with the debug
/// log on, which notes every window.
pub const SMALL_WINDOWS: &[(&str, &str)] = &[
    ("SLUICE_TEST_WINDOW", "7"),
    ("SLUICE_TEST_BATCH_BYTES", "256"),
    ("SLUICE_LOG", "debug"),
];

/// Windows the debug log in `stderr` notes (either side's).
pub fn windows_logged(stderr: &str) -> usize {
    stderr.matches("planned a window").count() + stderr.matches("sent a window").count()
}

/// A tree of 300 entries or so in 40 folders: small files, a file of
/// several chunks, symlinks, a copy of one file far from it.
pub fn many_entries(root: &Path) {
    for f in 0..40 {
        for i in 0..6 {
            write(
                &root.join(format!("f{f:02}/entry-{i}")),
                format!("folder {f} entry {i}").as_bytes(),
            );
        }
        if f % 5 == 0 {
            std::os::unix::fs::symlink(
                format!("entry-{}", f % 6),
                root.join(format!("f{f:02}/link")),
            )
            .unwrap();
        }
    }
    write(&root.join("f00/big"), &noise(9, 700_000));
    write(&root.join("f39/copy-of-big"), &noise(9, 700_000));
}

/// Edits of every kind to a [`many_entries`] tree: a folder renamed, files
/// removed and edited, a folder replaced by a file, new entries.
pub fn edit_many(root: &Path) {
    std::fs::rename(root.join("f03"), root.join("g03")).unwrap();
    std::fs::remove_file(root.join("f05/entry-1")).unwrap();
    write(&root.join("f07/entry-2"), b"edited");
    std::fs::remove_dir_all(root.join("f09")).unwrap();
    write(&root.join("f09"), b"a file where a folder was");
    write(&root.join("f20/new"), b"new");
    let mut big = noise(9, 700_000);
    big[300_000..300_010].copy_from_slice(b"0123456789");
    write(&root.join("f00/big"), &big);
}

/// Asserts that a run exited with `code`, showing its stderr if not.
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs sluice as user "nobody" (root reads everything, so permission
/// tests need another user) with `args`, its state in this Dir; every
/// folder from this Dir up to /tmp is opened to all so that "nobody"
/// reaches the trees. Needs `setpriv` (util-linux).
pub fn sluice_as_nobody(d: &Dir, args: &[&OsStr]) -> Output {
    use std::os::unix::fs::PermissionsExt;
    let open = |p: &Path| {
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777));
    };
    let mut p = d.path("");
    while let Some(parent) = p.parent() {
        open(&p);
        if parent == Path::new("/tmp") || parent == Path::new("/") {
            break;
        }
        p = parent.to_path_buf();
    }
    std::fs::create_dir_all(d.path("state")).unwrap();
    open(&d.path("state"));
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(sluice_bin())
        .args(args)
        .env("XDG_STATE_HOME", d.path("state"))
        .env_remove("SLUICE_LOG")
        .output()
        .expect("setpriv (util-linux) runs")
}

/// A part a test needs is missing (root, sshd, a tmpfs, namespaces...):
/// under `CI=true`, where the CI script provides every part, the test
/// fails with `why`; elsewhere it is skipped and says so.
pub fn unavailable(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why} (CI runs as root and installs every part the tests need: see .ci/run)");
    }
    eprintln!("skipped: {why}");
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, data).unwrap();
}

/// Deterministic pseudo-random bytes.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Sets mtime (ns since the epoch) without following symlinks.
pub fn set_mtime(p: &Path, ns: i64) {
    let ts = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: ns.div_euclid(1_000_000_000),
            tv_nsec: ns.rem_euclid(1_000_000_000),
        },
    ];
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            cpath(p).as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", p.display());
}

pub fn mkfifo(p: &Path) {
    assert_eq!(unsafe { libc::mkfifo(cpath(p).as_ptr(), 0o644) }, 0);
}

/// Binds a unix socket at `p` (leaves the socket file behind).
pub fn mksocket(p: &Path) -> std::os::unix::net::UnixListener {
    std::os::unix::net::UnixListener::bind(p).unwrap()
}

/// What the comparison looks at for one entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Node {
    File {
        mode: u32,
        mtime: (i64, i64),
        content: Vec<u8>,
    },
    Dir {
        mode: u32,
        mtime: (i64, i64),
    },
    Link {
        target: Vec<u8>,
        mtime: (i64, i64),
    },
}

/// The tree below `root` (root included as ""), skipping sockets and fifos
/// and any name in `ignore`.
pub fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    try_snapshot(root).unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
}

/// [`snapshot`] of a tree that may be changing (an error when an entry
/// vanishes while it is read).
pub fn try_snapshot(root: &Path) -> std::io::Result<BTreeMap<Vec<u8>, Node>> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out)?;
    Ok(out)
}

fn walk(root: &Path, p: &Path, out: &mut BTreeMap<Vec<u8>, Node>) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(p)?;
    let rel = p
        .strip_prefix(root)
        .expect("below the root")
        .as_os_str()
        .as_bytes()
        .to_vec();
    let mtime = (md.mtime(), md.mtime_nsec());
    let ft = md.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(p)?.as_os_str().as_bytes().to_vec();
        out.insert(rel, Node::Link { target, mtime });
    } else if ft.is_dir() {
        out.insert(
            rel,
            Node::Dir {
                mode: md.mode() & 0o7777,
                mtime,
            },
        );
        for e in std::fs::read_dir(p)? {
            walk(root, &e?.path(), out)?;
        }
    } else if ft.is_file() {
        out.insert(
            rel,
            Node::File {
                mode: md.mode() & 0o7777,
                mtime,
                content: std::fs::read(p)?,
            },
        );
    }
    Ok(())
}

/// Asserts two trees are equal, naming the first difference.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (sa, sb) = (snapshot(a), snapshot(b));
    for (k, va) in &sa {
        match sb.get(k) {
            None => panic!(
                "{:?} missing in {}",
                String::from_utf8_lossy(k),
                b.display()
            ),
            Some(vb) if vb != va => panic!(
                "{:?} differs:\n  {}: {}\n  {}: {}",
                String::from_utf8_lossy(k),
                a.display(),
                short(va),
                b.display(),
                short(vb)
            ),
            _ => {}
        }
    }
    for k in sb.keys() {
        assert!(
            sa.contains_key(k),
            "{:?} extra in {}",
            String::from_utf8_lossy(k),
            b.display()
        );
    }
}

fn short(n: &Node) -> String {
    match n {
        Node::File {
            mode,
            mtime,
            content,
        } => format!("file mode {mode:o} mtime {mtime:?} {} bytes", content.len()),
        Node::Dir { mode, mtime } => format!("dir mode {mode:o} mtime {mtime:?}"),
        Node::Link { target, mtime } => format!(
            "link -> {:?} mtime {mtime:?}",
            String::from_utf8_lossy(target)
        ),
    }
}

/// The itemised lines of a JSON report.
pub fn lines(report: &serde_json::Value) -> Vec<String> {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["line"].as_str().unwrap().to_string())
        .collect()
}

pub fn n(report: &serde_json::Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {report}"))
}

/// An `--rsh` that runs the real remote sluice on this host, with `env`
/// (e.g. `SLUICE_TEST_STALL=busy:2500`, or nothing) in its environment.
/// The host name it is given resolves nowhere, so a UDP phase the remote
/// end offers fails at once and the data takes the control connection
/// (this once ended the run with "expected Need, got DataDone").
pub fn local_rsh(d: &Dir, env: &str) -> String {
    let script = d.path("rsh.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nshift\nexec env {env} \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script.display().to_string()
}

/// The preamble of a daemon or client from the future: magic, version
/// 999, no capabilities, its software name, no refusal text.
pub fn future_preamble() -> Vec<u8> {
    let mut pre = b"\0sluiced".to_vec();
    pre.extend_from_slice(&999u16.to_be_bytes());
    pre.extend_from_slice(&0u32.to_be_bytes());
    pre.push(11);
    pre.extend_from_slice(b"sluice 99.0");
    pre.extend_from_slice(&0u16.to_be_bytes());
    pre
}
