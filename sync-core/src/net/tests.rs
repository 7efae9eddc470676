//! Real-socket tests on 127.0.0.1.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::proto::congestion::{mbit, CongestionConfig, FairConfig};
use crate::proto::layout::{specs_every, Layout, LayoutConfig, IPV4_UDP_OVERHEAD};
use crate::proto::sim::Pattern;
use crate::proto::wire::Header;
use crate::proto::{
    BlockSource, Receiver, ReceiverConfig, Sender, SenderConfig, SessionSecret, TailCoding,
};

fn layout_for(data: &[u8], chunk: usize) -> Arc<Layout> {
    layout_with(data, chunk, LayoutConfig::default().packet_size)
}

fn layout_with(data: &[u8], chunk: usize, packet_size: usize) -> Arc<Layout> {
    let chunks = specs_every(data, chunk);
    let config = LayoutConfig {
        ip_overhead: IPV4_UDP_OVERHEAD,
        packet_size,
    };
    Arc::new(Layout::new(config, chunks).unwrap())
}

fn localhost() -> UdpSocket {
    bind_in_range(Ipv4Addr::LOCALHOST.into(), 0..=0).unwrap()
}

fn sender_config() -> SenderConfig {
    SenderConfig {
        // Loopback has no bottleneck queue to read delay from; cap the rate
        // so the test measures correctness, not the kernel's drop policy.
        congestion: CongestionConfig::Fair(FairConfig {
            max_rate: mbit(2000),
            ..FairConfig::default()
        }),
        ..SenderConfig::default()
    }
}

/// Runs one transfer of `data` over loopback; returns the received bytes.
fn transfer(
    data: Arc<Vec<u8>>,
    layout: Arc<Layout>,
    secret: SessionSecret,
    rx_socket: UdpSocket,
) -> (Vec<u8>, ReceiveReport) {
    let peer = rx_socket.local_addr().unwrap();
    transfer_via(data, layout, secret, rx_socket, peer, sender_config())
}

/// [`transfer`], with the sender sending to `peer` (a relay) under `config`.
fn transfer_via(
    data: Arc<Vec<u8>>,
    layout: Arc<Layout>,
    secret: SessionSecret,
    rx_socket: UdpSocket,
    peer: std::net::SocketAddr,
    config: SenderConfig,
) -> (Vec<u8>, ReceiveReport) {
    let tx_socket = localhost();
    let _ = set_buffers(&rx_socket, socket::SOCKET_BUFFER);
    let _ = set_buffers(&tx_socket, socket::SOCKET_BUFFER);
    let (mut tx_link, mut rx_link) = channel_pair();
    let now = Instant::now();
    let receiver = Receiver::new(ReceiverConfig::default(), layout.clone(), &secret, now);
    let sender = Sender::new(config, layout.clone(), &secret, now);
    let sending = {
        let data = data.clone();
        std::thread::spawn(move || {
            let mut src: &[u8] = &data;
            run_sender(
                &tx_socket,
                peer,
                sender,
                &mut src as &mut dyn BlockSource,
                &mut tx_link,
            )
        })
    };
    let (spool, report) =
        run_receiver(&rx_socket, receiver, layout, Vec::new(), &mut rx_link).unwrap();
    sending.join().unwrap().unwrap();
    (spool, report)
}

#[test]
fn loopback_transfer_of_200_mb_is_byte_exact() {
    let len = 200_000_000usize;
    let mut data = vec![0u8; len];
    Pattern(77).read(0, &mut data).unwrap();
    let data = Arc::new(data);
    let layout = layout_for(&data, 1 << 20);
    let secret = SessionSecret::generate().unwrap();
    let started = Instant::now();
    let (spool, report) = transfer(data.clone(), layout, secret, localhost());
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "200 MB over loopback in {secs:.2} s ({:.0} Mbit/s), {:?}",
        len as f64 * 8.0 / secs / 1e6,
        report
    );
    assert!(spool[..] == data[..], "received bytes differ");
}

#[test]
fn jumbo_datagrams_with_a_short_last_block_are_byte_exact() {
    // 8972-byte datagrams: GSO sends of seven, and a stream whose last
    // block is short, so the last GSO group ends with a shorter segment.
    let len = 30_000_001usize;
    let mut data = vec![0u8; len];
    Pattern(5).read(0, &mut data).unwrap();
    let data = Arc::new(data);
    let layout = layout_with(&data, 1 << 20, 9000);
    assert_ne!(layout.stream_len() % layout.block_size() as u64, 0);
    let secret = SessionSecret::generate().unwrap();
    let (spool, report) = transfer(data.clone(), layout, secret, localhost());
    assert!(spool[..] == data[..], "received bytes differ: {report:?}");
}

#[test]
fn hostile_datagrams_from_another_socket_are_dropped_without_harm() {
    let data: Arc<Vec<u8>> = Arc::new((0..3_000_000u32).map(|i| (i % 251) as u8).collect());
    let layout = layout_for(&data, 100_000);
    let secret = SessionSecret::generate().unwrap();
    let rx_socket = localhost();
    let target = rx_socket.local_addr().unwrap();

    // An attacker who captured one genuine datagram replays it, tampers
    // with it, and sends garbage, all before and during the transfer.
    let mut spy = Sender::new(
        SenderConfig::default(),
        layout.clone(),
        &secret,
        Instant::now(),
    );
    let mut buf = vec![0u8; spy.max_datagram()];
    let mut src: &[u8] = &data;
    let n = spy
        .poll_transmit(Instant::now(), &mut src, &mut buf)
        .unwrap()
        .unwrap();
    let genuine = buf[..n].to_vec();
    let mut tampered = genuine.clone();
    tampered[n - 1] ^= 0x80;
    // Same header with another packet number: the tag must not verify.
    let mut renumbered = genuine.clone();
    renumbered[15] ^= 1;
    let attacker = localhost();
    for d in [
        &tampered[..],
        &renumbered[..],
        &genuine[..],
        &genuine[..],
        b"garbage",
        &[0xB1; 1500][..],
    ] {
        attacker.send_to(d, target).unwrap();
    }

    let (spool, report) = transfer(data.clone(), layout, secret, rx_socket);
    assert!(spool[..] == data[..]);
    let st = report.stats;
    assert!(st.replayed >= 1, "{st:?}");
    assert!(st.auth_failed >= 2, "{st:?}");
    assert!(st.malformed >= 2, "{st:?}");
}

#[test]
fn tail_codes_rebuild_blocks_lost_on_real_sockets() {
    // A relay on 127.0.0.1 drops every copy of two of the last blocks (up
    // to a bound, so that a broken decoder fails the test rather than
    // hanging it); with the tail codes forced on (loopback's round trip is
    // too short for them to pay), the receiver can only have those blocks
    // by rebuilding them from parity datagrams that crossed real sockets.
    // Dropping only the first copy would race the parity against the
    // blocks' repairs, which on loopback often win.
    const DROP_BOUND: usize = 200;
    let data: Arc<Vec<u8>> = Arc::new(
        (0..20_000_000u32)
            .map(|i| (i * 7 + i / 991) as u8)
            .collect(),
    );
    let layout = layout_for(&data, 1 << 16);
    let n = layout.block_count();
    let secret = SessionSecret::generate().unwrap();
    let rx_socket = localhost();
    let target = rx_socket.local_addr().unwrap();
    let relay = localhost();
    let _ = set_buffers(&relay, socket::SOCKET_BUFFER);
    relay
        .set_read_timeout(Some(std::time::Duration::from_millis(50)))
        .unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let relaying = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut dropped = [0usize; 2];
            let deadline = Instant::now() + std::time::Duration::from_secs(60);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let Ok(len) = relay.recv(&mut buf) else {
                    continue;
                };
                let block = Header::decode(&buf[..len]).ok().and_then(|h| h.block());
                let slot = match block {
                    Some(b) if b == n - 5 => Some(0),
                    Some(b) if b == n - 2 => Some(1),
                    _ => None,
                };
                if let Some(i) = slot.filter(|&i| dropped[i] < DROP_BOUND) {
                    dropped[i] += 1;
                    continue;
                }
                let _ = relay.send_to(&buf[..len], target);
            }
            dropped
        })
    };
    let config = SenderConfig {
        tail_coding: TailCoding::Always,
        ..sender_config()
    };
    let (spool, report) = transfer_via(data.clone(), layout, secret, rx_socket, relay_addr, config);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let dropped = relaying.join().unwrap();
    assert!(spool[..] == data[..], "received bytes differ");
    let st = report.stats;
    assert!(
        dropped.iter().all(|&d| (1..DROP_BOUND).contains(&d)),
        "copies dropped {dropped:?}: the blocks were not rebuilt, {st:?}"
    );
    assert!(st.parity >= 2 && st.recovered >= 2, "{st:?}");
    // Rebuilt blocks were written: no chunk failed verification.
    assert_eq!(st.chunk_failures, 0, "{st:?}");
}

/// A control connection that never delivers anything, as a TCP connection
/// stalled by loss looks from inside a transfer.
struct DeafLink;

impl ControlLink for DeafLink {
    fn send(&mut self, _: &crate::proto::ControlMsg) -> std::io::Result<()> {
        Ok(())
    }

    fn try_recv(&mut self) -> std::io::Result<Option<crate::proto::ControlMsg>> {
        Ok(None)
    }
}

#[test]
fn feedback_datagrams_carry_a_transfer_whose_control_link_is_deaf() {
    // With the control link silent both ways, the sender hears the
    // receiver's feedback, and its final word, only as datagrams, and the
    // receiver the sender's status only so: the transfer must end, byte
    // exact, well before either side's idle timeout.
    let data: Arc<Vec<u8>> = Arc::new((0..20_000_000u32).map(|i| (i / 7) as u8).collect());
    let layout = layout_for(&data, 1 << 18);
    let secret = SessionSecret::generate().unwrap();
    let rx_socket = localhost();
    let peer = rx_socket.local_addr().unwrap();
    let tx_socket = localhost();
    let _ = set_buffers(&rx_socket, socket::SOCKET_BUFFER);
    let _ = set_buffers(&tx_socket, socket::SOCKET_BUFFER);
    let timeout = std::time::Duration::from_secs(10);
    let now = Instant::now();
    let receiver_config = ReceiverConfig {
        idle_timeout: timeout,
        ..ReceiverConfig::default()
    };
    let receiver = Receiver::new(receiver_config, layout.clone(), &secret, now);
    let config = SenderConfig {
        idle_timeout: timeout,
        ..sender_config()
    };
    let sender = Sender::new(config, layout.clone(), &secret, now);
    let sending = {
        let data = data.clone();
        std::thread::spawn(move || {
            let mut src: &[u8] = &data;
            run_sender(&tx_socket, peer, sender, &mut src, &mut DeafLink)
        })
    };
    let (spool, report) = run_receiver(&rx_socket, receiver, layout, Vec::new(), &mut DeafLink)
        .expect("receiver finished");
    let stats = sending.join().unwrap().expect("sender finished");
    assert!(spool[..] == data[..], "received bytes differ");
    assert!(
        stats.control_datagrams > 0 && stats.feedback > 0,
        "{stats:?}"
    );
    assert!(report.stats.control > 0, "{report:?}");
    assert!(now.elapsed() < timeout, "took {:?}", now.elapsed());
}
