//! Simulated goodput of the block transport (virtual time, no sockets).
//!
//! Prints a table for a 1 Gbit/s bottleneck (queue = one BDP), a 1 GB
//! stream, AES-256-GCM, the default `fair` controller, RTT {10, 100, 200} ms
//! × random loss {0, 1, 5} %. Goodput is file bytes over the time from the
//! first datagram to the receiver having verified everything, as a share of
//! the link's IP-level rate (so IP/UDP/header/tag overhead counts against
//! us). `resent` counts every datagram sent again; `speculative`, those of
//! them sent after the last new block while an earlier copy was still in
//! flight, before any NAK asked. `SLUICE_SIM_MB` shrinks the stream for a
//! quick look.
//!
//! Run: `cargo bench -p sync-core --bench proto_sim`

use std::time::{Duration, Instant};

use sync_core::proto::sim::link::LinkConfig;
use sync_core::proto::sim::{run, FlowSpec, Payload, SimConfig};

fn main() {
    let mb: u64 = std::env::var("SLUICE_SIM_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    println!("sluice block transport, simulated: 1 Gbit/s, {mb} MB, AES-256-GCM, fair controller");
    println!(
        "{:>8} {:>6} {:>14} {:>10} {:>12} {:>12} {:>12} {:>10}",
        "rtt", "loss", "goodput", "of link", "completed", "resent", "speculative", "wall"
    );
    for rtt in [10u64, 100, 200] {
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
                "{:>6}ms {:>5.0}% {:>9.1} Mb/s {:>9.1}% {:>11.2}s {:>12} {:>12} {:>9.2}s",
                rtt,
                loss * 100.0,
                g / 1e6,
                g / (link.rate as f64 * 8.0) * 100.0,
                f.completed.unwrap_or_default().as_secs_f64(),
                resent,
                f.sender.speculative,
                t.elapsed().as_secs_f64()
            );
        }
    }
}
