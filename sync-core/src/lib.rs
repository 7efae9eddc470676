//! # sync-core: the engine behind `sluice`
//!
//! ## How data flows
//!
//! ```text
//!  source tree                                          destination tree
//!      │ scan (fs, chunk)                                      ▲ apply (fs)
//!      ▼                                                       │
//!  index (SQLite) ─ window ─► manifest ──► plan::Planner ──► Plan
//!                                             ▲   │ chunks the destination lacks
//!              destination's index ───────────┘   ▼
//!                         session: sender ── delta/zstd ──► receiver
//!                               │ control connection (ssh, daemon, local)
//!                               └─ proto + net: numbered UDP blocks
//! ```
//!
//! 1. [`scan`] walks a tree (honouring `.sluiceignore` and excludes) and
//!    records every entry in an [`index::Index`], a SQLite file per tree.
//!    Regular files are cut into content-defined chunks by [`chunk`] and
//!    every chunk is named by its BLAKE3 hash. Rescans only read files whose
//!    metadata changed.
//! 2. [`session`] runs one sync between a sender and a receiver over any
//!    transport (local pipe, ssh, the [`daemon`]'s Noise connection). The
//!    tree goes window by window: each side reads a path range from its
//!    index ([`index::Reads`]) into a [`manifest::Manifest`].
//! 3. [`plan::Planner`] compares the two windows and returns a
//!    [`plan::Plan`] (data, no I/O); what lies outside the window it asks
//!    of the destination's index.
//! 4. The missing chunks travel over the control connection or as UDP
//!    blocks ([`proto`], the sans-IO protocol: state machines that take
//!    bytes and `now`; [`net`], the threads and sockets that drive them).
//!    [`delta`] shrinks a chunk first: zstd, or a delta against the pieces
//!    of the destination's old version.
//! 5. [`apply`] executes each window's plan at the destination: temp file
//!    beside the target, verified, renamed into place.
//!
//! ## Around the flow
//!
//! - [`watch`]: inotify events and a debouncer that takes `now`; a watch
//!   runs the same sessions round after round, each scoped
//!   ([`scope::Scopes`]) to the paths its events named.
//! - [`daemon`]: `sluice serve`, keys, config, the Noise handshake and
//!   wire, confinement of modules.
//! - [`history`] (`sluice log`: a row per run), [`metrics`] (counters for
//!   `--metrics`), [`session::lock`] (one writer per destination).
//!
//! ## Foundations
//!
//! - [`fs`]: the only way into a synced tree: descriptor-relative calls
//!   that never follow a symlink ([`fs::Tree`], [`fs::Dir`]).
//! - [`path::RelPath`]: raw bytes relative to a root, validated once, so
//!   nothing downstream can be steered outside the tree.
//! - [`entry`] (an entry's metadata), [`manifest`] (a window of entries and
//!   their chunks), [`units`] (the one parser each for rates, sizes,
//!   durations and port ranges that flags and the daemon's config share),
//!   [`error`] (the crate's error type).

pub mod apply;
pub mod chunk;
pub mod daemon;
pub mod delta;
pub mod entry;
pub mod error;
pub mod fs;
pub mod history;
pub mod index;
pub mod manifest;
pub mod metrics;
pub mod net;
pub mod path;
pub mod plan;
pub mod proto;
pub mod scan;
pub mod scope;
pub mod session;
mod sqlite_file;
pub mod units;
pub mod watch;

pub use error::{Error, Result};
