//! The data datagram: a fixed header, the block payload, the AEAD tag.
//!
//! Owns the byte layout of what goes into a UDP datagram and the validation
//! of what comes out of one. It never touches sockets, and it never panics on
//! peer bytes: every decoder checks every length and answers with a
//! [`DatagramError`], which the receiver counts and drops.
//!
//! ```text
//!  0      1      2             4                  8
//!  +------+------+-------------+------------------+
//!  | ver  | kind | index       |   session id     |
//!  +------+------+-------------+------------------+
//!  |            packet number (u64, BE)           |   never reused, even
//!  +----------------------------------------------+   for retransmissions
//!  |            block number (u64, BE)            |
//!  +-----------------------+----------------------+
//!  | send time (u32 µs BE) |  payload ...  | AEAD tag (16, AES-GCM only)
//!  +-----------------------+---------------+
//! ```
//! Kind 0 is a data block; its index field is 0. Kind 1 is a parity shard
//! of a tail code ([`super::fec`]): the index field is the shard's index,
//! and the block-number field holds the code's first block (upper 40 bits),
//! its number of blocks less one (12 bits) and its number of parity shards
//! less one (12 bits); the payload is one block long. Kind 2 is a control
//! message ([`super::control`]) sent as a datagram: index and block-number
//! fields are zero, and the payload is the encoded message, at most one
//! block long. Feedback travels this way from the receiver (under the
//! receiver's own key and packet numbers), status from the sender (in the
//! sender's packet-number space), so that a lossy, slow control connection
//! never stands between the two state machines.
//!
//! The whole header is the AEAD's associated data, and the nonce is built
//! from the packet number (see [`super::crypto`]), so a header cannot be
//! altered or replayed under a valid tag.
//!
//! This module is a leaf: it imports nothing from the rest of the protocol.
//! What the header names — a tail code ([`TailCode`]), the largest datagram
//! ([`MAX_DATAGRAM`]) — is defined here as plain data, and the modules that
//! give it meaning ([`super::fec`], [`super::layout`]) build on it.

/// Largest datagram (UDP payload) either side will ever build or accept: a
/// 9000-byte jumbo frame less the IPv4 and UDP headers. [`super::layout`]
/// derives its packet-size limits from the same figures and checks that
/// they agree.
pub const MAX_DATAGRAM: usize = 9000 - 28;
/// Most blocks, and most parity shards, in one tail code (12 bits each in
/// the header).
pub const MAX_GROUP_BLOCKS: u64 = 1 << 12;
/// Largest first block a tail code may name (40 bits in the header).
pub const MAX_FIRST_BLOCK: u64 = (1 << 40) - 1;

/// One tail code as a parity header names it: blocks `first_block..
/// first_block + originals` and its number of parity shards. What the
/// code means — which codes a stream may have, how its shards are
/// computed — is [`super::fec`]'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailCode {
    pub first_block: u64,
    pub originals: u16,
    pub parity: u16,
}

impl TailCode {
    /// The blocks this code covers.
    pub fn blocks(&self) -> std::ops::Range<u64> {
        self.first_block..self.first_block + u64::from(self.originals)
    }
}

/// Packs a code into the block-number field (see the module doc). The
/// first block must be at most [`MAX_FIRST_BLOCK`] and the counts 1 to
/// 4096 ([`MAX_GROUP_BLOCKS`]); the sender builds no other codes.
fn pack(code: TailCode) -> u64 {
    (code.first_block << 24)
        | ((u64::from(code.originals.wrapping_sub(1)) & 0xfff) << 12)
        | (u64::from(code.parity.wrapping_sub(1)) & 0xfff)
}

fn unpack(field: u64) -> TailCode {
    TailCode {
        first_block: field >> 24,
        originals: ((field >> 12) & 0xfff) as u16 + 1,
        parity: (field & 0xfff) as u16 + 1,
    }
}

/// Header bytes before the payload.
pub const HEADER_LEN: usize = 28;
/// AES-256-GCM tag length, budgeted in every layout.
pub const TAG_LEN: usize = 16;
/// First byte of every sluice data datagram: protocol magic and version 1.
pub const VERSION: u8 = 0xB1;
/// Datagram kind: a data block.
pub const KIND_DATA: u8 = 0;
/// Datagram kind: a parity shard of the tail code.
pub const KIND_PARITY: u8 = 1;
/// Datagram kind: a control message.
pub const KIND_CONTROL: u8 = 2;

/// Why a datagram was dropped. Dropping is normal on the open internet, so
/// these are data for statistics rather than failures of the transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    #[error("datagram of {0} bytes is shorter than a header")]
    TooShort(usize),
    #[error("datagram of {0} bytes exceeds the largest we accept")]
    TooLong(usize),
    #[error("unknown protocol version byte {0:#04x}")]
    BadVersion(u8),
    #[error("unknown datagram kind {0}")]
    UnknownKind(u8),
    #[error("reserved header bits are set")]
    Reserved,
    #[error("datagram belongs to another session")]
    ForeignSession,
    #[error("authentication tag did not verify")]
    AuthFailed,
    #[error("packet number was already received")]
    Replayed,
    #[error("packet number is older than the replay window")]
    TooOld,
    #[error("parity shard names a code the stream cannot have")]
    BadParity,
    #[error("block {0} is past the end of the stream")]
    BlockOutOfRange(u64),
    #[error("payload of {got} bytes where block needs {want}")]
    BadPayloadLength { got: usize, want: usize },
    #[error("control datagram of {0} payload bytes is empty or longer than a block")]
    BadControlLength(usize),
    #[error("control datagram does not hold a valid control message")]
    BadControl,
    #[error("datagram kind is not one this side receives")]
    WrongDirection,
}

/// The decoded fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub session_id: u32,
    pub packet_number: u64,
    pub body: Body,
    /// Sender clock in microseconds, wrapping; only differences mean anything.
    pub send_time_us: u32,
}

/// What the payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// Data block number `n`.
    Block(u64),
    /// Parity shard `index` of a tail code.
    Parity { code: TailCode, index: u16 },
    /// An encoded control message.
    Control,
}

impl Header {
    /// The block number, for a data block.
    pub fn block(&self) -> Option<u64> {
        match self.body {
            Body::Block(b) => Some(b),
            Body::Parity { .. } | Body::Control => None,
        }
    }
}

impl Header {
    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`.
    ///
    /// `out` must be at least `HEADER_LEN` long; callers own their buffers,
    /// so this is a programming error, not peer input.
    pub fn encode(&self, out: &mut [u8]) {
        let out = &mut out[..HEADER_LEN];
        let (kind, index, field) = match self.body {
            Body::Block(b) => (KIND_DATA, 0, b),
            Body::Parity { code, index } => (KIND_PARITY, index, pack(code)),
            Body::Control => (KIND_CONTROL, 0, 0),
        };
        out[0] = VERSION;
        out[1] = kind;
        out[2..4].copy_from_slice(&index.to_be_bytes());
        out[4..8].copy_from_slice(&self.session_id.to_be_bytes());
        out[8..16].copy_from_slice(&self.packet_number.to_be_bytes());
        out[16..24].copy_from_slice(&field.to_be_bytes());
        out[24..28].copy_from_slice(&self.send_time_us.to_be_bytes());
    }

    /// Parses and checks the header of a received datagram.
    pub fn decode(datagram: &[u8]) -> Result<Header, DatagramError> {
        if datagram.len() < HEADER_LEN {
            return Err(DatagramError::TooShort(datagram.len()));
        }
        if datagram.len() > MAX_DATAGRAM {
            return Err(DatagramError::TooLong(datagram.len()));
        }
        let b = &datagram[..HEADER_LEN];
        if b[0] != VERSION {
            return Err(DatagramError::BadVersion(b[0]));
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| (u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4));
        let index = u16::from_be_bytes([b[2], b[3]]);
        let field = u64_at(16);
        let body = match b[1] {
            KIND_DATA if index != 0 => return Err(DatagramError::Reserved),
            KIND_DATA => Body::Block(field),
            KIND_PARITY => {
                let code = unpack(field);
                if index >= code.parity {
                    return Err(DatagramError::BadParity);
                }
                Body::Parity { code, index }
            }
            KIND_CONTROL if index != 0 || field != 0 => return Err(DatagramError::Reserved),
            KIND_CONTROL => Body::Control,
            kind => return Err(DatagramError::UnknownKind(kind)),
        };
        Ok(Header {
            session_id: u32_at(4),
            packet_number: u64_at(8),
            body,
            send_time_us: u32_at(24),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn header_round_trips(session_id: u32, packet_number: u64, block: u64, send_time_us: u32) {
            let h = Header { session_id, packet_number, body: Body::Block(block), send_time_us };
            let mut buf = [0u8; HEADER_LEN];
            h.encode(&mut buf);
            prop_assert_eq!(Header::decode(&buf), Ok(h));
        }

        #[test]
        fn parity_header_round_trips(
            first_block in 0..=MAX_FIRST_BLOCK,
            originals in 1..=4096u16,
            parity in 1..=4096u16,
            index: u16,
            packet_number: u64,
        ) {
            let index = index % parity;
            let code = TailCode { first_block, originals, parity };
            let h = Header { session_id: 9, packet_number, body: Body::Parity { code, index }, send_time_us: 1 };
            let mut buf = [0u8; HEADER_LEN];
            h.encode(&mut buf);
            prop_assert_eq!(Header::decode(&buf), Ok(h));
        }

        #[test]
        fn header_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Header::decode(&bytes);
        }
    }

    #[test]
    fn short_and_foreign_headers_are_rejected() {
        assert_eq!(
            Header::decode(&[VERSION; 5]),
            Err(DatagramError::TooShort(5))
        );
        let mut buf = [0u8; HEADER_LEN];
        Header {
            session_id: 1,
            packet_number: 2,
            body: Body::Block(3),
            send_time_us: 4,
        }
        .encode(&mut buf);
        let mut bad = buf;
        bad[0] = 0x45; // an IPv4-looking first byte
        assert_eq!(Header::decode(&bad), Err(DatagramError::BadVersion(0x45)));
        let mut bad = buf;
        bad[1] = 7;
        assert_eq!(Header::decode(&bad), Err(DatagramError::UnknownKind(7)));
        let mut bad = buf;
        bad[3] = 1;
        assert_eq!(Header::decode(&bad), Err(DatagramError::Reserved));
        // A parity shard's index must be below its code's parity count
        // (block field 3: first block 0, one block, four shards).
        let mut parity = buf;
        parity[1] = KIND_PARITY;
        parity[3] = 3;
        let code = TailCode {
            first_block: 0,
            originals: 1,
            parity: 4,
        };
        assert_eq!(
            Header::decode(&parity).map(|h| h.body),
            Ok(Body::Parity { code, index: 3 })
        );
        parity[3] = 4;
        assert_eq!(Header::decode(&parity), Err(DatagramError::BadParity));
    }
}
