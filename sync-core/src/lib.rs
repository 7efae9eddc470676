//! # sync-core: the engine behind `sluice`
//!
//! Data flows through the modules in this order:
//!
//! 1. [`scan`] walks a tree (honouring `.sluiceignore` and excludes) and
//!    records every entry in an [`index::Index`], a SQLite file per tree.
//!    Regular files are cut into content-defined chunks by [`chunk`] and
//!    every chunk is named by its BLAKE3 hash. Rescans only read files whose
//!    metadata changed.
//! 2. [`session`] runs one sync between a sender and a receiver over any
//!    transport. The tree goes window by window: each side reads a path
//!    range from its index ([`index::Reads`]) into a [`manifest::Manifest`].
//! 3. [`plan::Planner`] compares the two windows and returns a
//!    [`plan::Plan`]; what lies outside the window it asks of the
//!    destination's index.
//! 4. The missing chunks travel over the control connection or as UDP
//!    blocks ([`proto`], the sans-IO protocol; [`net`], its sockets).
//!    [`delta`] shrinks a chunk first: zstd, or a delta against old pieces.
//! 5. [`apply`] executes each window's plan at the destination: temp file
//!    beside the target, verified, renamed into place.
//!
//! A watch ([`watch`]: inotify events, a debouncer that takes `now`) runs
//! the same sessions round after round, each scoped ([`scope::Scopes`])
//! to the paths its events named: both sides scan, send and compare only
//! those. [`daemon`] serves sessions to authenticated clients. Both keep
//! their figures (runs, bytes, latency) in a [`metrics::Metrics`] registry.
//! Every run leaves a row in the [`history`] database (`sluice log`), and a
//! receiver holds its destination's lock ([`session::lock`]) while it writes.
//!
//! Paths everywhere are [`path::RelPath`]: raw bytes relative to a root,
//! validated once so nothing downstream can be steered outside the tree.

pub mod apply;
pub mod chunk;
pub mod daemon;
pub mod delta;
pub mod entry;
pub mod error;
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
pub mod watch;

pub use error::{Error, Result};
