//! The loss and delivery estimates: what the receiver's counters say about
//! the path.
//!
//! Owns the two loss estimates the sender keeps — a moving one the
//! congestion controller and the end-of-stream copies use, and a high one
//! over the last [`LOSS_MEMORY_PACKETS`] that sizes the tail codes'
//! parity — and the delivery rate they imply. Both come from the counts
//! every feedback carries: authenticated datagrams received and the
//! highest packet number seen. It never reads a clock or acts on an
//! estimate; the sender passes the counts in and reads the figures out.

/// Packet numbers a loss sample spans at least.
const LOSS_SAMPLE_PACKETS: u64 = 16;
/// Packets the high loss estimate for parity sizing remembers, about.
pub(super) const LOSS_MEMORY_PACKETS: f64 = 16384.0;

/// Loss measured from the receiver's counts.
#[derive(Clone, Debug, Default)]
pub(super) struct LossEstimator {
    /// The moving estimate.
    loss: f64,
    /// The counts (received, highest) the moving estimate last sampled at.
    last_counts: Option<(u64, u64)>,
    /// Recent loss, a high estimate, from decaying counts of packets lost
    /// and spanned, and the feedback counters they were last taken at
    /// (received, highest + 1).
    high: f64,
    window: (f64, f64),
    seen: (u64, u64),
}

impl LossEstimator {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Folds in the receiver's counts: `received` authenticated datagrams
    /// and `highest_pn`, the highest packet number seen.
    pub(super) fn on_counts(&mut self, received: u64, highest_pn: u64) {
        // Authenticated arrivals against packet numbers spanned. Counts
        // accumulate over feedback until they span enough packets: at a
        // low rate each interval holds only a few, and an estimate that
        // skipped those would freeze (a flow squeezed to a trickle right
        // after heavy loss kept "62 % loss" and kept cutting).
        match self.last_counts {
            Some((p0, h0)) => {
                let dp = received.saturating_sub(p0);
                let dh = highest_pn.saturating_sub(h0);
                if dh >= LOSS_SAMPLE_PACKETS {
                    let inst = 1.0 - (dp as f64 / dh as f64).min(1.0);
                    self.loss = 0.75 * self.loss + 0.25 * inst;
                    self.last_counts = Some((received, highest_pn));
                }
            }
            None => self.last_counts = Some((received, highest_pn)),
        }
        // Over about the last LOSS_MEMORY_PACKETS, as a high estimate
        // (about the 97.5 % Poisson bound): parity sizing needs one that
        // neither dips with the moving estimate nor trusts a few round
        // trips of data (the first group of a short transfer is coded
        // early), and that forgets the losses of startup's overshoot.
        let (p0, h0) = self.seen;
        let spanned = highest_pn.saturating_add(1).saturating_sub(h0) as f64;
        let arrived = received.saturating_sub(p0) as f64;
        if spanned > 0.0 {
            let keep = (1.0 - spanned / LOSS_MEMORY_PACKETS).max(0.0);
            let (lost, sent) = &mut self.window;
            *lost = *lost * keep + (spanned - arrived).max(0.0);
            *sent = *sent * keep + spanned;
            self.high = ((*lost + 2.0 * lost.sqrt() + 2.0) / *sent).min(1.0);
            self.seen = (received, highest_pn.saturating_add(1));
        }
    }

    /// The moving estimate, a share of datagrams lost.
    pub(super) fn current(&self) -> f64 {
        self.loss
    }

    /// The high estimate over the last [`LOSS_MEMORY_PACKETS`] or so.
    pub(super) fn high(&self) -> f64 {
        self.high
    }

    /// The receiver's counts as its freshest feedback reported them: the
    /// authentic datagrams it took, and the packet numbers up to the
    /// highest it saw (both 0 before any feedback).
    pub(super) fn peer_counts(&self) -> (u64, u64) {
        self.seen
    }

    /// The rate the path delivers when it delivers `arrival_rate` at the
    /// receiver: lost datagrams were delivered as far as the loss, so the
    /// arrivals are scaled up by the moving estimate (at most twofold).
    pub(super) fn delivery_rate(&self, arrival_rate: u64) -> u64 {
        (arrival_rate as f64 / (1.0 - self.loss.min(0.5))) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_loss_is_measured_until_a_sample_spans_enough_packets() {
        let mut l = LossEstimator::new();
        l.on_counts(0, 0);
        l.on_counts(5, 9);
        assert_eq!(l.current(), 0.0, "nine packets are too few a sample");
        l.on_counts(8, 16);
        assert!((l.current() - 0.25 * 0.5).abs() < 1e-12, "{}", l.current());
        assert_eq!(l.peer_counts(), (8, 17));
    }

    #[test]
    fn the_high_estimate_bounds_the_moving_one_and_forgets_old_loss() {
        let mut l = LossEstimator::new();
        l.on_counts(0, 0);
        // 10 % loss for a while.
        for i in 1..=100u64 {
            l.on_counts(i * 90, i * 100);
        }
        assert!((l.current() - 0.1).abs() < 0.01, "{}", l.current());
        assert!(l.high() > l.current() && l.high() < 0.15, "{}", l.high());
        // Then none, for ten times the memory.
        let (p, h) = (100 * 90, 100 * 100);
        for i in 1..=2000u64 {
            l.on_counts(p + i * 100, h + i * 100);
        }
        assert!(l.current() < 1e-6);
        assert!(l.high() < 0.001, "{}", l.high());
    }

    #[test]
    fn delivery_scales_arrivals_by_the_loss_at_most_twofold() {
        let mut l = LossEstimator::new();
        assert_eq!(l.delivery_rate(1000), 1000);
        l.loss = 0.2;
        assert_eq!(l.delivery_rate(1000), 1250);
        l.loss = 0.9;
        assert_eq!(l.delivery_rate(1000), 2000);
    }
}
