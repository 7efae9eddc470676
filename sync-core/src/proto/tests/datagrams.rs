//! Hostile datagrams and chunk re-verification, driving a sender/receiver
//! pair by hand (no link) in virtual time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proto::layout::{specs_every, Layout, LayoutConfig};
use crate::proto::receiver::{Event, Receiver, ReceiverConfig};
use crate::proto::sender::{Sender, SenderConfig};
use crate::proto::wire::DatagramError;
use crate::proto::{ControlMsg, SessionSecret};

fn pair(data: &[u8], chunk: usize, now: Instant) -> (Sender, Receiver) {
    let chunks = specs_every(data, chunk);
    let layout = Arc::new(Layout::new(LayoutConfig::default(), chunks).unwrap());
    let secret = SessionSecret([42; 32]);
    let s = Sender::new(SenderConfig::default(), layout.clone(), &secret, now);
    let r = Receiver::new(ReceiverConfig::default(), layout, &secret, now);
    (s, r)
}

#[test]
fn forged_replayed_foreign_and_garbage_datagrams_are_dropped_and_counted() {
    let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let now = Instant::now();
    let (mut s, mut r) = pair(&data, 4096, now);
    let mut buf = vec![0u8; s.max_datagram()];
    let src = data.clone();
    let len = s
        .poll_transmit(now, &mut &src[..], &mut buf)
        .unwrap()
        .unwrap();
    let good = buf[..len].to_vec();

    let mut tampered = good.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert_eq!(
        r.handle_datagram(now, &mut tampered),
        Err(DatagramError::AuthFailed)
    );

    let mut d = good.clone();
    let delivery = r.handle_datagram(now, &mut d).unwrap().unwrap();
    assert_eq!(delivery.stream_offset, 0);
    assert_eq!(delivery.data, &data[..delivery.data.len()]);

    let mut replay = good.clone();
    assert_eq!(
        r.handle_datagram(now, &mut replay),
        Err(DatagramError::Replayed)
    );

    let mut foreign = good.clone();
    foreign[4] ^= 0xff;
    assert_eq!(
        r.handle_datagram(now, &mut foreign),
        Err(DatagramError::ForeignSession)
    );

    for garbage in [
        &b""[..],
        &b"\x00\x01\x02"[..],
        &[0xB1u8; 100][..],
        &[7u8; 2000][..],
    ] {
        let mut g = garbage.to_vec();
        assert!(r.handle_datagram(now, &mut g).is_err());
    }
    let st = r.stats();
    assert_eq!(
        (st.auth_failed, st.replayed, st.foreign, st.malformed),
        (1, 1, 1, 4)
    );
    assert_eq!(st.blocks, 1, "only the genuine datagram was accepted");
}

proptest::proptest! {
    #[test]
    fn random_bytes_never_panic_the_receiver(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1600)) {
        let now = Instant::now();
        let (_, mut r) = pair(&[1u8; 5000], 1000, now);
        let mut b = bytes;
        proptest::prop_assert!(r.handle_datagram(now, &mut b).is_err());
        // A plausible header in front of random bytes still fails to authenticate.
        let mut h = vec![0xB1, 0, 0, 0];
        h.extend_from_slice(&SessionSecret([42; 32]).session_id().to_be_bytes());
        h.extend_from_slice(&[0; 20]);
        h.extend_from_slice(&b);
        proptest::prop_assert!(r.handle_datagram(now, &mut h).is_err());
    }
}

/// Runs the pair to completion over a perfect in-memory path, answering
/// chunk verification with `verdict`; returns the receiver's spool.
fn drive(
    s: &mut Sender,
    r: &mut Receiver,
    data: &[u8],
    now: &mut Instant,
    mut verdict: impl FnMut(usize) -> bool,
) -> Vec<u8> {
    let mut spool = vec![0u8; data.len()];
    let src = data.to_vec();
    let mut buf = vec![0u8; s.max_datagram()];
    for _ in 0..100_000 {
        if s.is_done() {
            return spool;
        }
        while let Some(len) = s.poll_transmit(*now, &mut &src[..], &mut buf).unwrap() {
            if let Ok(Some(d)) = r.handle_datagram(*now, &mut buf[..len]) {
                let o = d.stream_offset as usize;
                spool[o..o + d.data.len()].copy_from_slice(d.data);
            }
            while let Some(ev) = r.poll_event() {
                if let Event::ChunkComplete(c) = ev {
                    r.handle_chunk_verified(*now, c, verdict(c));
                }
            }
        }
        while let Some(m) = s.poll_control(*now) {
            r.handle_control(*now, m);
        }
        while let Some(m) = r.poll_feedback(*now) {
            let bytes = m.encode().unwrap();
            s.handle_control(*now, ControlMsg::decode(&bytes).unwrap());
        }
        *now += Duration::from_millis(1);
        s.handle_timeout(*now);
        r.handle_timeout(*now);
    }
    panic!("transfer did not finish: {s:?} {r:?}");
}

#[test]
fn a_chunk_that_fails_verification_is_requested_again() {
    let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7) as u8).collect();
    let mut now = Instant::now();
    let (mut s, mut r) = pair(&data, 3000, now);
    let mut failed_once = false;
    let spool = drive(&mut s, &mut r, &data, &mut now, |c| {
        if c == 5 && !failed_once {
            failed_once = true;
            return false;
        }
        true
    });
    assert!(failed_once);
    assert!(r.is_complete());
    assert_eq!(spool, data);
    assert_eq!(r.stats().chunk_failures, 1);
    assert!(
        s.stats().retransmissions >= 2,
        "chunk 5's blocks were sent again"
    );
}

#[test]
fn a_chunk_that_keeps_failing_ends_the_transfer() {
    let data = vec![9u8; 20_000];
    let now = Instant::now();
    let (mut s, mut r) = pair(&data, 5000, now);
    let mut buf = vec![0u8; s.max_datagram()];
    let src = data.clone();
    let mut t = now;
    let mut gave_up = false;
    'outer: for _ in 0..10_000 {
        while let Some(len) = s.poll_transmit(t, &mut &src[..], &mut buf).unwrap() {
            let _ = r.handle_datagram(t, &mut buf[..len]);
            while let Some(ev) = r.poll_event() {
                match ev {
                    Event::ChunkComplete(c) => r.handle_chunk_verified(t, c, c != 1),
                    Event::ChunkUnverifiable(1) => {
                        gave_up = true;
                        break 'outer;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        while let Some(m) = r.poll_feedback(t) {
            s.handle_control(t, m);
        }
        t += Duration::from_millis(1);
        s.handle_timeout(t);
    }
    assert!(gave_up);
}

#[test]
fn receiver_times_out_when_nothing_arrives() {
    let now = Instant::now();
    let (_, mut r) = pair(&[0u8; 3000], 1000, now);
    let deadline = r.poll_timeout().unwrap();
    r.handle_timeout(deadline);
    assert_eq!(r.poll_event(), Some(Event::TimedOut));
}
