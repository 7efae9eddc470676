//! Handshake and framing tests on real loopback sockets.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use super::*;
use crate::daemon::handshake::*;
use crate::daemon::keys::{generate, PrivateKey, PublicKey};
use crate::error::{Error, ProtocolError};

const T: Duration = Duration::from_secs(5);

struct Setup {
    server_key: PrivateKey,
    server_pub: PublicKey,
    client_key: PrivateKey,
    client_pub: PublicKey,
}

fn setup() -> Setup {
    let (server_key, server_pub) = generate().unwrap();
    let (client_key, client_pub) = generate().unwrap();
    Setup {
        server_key,
        server_pub,
        client_key,
        client_pub,
    }
}

/// A listening server thread running `accept` once, and a connected socket.
fn serve(
    key: &PrivateKey,
    pre: Preamble,
    timeout: Duration,
) -> (JoinHandle<Result<(NoiseTransport, PublicKey)>>, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let key = key.clone();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        accept(s, &key, &pre, timeout)
    });
    (h, TcpStream::connect(addr).unwrap())
}

fn connected(s: &Setup) -> (NoiseTransport, PublicKey, NoiseTransport) {
    let (h, sock) = serve(&s.server_key, Preamble::ours(), T);
    let client = initiate(sock, &s.client_key, &s.server_pub, &Preamble::ours(), T).unwrap();
    let (server, key) = h.join().unwrap().unwrap();
    (server, key, client)
}

#[test]
fn round_trip_both_ways_with_large_frames() {
    let s = setup();
    let (mut server, key, mut client) = connected(&s);
    assert_eq!(key, s.client_pub);
    let big = Msg::Data {
        idx: 3,
        bytes: (0..300_000u32).map(|i| i as u8).collect(),
    };
    let msgs = [
        Msg::Error("hi".into()),
        big.clone(),
        Msg::RoundDone { round: 2 },
    ];
    let sender = std::thread::spawn(move || {
        for m in &msgs {
            client.send(m).unwrap();
        }
        client
    });
    assert_eq!(server.recv().unwrap(), Msg::Error("hi".into()));
    assert_eq!(server.recv().unwrap(), big);
    assert_eq!(server.recv().unwrap(), Msg::RoundDone { round: 2 });
    let mut client = sender.join().unwrap();
    // Every frame's bytes, plus a tag and a length prefix per Noise message.
    let expect: u64 = [Msg::Error("hi".into()), big, Msg::RoundDone { round: 2 }]
        .iter()
        .map(|m| {
            let len = encode(m).unwrap().len();
            (len + len.div_ceil(MAX_PLAIN) * (TAG + 2)) as u64
        })
        .sum();
    assert_eq!(client.wire_bytes_sent(), expect);
    let done = Msg::SenderDone {
        wire_bytes_sent: 5,
        vanished: 0,
        link: None,
    };
    server.send(&done).unwrap();
    assert_eq!(client.recv().unwrap(), done);
}

#[test]
fn a_wrong_pinned_server_key_fails_on_both_sides() {
    let s = setup();
    let other = setup();
    let (h, sock) = serve(&s.server_key, Preamble::ours(), T);
    let c = initiate(sock, &s.client_key, &other.server_pub, &Preamble::ours(), T);
    assert!(
        matches!(c, Err(Error::Refused(ref m)) if m.contains("--server-key")),
        "{:?}",
        c.err()
    );
    assert!(matches!(h.join().unwrap(), Err(Error::Protocol(_))));
}

#[test]
fn version_mismatch_names_both_versions() {
    let s = setup();
    let (h, sock) = serve(&s.server_key, Preamble::ours(), T);
    let mut newer = Preamble::ours();
    newer.version = DAEMON_VERSION + 1;
    newer.software = "sluice 9.9.9".into();
    let c = initiate(sock, &s.client_key, &s.server_pub, &newer, T)
        .err()
        .unwrap();
    let line = c.to_string();
    assert!(matches!(c, Error::Version(_)));
    assert!(
        line.contains("sluice 9.9.9") && line.contains(&format!("protocol {DAEMON_VERSION}")),
        "{line}"
    );
    let e = h.join().unwrap().err().unwrap();
    assert_eq!(e.to_string(), line);
}

#[test]
fn garbage_and_silence_fail_the_handshake() {
    let s = setup();
    let (h, mut sock) = serve(&s.server_key, Preamble::ours(), T);
    sock.write_all(&[0x55; 64]).unwrap();
    assert!(matches!(h.join().unwrap(), Err(Error::Protocol(_))));

    // A valid preamble, then a Noise message of garbage.
    let (h, mut sock) = serve(&s.server_key, Preamble::ours(), T);
    sock.write_all(&Preamble::ours().encode()).unwrap();
    sock.write_all(&[0, 48]).unwrap();
    sock.write_all(&[7; 48]).unwrap();
    assert!(matches!(h.join().unwrap(), Err(Error::Protocol(_))));

    let (h, _sock) = serve(&s.server_key, Preamble::ours(), Duration::from_millis(200));
    let e = h.join().unwrap().err().unwrap();
    assert!(e.to_string().contains("timed out"), "{e}");
}

#[test]
fn a_full_server_refuses_in_the_preamble() {
    let s = setup();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut srv, _) = l.accept().unwrap();
    refuse(&mut srv, "too many connections (limit 1); try again later");
    let e = initiate(sock, &s.client_key, &s.server_pub, &Preamble::ours(), T)
        .err()
        .unwrap();
    assert!(e.to_string().contains("too many connections"), "{e}");
}

#[test]
fn bad_frames_after_the_handshake_are_errors() {
    let s = setup();
    // Oversized frame announcement.
    let (mut server, _, mut client) = connected(&s);
    client.send_raw(&u32::MAX.to_be_bytes()).unwrap();
    assert!(matches!(
        server.recv(),
        Err(Error::Protocol(ProtocolError::OverLimit {
            what: "frame length",
            ..
        }))
    ));
    // Undecodable payload.
    let (mut server, _, mut client) = connected(&s);
    client.send_raw(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap();
    assert!(matches!(server.recv(), Err(Error::Protocol(_))));
    // Forged ciphertext.
    let (mut server, _, client) = connected(&s);
    let mut raw = client.stream();
    raw.write_all(&[0, 40]).unwrap();
    raw.write_all(&[9; 40]).unwrap();
    assert!(matches!(
        server.recv(),
        Err(Error::Protocol(ProtocolError::Undecodable { why, .. })) if why.contains("authentication")
    ));
    // A Noise message too short to hold a tag.
    let (mut server, _, client) = connected(&s);
    client.stream().write_all(&[0, 3, 1, 2, 3]).unwrap();
    assert!(matches!(server.recv(), Err(Error::Protocol(_))));
    // The peer hanging up mid-frame.
    let (mut server, _, mut client) = connected(&s);
    client.send_raw(&[0, 0, 1, 0, 1]).unwrap();
    drop(client);
    assert!(matches!(server.recv(), Err(Error::Closed(_))));
}

/// Between a watch's rounds the daemon waits with an idle timeout: each
/// keepalive re-arms it (they are not handed up), and silence ends it.
#[test]
fn keepalives_rearm_the_idle_timeout_and_silence_ends_it() {
    let s = setup();
    let (mut server, _, mut client) = connected(&s);
    server.set_idle(Duration::from_millis(300));
    let mut ping = client.pinger().expect("a noise transport can ping");
    let talker = std::thread::spawn(move || {
        for _ in 0..8 {
            std::thread::sleep(Duration::from_millis(100));
            ping().unwrap();
        }
        client.send(&Msg::WantDone).unwrap();
        client
    });
    // 800 ms of keepalives, more than twice the idle timeout.
    assert_eq!(server.recv().unwrap(), Msg::WantDone);
    let _client = talker.join().unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(server.recv(), Err(Error::TimedOut(_))));
    assert!(started.elapsed() >= Duration::from_millis(300));
}
