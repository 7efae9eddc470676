//! End-to-end tests: the real `sluice` binary on real directories.
//!
//! One test binary with topic modules (ripgrep's layout). Each test makes
//! its own temporary folders through [`util::Dir`].

mod cli;
mod daemon;
mod history;
mod index;
mod jobs;
mod metrics;
mod operator;
mod progress;
mod safety;
mod shrink;
mod ssh;
mod sync;
mod timeout;
mod util;
mod wan;
mod watch;
