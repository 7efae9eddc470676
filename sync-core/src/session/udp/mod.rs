//! The UDP data phase of a session round: when a round uses UDP, and the
//! pieces both halves share (the stream's layout, the cipher, socket sizes).
//!
//! When a round goes over UDP, the receiver binds a socket, announces its
//! port and a fresh secret in `NeedDone`, and both halves run the
//! [`crate::net`] drivers around the [`crate::proto`] state machines. Their
//! feedback travels as datagrams beside the data, and copies of it
//! (`Msg::Proto`) on the session's control connection, in both directions
//! at once. Each side ends its phase with `DataDone`; a reader thread per
//! side forwards the peer's messages until the peer's `DataDone` arrives,
//! so after the phase the connection is back in plain request/response
//! order. A writer thread per side sends ours, keeping only the newest
//! while the connection is slow ([`mailbox::Mailbox`]): a TCP connection
//! stalled by loss never stops the socket threads.
//!
//! The receiver assembles chunks as their blocks arrive and hands each
//! verified chunk to the apply engine at once, so files are written while
//! the transfer runs.
//!
//! - [`receive`]: the receiving half (socket, offer, driver run);
//! - [`assembly`]: chunks assembled from blocks, handed to the apply engine;
//! - [`send`]: the sending half (socket, congestion controller, driver run);
//! - [`link`]: the control link over the split session transport;
//! - [`mailbox`]: the one-message mailbox in front of the writer thread.
//!
//! This module never reads or writes the session's messages outside a
//! phase, and never decides a round's chunks: the halves hand them in.

mod assembly;
mod link;
mod mailbox;
mod receive;
mod send;

use std::sync::Arc;
use std::time::Duration;

use super::msg::{Need, UdpOffer};
use super::{DataOptions, Side, TransportChoice};
use crate::error::{Error, Result};
use crate::proto::crypto::Cipher;
use crate::proto::layout::{ChunkSpec, Layout, LayoutConfig};

pub use receive::{prepare, receive, receive_into};
pub use send::send;

/// Socket buffer size asked of the kernel (it may cap it; the driver logs).
const SOCKET_BUFFER: usize = 32 << 20;
/// In `auto`, a receiver that hears nothing for this long falls back to
/// the control connection.
pub const AUTO_FALLBACK: Duration = Duration::from_secs(5);

/// Whether this round should use UDP, given the options and the sides.
pub fn wanted(data: &DataOptions, side: &Side, has_split: bool) -> bool {
    match data.transport {
        TransportChoice::Tcp => false,
        TransportChoice::Udp => true,
        TransportChoice::Auto => has_split && !side.udp.local,
    }
}

fn layout(needs: &[Need], packet_size: u16, ip_overhead: u16) -> Result<Arc<Layout>> {
    let specs = needs
        .iter()
        .map(|n| ChunkSpec {
            len: n.length,
            hash: n.hash.0,
        })
        .collect();
    let cfg = LayoutConfig {
        packet_size: packet_size as usize,
        ip_overhead: ip_overhead as usize,
    };
    Layout::new(cfg, specs)
        .map(Arc::new)
        .map_err(|e| Error::Usage(format!("cannot lay out the UDP stream: {e}")))
}

fn cipher(encrypt: bool) -> Cipher {
    if encrypt {
        Cipher::Aes256Gcm
    } else {
        Cipher::None
    }
}

/// The layout of a phase that carries `needs` on `offer`.
pub fn offer_layout(needs: &[Need], offer: &UdpOffer) -> Result<Arc<Layout>> {
    layout(needs, offer.packet_size, offer.ip_overhead)
}
