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
/// clients by key) and authenticates both ways.
pub fn connect(
    host: &str,
    port: Option<u16>,
    key: &PrivateKey,
    server_key: &PublicKey,
) -> Result<NoiseTransport> {
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.unwrap_or(DEFAULT_PORT);
    let cannot = |why: String| Error::Start(format!("cannot connect to {host} port {port}: {why}"));
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| cannot(e.to_string()))?;
    let mut last = "no address".to_string();
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let stream = stream.ok_or_else(|| cannot(last))?;
    let _ = stream.set_nodelay(true);
    keepalive(&stream);
    let mut t = initiate(
        stream,
        key,
        server_key,
        &Preamble::ours(),
        HANDSHAKE_TIMEOUT,
    )?;
    t.set_deadline(None)?;
    Ok(t)
}
