//! How a session opens: the two halves exchange hellos (protocol version,
//! role, options, capabilities), and a connection that carries several
//! sessions in turn (a watch's rounds) waits for the next hello between
//! them. Nothing here moves tree data.

use super::msg;
use super::{SessionOptions, Transport};
use crate::error::{Error, ProtocolError, Result};

/// Checks the peer's hello against ours.
pub(super) fn check_hello(peer: &msg::Hello, expect_role: msg::Role) -> Result<()> {
    if peer.version != msg::PROTOCOL_VERSION {
        return Err(Error::Version(format!(
            "incompatible peer: it runs {} (protocol {}), this is sluice {} (protocol {})",
            peer.software,
            peer.version,
            env!("CARGO_PKG_VERSION"),
            msg::PROTOCOL_VERSION
        )));
    }
    if peer.role != expect_role {
        return Err(ProtocolError::invalid(
            "Hello",
            format!("the peer wants to be the {:?} too", peer.role),
        )
        .into());
    }
    Ok(())
}

pub(super) fn hello(role: msg::Role, options: &SessionOptions, path: Option<Vec<u8>>) -> msg::Msg {
    msg::Msg::Hello(msg::Hello {
        version: msg::PROTOCOL_VERSION,
        software: format!("sluice {}", env!("CARGO_PKG_VERSION")),
        role,
        options: options.clone(),
        path: path.map(serde_bytes::ByteBuf::from),
        capabilities: msg::CAPABILITIES.iter().map(|c| c.to_string()).collect(),
    })
}

/// What the two hellos settled.
pub(crate) struct Negotiated {
    pub options: SessionOptions,
    /// The peer's capabilities.
    pub peer_caps: Vec<String>,
}

impl Negotiated {
    /// True when the peer can take chunks over UDP.
    pub fn peer_has(&self, cap: &str) -> bool {
        self.peer_caps.iter().any(|c| c == cap)
    }
}

/// How a half starts its session.
#[derive(Clone, Debug)]
pub enum Opening {
    /// This side started the session: it sends the options (and, to a
    /// server, the path the server should work on) in its hello.
    Initiate {
        options: SessionOptions,
        remote_path: Option<Vec<u8>>,
    },
    /// This side answers: the peer's hello was already read (by a server
    /// deciding its role) or is read now (`None`).
    Answer(Option<msg::Hello>),
}

impl Opening {
    /// Exchanges hellos as `role`; returns the session's options and the
    /// peer's capabilities.
    pub(crate) fn open(self, t: &mut dyn Transport, role: msg::Role) -> Result<Negotiated> {
        self.open_checked(t, role, |_| Ok(()))
    }

    /// [`Opening::open`], with `check` run on the session's options before
    /// this side says hello (a receiver takes its lock there); a
    /// [`Error::LockBusy`] from it is told to the peer instead of a hello.
    pub(crate) fn open_checked(
        self,
        t: &mut dyn Transport,
        role: msg::Role,
        check: impl FnOnce(&SessionOptions) -> Result<()>,
    ) -> Result<Negotiated> {
        let peer_role = match role {
            msg::Role::Sender => msg::Role::Receiver,
            msg::Role::Receiver => msg::Role::Sender,
        };
        match self {
            Opening::Initiate {
                options,
                remote_path,
            } => {
                let options = options.settle_window();
                check(&options)?;
                t.send(&hello(role, &options, remote_path))?;
                let peer = read_hello(t)?;
                check_hello(&peer, peer_role)?;
                Ok(Negotiated {
                    options,
                    peer_caps: peer.capabilities,
                })
            }
            Opening::Answer(peer) => {
                let peer = match peer {
                    Some(h) => h,
                    None => read_hello(t)?,
                };
                if let Err(e) = check_hello(&peer, peer_role) {
                    // Tell the peer why, in its own terms, before giving up.
                    let _ = t.send(&hello(role, &peer.options, None));
                    return Err(e);
                }
                if let Err(e) = check(&peer.options) {
                    if let Error::LockBusy(why) = &e {
                        let _ = t.send(&msg::Msg::Busy(why.clone()));
                    }
                    return Err(e);
                }
                t.send(&hello(role, &peer.options, None))?;
                Ok(Negotiated {
                    options: peer.options,
                    peer_caps: peer.capabilities,
                })
            }
        }
    }
}

/// Reads the peer's hello.
pub fn read_hello(t: &mut dyn Transport) -> Result<msg::Hello> {
    match t.recv()? {
        msg::Msg::Hello(h) => Ok(h),
        msg::Msg::Busy(why) => Err(Error::LockBusy(why)),
        msg::Msg::Error(e) if e == crate::daemon::server::ACCESS_DENIED => Err(Error::Refused(e)),
        msg::Msg::Error(e) => Err(Error::Peer(e)),
        other => Err(ProtocolError::unexpected("Hello", other.name()).into()),
    }
}

/// What an answering side waits for after a session: the initiator's
/// next hello on the same connection (the next round of a watch; the
/// transport drops its keepalives meanwhile). `None` when the initiator
/// closed the connection (or it failed: with the session done, there is
/// nothing to lose).
pub fn next_hello(t: &mut dyn Transport) -> Result<Option<msg::Hello>> {
    match t.recv() {
        Ok(msg::Msg::Hello(h)) => Ok(Some(h)),
        Ok(msg::Msg::Error(e)) => Err(Error::Peer(e)),
        Ok(other) => Err(ProtocolError::unexpected("Hello between sessions", other.name()).into()),
        Err(e) => {
            tracing::debug!("connection over after a session: {e}");
            Ok(None)
        }
    }
}
