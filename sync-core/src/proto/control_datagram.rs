//! Control messages carried as datagrams beside the data.
//!
//! Owns sealing a [`ControlMsg`] into a datagram of kind
//! [`KIND_CONTROL`](super::wire::KIND_CONTROL) and opening one, and the size
//! budget that keeps feedback inside one datagram. Feedback rides the data
//! path because the control connection is TCP (ssh or the daemon's): on a
//! long, lossy path it stalls for whole retransmission timeouts, and every
//! report queued behind a lost segment arrives late together (head-of-line
//! blocking). A datagram report lost on the way costs only the few
//! milliseconds until the next one, since every feedback message restates
//! the receiver's whole view. It never does I/O: the drivers send the bytes.

use super::control::{ControlMsg, Feedback};
use super::crypto::PacketKey;
use super::wire::{Body, DatagramError, Header, HEADER_LEN};

/// Most bytes a [`Feedback`]'s fields other than the NAK ranges take when
/// encoded (postcard varints at their widest, plus the NAK count's own
/// varint); `fixed_fields_fit` checks it.
pub const FEEDBACK_FIXED_BYTES: usize = 128;

/// Bytes of NAK ranges a feedback may carry so that it fits a datagram
/// payload of `payload` bytes.
pub fn nak_budget(payload: usize) -> usize {
    payload.saturating_sub(FEEDBACK_FIXED_BYTES)
}

/// Encoded bytes of a NAK range `start..end` that follows a range (or the
/// scan's start) ending at `prev`: its gap and length as varints.
pub fn nak_bytes(prev: u64, start: u64, end: u64) -> usize {
    varint_len(start - prev) + varint_len(end - start)
}

fn varint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(7).max(1)
}

/// Seals `msg` into `out` as the next control datagram of a packet-number
/// space (`next_pn`, advanced when a datagram is made), stamped with the
/// session and the sender's clock: what both ends' `seal_control` do.
pub fn seal_next(
    key: &PacketKey,
    session_id: u32,
    next_pn: &mut u64,
    send_time_us: u32,
    msg: &ControlMsg,
    max_payload: usize,
    out: &mut [u8],
) -> Option<usize> {
    let header = Header {
        session_id,
        packet_number: *next_pn,
        body: Body::Control,
        send_time_us,
    };
    let n = seal(key, header, msg, max_payload, out)?;
    *next_pn += 1;
    Some(n)
}

/// Seals `msg` into `out` as a control datagram with packet number `pn`;
/// returns its length, or `None` when the message does not fit in
/// `max_payload` bytes or `out` (it then goes by the control connection
/// only).
pub fn seal(
    key: &PacketKey,
    header: Header,
    msg: &ControlMsg,
    max_payload: usize,
    out: &mut [u8],
) -> Option<usize> {
    debug_assert!(matches!(header.body, Body::Control));
    let bytes = msg.encode().ok()?;
    let total = HEADER_LEN + bytes.len() + key.tag_len();
    if bytes.is_empty() || bytes.len() > max_payload || total > out.len() {
        return None;
    }
    header.encode(out);
    let (head, rest) = out.split_at_mut(HEADER_LEN);
    let (payload, rest) = rest.split_at_mut(bytes.len());
    key.seal_from(
        header.packet_number,
        head,
        &bytes,
        payload,
        &mut rest[..key.tag_len()],
    );
    Some(total)
}

/// The payload length of a control datagram of `datagram_len` bytes,
/// checked against `max_payload` before any cryptography.
pub fn payload_len(
    key: &PacketKey,
    datagram_len: usize,
    max_payload: usize,
) -> Result<usize, DatagramError> {
    let got = datagram_len.saturating_sub(HEADER_LEN + key.tag_len());
    if datagram_len < HEADER_LEN + key.tag_len() || got == 0 || got > max_payload {
        return Err(DatagramError::BadControlLength(got));
    }
    Ok(got)
}

/// Authenticates a control datagram into `scratch` and decodes it.
pub fn open(
    key: &PacketKey,
    h: &Header,
    datagram: &[u8],
    max_payload: usize,
    scratch: &mut Vec<u8>,
) -> Result<ControlMsg, DatagramError> {
    let len = payload_len(key, datagram.len(), max_payload)?;
    scratch.resize(len, 0);
    let (head, body) = datagram.split_at(HEADER_LEN);
    key.open_to(h.packet_number, head, body, scratch)?;
    decode(scratch)
}

/// Decodes an authenticated control payload.
pub fn decode(payload: &[u8]) -> Result<ControlMsg, DatagramError> {
    ControlMsg::decode(payload).map_err(|_| DatagramError::BadControl)
}

/// Whether `msg` is the receiver's last word: everything held and verified.
pub fn is_final(msg: &ControlMsg) -> bool {
    matches!(msg, ControlMsg::Feedback(Feedback { complete: true, .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::control::{Echo, OwdSample, SenderStatus};
    use crate::proto::crypto::{Cipher, Direction, SessionSecret};

    fn header(pn: u64) -> Header {
        Header {
            session_id: 5,
            packet_number: pn,
            body: Body::Control,
            send_time_us: 77,
        }
    }

    #[test]
    fn fixed_fields_fit() {
        let f = Feedback {
            seq: u64::MAX,
            cum_ack: u64::MAX,
            scan: u64::MAX..u64::MAX,
            naks: Vec::new(),
            blocks_held: u64::MAX,
            packets_received: u64::MAX,
            highest_pn: u64::MAX,
            recv_rate: u64::MAX,
            owd: Some(OwdSample {
                min_us: i64::MIN,
                mean_us: i64::MIN,
            }),
            echo: Some(Echo {
                send_time_us: u32::MAX,
                hold_us: u32::MAX,
            }),
            sink_fill: 1000,
            sink_rate: u64::MAX,
            complete: true,
        };
        let bytes = ControlMsg::Feedback(f).encode().unwrap();
        // Two bytes more for a NAK count of up to 16383.
        assert!(bytes.len() + 2 <= FEEDBACK_FIXED_BYTES, "{}", bytes.len());
    }

    #[test]
    fn nak_bytes_match_the_encoding() {
        for (prev, start, end) in [(0, 0, 1), (0, 127, 128), (5, 300, 100_000), (0, 0, 1 << 40)] {
            let base = Feedback {
                scan: prev..end + 1,
                ..Feedback::default()
            };
            let with = Feedback {
                naks: std::iter::once(start..end).collect(),
                ..base.clone()
            };
            let a = ControlMsg::Feedback(base).encode().unwrap().len();
            let b = ControlMsg::Feedback(with).encode().unwrap().len();
            assert_eq!(b - a, nak_bytes(prev, start, end), "{start}..{end}");
        }
    }

    #[test]
    fn seal_and_open_round_trip_and_refuse_tampering() {
        let secret = SessionSecret([3; 32]);
        for cipher in [Cipher::Aes256Gcm, Cipher::None] {
            let tx = PacketKey::new(&secret, cipher, Direction::ReceiverToSender);
            let rx = PacketKey::new(&secret, cipher, Direction::ReceiverToSender);
            let msg = ControlMsg::Status(SenderStatus {
                sent_once: 9,
                all_sent: true,
                srtt_us: 100,
                rate: 5,
                codes_from: 0,
            });
            let mut out = [0u8; 1500];
            let n = seal(&tx, header(4), &msg, 1400, &mut out).unwrap();
            let h = Header::decode(&out[..n]).unwrap();
            assert_eq!(h.body, Body::Control);
            let mut scratch = Vec::new();
            assert_eq!(
                open(&rx, &h, &out[..n], 1400, &mut scratch),
                Ok(msg.clone())
            );
            assert_eq!(
                open(&rx, &h, &out[..n], 2, &mut scratch),
                Err(DatagramError::BadControlLength(
                    n - HEADER_LEN - tx.tag_len()
                ))
            );
            assert!(seal(&tx, header(5), &msg, 2, &mut out).is_none());
            if cipher == Cipher::Aes256Gcm {
                let mut bad = out;
                bad[HEADER_LEN] ^= 1;
                assert_eq!(
                    open(&rx, &h, &bad[..n], 1400, &mut scratch),
                    Err(DatagramError::AuthFailed)
                );
            } else {
                let mut bad = out;
                bad[HEADER_LEN] = 0xff;
                assert_eq!(
                    open(&rx, &h, &bad[..n], 1400, &mut scratch),
                    Err(DatagramError::BadControl)
                );
            }
        }
    }
}
