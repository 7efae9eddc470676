//! The delta module's tests: [`compress`] for per-chunk zstd and its
//! decoder's bounds, [`fine`] for signatures and deltas. Inputs come from
//! the seeded generators below.

mod compress;
mod fine;

// The seeded generators, shared with `benches/codec.rs`.
#[path = "gen.rs"]
mod gen;
pub(super) use gen::{noise, text};
