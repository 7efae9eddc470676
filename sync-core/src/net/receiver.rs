//! The receiving driver: a socket thread running a [`Receiver`] and a
//! writer thread that owns the [`BlockSink`].
//!
//! Owns the split between the two: the socket thread authenticates
//! datagrams and queues new blocks for the writer through a bounded queue
//! of [`WRITE_QUEUE`] blocks; the writer writes them and verifies completed
//! chunks (BLAKE3 of what it wrote, read back through the sink), in order,
//! so a verification always sees the writes before it. When the queue is
//! full the datagram is dropped unprocessed (the sender will resend it),
//! and the queue's fill is reported to the state machine as back-pressure
//! so the sender slows down to the disk's pace instead of flooding it.

use std::io;
use std::net::UdpSocket;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver as ChanRx, Sender as ChanTx, TrySendError};

use super::link::ControlLink;
use super::socket::{recv_batch, BATCH};
use crate::proto::layout::{Layout, MAX_DATAGRAM};
use crate::proto::receiver::{Event, Receiver, ReceiverStats};

/// Blocks that may wait for the writer (about 6 MB at the default size).
pub const WRITE_QUEUE: usize = 4096;
/// Longest wait in `recvmmsg` before timers and the control link are checked.
const RECV_TIMEOUT: Duration = Duration::from_millis(1);
/// Bytes read back at a time when verifying a chunk.
const VERIFY_BUF: usize = 1 << 20;

/// Where received blocks go: a spool file in the session, memory in tests.
pub trait BlockSink {
    fn write(&mut self, stream_offset: u64, data: &[u8]) -> io::Result<()>;
    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> io::Result<()>;
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

    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(stream_offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let src = self
            .get(start..start + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// What the receiving side did, beyond the state machine's own counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveReport {
    pub stats: ReceiverStats,
    /// Datagrams dropped because the write queue was full.
    pub backpressure_drops: u64,
}

enum Job {
    Write(u64, Vec<u8>),
    Verify(usize, Range<u64>, [u8; 32]),
}

/// Runs `receiver` until every chunk is verified, writing into `sink`;
/// returns the sink and a report. Fails if the transfer times out, a chunk
/// cannot be verified, or the socket, link or sink fails.
pub fn run_receiver<S: BlockSink + Send + 'static>(
    socket: &UdpSocket,
    mut receiver: Receiver,
    layout: Arc<Layout>,
    sink: S,
    link: &mut dyn ControlLink,
) -> io::Result<(S, ReceiveReport)> {
    socket.set_read_timeout(Some(RECV_TIMEOUT))?;
    let (jobs, job_rx) = bounded::<Job>(WRITE_QUEUE);
    let (verdict_tx, verdicts) = bounded::<(usize, bool)>(WRITE_QUEUE);
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let written = written.clone();
        std::thread::Builder::new()
            .name("sluice-writer".into())
            .spawn(move || write_loop(sink, job_rx, verdict_tx, written))?
    };
    let result = receive_loop(
        socket,
        &mut receiver,
        &layout,
        &jobs,
        &verdicts,
        &written,
        link,
    );
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
}

fn receive_loop(
    socket: &UdpSocket,
    receiver: &mut Receiver,
    layout: &Layout,
    jobs: &ChanTx<Job>,
    verdicts: &ChanRx<(usize, bool)>,
    written: &AtomicU64,
    link: &mut dyn ControlLink,
) -> io::Result<u64> {
    let mut bufs = vec![vec![0u8; MAX_DATAGRAM]; BATCH];
    let mut lens = [0usize; BATCH];
    let mut drops = 0u64;
    loop {
        let n = recv_batch(socket, &mut bufs, &mut lens)?;
        let now = Instant::now();
        for i in 0..n {
            if jobs.len() >= WRITE_QUEUE {
                drops += 1;
                continue;
            }
            // Drop reasons are counted inside the receiver.
            if let Ok(Some(d)) = receiver.handle_datagram(now, &mut bufs[i][..lens[i]]) {
                let job = Job::Write(d.stream_offset, d.data.to_vec());
                if let Err(TrySendError::Disconnected(_)) = jobs.try_send(job) {
                    return Err(io::Error::other("writer stopped"));
                }
            }
            drain_events(receiver, layout, jobs)?;
        }
        while let Ok((chunk, ok)) = verdicts.try_recv() {
            receiver.handle_chunk_verified(now, chunk, ok);
        }
        let fill = (jobs.len() * 1000 / WRITE_QUEUE) as u16;
        receiver.handle_sink(now, fill, written.load(Ordering::Relaxed));
        while let Some(msg) = link.try_recv()? {
            receiver.handle_control(now, msg);
        }
        if receiver.poll_timeout().is_some_and(|t| t <= now) {
            receiver.handle_timeout(now);
        }
        while let Some(msg) = receiver.poll_feedback(now) {
            link.send(&msg)?;
        }
        if drain_events(receiver, layout, jobs)? {
            // Make sure the sender hears about completion.
            while let Some(msg) = receiver.poll_feedback(now) {
                link.send(&msg)?;
            }
            return Ok(drops);
        }
    }
}

/// Forwards chunk completions to the writer; true once the transfer is done.
fn drain_events(receiver: &mut Receiver, layout: &Layout, jobs: &ChanTx<Job>) -> io::Result<bool> {
    while let Some(ev) = receiver.poll_event() {
        match ev {
            Event::ChunkComplete(c) => {
                let spec = layout.chunks()[c];
                // Blocking send: verification must not be dropped.
                jobs.send(Job::Verify(c, layout.chunk_range(c), spec.hash))
                    .map_err(|_| io::Error::other("writer stopped"))?;
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
    written: Arc<AtomicU64>,
) -> io::Result<S> {
    let mut buf = vec![0u8; VERIFY_BUF];
    for job in jobs {
        match job {
            Job::Write(offset, data) => {
                sink.write(offset, &data)?;
                written.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            Job::Verify(chunk, range, hash) => {
                let mut hasher = blake3::Hasher::new();
                let mut o = range.start;
                while o < range.end {
                    let n = ((range.end - o) as usize).min(buf.len());
                    sink.read(o, &mut buf[..n])?;
                    hasher.update(&buf[..n]);
                    o += n as u64;
                }
                let ok = *hasher.finalize().as_bytes() == hash;
                if verdicts.send((chunk, ok)).is_err() {
                    break;
                }
            }
        }
    }
    Ok(sink)
}
