//! The fixed-rate controller: send at the configured rate whatever happens.
//!
//! For dedicated links and for measuring the protocol itself. It ignores
//! every path signal (loss, delay); only the receiver's separate
//! back-pressure ceiling, applied by the sender, can slow it down.

use std::time::Instant;

use super::{Controller, PathSample};

/// Configuration of [`Fixed`].
#[derive(Clone, Debug, PartialEq)]
pub struct FixedConfig {
    /// Datagram bytes per second.
    pub rate: u64,
}

/// Constant rate.
#[derive(Debug)]
pub struct Fixed {
    rate: u64,
}

impl Fixed {
    pub fn new(config: FixedConfig) -> Self {
        Fixed {
            rate: config.rate.max(1),
        }
    }
}

impl Controller for Fixed {
    fn on_feedback(&mut self, _now: Instant, _sample: &PathSample) {}

    fn rate(&self) -> u64 {
        self.rate
    }
}
