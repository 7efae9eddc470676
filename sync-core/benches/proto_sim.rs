//! Simulated goodput of the block transport (virtual time, no sockets).
//!
//! Prints a table for a 1 Gbit/s bottleneck (queue = one BDP), a 1 GB
//! stream, AES-256-GCM, the default `fair` controller, RTT {10, 100, 200} ms
//! × random loss {0, 1, 5} %. Goodput is file bytes over the time from the
//! first datagram to the receiver having verified everything, as a share of
//! the link's IP-level rate (so IP/UDP/header/tag overhead counts against
//! us). `resent` counts every datagram sent again; `speculative`, those of
//! them sent after the last new block while an earlier copy was still in
//! flight, before any NAK asked; `parity`, the tail codes' parity datagrams,
//! and `rebuilt`, the blocks the receiver rebuilt from them. Completion
//! includes the real time coding would take (see
//! `SimConfig::coding_secs_per_byte`); the last line measures it: one
//! group of the largest size encoded and decoded. `SLUICE_SIM_MB` shrinks
//! the stream for a quick look, `SLUICE_SIM_RTTS` (say `10,200`) picks the
//! rows.
//!
//! Run: `cargo bench -p sync-core --bench proto_sim`

use std::time::{Duration, Instant};

use sync_core::proto::fec::{TailCode, TailDecoder};
use sync_core::proto::layout::{ChunkSpec, Layout, LayoutConfig};
use sync_core::proto::sim::link::LinkConfig;
use sync_core::proto::sim::{run, FlowSpec, Payload, SimConfig};

fn main() {
    let mb: u64 = std::env::var("SLUICE_SIM_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    println!("sluice block transport, simulated: 1 Gbit/s, {mb} MB, AES-256-GCM, fair controller");
    println!(
        "{:>8} {:>6} {:>14} {:>10} {:>12} {:>12} {:>12} {:>8} {:>8} {:>10}",
        "rtt",
        "loss",
        "goodput",
        "of link",
        "completed",
        "resent",
        "speculative",
        "parity",
        "rebuilt",
        "wall"
    );
    let rtts: Vec<u64> = std::env::var("SLUICE_SIM_RTTS")
        .ok()
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 100, 200]);
    for rtt in rtts {
        for loss in [0.0, 0.01, 0.05] {
            let mut link = LinkConfig::new(1000, Duration::from_millis(rtt));
            link.loss = loss;
            let cfg = SimConfig::new(rtt * 100 + (loss * 100.0) as u64, link.clone());
            let spec = FlowSpec::new(Payload::Pattern {
                seed: 1,
                len: mb * 1_000_000,
            });
            let t = Instant::now();
            let r = run(&cfg, vec![spec]);
            let f = &r.flows[0];
            assert!(f.data_ok, "transfer failed (seed {})", r.seed);
            let g = f.goodput_bps();
            let resent = f.sender.retransmissions + f.sender.pass_resends + f.sender.speculative;
            println!(
                "{:>6}ms {:>5.0}% {:>9.1} Mb/s {:>9.1}% {:>11.2}s {:>12} {:>12} {:>8} {:>8} {:>9.2}s",
                rtt,
                loss * 100.0,
                g / 1e6,
                g / (link.rate as f64 * 8.0) * 100.0,
                f.completed.unwrap_or_default().as_secs_f64(),
                resent,
                f.sender.speculative,
                f.sender.parity,
                f.receiver.recovered,
                t.elapsed().as_secs_f64()
            );
        }
    }
    tail_code_cost();
}

/// Real time to encode and decode one tail code of the largest size (4096
/// blocks of 1408 bytes, 1 % of them lost, 64 parity shards), which the
/// simulator's virtual time leaves out. Medians of 5.
fn tail_code_cost() {
    let blocks = 4096u64;
    let bs = LayoutConfig::default()
        .block_size()
        .expect("default layout");
    let len = blocks as usize * bs;
    let data: Vec<u8> = (0..len).map(|i| (i * 31 + i / 4093) as u8).collect();
    let chunks = data
        .chunks(1 << 16)
        .map(|c| ChunkSpec {
            len: c.len() as u32,
            hash: [0; 32],
        })
        .collect();
    let layout = Layout::new(LayoutConfig::default(), chunks).expect("layout");
    let code = TailCode {
        first_block: 0,
        originals: blocks as u16,
        parity: 64,
    };
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = Instant::now();
        let parity = code.encode(&layout, &mut &data[..]).expect("encode");
        enc.push(t.elapsed());
        let mut d = TailDecoder::new(&layout);
        for b in (0..blocks).filter(|b| b % 100 != 7) {
            let r = layout.block_range(b);
            d.keep(b, &data[r.start as usize..r.end as usize]);
        }
        for i in 0..code.parity {
            let shard = &parity[usize::from(i) * bs..][..bs];
            d.add_parity(&layout, code, i, shard).expect("parity");
        }
        let t = Instant::now();
        let rebuilt = d.decode(&layout, 0).expect("decode");
        dec.push(t.elapsed());
        assert_eq!(rebuilt.len(), 41);
    }
    enc.sort();
    dec.sort();
    let per_byte = |d: Duration| d.as_secs_f64() / len as f64 * 1e9;
    println!(
        "tail code, {blocks} blocks ({:.1} MB), 64 parity: encode {:.1} ms ({:.2} ns/byte), decode 41 lost {:.1} ms ({:.2} ns/byte)",
        len as f64 / 1e6,
        enc[2].as_secs_f64() * 1e3,
        per_byte(enc[2]),
        dec[2].as_secs_f64() * 1e3,
        per_byte(dec[2]),
    );
}
