//! Watch mode's event side: from the kernel's change notices to batches of
//! paths, one batch per replication round.
//!
//! Two parts, split as the protocol is split from its sockets:
//!
//! - [`events`] is the driver over `notify` (inotify on Linux). It turns
//!   notices into [`Event`]s on a channel: paths relative to the source root,
//!   sluice's own files filtered out, lost notices turned into a rescan
//!   request, a broken watch reported as trouble. [`needs_polling`] tells the
//!   file systems (NFS, SMB, FUSE, 9p) where notices cannot be trusted.
//! - [`debounce`] is pure: the [`Debouncer`] gathers those paths, with the
//!   time each arrived, into a [`Batch`] once the tree is quiet or the batch
//!   has waited long enough. It reads no clock, so its tests run in virtual
//!   time.
//!
//! The loop that joins them (receive with a timeout of
//! [`Debouncer::next_wake`], feed the debouncer, run a round on each batch)
//! belongs to the caller, as does the round itself. This module never reads
//! a changed file and never writes anything.

pub mod debounce;
pub mod events;

pub use debounce::{Batch, Debouncer, DEFAULT_MAX_DELAY, DEFAULT_QUIET, MAX_PATHS};
pub use events::{needs_polling, Event, Ignore, Watcher, EVENT_QUEUE};
