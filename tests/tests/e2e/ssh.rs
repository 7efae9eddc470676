//! Push and pull over a real OpenSSH server on loopback.
//!
//! Each test starts its own `sshd` on 127.0.0.1 with a throwaway host key
//! and user key in its temp folder; no system configuration is touched.
//! When sshd cannot start, the tests fail under `CI=true` and are skipped
//! with a message otherwise.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::util::*;

struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ssh-keygen failed");
}

/// Under `CI=true` a missing or failing sshd fails the test; elsewhere
/// the test is skipped with `why`.
fn no_sshd(why: &str) -> Option<Sshd> {
    unavailable(why);
    None
}

/// Starts sshd, or returns `None` (skip) when it is missing or cannot
/// start, outside CI.
fn start_sshd(d: &Dir) -> Option<Sshd> {
    let sshd = Path::new("/usr/sbin/sshd");
    if !sshd.exists() || Command::new("ssh-keygen").arg("-?").output().is_err() {
        return no_sshd("/usr/sbin/sshd not found (apt-get install openssh-server)");
    }
    let dir = d.path("sshd");
    std::fs::create_dir_all(&dir).unwrap();
    keygen(&dir.join("host_key"));
    keygen(&dir.join("user_key"));
    std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
    let _ = std::fs::create_dir_all("/run/sshd");
    // A free port: bind 0, read it, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
         LogLevel FATAL\n",
        d = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    let mut child = match Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return no_sshd(&format!("sshd could not be started: {e}")),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return no_sshd(&format!(
                "sshd did not start listening on 127.0.0.1:{port} ({})",
                exited.map_or("timed out".into(), |s| s.to_string())
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Sshd { child, port, dir })
}

impl Sshd {
    /// Ends sshd and every session it serves (its descendants, which this
    /// test started through it).
    fn kill_all(&mut self) {
        for pid in descendants(self.child.id() as i32) {
            unsafe {
                // SAFETY: kill(2) on a process this test started (via sshd).
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts sshd again on the same port with the same keys.
    fn restart(&mut self) {
        self.child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(self.dir.join("sshd_config"))
            .spawn()
            .expect("restart sshd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen again");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn rsh(&self) -> String {
        format!(
            "ssh -p {} -i {}/user_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o BatchMode=yes -o LogLevel=ERROR",
            self.port,
            self.dir.display()
        )
    }

    /// The remote command: our binary, with its state kept in the test folder.
    fn remote_sluice(&self) -> String {
        format!(
            "env XDG_STATE_HOME={}/remote-state {}",
            self.dir.display(),
            sluice_bin().display()
        )
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--rsh".into(),
            self.rsh(),
            "--remote-sluice".into(),
            self.remote_sluice(),
        ]
    }
}

/// Every process below `pid`, from /proc.
fn descendants(pid: i32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": the name may hold spaces.
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|v| v.parse().ok()) {
            parent_of.push((p, ppid));
        }
    }
    let mut out = vec![];
    let mut frontier = vec![pid];
    while let Some(at) = frontier.pop() {
        for &(p, pp) in &parent_of {
            if pp == at {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}

fn remote(p: &Path) -> String {
    format!("root@127.0.0.1:{}", p.display())
}

#[test]
fn push_pull_delete_and_diff_over_ssh() {
    let d = Dir::new();
    let Some(sshd) = start_sshd(&d) else { return };
    let (src, dst, back) = (d.path("src"), d.path("dst"), d.path("back"));
    write(&src.join("a/big.bin"), &noise(1, 2 << 20));
    write(&src.join("small"), b"small");
    std::os::unix::fs::symlink("a/big.bin", src.join("link")).unwrap();
    let args = sshd.args();
    let extra: Vec<&str> = args.iter().map(|s| s.as_str()).collect();

    // Push.
    let (code, report, stderr) = d.sync_to(&src, &remote(&dst), &extra);
    assert_eq!(code, 0, "{stderr}");
    assert_same_tree(&src, &dst);
    assert!(n(&report, "chunk_bytes_sent") >= 2 << 20);
    assert!(n(&report, "wire_bytes_sent") > n(&report, "chunk_bytes_sent"));

    // Pull it back.
    let (code, _, stderr) = d.sync_from(&remote(&dst), &back, &extra);
    assert_eq!(code, 0, "{stderr}");
    assert_same_tree(&src, &back);

    // Diff over ssh changes nothing; push with --delete removes.
    std::fs::remove_file(src.join("small")).unwrap();
    std::fs::rename(src.join("a"), src.join("b")).unwrap();
    let mut dry = extra.clone();
    dry.extend(["--dry-run", "--delete"]);
    let (code, report, _) = d.sync_to(&src, &remote(&dst), &dry);
    assert_eq!(code, 0);
    let l = lines(&report);
    assert!(
        l.contains(&"R a/big.bin -> b/big.bin".to_string()) && l.contains(&"- small".to_string()),
        "{l:?}"
    );
    assert!(dst.join("small").exists());
    let mut del = extra.clone();
    del.push("--delete");
    let (code, report, stderr) = d.sync_to(&src, &remote(&dst), &del);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(n(&report, "chunk_bytes_sent"), 0, "a rename ships nothing");
    assert_same_tree(&src, &dst);
}

#[test]
fn ssh_failures_say_which() {
    let d = Dir::new();
    let Some(sshd) = start_sshd(&d) else { return };
    write(&d.path("src/f"), b"f");
    let run = |rsh: String, remote_sluice: String| {
        let out = d.sluice(&[
            "sync".as_ref(),
            "--rsh".as_ref(),
            rsh.as_ref(),
            "--remote-sluice".as_ref(),
            remote_sluice.as_ref(),
            d.path("src").as_os_str(),
            remote(&d.path("dst")).as_ref(),
        ]);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(sshd.rsh(), "/nonexistent/sluice".into());
    assert!(err.contains("was not found on root@127.0.0.1"), "{err}");
    let err = run(
        sshd.rsh(),
        format!("echo Welcome to the server; {}", sshd.remote_sluice()),
    );
    assert!(err.contains("printed \"Welcome to the server\""), "{err}");
    let err = run(
        sshd.rsh().replace(&format!("-p {}", sshd.port), "-p 1"),
        sshd.remote_sluice(),
    );
    assert!(err.contains("ssh could not connect"), "{err}");
    assert!(!d.path("dst").exists());
}

#[test]
fn a_killed_push_resumes_without_resending_what_arrived() {
    let d = Dir::new();
    let Some(sshd) = start_sshd(&d) else { return };
    let (src, dst) = (d.path("src"), d.path("dst"));
    let total = 96usize << 20;
    write(&src.join("huge.bin"), &noise(77, total));
    let args = sshd.args();
    let mut cmd = std::process::Command::new(sluice_bin());
    cmd.args(["sync", "--json"])
        .args(&args)
        .arg(&src)
        .arg(remote(&dst))
        .env("XDG_STATE_HOME", d.path("state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // Kill the client once the receiver has journaled a good part of the file.
    let deadline = Instant::now() + Duration::from_secs(120);
    let journaled = || -> u64 {
        std::fs::read_dir(&dst)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".journal"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    while journaled() < 48 * 200 {
        assert!(Instant::now() < deadline, "the transfer never got going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the transfer finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The remote end sees the pipe close and stops; give it a moment.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !dst.join("huge.bin").exists(),
        "nothing half-written at the final path"
    );
    let records = journaled() / 48;

    let extra: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let (code, report, stderr) = d.sync_to(&src, &remote(&dst), &extra);
    assert_eq!(code, 0, "{stderr}");
    assert_same_tree(&src, &dst);
    let sent = n(&report, "chunk_bytes_sent");
    // At least the journaled chunks (64 KiB on average) were not sent again.
    assert!(
        sent + records * 32 * 1024 < total as u64,
        "resent {sent} of {total} bytes with {records} chunks journaled"
    );
}

#[test]
fn remote_data_goes_over_udp_and_falls_back_when_blocked() {
    let d = Dir::new();
    let Some(sshd) = start_sshd(&d) else { return };
    let (src, dst, back) = (d.path("src"), d.path("dst"), d.path("back"));
    write(&src.join("data.bin"), &noise(3, 4 << 20));
    write(&src.join("small"), b"small");
    let args = sshd.args();
    let mut extra: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    extra.extend(["--udp-ports", "0"]);

    let (code, report, stderr) = d.sync_to(&src, &remote(&dst), &extra);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["data_path"], "udp", "{report}");
    // The link's figures cross back in the remote receiver's report.
    assert!(
        report["loss_pct"].as_f64().is_some_and(|p| p >= 0.0),
        "{report}"
    );
    assert!(report["rtt_ms"].as_f64().is_some(), "{report}");
    assert_same_tree(&src, &dst);

    // Pull, receiving on an address the remote sender does not send to:
    // no datagram arrives, and auto falls back to the ssh connection.
    let mut blocked = extra.clone();
    blocked.extend(["--udp-bind", "127.0.0.3"]);
    let (code, report, stderr) = d.sync_from(&remote(&dst), &back, &blocked);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["data_path"], "control connection", "{report}");
    assert!(report["loss_pct"].is_null(), "{report}");
    assert!(
        report["warnings"]
            .to_string()
            .contains("no UDP datagram got through"),
        "{report}"
    );
    assert_same_tree(&src, &back);

    // A manifest big enough to go as datagrams (4,000 entries) finds UDP
    // blocked first: the data then takes the connection at once instead
    // of waiting another 5 s for datagrams that cannot come.
    for i in 0..4000 {
        write(
            &src.join(format!("many/entry-with-a-long-name-{i:05}")),
            b"x",
        );
    }
    let (code, _, stderr) = d.sync_to(&src, &remote(&dst), &extra);
    assert_eq!(code, 0, "{stderr}");
    let back2 = d.path("back2");
    let started = std::time::Instant::now();
    let (code, report, stderr) = d.sync_from(&remote(&dst), &back2, &blocked);
    let took = started.elapsed();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["data_path"], "control connection", "{report}");
    assert_same_tree(&src, &back2);
    assert!(
        took < std::time::Duration::from_secs(9),
        "one 5 s wait for datagrams, not two: {took:?}"
    );
}

#[test]
fn remote_syncs_honour_excludes_checksum_and_max_delete() {
    let d = Dir::new();
    let Some(sshd) = start_sshd(&d) else { return };
    let (src, dst, back) = (d.path("src"), d.path("dst"), d.path("back"));
    write(&src.join("keep"), b"keep");
    write(&src.join("skip.tmp"), b"excluded");
    write(&dst.join("old1"), b"only at the destination");
    write(&dst.join("old2"), b"only at the destination");
    let args = sshd.args();
    let mut extra: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    extra.extend(["--exclude", "*.tmp", "--checksum"]);

    // Two deletions pending, one allowed: refused before deleting anything.
    let mut limited = extra.clone();
    limited.extend(["--delete", "--max-delete", "1"]);
    let (code, _, stderr) = d.sync_to(&src, &remote(&dst), &limited);
    assert_eq!(code, 25, "{stderr}");
    assert!(dst.join("old1").exists() && dst.join("old2").exists());

    // Excluded on the sending side of a push, and of a pull.
    let (code, _, stderr) = d.sync_to(&src, &remote(&dst), &extra);
    assert_eq!(code, 0, "{stderr}");
    assert!(dst.join("keep").exists() && !dst.join("skip.tmp").exists());
    write(&dst.join("also.tmp"), b"excluded");
    let (code, _, stderr) = d.sync_from(&remote(&dst), &back, &extra);
    assert_eq!(code, 0, "{stderr}");
    assert!(back.join("keep").exists() && !back.join("also.tmp").exists());
}

/// Tiny windows and messages over ssh, both ways: the remote side cuts its
/// messages small too.
#[test]
fn many_windows_and_frames_over_ssh() {
    let d = Dir::new();
    let Some(sshd) = start_sshd(&d) else { return };
    let (src, dst, back) = (d.path("src"), d.path("dst"), d.path("back"));
    many_entries(&src);
    let remote_sluice = format!(
        "env SLUICE_TEST_BATCH_BYTES=256 XDG_STATE_HOME={}/remote-state {}",
        sshd.dir.display(),
        sluice_bin().display()
    );
    let extra = [
        "--rsh",
        &sshd.rsh(),
        "--remote-sluice",
        &remote_sluice,
        "--delete",
    ];
    let remote_dst = remote(&dst);
    let (code, _, stderr) = d.sync_env(src.as_ref(), remote_dst.as_ref(), &extra, SMALL_WINDOWS);
    assert_eq!(code, 0, "{stderr}");
    assert_same_tree(&src, &dst);
    assert!(windows_logged(&stderr) >= 40, "{}", windows_logged(&stderr));
    edit_many(&src);
    let (code, _, stderr) = d.sync_env(src.as_ref(), remote_dst.as_ref(), &extra, SMALL_WINDOWS);
    assert_eq!(code, 0, "{stderr}");
    assert_same_tree(&src, &dst);

    let (code, _, stderr) = d.sync_env(remote_dst.as_ref(), back.as_ref(), &extra, SMALL_WINDOWS);
    assert_eq!(code, 0, "{stderr}");
    assert_same_tree(&src, &back);
    assert!(windows_logged(&stderr) >= 40, "{}", windows_logged(&stderr));
}

/// A watch to an ssh destination keeps one connection for its rounds;
/// when the server goes away it retries, and once the server is back the
/// changes made meanwhile arrive.
#[test]
fn a_watch_over_ssh_rides_out_a_restarted_server() {
    let d = Dir::new();
    let Some(mut sshd) = start_sshd(&d) else {
        return;
    };
    let (src, dst) = (d.path("src"), d.path("dst"));
    write(&src.join("a"), b"a");
    write(&src.join("sub/b"), b"b");
    // The remote command notes each start: one per connection.
    let starts = d.path("starts");
    let wrapper = d.path("remote-sluice.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho started >> {}\nexec {} \"$@\"\n",
            starts.display(),
            sshd.remote_sluice()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let rsh = sshd.rsh();
    let wrapper_arg = wrapper.display().to_string();
    let args = ["--delete", "--rsh", &rsh, "--remote-sluice", &wrapper_arg];
    let mut w = crate::watch::Watching::start(&d, &args, &src, &remote(&dst));
    w.round(crate::watch::SHOW_UP);
    w.until_same(&src, &dst);
    for i in 0..3 {
        write(&src.join(format!("sub/{i}")), format!("{i}").as_bytes());
        w.until_same(&src, &dst);
    }
    let connections = || std::fs::read_to_string(&starts).unwrap().lines().count();
    assert_eq!(connections(), 1, "every round on the first connection");

    sshd.kill_all();
    write(&src.join("while-down"), b"made while the server was down");
    std::fs::remove_file(src.join("a")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    sshd.restart();
    w.until_same(&src, &dst);
    assert_eq!(connections(), 2, "one new connection after the restart");
    let said = w.stderr_so_far();
    assert!(said.contains("retrying"), "{said}");
}
