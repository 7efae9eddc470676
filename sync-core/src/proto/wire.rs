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
//!  | ver  | kind | reserved=0  |   session id     |
//!  +------+------+-------------+------------------+
//!  |            packet number (u64, BE)           |   never reused, even
//!  +----------------------------------------------+   for retransmissions
//!  |            block number (u64, BE)            |
//!  +-----------------------+----------------------+
//!  | send time (u32 µs BE) |  payload ...  | AEAD tag (16, AES-GCM only)
//!  +-----------------------+---------------+
//! ```
//! The whole header is the AEAD's associated data, and the nonce is built
//! from the packet number (see [`super::crypto`]), so a header cannot be
//! altered or replayed under a valid tag.

/// Header bytes before the payload.
pub const HEADER_LEN: usize = 28;
/// AES-256-GCM tag length, budgeted in every layout.
pub const TAG_LEN: usize = 16;
/// First byte of every sluice data datagram: protocol magic and version 1.
pub const VERSION: u8 = 0xB1;
/// The only datagram kind so far: a data block.
pub const KIND_DATA: u8 = 0;

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
    #[error("block {0} is past the end of the stream")]
    BlockOutOfRange(u64),
    #[error("payload of {got} bytes where block needs {want}")]
    BadPayloadLength { got: usize, want: usize },
}

/// The decoded fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub session_id: u32,
    pub packet_number: u64,
    pub block: u64,
    /// Sender clock in microseconds, wrapping; only differences mean anything.
    pub send_time_us: u32,
}

impl Header {
    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`.
    ///
    /// `out` must be at least `HEADER_LEN` long; callers own their buffers,
    /// so this is a programming error, not peer input.
    pub fn encode(&self, out: &mut [u8]) {
        let out = &mut out[..HEADER_LEN];
        out[0] = VERSION;
        out[1] = KIND_DATA;
        out[2..4].copy_from_slice(&[0, 0]);
        out[4..8].copy_from_slice(&self.session_id.to_be_bytes());
        out[8..16].copy_from_slice(&self.packet_number.to_be_bytes());
        out[16..24].copy_from_slice(&self.block.to_be_bytes());
        out[24..28].copy_from_slice(&self.send_time_us.to_be_bytes());
    }

    /// Parses and checks the header of a received datagram.
    pub fn decode(datagram: &[u8]) -> Result<Header, DatagramError> {
        if datagram.len() < HEADER_LEN {
            return Err(DatagramError::TooShort(datagram.len()));
        }
        if datagram.len() > super::layout::MAX_DATAGRAM {
            return Err(DatagramError::TooLong(datagram.len()));
        }
        let b = &datagram[..HEADER_LEN];
        if b[0] != VERSION {
            return Err(DatagramError::BadVersion(b[0]));
        }
        if b[1] != KIND_DATA {
            return Err(DatagramError::UnknownKind(b[1]));
        }
        if b[2] != 0 || b[3] != 0 {
            return Err(DatagramError::Reserved);
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| (u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4));
        Ok(Header {
            session_id: u32_at(4),
            packet_number: u64_at(8),
            block: u64_at(16),
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
            let h = Header { session_id, packet_number, block, send_time_us };
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
            block: 3,
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
    }
}
