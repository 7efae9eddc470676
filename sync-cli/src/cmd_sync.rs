//! `sluice sync SRC DST` and `sluice diff SRC DST`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sync_core::daemon::keys::{default_key_path, PrivateKey, PublicKey};
use sync_core::daemon::noise::NoiseTransport;
use sync_core::history::{RunId, RunKind};
use sync_core::session::msg::Role;
use sync_core::session::remote::{connect_ssh, Location, SshOptions, SshSession};
use sync_core::session::{
    self, Opening, Progress, SessionOptions, Side, SyncReport, Transport, UdpSide,
};

use crate::args::SyncArgs;
use crate::exit::Code;
use crate::output;
use crate::record::Recorder;
use crate::summary::{print_report, Printed};

pub fn run(a: SyncArgs, diff: bool, quiet: bool) -> anyhow::Result<Code> {
    let dry_run = diff || a.dry_run;
    exit_on_signal();
    // Recorded before anything is checked, so that a refused or killed
    // run is in the history too.
    let mut history = Recorder::open(&a);
    let id = history.start(
        if dry_run {
            RunKind::Diff
        } else {
            RunKind::Sync
        },
        None,
    );
    let (report, itemized) = match sync_once(&a, dry_run, quiet) {
        Ok(Ok(done)) => done,
        Ok(Err(refused)) => {
            history.failed(id, refused.code, &refused.message);
            print_failure(&a, refused.code, &refused.message, id)?;
            return Ok(refused.code);
        }
        Err(e) => {
            let code = Code::of_error(&e);
            history.failed(id, code, &format!("{e:#}"));
            print_failure(&a, code, &format!("{e:#}"), id)?;
            return Err(e);
        }
    };
    let code = outcome(&report);
    history.finished(id, &report, code, itemized);
    print_report(
        &report,
        &a,
        Printed {
            dry_run,
            quiet,
            code,
            id,
        },
    )?;
    Ok(code)
}

/// With `--json`, a run that failed still prints one object: what went
/// wrong, its exit code and its history row.
fn print_failure(a: &SyncArgs, code: Code, message: &str, id: Option<RunId>) -> anyhow::Result<()> {
    if a.json {
        output::print_json(&serde_json::json!({
            "error": message,
            "exit_code": code as i32,
            "history_id": id.map(|i| i.0),
        }))?;
    }
    Ok(())
}

/// Checks the arguments and runs one session: its report, and whether the
/// report lists every change (`SessionOptions::itemize`).
fn sync_once(
    a: &SyncArgs,
    dry_run: bool,
    quiet: bool,
) -> anyhow::Result<Result<(SyncReport, bool), Refused>> {
    let show = !quiet && !a.json && (a.progress || output::stderr_is_tty());
    let prepared = match Prepared::new(a, dry_run, show)? {
        Ok(p) => p,
        Err(refused) => return Ok(Err(refused)),
    };
    let ended = std::sync::OnceLock::new();
    let result = std::thread::scope(|s| {
        if let Some(p) = &prepared.progress {
            s.spawn(|| crate::progress::show(p, dry_run, a.progress, &ended));
        }
        let r = prepared
            .connect()
            .and_then(|mut conn| prepared.run(&prepared.opts, conn.as_mut()));
        let _ = ended.set(r.as_ref().is_ok_and(|report| !report.partial()));
        r
    });
    let listed = prepared.opts.itemize || prepared.opts.change_list > 0;
    Ok(Ok((result?, listed)))
}

/// SIGINT, SIGTERM or SIGHUP end a sync with exit 20, as rsync's. Nothing
/// half-written is visible: files already renamed into place are whole,
/// the one being written is a hidden temporary file that the next run
/// removes, and the destination's index is committed window by window.
fn exit_on_signal() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            eprintln!(
                "sluice: stopped by signal {signal}; files already in place are complete, \
                 the next run finishes the rest"
            );
            std::process::exit(Code::Interrupted as i32);
        }
    });
}

/// Change lines a run that is not itemised still lists, for its history
/// row: about 2 MB held by the receiver at most, so a first sync of a
/// million files keeps within its memory bound (the history itself would
/// take up to `history::MAX_CHANGES` from an itemised run).
const HISTORY_CHANGES: u32 = 10_000;

/// The exit code a finished sync earns: as rsync, vanished source files
/// earn 24 only when nothing else went wrong.
pub fn outcome(report: &SyncReport) -> Code {
    if report.max_delete_hit {
        Code::MaxDelete
    } else if report.partial() {
        Code::Partial
    } else if report.vanished > 0 {
        Code::Vanished
    } else {
        Code::Ok
    }
}

/// A sync's two ends and options, checked: ready to run once, or round
/// after round (`sluice watch`).
pub struct Prepared {
    remote: Option<Remote>,
    pub src: Side,
    pub dst: Side,
    pub opts: SessionOptions,
    pub progress: Option<Arc<Progress>>,
}

/// The remote end of a sync.
struct Remote {
    endpoint: Endpoint,
    path: Vec<u8>,
    /// The role the remote end takes.
    role: Role,
    ssh: SshOptions,
    keys: Option<(PrivateKey, PublicKey)>,
    /// `--contimeout`: the daemon's connect and handshake.
    contimeout: Option<Duration>,
    /// `--timeout`: reads and writes on a daemon connection.
    timeout: Option<Duration>,
}

/// An open connection to the remote end.
pub enum Conn {
    Ssh(SshSession),
    Daemon(NoiseTransport),
}

impl Conn {
    pub fn transport(&mut self) -> &mut dyn Transport {
        match self {
            Conn::Ssh(s) => &mut s.transport,
            Conn::Daemon(t) => t,
        }
    }
}

/// Arguments refused before anything ran: the message (printed when
/// made) and the exit code it earns.
pub struct Refused {
    pub code: Code,
    pub message: String,
}

impl Refused {
    fn new(code: Code, message: String) -> Refused {
        eprintln!("sluice: error: {message}");
        Refused { code, message }
    }
}

impl Prepared {
    /// Checks the arguments; a problem is printed and returned as the
    /// inner error.
    pub fn new(
        a: &SyncArgs,
        dry_run: bool,
        progress: bool,
    ) -> anyhow::Result<Result<Self, Refused>> {
        let (src_loc, dst_loc) = (
            Location::parse(a.src.as_os_str()),
            Location::parse(a.dst.as_os_str()),
        );
        let fail = |code: Code, msg: &str| Ok(Err(Refused::new(code, msg.to_string())));
        let remote = match (&src_loc, &dst_loc) {
            (Location::Local(_), Location::Local(_)) => None,
            (remote, Location::Local(_)) => endpoint(remote).map(|(e, p)| (e, p, Role::Sender)),
            (Location::Local(_), remote) => endpoint(remote).map(|(e, p)| (e, p, Role::Receiver)),
            _ => return fail(Code::Paths, "only one of SRC and DST may be remote"),
        };
        // A daemon address needs both keys before anything else happens.
        let keys = match &remote {
            Some((Endpoint::Daemon(..), _, _)) => match daemon_keys(a) {
                Ok(k) => Some(k),
                Err(code) => return Ok(Err(code)),
            },
            _ => None,
        };
        let checked = match &remote {
            None => check_paths(&a.src, &a.dst),
            Some((_, _, Role::Receiver)) => check_src(&a.src).map(|s| (s, PathBuf::new())),
            Some((_, _, Role::Sender)) => check_dst(&a.dst).map(|d| (PathBuf::new(), d)),
        };
        let (src, dst) = match checked {
            Ok(p) => p,
            Err(msg) => return fail(Code::Paths, &msg),
        };
        let mut excludes = Vec::new();
        for f in &a.scan.exclude_from {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            excludes.extend(text.lines().map(|l| l.trim_end_matches('\r').to_string()));
        }
        excludes.extend(a.scan.exclude.iter().cloned());
        let udp = match &remote {
            None => UdpSide::local(),
            Some((Endpoint::Ssh(host) | Endpoint::Daemon(host, _), _, _)) => {
                let mut u = UdpSide::remote(resolve(host), a.udp_ports.clone());
                if let Some(ip) = a.udp_bind {
                    u.bind = ip;
                }
                u
            }
        };
        // A remote end on this host is reached at memory speed: auto
        // compression would only cost time there.
        let far = remote.is_some() && !udp.peer.is_some_and(|ip| ip.is_loopback());
        let data = match a.data.options(remote.is_some(), far) {
            Ok(d) => d,
            Err(msg) => return fail(Code::Usage, &msg),
        };
        let opts = SessionOptions {
            delete: a.delete,
            dry_run,
            checksum: a.scan.checksum,
            hard_links: a.hard_links,
            max_delete: a.max_delete,
            allow_empty_source: a.allow_empty_source,
            excludes,
            gitignore: a.scan.gitignore,
            itemize: a.json || a.itemize_changes || dry_run,
            window: 0,
            data,
            scopes: None,
            wait_lock: a.wait_lock,
            change_list: if a.no_history { 0 } else { HISTORY_CHANGES },
            timeout: a.timeout.unwrap_or(0),
        };
        let push = matches!(remote, Some((_, _, Role::Receiver)));
        let progress = progress.then(|| {
            Arc::new(Progress {
                count_shipped: push,
                ..Progress::default()
            })
        });
        // Held until this run (or watch) ends.
        let locks = sync_core::session::lock::Locks::default();
        let side = |root: PathBuf, index: &Option<PathBuf>| Side {
            root,
            index: index.clone(),
            threads: a.scan.threads,
            progress: progress.clone(),
            udp: udp.clone(),
            locks: locks.clone(),
        };
        Ok(Ok(Prepared {
            remote: remote.map(|(endpoint, path, role)| Remote {
                endpoint,
                path,
                role,
                ssh: SshOptions {
                    rsh: a.rsh.clone(),
                    remote_sluice: a.remote_sluice.clone(),
                    connect_timeout: a.contimeout,
                    io_timeout: a.timeout.map(|s| Duration::from_secs(s.into())),
                },
                keys,
                contimeout: a.contimeout.map(Duration::from_secs),
                timeout: a.timeout.map(|s| Duration::from_secs(s.into())),
            }),
            src: side(src, &a.src_index),
            dst: side(dst, &a.dst_index),
            opts,
            progress,
        }))
    }

    /// True when the source is on another host.
    pub fn remote_source(&self) -> bool {
        self.remote.as_ref().is_some_and(|r| r.role == Role::Sender)
    }

    /// Where the destination is, as the user wrote it (for messages).
    pub fn remote_name(&self) -> Option<String> {
        self.remote.as_ref().map(|r| match &r.endpoint {
            Endpoint::Ssh(host) => format!("{host}:{}", String::from_utf8_lossy(&r.path)),
            Endpoint::Daemon(host, _) => {
                format!("sluice://{host}/{}", String::from_utf8_lossy(&r.path))
            }
        })
    }

    /// Connects to the remote end (`None` for two local folders).
    pub fn connect(&self) -> sync_core::error::Result<Option<Conn>> {
        let Some(r) = &self.remote else {
            return Ok(None);
        };
        Ok(Some(match &r.endpoint {
            Endpoint::Ssh(host) => Conn::Ssh(connect_ssh(host, &r.ssh)?),
            Endpoint::Daemon(host, port) => {
                let (key, server_key) = r.keys.as_ref().expect("loaded when prepared");
                let t =
                    sync_core::daemon::client::connect(host, *port, key, server_key, r.contimeout)?;
                t.set_io_timeout(r.timeout)?;
                Conn::Daemon(t)
            }
        }))
    }

    /// Runs one session with `opts`: in this process for two local
    /// folders, else on `conn` (from [`Prepared::connect`]), which may
    /// carry the next session afterwards.
    pub fn run(
        &self,
        opts: &SessionOptions,
        conn: Option<&mut Conn>,
    ) -> sync_core::error::Result<SyncReport> {
        let (r, conn) = match (&self.remote, conn) {
            (None, _) => return session::sync_local(&self.src, &self.dst, opts),
            (Some(r), Some(conn)) => (r, conn),
            (Some(_), None) => {
                return Err(sync_core::error::Error::Peer(
                    "not connected to the remote end".into(),
                ))
            }
        };
        let opening = Opening::Initiate {
            options: opts.clone(),
            remote_path: Some(r.path.clone()),
        };
        let t = conn.transport();
        match r.role {
            Role::Receiver => session::run_sender(t, &self.src, opening),
            Role::Sender => session::run_receiver(t, &self.dst, opening),
        }
    }
}

/// The first address of `[user@]host`, for UDP datagrams to a remote receiver.
fn resolve(host: &str) -> Option<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, 0).to_socket_addrs().ok()?.next().map(|a| a.ip())
}

/// Where the remote end of a sync is reached.
enum Endpoint {
    /// `[user@]host` over ssh.
    Ssh(String),
    /// `sluice://host[:port]`.
    Daemon(String, Option<u16>),
}

/// A remote location's endpoint and path (`None` for a local one).
fn endpoint(loc: &Location) -> Option<(Endpoint, Vec<u8>)> {
    match loc {
        Location::Local(_) => None,
        Location::Ssh { host, path } => Some((Endpoint::Ssh(host.clone()), path.clone())),
        Location::Daemon { host, port, path } => Some((
            Endpoint::Daemon(host.clone(), *port),
            path.as_bytes().to_vec(),
        )),
    }
}

/// The client's private key (`--key`) and the pinned server key
/// (`--server-key`); on failure, the message is printed and returned.
fn daemon_keys(a: &SyncArgs) -> Result<(PrivateKey, PublicKey), Refused> {
    let Some(hex) = &a.server_key else {
        return Err(Refused::new(
            Code::Usage,
            "sluice:// addresses need --server-key HEX, the server's public key \
             (its `sluice keygen` printed it; it is in the server key's .pub file)"
                .into(),
        ));
    };
    let server_key = PublicKey::from_hex(hex)
        .map_err(|e| Refused::new(Code::Usage, format!("--server-key: {e}")))?;
    let path = match &a.key {
        Some(p) => p.clone(),
        None => default_key_path().map_err(|e| Refused::new(Code::Usage, e.to_string()))?,
    };
    let key = PrivateKey::load(&path).map_err(|e| {
        Refused::new(
            Code::Usage,
            format!("client key: {e} (make one with `sluice keygen`)"),
        )
    })?;
    Ok((key, server_key))
}

/// Checks a local SRC: it must be a folder.
fn check_src(src: &Path) -> Result<PathBuf, String> {
    let c = std::fs::canonicalize(src).map_err(|e| format!("source {}: {e}", src.display()))?;
    if !c.is_dir() {
        return Err(format!("source {} is not a folder", src.display()));
    }
    Ok(c)
}

/// Checks a local DST: a folder, or missing (it will be created).
fn check_dst(dst: &Path) -> Result<PathBuf, String> {
    match std::fs::symlink_metadata(dst) {
        Ok(_) => {
            let c = std::fs::canonicalize(dst)
                .map_err(|e| format!("destination {}: {e}", dst.display()))?;
            if !c.is_dir() {
                return Err(format!(
                    "destination {} exists and is not a folder",
                    dst.display()
                ));
            }
            Ok(c)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            future_path(dst).map_err(|e| format!("destination {}: {e}", dst.display()))
        }
        Err(e) => Err(format!("destination {}: {e}", dst.display())),
    }
}

/// Checks SRC and DST before anything is written; returns canonical paths
/// (DST's as it will be once created).
fn check_paths(src: &Path, dst: &Path) -> Result<(PathBuf, PathBuf), String> {
    let src_c = check_src(src)?;
    let dst_c = check_dst(dst)?;
    if dst_c == src_c {
        return Err("source and destination are the same folder".into());
    }
    if dst_c.starts_with(&src_c) {
        return Err(format!(
            "destination {} is inside the source {}",
            dst_c.display(),
            src_c.display()
        ));
    }
    if src_c.starts_with(&dst_c) {
        return Err(format!(
            "source {} is inside the destination {}",
            src_c.display(),
            dst_c.display()
        ));
    }
    Ok((src_c, dst_c))
}

/// The canonical form of a path that does not exist yet: its nearest
/// existing ancestor, canonicalised, plus the rest.
fn future_path(p: &Path) -> std::io::Result<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    let mut missing = Vec::new();
    let mut cur = abs.as_path();
    loop {
        match std::fs::canonicalize(cur) {
            Ok(c) => {
                if !c.is_dir() {
                    return Err(std::io::Error::other(format!(
                        "{} is not a folder",
                        cur.display()
                    )));
                }
                let mut out = c;
                for m in missing.iter().rev() {
                    out.push(m);
                }
                return Ok(out);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let name = cur.file_name().ok_or(e)?;
                if name == ".." {
                    return Err(std::io::Error::other("`..` in a path that does not exist"));
                }
                missing.push(name.to_owned());
                cur = cur.parent().unwrap_or(Path::new("/"));
            }
            Err(e) => return Err(e),
        }
    }
}
