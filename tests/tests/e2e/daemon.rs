//! `sluice serve --listen`: the real daemon on loopback, real clients.
//!
//! Each test starts its own daemon on a free 127.0.0.1 port with keys and a
//! config in its temp folder, and kills it when done. Every wait is bounded.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

pub struct Daemon {
    child: Child,
    /// The address it listens on, and its port.
    host: String,
    port: u16,
    server_pub: String,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes a key pair with `sluice keygen`; returns the public key.
pub fn keygen(d: &Dir, name: &str) -> String {
    let out = d.sluice(&[
        "keygen".as_ref(),
        "--out".as_ref(),
        d.path(name).as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Client keys used by the tests: `client` is allowed, `stranger` is not.
fn client_keys(d: &Dir) -> (String, String) {
    (keygen(d, "keys/client"), keygen(d, "keys/stranger"))
}

/// Starts `sluice serve` with `settings` and `modules` (TOML) appended to
/// the key line.
fn start(d: &Dir, settings: &str) -> Daemon {
    start_in(d, settings, &[], "127.0.0.1")
}

/// [`start`], listening on `host` and run through `wrapper` (e.g. `ip
/// netns exec NS`).
pub fn start_in(d: &Dir, settings: &str, wrapper: &[&str], host: &str) -> Daemon {
    let server_pub = keygen(d, "keys/server");
    let config = d.path("serve.toml");
    std::fs::write(
        &config,
        format!("key = \"{}\"\n{settings}", d.path("keys/server").display()),
    )
    .unwrap();
    let log = d.path("daemon.log");
    // Port 0: the daemon binds a free port itself and logs it, so no other
    // test can take the port between choosing and binding it.
    let bin = sluice_bin().as_os_str();
    let mut argv: Vec<&OsStr> = wrapper.iter().map(OsStr::new).collect();
    argv.push(bin);
    let listen = format!("{host}:0");
    let child = Command::new(argv[0])
        .args(&argv[1..])
        .arg("serve")
        .arg("--listen")
        .arg(&listen)
        .arg("--config")
        .arg(&config)
        .env("XDG_STATE_HOME", d.path("server-state"))
        .env_remove("SLUICE_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start sluice serve");
    let mut daemon = Daemon {
        child,
        host: host.to_string(),
        port: 0,
        server_pub,
        log,
    };
    let needle = format!("listening on {host}:");
    daemon.wait_log(&needle, 1);
    let text = daemon.log_text();
    let at = text.find(&needle).unwrap() + needle.len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    daemon.port = digits.parse().expect("a port in the daemon's log");
    daemon
}

/// A module table.
pub fn module(name: &str, path: &Path, access: &str, keys: &[&str]) -> String {
    let keys: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    format!(
        "[modules.{name}]\npath = \"{}\"\naccess = \"{access}\"\nallowed_keys = [{}]\n",
        path.display(),
        keys.join(", ")
    )
}

impl Daemon {
    pub fn server_pub(&self) -> &str {
        &self.server_pub
    }

    pub fn url(&self, path: &str) -> String {
        format!("sluice://{}:{}/{path}", self.host, self.port)
    }

    /// Waits (at most 10 s) until `needle` occurs `count` times in the log.
    fn wait_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log_text().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `sluice sync --json` with `key` (a name under keys/); returns the
    /// exit code, stdout and stderr.
    pub fn sync(
        &self,
        d: &Dir,
        key: &str,
        src: &OsStr,
        dst: &OsStr,
        extra: &[&str],
    ) -> (i32, String, String) {
        let key = d.path(key);
        let mut args: Vec<&OsStr> = vec![
            "sync".as_ref(),
            "--json".as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            "--server-key".as_ref(),
            self.server_pub.as_ref(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        args.extend([src, dst]);
        let out = d.sluice(&args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn push(&self, d: &Dir, key: &str, src: &Path, path: &str) -> (i32, String, String) {
        self.sync(d, key, src.as_os_str(), self.url(path).as_ref(), &[])
    }

    fn pull(&self, d: &Dir, key: &str, path: &str, dst: &Path) -> (i32, String, String) {
        self.sync(d, key, self.url(path).as_ref(), dst.as_os_str(), &[])
    }
}

fn sample(root: &Path) {
    write(&root.join("a/big.bin"), &noise(3, 300_000));
    write(&root.join("small"), b"small");
    std::os::unix::fs::symlink("a/big.bin", root.join("link")).unwrap();
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut r| r.next().is_none())
        .unwrap_or(true)
}

#[test]
fn push_and_pull_a_read_write_module() {
    let d = Dir::new();
    let (client, _) = client_keys(&d);
    let store = d.path("store");
    std::fs::create_dir_all(&store).unwrap();
    let daemon = start(&d, &module("rw", &store, "read-write", &[&client]));
    let (src, back) = (d.path("src"), d.path("back"));
    sample(&src);

    let (code, out, err) = daemon.push(&d, "keys/client", &src, "rw/sub/dir");
    assert_eq!(code, 0, "{err}\n{}", daemon.log_text());
    assert_same_tree(&src, &store.join("sub/dir"));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(n(&report, "wire_bytes_sent") > n(&report, "chunk_bytes_sent"));
    assert!(n(&report, "chunk_bytes_sent") >= 300_000);
    // Chunks went as UDP datagrams, the control connection stayed Noise.
    assert_eq!(report["data_path"], "udp", "{report}");

    let (code, _, err) = daemon.pull(&d, "keys/client", "rw/sub/dir/", &back);
    assert_eq!(code, 0, "{err}\n{}", daemon.log_text());
    assert_same_tree(&src, &back);
    let log = daemon.log_text();
    assert!(
        log.contains("push") && log.contains("pull") && log.contains("rw"),
        "{log}"
    );
}

#[test]
fn a_wrong_key_is_refused_and_nothing_is_written() {
    let d = Dir::new();
    let (client, _) = client_keys(&d);
    let store = d.path("store");
    std::fs::create_dir_all(&store).unwrap();
    let daemon = start(&d, &module("rw", &store, "read-write", &[&client]));
    let src = d.path("src");
    sample(&src);
    let (code, _, err) = daemon.push(&d, "keys/stranger", &src, "rw");
    assert_eq!(code, 42, "{err}");
    assert!(err.contains("access denied"), "{err}");
    assert!(is_empty_dir(&store));

    // A client that pins another server key never completes the handshake.
    let key = d.path("keys/client");
    let other = keygen(&d, "keys/other-server");
    let url = daemon.url("rw");
    let out = d.sluice(&[
        "sync".as_ref(),
        "--key".as_ref(),
        key.as_os_str(),
        "--server-key".as_ref(),
        other.as_ref(),
        src.as_os_str(),
        url.as_ref(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(42), "{err}");
    assert!(err.contains("--server-key"), "{err}");
    assert!(is_empty_dir(&store));

    // And no --server-key at all is a usage error.
    let out = d.sluice(&["sync".as_ref(), src.as_os_str(), url.as_ref()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--server-key"));
}

#[test]
fn unknown_modules_disallowed_keys_and_access_modes_read_the_same() {
    let d = Dir::new();
    let (client, _) = client_keys(&d);
    let (ro, wo) = (d.path("ro"), d.path("wo"));
    write(&ro.join("kept"), b"kept");
    std::fs::create_dir_all(&wo).unwrap();
    let daemon = start(
        &d,
        &[
            module("ro", &ro, "read-only", &[&client]),
            module("wo", &wo, "write-only", &[&client]),
        ]
        .concat(),
    );
    let src = d.path("src");
    sample(&src);
    let last_line = |e: &str| e.trim().lines().last().unwrap_or("").to_string();
    let mut lines = Vec::new();
    for (key, path) in [
        ("keys/client", "nope"),
        ("keys/stranger", "ro"),
        ("keys/client", "ro"),
    ] {
        let (code, _, err) = daemon.push(&d, key, &src, path);
        assert_eq!(code, 42, "{key} {path}: {err}");
        lines.push(last_line(&err));
    }
    let (code, _, err) = daemon.pull(&d, "keys/client", "wo", &d.path("got"));
    assert_eq!(code, 42, "{err}");
    lines.push(last_line(&err));
    assert!(lines[0].contains("access denied"), "{lines:?}");
    assert!(lines.iter().all(|l| *l == lines[0]), "{lines:?}");
    assert!(!d.path("got").join("kept").exists());
    assert_eq!(std::fs::read(ro.join("kept")).unwrap(), b"kept");
    assert!(!ro.join("small").exists());

    // What each mode does allow.
    let (code, _, err) = daemon.pull(&d, "keys/client", "ro", &d.path("got"));
    assert_eq!(code, 0, "{err}");
    assert_same_tree(&ro, &d.path("got"));
    let (code, _, err) = daemon.push(&d, "keys/client", &src, "wo");
    assert_eq!(code, 0, "{err}");
    assert_same_tree(&src, &wo);
    let log = daemon.log_text();
    assert!(
        log.contains("unknown module") && log.contains("key not allowed"),
        "{log}"
    );
}

#[test]
fn crafted_paths_cannot_leave_the_module() {
    let d = Dir::new();
    let (client, _) = client_keys(&d);
    let (store, outside) = (d.path("store"), d.path("outside"));
    write(&outside.join("secret"), b"secret");
    std::fs::create_dir_all(&store).unwrap();
    std::os::unix::fs::symlink(&outside, store.join("out")).unwrap();
    std::os::unix::fs::symlink("../outside", store.join("rel")).unwrap();
    let daemon = start(&d, &module("rw", &store, "read-write", &[&client]));
    let src = d.path("src");
    sample(&src);
    let before = (snapshot(&store), snapshot(&outside));
    for path in [
        "rw/../x",
        "rw/../outside",
        "rw//etc",
        "rw/out",
        "rw/out/x",
        "rw/rel/x",
        "rw/./x",
    ] {
        let (code, _, err) = daemon.push(&d, "keys/client", &src, path);
        assert_ne!(code, 0, "push to {path} succeeded");
        assert!(
            !err.contains(&d.path("").display().to_string()),
            "{path}: leaks a path: {err}"
        );
        let got = d.path("got");
        let (code, _, _) = daemon.pull(&d, "keys/client", path, &got);
        assert_ne!(code, 0, "pull from {path} succeeded");
        assert!(!got.join("secret").exists());
        let _ = std::fs::remove_dir_all(&got);
    }
    // Nothing changed, outside the module or in it.
    assert!(
        before == (snapshot(&store), snapshot(&outside)),
        "something was written"
    );
    assert!(!d.path("x").exists() && !Path::new("/etc/small").exists());
}

#[test]
fn symlinks_in_a_module_are_copied_as_links_never_followed() {
    let d = Dir::new();
    let (client, _) = client_keys(&d);
    let (store, outside) = (d.path("store"), d.path("outside"));
    write(&outside.join("secret"), b"secret");
    write(&store.join("plain"), b"plain");
    std::os::unix::fs::symlink(&outside, store.join("abs")).unwrap();
    std::os::unix::fs::symlink("../outside/secret", store.join("rel")).unwrap();
    let daemon = start(&d, &module("rw", &store, "read-write", &[&client]));

    // Pull: the links arrive as links with their target text.
    let got = d.path("got");
    let (code, _, err) = daemon.pull(&d, "keys/client", "rw", &got);
    assert_eq!(code, 0, "{err}");
    assert_same_tree(&store, &got);
    assert_eq!(
        std::fs::read_link(got.join("rel")).unwrap(),
        Path::new("../outside/secret")
    );

    // Push a folder where the module has a link out: the link is replaced,
    // nothing is written through it.
    let src = d.path("src");
    write(&src.join("abs/planted"), b"planted");
    write(&src.join("plain"), b"plain");
    let (code, _, err) = daemon.push(&d, "keys/client", &src, "rw");
    assert_eq!(code, 0, "{err}\n{}", daemon.log_text());
    assert!(!outside.join("planted").exists());
    assert_eq!(
        std::fs::read(store.join("abs/planted")).unwrap(),
        b"planted"
    );
    assert!(std::fs::symlink_metadata(store.join("abs"))
        .unwrap()
        .is_dir());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
}

#[test]
fn garbage_bytes_close_the_connection_and_the_server_goes_on() {
    let d = Dir::new();
    let (client, _) = client_keys(&d);
    let store = d.path("store");
    std::fs::create_dir_all(&store).unwrap();
    let daemon = start(&d, &module("rw", &store, "read-write", &[&client]));
    for garbage in [&b"GET / HTTP/1.0\r\n\r\n"[..], &[0u8; 64], &noise(9, 4096)] {
        let mut s = TcpStream::connect(("127.0.0.1", daemon.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(garbage);
        let mut sink = Vec::new();
        // The server's preamble, then end of stream (or a reset).
        let r = s.take(1 << 20).read_to_end(&mut sink);
        assert!(r.is_ok() || r.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset));
        assert!(sink.len() < 2000, "the server kept talking");
    }
    let src = d.path("src");
    sample(&src);
    let (code, _, err) = daemon.push(&d, "keys/client", &src, "rw");
    assert_eq!(code, 0, "{err}\n{}", daemon.log_text());
    assert_same_tree(&src, &store);
    assert!(daemon.log_text().contains("handshake failed"));
}

#[test]
fn an_idle_client_is_dropped_and_its_slot_freed() {
    let d = Dir::new();
    let (client, _) = client_keys(&d);
    let store = d.path("store");
    std::fs::create_dir_all(&store).unwrap();
    let daemon = start(
        &d,
        &format!(
            "max_connections = 1\nidle_timeout_secs = 1\n{}",
            module("rw", &store, "read-write", &[&client])
        ),
    );
    let src = d.path("src");
    sample(&src);
    let mut idle = TcpStream::connect(("127.0.0.1", daemon.port)).unwrap();
    daemon.wait_log("new connection", 1);
    // While the idle client holds the only slot, others are turned away.
    let (code, _, err) = daemon.push(&d, "keys/client", &src, "rw");
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("busy"), "{err}");
    // The server drops the silent client after its timeout...
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut sink = Vec::new();
    let _ = (&mut idle).take(1 << 16).read_to_end(&mut sink);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the idle client was not dropped"
    );
    // ...and the next client gets the slot.
    let (code, _, err) = daemon.push(&d, "keys/client", &src, "rw");
    assert_eq!(code, 0, "{err}\n{}", daemon.log_text());
    assert_same_tree(&src, &store);
    drop(idle);
}

#[test]
fn an_incompatible_client_is_told_both_versions() {
    let d = Dir::new();
    let (client, _) = client_keys(&d);
    let store = d.path("store");
    std::fs::create_dir_all(&store).unwrap();
    let daemon = start(&d, &module("rw", &store, "read-write", &[&client]));
    let mut s = TcpStream::connect(("127.0.0.1", daemon.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A preamble from a future client.
    s.write_all(&future_preamble()).unwrap();
    let mut sink = Vec::new();
    let _ = s.take(1 << 16).read_to_end(&mut sink);
    assert!(sink.starts_with(b"\0sluiced"), "no server preamble");
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let log = daemon.log_text();
        if let Some(l) = log.lines().find(|l| l.contains("incompatible")) {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no version line in {log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        line.contains("daemon protocol 999") && line.contains("daemon protocol 1"),
        "{line}"
    );
    assert!(line.contains("sluice 99.0"), "{line}");
}

/// Tiny windows and messages to and from a daemon, which cuts its own
/// messages small too.
#[test]
fn many_windows_and_frames_through_a_daemon() {
    let d = Dir::new();
    let (client, _) = client_keys(&d);
    let store = d.path("store");
    std::fs::create_dir_all(&store).unwrap();
    let daemon = start_in(
        &d,
        &module("rw", &store, "read-write", &[&client]),
        &["env", "SLUICE_TEST_BATCH_BYTES=256"],
        "127.0.0.1",
    );
    let (src, back) = (d.path("src"), d.path("back"));
    many_entries(&src);
    let key = d.path("keys/client");
    let key = key.to_str().unwrap();
    let extra = [
        "--key",
        key,
        "--server-key",
        daemon.server_pub(),
        "--delete",
    ];
    let url = daemon.url("rw/tree");
    let (code, _, stderr) = d.sync_env(src.as_ref(), url.as_ref(), &extra, SMALL_WINDOWS);
    assert_eq!(code, 0, "{stderr}\n{}", daemon.log_text());
    assert_same_tree(&src, &store.join("tree"));
    assert!(windows_logged(&stderr) >= 40, "{}", windows_logged(&stderr));
    edit_many(&src);
    let (code, _, stderr) = d.sync_env(src.as_ref(), url.as_ref(), &extra, SMALL_WINDOWS);
    assert_eq!(code, 0, "{stderr}\n{}", daemon.log_text());
    assert_same_tree(&src, &store.join("tree"));

    let (code, _, stderr) = d.sync_env(url.as_ref(), back.as_ref(), &extra, SMALL_WINDOWS);
    assert_eq!(code, 0, "{stderr}\n{}", daemon.log_text());
    assert_same_tree(&src, &back);
    assert!(windows_logged(&stderr) >= 40, "{}", windows_logged(&stderr));
}

/// A watch to a daemon runs its rounds on one connection.
#[test]
fn a_watch_to_a_daemon_keeps_one_connection() {
    let d = Dir::new();
    let (client, _) = client_keys(&d);
    let store = d.path("store");
    std::fs::create_dir_all(&store).unwrap();
    let daemon = start(&d, &module("rw", &store, "read-write", &[&client]));
    let src = d.path("src");
    write(&src.join("a"), b"a");
    let key = d.path("keys/client");
    let args = [
        "--key",
        key.to_str().unwrap(),
        "--server-key",
        daemon.server_pub(),
        "--delete",
    ];
    let mut w = crate::watch::Watching::start(&d, &args, &src, &daemon.url("rw/tree"));
    w.round(crate::watch::SHOW_UP);
    let mirror = store.join("tree");
    w.until_same(&src, &mirror);
    for i in 0..3 {
        write(&src.join(format!("f{i}")), b"x");
        w.until_same(&src, &mirror);
    }
    std::fs::remove_file(src.join("a")).unwrap();
    w.until_same(&src, &mirror);
    let log = daemon.log_text();
    assert_eq!(log.matches("new connection").count(), 1, "{log}");
    assert!(log.matches("(watch round)").count() >= 4, "{log}");
}

/// `--timeout` against a daemon: a receiver busy past the timeout keeps
/// the run alive with keepalives; one silent past it ends the run (30).
#[test]
fn a_daemon_busy_past_the_timeout_is_not_silent() {
    for (stall, code) in [("busy:2500", 0), ("silent:20000", 30)] {
        let d = Dir::new();
        let (client, _) = client_keys(&d);
        let store = d.path("store");
        std::fs::create_dir_all(&store).unwrap();
        let env = format!("SLUICE_TEST_STALL={stall}");
        let settings = module("rw", &store, "read-write", &[&client]);
        let daemon = start_in(&d, &settings, &["env", &env], "127.0.0.1");
        let src = d.path("src");
        sample(&src);
        let url = daemon.url("rw/tree");
        let started = Instant::now();
        let (got, _, stderr) = daemon.sync(
            &d,
            "keys/client",
            src.as_os_str(),
            url.as_ref(),
            &["--timeout", "1"],
        );
        assert_eq!(got, code, "{stall}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(15), "{stall}");
        if code == 0 {
            assert_same_tree(&src, &store.join("tree"));
        }
    }
}
