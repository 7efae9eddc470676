//! Chunking and hashing throughput, in memory.
//!
//! Four groups, all on seeded pseudo-random bytes (incompressible, so the
//! chunker sees realistic cut-point statistics) and all reported as
//! `Throughput::Bytes`:
//!
//! * `blake3`: `blake3::hash` of a 64 MiB buffer on one thread, the yardstick
//!   the target is stated against;
//! * `cuts`: [`Chunker::cuts`] alone (FastCDC cut points, no hashing), and
//!   the same cuts through the `fastcdc` crate's loop for reference;
//! * `chunk_stream`: [`chunk_stream`] over an in-memory reader: cut points,
//!   a BLAKE3 per chunk and a whole-file BLAKE3, which is exactly what a
//!   scanner reader thread does per file;
//! * `small_files`: 4 KiB files through [`chunk_stream`], one buffer reused
//!   across files as the scanner does; `blake3_small` hashes the same files
//!   once each, the floor for that group.
//!
//! The target ("chunking plus hashing at least 40 % of single-core BLAKE3
//! per core") compares `chunk_stream` with `blake3` from the same run.
//!
//! Run: `cargo bench -p sync-core --bench chunking`.

use std::hint::black_box;
use std::io::Cursor;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fastcdc::v2020;
use sync_core::chunk::stream::chunk_stream;
use sync_core::chunk::{ChunkParams, Chunker};

/// Size of the large input.
const BIG: usize = 64 << 20;
/// Size of each small file.
const SMALL: usize = 4 << 10;
/// Small files per iteration (4 MiB in all).
const SMALL_COUNT: usize = 1024;
/// Fixed seed: every run chunks the same bytes.
const SEED: u64 = 0x005e_ed51;

/// SplitMix64-driven bytes: deterministic, fast, incompressible.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn chunker() -> Chunker {
    Chunker::new(ChunkParams::default()).expect("default params are valid")
}

fn blake3_single(c: &mut Criterion) {
    let data = noise(SEED, BIG);
    let mut g = c.benchmark_group("blake3");
    g.throughput(Throughput::Bytes(BIG as u64));
    g.sample_size(20);
    // `blake3::hash` never spawns threads (that is `update_rayon`), so this
    // is one core, with whatever SIMD the CPU offers.
    g.bench_function("hash_64MiB_1thread", |b| {
        b.iter(|| blake3::hash(black_box(&data)))
    });
    g.finish();
    // The floor for the small-files group: one BLAKE3 per 4 KiB file.
    let files = small_files();
    let mut g = c.benchmark_group("blake3_small");
    g.throughput(Throughput::Bytes((SMALL * SMALL_COUNT) as u64));
    g.bench_function("hash_4KiB_x1024", |b| {
        b.iter(|| {
            for f in &files {
                black_box(blake3::hash(black_box(f)));
            }
        })
    });
    g.finish();
}

/// The small-file inputs, each from its own seed.
fn small_files() -> Vec<Vec<u8>> {
    (0..SMALL_COUNT)
        .map(|i| noise(SEED ^ i as u64, SMALL))
        .collect()
}

fn cuts_only(c: &mut Criterion) {
    let data = noise(SEED, BIG);
    let ch = chunker();
    let mut g = c.benchmark_group("cuts");
    g.throughput(Throughput::Bytes(BIG as u64));
    g.sample_size(20);
    g.bench_function("fastcdc_64MiB", |b| {
        b.iter(|| ch.cuts(black_box(&data)).count())
    });
    // The same cut points through the `fastcdc` crate's own loop, which
    // `Chunker` restates for speed: the reference for that change.
    let p = ChunkParams::default();
    let (min, avg, max) = (p.min as usize, p.avg as usize, p.max as usize);
    let (mask_s, mask_l) = v2020::select_masks(avg, v2020::Normalization::Level1);
    g.bench_function("fastcdc_crate_64MiB", |b| {
        b.iter(|| {
            let (mut pos, mut n) = (0, 0);
            while pos < data.len() {
                let (_, len) = v2020::cut(
                    black_box(&data[pos..]),
                    min,
                    avg,
                    max,
                    mask_s,
                    mask_l,
                    mask_s << 1,
                    mask_l << 1,
                );
                pos += len;
                n += 1;
            }
            n
        })
    });
    g.finish();
}

fn stream_big(c: &mut Criterion) {
    let data = noise(SEED, BIG);
    let ch = chunker();
    let mut buf = Vec::new();
    let mut g = c.benchmark_group("chunk_stream");
    g.throughput(Throughput::Bytes(BIG as u64));
    g.sample_size(20);
    g.bench_function("cut_and_hash_64MiB", |b| {
        b.iter(|| {
            chunk_stream(&ch, Cursor::new(black_box(&data[..])), &mut buf, |_, _| {})
                .expect("in-memory reads do not fail")
        })
    });
    g.finish();
}

fn stream_small(c: &mut Criterion) {
    let files = small_files();
    let ch = chunker();
    let mut buf = Vec::new();
    let mut g = c.benchmark_group("small_files");
    g.throughput(Throughput::Bytes((SMALL * SMALL_COUNT) as u64));
    g.bench_function("4KiB_x1024", |b| {
        b.iter(|| {
            for f in &files {
                let d = chunk_stream(&ch, Cursor::new(black_box(&f[..])), &mut buf, |_, _| {})
                    .expect("in-memory reads do not fail");
                black_box(d);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, blake3_single, cuts_only, stream_big, stream_small);
criterion_main!(benches);
