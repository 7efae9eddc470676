//! The receiver's counters, for the driver to read and report.
//!
//! Plain data; the state machine bumps them and never reads them back.

/// Counters; dropped datagrams are counted by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    pub datagrams: u64,
    pub bytes: u64,
    pub blocks: u64,
    pub duplicates: u64,
    pub malformed: u64,
    pub foreign: u64,
    pub auth_failed: u64,
    pub replayed: u64,
    pub chunk_failures: u64,
    pub feedback_sent: u64,
    /// Control datagrams (the sender's status) taken.
    pub control: u64,
    /// Parity shards of tail codes taken.
    pub parity: u64,
    /// Blocks the tail codes rebuilt.
    pub recovered: u64,
    /// Bytes covered by the tail codes decoded (what decoding cost).
    pub decoded_bytes: u64,
    /// Blocks copied for the tail codes (those the sender's status did not
    /// rule out).
    pub kept: u64,
}
