//! What a link is asked to be: the two namespaces and their addresses, and
//! one [`PathConfig`] per direction. Plain data with defaults and a
//! `validate` that checks the values against each other; parsing user text
//! lives in `units` (and the binary's `args`), the behaviour in `path`.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::error::Error;

/// The bound of a path's drop-tail queue.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum QueueLimit {
    /// Backlog in time at the link rate: 100 ms holds 12.5 MB at 1 Gbit/s.
    Time(Duration),
    /// Backlog in bytes, whatever the rate.
    Bytes(u64),
}

/// Gilbert-Elliott burst-loss parameters (Gilbert 1960, Elliott 1963), as
/// probabilities in [0, 1]. Per packet, the packet is lost with the current
/// state's loss probability, then the state changes: good to bad with `p`,
/// bad to good with `r` (so a bad spell lasts 1/r packets on average).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GilbertElliottConfig {
    pub p: f64,
    pub r: f64,
    pub loss_good: f64,
    pub loss_bad: f64,
}

impl GilbertElliottConfig {
    /// The long-run share of packets lost.
    pub fn mean_loss(&self) -> f64 {
        if self.p + self.r == 0.0 {
            return self.loss_good;
        }
        let bad = self.p / (self.p + self.r);
        (1.0 - bad) * self.loss_good + bad * self.loss_bad
    }
}

/// The impairments of one direction, applied in this order: loss (random,
/// then Gilbert-Elliott), duplication, the rate-limited drop-tail queue,
/// then delay with jitter.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PathConfig {
    /// Bits per second of IP packets (headers included); `None` is unlimited.
    pub rate_bps: Option<u64>,
    /// One-way propagation delay.
    pub delay: Duration,
    pub queue: QueueLimit,
    /// Probability that a packet is lost before it reaches the queue.
    pub loss: f64,
    pub gilbert_elliott: Option<GilbertElliottConfig>,
    /// Each packet's delay varies uniformly within +- this much.
    pub jitter: Duration,
    /// With jitter, let a packet overtake the one sent before it; without,
    /// a packet is held until the one before it has left.
    pub reorder: bool,
    /// Probability that a packet is sent twice (the copy also queues).
    pub duplicate: f64,
}

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            rate_bps: None,
            delay: Duration::ZERO,
            // 100 ms: a common router buffer; 1 x BDP at 100 ms RTT.
            queue: QueueLimit::Time(Duration::from_millis(100)),
            loss: 0.0,
            gilbert_elliott: None,
            jitter: Duration::ZERO,
            reorder: false,
            duplicate: 0.0,
        }
    }
}

impl PathConfig {
    pub fn validate(&self, direction: &str) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Config(format!("{direction}: {msg}")));
        let mut probabilities = vec![("loss", self.loss), ("dup", self.duplicate)];
        if let Some(ge) = &self.gilbert_elliott {
            probabilities.extend([("ge p", ge.p), ("ge r", ge.r)]);
            probabilities.extend([("ge loss_good", ge.loss_good), ("ge loss_bad", ge.loss_bad)]);
            if ge.r == 0.0 && ge.p > 0.0 {
                return bad("Gilbert-Elliott r is 0: the link would stay in the bad state".into());
            }
        }
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!(
                    "{name} must be between 0 and 100 %, not {}",
                    p * 100.0
                ));
            }
        }
        if self.jitter > self.delay {
            return bad(format!(
                "jitter {:?} is larger than the delay {:?}",
                self.jitter, self.delay
            ));
        }
        if self.queue == QueueLimit::Bytes(0) || self.queue == QueueLimit::Time(Duration::ZERO) {
            return bad("the queue must hold at least one packet".into());
        }
        Ok(())
    }
}

/// A whole link: where its two ends live and what each direction does.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LinkConfig {
    /// Network namespaces the caller created (`ip netns add`); end A's
    /// device goes into `ns_a`, end B's into `ns_b`.
    pub ns_a: String,
    pub ns_b: String,
    /// Device names inside the namespaces.
    pub dev_a: String,
    pub dev_b: String,
    pub addr_a: Ipv4Addr,
    pub addr_b: Ipv4Addr,
    pub prefix: u8,
    pub mtu: u32,
    /// The TUN devices' transmit rings, in packets: what the kernel may
    /// hold for wanem between two reads (a tick at 1 Gbit/s is ~45 packets).
    pub txqueuelen: u32,
    pub a_to_b: PathConfig,
    pub b_to_a: PathConfig,
    pub seed: u64,
}

impl LinkConfig {
    /// A link between `ns_a` and `ns_b` with no impairment, on 10.199.0.1
    /// and 10.199.0.2/30, devices `wan0` in both namespaces.
    pub fn new(ns_a: &str, ns_b: &str) -> LinkConfig {
        LinkConfig {
            ns_a: ns_a.to_string(),
            ns_b: ns_b.to_string(),
            dev_a: "wan0".to_string(),
            dev_b: "wan0".to_string(),
            addr_a: Ipv4Addr::new(10, 199, 0, 1),
            addr_b: Ipv4Addr::new(10, 199, 0, 2),
            prefix: 30,
            mtu: 1500,
            txqueuelen: 1000,
            a_to_b: PathConfig::default(),
            b_to_a: PathConfig::default(),
            seed: crate::rng::fresh_seed(),
        }
    }

    /// Sets both directions at once.
    pub fn with_both(mut self, path: PathConfig) -> LinkConfig {
        self.a_to_b = path.clone();
        self.b_to_a = path;
        self
    }

    pub fn validate(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Config(msg));
        if self.ns_a.is_empty() || self.ns_b.is_empty() || self.ns_a == self.ns_b {
            return bad("the two ends need two different network namespaces".into());
        }
        for dev in [&self.dev_a, &self.dev_b] {
            if dev.is_empty() || dev.len() > 15 || dev.contains(['/', ' ', '%']) {
                return bad(format!("device name '{dev}' is not a valid interface name"));
            }
        }
        if !(1..=30).contains(&self.prefix) {
            return bad(format!("prefix /{} must be between 1 and 30", self.prefix));
        }
        let mask = u32::MAX << (32 - self.prefix);
        let (a, b) = (u32::from(self.addr_a), u32::from(self.addr_b));
        if a == b || a & mask != b & mask {
            return bad(format!(
                "{} and {} must be two different addresses in one /{} subnet",
                self.addr_a, self.addr_b, self.prefix
            ));
        }
        if !(576..=65535).contains(&self.mtu) {
            return bad(format!("MTU {} must be between 576 and 65535", self.mtu));
        }
        self.a_to_b.validate("A->B")?;
        self.b_to_a.validate("B->A")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(LinkConfig::new("a", "b").validate().is_ok());
    }

    #[test]
    fn rejects_inconsistent_values() {
        let mut c = LinkConfig::new("a", "a");
        assert!(c.validate().is_err());
        c.ns_b = "b".into();
        c.addr_b = Ipv4Addr::new(10, 199, 1, 2);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("one /30 subnet"));
        c.addr_b = Ipv4Addr::new(10, 199, 0, 2);
        c.a_to_b.jitter = Duration::from_millis(5);
        assert!(c.validate().unwrap_err().to_string().contains("A->B"));
    }

    #[test]
    fn gilbert_elliott_mean_loss() {
        let ge = GilbertElliottConfig {
            p: 0.01,
            r: 0.25,
            loss_good: 0.0,
            loss_bad: 1.0,
        };
        assert!((ge.mean_loss() - 0.01 / 0.26).abs() < 1e-12);
    }
}
