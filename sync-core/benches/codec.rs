//! Chunk encoding throughput, in memory: [`sync_core::delta`].
//!
//! All groups report `Throughput::Bytes` of chunk data (not of encoded
//! bytes), on seeded inputs cut into chunks of the default average size:
//!
//! * `encode`: [`compress::encode`] of random 64 KiB and 256 KiB chunks
//!   (the incompressible-sample test alone: the target is that a 2 GiB
//!   random file costs under 3 % of a 1-2 GB/s loopback transfer), and of
//!   source-like text at levels 1 and 3;
//! * `decode`: [`compress::decode`] of the level-3 text frames;
//! * `fine`: a [`fine::Signature`] of old text, and one 64 KiB chunk with
//!   a few edits encoded against it and applied, compression on and off.
//!
//! Run: `cargo bench -p sync-core --bench codec`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sync_core::chunk::Hash;
use sync_core::delta::compress::{self, Compressor, Decompressor, Encoding};
use sync_core::delta::fine::{self, SigIndex, Signature};

/// Bytes per group input.
const TOTAL: usize = 16 << 20;
/// The default average chunk.
const CHUNK: usize = 64 << 10;
/// Fixed seed: every run encodes the same bytes.
const SEED: u64 = 0x00c0_dec5;

#[path = "../src/delta/tests/gen.rs"]
mod gen;
use gen::{noise, text};

fn encode(c: &mut Criterion) {
    let random = noise(SEED, TOTAL);
    let source = text(SEED, TOTAL);
    let mut ctx = Compressor::new();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    for chunk in [CHUNK, 4 * CHUNK] {
        g.bench_function(format!("random_{}KiB", chunk >> 10), |b| {
            b.iter(|| {
                for piece in random.chunks(chunk) {
                    let e = compress::encode(black_box(piece), 3, &mut ctx);
                    assert_eq!(e.encoding, Encoding::Raw);
                }
            })
        });
    }
    for level in [1, 3] {
        g.bench_function(format!("text_64KiB_level{level}"), |b| {
            b.iter(|| {
                source
                    .chunks(CHUNK)
                    .map(|piece| {
                        compress::encode(black_box(piece), level, &mut ctx)
                            .bytes
                            .len()
                    })
                    .sum::<usize>()
            })
        });
    }
    g.finish();
    let encoded: usize = source
        .chunks(CHUNK)
        .map(|piece| compress::encode(piece, 3, &mut ctx).bytes.len())
        .sum();
    eprintln!(
        "text at level 3: {:.1} % of its size; compressor contexts {} KiB",
        100.0 * encoded as f64 / TOTAL as f64,
        ctx.context_bytes() >> 10
    );
}

fn decode(c: &mut Criterion) {
    let source = text(SEED, TOTAL);
    let mut cctx = Compressor::new();
    let frames: Vec<(usize, Vec<u8>)> = source
        .chunks(CHUNK)
        .map(|piece| {
            let e = compress::encode(piece, 3, &mut cctx);
            assert_eq!(e.encoding, Encoding::Zstd);
            (piece.len(), e.bytes.to_vec())
        })
        .collect();
    let mut ctx = Decompressor::new();
    let mut out = Vec::new();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g.bench_function("text_64KiB_level3", |b| {
        b.iter(|| {
            for (len, frame) in &frames {
                compress::decode(Encoding::Zstd, black_box(frame), *len, &mut out, &mut ctx)
                    .unwrap();
            }
        })
    });
    g.finish();
    eprintln!("decompressor context {} KiB", ctx.context_bytes() >> 10);
}

/// An old 64 KiB chunk and a new one with six small edits.
fn edited_pair() -> (Vec<u8>, Vec<u8>) {
    let old = text(SEED, CHUNK);
    let mut new = old.clone();
    for (i, at) in [0.05, 0.2, 0.4, 0.6, 0.8, 0.95].iter().enumerate() {
        let pos = (new.len() as f64 * at) as usize;
        new.splice(pos..pos + 10, text(i as u64, 30));
    }
    (old, new)
}

fn fine(c: &mut Criterion) {
    let big = text(SEED, TOTAL);
    let mut g = c.benchmark_group("fine");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g.bench_function("signature_16MiB", |b| {
        b.iter(|| Signature::of(black_box(&big)).len())
    });
    g.finish();

    let (old, new) = edited_pair();
    let cuts = Signature::cuts(&old);
    let index = SigIndex::new(&Signature::of(&old)).unwrap();
    let hash = Hash::of(&new);
    let mut cctx = Compressor::new();
    let mut dctx = Decompressor::new();
    let mut g = c.benchmark_group("fine");
    g.throughput(Throughput::Bytes(new.len() as u64));
    for (name, level) in [("zstd3", Some(3)), ("off", None)] {
        let delta = fine::encode(&new, &index, level, &mut cctx).unwrap();
        let wire = postcard::to_allocvec(&delta).unwrap().len();
        eprintln!("fine {name}: 64 KiB chunk with 6 edits -> {wire} bytes");
        g.bench_function(format!("encode_64KiB_{name}"), |b| {
            b.iter(|| fine::encode(black_box(&new), &index, level, &mut cctx).unwrap())
        });
        g.bench_function(format!("apply_64KiB_{name}"), |b| {
            b.iter(|| {
                fine::apply(black_box(&delta), &old, &cuts, new.len(), &hash, &mut dctx).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode, decode, fine);
criterion_main!(benches);
