//! Hostile datagrams, chunk re-verification and when a NAK is acted on,
//! driving a sender/receiver pair (or a sender alone) by hand, with no link,
//! in virtual time.
//!
//! One file of about 650 lines: every test drives the same hand-built
//! sender/receiver pair, whose helpers open the file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proto::control::{Echo, Feedback};
use crate::proto::crypto::{Cipher, Direction, PacketKey};
use crate::proto::fec::TailCode;
use crate::proto::layout::{specs_every, Layout, LayoutConfig};
use crate::proto::receiver::{Event, Receiver, ReceiverConfig};
use crate::proto::sender::{Sender, SenderConfig};
use crate::proto::wire::{Body, DatagramError, Header, HEADER_LEN};
use crate::proto::{ControlMsg, SenderStatus, SessionSecret};

fn pair(data: &[u8], chunk: usize, now: Instant) -> (Sender, Receiver) {
    let chunks = specs_every(data, chunk);
    let layout = Arc::new(Layout::new(LayoutConfig::default(), chunks).unwrap());
    let secret = SessionSecret([42; 32]);
    let s = Sender::new(SenderConfig::default(), layout.clone(), &secret, now);
    let r = Receiver::new(ReceiverConfig::default(), layout, &secret, now);
    (s, r)
}

/// The receiver's two ways in: decrypting in place, or into a buffer of
/// the driver's (`handle_datagram_into`). Both must judge every datagram
/// alike.
#[derive(Clone, Copy, Debug)]
enum Way {
    InPlace,
    Into,
}

/// Feeds `datagram` to `r` the `way` given; returns the new block's stream
/// offset and bytes.
fn receive_by(
    r: &mut Receiver,
    way: Way,
    now: Instant,
    datagram: &[u8],
) -> Result<Option<(u64, Vec<u8>)>, DatagramError> {
    match way {
        Way::InPlace => {
            let mut d = datagram.to_vec();
            let got = r.handle_datagram(now, &mut d)?;
            Ok(got.map(|d| (d.stream_offset, d.data.to_vec())))
        }
        Way::Into => {
            let mut out = vec![0xEE; block_size()];
            let got = r.handle_datagram_into(now, datagram, &mut out)?;
            Ok(got.map(|p| (p.stream_offset, out[..p.len].to_vec())))
        }
    }
}

/// The block size of every [`pair`] (it depends on the packet size only).
fn block_size() -> usize {
    LayoutConfig::default().block_size().unwrap()
}

/// The first datagram `s` sends of `src`.
fn first_datagram(s: &mut Sender, src: &[u8], now: Instant) -> Vec<u8> {
    let mut buf = vec![0u8; s.max_datagram()];
    let len = s
        .poll_transmit(now, &mut &src[..], &mut buf)
        .unwrap()
        .expect("a datagram");
    buf.truncate(len);
    buf
}

#[test]
fn forged_replayed_foreign_and_garbage_datagrams_are_dropped_and_counted() {
    for way in [Way::InPlace, Way::Into] {
        hostile_datagrams(way);
    }
}

fn hostile_datagrams(way: Way) {
    let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let now = Instant::now();
    let (mut s, mut r) = pair(&data, 4096, now);
    let good = first_datagram(&mut s, &data, now);

    let mut tampered = good.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert_eq!(
        receive_by(&mut r, way, now, &tampered),
        Err(DatagramError::AuthFailed),
        "{way:?}"
    );

    let (offset, bytes) = receive_by(&mut r, way, now, &good).unwrap().unwrap();
    assert_eq!(offset, 0);
    assert_eq!(bytes, &data[..bytes.len()], "{way:?}");

    assert_eq!(
        receive_by(&mut r, way, now, &good),
        Err(DatagramError::Replayed)
    );

    let mut foreign = good.clone();
    foreign[4] ^= 0xff;
    assert_eq!(
        receive_by(&mut r, way, now, &foreign),
        Err(DatagramError::ForeignSession)
    );

    for garbage in [
        &b""[..],
        &b"\x00\x01\x02"[..],
        &[0xB1u8; 100][..],
        &[7u8; 2000][..],
    ] {
        assert!(receive_by(&mut r, way, now, garbage).is_err(), "{way:?}");
    }
    let st = r.stats();
    assert_eq!(
        (st.auth_failed, st.replayed, st.foreign, st.malformed),
        (1, 1, 1, 4)
    );
    assert_eq!(st.blocks, 1, "only the genuine datagram was accepted");
}

#[test]
fn a_buffer_too_small_for_a_block_is_refused_not_overrun() {
    let data = vec![5u8; 10_000];
    let now = Instant::now();
    let (mut s, mut r) = pair(&data, 4096, now);
    let datagram = first_datagram(&mut s, &data, now);
    let mut small = vec![0u8; block_size() - 1];
    assert!(matches!(
        r.handle_datagram_into(now, &datagram, &mut small),
        Err(DatagramError::BadPayloadLength { .. })
    ));
    assert_eq!(r.stats().blocks, 0);
}

/// A source that never lends, so the sender copies and seals in place.
struct Copying<'a>(&'a [u8]);

impl crate::proto::BlockSource for Copying<'_> {
    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        (&mut &self.0[..]).read(stream_offset, buf)
    }
}

#[test]
fn sealing_from_a_lent_block_or_a_copy_gives_the_same_datagrams() {
    let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7) as u8).collect();
    let now = Instant::now();
    let (mut lent, _) = pair(&data, 4096, now);
    let (mut copied, _) = pair(&data, 4096, now);
    let mut a = vec![0u8; lent.max_datagram()];
    let mut b = vec![0u8; copied.max_datagram()];
    let mut sent = 0;
    for step in 0..20u64 {
        let t = now + Duration::from_millis(step);
        loop {
            let x = lent.poll_transmit(t, &mut &data[..], &mut a).unwrap();
            let y = copied
                .poll_transmit(t, &mut Copying(&data), &mut b)
                .unwrap();
            assert_eq!(x, y);
            let Some(len) = x else { break };
            assert_eq!(a[..len], b[..len], "datagram {sent}");
            sent += 1;
        }
    }
    assert!(sent > 30, "only {sent} datagrams compared");
}

/// Everything the sender emits in its first 50 ms, hearing nothing back,
/// as (header, datagram).
fn burst(s: &mut Sender, src: &[u8], now: Instant) -> Vec<(Header, Vec<u8>)> {
    let mut buf = vec![0u8; s.max_datagram()];
    let mut out = Vec::new();
    for ms in 0..50 {
        let t = now + Duration::from_millis(ms);
        while let Some(len) = s.poll_transmit(t, &mut &src[..], &mut buf).unwrap() {
            out.push((Header::decode(&buf[..len]).unwrap(), buf[..len].to_vec()));
        }
    }
    out
}

#[test]
fn parity_rebuilds_lost_last_blocks_without_a_nak() {
    let data: Vec<u8> = (0..60_000u32).map(|i| (i * 13 + i / 777) as u8).collect();
    let now = Instant::now();
    let (mut s, mut r) = pair(&data, 7000, now);
    let sent = burst(&mut s, &data, now);
    let n = sent.iter().filter_map(|(h, _)| h.block()).max().unwrap() + 1;
    let parity: Vec<_> = sent
        .iter()
        .filter(|(h, _)| matches!(h.body, Body::Parity { .. }))
        .collect();
    assert_eq!(parity.len(), 2, "two parity shards with no loss measured");
    // The first copies of the last block and of the one three before it
    // are lost; every other datagram of the burst arrives, speculative
    // copies excepted (nothing but the parity may rebuild the two).
    let lost = [n - 1, n - 4];
    let mut spool = vec![0u8; data.len()];
    let mut first_copy = vec![true; n as usize];
    for (h, d) in &sent {
        if let Some(b) = h.block() {
            let first = std::mem::replace(&mut first_copy[b as usize], false);
            if lost.contains(&b) || !first {
                continue;
            }
        }
        receive(&mut r, now, &mut d.clone(), &mut spool);
        while let Some(ev) = r.poll_event() {
            if let Event::ChunkComplete(c) = ev {
                let range = chunk_bytes(&data, 7000, c);
                let ok = spool[range.clone()] == data[range];
                r.handle_chunk_verified(now, c, ok);
            }
        }
    }
    assert!(r.is_complete(), "{:?}", r.stats());
    assert_eq!(spool, data);
    assert_eq!((r.stats().parity, r.stats().recovered), (2, 2));
}

/// Byte range of chunk `c` when `data` is cut every `chunk` bytes.
fn chunk_bytes(data: &[u8], chunk: usize, c: usize) -> std::ops::Range<usize> {
    c * chunk..((c + 1) * chunk).min(data.len())
}

/// An authentic parity datagram (the pair's key) of `code` with a zero
/// payload of `len` bytes.
fn sealed_parity(pn: u64, code: TailCode, index: u16, len: usize) -> Vec<u8> {
    let key = PacketKey::new(
        &SessionSecret([42; 32]),
        Cipher::Aes256Gcm,
        Direction::SenderToReceiver,
    );
    let mut d = vec![0u8; HEADER_LEN + len + 16];
    Header {
        session_id: SessionSecret([42; 32]).session_id(),
        packet_number: pn,
        body: Body::Parity { code, index },
        send_time_us: 0,
    }
    .encode(&mut d);
    let (head, rest) = d.split_at_mut(HEADER_LEN);
    let (payload, tag) = rest.split_at_mut(len);
    key.seal(pn, head, payload, tag);
    d
}

proptest::proptest! {
    /// Authentic parity datagrams naming any code, index and length, before
    /// any block: dropped or taken, never a panic, and the stream still
    /// arrives whole (a code "rebuilt" from them fails its chunk's
    /// verification once and is fetched again; the sender's first packet
    /// numbers, taken by them, are replays and go again).
    #[test]
    fn any_authentic_parity_is_dropped_or_taken_without_harm(
        codes in proptest::collection::vec(
            (0u64..40, 1u16..=4096, 1u16..=4096, 0u16..4096, 1398usize..1418),
            1..12,
        ),
    ) {
        let data: Vec<u8> = (0..40_000u32).map(|i| (i * 3) as u8).collect();
        let now = Instant::now();
        let (mut s, mut r) = pair(&data, 5000, now);
        for (pn, &(first_block, originals, parity, index, len)) in codes.iter().enumerate() {
            let code = TailCode { first_block, originals, parity: parity.min(originals) };
            let mut d = sealed_parity(pn as u64, code, index % code.parity, len);
            let _ = r.handle_datagram(now, &mut d);
        }
        let honest = |c: usize, spool: &[u8]| {
            let range = chunk_bytes(&data, 5000, c);
            spool[range.clone()] == data[range]
        };
        let spool = drive(&mut s, &mut r, &data, &mut now.clone(), honest);
        proptest::prop_assert!(spool == data);
    }
}

#[test]
fn forged_and_impossible_parity_shards_are_dropped_and_counted() {
    let data = vec![5u8; 30_000];
    let now = Instant::now();
    let (mut s, mut r) = pair(&data, 4096, now);
    let sent = burst(&mut s, &data, now);
    let (_, genuine) = sent
        .iter()
        .find(|(h, _)| matches!(h.body, Body::Parity { .. }))
        .expect("a parity shard");

    let mut tampered = genuine.clone();
    tampered[HEADER_LEN] ^= 1;
    assert_eq!(
        r.handle_datagram(now, &mut tampered),
        Err(DatagramError::AuthFailed)
    );
    // Authentic shards of codes the stream cannot have: a window past its
    // end, more parity than blocks, one overlapping a code accepted.
    let n = data
        .len()
        .div_ceil(LayoutConfig::default().block_size().unwrap()) as u64;
    let len = genuine.len() - HEADER_LEN - 16;
    let seal = |pn, code| sealed_parity(pn, code, 0, len);
    let code = |first_block, originals, parity| TailCode {
        first_block,
        originals,
        parity,
    };
    for (pn, bad) in [(1000, code(n, 1, 1)), (1001, code(n - 2, 2, 3))] {
        assert_eq!(
            r.handle_datagram(now, &mut seal(pn, bad)),
            Err(DatagramError::BadParity),
            "{bad:?}"
        );
    }
    assert_eq!(r.handle_datagram(now, &mut genuine.clone()), Ok(None));
    assert_eq!(
        r.handle_datagram(now, &mut seal(1002, code(n - 3, 3, 1))),
        Err(DatagramError::BadParity),
        "a code overlapping one accepted"
    );
    let st = r.stats();
    assert_eq!((st.auth_failed, st.malformed, st.parity), (1, 3, 1));
}

proptest::proptest! {
    #[test]
    fn random_bytes_never_panic_the_receiver(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1600)) {
        let now = Instant::now();
        let (_, mut r) = pair(&[1u8; 5000], 1000, now);
        // A plausible header in front of random bytes still fails to authenticate.
        let mut h = vec![0xB1, 0, 0, 0];
        h.extend_from_slice(&SessionSecret([42; 32]).session_id().to_be_bytes());
        h.extend_from_slice(&[0; 20]);
        h.extend_from_slice(&bytes);
        for way in [Way::InPlace, Way::Into] {
            proptest::prop_assert!(receive_by(&mut r, way, now, &bytes).is_err());
            proptest::prop_assert!(receive_by(&mut r, way, now, &h).is_err());
        }
    }
}

/// Feeds one datagram to `r` and writes what it delivers or rebuilds into
/// `spool`.
fn receive(r: &mut Receiver, now: Instant, datagram: &mut [u8], spool: &mut [u8]) {
    if let Ok(Some(d)) = r.handle_datagram(now, datagram) {
        let o = d.stream_offset as usize;
        spool[o..o + d.data.len()].copy_from_slice(d.data);
    }
    while let Some(d) = r.poll_recovered() {
        let o = d.stream_offset as usize;
        spool[o..o + d.data.len()].copy_from_slice(&d.data);
    }
}

/// Runs the pair to completion over a perfect in-memory path, answering
/// chunk verification with `verdict` (given the chunk and the spool so
/// far); returns the receiver's spool.
fn drive(
    s: &mut Sender,
    r: &mut Receiver,
    data: &[u8],
    now: &mut Instant,
    mut verdict: impl FnMut(usize, &[u8]) -> bool,
) -> Vec<u8> {
    let mut spool = vec![0u8; data.len()];
    let src = data.to_vec();
    let mut buf = vec![0u8; s.max_datagram()];
    for _ in 0..100_000 {
        if s.is_done() {
            return spool;
        }
        while let Some(len) = s.poll_transmit(*now, &mut &src[..], &mut buf).unwrap() {
            receive(r, *now, &mut buf[..len], &mut spool);
            while let Some(ev) = r.poll_event() {
                if let Event::ChunkComplete(c) = ev {
                    let ok = verdict(c, &spool);
                    r.handle_chunk_verified(*now, c, ok);
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
    // Fails twice: the first time, the copies the sender resends
    // speculatively at the end of the stream may already refill the chunk;
    // the second time only the NAKs or the tail code can.
    let mut failures = 0;
    let spool = drive(&mut s, &mut r, &data, &mut now, |c, _| {
        if c == 5 && failures < 2 {
            failures += 1;
            return false;
        }
        true
    });
    assert_eq!(failures, 2);
    assert!(r.is_complete());
    assert_eq!(spool, data);
    assert_eq!(r.stats().chunk_failures, 2);
    // Twice refilled: by repairs, or by the tail code, which rebuilds
    // blocks whose kept copies were forgotten with the chunk.
    assert!(
        s.stats().retransmissions + r.stats().recovered >= 2,
        "chunk 5's blocks came again: {:?} {:?}",
        s.stats(),
        r.stats()
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

/// Sends up to `n` data datagrams at `now` and returns their blocks
/// (parity shards go out uncounted).
fn send(s: &mut Sender, src: &[u8], now: Instant, n: usize) -> Vec<u64> {
    let mut buf = vec![0u8; s.max_datagram()];
    let mut blocks = Vec::new();
    while blocks.len() < n {
        let Some(len) = s.poll_transmit(now, &mut &src[..], &mut buf).unwrap() else {
            break;
        };
        blocks.extend(Header::decode(&buf[..len]).unwrap().block());
    }
    blocks
}

/// Feedback NAKing `nak` (everything else below `held` held), echoing a
/// datagram sent `echo` after the sender started.
fn nak(seq: u64, held: u64, nak: u64, echo: Duration) -> ControlMsg {
    ControlMsg::Feedback(Feedback {
        seq,
        scan: 0..held,
        naks: std::iter::once(nak..nak + 1).collect(),
        blocks_held: held - 1,
        echo: Some(Echo {
            send_time_us: echo.as_micros() as u32,
            hold_us: 0,
        }),
        ..Feedback::default()
    })
}

#[test]
fn a_nak_waits_until_the_receiver_has_seen_a_later_datagram() {
    let data = vec![5u8; 100_000];
    let t0 = Instant::now();
    let (mut s, _) = pair(&data, 10_000, t0);
    assert_eq!(send(&mut s, &data, t0, 4), [0, 1, 2, 3]);
    let later = Duration::from_millis(10);
    assert_eq!(send(&mut s, &data, t0 + later, 4), [4, 5, 6, 7]);

    // 250 ms on — past the hold block 5 got when it left (about 200 ms,
    // from the initial RTT guess) — a NAK for it arrives, but the
    // receiver's newest datagram left at t0, before block 5, and the RTT
    // has grown to 250 ms: the queue grew, and block 5 is still on its
    // way. A resend now would only duplicate it.
    let t = t0 + Duration::from_millis(250);
    s.handle_control(t, nak(1, 8, 5, Duration::ZERO));
    assert_eq!(send(&mut s, &data, t, 1), [8], "block 5 resent too early");
    assert_eq!(s.stats().retransmissions, 0);

    // Once the receiver has seen a datagram sent with block 5, the NAK
    // means block 5 was lost.
    let t = t + Duration::from_millis(5);
    s.handle_control(t, nak(2, 8, 5, later));
    assert_eq!(send(&mut s, &data, t, 1), [5]);
    assert_eq!(s.stats().retransmissions, 1);
}

/// The next datagram the sender lets out, moving its clock on until it does.
fn next_datagram(s: &mut Sender, src: &[u8], clock: &mut Instant, buf: &mut [u8]) -> usize {
    loop {
        if let Some(len) = s.poll_transmit(*clock, &mut &src[..], buf).unwrap() {
            return len;
        }
        *clock += Duration::from_millis(1);
    }
}

/// The arrival rate in the receiver's latest feedback, if any was due.
fn reported_rate(r: &mut Receiver, now: Instant) -> Option<u64> {
    match r.poll_feedback(now)? {
        ControlMsg::Feedback(f) => Some(f.recv_rate),
        other => panic!("expected feedback, got {other:?}"),
    }
}

#[test]
fn the_arrival_rate_window_follows_the_round_trip() {
    // On a 300 µs path the rate must be measured over a few milliseconds:
    // startup doubles every 10 ms there, and a 50 ms window would report
    // the rate of five doublings ago when startup ends. Datagrams arrive
    // one per 100 µs for 30 ms, then one per 50 µs: within 12 ms the
    // receiver reports the doubled rate.
    let data = vec![7u8; 50_000_000];
    let t0 = Instant::now();
    let (mut s, mut r) = pair(&data, 1 << 20, t0);
    r.handle_control(
        t0,
        ControlMsg::Status(SenderStatus {
            srtt_us: 300,
            ..SenderStatus::default()
        }),
    );
    let mut buf = vec![0u8; s.max_datagram()];
    let mut clock = t0;
    let mut now = t0;
    let mut last = None;
    let mut arrive = |gap_us: u64, count: u32, now: &mut Instant, last: &mut Option<u64>| {
        for _ in 0..count {
            let len = next_datagram(&mut s, &data, &mut clock, &mut buf);
            r.handle_datagram(*now, &mut buf[..len]).unwrap();
            *last = reported_rate(&mut r, *now).or(*last);
            *now += Duration::from_micros(gap_us);
        }
    };
    arrive(100, 300, &mut now, &mut last);
    let slow = last.expect("no feedback in 30 ms") as f64;
    arrive(50, 240, &mut now, &mut last);
    let fast = last.unwrap() as f64;
    assert!(fast > 1.7 * slow, "rate {fast} after doubling from {slow}");
}

/// Feedback saying `received` of the datagrams up to packet number
/// `highest` arrived.
fn counts(seq: u64, received: u64, highest: u64) -> ControlMsg {
    ControlMsg::Feedback(Feedback {
        seq,
        packets_received: received,
        highest_pn: highest,
        ..Feedback::default()
    })
}

#[test]
fn the_loss_estimate_recovers_when_each_feedback_spans_few_datagrams() {
    // Heavy loss, then a trickle: four datagrams per feedback, all
    // arriving. Each interval alone is too short to measure, so they add
    // up; the estimate must fall instead of freezing at the heavy loss
    // (which kept a squeezed flow cutting its rate for good).
    let data = vec![1u8; 100_000];
    let t0 = Instant::now();
    let (mut s, _) = pair(&data, 10_000, t0);
    let mut t = t0;
    let (mut received, mut highest) = (0, 0);
    for seq in 1..=8 {
        received += 40;
        highest += 100;
        t += Duration::from_millis(5);
        s.handle_control(t, counts(seq, received, highest));
    }
    let heavy = s.stats().loss;
    assert!(heavy > 0.4, "loss {heavy}");
    for seq in 9..=100 {
        received += 4;
        highest += 4;
        t += Duration::from_millis(5);
        s.handle_control(t, counts(seq, received, highest));
    }
    let after = s.stats().loss;
    assert!(
        after < 0.05,
        "loss still {after} after 368 datagrams without one lost"
    );
}

#[test]
fn a_confirmation_withdrawn_below_the_cumulative_ack_comes_back_with_it() {
    // The sender sets only the part of a cumulative acknowledgement past
    // what it already knows held; a NAK that withdraws confirmations
    // below that (a chunk failed verification) must make the next
    // acknowledgement set them again.
    let data = vec![5u8; 100_000];
    let t0 = Instant::now();
    let (mut s, _) = pair(&data, 10_000, t0);
    assert_eq!(send(&mut s, &data, t0, 8).len(), 8);
    let feedback = |seq, cum_ack, scan, naks| {
        ControlMsg::Feedback(Feedback {
            seq,
            cum_ack,
            scan,
            naks,
            ..Feedback::default()
        })
    };
    s.handle_control(t0, feedback(1, 8, 8..8, vec![]));
    assert_eq!(s.stats().blocks_confirmed, 8);
    s.handle_control(t0, feedback(2, 2, 2..8, std::iter::once(2..4).collect()));
    assert_eq!(s.stats().blocks_confirmed, 6);
    s.handle_control(t0, feedback(3, 8, 8..8, vec![]));
    assert_eq!(s.stats().blocks_confirmed, 8);
}
