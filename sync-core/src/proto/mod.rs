//! The sans-IO block transport: sluice's UDP data path, minus the I/O.
//!
//! This module owns the protocol that moves one *stream* — the chunks a plan
//! needs, laid end to end ([`layout`]) — from a [`Sender`] to a [`Receiver`]
//! over datagrams, with feedback over a reliable control channel, in the
//! spirit of FASP, Tsunami and StarBurst MFTP: the sender paces blocks at a
//! rate chosen by a congestion [`Controller`](congestion::Controller) and
//! never stops to wait for acknowledgements; the receiver keeps a bitmap of
//! what it holds and sends selective NAKs; the sender repairs NAKed blocks
//! first and, once everything was sent, makes passes over whatever is still
//! unconfirmed until the receiver has verified every chunk. The last round
//! trip's blocks are also covered by a Reed-Solomon code whose parity goes
//! out right after the last new block ([`fec`]), so losses there rarely
//! cost the round trip a NAK would.
//!
//! Nothing here opens a socket, reads a clock or touches a file. Every input
//! is a method taking `now: Instant` (`handle_datagram`, `handle_control`,
//! `handle_timeout`, `handle_chunk_verified`); every output is polled
//! (`poll_transmit`, `poll_feedback`/`poll_control`, `poll_timeout`,
//! `poll_event`). That makes the whole protocol testable in virtual time
//! (`sim`, built for tests and benches only) and leaves sockets, batching and sleeping to [`crate::net`].
//!
//! Data flow:
//! ```text
//!  BlockSource ─▶ Sender ──datagrams (wire + crypto)──▶ Receiver ─▶ Delivery (driver writes)
//!                   ▲                                        │
//!                   └──── ControlMsg::Feedback (control) ◀───┘   Event::ChunkComplete ─▶ verify
//! ```
//! Every datagram is sealed with AES-256-GCM ([`crypto`]) under per-direction
//! keys derived from a session secret the session layer exchanges; forged,
//! replayed, foreign and garbage datagrams are dropped and counted.

pub mod bitmap;
pub mod congestion;
pub mod control;
pub mod control_datagram;
pub mod crypto;
pub mod fec;
pub mod frame;
pub mod layout;
pub mod pacer;
pub mod receiver;
pub mod replay;
pub mod rtt;
pub mod sender;
#[cfg(any(test, feature = "sim"))]
#[doc(hidden)]
pub mod sim;
pub mod source;
pub mod wire;

#[cfg(test)]
mod tests;

pub use congestion::{CongestionConfig, FairConfig, FixedConfig};
pub use control::{ControlError, ControlMsg, Feedback, SenderStatus};
pub use crypto::{Cipher, SessionSecret};
pub use fec::{Recovered, TailCode};
pub use frame::{FrameDecoder, FrameError};
pub use layout::{ChunkSpec, Layout, LayoutConfig, LayoutError};
pub use receiver::{
    Delivery, Event as ReceiverEvent, Placed, Receiver, ReceiverConfig, ReceiverStats,
};
pub use sender::{Event as SenderEvent, Sender, SenderConfig, SenderStats, TailCoding};
pub use source::BlockSource;
pub use wire::DatagramError;
