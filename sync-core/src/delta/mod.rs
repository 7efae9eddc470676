//! Fewer bytes per chunk: per-chunk compression and fine-grained deltas.
//!
//! This module owns how one chunk's bytes are encoded for the wire and
//! decoded again. It only looks at buffers: it never reads files, opens
//! sockets or decides which chunks travel; the session picks an encoding
//! per chunk and ships what comes back.
//!
//! * [`compress`]: per-chunk zstd, with a sample test that sends random or
//!   already-compressed data raw at almost no CPU cost.
//! * [`stream`]: one zstd frame across the chunks sent on the control
//!   connection, so each has the ones before it as history.
//! * [`fine`]: for a chunk whose file has an older version at the
//!   destination. The destination cuts the old bytes it no longer needs into
//!   small content-defined pieces and sends a [`fine::Signature`] (8 bytes a
//!   piece); the sender compresses the new chunk with the pieces it
//!   recognises as a zstd raw-content dictionary, so matched regions cost a
//!   few bytes of match codes. This is rsync's delta plus `-z`, at
//!   content-defined rather than fixed block boundaries.
//!
//! Every decoder here reads peer input. They are bounded: a frame never
//! makes the receiver allocate more than the length the manifest declared
//! for the chunk, that length is itself capped by [`MAX_DECODED`], and every
//! broken bound is a [`DeltaError`] that names it. Nothing here panics on
//! what a peer sends.

pub mod compress;
pub mod fine;
pub mod stream;

#[cfg(test)]
mod tests;

pub use compress::{decode, encode, Compressor, Decompressor, Encoded, Encoding};

use crate::error::Error;

/// Largest chunk a compressed frame or a delta may decode to.
///
/// Caps what a few bytes from a peer can make the receiver allocate. 16
/// times the default maximum chunk (256 KiB), so any index built with
/// default or moderately raised chunk sizes fits; larger chunks are sent
/// raw, which costs no amplification since their bytes are already here.
pub const MAX_DECODED: usize = 4 << 20;

/// Refuses a declared chunk length above [`MAX_DECODED`] before anything
/// is allocated for it.
pub(crate) fn check_declared(declared_len: usize) -> Result<(), DeltaError> {
    if declared_len > MAX_DECODED {
        return Err(DeltaError::TooLarge {
            declared: declared_len,
            max: MAX_DECODED,
        });
    }
    Ok(())
}

/// A bound that a peer's compressed chunk, delta or signature broke.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The declared chunk length is above [`MAX_DECODED`].
    #[error("declared chunk length {declared} is above the {max}-byte limit for encoded chunks")]
    TooLarge { declared: usize, max: usize },
    /// The bytes (raw) or the frame header (zstd) give another length than
    /// the one declared.
    #[error("chunk declared as {declared} bytes holds {found}")]
    SizeMismatch { declared: usize, found: u64 },
    /// Not exactly one well-formed zstd frame that states its content size;
    /// the text is zstd's reason.
    #[error("bad zstd frame: {0}")]
    Frame(&'static str),
    /// A delta lists more piece runs than its chunk can have pieces.
    #[error("delta lists {got} piece runs, at most {max} fit in the chunk")]
    TooManyRefs { got: usize, max: usize },
    /// A delta lists more ops than its chunk can have pieces.
    #[error("delta lists {got} ops, at most {max} fit in the chunk")]
    TooManyOps { got: usize, max: usize },
    /// A delta op reads past its dictionary or its literals.
    #[error("delta op {0:?} reads out of range")]
    OpOutOfRange(fine::Op),
    /// A delta names pieces that the signature does not have.
    #[error("delta refers to {count} pieces from {first}, the signature has {pieces}")]
    RefOutOfRange {
        first: u32,
        count: u32,
        pieces: usize,
    },
    /// The pieces a delta names add up to more than [`fine::MAX_DICT`].
    #[error("delta dictionary exceeds {max} bytes")]
    DictTooLarge { max: usize },
    /// A signature lists more pieces than [`fine::MAX_SIG_PIECES`].
    #[error("signature has {got} pieces, at most {max} allowed")]
    SignatureTooLarge { got: usize, max: usize },
    /// The rebuilt chunk does not hash to its name: a truncated piece hash
    /// collided (or the peer lied). Ask for the whole chunk instead.
    #[error("chunk rebuilt from a delta does not match its hash")]
    HashMismatch,
}

impl From<DeltaError> for Error {
    fn from(e: DeltaError) -> Self {
        Error::Protocol(e.into())
    }
}
