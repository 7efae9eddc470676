//! Real-socket loopback throughput of the block transport driver.
//!
//! Sends `SIZE_MB` (default 1000) of generated data from one thread to
//! another over 127.0.0.1 with AES-256-GCM, through `run_sender` and
//! `run_receiver`, and prints the goodput. By default the stream is
//! generated into memory before the clock starts, the source reads from it
//! and the sink writes into a pre-touched buffer of the same size, which is
//! what a session's files and spool cost when they sit in the page cache
//! (one copy each way; chunk verification reads the buffer back and hashes
//! it). The received stream is compared with the sent one after the clock
//! stops.
//!
//! Run: `cargo run --release -p sync-core --example udp_loopback [SIZE_MB] [MAX_MBIT]
//! [--packet-size BYTES] [--fixed MBIT] [--no-crypto] [--pattern]`
//!
//! `SLUICE_LOG=trace` prints the sender's rate decisions on stderr.
//! `--packet-size` sets the IP packet size (1280..=9000, default 1500);
//! `--fixed` replaces the fair controller with a constant rate, to tell the
//! driver's ceiling from the controller's; `--no-crypto` turns AES-GCM off;
//! `--pattern` generates the stream on the fly on both sides instead of
//! holding it in memory (no memory needed, but the generator then costs
//! more CPU than the transport: every byte is generated three times).

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use sync_core::net::{
    bind_in_range, channel_pair, run_receiver, run_sender, set_buffers, BlockSink,
};
use sync_core::proto::congestion::{mbit, CongestionConfig, FairConfig, FixedConfig};
use sync_core::proto::layout::{ChunkSpec, Layout, LayoutConfig, IPV4_UDP_OVERHEAD};
use sync_core::proto::sim::Pattern;
use sync_core::proto::{
    BlockSource, Cipher, Receiver, ReceiverConfig, Sender, SenderConfig, SessionSecret,
};

/// Checks each block against the pattern and regenerates chunks to verify them.
struct PatternSink(Pattern);

impl BlockSink for PatternSink {
    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !self.0.matches(offset, data) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "corrupt block"));
        }
        Ok(())
    }
    fn complete(
        &mut self,
        _: usize,
        range: std::ops::Range<u64>,
        hash: &[u8; 32],
    ) -> io::Result<bool> {
        // Regenerate and hash, as a real sink hashes what it holds.
        let mut buf = vec![0; (range.end - range.start) as usize];
        self.0.read(range.start, &mut buf)?;
        Ok(blake3::hash(&buf).as_bytes() == hash)
    }
}

/// What the command line asked for.
struct Options {
    size_mb: u64,
    max_mbit: u64,
    packet_size: usize,
    fixed_mbit: Option<u64>,
    cipher: Cipher,
    pattern: bool,
}

fn parse_args() -> io::Result<Options> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
    let mut opts = Options {
        size_mb: 1000,
        max_mbit: 100_000,
        packet_size: 1500,
        fixed_mbit: None,
        cipher: Cipher::Aes256Gcm,
        pattern: false,
    };
    let mut positional = 0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> io::Result<u64> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(&format!("{name} needs a number")))
        };
        match a.as_str() {
            "--packet-size" => opts.packet_size = value("--packet-size")? as usize,
            "--fixed" => opts.fixed_mbit = Some(value("--fixed")?),
            "--no-crypto" => opts.cipher = Cipher::None,
            "--pattern" => opts.pattern = true,
            _ => {
                let v: u64 = a
                    .parse()
                    .map_err(|_| bad(&format!("unknown argument {a}")))?;
                match positional {
                    0 => opts.size_mb = v,
                    1 => opts.max_mbit = v,
                    _ => return Err(bad("too many arguments")),
                }
                positional += 1;
            }
        }
    }
    Ok(opts)
}

fn main() -> io::Result<()> {
    // SLUICE_LOG=trace shows the sender's per-feedback rate decisions.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG") {
        tracing_subscriber::fmt()
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .with_ansi(false)
            .with_env_filter(filter)
            .with_writer(io::stderr)
            .init();
    }
    let opts = parse_args()?;
    let size_mb = opts.size_mb;
    let len = size_mb * 1_000_000;
    let pattern = Pattern(42);
    let stream: Arc<Vec<u8>> = if opts.pattern {
        Arc::new(Vec::new())
    } else {
        let mut v = vec![0u8; len as usize];
        let mut p = pattern;
        p.read(0, &mut v)?;
        Arc::new(v)
    };
    // 1 MiB chunks, hashed from the generator.
    let mut chunks = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut o = 0;
    while o < len {
        let n = (len - o).min(1 << 20) as usize;
        let mut p = pattern;
        p.read(o, &mut buf[..n])?;
        chunks.push(ChunkSpec {
            len: n as u32,
            hash: *blake3::hash(&buf[..n]).as_bytes(),
        });
        o += n as u64;
    }
    let config = LayoutConfig {
        ip_overhead: IPV4_UDP_OVERHEAD,
        packet_size: opts.packet_size,
    };
    let layout = Arc::new(Layout::new(config, chunks).map_err(io::Error::other)?);
    let secret = SessionSecret::generate().map_err(|_| io::Error::other("no randomness"))?;
    let rx = bind_in_range(Ipv4Addr::LOCALHOST.into(), 0..=0)?;
    let tx = bind_in_range(Ipv4Addr::LOCALHOST.into(), 0..=0)?;
    let sizes = set_buffers(&rx, sync_core::net::socket::SOCKET_BUFFER)?;
    set_buffers(&tx, sync_core::net::socket::SOCKET_BUFFER)?;
    eprintln!("socket buffers: {sizes:?}");
    let peer = rx.local_addr()?;
    let (mut tx_link, mut rx_link) = channel_pair();
    let now = Instant::now();
    let receiver_config = ReceiverConfig {
        cipher: opts.cipher,
        ..ReceiverConfig::default()
    };
    let receiver = Receiver::new(receiver_config, layout.clone(), &secret, now);
    let congestion = match opts.fixed_mbit {
        Some(m) => CongestionConfig::Fixed(FixedConfig { rate: mbit(m) }),
        None => CongestionConfig::Fair(FairConfig {
            max_rate: mbit(opts.max_mbit),
            ..FairConfig::default()
        }),
    };
    let sender_config = SenderConfig {
        cipher: opts.cipher,
        congestion,
        ..SenderConfig::default()
    };
    let sender = Sender::new(sender_config, layout.clone(), &secret, now);
    // Touched up front, like page-cache pages of a spool being reused.
    let spool = if opts.pattern {
        Vec::new()
    } else {
        vec![0xA5u8; len as usize]
    };
    // A mark for profilers to attach at (`perf record -p`).
    eprintln!("transfer starts");
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let sending = {
        let stream = stream.clone();
        let pattern_mode = opts.pattern;
        std::thread::spawn(move || {
            let mut generated = pattern;
            let mut held: &[u8] = &stream;
            let source: &mut dyn BlockSource = if pattern_mode {
                &mut generated
            } else {
                &mut held
            };
            run_sender(&tx, peer, sender, source, &mut tx_link)
        })
    };
    let (report, spool) = if opts.pattern {
        let (_, report) = run_receiver(&rx, receiver, layout, PatternSink(pattern), &mut rx_link)?;
        (report, None)
    } else {
        let (spool, report) = run_receiver(&rx, receiver, layout, spool, &mut rx_link)?;
        (report, Some(spool))
    };
    let stats = sending
        .join()
        .map_err(|_| io::Error::other("sender panicked"))??;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    if spool.is_some_and(|s| s != *stream) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "spool differs"));
    }
    println!(
        "sluice-udp {size_mb} MB in {secs:.2} s: {:.0} Mbit/s goodput (sent {} datagrams, {} repairs, {} speculative, {} back-pressure drops, final rate {} Mbit/s; {cpu:.2} CPU s, {:.2} per GB)",
        len as f64 * 8.0 / secs / 1e6,
        stats.datagrams,
        stats.retransmissions + stats.pass_resends,
        stats.speculative,
        report.backpressure_drops,
        stats.rate * 8 / 1_000_000,
        cpu / (len as f64 / 1e9)
    );
    Ok(())
}

/// User plus system CPU time of the whole process so far, in seconds: the
/// cost of a transfer on a machine whose cores are all busy, where the
/// goodput alone moves with the scheduler.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut u = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
