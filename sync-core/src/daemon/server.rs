//! `sluice serve --listen`: accepts connections, authenticates clients,
//! confines each request to its module, and runs the session.
//!
//! One thread per connection; a counter caps them at `max_connections` (a
//! client over the cap gets a refusal in the preamble and is closed). The
//! handshake and the client's request must arrive within
//! `idle_timeout_secs`, else the connection is dropped and its slot freed.
//! During a session, reads wait as long as the client's scan takes; TCP
//! keepalives detect a vanished client, and a client that stops reading for
//! [`SESSION_WRITE_TIMEOUT`] is dropped. After a session the connection may
//! carry the next one (a watch's rounds): the client keeps it alive with
//! keepalive messages, and silence past `idle_timeout_secs` since the last
//! of them closes it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::{Access, Config, Module};
use super::handshake::{self, Preamble};
use super::keys::{PrivateKey, PublicKey};
use super::noise::NoiseTransport;
use super::rate::Pacer;
use crate::error::{Error, Result};
use crate::metrics::{Kind, Metrics};
use crate::path::RelPath;
use crate::session::lock::Locks;
use crate::session::msg::{Hello, Msg, Role};
use crate::session::{
    next_hello, read_hello, run_receiver, run_sender, Opening, Side, Transport, UdpSide,
    DEFAULT_UDP_PORTS,
};

/// What every refused request hears, whatever the reason: unknown module,
/// key not allowed, or access mode. A client learns nothing about modules.
pub const ACCESS_DENIED: &str = "access denied";
/// A client that accepts no data for this long is dropped.
pub const SESSION_WRITE_TIMEOUT: Duration = Duration::from_secs(600);

/// A bound daemon, ready to [`Server::run`].
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

struct Shared {
    config: Config,
    key: PrivateKey,
    active: AtomicUsize,
    pacer: Option<Arc<Pacer>>,
    threads: usize,
    metrics: Arc<Metrics>,
}

/// Frees a connection slot when the connection's thread ends.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.connection_closed();
    }
}

impl Server {
    /// Loads the server key and binds `listen`.
    pub fn bind(config: Config, listen: SocketAddr, threads: usize) -> Result<Server> {
        let key = PrivateKey::load(&config.key)?;
        let listener = TcpListener::bind(listen)
            .map_err(|e| Error::Usage(format!("cannot listen on {listen}: {e}")))?;
        let pacer = config.max_rate.map(|r| Arc::new(Pacer::new(r)));
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                config,
                key,
                active: AtomicUsize::new(0),
                pacer,
                threads,
                metrics: Arc::new(Metrics::new(Kind::Daemon)),
            }),
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::io("<listener>", e))
    }

    pub fn public_key(&self) -> Result<PublicKey> {
        self.shared.key.public()
    }

    /// The daemon's figures (sessions, bytes, connections), for
    /// `--metrics` to serve.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// Accepts connections until the process ends.
    pub fn run(self) -> Result<()> {
        let max = self.shared.config.max_connections;
        for conn in self.listener.incoming() {
            let mut stream = match conn {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let peer = stream
                .peer_addr()
                .map_or_else(|_| "?".to_string(), |a| a.to_string());
            if self.shared.active.fetch_add(1, Ordering::AcqRel) >= max {
                self.shared.active.fetch_sub(1, Ordering::AcqRel);
                tracing::warn!(%peer, "refused: {max} connections already open");
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                handshake::refuse(
                    &mut stream,
                    &format!("the server is busy ({max} connections, its limit); try again later"),
                );
                continue;
            }
            self.shared.metrics.connection_opened();
            let slot = Slot(Arc::clone(&self.shared));
            let spawned = std::thread::Builder::new()
                .name("sluice-conn".into())
                .spawn(move || {
                    let shared = Arc::clone(&slot.0);
                    handle(&shared, stream, &peer);
                    drop(slot);
                });
            if let Err(e) = spawned {
                tracing::warn!("cannot start a connection thread: {e}");
            }
        }
        Ok(())
    }
}

/// One connection, from handshake to the end of its session.
fn handle(shared: &Shared, stream: TcpStream, peer: &str) {
    tracing::info!(%peer, "new connection");
    let idle = Duration::from_secs(shared.config.idle_timeout_secs);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(idle));
    let (mut t, client_key) = match handshake::accept(stream, &shared.key, &Preamble::ours(), idle)
    {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(%peer, "handshake failed: {e}");
            return;
        }
    };
    let hello = t
        .set_deadline(Some(Instant::now() + idle))
        .and_then(|_| read_hello(&mut t));
    let hello = match hello {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(%peer, key = %client_key, "no request: {e}");
            return;
        }
    };
    let setup = t.set_deadline(None).and_then(|_| {
        keepalive(t.stream());
        t.stream()
            .set_write_timeout(Some(SESSION_WRITE_TIMEOUT))
            .map_err(|e| Error::io("<connection>", e))
    });
    if let Err(e) = setup {
        tracing::warn!(%peer, "connection setup failed: {e}");
        return;
    }
    t.set_pacer(shared.pacer.clone());
    // Destination locks last as long as the connection (a watch's rounds).
    let locks = Locks::default();
    let mut hello = hello;
    loop {
        let (module, sub) = match authorize(&shared.config, &client_key, &hello) {
            Ok(x) => x,
            Err(why) => {
                tracing::warn!(%peer, key = %client_key, "access denied: {why}");
                let _ = t.send(&Msg::Error(ACCESS_DENIED.into()));
                return;
            }
        };
        let root = match resolve(module, &sub, hello.role == Role::Receiver) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%peer, module = %module.name, "refused: {e}");
                let _ = t.send(&Msg::Error(e.to_string()));
                return;
            }
        };
        let what = match hello.role {
            Role::Sender => "push",
            Role::Receiver => "pull",
        };
        let scoped = if hello.options.scopes.is_some() {
            " (watch round)"
        } else {
            ""
        };
        tracing::info!(%peer, key = %client_key, module = %module.name, path = %String::from_utf8_lossy(&sub), "{what}{scoped}");
        if !session(shared, &mut t, (root, &locks), hello, peer, &module.name) {
            return;
        }
        // A watch sends its next round on the same connection, and
        // keepalives while it waits: silence past the idle timeout ends it.
        t.set_idle(idle);
        let next = next_hello(&mut t);
        hello = match next {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%peer, "after a session: {e}");
                return;
            }
        };
        if let Err(e) = t.set_deadline(None) {
            tracing::warn!(%peer, "connection setup failed: {e}");
            return;
        }
    }
}

/// Runs one session; true when it went through (the connection may carry
/// another).
fn session(
    shared: &Shared,
    t: &mut NoiseTransport,
    (root, locks): (PathBuf, &Locks),
    hello: Hello,
    peer: &str,
    module: &str,
) -> bool {
    // The UDP block transport, when a session uses it, listens on the
    // configured range (so a firewall can route it) and sends to the client.
    let ports = shared.config.udp_ports.clone().unwrap_or(DEFAULT_UDP_PORTS);
    let peer_ip = t.stream().peer_addr().ok().map(|a| a.ip());
    let side = Side {
        root,
        index: None,
        threads: shared.threads,
        progress: None,
        udp: UdpSide::remote(peer_ip, ports),
        locks: locks.clone(),
    };
    let result = match hello.role {
        // The client sends: this side receives into the module.
        Role::Sender => run_receiver(t, &side, Opening::Answer(Some(hello))),
        Role::Receiver => run_sender(t, &side, Opening::Answer(Some(hello))),
    };
    match result {
        Ok(r) => {
            tracing::info!(
                %peer, %module,
                "done{}: {} created, {} updated, {} deleted, {} chunk bytes",
                if r.dry_run { " (dry run)" } else { "" },
                r.files_created, r.files_updated, r.files_deleted, r.chunk_bytes_sent
            );
            shared.metrics.run_done(&r, std::time::SystemTime::now());
            true
        }
        Err(e) => {
            tracing::warn!(%peer, %module, "failed: {e}");
            shared.metrics.run_failed();
            false
        }
    }
}

/// Checks the request against the module's keys and access mode. The
/// reason is for the log only; the client hears [`ACCESS_DENIED`].
pub fn authorize<'c>(
    config: &'c Config,
    key: &PublicKey,
    hello: &Hello,
) -> std::result::Result<(&'c Module, Vec<u8>), String> {
    let path: &[u8] = hello.path.as_deref().ok_or("no path in the request")?;
    let (name, sub) = match path.iter().position(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (path, &[][..]),
    };
    let name = String::from_utf8_lossy(name);
    let module = config
        .modules
        .get(name.as_ref())
        .ok_or_else(|| format!("unknown module {name:?}"))?;
    if !module.allowed_keys.contains(key) {
        return Err(format!("key not allowed for module {name:?}"));
    }
    let (need_read, need_write) = match hello.role {
        Role::Receiver => (true, false),
        Role::Sender if hello.options.dry_run => (true, false),
        Role::Sender => (false, true),
    };
    if (need_read && !module.access.can_read()) || (need_write && !module.access.can_write()) {
        let mode = match module.access {
            Access::ReadOnly => "read-only",
            Access::WriteOnly => "write-only",
            Access::ReadWrite => "read-write",
        };
        let op = if need_write { "write to" } else { "read from" };
        return Err(format!("cannot {op} {mode} module {name:?}"));
    }
    // `mod/sub/` names the same folder as `mod/sub`.
    let sub = match sub {
        [rest @ .., b'/'] if !rest.is_empty() => rest,
        s => s,
    };
    Ok((module, sub.to_vec()))
}

/// The folder `sub` of `module`, confined: `sub` must be a safe relative
/// path, no existing component may be a symlink or a non-folder, and the
/// result must lie inside the canonical module root. `must_exist` for a
/// source. Messages name module paths only, never the server's folders.
pub fn resolve(module: &Module, sub: &[u8], must_exist: bool) -> Result<PathBuf> {
    let shown = || {
        let s = String::from_utf8_lossy(sub);
        if s.is_empty() {
            module.name.clone()
        } else {
            format!("{}/{s}", module.name)
        }
    };
    let rel = RelPath::new(sub.to_vec())?;
    let root = std::fs::canonicalize(&module.path)
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(|| {
            Error::Usage(format!(
                "module {} is unavailable on the server",
                module.name
            ))
        })?;
    let mut at = root.clone();
    let mut exists = true;
    for comp in rel.components() {
        at.push(std::ffi::OsStr::from_bytes(comp));
        match std::fs::symlink_metadata(&at) {
            Ok(md) if md.file_type().is_symlink() => {
                return Err(Error::Usage(format!(
                    "{}: the path goes through a symlink; it would leave the module",
                    shown()
                )))
            }
            Ok(md) if md.is_dir() => {}
            Ok(_) => return Err(Error::Usage(format!("{}: not a folder", shown()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                exists = false;
                break;
            }
            Err(e) => return Err(Error::Usage(format!("{}: {}", shown(), e.kind()))),
        }
    }
    if !exists {
        if must_exist {
            return Err(Error::Usage(format!("{}: no such folder", shown())));
        }
        // The rest is created by the receiver; rebuild the full path.
        return Ok(rel.under(&root));
    }
    let canon = std::fs::canonicalize(&at)
        .map_err(|e| Error::Usage(format!("{}: {}", shown(), e.kind())))?;
    if !canon.starts_with(&root) {
        return Err(Error::Usage(format!("{}: outside the module", shown())));
    }
    Ok(canon)
}

/// Turns on TCP keepalives (probe after 60 s idle, every 10 s, 6 times), so
/// a vanished peer is noticed in about two minutes.
pub fn keepalive(stream: &TcpStream) {
    use rustix::net::sockopt;
    // Best effort, as before: a socket that refuses one still works.
    let _ = sockopt::set_socket_keepalive(stream, true);
    let _ = sockopt::set_tcp_keepidle(stream, Duration::from_secs(60));
    let _ = sockopt::set_tcp_keepintvl(stream, Duration::from_secs(10));
    let _ = sockopt::set_tcp_keepcnt(stream, 6);
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
