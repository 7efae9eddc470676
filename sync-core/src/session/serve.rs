//! The serving end of a remote session (`sluice serve --stdio`).
//!
//! A server reads the initiator's hello, takes the other role, and runs that
//! half on the path the hello names; then it waits for the next hello on
//! the same connection (a watch's next round) until the client hangs up. Over ssh the login already decided
//! what the user may touch, so the path is taken as given (relative paths
//! are relative to the login folder, as with rsync and scp).

use std::io::{Read, Write};
use std::path::PathBuf;

use super::msg::Role;
use super::{
    next_hello, read_hello, run_receiver, run_sender, Opening, Side, StreamTransport, SyncReport,
    Transport,
};
use crate::error::{Error, ProtocolError, Result};

/// Written by a stdio server before anything else, so a client can tell a
/// sluice server from a remote shell that printed a banner on stdout.
pub const PREAMBLE: &[u8; 16] = b"\0sluice-serve-1\n";

/// Serves sessions over stdin/stdout, one after another (a watch runs one
/// per round on the same connection), until the client closes it; returns
/// the last session's report.
pub fn serve_stdio<R: Read + Send, W: Write + Send + 'static>(
    input: R,
    mut output: W,
    threads: usize,
    udp_ports: std::ops::RangeInclusive<u16>,
) -> Result<SyncReport> {
    output
        .write_all(PREAMBLE)
        .map_err(|e| Error::io("<stdout>", e))?;
    output.flush().map_err(|e| Error::io("<stdout>", e))?;
    let mut t = StreamTransport::new(input, output);
    let first = read_hello(&mut t)?;
    let (path, role) = (first.path.clone(), first.role);
    // Destination locks last as long as the connection (a watch's rounds).
    let locks = super::lock::Locks::default();
    let mut report = serve_one(&mut t, first, threads, &udp_ports, &locks)?;
    while let Some(hello) = next_hello(&mut t)? {
        if hello.path != path || hello.role != role {
            let e: Error = ProtocolError::invalid(
                "Hello",
                "a later session on this connection names another folder or role",
            )
            .into();
            let _ = t.send(&super::msg::Msg::Error(e.to_string()));
            return Err(e);
        }
        report = serve_one(&mut t, hello, threads, &udp_ports, &locks)?;
    }
    Ok(report)
}

/// Serves the session `hello` opens.
fn serve_one(
    t: &mut dyn Transport,
    hello: super::msg::Hello,
    threads: usize,
    udp_ports: &std::ops::RangeInclusive<u16>,
    locks: &super::lock::Locks,
) -> Result<SyncReport> {
    let Some(path) = hello.path.clone() else {
        return Err(ProtocolError::invalid("Hello", "no folder named").into());
    };
    if path.is_empty() {
        return Err(ProtocolError::invalid("Hello", "an empty folder path").into());
    }
    use std::os::unix::ffi::OsStringExt;
    let root = PathBuf::from(std::ffi::OsString::from_vec(path.into_vec()));
    // Over ssh, the client's address is in SSH_CONNECTION ("ip port ip port").
    let peer = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|v| v.split_whitespace().next().and_then(|ip| ip.parse().ok()));
    let side = |root: PathBuf| Side {
        root,
        index: None,
        threads,
        progress: None,
        udp: super::UdpSide::remote(peer, udp_ports.clone()),
        locks: locks.clone(),
    };
    match hello.role {
        Role::Sender => {
            // The client sends: we receive into `root`.
            if root.exists() && !root.is_dir() {
                let e = Error::Usage(format!(
                    "destination {} exists and is not a folder",
                    root.display()
                ));
                let _ = t.send(&super::msg::Msg::Error(e.to_string()));
                return Err(e);
            }
            let root = if root.exists() {
                std::fs::canonicalize(&root).map_err(|e| Error::io(&root, e))?
            } else {
                root
            };
            run_receiver(t, &side(root), Opening::Answer(Some(hello)))
        }
        Role::Receiver => {
            let canon = std::fs::canonicalize(&root).ok().filter(|p| p.is_dir());
            let Some(root) = canon else {
                let e = Error::Usage(format!("source {} is not a folder", root.display()));
                let _ = t.send(&super::msg::Msg::Error(e.to_string()));
                return Err(e);
            };
            run_sender(t, &side(root), Opening::Answer(Some(hello)))
        }
    }
}
