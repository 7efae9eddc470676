//! The seeded random source behind every impairment decision.
//!
//! xoshiro256++ (Blackman and Vigna, "Scrambled linear pseudorandom number
//! generators", 2021), seeded through SplitMix64 as its authors recommend.
//! It is not cryptographic and does not need to be: it only has to be fast,
//! statistically sound and replayable from one logged `u64`. Each direction
//! of a link gets its own stream so that traffic in one direction does not
//! change the losses seen in the other.

/// A xoshiro256++ generator.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

/// SplitMix64 (Steele, Lea and Flood 2014): expands one seed into a state.
fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// The generator for stream `stream` (e.g. a direction) of `seed`.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut x = seed ^ stream.wrapping_mul(0xd605_bbb5_8c8a_bbed);
        let s = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`; draws nothing when `p` is 0, so a link
    /// without loss keeps the same stream for its other decisions.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }

    /// Uniform in [-span, +span].
    pub fn symmetric(&mut self, span: u64) -> i64 {
        if span == 0 {
            return 0;
        }
        let width = 2 * span + 1;
        (self.next_u64() % width) as i64 - span as i64
    }
}

/// A seed for runs that were not given one: the clock's nanoseconds mixed
/// with the process id, logged by the caller so the run can be repeated.
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32);
    splitmix64(&mut x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(42, 0);
        let mut b = Rng::new(42, 0);
        let mut c = Rng::new(42, 1);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn chance_matches_probability() {
        let mut rng = Rng::new(7, 0);
        let n = 200_000;
        let hits = (0..n).filter(|_| rng.chance(0.05)).count();
        let share = hits as f64 / n as f64;
        assert!((share - 0.05).abs() < 0.003, "{share}");
    }

    #[test]
    fn symmetric_stays_in_range_and_centres() {
        let mut rng = Rng::new(9, 0);
        let draws: Vec<i64> = (0..100_000).map(|_| rng.symmetric(1000)).collect();
        assert!(draws.iter().all(|d| (-1000..=1000).contains(d)));
        let mean = draws.iter().sum::<i64>() as f64 / draws.len() as f64;
        assert!(mean.abs() < 15.0, "{mean}");
    }
}
