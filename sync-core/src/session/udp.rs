//! The UDP data phase of a session round.
//!
//! When a round goes over UDP, the receiver binds a socket, announces its
//! port and a fresh secret in `NeedDone`, and both halves run the
//! [`crate::net`] drivers around the [`crate::proto`] state machines while
//! the session's control connection carries their feedback (`Msg::Proto`)
//! in both directions at once. Each side ends its phase with `DataDone`; a
//! reader thread per side forwards the peer's messages until the peer's
//! `DataDone` arrives, so after the phase the connection is back in plain
//! request/response order.
//!
//! The receiver stages the stream in an unlinked spool file in the
//! destination and hands each verified chunk to the apply engine afterwards.

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel as chan;

use super::msg::{protocol, Msg, Need, UdpOffer};
use super::transport::{MsgRead, MsgWrite, Transport};
use super::{DataOptions, Policy, Side, TransportChoice};
use crate::apply::tree::{temp_name, Tree};
use crate::error::{Error, Result};
use crate::net::{self, BlockSink, ControlLink};
use crate::path::RelPath;
use crate::proto::congestion::{CongestionConfig, FairConfig, FixedConfig};
use crate::proto::control::ControlMsg;
use crate::proto::crypto::{Cipher, SessionSecret};
use crate::proto::layout::{ChunkSpec, Layout, LayoutConfig, IPV4_UDP_OVERHEAD, IPV6_UDP_OVERHEAD};
use crate::proto::receiver::{Receiver, ReceiverConfig};
use crate::proto::sender::{BlockSource, Sender, SenderConfig};

/// Socket buffer size asked of the kernel (it may cap it; the driver logs).
const SOCKET_BUFFER: usize = 32 << 20;
/// In `auto`, a receiver that hears nothing for this long falls back to
/// the control connection.
pub const AUTO_FALLBACK: Duration = Duration::from_secs(5);

/// Whether this round should use UDP, given the options and the sides.
pub fn wanted(data: &DataOptions, side: &Side, has_split: bool) -> bool {
    match data.transport {
        TransportChoice::Tcp => false,
        TransportChoice::Udp => true,
        TransportChoice::Auto => has_split && !side.udp.local,
    }
}

fn layout(needs: &[Need], packet_size: u16, ip_overhead: u16) -> Result<Arc<Layout>> {
    let specs = needs
        .iter()
        .map(|n| ChunkSpec {
            len: n.length,
            hash: n.hash.0,
        })
        .collect();
    let cfg = LayoutConfig {
        packet_size: packet_size as usize,
        ip_overhead: ip_overhead as usize,
    };
    Layout::new(cfg, specs)
        .map(Arc::new)
        .map_err(|e| Error::Usage(format!("cannot lay out the UDP stream: {e}")))
}

fn cipher(encrypt: bool) -> Cipher {
    if encrypt {
        Cipher::Aes256Gcm
    } else {
        Cipher::None
    }
}

/// A receiver's socket and offer, made before `NeedDone` is sent.
pub struct Prepared {
    socket: UdpSocket,
    offer: UdpOffer,
}

/// Binds the receiving socket and makes the offer.
pub fn prepare(data: &DataOptions, side: &Side) -> Result<Prepared> {
    let socket = net::bind_in_range(side.udp.bind, side.udp.ports.clone()).map_err(|e| {
        Error::Usage(format!(
            "cannot bind a UDP port in {}-{} on {}: {e}",
            side.udp.ports.start(),
            side.udp.ports.end(),
            side.udp.bind
        ))
    })?;
    net::set_buffers(&socket, SOCKET_BUFFER).map_err(|e| Error::io("<udp socket>", e))?;
    let port = socket
        .local_addr()
        .map_err(|e| Error::io("<udp socket>", e))?
        .port();
    let secret = SessionSecret::generate()
        .map_err(|_| Error::Usage("no randomness for the session secret".into()))?;
    let ip_overhead = if side.udp.bind.is_ipv4() {
        IPV4_UDP_OVERHEAD
    } else {
        IPV6_UDP_OVERHEAD
    } as u16;
    Ok(Prepared {
        socket,
        offer: UdpOffer {
            port,
            secret: secret.0,
            packet_size: data.packet_size,
            ip_overhead,
            encrypt: data.encrypt,
        },
    })
}

impl Prepared {
    pub fn offer(&self) -> &UdpOffer {
        &self.offer
    }
}

/// The file the stream is staged in, with a journal of the chunks that
/// landed whole (the same format as the apply engine's journals), so a run
/// that dies mid-transfer leaves chunks the next run can use.
pub struct Spool {
    file: File,
    journal: File,
    journal_len: u64,
    layout: Arc<Layout>,
    /// Stream offset where each chunk starts.
    starts: Vec<u64>,
    /// Bytes written into each chunk so far.
    filled: Vec<u32>,
    journaled: Vec<bool>,
}

impl Spool {
    fn new(file: File, journal: File, layout: Arc<Layout>) -> Spool {
        let n = layout.chunk_count();
        let starts = (0..n).map(|c| layout.chunk_range(c).start).collect();
        Spool {
            file,
            journal,
            journal_len: 0,
            layout,
            starts,
            filled: vec![0; n],
            journaled: vec![false; n],
        }
    }

    /// Reads chunk `range` of the stream.
    pub fn read_range(&self, range: std::ops::Range<u64>, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.resize((range.end - range.start) as usize, 0);
        self.file.read_exact_at(buf, range.start)
    }
}

impl BlockSink for Spool {
    fn write(&mut self, stream_offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, stream_offset)?;
        let end = stream_offset + data.len() as u64;
        let mut c = self
            .starts
            .partition_point(|&s| s <= stream_offset)
            .saturating_sub(1);
        while c < self.starts.len() && self.starts[c] < end {
            let range = self.layout.chunk_range(c);
            let overlap = end
                .min(range.end)
                .saturating_sub(stream_offset.max(range.start));
            self.filled[c] = self.filled[c].saturating_add(overlap as u32);
            let len = (range.end - range.start) as u32;
            if self.filled[c] >= len && !self.journaled[c] {
                // Unverified here; every journaled chunk is verified again
                // when a later run copies it.
                let hash = crate::chunk::Hash(self.layout.chunks()[c].hash);
                let rec = crate::apply::journal::record(range.start, len, &hash);
                self.journal.write_all_at(&rec, self.journal_len)?;
                self.journal_len += rec.len() as u64;
                self.journaled[c] = true;
            }
            c += 1;
        }
        Ok(())
    }

    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, stream_offset)
    }
}

/// The spool's file names (in the destination root).
pub fn spool_paths(port: u16) -> (RelPath, RelPath) {
    let base = RelPath::new(b"spool".to_vec()).expect("valid");
    let name = temp_name(&base, &format!("{:08x}", port as u32 ^ std::process::id()));
    let journal = crate::apply::journal::name_for(&name);
    (
        RelPath::new(name).expect("temp names are valid"),
        RelPath::new(journal).expect("temp names are valid"),
    )
}

/// Runs the receiving side; `Ok(Some)` with the spool and the layout when
/// every chunk arrived, `Ok(None)` when `auto` gave up on UDP.
pub fn receive(
    t: &mut dyn Transport,
    prepared: Prepared,
    needs: &[Need],
    data: &DataOptions,
    side: &Side,
) -> Result<Option<(Spool, Arc<Layout>)>> {
    let offer = prepared.offer;
    let layout = layout(needs, offer.packet_size, offer.ip_overhead)?;
    let mut tree = Tree::open(&side.root).map_err(|e| Error::io(&side.root, e))?;
    let (spool_path, journal_path) = spool_paths(offer.port);
    let mut create = |p: &RelPath| {
        tree.create_temp(p, p.file_name())
            .map_err(|e| Error::io(p.under(&side.root), e))
    };
    let file = create(&spool_path)?;
    let journal = create(&journal_path)?;
    let config = ReceiverConfig {
        cipher: cipher(offer.encrypt),
        idle_timeout: if data.transport == TransportChoice::Auto {
            AUTO_FALLBACK
        } else {
            ReceiverConfig::default().idle_timeout
        },
        ..ReceiverConfig::default()
    };
    let receiver = Receiver::new(
        config,
        Arc::clone(&layout),
        &SessionSecret(offer.secret),
        Instant::now(),
    );
    let socket = prepared.socket;
    let spool = Spool::new(file, journal, Arc::clone(&layout));
    let result = with_link(t, |link| {
        net::run_receiver(&socket, receiver, Arc::clone(&layout), spool, link)
    })?;
    match result {
        Ok((spool, report)) => {
            tracing::info!(?report, "UDP data phase complete");
            Ok(Some((spool, layout)))
        }
        Err(e) if data.transport == TransportChoice::Auto => {
            tracing::warn!("UDP data phase failed ({e}); falling back to the control connection");
            Ok(None)
        }
        Err(e) => Err(Error::Peer(format!("UDP transfer failed: {e}"))),
    }
}

/// Runs the sending side of a UDP round; returns the datagram bytes sent,
/// or `Ok(None)` when the receiver gave up on UDP (the round is repeated on
/// the control connection).
pub fn send(
    t: &mut dyn Transport,
    offer: &UdpOffer,
    needs: &[Need],
    data: &DataOptions,
    side: &Side,
    source: &mut dyn BlockSource,
) -> Result<Option<u64>> {
    let Some(peer) = side.udp.peer else {
        return Err(protocol(
            "offered UDP, but this side does not know the peer's address",
        ));
    };
    let layout = layout(needs, offer.packet_size, offer.ip_overhead)?;
    let bind: IpAddr = if peer.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = net::bind_in_range(bind, 0..=0).map_err(|e| Error::io("<udp socket>", e))?;
    net::set_buffers(&socket, SOCKET_BUFFER).map_err(|e| Error::io("<udp socket>", e))?;
    let config = SenderConfig {
        cipher: cipher(offer.encrypt),
        congestion: congestion(data),
        ..SenderConfig::default()
    };
    let sender = Sender::new(config, layout, &SessionSecret(offer.secret), Instant::now());
    let to = SocketAddr::new(peer, offer.port);
    let result = with_link(t, |link| net::run_sender(&socket, to, sender, source, link))?;
    match result {
        Ok(stats) => {
            tracing::info!(?stats, "UDP data phase complete");
            Ok(Some(stats.bytes))
        }
        Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => Ok(None),
        Err(e) => Err(Error::Peer(format!("UDP transfer failed: {e}"))),
    }
}

/// The congestion controller for the user's options (rates in bytes/s).
pub fn congestion(data: &DataOptions) -> CongestionConfig {
    match (data.policy, data.rate) {
        (Policy::Fixed, Some(rate)) => CongestionConfig::Fixed(FixedConfig { rate: rate / 8 }),
        _ => {
            let mut f = FairConfig::default();
            if let Some(r) = data.rate {
                f.max_rate = r / 8;
                f.initial_rate = f.initial_rate.min(f.max_rate);
            }
            if let Some(r) = data.min_rate {
                f.min_rate = r / 8;
                f.initial_rate = f.initial_rate.max(f.min_rate);
            }
            CongestionConfig::Fair(f)
        }
    }
}

/// What the reader thread passes on.
enum Event {
    Control(ControlMsg),
    PeerDone(bool),
    Failed(String),
}

/// The drivers' control link over a split session transport.
struct SplitLink<'a> {
    writer: Box<dyn MsgWrite + 'a>,
    events: chan::Receiver<Event>,
    peer_done: bool,
}

impl ControlLink for SplitLink<'_> {
    fn send(&mut self, msg: &ControlMsg) -> io::Result<()> {
        let bytes = msg
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.writer
            .send(&Msg::Proto(serde_bytes::ByteBuf::from(bytes)))
            .map_err(io::Error::other)
    }

    fn try_recv(&mut self) -> io::Result<Option<ControlMsg>> {
        if self.peer_done {
            return Ok(None);
        }
        match self.events.try_recv() {
            Ok(Event::Control(m)) => Ok(Some(m)),
            Ok(Event::PeerDone(true)) => {
                self.peer_done = true;
                Ok(None)
            }
            Ok(Event::PeerDone(false)) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the peer stopped the UDP transfer",
            )),
            Ok(Event::Failed(e)) => Err(io::Error::other(e)),
            Err(chan::TryRecvError::Empty) => Ok(None),
            Err(chan::TryRecvError::Disconnected) => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}

fn read_until_done(reader: &mut dyn MsgRead, events: chan::Sender<Event>) {
    loop {
        let ev = match reader.recv() {
            Ok(Msg::Proto(bytes)) => match ControlMsg::decode(&bytes) {
                Ok(m) => Event::Control(m),
                Err(e) => Event::Failed(format!("bad control message: {e}")),
            },
            Ok(Msg::DataDone { ok }) => {
                let _ = events.send(Event::PeerDone(ok));
                return;
            }
            Ok(Msg::Error(e)) => Event::Failed(format!("peer: {e}")),
            Ok(other) => Event::Failed(format!("unexpected {} during the UDP phase", other.name())),
            Err(e) => Event::Failed(e.to_string()),
        };
        let stop = matches!(ev, Event::Failed(_));
        if events.send(ev).is_err() || stop {
            return;
        }
    }
}

/// Runs `phase` with a control link over `t`, then exchanges `DataDone`.
fn with_link<T>(
    t: &mut dyn Transport,
    phase: impl FnOnce(&mut dyn ControlLink) -> io::Result<T>,
) -> Result<io::Result<T>> {
    let Some((mut reader, writer)) = t.split() else {
        return Err(protocol("this connection cannot carry a UDP data phase"));
    };
    let (tx, events) = chan::unbounded();
    std::thread::scope(|s| {
        let forward = s.spawn(move || read_until_done(&mut *reader, tx));
        let mut link = SplitLink {
            writer,
            events,
            peer_done: false,
        };
        let out = phase(&mut link);
        let sent = link.writer.send(&Msg::DataDone { ok: out.is_ok() });
        // Drop our end so a failed reader cannot block; wait for the peer's DataDone.
        drop(link);
        let _ = forward.join();
        sent.map(|()| out)
    })
}
