//! wanem: a WAN link emulator in userspace, for sluice's benches and tests
//! on kernels without `netem`.
//!
//! # What it builds
//! One process owns two TUN devices. It creates them in its own network
//! namespace, moves one into namespace A and the other into namespace B
//! (both created beforehand by the caller with `ip netns add`), gives them
//! addresses in one small subnet (10.199.0.1 and .2/30 by default), and
//! forwards raw IP packets between them. To the two namespaces this looks
//! like a point-to-point cable; addresses exist only on those two devices,
//! so nothing the link carries can go anywhere else. The devices vanish
//! when the process (or the [`LinkHandle`]) goes away.
//!
//! # The model, per direction
//! Each direction (A->B, B->A) has its own [`PathConfig`] and applies, in
//! order:
//! 1. **loss** before the queue, so a lost packet uses no capacity:
//!    independent random loss and/or Gilbert-Elliott burst loss;
//! 2. **duplication**: a copy follows the original through the queue;
//! 3. **the bottleneck**: a rate in bits/s of IP packets (headers included)
//!    on a virtual link clock, `start = max(now, link_free)`, behind a
//!    drop-tail queue bounded in milliseconds of backlog (or in bytes);
//! 4. **delay**: a fixed one-way delay plus uniform jitter; without
//!    reordering a packet is held until the one before it has arrived.
//!
//! The model (`loss`, `shaper`, `delay`, `path`) is pure: it takes times as
//! arguments and never touches a packet, so its tests run in virtual time.
//! `forward` is the only code that reads the clock and the devices. All
//! randomness comes from one seeded generator per direction (`rng`), so a
//! run's impairments can be replayed from its seed.
//!
//! # Cost
//! One thread per direction. A wake-up releases every packet due within
//! half a tick (0.5 ms) and reads everything the device holds, so a busy
//! link wakes each thread a few thousand times a second, not once per
//! packet. Writing a packet to the receiving device runs that namespace's
//! network stack in the forwarding thread, so the thread's CPU includes the
//! receiver's IP/TCP input processing.
//!
//! # Modules
//! - `config`: [`LinkConfig`], [`PathConfig`] and their validation;
//!   `units`: parsers for rates, durations, sizes and percentages;
//! - `rng`, `loss`, `shaper`, `delay`, `path`: the model;
//! - `tun`, `netns`: the devices and their setup with `ip`;
//! - `forward`: the per-direction loop; `link`: [`Link::start`] and
//!   [`LinkHandle`]; `counters`: [`Counters`], serialisable to JSON.
//!
//! ```no_run
//! use std::time::Duration;
//! use wanem::{Link, LinkConfig, PathConfig};
//!
//! // `ip netns add a; ip netns add b` beforehand.
//! let path = PathConfig { rate_bps: Some(300_000_000), delay: Duration::from_millis(50), ..PathConfig::default() };
//! let link = Link::start(LinkConfig::new("a", "b").with_both(path))?;
//! // ... traffic between 10.199.0.1 (in a) and 10.199.0.2 (in b) ...
//! let counters = link.stop();
//! println!("{}", counters.to_json());
//! # Ok::<(), wanem::Error>(())
//! ```

pub mod config;
pub mod counters;
pub mod delay;
pub mod error;
mod forward;
pub mod link;
pub mod loss;
pub mod netns;
pub mod path;
pub mod rng;
pub mod shaper;
pub mod tun;
pub mod units;

pub use config::{GilbertElliottConfig, LinkConfig, PathConfig, QueueLimit};
pub use counters::{Counters, DirectionCounters};
pub use error::{Error, Result};
pub use link::{Link, LinkHandle};
