//! Confined filesystem access: the scan, the apply step and the sender
//! reach the entries below a synced tree's root only through here, by
//! descriptor-relative system calls made with `rustix` (no `unsafe`).
//!
//! Two layers:
//!
//! - [`Dir`]: one open folder and the operations on one name inside it
//!   (open, `lstat`, readlink, mkdir, rename, unlink, symlink, link, set
//!   metadata), each relative to the folder's descriptor and never
//!   following a symlink in the name's place. The scan's walker and
//!   readers hold `Dir`s directly, since they reach every entry from its
//!   folder anyway.
//! - [`Tree`]: a root `Dir` and path-based operations on a
//!   [`RelPath`](crate::path::RelPath) below it, each path resolved one
//!   component at a time with `O_NOFOLLOW`. The apply step writes through
//!   it and the sender reads through it.
//!
//! Nothing here knows about plans, indexes or the wire; what to do with a
//! refused symlink (skip, warn, fail) is the caller's decision. Sockets are
//! not here: they belong to [`crate::net`].

#![forbid(unsafe_code)]

mod dir;
mod tree;

pub use dir::{set_file_meta, Dir};
pub use tree::Tree;

#[cfg(test)]
mod tests;
