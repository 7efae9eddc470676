//! Which packets a path loses before they reach its queue: independent
//! random loss and Gilbert-Elliott burst loss, both drawn from the path's
//! seeded [`Rng`]. A lost packet takes no link capacity, as on a real path
//! where loss (radio, a congested hop upstream) happens before our
//! bottleneck. Owns no packets and no clock.

use crate::config::GilbertElliottConfig;
use crate::rng::Rng;

/// The two-state Markov chain of Gilbert-Elliott loss.
#[derive(Debug, Clone)]
pub struct GilbertElliott {
    config: GilbertElliottConfig,
    bad: bool,
}

impl GilbertElliott {
    /// Starts in the good state.
    pub fn new(config: GilbertElliottConfig) -> GilbertElliott {
        GilbertElliott { config, bad: false }
    }

    /// Decides one packet: lost with the current state's probability, then
    /// the chain takes one step (the order netem's `gemodel` uses).
    pub fn handle_packet(&mut self, rng: &mut Rng) -> bool {
        let c = &self.config;
        let lost = rng.chance(if self.bad { c.loss_bad } else { c.loss_good });
        self.bad = if self.bad {
            !rng.chance(c.r)
        } else {
            rng.chance(c.p)
        };
        lost
    }

    pub fn is_bad(&self) -> bool {
        self.bad
    }
}

/// Random loss followed by optional burst loss; a packet is lost if
/// either loses it.
#[derive(Debug, Clone)]
pub struct LossModel {
    random: f64,
    burst: Option<GilbertElliott>,
}

impl LossModel {
    pub fn new(random: f64, burst: Option<GilbertElliottConfig>) -> LossModel {
        LossModel {
            random,
            burst: burst.map(GilbertElliott::new),
        }
    }

    pub fn handle_packet(&mut self, rng: &mut Rng) -> bool {
        let random = rng.chance(self.random);
        // The chain steps on every packet, lost or not, so that its bursts
        // are counted in packets offered to the link.
        let burst = self.burst.as_mut().is_some_and(|ge| ge.handle_packet(rng));
        random || burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ge(p: f64, r: f64, loss_good: f64, loss_bad: f64) -> GilbertElliottConfig {
        GilbertElliottConfig {
            p,
            r,
            loss_good,
            loss_bad,
        }
    }

    /// Runs `n` packets and returns (loss share, mean length of loss runs).
    fn run(model: &mut LossModel, seed: u64, n: usize) -> (f64, f64) {
        let mut rng = Rng::new(seed, 0);
        let (mut lost, mut runs, mut previous) = (0usize, 0usize, false);
        for _ in 0..n {
            let l = model.handle_packet(&mut rng);
            lost += l as usize;
            runs += (l && !previous) as usize;
            previous = l;
        }
        (lost as f64 / n as f64, lost as f64 / runs.max(1) as f64)
    }

    #[test]
    fn no_loss_loses_nothing() {
        let (share, _) = run(&mut LossModel::new(0.0, None), 1, 10_000);
        assert_eq!(share, 0.0);
    }

    #[test]
    fn random_loss_matches_rate_with_short_runs() {
        let (share, run_len) = run(&mut LossModel::new(0.01, None), 2, 1_000_000);
        assert!((share - 0.01).abs() < 0.0005, "{share}");
        // Independent losses: runs average 1 / (1 - p) packets.
        assert!((run_len - 1.0 / 0.99).abs() < 0.01, "{run_len}");
    }

    #[test]
    fn gilbert_bursts_have_mean_length_one_over_r() {
        let config = ge(0.01, 0.25, 0.0, 1.0);
        let (share, run_len) = run(&mut LossModel::new(0.0, Some(config)), 3, 1_000_000);
        assert!((share - config.mean_loss()).abs() < 0.003, "{share}");
        assert!((run_len - 4.0).abs() < 0.2, "{run_len}");
    }

    #[test]
    fn gilbert_elliott_partial_loss_in_each_state() {
        let config = ge(0.05, 0.2, 0.01, 0.5);
        let (share, _) = run(&mut LossModel::new(0.0, Some(config)), 4, 1_000_000);
        assert!(
            (share - config.mean_loss()).abs() < 0.004,
            "{share} vs {}",
            config.mean_loss()
        );
    }

    #[test]
    fn same_seed_same_losses() {
        let config = Some(ge(0.01, 0.3, 0.0, 1.0));
        let mut a = LossModel::new(0.02, config);
        let mut b = LossModel::new(0.02, config);
        let (mut ra, mut rb) = (Rng::new(5, 1), Rng::new(5, 1));
        let xs: Vec<bool> = (0..5000).map(|_| a.handle_packet(&mut ra)).collect();
        let ys: Vec<bool> = (0..5000).map(|_| b.handle_packet(&mut rb)).collect();
        assert_eq!(xs, ys);
    }

    #[test]
    fn chain_leaves_the_bad_state() {
        let mut chain = GilbertElliott::new(ge(1.0, 1.0, 0.0, 1.0));
        let mut rng = Rng::new(6, 0);
        assert!(!chain.handle_packet(&mut rng));
        assert!(chain.is_bad());
        assert!(chain.handle_packet(&mut rng));
        assert!(!chain.is_bad());
    }
}
