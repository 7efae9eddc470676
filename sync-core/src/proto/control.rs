//! Control messages of one transfer, carried over the reliable control channel.
//!
//! Owns the vocabulary the two state machines exchange besides data
//! datagrams — receiver feedback (selective NAKs, delay and rate samples,
//! back-pressure, completion), sender status (all blocks sent once), and
//! keepalives — and their encoding: postcard over serde, never longer than
//! [`MAX_CONTROL_MSG`], validated on decode so the state machines only ever
//! see well-formed ranges. It never does I/O; the session layer frames these
//! bytes (see [`super::frame`]) on whatever stream it has.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Largest encoded control message we build or accept.
pub const MAX_CONTROL_MSG: usize = 12 * 1024;
/// Most NAK ranges in one feedback message. Each costs at most 20 bytes
/// (two varints), so 512 fit in [`MAX_CONTROL_MSG`] with room to spare.
pub const MAX_NAK_RANGES: usize = 512;

/// Receiver's one-way-delay summary since the previous feedback, in
/// microseconds relative to an arbitrary per-transfer origin (the two clocks
/// are not synchronised; only differences are meaningful).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwdSample {
    pub min_us: i64,
    pub mean_us: i64,
}

/// Echo of the newest datagram's send time, for the sender's RTT estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// The datagram header's `send_time_us`.
    pub send_time_us: u32,
    /// How long the receiver held it before this feedback was built.
    pub hold_us: u32,
}

/// Receiver → sender: what is held, what is missing, how the path looks.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Feedback {
    /// Receiver-local sequence number, increasing.
    pub seq: u64,
    /// Every block below this is held.
    pub cum_ack: u64,
    /// The NAK list is exhaustive over this range: blocks in it that are not
    /// NAKed are held.
    pub scan: Range<u64>,
    /// Missing blocks within `scan`: ascending, disjoint, non-empty ranges.
    pub naks: Vec<Range<u64>>,
    /// Distinct blocks held.
    pub blocks_held: u64,
    /// Authenticated datagrams received, duplicates included.
    pub packets_received: u64,
    /// Highest authenticated packet number seen.
    pub highest_pn: u64,
    /// Datagram bytes per second arriving, over the receiver's rate window.
    pub recv_rate: u64,
    pub owd: Option<OwdSample>,
    pub echo: Option<Echo>,
    /// How full the receiver's write queue is, per mille (back-pressure).
    pub sink_fill: u16,
    /// Payload bytes per second the receiver's sink absorbed (0 = unknown).
    pub sink_rate: u64,
    /// Every block held and every chunk verified.
    pub complete: bool,
}

/// Sender → receiver status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SenderStatus {
    /// Blocks below this have been sent at least once.
    pub sent_once: u64,
    /// Every block has been sent at least once (tail probe: the receiver may
    /// NAK everything still missing without waiting for reordering).
    pub all_sent: bool,
    /// Smoothed RTT in microseconds (0 = not yet measured).
    pub srtt_us: u32,
    /// Current sending rate, datagram bytes per second.
    pub rate: u64,
    /// The sender codes no block below this (`0`: no promise yet; the
    /// stream's block count: no tail codes at all), so the receiver need
    /// not keep copies of them.
    pub codes_from: u64,
}

/// Every control message of a transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlMsg {
    Feedback(Feedback),
    Status(SenderStatus),
    Keepalive,
}

/// Control decoding errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("control message of {0} bytes exceeds the limit")]
    TooLong(usize),
    #[error("malformed control message: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after control message")]
    Trailing(usize),
    #[error("invalid feedback: {0}")]
    Invalid(&'static str),
}

/// The serde shape on the wire. NAK ranges are delta-encoded (gap from the
/// previous range's end, length) so postcard's varints keep them small.
#[derive(Serialize, Deserialize)]
enum WireMsg {
    Feedback {
        seq: u64,
        cum_ack: u64,
        scan_start: u64,
        scan_len: u64,
        naks: Vec<(u64, u64)>,
        blocks_held: u64,
        packets_received: u64,
        highest_pn: u64,
        recv_rate: u64,
        owd: Option<OwdSample>,
        echo: Option<Echo>,
        sink_fill: u16,
        sink_rate: u64,
        complete: bool,
    },
    Status(SenderStatus),
    Keepalive,
}

impl ControlMsg {
    /// Encodes the message. Feedback with more than [`MAX_NAK_RANGES`] or
    /// malformed ranges is a bug in the caller, reported as an error.
    pub fn encode(&self) -> Result<Vec<u8>, ControlError> {
        let wire = match self {
            ControlMsg::Feedback(f) => {
                validate(f)?;
                let mut prev = f.scan.start;
                let naks = f
                    .naks
                    .iter()
                    .map(|r| {
                        let d = (r.start - prev, r.end - r.start);
                        prev = r.end;
                        d
                    })
                    .collect();
                WireMsg::Feedback {
                    seq: f.seq,
                    cum_ack: f.cum_ack,
                    scan_start: f.scan.start,
                    scan_len: f.scan.end - f.scan.start,
                    naks,
                    blocks_held: f.blocks_held,
                    packets_received: f.packets_received,
                    highest_pn: f.highest_pn,
                    recv_rate: f.recv_rate,
                    owd: f.owd,
                    echo: f.echo,
                    sink_fill: f.sink_fill,
                    sink_rate: f.sink_rate,
                    complete: f.complete,
                }
            }
            ControlMsg::Status(s) => WireMsg::Status(*s),
            ControlMsg::Keepalive => WireMsg::Keepalive,
        };
        let bytes =
            postcard::to_allocvec(&wire).map_err(|e| ControlError::Malformed(e.to_string()))?;
        if bytes.len() > MAX_CONTROL_MSG {
            return Err(ControlError::TooLong(bytes.len()));
        }
        Ok(bytes)
    }

    /// Decodes and validates a message from the peer.
    pub fn decode(bytes: &[u8]) -> Result<ControlMsg, ControlError> {
        if bytes.len() > MAX_CONTROL_MSG {
            return Err(ControlError::TooLong(bytes.len()));
        }
        let (wire, rest) = postcard::take_from_bytes::<WireMsg>(bytes)
            .map_err(|e| ControlError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ControlError::Trailing(rest.len()));
        }
        Ok(match wire {
            WireMsg::Feedback {
                seq,
                cum_ack,
                scan_start,
                scan_len,
                naks,
                blocks_held,
                packets_received,
                highest_pn,
                recv_rate,
                owd,
                echo,
                sink_fill,
                sink_rate,
                complete,
            } => {
                let bad = ControlError::Invalid;
                let scan_end = scan_start
                    .checked_add(scan_len)
                    .ok_or(bad("scan overflows"))?;
                if naks.len() > MAX_NAK_RANGES {
                    return Err(bad("too many NAK ranges"));
                }
                let mut prev = scan_start;
                let mut ranges = Vec::with_capacity(naks.len());
                for (gap, len) in naks {
                    let start = prev.checked_add(gap).ok_or(bad("NAK overflows"))?;
                    let end = start.checked_add(len).ok_or(bad("NAK overflows"))?;
                    ranges.push(start..end);
                    prev = end;
                }
                let f = Feedback {
                    seq,
                    cum_ack,
                    scan: scan_start..scan_end,
                    naks: ranges,
                    blocks_held,
                    packets_received,
                    highest_pn,
                    recv_rate,
                    owd,
                    echo,
                    sink_fill,
                    sink_rate,
                    complete,
                };
                validate(&f)?;
                ControlMsg::Feedback(f)
            }
            WireMsg::Status(s) => ControlMsg::Status(s),
            WireMsg::Keepalive => ControlMsg::Keepalive,
        })
    }
}

/// The invariants the sender relies on.
fn validate(f: &Feedback) -> Result<(), ControlError> {
    let bad = ControlError::Invalid;
    if f.naks.len() > MAX_NAK_RANGES {
        return Err(bad("too many NAK ranges"));
    }
    if f.scan.start > f.scan.end {
        return Err(bad("scan range is reversed"));
    }
    let mut prev = f.scan.start;
    for r in &f.naks {
        if r.start < prev || r.end <= r.start || r.end > f.scan.end {
            return Err(bad(
                "NAK ranges must be ascending, disjoint, non-empty and inside the scan",
            ));
        }
        prev = r.end;
    }
    if f.sink_fill > 1000 {
        return Err(bad("sink fill above 1000 per mille"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feedback() -> impl Strategy<Value = Feedback> {
        (
            any::<[u64; 6]>(),
            0u64..1 << 40,
            proptest::collection::vec((0u64..1000, 1u64..1000), 0..MAX_NAK_RANGES),
            any::<Option<(i64, i64)>>(),
            any::<Option<(u32, u32)>>(),
            0u16..=1000,
            any::<bool>(),
        )
            .prop_map(|(n, scan_start, gaps, owd, echo, sink_fill, complete)| {
                let mut naks = Vec::new();
                let mut prev = scan_start;
                for (gap, len) in gaps {
                    naks.push(prev + gap..prev + gap + len);
                    prev += gap + len;
                }
                Feedback {
                    seq: n[0],
                    cum_ack: n[1],
                    scan: scan_start..prev + 5,
                    naks,
                    blocks_held: n[2],
                    packets_received: n[3],
                    highest_pn: n[4],
                    recv_rate: n[5],
                    owd: owd.map(|(min_us, mean_us)| OwdSample { min_us, mean_us }),
                    echo: echo.map(|(send_time_us, hold_us)| Echo {
                        send_time_us,
                        hold_us,
                    }),
                    sink_fill,
                    sink_rate: n[0] / 3,
                    complete,
                }
            })
    }

    proptest! {
        #[test]
        fn feedback_round_trips_within_the_size_limit(f in feedback()) {
            let msg = ControlMsg::Feedback(f);
            let bytes = msg.encode().unwrap();
            prop_assert!(bytes.len() <= MAX_CONTROL_MSG);
            prop_assert_eq!(ControlMsg::decode(&bytes).unwrap(), msg);
        }

        #[test]
        fn status_round_trips(sent_once: u64, all_sent: bool, srtt_us: u32, rate: u64, codes_from: u64) {
            let msg = ControlMsg::Status(SenderStatus { sent_once, all_sent, srtt_us, rate, codes_from });
            prop_assert_eq!(ControlMsg::decode(&msg.encode().unwrap()).unwrap(), msg);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(ControlMsg::Feedback(f)) = ControlMsg::decode(&bytes) {
                prop_assert!(validate(&f).is_ok());
            }
        }
    }

    #[test]
    fn worst_case_feedback_fits() {
        let naks = (0..MAX_NAK_RANGES as u64)
            .map(|i| (u64::MAX / 1024) * i..(u64::MAX / 1024) * i + (u64::MAX / 4096))
            .collect();
        let f = Feedback {
            seq: u64::MAX,
            cum_ack: u64::MAX,
            scan: 0..u64::MAX,
            naks,
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
        assert!(bytes.len() <= MAX_CONTROL_MSG, "{} bytes", bytes.len());
    }

    #[test]
    fn invalid_feedback_is_rejected() {
        let mut f = Feedback {
            scan: 10..20,
            naks: vec![12..15, 14..16],
            ..Feedback::default()
        };
        assert!(ControlMsg::Feedback(f.clone()).encode().is_err());
        f.naks = std::iter::once(12..25).collect();
        assert!(ControlMsg::Feedback(f.clone()).encode().is_err());
        f.naks = std::iter::once(12..12).collect();
        assert!(ControlMsg::Feedback(f.clone()).encode().is_err());
        // A hand-built wire message whose NAK escapes the scan.
        let wire = WireMsg::Feedback {
            seq: 0,
            cum_ack: 0,
            scan_start: 0,
            scan_len: 4,
            naks: vec![(2, 5)],
            blocks_held: 0,
            packets_received: 0,
            highest_pn: 0,
            recv_rate: 0,
            owd: None,
            echo: None,
            sink_fill: 0,
            sink_rate: 0,
            complete: false,
        };
        let bytes = postcard::to_allocvec(&wire).unwrap();
        assert!(matches!(
            ControlMsg::decode(&bytes),
            Err(ControlError::Invalid(_))
        ));
        let mut ok = ControlMsg::Keepalive.encode().unwrap();
        ok.push(0);
        assert_eq!(ControlMsg::decode(&ok), Err(ControlError::Trailing(1)));
    }
}
