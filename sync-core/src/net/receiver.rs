//! The receiving driver: a socket thread running a [`Receiver`] and a
//! writer thread that owns the [`BlockSink`].
//!
//! Owns the split between the two: the socket thread reads datagrams in
//! batches ([`RecvBuffers`], coalesced by GRO where the kernel can),
//! authenticates them and decrypts new blocks straight into pooled write
//! batches (never into the datagram, which would cost a copy), handed to
//! the writer through a bounded queue holding at most [`WRITE_QUEUE_BYTES`]
//! of blocks (and at least [`WRITE_QUEUE`] blocks); the writer writes them
//! and has the sink verify each completed chunk ([`BlockSink::complete`]),
//! in order, so a verification always sees the writes before it. Batches
//! return to the socket thread for reuse, so steady state allocates
//! nothing per datagram. When the queue is full the datagram is dropped unprocessed
//! (the sender will resend it), and the queue's fill is reported to the
//! state machine as back-pressure so the sender slows down to the disk's
//! pace instead of flooding it.
//!
//! Feedback goes back to the sender as datagrams from the same socket (to
//! the address of the first authentic datagram) with copies on the control
//! link ([`ControlPath`]). Once everything is verified the socket thread
//! lingers: while the sender, not yet told, keeps sending, each arrival is
//! answered with the final feedback again, until the peer's phase is over
//! or the sender has been silent for two round trips.

use std::io;
use std::net::UdpSocket;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver as ChanRx, Sender as ChanTx};

use super::control_path::ControlPath;
use super::link::ControlLink;
use super::offload::{offload_allowed, RecvBuffers};
use crate::proto::control::ControlMsg;
use crate::proto::layout::Layout;
use crate::proto::receiver::{Event, Receiver, ReceiverStats};

/// Blocks that may wait for the writer (about 6 MB at the default size).
pub const WRITE_QUEUE: usize = 4096;
/// Bytes of blocks that may wait for the writer: about 25 ms at 10 Gbit/s,
/// enough to ride out the writer being descheduled for a few time slices
/// without dropping datagrams (the back-pressure signal reacts within a
/// feedback interval, 5 ms).
pub const WRITE_QUEUE_BYTES: usize = 32 << 20;
/// Longest wait in `recvmmsg` before timers and the control link are checked.
const RECV_TIMEOUT: Duration = Duration::from_millis(1);
/// Blocks per [`WriteBatch`] before it is handed to the writer.
const BATCH_BLOCKS: usize = 64;
/// After completion, the sender counts as told once it has been silent
/// for two of its round trips plus this (its last datagrams may be queued).
const LINGER_SLACK: Duration = Duration::from_millis(50);

/// Where received blocks go: the session's chunk assembler, memory in tests.
pub trait BlockSink {
    /// Stores a new block's bytes at `stream_offset`.
    fn write(&mut self, stream_offset: u64, data: &[u8]) -> io::Result<()>;
    /// Every block of chunk `chunk` (stream bytes `range`) has been written:
    /// checks them against `hash`. `Ok(false)` sends the chunk again (the
    /// sink must then accept new writes over it); after `Ok(true)` the
    /// chunk's bytes are the sink's to use, and later writes into its range
    /// (a resent block it shares with a neighbour) may be ignored.
    fn complete(&mut self, chunk: usize, range: Range<u64>, hash: &[u8; 32]) -> io::Result<bool>;
}

/// A stream held in memory (tests, small transfers).
impl BlockSink for Vec<u8> {
    fn write(&mut self, stream_offset: u64, data: &[u8]) -> io::Result<()> {
        let start = usize::try_from(stream_offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start + data.len();
        if self.len() < end {
            self.resize(end, 0);
        }
        self[start..end].copy_from_slice(data);
        Ok(())
    }

    fn complete(&mut self, _: usize, range: Range<u64>, hash: &[u8; 32]) -> io::Result<bool> {
        let bytes = self
            .get(range.start as usize..range.end as usize)
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        Ok(blake3::hash(bytes).as_bytes() == hash)
    }
}

/// What the receiving side did, beyond the state machine's own counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveReport {
    pub stats: ReceiverStats,
    /// Datagrams dropped because the write queue was full.
    pub backpressure_drops: u64,
}

/// New blocks for the writer: their bytes back to back in `data[..used]`,
/// and where each goes in the stream. `data` is allocated once, to hold
/// [`BATCH_BLOCKS`] whole blocks, and reused.
struct WriteBatch {
    data: Vec<u8>,
    used: usize,
    blocks: Vec<(u64, usize)>,
}

impl WriteBatch {
    fn new(block_size: usize) -> Self {
        WriteBatch {
            data: vec![0; BATCH_BLOCKS * block_size],
            used: 0,
            blocks: Vec::with_capacity(BATCH_BLOCKS),
        }
    }
}

enum Job {
    Write(WriteBatch),
    Verify(usize, Range<u64>, [u8; 32]),
}

/// The socket thread's end of the writer queue: the batch being filled,
/// the pool of spare ones and the count of blocks queued.
struct WriteQueue<'a> {
    jobs: &'a ChanTx<Job>,
    spares: &'a ChanRx<WriteBatch>,
    queued: &'a AtomicUsize,
    current: WriteBatch,
    block_size: usize,
}

impl WriteQueue<'_> {
    /// Blocks waiting for the writer, including the batch being filled.
    fn len(&self) -> usize {
        self.queued.load(Ordering::Relaxed) + self.current.blocks.len()
    }

    fn push(&mut self, stream_offset: u64, data: &[u8]) -> io::Result<()> {
        let at = self.current.used;
        self.current.data[at..at + data.len()].copy_from_slice(data);
        self.booked(stream_offset, data.len())
    }

    /// Has `receiver` take one datagram, its block (if new) decrypted
    /// straight into the batch.
    fn receive(
        &mut self,
        receiver: &mut Receiver,
        now: Instant,
        datagram: &[u8],
    ) -> io::Result<()> {
        let free = &mut self.current.data[self.current.used..];
        match receiver.handle_datagram_into(now, datagram, free) {
            Ok(Some(p)) => self.booked(p.stream_offset, p.len),
            Ok(None) | Err(_) => Ok(()),
        }
    }

    /// Records the block just placed at the end of the batch's bytes; a
    /// batch is handed over while it still has room for a whole block.
    fn booked(&mut self, stream_offset: u64, len: usize) -> io::Result<()> {
        self.current.used += len;
        self.current.blocks.push((stream_offset, len));
        if self.current.blocks.len() >= BATCH_BLOCKS {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands the current batch to the writer.
    fn flush(&mut self) -> io::Result<()> {
        if self.current.blocks.is_empty() {
            return Ok(());
        }
        let next = self
            .spares
            .try_recv()
            .unwrap_or_else(|_| WriteBatch::new(self.block_size));
        let batch = std::mem::replace(&mut self.current, next);
        self.queued.fetch_add(batch.blocks.len(), Ordering::Relaxed);
        // Blocking: the queue counts blocks, not jobs, so a job slot is
        // almost always free; if not, the writer is about to free one.
        self.jobs
            .send(Job::Write(batch))
            .map_err(|_| io::Error::other("writer stopped"))
    }

    /// Queues a verification after every write before it.
    fn verify(&mut self, chunk: usize, range: Range<u64>, hash: [u8; 32]) -> io::Result<()> {
        self.flush()?;
        self.jobs
            .send(Job::Verify(chunk, range, hash))
            .map_err(|_| io::Error::other("writer stopped"))
    }
}

/// Runs `receiver` until every chunk is verified, writing into `sink`;
/// returns the sink and a report. Fails if the transfer times out, a chunk
/// cannot be verified, or the socket, link or sink fails.
pub fn run_receiver<S: BlockSink + Send>(
    socket: &UdpSocket,
    mut receiver: Receiver,
    layout: Arc<Layout>,
    sink: S,
    link: &mut dyn ControlLink,
) -> io::Result<(S, ReceiveReport)> {
    socket.set_read_timeout(Some(RECV_TIMEOUT))?;
    let (jobs, job_rx) = bounded::<Job>(WRITE_QUEUE);
    let (verdict_tx, verdicts) = bounded::<(usize, bool)>(WRITE_QUEUE);
    // Room to keep every batch a full queue holds: a batch dropped for
    // want of room is freed, and the next one faults its pages in anew
    // (at 15 Gbit/s that page clearing cost 3 % of all CPU time).
    let spare_batches = queue_capacity(layout.block_size()).div_ceil(BATCH_BLOCKS) + 1;
    let (spare_tx, spares) = bounded::<WriteBatch>(spare_batches);
    let written = Arc::new(AtomicU64::new(0));
    let queued = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        let writer = {
            let written = written.clone();
            let queued = queued.clone();
            std::thread::Builder::new()
                .name("sluice-udp-writer".into())
                .spawn_scoped(scope, move || {
                    write_loop(sink, job_rx, verdict_tx, spare_tx, written, queued)
                })?
        };
        let mut queue = WriteQueue {
            jobs: &jobs,
            spares: &spares,
            queued: &queued,
            current: WriteBatch::new(layout.block_size()),
            block_size: layout.block_size(),
        };
        let result = receive_loop(
            socket,
            &mut receiver,
            &layout,
            &mut queue,
            &verdicts,
            &written,
            link,
        );
        drop(queue);
        drop(jobs);
        let sink = writer
            .join()
            .map_err(|_| io::Error::other("writer thread panicked"))??;
        result.map(|drops| {
            (
                sink,
                ReceiveReport {
                    stats: receiver.stats(),
                    backpressure_drops: drops,
                },
            )
        })
    })
}

fn receive_loop(
    socket: &UdpSocket,
    receiver: &mut Receiver,
    layout: &Layout,
    queue: &mut WriteQueue<'_>,
    verdicts: &ChanRx<(usize, bool)>,
    written: &AtomicU64,
    link: &mut dyn ControlLink,
) -> io::Result<u64> {
    let mut bufs = RecvBuffers::new(socket, offload_allowed());
    tracing::debug!(gro = bufs.gro(), "UDP receive path");
    let capacity = queue_capacity(layout.block_size());
    let mut drops = 0u64;
    let mut control = ControlPath::new(None);
    loop {
        // Until the sender's address is known, the first datagram's source
        // is looked at; it becomes the address if that datagram is genuine.
        let first_from = match control.peer() {
            None => socket.peek_from(&mut [0u8; 1]).ok().map(|(_, from)| from),
            Some(_) => None,
        };
        let n = bufs.recv(socket)?;
        let now = Instant::now();
        for i in 0..n {
            if queue.len() >= capacity {
                drops += 1;
                continue;
            }
            // Drop reasons are counted inside the receiver.
            let before = receiver.packets_received();
            queue.receive(receiver, now, bufs.datagram(i))?;
            if let Some(from) = first_from.filter(|_| i == 0) {
                if receiver.packets_received() > before {
                    control.set_peer(from);
                }
            }
            while let Some(r) = receiver.poll_recovered() {
                queue.push(r.stream_offset, &r.data)?;
            }
            drain_events(receiver, layout, queue)?;
        }
        queue.flush()?;
        while let Ok((chunk, ok)) = verdicts.try_recv() {
            receiver.handle_chunk_verified(now, chunk, ok);
        }
        let fill = (queue.len().min(capacity) * 1000 / capacity) as u16;
        receiver.handle_sink(now, fill, written.load(Ordering::Relaxed));
        while let Some(msg) = link.try_recv()? {
            receiver.handle_control(now, msg);
        }
        if receiver.poll_timeout().is_some_and(|t| t <= now) {
            receiver.handle_timeout(now);
        }
        send_feedback(now, receiver, &mut control, socket, link)?;
        if drain_events(receiver, layout, queue)? {
            send_feedback(now, receiver, &mut control, socket, link)?;
            linger(socket, receiver, &mut bufs, layout, &mut control, link)?;
            tracing::debug!(
                datagrams = control.datagrams,
                copies = control.copies,
                "feedback sent"
            );
            return Ok(drops);
        }
    }
}

fn send_feedback(
    now: Instant,
    receiver: &mut Receiver,
    control: &mut ControlPath,
    socket: &UdpSocket,
    link: &mut dyn ControlLink,
) -> io::Result<()> {
    while let Some(msg) = receiver.poll_feedback(now) {
        let mut seal = |m: &ControlMsg, out: &mut [u8]| receiver.seal_control(now, m, out);
        control.send(now, &msg, socket, &mut seal, link)?;
    }
    Ok(())
}

/// After completion: answers what still arrives with the final feedback
/// until the peer's phase is over or the sender has gone silent.
fn linger(
    socket: &UdpSocket,
    receiver: &mut Receiver,
    bufs: &mut RecvBuffers,
    layout: &Layout,
    control: &mut ControlPath,
    link: &mut dyn ControlLink,
) -> io::Result<()> {
    let mut scratch = vec![0u8; layout.block_size()];
    let mut last_arrival = Instant::now();
    while !link.peer_done() {
        let n = bufs.recv(socket)?;
        let now = Instant::now();
        for i in 0..n {
            // Blocks are duplicates now; each arrival makes the final
            // feedback due again.
            let _ = receiver.handle_datagram_into(now, bufs.datagram(i), &mut scratch);
            last_arrival = now;
        }
        // The transfer is done: a link that closes now only means the
        // peer is gone too.
        loop {
            match link.try_recv() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return Ok(()),
            }
        }
        if send_feedback(now, receiver, control, socket, link).is_err() {
            return Ok(());
        }
        let quiet = 2 * receiver.sender_srtt() + LINGER_SLACK;
        if now.saturating_duration_since(last_arrival) >= quiet {
            break;
        }
    }
    Ok(())
}

/// Blocks the write queue holds for blocks of `block_size` bytes.
fn queue_capacity(block_size: usize) -> usize {
    (WRITE_QUEUE_BYTES / block_size.max(1)).max(WRITE_QUEUE)
}

/// Forwards chunk completions to the writer; true once the transfer is done.
fn drain_events(
    receiver: &mut Receiver,
    layout: &Layout,
    queue: &mut WriteQueue<'_>,
) -> io::Result<bool> {
    while let Some(ev) = receiver.poll_event() {
        match ev {
            Event::ChunkComplete(c) => {
                let spec = layout.chunks()[c];
                // Blocking send: verification must not be dropped.
                queue.verify(c, layout.chunk_range(c), spec.hash)?;
            }
            Event::Complete => return Ok(true),
            Event::ChunkUnverifiable(c) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("chunk {c} failed verification repeatedly"),
                ))
            }
            Event::TimedOut => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "sender went silent",
                ))
            }
        }
    }
    Ok(false)
}

fn write_loop<S: BlockSink>(
    mut sink: S,
    jobs: ChanRx<Job>,
    verdicts: ChanTx<(usize, bool)>,
    spares: ChanTx<WriteBatch>,
    written: Arc<AtomicU64>,
    queued: Arc<AtomicUsize>,
) -> io::Result<S> {
    for job in jobs {
        match job {
            Job::Write(mut batch) => {
                let mut at = 0;
                for &(offset, len) in &batch.blocks {
                    sink.write(offset, &batch.data[at..at + len])?;
                    at += len;
                }
                written.fetch_add(at as u64, Ordering::Relaxed);
                queued.fetch_sub(batch.blocks.len(), Ordering::Relaxed);
                batch.used = 0;
                batch.blocks.clear();
                // A full pool just drops the batch.
                let _ = spares.try_send(batch);
            }
            Job::Verify(chunk, range, hash) => {
                let ok = sink.complete(chunk, range, &hash)?;
                if verdicts.send((chunk, ok)).is_err() {
                    break;
                }
            }
        }
    }
    Ok(sink)
}
