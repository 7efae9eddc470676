//! Diagnostics of the simulator: where a simulated transfer spends its
//! time, printed rather than judged (`fair_pair` also checks the two
//! shares). Not part of `cargo bench`'s default figures: name one.
//!
//! ```text
//! RTT=200 LOSS=0.01 BUCKET=50 cargo bench -p sync-core --bench sim_diagnostics -- probe
//! SEEDS=20 MB=300 RTTS=100,200 cargo bench -p sync-core --bench sim_diagnostics -- tail_survey
//! RTT=20 MBIT=100 QUEUE_MS=20 cargo bench -p sync-core --bench sim_diagnostics -- fair_pair
//! MBIT=300 RTTS=20,100,200 LOSSES=0,0.01,0.05 cargo bench -p sync-core --bench sim_diagnostics -- wan_cells
//! ```
//!
//! `probe`: one cell's timeline bucket by bucket and the last block's
//! history. `tail_survey`: how long the tail takes over many seeds.
//! `fair_pair`: two flows on one bottleneck, their shares (`WITHIN`: the
//! largest gap between them, as a share of the larger, that passes).
//! `wan_cells`: the real-path issue's cells in the simulator.

use std::time::Duration;

use sync_core::proto::layout::{LayoutConfig, IPV4_UDP_OVERHEAD};
use sync_core::proto::sim::link::LinkConfig;
use sync_core::proto::sim::{run, FlowResult, FlowSpec, Payload, SimConfig, SimResult, Snapshot};

fn main() {
    // `cargo bench` passes `--bench`; the first other word names the run.
    let which = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    match which.as_deref() {
        Some("probe") => probe(),
        Some("tail_survey") => tail_survey(),
        Some("fair_pair") => fair_pair(),
        Some("wan_cells") => wan_cells(),
        _ => eprintln!(
            "name a diagnostic: cargo bench -p sync-core --bench sim_diagnostics -- \
             probe | tail_survey | fair_pair | wan_cells (see the file's first comment)"
        ),
    }
}

fn block_size() -> u64 {
    LayoutConfig {
        ip_overhead: IPV4_UDP_OVERHEAD,
        ..LayoutConfig::default()
    }
    .block_size()
    .expect("the default layout has a block size") as u64
}

fn assert_delivered(r: &SimResult, what: &str) {
    r.assert_delivered(what);
}

fn env<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(key: &str, default: &str) -> Vec<f64> {
    std::env::var(key)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// The bench's cell: 1 Gbit/s (or `MBIT`), a queue of one BDP, `mb` MB.
fn cell(seed: u64, rtt_ms: u64, loss: f64, mb: u64, bucket: Duration) -> (LinkConfig, FlowResult) {
    let mut link = LinkConfig::new(env("MBIT", 1000), Duration::from_millis(rtt_ms));
    link.loss = loss;
    let mut cfg = SimConfig::new(seed, link.clone());
    cfg.bucket = bucket;
    let spec = FlowSpec::new(Payload::Pattern {
        seed: 1,
        len: mb * 1_000_000,
    });
    let r = run(&cfg, vec![spec]);
    assert_delivered(&r, "diagnostic");
    (link, r.flows.into_iter().next().expect("one flow"))
}

/// Every send of the block delivered last, and its delivery (ms).
fn last_block(f: &FlowResult) -> Option<(u64, Vec<(u128, bool)>)> {
    let last = f.tail.iter().rev().find(|e| e.delivered)?.block;
    let history = f
        .tail
        .iter()
        .filter(|e| e.block == last)
        .map(|e| (e.at.as_millis(), e.delivered))
        .collect();
    Some((last, history))
}

fn probe() {
    let rtt: u64 = env("RTT", 100);
    let loss: f64 = env("LOSS", 0.01);
    let bucket = Duration::from_millis(env("BUCKET", 100));
    // The bench's seed for this cell.
    let seed = rtt * 100 + (loss * 100.0) as u64;
    let (link, f) = cell(seed, rtt, loss, env("MB", 1000), bucket);
    eprintln!(
        "goodput {:.1} Mbit/s ({:.2} % of link), completed {:?}, last new block sent {:?}",
        f.goodput_bps() / 1e6,
        f.goodput_bps() / (link.rate as f64 * 8.0) * 100.0,
        f.completed,
        f.last_new,
    );
    eprintln!("{:?}\n{:?}", f.sender, f.receiver);
    if let Some((block, history)) = last_block(&f) {
        let blocks = f.stream_len.div_ceil(block_size());
        eprintln!("last block {block} of {blocks}, sent and delivered (ms): {history:?}");
    }
    // Per bucket: pacing rate and what was sent (Mbit/s at the IP level),
    // the bottleneck's queue, datagrams in flight, drops, the link's idle
    // time so far, blocks held and duplicates at the receiver.
    eprintln!(
        "{:>8} {:>5} {:>5} {:>5} {:>5} {:>5} {:>6} {:>6} {:>6} {:>5} {:>8} {:>7} {:>5}",
        "t_ms",
        "rate",
        "new",
        "rep",
        "pass",
        "spec",
        "q_ms",
        "inflt",
        "qdrop",
        "rdrop",
        "idle_ms",
        "held",
        "dups"
    );
    let mut prev: Option<&Snapshot> = None;
    for s in &f.timeline {
        let d = |get: fn(&Snapshot) -> u64| get(s) - prev.map_or(0, get);
        let dt = prev.map_or(s.at, |p| s.at - p.at).as_secs_f64().max(1e-9);
        let mbit = |n: u64| n as f64 * 1500.0 * 8.0 / dt / 1e6;
        eprintln!(
            "{:>8} {:>5} {:>5.0} {:>5.0} {:>5.0} {:>5.0} {:>6.1} {:>6} {:>6} {:>5} {:>8.1} {:>7} {:>5}",
            s.at.as_millis(),
            s.sender.rate * 8 / 1_000_000,
            mbit(d(|s| s.sender.new_blocks)),
            mbit(d(|s| s.sender.retransmissions)),
            mbit(d(|s| s.sender.pass_resends)),
            mbit(d(|s| s.sender.speculative)),
            s.queue_delay.as_secs_f64() * 1e3,
            s.in_flight,
            d(|s| s.link.queue_drops),
            d(|s| s.link.random_drops),
            s.link.idle.as_secs_f64() * 1e3,
            s.receiver.blocks,
            d(|s| s.receiver.duplicates),
        );
        prev = Some(s);
    }
}

/// One bench cell is one seed, and the tail varies a lot from seed to
/// seed; this averages completion and tail (last new block to verified)
/// over many, and shows the history of the last block of slow tails.
fn tail_survey() {
    let seeds: u64 = env("SEEDS", 10);
    let mb: u64 = env("MB", 300);
    for rtt in env_list("RTTS", "10,100,200") {
        let rtt = rtt as u64;
        for loss in env_list("LOSSES", "0,0.01,0.05") {
            let (mut completed, mut tail, mut worst, mut spec) = (0.0, 0.0, 0.0f64, 0.0);
            let (mut parity, mut recovered) = (0.0, 0.0);
            for seed in 0..seeds {
                let (_, f) = cell(seed * 7919 + rtt, rtt, loss, mb, Duration::from_millis(100));
                let c = f.completed.unwrap_or_default().as_secs_f64();
                let t = c - f.last_new.unwrap_or_default().as_secs_f64();
                // A tail slower than this is shown (default: two round trips).
                let slow: f64 = env("SLOW_MS", 2.0 * rtt as f64 + 20.0);
                if t > slow / 1e3 {
                    eprintln!(
                        "slow tail, seed {seed}: {t:.3} s, parity {} rebuilt {}, last block {:?}",
                        f.sender.parity,
                        f.receiver.recovered,
                        last_block(&f)
                    );
                }
                completed += c;
                tail += t;
                worst = worst.max(t);
                spec += f.sender.speculative as f64;
                parity += f.sender.parity as f64;
                recovered += f.receiver.recovered as f64;
            }
            let n = seeds as f64;
            eprintln!(
                "rtt {rtt:>3} ms loss {:>2.0} %: completed {:.4} s, tail {:>5.1} ms (worst {:>5.1}), speculative {:>6.0}, parity {:>5.0}, rebuilt {:>5.0}",
                loss * 100.0,
                completed / n,
                tail / n * 1e3,
                worst * 1e3,
                spec / n,
                parity / n,
                recovered / n
            );
        }
    }
}

/// Two fair flows of `GB` gigabytes each (default 10: enough for 8 s at
/// 10 Gbit/s; more for longer runs there) on one bottleneck, the second
/// starting at `START` s: each one's delivered rate and the queue, every
/// 500 ms, then the shares over the last `LAST` seconds.
fn fair_pair() {
    let rtt = Duration::from_millis(env("RTT", 20));
    let mbit: u64 = env("MBIT", 100);
    let mut link = LinkConfig::new(mbit, rtt);
    let queue_ms: u64 = env("QUEUE_MS", rtt.as_millis() as u64);
    link.queue_bytes = (link.rate * queue_ms / 1000).max(64 << 10);
    let mut cfg = SimConfig::new(env("SEED", 31), link);
    let secs: u64 = env("SECS", 12);
    cfg.max_time = Duration::from_secs(secs);
    let big = |seed| Payload::Pattern {
        seed,
        len: env("GB", 10) * 1_000_000_000,
    };
    let first = FlowSpec::new(big(1));
    let mut second = FlowSpec::new(big(2));
    second.start = Duration::from_secs(env("START", 2));
    let r = run(&cfg, vec![first, second]);
    // Buckets are counted from the run's start for both flows.
    let per_sec = (1.0 / cfg.bucket.as_secs_f64()).round() as usize;
    let mbit = |f: &FlowResult, from: usize, n: usize| -> f64 {
        let bytes: u64 = f.delivered.iter().skip(from).take(n).sum();
        bytes as f64 * 8.0 / (n as f64 / per_sec as f64) / 1e6
    };
    let per = (per_sec / 2).max(1);
    for i in (0..r.queue_delay.len()).step_by(per) {
        let means = &r.queue_delay[i..(i + per).min(r.queue_delay.len())];
        let (lo, hi) = means.iter().fold((f64::MAX, 0.0f64), |(lo, hi), (m, _)| {
            let ms = m.as_secs_f64() * 1e3;
            (lo.min(ms), hi.max(ms))
        });
        eprintln!(
            "{:>5.1} s  {:>6.1} {:>6.1} Mbit/s  queue (bucket means) {lo:>5.1}..{hi:>5.1} ms",
            i as f64 / per_sec as f64,
            mbit(&r.flows[0], i, per),
            mbit(&r.flows[1], i, per),
        );
    }
    let last_secs: usize = env("LAST", 4);
    let last = last_secs * per_sec;
    let from = (secs as usize * per_sec).saturating_sub(last);
    let (a, b) = (mbit(&r.flows[0], from, last), mbit(&r.flows[1], from, last));
    eprintln!("last {last_secs} s: {a:.1} / {b:.1} Mbit/s");
    // What the pair demonstrates: the flows share the bottleneck. Their
    // shares differ by at most `WITHIN` of the larger (default 0.2, the
    // line of the tests and of `bench/transport/fair-survey.sh`, which
    // sets 1 to print its pairs rather than judge them).
    let within: f64 = env("WITHIN", 0.2);
    let apart = (a - b).abs() / a.max(b);
    assert!(
        apart <= within,
        "shares {a:.1} / {b:.1} Mbit/s differ by {:.1} %, more than {:.0} %",
        apart * 100.0,
        within * 100.0
    );
}

/// The simulator's prediction for the real-path bench's cells
/// (`bench/wan.sh`): `MBIT` (300), a drop-tail queue of `QUEUE_MS` (100,
/// wanem's default) at the link rate, loss in both directions (data and
/// feedback) dropped in front of the queue as wanem does (`BEFORE=0`:
/// after the bottleneck), `MB` (2147, the bench's 2 GiB file). Prints the goodput of
/// the data phase as a share of the link, to set beside the bench's
/// `data_s` column.
fn wan_cells() {
    let mbit: u64 = env("MBIT", 300);
    let queue_ms: u64 = env("QUEUE_MS", 100);
    let mb: u64 = env("MB", 2147);
    eprintln!("{mbit} Mbit/s, queue {queue_ms} ms, {mb} MB, loss both ways");
    eprintln!(
        "{:>6} {:>6} {:>9} {:>7}",
        "rtt_ms", "loss", "goodput", "share"
    );
    for rtt in env_list("RTTS", "20,100,200") {
        for loss in env_list("LOSSES", "0,0.01,0.05") {
            let rtt_ms = rtt as u64;
            let mut link = LinkConfig::new(mbit, Duration::from_millis(rtt_ms));
            link.loss = loss;
            link.loss_before_queue = env("BEFORE", 1) == 1;
            link.queue_bytes = link.rate * queue_ms / 1000;
            let mut cfg = SimConfig::new(rtt_ms * 100 + (loss * 100.0) as u64, link.clone());
            cfg.control.feedback_loss = loss;
            cfg.max_time = Duration::from_secs(600);
            let spec = FlowSpec::new(Payload::Pattern {
                seed: 1,
                len: mb * 1_000_000,
            });
            let r = run(&cfg, vec![spec]);
            assert_delivered(&r, "wan_cells");
            let f = &r.flows[0];
            eprintln!(
                "{:>6} {:>6} {:>9.1} {:>6.1}%",
                rtt_ms,
                loss,
                f.goodput_bps() / 1e6,
                f.goodput_bps() / (mbit as f64 * 1e6) * 100.0
            );
        }
    }
}
