//! What the UDP data phases of a session measured of the network path.
//!
//! Owns the sum over a session's phases of the sender's end-of-phase
//! counters, as it crosses the wire in [`super::msg::Msg::SenderDone`],
//! and the figures the report shows. It never measures anything itself:
//! the counts come from [`crate::proto::sender::SenderStats`].

use serde::{Deserialize, Serialize};

use crate::proto::sender::SenderStats;

/// Datagram counts and round-trip time of the UDP data phases of one
/// session, summed over its rounds (bulk runs of the manifest and chunk
/// lists are not counted: they are not the data).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkFigures {
    /// Datagrams the sender numbered, in each phase up to the highest
    /// packet number the receiver saw (the receiver's count as its last
    /// feedback reported it). Datagrams still in flight when a phase ended
    /// are in neither count.
    pub datagrams: u64,
    /// Of those, the ones the receiver did not take: lost on the path, or
    /// dropped by the receiver itself while its disk fell behind (the
    /// sender cannot tell the two apart, and resends both).
    pub lost: u64,
    /// The sender's smoothed round-trip time (RFC 6298, from the echoes in
    /// the receiver's feedback less their hold: queueing on the path and in
    /// the socket buffers included) at the end of the last phase that
    /// measured one, in microseconds.
    pub srtt_us: Option<u64>,
}

impl LinkFigures {
    /// Adds one phase, from the sender's stats at its end.
    pub fn add_phase(&mut self, s: &SenderStats) {
        self.datagrams += s.peer_spanned;
        self.lost += s.peer_spanned.saturating_sub(s.peer_received);
        if s.rtt_measured {
            self.srtt_us = Some(u64::try_from(s.srtt.as_micros()).unwrap_or(u64::MAX));
        }
    }

    /// The phases' mean loss: datagrams lost per datagram numbered, in
    /// percent (`None` before the receiver reported any).
    pub fn loss_pct(&self) -> Option<f64> {
        (self.datagrams > 0).then(|| self.lost as f64 * 100.0 / self.datagrams as f64)
    }

    /// The round-trip time at the end, in milliseconds.
    pub fn rtt_ms(&self) -> Option<f64> {
        self.srtt_us.map(|us| us as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn phase(spanned: u64, received: u64, srtt_ms: Option<u64>) -> SenderStats {
        SenderStats {
            peer_spanned: spanned,
            peer_received: received,
            srtt: Duration::from_millis(srtt_ms.unwrap_or(100)),
            rtt_measured: srtt_ms.is_some(),
            ..SenderStats::default()
        }
    }

    /// Loss is weighted by datagrams over all phases, not a mean of the
    /// phases' percentages; the RTT is the last one measured, never the
    /// sender's initial guess.
    #[test]
    fn phases_add_up_by_datagrams_and_keep_the_last_measured_rtt() {
        let mut f = LinkFigures::default();
        assert_eq!((f.loss_pct(), f.rtt_ms()), (None, None));
        f.add_phase(&phase(0, 0, None));
        assert_eq!((f.loss_pct(), f.rtt_ms()), (None, None));
        f.add_phase(&phase(1000, 990, Some(40)));
        f.add_phase(&phase(100, 50, Some(42)));
        f.add_phase(&phase(900, 900, None));
        assert_eq!(f.datagrams, 2000);
        assert_eq!(f.lost, 60);
        assert_eq!(f.loss_pct(), Some(3.0));
        assert_eq!(f.rtt_ms(), Some(42.0));
    }
}
