//! Loopback goodput and CPU cost of two UDP socket layers: sluice's own
//! (`net::offload::{Transmit, RecvBuffers}` over `net::socket`'s
//! `sendmmsg`/`recvmmsg`) and quinn-udp's `UdpSocketState`.
//!
//! One sender thread and one receiver thread on 127.0.0.1 move `--mb`
//! megabytes (default 2000) as datagrams of each `--sizes` (default 1472,
//! the payload of a 1500-byte IPv4 packet). The sender hands the socket
//! layer batches of [`MAX_SEND`] datagrams, as `run_sender` does: ours
//! sends a batch as GSO groups in one `sendmmsg`, quinn-udp as one
//! `sendmsg` per GSO group (the same groups, from `gso_groups`). The
//! receiver reads GRO-coalesced buffers (8 slots of 64 KiB for both). Only
//! the socket layers differ: same buffer sizes (`set_buffers`), same
//! datagrams, same per-datagram work (read the sequence number). The
//! sender is unpaced unless `--gbit` is given, so loopback drops what the
//! receiver cannot keep up with; those losses are counted, not retried.
//!
//! `ours-mmsg` and `quinn-nogso` measure the fallbacks without GSO (ours:
//! plain `sendmmsg`/`recvmmsg` batches of 32; quinn-udp: one `sendmsg` per
//! datagram, GRO still on). Implementations are interleaved over `--runs`
//! rounds (default 5) so the machine's slow spells fall on all alike; the
//! table gives medians and ranges.
//!
//! Run: `cargo run --release -p sync-core --example udp_socket_compare --
//! [--mb N] [--runs N] [--sizes 1472,8972] [--impls ours,quinn,ours-mmsg,quinn-nogso]
//! [--gbit RATE] [--deadline SECS]` (or `bench/transport/socket-compare.sh`,
//! which also raises `net.core.{r,w}mem_max` for the run).

use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, UdpSocketState};
use sync_core::net::offload::{gso_groups, RecvBuffers, Transmit, MAX_SEND};
use sync_core::net::socket::{bind_in_range, set_buffers, BufferSizes, SOCKET_BUFFER};

/// How long one receive waits before the loop checks its deadlines.
const RECV_WAIT: Duration = Duration::from_millis(100);
/// A receiver idle this long after the sender finished has all it will get.
const IDLE_END: Duration = Duration::from_millis(300);
/// Pause when the send buffer is full (what `run_sender` does).
const FULL_WAIT: Duration = Duration::from_micros(50);
/// quinn-udp's receive buffers: as many and as large as `RecvBuffers`'
/// with GRO, so both read the same amount per system call.
const GRO_SLOTS: usize = 8;
/// Bytes per slot: the largest message GRO builds.
const GRO_SLOT: usize = 1 << 16;

/// A socket layer under test.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Impl {
    Ours,
    OursMmsg,
    Quinn,
    QuinnNoGso,
}

impl Impl {
    const ALL: [Impl; 4] = [Impl::Ours, Impl::Quinn, Impl::OursMmsg, Impl::QuinnNoGso];

    fn name(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::OursMmsg => "ours-mmsg",
            Impl::Quinn => "quinn",
            Impl::QuinnNoGso => "quinn-nogso",
        }
    }
}

/// What the command line asked for.
struct Options {
    bytes: u64,
    runs: usize,
    sizes: Vec<usize>,
    impls: Vec<Impl>,
    /// Sender rate in Gbit/s; 0 = as fast as the socket takes them.
    gbit: f64,
    deadline: Duration,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        bytes: 2_000_000_000,
        runs: 5,
        sizes: vec![1472],
        impls: vec![Impl::Ours, Impl::Quinn],
        gbit: 0.0,
        deadline: Duration::from_secs(30),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = || format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--mb" => o.bytes = value.parse::<u64>().map_err(|_| bad())? * 1_000_000,
            "--runs" => o.runs = value.parse().map_err(|_| bad())?,
            "--gbit" => o.gbit = value.parse().map_err(|_| bad())?,
            "--deadline" => o.deadline = Duration::from_secs(value.parse().map_err(|_| bad())?),
            "--sizes" => {
                o.sizes = value
                    .split(',')
                    .map(|s| s.parse().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?
            }
            "--impls" => {
                o.impls = value
                    .split(',')
                    .map(|s| {
                        Impl::ALL
                            .into_iter()
                            .find(|i| i.name() == s)
                            .ok_or_else(bad)
                    })
                    .collect::<Result<_, _>>()?
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.sizes.iter().any(|&s| !(8..=8972).contains(&s)) {
        return Err("datagram sizes must be 8..=8972".into());
    }
    if o.runs == 0 || o.impls.is_empty() {
        return Err("nothing to run".into());
    }
    Ok(o)
}

/// CPU time (user + system) the calling thread has used.
#[cfg(target_os = "linux")]
fn thread_cpu() -> Duration {
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, exclusively borrowed out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Per-thread CPU time is a Linux interface; elsewhere report none.
#[cfg(not(target_os = "linux"))]
fn thread_cpu() -> Duration {
    Duration::ZERO
}

/// Waits up to `wait` for `socket` to become readable.
fn wait_readable(socket: &UdpSocket, wait: Duration) {
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, exclusively borrowed for the call.
    unsafe { libc::poll(&mut fd, 1, wait.as_millis() as libc::c_int) };
}

/// The sending half of an implementation, for datagrams of one size to
/// one destination.
struct Tx {
    layer: TxLayer,
    dest: SocketAddr,
    size: usize,
    /// The GSO groups of a full batch of [`MAX_SEND`] datagrams.
    full_groups: Vec<usize>,
    /// Times the send buffer was full and the sender paused.
    full_waits: u64,
}

enum TxLayer {
    Ours(Transmit),
    Quinn { state: UdpSocketState, gso: bool },
}

impl Tx {
    fn new(imp: Impl, socket: &UdpSocket, dest: SocketAddr, size: usize) -> io::Result<Tx> {
        let layer = match imp {
            Impl::Ours | Impl::OursMmsg => TxLayer::Ours(Transmit::new(socket, imp == Impl::Ours)),
            Impl::Quinn | Impl::QuinnNoGso => {
                let state = UdpSocketState::new(socket.into())?;
                let gso = imp == Impl::Quinn;
                TxLayer::Quinn { state, gso }
            }
        };
        Ok(Tx {
            layer,
            dest,
            size,
            full_groups: gso_groups(std::iter::repeat_n(size, MAX_SEND)),
            full_waits: 0,
        })
    }

    fn gso(&self) -> bool {
        match &self.layer {
            TxLayer::Ours(t) => t.gso(),
            TxLayer::Quinn { state, gso } => *gso && state.max_gso_segments() > 1,
        }
    }

    /// Sends `batch`, consecutive datagrams of `size` bytes, waiting while
    /// the socket buffer is full; false if `deadline` passed first.
    fn send(&mut self, socket: &UdpSocket, batch: &[u8], deadline: Instant) -> io::Result<bool> {
        let (size, count) = (self.size, batch.len() / self.size);
        let gso = self.gso();
        match &mut self.layer {
            TxLayer::Ours(tx) => {
                let mut refs: [&[u8]; MAX_SEND] = [&[]; MAX_SEND];
                for (r, d) in refs.iter_mut().zip(batch.chunks(size)) {
                    *r = d;
                }
                let mut from = 0;
                while from < count {
                    let n = tx.send(socket, self.dest, &refs[from..count])?;
                    from += n;
                    if n == 0 {
                        if Instant::now() > deadline {
                            return Ok(false);
                        }
                        self.full_waits += 1;
                        std::thread::sleep(FULL_WAIT);
                    }
                }
            }
            TxLayer::Quinn { state, .. } => {
                let computed;
                let groups = if !gso {
                    None
                } else if count == MAX_SEND {
                    Some(&self.full_groups[..])
                } else {
                    computed = gso_groups(std::iter::repeat_n(size, count));
                    Some(&computed[..])
                };
                let mut at = 0;
                for i in 0..groups.map_or(count, |g| g.len()) {
                    let g = groups.map_or(1, |g| g[i]);
                    let t = quinn_udp::Transmit {
                        destination: self.dest,
                        ecn: None,
                        contents: &batch[at..at + g * size],
                        segment_size: (g > 1).then_some(size),
                        src_ip: None,
                    };
                    loop {
                        match state.try_send(socket.into(), &t) {
                            Ok(()) => break,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                if Instant::now() > deadline {
                                    return Ok(false);
                                }
                                self.full_waits += 1;
                                std::thread::sleep(FULL_WAIT);
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    at += g * size;
                }
            }
        }
        Ok(true)
    }
}

/// The receiving half of an implementation.
enum Rx {
    Ours(RecvBuffers),
    Quinn { state: UdpSocketState, buf: Vec<u8> },
}

impl Rx {
    fn new(imp: Impl, socket: &UdpSocket) -> io::Result<Rx> {
        Ok(match imp {
            Impl::Ours | Impl::OursMmsg => {
                // The driver's receiver blocks with a read timeout.
                socket.set_read_timeout(Some(RECV_WAIT))?;
                Rx::Ours(RecvBuffers::new(socket, imp == Impl::Ours))
            }
            // quinn-udp makes the socket non-blocking and leaves waiting to
            // the caller (an event loop); here, poll(2).
            Impl::Quinn | Impl::QuinnNoGso => Rx::Quinn {
                state: UdpSocketState::new(socket.into())?,
                buf: vec![0; GRO_SLOTS * GRO_SLOT],
            },
        })
    }

    fn gro(&self) -> bool {
        match self {
            Rx::Ours(r) => r.gro(),
            Rx::Quinn { state, .. } => state.gro_segments() > 1,
        }
    }

    /// One receive call (waiting up to [`RECV_WAIT`]); hands each datagram
    /// to `take` and returns how many there were.
    fn recv(&mut self, socket: &UdpSocket, mut take: impl FnMut(&[u8])) -> io::Result<usize> {
        match self {
            Rx::Ours(bufs) => {
                let n = bufs.recv(socket)?;
                for i in 0..n {
                    take(bufs.datagram(i));
                }
                Ok(n)
            }
            Rx::Quinn { state, buf } => {
                let mut chunks = buf.chunks_mut(GRO_SLOT);
                let mut slices: [IoSliceMut; GRO_SLOTS] =
                    std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap()));
                let mut meta = [RecvMeta::default(); GRO_SLOTS];
                let msgs = match state.recv(socket.into(), &mut slices, &mut meta) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        wait_readable(socket, RECV_WAIT);
                        return Ok(0);
                    }
                    Err(e) => return Err(e),
                };
                let mut n = 0;
                for (slice, m) in slices.iter().zip(&meta[..msgs]) {
                    let stride = m.stride.max(1);
                    for d in slice[..m.len].chunks(stride) {
                        take(d);
                        n += 1;
                    }
                }
                Ok(n)
            }
        }
    }
}

/// What one run of one implementation measured.
#[derive(Clone, Copy, Debug)]
struct RunResult {
    sent: u64,
    received: u64,
    gbit: f64,
    tx_cpu: Duration,
    rx_cpu: Duration,
    /// Times the sender found the send buffer full and paused.
    full_waits: u64,
    gso: bool,
    gro: bool,
}

impl RunResult {
    fn lost_pct(&self) -> f64 {
        100.0 * self.sent.saturating_sub(self.received) as f64 / self.sent.max(1) as f64
    }
    /// Both threads' CPU seconds per GB delivered.
    fn cpu_per_gb(&self, size: usize) -> f64 {
        let gb = (self.received * size as u64) as f64 / 1e9;
        (self.tx_cpu + self.rx_cpu).as_secs_f64() / gb.max(1e-9)
    }
}

/// Sends `total` datagrams of `tx`'s size, each starting with its
/// sequence number; returns how many left, the thread's CPU time, how
/// often the send buffer was full, and whether GSO was used.
fn sender(
    mut tx: Tx,
    socket: &UdpSocket,
    total: u64,
    o: &Options,
    start: &Barrier,
) -> io::Result<(u64, Duration, u64, bool)> {
    let size = tx.size;
    let mut batch = vec![0x5Au8; MAX_SEND * size];
    start.wait();
    let (t0, cpu0) = (Instant::now(), thread_cpu());
    let deadline = t0 + o.deadline;
    let mut seq = 0u64;
    while seq < total && Instant::now() < deadline {
        if o.gbit > 0.0 {
            let due = t0 + Duration::from_secs_f64((seq * size as u64 * 8) as f64 / (o.gbit * 1e9));
            if let Some(early) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(early);
            }
        }
        let count = (total - seq).min(MAX_SEND as u64) as usize;
        for (d, n) in batch.chunks_mut(size).take(count).zip(seq..) {
            d[..8].copy_from_slice(&n.to_le_bytes());
        }
        if !tx.send(socket, &batch[..count * size], deadline)? {
            break;
        }
        seq += count as u64;
    }
    Ok((seq, thread_cpu() - cpu0, tx.full_waits, tx.gso()))
}

/// Receives datagrams of `size` bytes until `total` arrived, or the sender
/// is `done` and nothing came for [`IDLE_END`], or the deadline; returns
/// the count, the time from the start to the last one, and the CPU time.
fn receiver(
    mut rx: Rx,
    socket: &UdpSocket,
    (total, size): (u64, usize),
    o: &Options,
    start: &Barrier,
    done: &AtomicBool,
) -> io::Result<(u64, Duration, Duration, bool)> {
    start.wait();
    let (t0, cpu0) = (Instant::now(), thread_cpu());
    let deadline = t0 + o.deadline + IDLE_END;
    let (mut got, mut malformed, mut last) = (0u64, 0u64, t0);
    let mut idle_since = t0;
    while got < total && Instant::now() < deadline {
        let n = rx.recv(socket, |d| {
            let ours =
                d.len() == size && u64::from_le_bytes(d[..8].try_into().expect("8 bytes")) < total;
            if ours {
                got += 1;
            } else {
                malformed += 1;
            }
        })?;
        let now = Instant::now();
        if n > 0 {
            (last, idle_since) = (now, now);
        } else if !done.load(Ordering::Acquire) {
            idle_since = now;
        } else if now - idle_since > IDLE_END {
            break;
        }
    }
    if malformed > 0 {
        eprintln!("  {malformed} malformed datagrams");
    }
    Ok((got, last - t0, thread_cpu() - cpu0, rx.gro()))
}

/// One transfer of `size`-byte datagrams through `imp`, on fresh sockets.
fn run_once(imp: Impl, size: usize, o: &Options) -> io::Result<(RunResult, BufferSizes)> {
    let tx_sock = bind_in_range(Ipv4Addr::LOCALHOST.into(), 0..=0)?;
    let rx_sock = bind_in_range(Ipv4Addr::LOCALHOST.into(), 0..=0)?;
    set_buffers(&tx_sock, SOCKET_BUFFER)?;
    let buffers = set_buffers(&rx_sock, SOCKET_BUFFER)?;
    let dest = rx_sock.local_addr()?;
    let total = o.bytes.div_ceil(size as u64);
    // Both halves are set up before the threads start, so neither can fail
    // while the other waits at the barrier.
    tx_sock.set_nonblocking(true)?;
    let tx = Tx::new(imp, &tx_sock, dest, size)?;
    let rx = Rx::new(imp, &rx_sock)?;
    let start = Barrier::new(2);
    let done = AtomicBool::new(false);
    let ((sent, tx_cpu, full_waits, gso), (received, elapsed, rx_cpu, gro)) =
        std::thread::scope(|s| {
            let rx = s.spawn(|| receiver(rx, &rx_sock, (total, size), o, &start, &done));
            let tx = sender(tx, &tx_sock, total, o, &start);
            done.store(true, Ordering::Release);
            let rx = rx.join().expect("receiver thread panicked");
            Ok::<_, io::Error>((tx?, rx?))
        })?;
    let gbit = (received * size as u64 * 8) as f64 / elapsed.as_secs_f64().max(1e-9) / 1e9;
    let result = RunResult {
        sent,
        received,
        gbit,
        tx_cpu,
        rx_cpu,
        full_waits,
        gso,
        gro,
    };
    Ok((result, buffers))
}

/// "median [min..max]" of `v`, which is not empty.
fn summary(mut v: Vec<f64>, decimals: usize) -> String {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    format!(
        "{median:.decimals$} [{:.decimals$}..{:.decimals$}]",
        v[0],
        v[n - 1]
    )
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("udp_socket_compare: {e}");
            std::process::exit(2);
        }
    };
    let mut results: Vec<(usize, Impl, Vec<RunResult>)> = Vec::new();
    for &size in &o.sizes {
        for &imp in &o.impls {
            results.push((size, imp, Vec::new()));
        }
    }
    let mut buffers = None;
    for run in 0..o.runs {
        for &size in &o.sizes {
            // Rotate the order each round so no implementation always goes first.
            for k in 0..o.impls.len() {
                let imp = o.impls[(run + k) % o.impls.len()];
                match run_once(imp, size, &o) {
                    Ok((r, b)) => {
                        eprintln!(
                            "run {} {size} B {:<11} {:6.2} Gbit/s  lost {:5.2}%  tx cpu {:.2} s  rx cpu {:.2} s  full {}  gso {} gro {}",
                            run + 1,
                            imp.name(),
                            r.gbit,
                            r.lost_pct(),
                            r.tx_cpu.as_secs_f64(),
                            r.rx_cpu.as_secs_f64(),
                            r.full_waits,
                            r.gso,
                            r.gro
                        );
                        buffers.get_or_insert(b);
                        let slot = results.iter_mut().find(|x| x.0 == size && x.1 == imp);
                        slot.expect("every pair has a slot").2.push(r);
                    }
                    Err(e) => eprintln!("run {} {size} B {}: failed: {e}", run + 1, imp.name()),
                }
            }
        }
    }
    println!(
        "127.0.0.1, {} MB a run, {} runs interleaved, sender {}; median [min..max]",
        o.bytes / 1_000_000,
        o.runs,
        if o.gbit > 0.0 {
            format!("paced at {} Gbit/s", o.gbit)
        } else {
            "unpaced".into()
        }
    );
    if let Some(b) = buffers {
        println!(
            "socket buffers: asked {} B, kernel reports send {} B, recv {} B{}",
            b.requested,
            b.send,
            b.recv,
            if b.capped() {
                " (capped: raise net.core.{r,w}mem_max)"
            } else {
                ""
            }
        );
    }
    println!(
        "{:>5} {:<12} {:>24} {:>24} {:>22} {:>22} {:>22}",
        "size", "impl", "goodput Gbit/s", "lost %", "tx cpu s", "rx cpu s", "cpu s per GB"
    );
    for (size, imp, runs) in &results {
        if runs.is_empty() {
            println!("{size:>5} {:<12} all runs failed", imp.name());
            continue;
        }
        let col = |f: &dyn Fn(&RunResult) -> f64, d| summary(runs.iter().map(f).collect(), d);
        println!(
            "{size:>5} {:<12} {:>24} {:>24} {:>22} {:>22} {:>22}",
            imp.name(),
            col(&|r| r.gbit, 2),
            col(&|r| r.lost_pct(), 2),
            col(&|r| r.tx_cpu.as_secs_f64(), 2),
            col(&|r| r.rx_cpu.as_secs_f64(), 2),
            col(&|r| r.cpu_per_gb(*size), 3),
        );
    }
}
