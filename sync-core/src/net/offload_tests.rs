//! GSO grouping, GRO splitting, and loopback round trips through every
//! combination of offload and fallback, with the bytes checked.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use super::*;
use crate::net::socket::{bind_in_range, set_buffers};

#[test]
fn gso_groups_are_runs_of_equal_lengths_ending_at_a_shorter_one() {
    assert!(gso_groups([]).is_empty());
    assert_eq!(gso_groups([1000]), [1]);
    assert_eq!(gso_groups([1000; 5]), [5]);
    // A shorter datagram ends a group; the next one starts a new group.
    assert_eq!(gso_groups([1000, 1000, 300, 1000, 1000]), [3, 2]);
    // A longer one cannot join: segments are cut at the first's length.
    assert_eq!(gso_groups([500, 1000, 1000]), [1, 2]);
    assert_eq!(gso_groups([1000, 999, 999]), [2, 1]);
}

#[test]
fn gso_groups_respect_the_segment_and_byte_limits() {
    // 1472-byte datagrams: the 64 KiB packet limit binds before 64 segments.
    let per = MAX_GSO_BYTES / 1472;
    assert!(per < MAX_SEGMENTS);
    assert_eq!(gso_groups([1472; 100]), [per, per, 100 - 2 * per]);
    // Small datagrams: the segment count binds.
    assert_eq!(gso_groups([100; 130]), [64, 64, 2]);
    // Jumbo datagrams: seven per send.
    assert_eq!(gso_groups([8972; 15]), [7, 7, 1]);
    for g in gso_groups([8972; 15]) {
        assert!(g * 8972 <= MAX_GSO_BYTES);
    }
}

#[test]
fn coalesced_messages_split_at_the_segment_size() {
    let mut out = Vec::new();
    split_message(100, 2500, 1000, &mut out);
    assert_eq!(out, [100..1100, 1100..2100, 2100..2600]);
    out.clear();
    split_message(0, 700, 0, &mut out);
    split_message(1000, 700, 700, &mut out);
    split_message(2000, 700, 5000, &mut out);
    assert_eq!(out, [0..700, 1000..1700, 2000..2700]);
}

#[test]
fn refusals_that_mean_no_gso_here_are_recognised() {
    for code in [libc::EIO, libc::EINVAL, libc::EOPNOTSUPP] {
        assert!(
            sys::gso_refused(&io::Error::from_raw_os_error(code)) == cfg!(target_os = "linux"),
            "{code}"
        );
    }
    for code in [libc::EAGAIN, libc::ECONNREFUSED, libc::EMSGSIZE] {
        assert!(!sys::gso_refused(&io::Error::from_raw_os_error(code)));
    }
}

/// A sender and a receiver on loopback, and the receive buffer the kernel
/// granted (capped by `net.core.rmem_max`, 208 KiB on a stock kernel).
fn pair() -> (UdpSocket, UdpSocket, usize) {
    let a = bind_in_range(Ipv4Addr::LOCALHOST.into(), 0..=0).unwrap();
    let b = bind_in_range(Ipv4Addr::LOCALHOST.into(), 0..=0).unwrap();
    b.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let recv = set_buffers(&b, 8 << 20).map_or(0, |s| s.recv);
    (a, b, recv)
}

/// Kernel memory a queued datagram of `len` bytes is charged, at most
/// (its buffer and bookkeeping).
fn charged(len: usize) -> usize {
    len + 1024
}

/// Datagram `i` of a test stream: `len` bytes that identify it.
fn datagram(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 7 + j * 13 % 251) as u8).collect()
}

/// What a round trip used.
struct Used {
    gso: bool,
    gro: bool,
    /// Most datagrams one `recv` returned.
    largest_read: usize,
}

/// Sends `lens.len()` distinct datagrams and checks they arrive intact and
/// in order. Sends at most half the receive buffer before reading it all
/// back, so that no datagram is dropped for want of buffer, whatever
/// `rmem_max` this machine has.
fn round_trip(allow_gso: bool, allow_gro: bool, lens: &[usize]) -> Used {
    let (a, b, recv_buf) = pair();
    let mut tx = Transmit::new(&a, allow_gso);
    let mut rx = RecvBuffers::new(&b, allow_gro);
    assert!(allow_gso || !tx.gso());
    assert!(allow_gro || !rx.gro());
    let sent: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &l)| datagram(i, l))
        .collect();
    let budget = (recv_buf / 2).max(charged(lens.iter().copied().max().unwrap_or(0)));
    let (mut next, mut got, mut largest_read) = (0, Vec::<Vec<u8>>::new(), 0);
    // Bounded: every round sends and receives at least one datagram on an
    // idle loopback, or fails.
    for _ in 0..lens.len() {
        if next == sent.len() {
            break;
        }
        let mut end = next;
        let mut bytes = 0;
        while end < sent.len() && (end == next || bytes + charged(sent[end].len()) <= budget) {
            bytes += charged(sent[end].len());
            end += 1;
        }
        while next < end {
            let refs: Vec<&[u8]> = sent[next..end].iter().map(|d| &d[..]).collect();
            let n = tx.send(&a, b.local_addr().unwrap(), &refs).unwrap();
            assert!(n > 0, "nothing sent");
            next += n;
        }
        while got.len() < next {
            let n = rx.recv(&b).unwrap();
            assert!(n > 0, "timed out after {} datagrams", got.len());
            largest_read = largest_read.max(n);
            got.extend((0..n).map(|i| rx.datagram(i).to_vec()));
        }
    }
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "datagrams differ");
    Used {
        gso: tx.gso(),
        gro: rx.gro(),
        largest_read,
    }
}

/// 300 full-size datagrams and a short tail, like a block stream's end.
fn stream_lens(full: usize) -> Vec<usize> {
    let mut lens = vec![full; 300];
    lens.push(full / 3);
    lens
}

#[test]
fn gso_to_gro_round_trip_is_byte_exact() {
    let used = round_trip(true, true, &stream_lens(1472));
    eprintln!("gso {}, gro {}", used.gso, used.gro);
    if cfg!(target_os = "linux") {
        // Every kernel this project supports (>= 5.0) has both, and the
        // GSO sends arrive coalesced: one read returns more datagrams than
        // it has messages.
        assert!(used.gso && used.gro);
        assert!(used.largest_read > GRO_SLOTS, "{}", used.largest_read);
    }
}

#[test]
fn jumbo_and_mixed_lengths_round_trip() {
    round_trip(true, true, &stream_lens(8972));
    let mixed: Vec<usize> = (0..200).map(|i| [1472, 1472, 1472, 90][i % 4]).collect();
    round_trip(true, true, &mixed);
}

#[test]
fn forced_fallbacks_round_trip_in_every_combination() {
    for (gso, gro) in [(false, false), (true, false), (false, true)] {
        let used = round_trip(gso, gro, &stream_lens(1472));
        assert!(!used.gso || gso);
        assert!(!used.gro || gro);
        if !used.gro {
            assert!(used.largest_read <= BATCH);
        }
    }
}

#[test]
fn a_datagram_from_a_stranger_is_not_merged_into_a_stream() {
    let (a, b, _) = pair();
    let stranger = bind_in_range(Ipv4Addr::LOCALHOST.into(), 0..=0).unwrap();
    let mut tx = Transmit::new(&a, true);
    let mut rx = RecvBuffers::new(&b, true);
    let ours: Vec<Vec<u8>> = (0..10).map(|i| datagram(i, 1000)).collect();
    let refs: Vec<&[u8]> = ours.iter().map(|d| &d[..]).collect();
    stranger
        .send_to(&[0xEE; 1000], b.local_addr().unwrap())
        .unwrap();
    assert_eq!(tx.send(&a, b.local_addr().unwrap(), &refs).unwrap(), 10);
    let mut got = Vec::new();
    for _ in 0..20 {
        if got.len() == 11 {
            break;
        }
        let n = rx.recv(&b).unwrap();
        assert!(n > 0, "timed out");
        got.extend((0..n).map(|i| rx.datagram(i).to_vec()));
    }
    assert_eq!(got[0], vec![0xEE; 1000]);
    assert!(got[1..] == ours[..]);
}
