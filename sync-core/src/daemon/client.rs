//! The client end of a daemon connection: TCP connect, then the Noise
//! handshake as initiator, pinning the server's public key.
//!
//! This module only connects; the session itself runs over the returned
//! transport exactly as it does over ssh.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::handshake::{initiate, Preamble};
use super::keys::{PrivateKey, PublicKey};
use super::noise::NoiseTransport;
use super::server::keepalive;
use super::DEFAULT_PORT;
use crate::error::{Error, Result};

/// Time allowed for the TCP connect, per address.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects to `host[:port]` (a `user@` prefix is ignored: the daemon knows
/// clients by key) and authenticates both ways, within `timeout` for each
/// of the connect and the handshake (`None`: [`CONNECT_TIMEOUT`] and
/// [`HANDSHAKE_TIMEOUT`]); running out of it is [`Error::ConnectTimeout`].
pub fn connect(
    host: &str,
    port: Option<u16>,
    key: &PrivateKey,
    server_key: &PublicKey,
    timeout: Option<Duration>,
) -> Result<NoiseTransport> {
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.unwrap_or(DEFAULT_PORT);
    let cannot = |why: String| Error::Start(format!("cannot connect to {host} port {port}: {why}"));
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| cannot(e.to_string()))?;
    let mut last = "no address".to_string();
    let mut timed_out = false;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout.unwrap_or(CONNECT_TIMEOUT)) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                timed_out = true;
                last = e.to_string();
            }
            Err(e) => last = e.to_string(),
        }
    }
    let stream = match stream {
        Some(s) => s,
        None if timed_out => {
            return Err(Error::ConnectTimeout(format!(
                "no connection to {host} port {port} within {} s",
                timeout.unwrap_or(CONNECT_TIMEOUT).as_secs()
            )))
        }
        None => return Err(cannot(last)),
    };
    let _ = stream.set_nodelay(true);
    keepalive(&stream);
    let limit = timeout.unwrap_or(HANDSHAKE_TIMEOUT);
    let mut t = initiate(stream, key, server_key, &Preamble::ours(), limit).map_err(|e| match e {
        Error::TimedOut(_) => Error::ConnectTimeout(format!(
            "{host} port {port} accepted the connection but did not complete the handshake within {} s",
            limit.as_secs()
        )),
        e => e,
    })?;
    t.set_deadline(None)?;
    Ok(t)
}
