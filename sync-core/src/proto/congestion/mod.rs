//! Rate control: how fast the sender may put datagrams on the path.
//!
//! Owns the [`Controller`] trait and the signals it is fed; one file per
//! algorithm ([`fixed`], [`fair`]), each with its `*Config` beside it, and
//! [`backpressure`], the receiver's write-queue signal, which is kept apart
//! from path signals on purpose: a slow disk is not network congestion, and
//! network loss is not a slow disk. Nothing here sends, reads clocks, or
//! knows about blocks; rates are datagram bytes per second.

pub mod backpressure;
pub mod fair;
pub mod fixed;

use std::time::{Duration, Instant};

pub use backpressure::BackPressure;
pub use fair::{Fair, FairConfig};
pub use fixed::{Fixed, FixedConfig};

/// One bit per second expressed as bytes per second, for readable configs.
pub const fn mbit(n: u64) -> u64 {
    n * 1_000_000 / 8
}

/// What the sender learned from one feedback message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathSample {
    /// One-way queueing delay: the interval's minimum one-way delay minus
    /// the lowest seen on this path. `None` until delay samples arrive.
    pub queue_delay: Option<Duration>,
    /// How far this sample lowered that lowest one-way delay: the queue
    /// had been emptier than ever before (a newcomer's first samples can
    /// include other flows' standing queue).
    pub base_drop: Duration,
    /// Datagram bytes/s the receiver saw arriving, corrected for loss so it
    /// estimates what the bottleneck forwarded (0 = unknown).
    pub delivery_rate: u64,
    /// The same arrivals, uncorrected: what the bottleneck forwarded when
    /// the loss was its own queue overflowing (0 = unknown).
    pub arrival_rate: u64,
    /// Smoothed fraction of datagrams lost, 0.0..=1.0.
    pub loss: f64,
    /// Smoothed round-trip time.
    pub srtt: Duration,
    /// Lowest round-trip time seen: the path without queues.
    pub min_rtt: Duration,
}

/// A rate controller.
pub trait Controller: Send + std::fmt::Debug {
    /// Updates the rate from a path sample.
    fn on_feedback(&mut self, now: Instant, sample: &PathSample);
    /// Lets the controller move with time between feedback messages (the
    /// sender calls it before every datagram).
    fn on_tick(&mut self, _now: Instant) {}
    /// Current rate in datagram bytes per second.
    fn rate(&self) -> u64;
}

/// Which controller a transfer uses.
// One per transfer, copied only when a controller is built: the fair
// controller's many tunables make its variant large, which costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum CongestionConfig {
    Fixed(FixedConfig),
    Fair(FairConfig),
}

impl Default for CongestionConfig {
    fn default() -> Self {
        CongestionConfig::Fair(FairConfig::default())
    }
}

impl CongestionConfig {
    /// Builds the controller.
    pub fn build(&self) -> Box<dyn Controller> {
        match self {
            CongestionConfig::Fixed(c) => Box::new(Fixed::new(c.clone())),
            CongestionConfig::Fair(c) => Box::new(Fair::new(c.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    //! One suite run against every controller: properties every
    //! implementation must have whatever its algorithm.
    use super::*;

    fn sample(q_ms: u64, delivery: u64, loss: f64) -> PathSample {
        PathSample {
            queue_delay: Some(Duration::from_millis(q_ms)),
            base_drop: Duration::ZERO,
            delivery_rate: delivery,
            arrival_rate: delivery,
            loss,
            srtt: Duration::from_millis(100),
            min_rtt: Duration::from_millis(100),
        }
    }

    macro_rules! controller_suite {
        ($name:ident, $build:expr, $min:expr, $max:expr) => {
            mod $name {
                use super::*;

                #[test]
                fn rate_stays_within_floor_and_ceiling() {
                    let mut c: Box<dyn Controller> = $build;
                    let t0 = Instant::now();
                    for i in 0..2000u64 {
                        let now = t0 + Duration::from_millis(10 * i);
                        let s = match i % 7 {
                            0 => sample(500, 1, 0.9),
                            1 => sample(0, u64::MAX / 4, 0.0),
                            _ => sample(i % 40, c.rate(), 0.01),
                        };
                        c.on_feedback(now, &s);
                        c.on_tick(now + Duration::from_millis(5));
                        assert!(c.rate() >= $min && c.rate() <= $max, "rate {}", c.rate());
                    }
                }

                #[test]
                fn survives_degenerate_samples() {
                    let mut c: Box<dyn Controller> = $build;
                    let t0 = Instant::now();
                    let odd = PathSample {
                        queue_delay: None,
                        base_drop: Duration::ZERO,
                        delivery_rate: 0,
                        arrival_rate: 0,
                        loss: 1.0,
                        srtt: Duration::ZERO,
                        min_rtt: Duration::ZERO,
                    };
                    c.on_feedback(t0, &odd);
                    c.on_feedback(t0, &odd);
                    c.on_feedback(t0 - Duration::from_millis(1), &odd);
                    assert!(c.rate() >= $min);
                }
            }
        };
    }

    controller_suite!(
        fixed_suite,
        CongestionConfig::Fixed(FixedConfig { rate: mbit(100) }).build(),
        mbit(100),
        mbit(100)
    );
    controller_suite!(
        fair_suite,
        CongestionConfig::Fair(FairConfig {
            min_rate: mbit(2),
            max_rate: mbit(2000),
            ..FairConfig::default()
        })
        .build(),
        mbit(2),
        mbit(2000)
    );
}
