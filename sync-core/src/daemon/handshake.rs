//! The daemon's handshake: a version preamble each way, then Noise XK.
//!
//! All cryptography is `snow`'s, with the pattern
//! `Noise_XK_25519_ChaChaPoly_BLAKE2s` (Noise spec rev. 34, §7.5): the client
//! knows and pins the server's static key, its own static key travels
//! encrypted in the third message, and both sides are authenticated when the
//! handshake ends. This module never decides who may do what: it returns the
//! client's public key and the caller checks it (see [`super::server`]).
//!
//! ```text
//! server → client   preamble (magic, daemon protocol version, capabilities,
//!                   software, and a refusal text when the server is full)
//! client → server   preamble
//! client → server   Noise message 1   (-> e, es)
//! server → client   Noise message 2   (<- e, ee)
//! client → server   Noise message 3   (-> s, se)
//! both ways         Noise transport messages ([`NoiseTransport`])
//! ```
//!
//! The preambles are plain text (they hold no secret) so an incompatible
//! peer can be told both versions in one line; both are hashed into the
//! handshake as its prologue, so tampering with them fails the handshake.
//! The server speaks first, so a client that must be turned away (the
//! server is full) reads why before it has sent anything.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::keys::{PrivateKey, PublicKey, KEY_LEN};
use super::noise::{noise_err, Io, NoiseTransport, MAX_NOISE_MSG, PATTERN};
use crate::error::ProtocolError;
use crate::error::{Error, Result};

/// The daemon wire version (preamble, handshake, framing); peers must match.
pub const DAEMON_VERSION: u16 = 1;
/// Capability bits this version understands (none defined yet; unknown bits
/// from a peer are ignored, so later versions can add optional features).
pub const CAPABILITIES: u32 = 0;
/// Starts every preamble.
pub const MAGIC: [u8; 8] = *b"\0sluiced";
/// Longest refusal text in a preamble.
const MAX_REFUSAL: usize = 1024;

/// What each side says before the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preamble {
    pub version: u16,
    pub capabilities: u32,
    /// `sluice 0.1.0`, for messages.
    pub software: String,
    /// Set by a server that will not go on (it is full).
    pub refusal: Option<String>,
}

impl Preamble {
    /// This build's preamble.
    pub fn ours() -> Preamble {
        Preamble {
            version: DAEMON_VERSION,
            capabilities: CAPABILITIES,
            software: format!("sluice {}", env!("CARGO_PKG_VERSION")),
            refusal: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let sw = &self.software.as_bytes()[..self.software.len().min(255)];
        let refusal = self.refusal.as_deref().unwrap_or("").as_bytes();
        let refusal = &refusal[..refusal.len().min(MAX_REFUSAL)];
        let mut out = Vec::with_capacity(17 + sw.len() + refusal.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.capabilities.to_be_bytes());
        out.push(sw.len() as u8);
        out.extend_from_slice(sw);
        out.extend_from_slice(&(refusal.len() as u16).to_be_bytes());
        out.extend_from_slice(refusal);
        out
    }

    /// Reads a preamble; returns it and its raw bytes (for the prologue).
    fn read(io: &mut Io<'_>) -> Result<(Preamble, Vec<u8>)> {
        let mut head = [0u8; 15];
        io.read_exact(&mut head)?;
        if head[..8] != MAGIC {
            return Err(ProtocolError::invalid(
                "preamble",
                "the peer does not speak the sluice daemon protocol",
            )
            .into());
        }
        let version = u16::from_be_bytes([head[8], head[9]]);
        let capabilities = u32::from_be_bytes([head[10], head[11], head[12], head[13]]);
        let mut sw = vec![0u8; head[14] as usize];
        io.read_exact(&mut sw)?;
        let mut len = [0u8; 2];
        io.read_exact(&mut len)?;
        let len = u16::from_be_bytes(len) as usize;
        if len > MAX_REFUSAL {
            return Err(
                ProtocolError::over_limit("preamble's refusal text", len, MAX_REFUSAL).into(),
            );
        }
        let mut refusal = vec![0u8; len];
        io.read_exact(&mut refusal)?;
        let mut raw = head.to_vec();
        raw.extend_from_slice(&sw);
        raw.extend_from_slice(&(len as u16).to_be_bytes());
        raw.extend_from_slice(&refusal);
        let text = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
        };
        Ok((
            Preamble {
                version,
                capabilities,
                software: text(&sw),
                refusal: (!refusal.is_empty()).then(|| text(&refusal)),
            },
            raw,
        ))
    }
}

/// The line both sides print when versions differ.
fn version_line(server: &Preamble, client: &Preamble) -> String {
    format!(
        "incompatible daemon protocol: the server runs {} (daemon protocol {}), the client runs {} (daemon protocol {})",
        server.software, server.version, client.software, client.version
    )
}

fn builder<'a>(prologue: &'a [u8], key: &'a PrivateKey) -> Result<snow::Builder<'a>> {
    snow::Builder::new(PATTERN.parse().map_err(noise_err("noise parameters"))?)
        .prologue(prologue)
        .and_then(|b| b.local_private_key(&key.0))
        .map_err(noise_err("noise setup"))
}

/// Sends a refusal preamble (the server is full) and closes.
pub fn refuse(stream: &mut TcpStream, why: &str) {
    let mut p = Preamble::ours();
    p.refusal = Some(why.to_string());
    let _ = stream.write_all(&p.encode());
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// The server's side of the handshake: returns the transport and the
/// client's static public key (not yet checked against anything).
pub fn accept(
    mut stream: TcpStream,
    key: &PrivateKey,
    ours: &Preamble,
    timeout: Duration,
) -> Result<(NoiseTransport, PublicKey)> {
    let mut io = Io {
        stream: &mut stream,
        deadline: Some(Instant::now() + timeout),
    };
    let server_raw = ours.encode();
    io.write_all(&server_raw)?;
    let (client, client_raw) = Preamble::read(&mut io)?;
    if client.version != ours.version {
        return Err(Error::Version(version_line(ours, &client)));
    }
    let prologue = [server_raw, client_raw].concat();
    let mut hs = builder(&prologue, key)?
        .build_responder()
        .map_err(noise_err("noise setup"))?;
    let mut msg = Vec::new();
    let mut payload = vec![0u8; MAX_NOISE_MSG];
    let fail = noise_err("handshake failed (the client may have pinned another server key)");
    io.read_msg(&mut msg)?;
    hs.read_message(&msg, &mut payload).map_err(&fail)?;
    let mut out = vec![0u8; MAX_NOISE_MSG];
    let n = hs.write_message(&[], &mut out).map_err(&fail)?;
    io.write_msg(&out[..n])?;
    io.read_msg(&mut msg)?;
    hs.read_message(&msg, &mut payload)
        .map_err(noise_err("handshake failed"))?;
    let remote = hs
        .get_remote_static()
        .filter(|k| k.len() == KEY_LEN)
        .ok_or_else(|| ProtocolError::invalid("handshake", "the client sent no static key"))?;
    let mut client_key = [0u8; KEY_LEN];
    client_key.copy_from_slice(remote);
    let noise = hs
        .into_stateless_transport_mode()
        .map_err(noise_err("handshake"))?;
    Ok((NoiseTransport::new(stream, noise), PublicKey(client_key)))
}

/// The client's side of the handshake, pinning the server's public key.
pub fn initiate(
    mut stream: TcpStream,
    key: &PrivateKey,
    server_key: &PublicKey,
    ours: &Preamble,
    timeout: Duration,
) -> Result<NoiseTransport> {
    let mut io = Io {
        stream: &mut stream,
        deadline: Some(Instant::now() + timeout),
    };
    let (server, server_raw) = Preamble::read(&mut io)?;
    if let Some(why) = &server.refusal {
        return Err(Error::Start(format!(
            "the server refused the connection: {why}"
        )));
    }
    let client_raw = ours.encode();
    io.write_all(&client_raw)?;
    if server.version != ours.version {
        return Err(Error::Version(version_line(&server, ours)));
    }
    let prologue = [server_raw, client_raw].concat();
    let mut hs = builder(&prologue, key)?
        .remote_public_key(&server_key.0)
        .and_then(|b| b.build_initiator())
        .map_err(noise_err("noise setup"))?;
    let mut out = vec![0u8; MAX_NOISE_MSG];
    let n = hs
        .write_message(&[], &mut out)
        .map_err(noise_err("handshake"))?;
    io.write_msg(&out[..n])?;
    let mut msg = Vec::new();
    match io.read_msg(&mut msg) {
        Err(Error::Peer(_) | Error::Closed(_)) => {
            return Err(Error::Refused(
                "the server ended the handshake: is --server-key the server's public key?".into(),
            ))
        }
        r => r?,
    }
    let mut payload = vec![0u8; MAX_NOISE_MSG];
    hs.read_message(&msg, &mut payload).map_err(|e| {
        Error::Refused(format!(
            "handshake failed: the server does not hold the key --server-key names ({e})"
        ))
    })?;
    let n = hs
        .write_message(&[], &mut out)
        .map_err(noise_err("handshake"))?;
    io.write_msg(&out[..n])?;
    let noise = hs
        .into_stateless_transport_mode()
        .map_err(noise_err("handshake"))?;
    Ok(NoiseTransport::new(stream, noise))
}
