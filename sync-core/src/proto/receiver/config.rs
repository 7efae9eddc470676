//! The receiver's tuning: what the driver sets ([`ReceiverConfig`]) and the
//! fixed limits of its rate measurement and chunk retries.
//!
//! Plain data; it never holds state of a transfer.

use std::time::Duration;

use crate::proto::crypto::Cipher;

/// Times a chunk may fail verification before the transfer gives up (the
/// source is probably changing under the sender).
pub const MAX_CHUNK_FAILURES: u8 = 3;
/// Window over which the arrival rate is measured until the sender reports
/// a round trip time, and the longest it gets.
pub(super) const RATE_WINDOW: Duration = Duration::from_millis(50);
/// Shortest rate window: at most a few hundred microseconds of jitter from
/// batched receives and thread scheduling against it.
pub(super) const MIN_RATE_WINDOW: Duration = Duration::from_millis(5);
/// The rate window spans this many round trips (within the bounds above):
/// half of the sender's startup doubling period
/// ([`STARTUP_RTTS`](crate::proto::congestion::fair::STARTUP_RTTS)), so that the
/// rate it reports when startup ends is that of a fraction of a doubling
/// earlier (about two round trips: half the window, plus the way back). A
/// fixed 50 ms window lagged five doublings on loopback, where startup
/// doubles every 10 ms, and once reported a seventieth of the rate.
pub(super) const RATE_WINDOW_RTTS: u32 = 3;

/// Receiver tuning.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiverConfig {
    pub cipher: Cipher,
    /// Time between feedback messages while the transfer runs.
    pub feedback_interval: Duration,
    /// A gap is only NAKed once this many higher blocks have arrived (until
    /// the sender says everything was sent), so mild reordering is not
    /// mistaken for loss.
    pub reorder_threshold: u64,
    /// Give up when nothing authentic arrives for this long.
    pub idle_timeout: Duration,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            cipher: Cipher::Aes256Gcm,
            feedback_interval: Duration::from_millis(5),
            reorder_threshold: 64,
            idle_timeout: Duration::from_secs(30),
        }
    }
}
