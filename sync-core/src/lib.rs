//! # sync-core: the engine behind `sluice`
//!
//! Data flows through the modules in this order:
//!
//! 1. [`scan`] walks a tree (honouring `.sluiceignore` and excludes) and
//!    records every entry in an [`index::Index`], a SQLite file per tree.
//!    Regular files are cut into content-defined chunks by [`chunk`] and
//!    every chunk is named by its BLAKE3 hash. Rescans only read files whose
//!    metadata changed.
//! 2. [`index::Index::manifest`] loads a tree's entries into a
//!    [`manifest::Manifest`], the in-memory view the planner compares.
//!
//! Paths everywhere are [`path::RelPath`]: raw bytes relative to a root,
//! validated once so nothing downstream can be steered outside the tree.

pub mod apply;
pub mod chunk;
pub mod daemon;
pub mod entry;
pub mod error;
pub mod index;
pub mod manifest;
pub mod net;
pub mod path;
pub mod plan;
pub mod proto;
pub mod scan;
pub mod session;

pub use error::{Error, Result};
