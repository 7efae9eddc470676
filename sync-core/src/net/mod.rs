//! Drivers: real sockets, threads and clocks around the sans-IO protocol.
//!
//! This module owns everything [`crate::proto`] refuses to do: UDP sockets
//! ([`socket`]: port ranges, big buffers, `sendmmsg`/`recvmmsg` batches;
//! [`offload`]: GSO/GRO batches of up to 64 datagrams per message),
//! sleeping precisely ([`clock`]), the control channel abstraction
//! ([`link::ControlLink`]) and the choice between it and control datagrams
//! ([`control_path`]), and the two thread loops, [`run_sender`] and
//! [`run_receiver`], that drive the state machines. It never decides what
//! to send, when, or how fast: every such decision is the state machine's.
//!
//! A session uses it like this (both sides hold the same layout and secret):
//! ```text
//! receiver: socket = bind_in_range(ip, ports); tell the peer its port
//!           run_receiver(&socket, Receiver::new(..), layout, sink, &mut link)
//! sender:   socket = bind_in_range(ip, 0..=0)
//!           run_sender(&socket, peer, Sender::new(..), &mut source, &mut link)
//! ```

pub mod clock;
pub mod control_path;
pub mod link;
pub mod offload;
pub mod receiver;
pub mod sender;
pub mod socket;

#[cfg(test)]
mod tests;

pub use link::{channel_pair, ChannelLink, ControlLink, StreamLink};
pub use receiver::{run_receiver, BlockSink, ReceiveReport};
pub use sender::run_sender;
pub use socket::{bind_in_range, set_buffers, BufferSizes};
