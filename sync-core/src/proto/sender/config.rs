//! What the driver sets for a sender: [`SenderConfig`] and [`TailCoding`].
//!
//! Owns the protocol tuning a session chooses per transfer and its
//! defaults; the constants that are not the session's to choose live
//! beside the code they tune.

use std::time::Duration;

use crate::proto::congestion::CongestionConfig;
use crate::proto::crypto::Cipher;

/// Sender tuning.
#[derive(Clone, Debug, PartialEq)]
pub struct SenderConfig {
    pub cipher: Cipher,
    pub congestion: CongestionConfig,
    /// RTT assumed until the first echo arrives.
    pub initial_rtt: Duration,
    /// How often a status message goes out (it doubles as a keepalive).
    pub status_interval: Duration,
    /// Give up when no feedback arrives for this long.
    pub idle_timeout: Duration,
    /// Whether the end of the stream gets tail codes.
    pub tail_coding: TailCoding,
}

/// When the sender covers the end of the stream with tail codes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TailCoding {
    /// Where coding saves more time than it costs (not on loopback).
    #[default]
    Auto,
    /// Always (tests of the coding itself on fast paths).
    Always,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            cipher: Cipher::Aes256Gcm,
            congestion: CongestionConfig::default(),
            initial_rtt: Duration::from_millis(100),
            status_interval: Duration::from_millis(250),
            idle_timeout: Duration::from_secs(30),
            tail_coding: TailCoding::Auto,
        }
    }
}
