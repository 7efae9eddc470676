//! What the receiver hands its driver: new blocks to write ([`Delivery`],
//! [`Placed`]) and [`Event`]s to act on.
//!
//! Plain data; it never decides anything.

#[cfg(doc)]
use super::{Receiver, ReceiverConfig, MAX_CHUNK_FAILURES};

/// A new block for the driver to write.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivery<'a> {
    pub block: u64,
    pub stream_offset: u64,
    pub data: &'a [u8],
}

/// A new block [`Receiver::handle_datagram_into`] decrypted into the
/// caller's buffer: its first `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Placed {
    pub block: u64,
    pub stream_offset: u64,
    pub len: usize,
}

/// Things the driver must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Every block of this chunk has been delivered: hash it and call
    /// [`Receiver::handle_chunk_verified`].
    ChunkComplete(usize),
    /// Every chunk arrived and verified.
    Complete,
    /// This chunk failed verification [`MAX_CHUNK_FAILURES`] times.
    ChunkUnverifiable(usize),
    /// Nothing authentic arrived for [`ReceiverConfig::idle_timeout`].
    TimedOut,
}
