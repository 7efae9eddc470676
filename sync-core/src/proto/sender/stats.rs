//! What a sender reports: [`SenderStats`].
//!
//! Owns the counters progress displays, the session's figures and tests
//! read; the sender fills them in as it goes and completes a copy with its
//! estimates when asked ([`Sender::stats`](super::Sender::stats)).

use std::time::Duration;

/// Counters for progress displays and tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SenderStats {
    pub datagrams: u64,
    pub bytes: u64,
    pub new_blocks: u64,
    /// Blocks sent again because the receiver NAKed them.
    pub retransmissions: u64,
    /// Blocks sent again by a tail pass (unconfirmed, hold expired).
    pub pass_resends: u64,
    /// Blocks sent again speculatively at the end of the stream, while
    /// their previous copy was still in flight.
    pub speculative: u64,
    /// Parity shards of the tail codes sent.
    pub parity: u64,
    /// Bytes the last tail code covers (encoded as the last new block
    /// went: what encoding delays the end by).
    pub last_coded_bytes: u64,
    pub feedback: u64,
    pub stale_feedback: u64,
    /// Control datagrams from the receiver taken (fresh or stale).
    pub control_datagrams: u64,
    /// Datagrams that arrived on the sending socket and were dropped
    /// (foreign, forged, replayed, malformed).
    pub dropped_datagrams: u64,
    pub blocks_confirmed: u64,
    pub srtt: Duration,
    /// False while `srtt` is still the configured guess (no sample yet).
    pub rtt_measured: bool,
    pub rate: u64,
    pub loss: f64,
    /// The receiver's counts as its freshest feedback reported them: the
    /// authentic datagrams it took, and the packet numbers up to the
    /// highest it saw (both 0 before any feedback). The difference is
    /// what did not reach it (lost, or dropped by a receiver whose disk
    /// fell behind).
    pub peer_received: u64,
    pub peer_spanned: u64,
}
