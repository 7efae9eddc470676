//! Waiting until a deadline precisely without burning a core.
//!
//! Owns the one place drivers sleep. `thread::sleep` overshoots by up to a
//! timer slack (~50-100 µs on Linux), which at 1 Gbit/s is several
//! datagrams; so we sleep until [`SPIN_MARGIN`] before the deadline and
//! yield-spin the rest. At low rates almost all the wait is real sleep.

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
