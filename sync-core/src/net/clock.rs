//! Waiting until a deadline precisely without burning a core.
//!
//! Owns the one place drivers sleep. `thread::sleep` overshoots by up to a
//! timer slack (~50-100 µs on Linux), which at 1 Gbit/s is several
//! datagrams; so we sleep until [`SPIN_MARGIN`] before the deadline and
//! yield-spin the rest. At low rates almost all the wait is real sleep.
//! [`sleep_coarse`] is the plain sleep, for waits that may run late.

use std::time::{Duration, Instant};

/// How much of a wait is spent spinning instead of sleeping.
pub const SPIN_MARGIN: Duration = Duration::from_micros(150);

/// Returns at (or just after) `deadline`.
pub fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline <= now {
        return;
    }
    let left = deadline - now;
    if left > SPIN_MARGIN {
        std::thread::sleep(left - SPIN_MARGIN);
    }
    while Instant::now() < deadline {
        std::thread::yield_now();
    }
}

/// Returns after `deadline`, possibly late by the timer slack (~50 µs),
/// without spinning: for waits whose lateness is absorbed elsewhere, like
/// the pacer's token bucket, where a spinning thread would only take the
/// CPU from the receiver and writer on small machines.
pub fn sleep_coarse(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}
