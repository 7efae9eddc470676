//! The sluice daemon (`sluice serve --listen`) and its client.
//!
//! A daemon serves named folders ("modules") to clients that prove who they
//! are. It owns key files ([`keys`]), its TOML configuration ([`config`]),
//! the handshake ([`handshake`]), the encrypted wire ([`noise`]), the shared
//! rate limit ([`rate`]), the accept loop with authorization and confinement
//! ([`server`]), and the client's connect ([`client`]). It never touches a tree itself: once a
//! request is admitted, the ordinary session halves ([`crate::session`]) run
//! over a [`noise::NoiseTransport`], exactly as they do over ssh.
//!
//! # Authentication
//! `Noise_XK_25519_ChaChaPoly_BLAKE2s` via `snow`; no cryptography of our
//! own. The client pins the server's public key (`--server-key`); the server
//! learns the client's static key at the end of the handshake and only then,
//! once the client has named its module, checks the key against the
//! module's `allowed_keys` and access mode. Every refusal (unknown module,
//! key not allowed, wrong access mode) is the same "access denied", so a
//! client learns nothing about which modules exist.
//!
//! # Confinement
//! A request names `module/sub/path`. The sub path must pass
//! [`crate::path::RelPath::new`] (no `..`, no absolute path, no empty
//! component), no existing component may be a symlink, and the canonical
//! result must lie in the canonical module root ([`server::resolve`]).
//! Inside that root the session layer never follows a symlink: the
//! scanner, the sender and the receiver all reach the tree through
//! [`crate::fs`], which opens every path one component at a time relative
//! to a folder's descriptor with `O_NOFOLLOW`; received manifests must form a tree of folders
//! ([`crate::session::msg::check_tree`]). A symlink in a module is copied as
//! a symlink (its target text), never followed. Concurrent local changes to
//! the module folder by other users of the server are out of scope.
//!
//! # Versions
//! Before the handshake each side sends a plain-text preamble with the
//! daemon protocol version, capability bits and its software version; a
//! mismatch ends the connection with one line naming both versions on both
//! sides. The preambles are the handshake's prologue, so they cannot be
//! altered in transit. The session's own `Hello` then checks the session
//! protocol version as over ssh.
//!
//! # Limits
//! `max_connections` concurrent connections; `idle_timeout_secs` for the
//! handshake and the request; `max_rate` paces all connections' bytes
//! together. `udp_ports` is the range a daemon session hands to the UDP
//! block transport ([`crate::session::UdpSide`]): chunks travel as UDP
//! datagrams beside the Noise connection (which offers
//! `Transport::split`, so the data phase's control messages flow while
//! blocks arrive), with the phase's secret exchanged inside the Noise
//! session; `max_rate` paces the Noise connections only, UDP data is paced
//! by the sending side's rate and policy.

pub mod client;
pub mod config;
pub mod handshake;
pub mod keys;
pub mod noise;
pub mod rate;
pub mod server;

/// The port a `sluice://host/...` address uses when it names none.
pub const DEFAULT_PORT: u16 = 7000;
