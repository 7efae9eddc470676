//! The UDP data phase of a session round.
//!
//! When a round goes over UDP, the receiver binds a socket, announces its
//! port and a fresh secret in `NeedDone`, and both halves run the
//! [`crate::net`] drivers around the [`crate::proto`] state machines. Their
//! feedback travels as datagrams beside the data, and copies of it
//! (`Msg::Proto`) on the session's control connection, in both directions
//! at once. Each side ends its phase with `DataDone`; a reader thread per
//! side forwards the peer's messages until the peer's `DataDone` arrives,
//! so after the phase the connection is back in plain request/response
//! order. A writer thread per side sends ours, keeping only the newest
//! while the connection is slow ([`Mailbox`]): a TCP connection stalled by
//! loss never stops the socket threads.
//!
//! The receiver assembles chunks as their blocks arrive and hands each
//! verified chunk to the apply engine at once, so files are written while
//! the transfer runs.

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel as chan;

use super::msg::{Msg, Need, UdpOffer};
use super::transport::{MsgRead, MsgWrite, Transport};
use super::{DataOptions, Policy, Side, TransportChoice};
use crate::apply::tree::{temp_name, Tree};
use crate::apply::Feed;
use crate::error::{Error, ProtocolError, Result};
use crate::net::{self, BlockSink, ControlLink};
use crate::path::RelPath;
use crate::proto::congestion::{CongestionConfig, FairConfig, FixedConfig};
use crate::proto::control::ControlMsg;
use crate::proto::crypto::{Cipher, SessionSecret};
use crate::proto::layout::{ChunkSpec, Layout, LayoutConfig, IPV4_UDP_OVERHEAD, IPV6_UDP_OVERHEAD};
use crate::proto::receiver::{Receiver, ReceiverConfig};
use crate::proto::sender::{Sender, SenderConfig, SenderStats};
use crate::proto::source::BlockSource;

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

/// Most bytes of incomplete chunks held in memory; chunks begun beyond it
/// are staged in an overflow file.
pub const ASSEMBLY_MEMORY: u64 = 256 << 20;

/// One chunk of the stream, as its blocks arrive.
enum Part {
    Empty,
    Memory(Vec<u8>),
    /// Staged in the overflow file, at its stream offset.
    Spilled,
    /// Verified and handed to the apply engine.
    Done,
}

/// Assembles the stream's chunks as their blocks arrive and hands each
/// verified chunk straight to the apply engine, so files are written while
/// the transfer runs. Incomplete chunks are held in memory up to
/// [`ASSEMBLY_MEMORY`]; past that (heavy loss on a fast link), a chunk's
/// blocks go to an unlinked overflow file in the destination and are read
/// back when it completes.
struct ChunkSink<'a> {
    feed: &'a mut Feed,
    /// The applier's stream index of each chunk of the layout.
    ids: Vec<u32>,
    layout: Arc<Layout>,
    /// The chunk the last write began in: writes mostly come in stream
    /// order, so the next one is looked for there first.
    chunk_hint: usize,
    parts: Vec<Part>,
    in_memory: u64,
    memory_limit: u64,
    tree: Tree,
    overflow: Option<File>,
    /// The apply engine's error that stopped the phase (a full disk, say).
    failure: &'a Mutex<Option<Error>>,
    /// Each chunk's own length: one that is shorter in the stream came
    /// compressed.
    raw_lens: Vec<u32>,
    dctx: crate::delta::Decompressor,
}

impl<'a> ChunkSink<'a> {
    /// A sink for the chunks of `layout` (the applier's `needs`, with
    /// their own lengths: longer than in the stream when compressed),
    /// holding at most `memory_limit` bytes of incomplete chunks in memory.
    fn new(
        feed: &'a mut Feed,
        needs: &[Need],
        layout: &Arc<Layout>,
        memory_limit: u64,
        tree: Tree,
        failure: &'a Mutex<Option<Error>>,
    ) -> Self {
        let n = layout.chunk_count();
        ChunkSink {
            feed,
            ids: needs.iter().map(|n| n.idx).collect(),
            raw_lens: needs.iter().map(|n| n.length).collect(),
            dctx: crate::delta::Decompressor::new(),
            chunk_hint: 0,
            parts: (0..n).map(|_| Part::Empty).collect(),
            layout: Arc::clone(layout),
            in_memory: 0,
            memory_limit,
            tree,
            overflow: None,
            failure,
        }
    }

    fn overflow(&mut self) -> io::Result<&File> {
        overflow_file(&mut self.overflow, &mut self.tree)
    }
}

/// The sink's spill file, made in `tree` on first use.
fn overflow_file<'f>(overflow: &'f mut Option<File>, tree: &mut Tree) -> io::Result<&'f File> {
    if overflow.is_none() {
        let base = RelPath::new(b"overflow".to_vec()).expect("valid");
        let name = temp_name(&base, &format!("{:08x}", std::process::id()));
        let file = tree.create_temp(&base, &name)?;
        // Unlinked at once: the descriptor keeps it until the phase ends.
        tree.remove_temp(&base, &name)?;
        *overflow = Some(file);
    }
    Ok(overflow.as_ref().expect("just made"))
}

/// Checks a chunk's stream bytes against its hash, decompressing them
/// first when they came compressed (shorter than the chunk's `raw` length):
/// `None` when they are wrong, else the decompressed bytes if any.
fn check(
    dctx: &mut crate::delta::Decompressor,
    raw: u32,
    buf: &[u8],
    hash: &[u8; 32],
) -> Option<Option<Vec<u8>>> {
    let unpacked = if buf.len() < raw as usize {
        let mut out = Vec::new();
        let enc = crate::delta::Encoding::Zstd;
        crate::delta::decode(enc, buf, raw as usize, &mut out, dctx).ok()?;
        Some(out)
    } else {
        None
    };
    let bytes = unpacked.as_deref().unwrap_or(buf);
    (blake3::hash(bytes).as_bytes() == hash).then_some(unpacked)
}

impl BlockSink for ChunkSink<'_> {
    fn write(&mut self, stream_offset: u64, data: &[u8]) -> io::Result<()> {
        let end = stream_offset + data.len() as u64;
        // Borrowed field by field: the layout is shared with the socket
        // thread, and cloning its `Arc` once a block would bounce its
        // count's cache line between the cores.
        let ChunkSink {
            layout,
            chunk_hint,
            parts,
            in_memory,
            memory_limit,
            tree,
            overflow,
            ..
        } = self;
        for c in layout.range_chunks_near(stream_offset..end, chunk_hint) {
            let range = layout.chunk_range(c);
            let from = stream_offset.max(range.start);
            let to = end.min(range.end);
            let bytes = &data[(from - stream_offset) as usize..(to - stream_offset) as usize];
            if matches!(parts[c], Part::Empty) {
                let len = range.end - range.start;
                parts[c] = if *in_memory + len <= *memory_limit {
                    *in_memory += len;
                    Part::Memory(vec![0; len as usize])
                } else {
                    Part::Spilled
                };
            }
            match &mut parts[c] {
                Part::Memory(buf) => {
                    let at = (from - range.start) as usize;
                    buf[at..at + bytes.len()].copy_from_slice(bytes);
                }
                Part::Spilled => overflow_file(overflow, tree)?.write_all_at(bytes, from)?,
                Part::Empty | Part::Done => {}
            }
        }
        Ok(())
    }

    fn complete(&mut self, c: usize, range: Range<u64>, hash: &[u8; 32]) -> io::Result<bool> {
        let data = match &self.parts[c] {
            Part::Memory(buf) => {
                let Some(unpacked) = check(&mut self.dctx, self.raw_lens[c], buf, hash) else {
                    return Ok(false);
                };
                self.in_memory -= buf.len() as u64;
                match std::mem::replace(&mut self.parts[c], Part::Done) {
                    Part::Memory(buf) => unpacked.unwrap_or(buf),
                    _ => unreachable!("matched above"),
                }
            }
            Part::Spilled => {
                let mut buf = vec![0; (range.end - range.start) as usize];
                self.overflow()?.read_exact_at(&mut buf, range.start)?;
                let Some(unpacked) = check(&mut self.dctx, self.raw_lens[c], &buf, hash) else {
                    return Ok(false);
                };
                self.parts[c] = Part::Done;
                unpacked.unwrap_or(buf)
            }
            Part::Done => return Ok(true),
            // An empty chunk is complete before any block arrives.
            Part::Empty if range.is_empty() => {
                if blake3::hash(&[]).as_bytes() != hash {
                    return Ok(false);
                }
                self.parts[c] = Part::Done;
                Vec::new()
            }
            Part::Empty => return Ok(false),
        };
        if let Err(e) = self.feed.chunk(self.ids[c], data, true) {
            let message = e.to_string();
            self.failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
            return Err(io::Error::other(message));
        }
        Ok(true)
    }
}

/// Runs the receiving side, handing chunks to `feed` as they complete;
/// `Ok(true)` when every chunk arrived, `Ok(false)` when `auto` gave up on
/// UDP.
///
/// `wire` are the requests with their lengths in the stream (shorter than
/// in `needs` for chunks that come compressed; see [`Msg::Sizes`]).
///
/// [`Msg::Sizes`]: super::msg::Msg::Sizes
pub fn receive(
    t: &mut dyn Transport,
    prepared: Prepared,
    (needs, wire): (&[Need], &[Need]),
    data: &DataOptions,
    side: &Side,
    feed: &mut Feed,
) -> Result<bool> {
    let layout = offer_layout(wire, &prepared.offer)?;
    let tree = Tree::open(&side.root).map_err(|e| Error::io(&side.root, e))?;
    let failure = Mutex::new(None);
    // `wire` is `needs` less the chunks that came as deltas, in order.
    let mut own = needs.iter();
    let stream_needs: Vec<Need> = wire
        .iter()
        .filter_map(|w| own.find(|n| n.idx == w.idx).copied())
        .collect();
    if stream_needs.len() != wire.len() {
        return Err(ProtocolError::invalid(
            "Sizes",
            "the stream's chunks are not among those asked for",
        )
        .into());
    }
    let sink = ChunkSink::new(
        feed,
        &stream_needs,
        &layout,
        ASSEMBLY_MEMORY,
        tree,
        &failure,
    );
    let result = receive_into(t, prepared, layout, data, sink).map(|sink| sink.is_some());
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    result
}

/// Runs the receiving side of a phase over `layout` into `sink`; returns
/// the sink when every chunk arrived, `None` when `auto` gave up on UDP.
pub fn receive_into<S: BlockSink + Send>(
    t: &mut dyn Transport,
    prepared: Prepared,
    layout: Arc<Layout>,
    data: &DataOptions,
    sink: S,
) -> Result<Option<S>> {
    let config = ReceiverConfig {
        cipher: cipher(prepared.offer.encrypt),
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
        &SessionSecret(prepared.offer.secret),
        Instant::now(),
    );
    let socket = prepared.socket;
    let result = with_link(t, None, |link| {
        net::run_receiver(&socket, receiver, layout, sink, link)
    })?;
    match result {
        Ok((sink, report)) => {
            tracing::info!(?report, "UDP data phase complete");
            Ok(Some(sink))
        }
        Err(e) if data.transport == TransportChoice::Auto => {
            tracing::warn!("UDP data phase failed ({e}); falling back to the control connection");
            Ok(None)
        }
        Err(e) => Err(Error::Peer(format!("UDP transfer failed: {e}"))),
    }
}

/// The layout of a phase that carries `needs` on `offer`.
pub fn offer_layout(needs: &[Need], offer: &UdpOffer) -> Result<Arc<Layout>> {
    layout(needs, offer.packet_size, offer.ip_overhead)
}

/// Runs the sending side of a UDP round; returns the sender's stats at its
/// end (`bytes`: the datagram bytes sent), or `Ok(None)` when the receiver
/// gave up on UDP (the round is repeated on the control connection).
/// `shipped`: the chunk bytes the round ships, counted into a push's
/// progress as its blocks are confirmed (0: a bulk run, not counted).
#[allow(clippy::too_many_arguments)]
pub fn send(
    t: &mut dyn Transport,
    offer: &UdpOffer,
    needs: &[Need],
    data: &DataOptions,
    side: &Side,
    source: &mut dyn BlockSource,
    shipped: u64,
) -> Result<Option<SenderStats>> {
    let (socket, sender, to, blocks) = match start_sender(offer, needs, data, side) {
        Ok(x) => x,
        Err(e) => {
            // The receiver has begun its phase: end ours at once, so both
            // sides meet again after the DataDone messages.
            let _ = with_link(t, None, |_| Err::<(), _>(io::Error::other(e.to_string())))?;
            return Err(e);
        }
    };
    let gauge = side.progress.as_deref().map(|p| Gauge {
        progress: p,
        shipped: if p.count_shipped { shipped } else { 0 },
        done_before: p.bytes_done.load(std::sync::atomic::Ordering::Relaxed),
        blocks,
    });
    let result = with_link(t, gauge, |link| {
        net::run_sender(&socket, to, sender, source, link)
    })?;
    match result {
        Ok(stats) => {
            tracing::info!(?stats, "UDP data phase complete");
            Ok(Some(stats))
        }
        Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => Ok(None),
        Err(e) => Err(Error::Peer(format!("UDP transfer failed: {e}"))),
    }
}

/// The socket and state machine of a sending phase, where to send, and
/// how many blocks the phase's stream has.
fn start_sender(
    offer: &UdpOffer,
    needs: &[Need],
    data: &DataOptions,
    side: &Side,
) -> Result<(UdpSocket, Sender, SocketAddr, u64)> {
    let Some(peer) = side.udp.peer else {
        return Err(ProtocolError::invalid(
            "UDP offer",
            "this side does not know the peer's address",
        )
        .into());
    };
    let layout = offer_layout(needs, offer)?;
    let blocks = layout.block_count();
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
    Ok((socket, sender, SocketAddr::new(peer, offer.port), blocks))
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

/// What waits for the writer thread: the newest control message not yet
/// written (an older one still waiting is replaced: each restates its
/// side's state), then the phase's `DataDone`.
#[derive(Default)]
struct Slot {
    newest: Option<Msg>,
    done: Option<Msg>,
    /// The writer failed; what it said.
    failed: Option<String>,
}

/// A one-message mailbox between a socket thread and the writer thread.
#[derive(Default)]
struct Mailbox {
    slot: Mutex<Slot>,
    ready: std::sync::Condvar,
}

impl Mailbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, msg: Msg) -> io::Result<()> {
        let mut slot = self.lock();
        if let Some(e) = &slot.failed {
            return Err(io::Error::other(e.clone()));
        }
        slot.newest = Some(msg);
        self.ready.notify_one();
        Ok(())
    }

    fn finish(&self, done: Msg) {
        self.lock().done = Some(done);
        self.ready.notify_one();
    }

    /// The writer thread: writes what is put until `DataDone` is written.
    fn write_all(&self, writer: &mut dyn MsgWrite) -> Result<()> {
        loop {
            let (msg, last) = {
                let mut slot = self.lock();
                loop {
                    if let Some(m) = slot.newest.take() {
                        break (m, false);
                    }
                    if let Some(m) = slot.done.take() {
                        break (m, true);
                    }
                    slot = self.ready.wait(slot).unwrap_or_else(|p| p.into_inner());
                }
            };
            if let Err(e) = writer.send(&msg) {
                self.lock().failed = Some(e.to_string());
                return Err(e);
            }
            if last {
                return Ok(());
            }
        }
    }
}

/// The drivers' control link over a split session transport.
struct SplitLink<'a> {
    mailbox: &'a Mailbox,
    events: chan::Receiver<Event>,
    peer_done: bool,
    /// Where the sending driver's figures go, for a progress display.
    gauge: Option<Gauge<'a>>,
}

/// A sending phase's progress display: the link's figures, and for a push
/// the round's chunk bytes in proportion to the blocks confirmed.
#[derive(Clone, Copy)]
struct Gauge<'a> {
    progress: &'a super::Progress,
    shipped: u64,
    done_before: u64,
    blocks: u64,
}

impl ControlLink for SplitLink<'_> {
    fn send(&mut self, msg: &ControlMsg) -> io::Result<()> {
        let bytes = msg
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.mailbox
            .put(Msg::Proto(serde_bytes::ByteBuf::from(bytes)))
    }

    fn peer_done(&self) -> bool {
        self.peer_done
    }

    fn observe(&mut self, stats: &crate::proto::sender::SenderStats) {
        let Some(g) = self.gauge else {
            return;
        };
        g.progress.link.set(stats);
        if g.shipped > 0 && g.blocks > 0 {
            let confirmed = stats.blocks_confirmed.min(g.blocks);
            let part = g.shipped as u128 * u128::from(confirmed) / u128::from(g.blocks);
            g.progress.bytes_done.store(
                g.done_before + part as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
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

/// Forwards the peer's messages until its `DataDone`, which it always reads:
/// the connection must be back in request/response order afterwards. Once
/// our side's phase is over (the link dropped) or a message was bad, what
/// still arrives before `DataDone` (late feedback) is read and dropped.
fn read_until_done(reader: &mut dyn MsgRead, events: chan::Sender<Event>) {
    let mut forwarding = true;
    loop {
        let ev = match reader.recv() {
            Ok(Msg::Proto(bytes)) if forwarding => match ControlMsg::decode(&bytes) {
                Ok(m) => Event::Control(m),
                Err(e) => Event::Failed(format!("bad control message: {e}")),
            },
            Ok(Msg::Proto(_)) => continue,
            Ok(Msg::DataDone { ok }) => {
                let _ = events.send(Event::PeerDone(ok));
                return;
            }
            // The connection itself is unusable: stop reading.
            Ok(Msg::Error(e)) => {
                let _ = events.send(Event::Failed(format!("peer: {e}")));
                return;
            }
            Ok(other) => {
                let what = format!("unexpected {} during the UDP phase", other.name());
                let _ = events.send(Event::Failed(what));
                return;
            }
            Err(e) => {
                let _ = events.send(Event::Failed(e.to_string()));
                return;
            }
        };
        let bad = matches!(ev, Event::Failed(_));
        if events.send(ev).is_err() || bad {
            forwarding = false;
        }
    }
}

/// Runs `phase` with a control link over `t`, then exchanges `DataDone`.
fn with_link<T>(
    t: &mut dyn Transport,
    gauge: Option<Gauge<'_>>,
    phase: impl FnOnce(&mut dyn ControlLink) -> io::Result<T>,
) -> Result<io::Result<T>> {
    let Some((mut reader, mut writer)) = t.split() else {
        return Err(ProtocolError::invalid(
            "UDP offer",
            "this connection cannot carry a UDP data phase",
        )
        .into());
    };
    let (tx, events) = chan::unbounded();
    let mailbox = Mailbox::default();
    std::thread::scope(|s| {
        let forward = s.spawn(move || read_until_done(&mut *reader, tx));
        let mailbox = &mailbox;
        let write = s.spawn(move || mailbox.write_all(&mut *writer));
        let mut link = SplitLink {
            mailbox,
            events,
            peer_done: false,
            gauge,
        };
        let out = phase(&mut link);
        mailbox.finish(Msg::DataDone { ok: out.is_ok() });
        // Drop our end so a failed reader cannot block; wait for the peer's DataDone.
        drop(link);
        let sent = write.join().unwrap_or_else(|_| {
            Err(ProtocolError::invalid("UDP data phase", "the control writer panicked").into())
        });
        let _ = forward.join();
        sent.map(|()| out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::tests::{chunk_bytes_of, manifest_of};
    use crate::apply::{Applier, ApplyOptions};
    use crate::chunk::tests::noise;
    use crate::plan::{diff, PlanOptions};
    use crate::proto::layout::IPV4_UDP_OVERHEAD;

    /// The peer's feedback that arrives after our phase ended is read and
    /// dropped up to its `DataDone`, so the next message is what follows it
    /// (this once surfaced as "expected SenderDone, got DataDone").
    #[test]
    fn late_peer_messages_are_drained_up_to_its_data_done() {
        use crate::session::transport::MemoryTransport;
        let (mut ours, mut peer) = MemoryTransport::pair(64);
        let keepalive = || {
            Msg::Proto(serde_bytes::ByteBuf::from(
                ControlMsg::Keepalive.encode().unwrap(),
            ))
        };
        let peer_side = std::thread::spawn(move || {
            peer.send(&keepalive()).unwrap();
            // Our DataDone: our phase is over before these arrive.
            let ours_done = peer.recv().unwrap();
            // (Give our side time to drop its link, the old failure's trigger.)
            std::thread::sleep(Duration::from_millis(20));
            for _ in 0..10 {
                peer.send(&keepalive()).unwrap();
            }
            peer.send(&Msg::DataDone { ok: true }).unwrap();
            peer.send(&Msg::SenderDone {
                wire_bytes_sent: 7,
                vanished: 0,
                link: None,
            })
            .unwrap();
            ours_done
        });
        let out = with_link(&mut ours, None, |link| {
            // Wait for the first message, then end the phase at once.
            while link.try_recv()?.is_none() {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(5)
        })
        .unwrap()
        .unwrap();
        assert_eq!(out, 5);
        assert!(matches!(
            ours.recv().unwrap(),
            Msg::SenderDone {
                wire_bytes_sent: 7,
                ..
            }
        ));
        assert!(matches!(
            peer_side.join().unwrap(),
            Msg::DataDone { ok: true }
        ));
    }

    /// Blocks arrive backwards or in order, one corrupted (its chunk fails
    /// and is written again), with chunks held in memory, in the overflow
    /// file, or both: every file arrives whole and nothing is left behind.
    #[test]
    fn chunks_assembled_in_memory_or_overflow_reach_the_files() {
        let cases = [ASSEMBLY_MEMORY, 0, 100 << 10]
            .into_iter()
            .flat_map(|limit| [(limit, true), (limit, false)]);
        for (limit, backwards) in cases {
            let dir = tempfile::tempdir().unwrap();
            let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
            std::fs::create_dir_all(&src).unwrap();
            std::fs::create_dir_all(&dst).unwrap();
            let files = [noise(1, 300 << 10), noise(2, 5000), noise(3, 180 << 10)];
            for (i, f) in files.iter().enumerate() {
                std::fs::write(src.join(format!("f{i}")), f).unwrap();
            }
            let src_m = manifest_of(&src);
            let plan = diff(&src_m, &manifest_of(&dst), &PlanOptions::default());
            // The stream, as the sender would lay it out.
            let by_hash = chunk_bytes_of(&src, &src_m);
            let stream: Vec<u8> = plan
                .stream
                .iter()
                .flat_map(|c| by_hash[&c.hash].clone())
                .collect();
            let needs: Vec<Need> = plan
                .stream
                .iter()
                .enumerate()
                .map(|(i, c)| Need::new(i as u32, c))
                .collect();
            let layout = layout(&needs, 1500, IPV4_UDP_OVERHEAD as u16).unwrap();
            let mut applier = Applier::new(
                Tree::open(&dst).unwrap(),
                Arc::new(plan.clone()),
                ApplyOptions::default(),
            );
            applier.start(&[]).unwrap();
            let failure = Mutex::new(None);
            let mut sink = ChunkSink::new(
                applier.feed(),
                &needs,
                &layout,
                limit,
                Tree::open(&dst).unwrap(),
                &failure,
            );
            let block = |b: u64| {
                let r = layout.block_range(b);
                (r.start, &stream[r.start as usize..r.end as usize])
            };
            let mut order: Vec<u64> = (0..layout.block_count()).collect();
            if backwards {
                order.reverse();
            }
            for b in order {
                let (at, bytes) = block(b);
                if b == 0 {
                    let mut bad = bytes.to_vec();
                    bad[0] ^= 1;
                    sink.write(at, &bad).unwrap();
                } else {
                    sink.write(at, bytes).unwrap();
                }
            }
            let hash = |c: usize| layout.chunks()[c].hash;
            assert!(!sink.complete(0, layout.chunk_range(0), &hash(0)).unwrap());
            let (at, bytes) = block(0);
            sink.write(at, bytes).unwrap();
            for c in 0..layout.chunk_count() {
                assert!(sink.complete(c, layout.chunk_range(c), &hash(c)).unwrap());
            }
            if limit == 0 {
                assert!(sink.overflow.is_some());
            }
            assert_eq!(sink.in_memory, 0, "memory handed on with the chunks");
            drop(sink);
            let (report, _) = applier.finish().unwrap();
            assert!(report.errors.is_empty(), "{:?}", report.errors);
            for (i, f) in files.iter().enumerate() {
                assert_eq!(&std::fs::read(dst.join(format!("f{i}"))).unwrap(), f);
            }
            let names = std::fs::read_dir(&dst).unwrap().count();
            assert_eq!(names, 3, "no overflow or temp file left (limit {limit})");
        }
    }
}
