//! Real-socket loopback throughput of the block transport driver.
//!
//! Sends `SIZE_MB` (default 1000) of generated data from one thread to
//! another over 127.0.0.1 with AES-256-GCM, through `run_sender` and
//! `run_receiver`, and prints the goodput. The receiver's sink discards
//! writes after counting them (it would otherwise measure memory copies),
//! and answers verification reads from the same generator.
//!
//! Run: `cargo run --release -p sync-core --example udp_loopback [SIZE_MB] [MAX_MBIT]`

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use sync_core::net::{
    bind_in_range, channel_pair, run_receiver, run_sender, set_buffers, BlockSink,
};
use sync_core::proto::congestion::{mbit, CongestionConfig, FairConfig};
use sync_core::proto::layout::{ChunkSpec, Layout, LayoutConfig, IPV4_UDP_OVERHEAD};
use sync_core::proto::sim::Pattern;
use sync_core::proto::{
    BlockSource, Receiver, ReceiverConfig, Sender, SenderConfig, SessionSecret,
};

/// Discards writes but can reproduce the stream for verification reads.
struct PatternSink(Pattern);

impl BlockSink for PatternSink {
    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !self.0.matches(offset, data) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "corrupt block"));
        }
        Ok(())
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read(offset, buf)
    }
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let size_mb: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let max_mbit: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let len = size_mb * 1_000_000;
    let pattern = Pattern(42);
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
        ..LayoutConfig::default()
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
    let receiver = Receiver::new(ReceiverConfig::default(), layout.clone(), &secret, now);
    let sender_config = SenderConfig {
        congestion: CongestionConfig::Fair(FairConfig {
            max_rate: mbit(max_mbit),
            ..FairConfig::default()
        }),
        ..SenderConfig::default()
    };
    let sender = Sender::new(sender_config, layout.clone(), &secret, now);
    let started = Instant::now();
    let sending = std::thread::spawn(move || {
        let mut source = pattern;
        run_sender(&tx, peer, sender, &mut source, &mut tx_link)
    });
    let (_, report) = run_receiver(&rx, receiver, layout, PatternSink(pattern), &mut rx_link)?;
    let stats = sending
        .join()
        .map_err(|_| io::Error::other("sender panicked"))??;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sluice-udp {size_mb} MB in {secs:.2} s: {:.0} Mbit/s goodput (sent {} datagrams, {} repairs, {} back-pressure drops)",
        len as f64 * 8.0 / secs / 1e6,
        stats.datagrams,
        stats.retransmissions + stats.pass_resends,
        report.backpressure_drops
    );
    Ok(())
}
