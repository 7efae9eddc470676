use proptest::prelude::*;

use super::{noise, text};
use crate::chunk::Hash;
use crate::delta::compress::{Compressor, Decompressor};
use crate::delta::fine::{self, Body, Delta, Op, SigIndex, Signature, MAX_SIG_PIECES};
use crate::delta::{DeltaError, MAX_DECODED};

/// `old` with `edits` applied: (where as a fraction of the length, what).
fn edit(old: &[u8], edits: &[(f64, Edit)], seed: u64) -> Vec<u8> {
    let mut new = old.to_vec();
    for (i, &(at, e)) in edits.iter().enumerate() {
        let pos = ((new.len() as f64) * at) as usize;
        let fresh = text(seed ^ i as u64, 64);
        match e {
            Edit::Insert(n) => {
                new.splice(pos..pos, fresh[..n.min(64)].iter().copied());
            }
            Edit::Delete(n) => {
                new.drain(pos..(pos + n).min(new.len()));
            }
            Edit::Replace(n) => {
                let end = (pos + n.min(64)).min(new.len());
                new.splice(pos..end, fresh[..end - pos].iter().copied());
            }
        }
    }
    new
}

#[derive(Clone, Copy, Debug)]
enum Edit {
    Insert(usize),
    Delete(usize),
    Replace(usize),
}

fn edits() -> impl Strategy<Value = Vec<(f64, Edit)>> {
    let one = prop_oneof![
        (1usize..64).prop_map(Edit::Insert),
        (1usize..2000).prop_map(Edit::Delete),
        (1usize..64).prop_map(Edit::Replace),
    ];
    prop::collection::vec((0.0f64..1.0, one), 0..12)
}

/// Encodes `new` against `old` and applies it back; the delta's wire
/// length, or `None` when the encoder declined.
fn fine_roundtrip(old: &[u8], new: &[u8], level: Option<i32>) -> Option<usize> {
    let sig = Signature::of(old);
    let index = SigIndex::new(&sig).unwrap();
    let delta = fine::encode(new, &index, level, &mut Compressor::new())?;
    let cuts = Signature::cuts(old);
    let back = fine::apply(
        &delta,
        old,
        &cuts,
        new.len(),
        &Hash::of(new),
        &mut Decompressor::new(),
    );
    assert_eq!(back.as_deref(), Ok(new));
    Some(postcard::to_allocvec(&delta).unwrap().len())
}

/// A 20 KB source file with one line changed.
fn one_line_edit() -> (Vec<u8>, Vec<u8>) {
    let old = text(11, 20_000);
    let mut new = old.clone();
    let line = new[10_000..].iter().position(|&b| b == b'\n').unwrap() + 10_001;
    new.splice(line..line, b"\tret = -EINVAL;\n".iter().copied());
    (old, new)
}

#[test]
fn one_line_edit_costs_a_few_hundred_bytes() {
    let (old, new) = one_line_edit();
    let plain = zstd::bulk::compress(&new, 3).unwrap().len();
    let zstd = fine_roundtrip(&old, &new, Some(3)).unwrap();
    let bare = fine_roundtrip(&old, &new, None).unwrap();
    assert!(
        zstd < 500,
        "compressed delta {zstd} bytes (plain zstd {plain})"
    );
    assert!(bare < 3000, "uncompressed delta {bare} bytes");
}

#[test]
fn unrelated_data_gets_no_delta() {
    let old = noise(1, 50_000);
    let new = noise(2, 50_000);
    assert_eq!(fine_roundtrip(&old, &new, Some(3)), None);
    assert_eq!(fine_roundtrip(&old, &new, None), None);
}

#[test]
fn refs_out_of_range_are_refused() {
    let (old, new) = one_line_edit();
    let cuts = Signature::cuts(&old);
    let n = cuts.len() as u32;
    for (first, count) in [(n, 1), (n - 1, 2), (0, 0), (u32::MAX, u32::MAX)] {
        let delta = Delta {
            refs: vec![(first, count)],
            body: Body::Zstd(Vec::new()),
        };
        let err = fine::apply(
            &delta,
            &old,
            &cuts,
            new.len(),
            &Hash::of(&new),
            &mut Decompressor::new(),
        );
        assert_eq!(
            err,
            Err(DeltaError::RefOutOfRange {
                first,
                count,
                pieces: cuts.len()
            })
        );
    }
}

#[test]
fn too_many_refs_are_refused() {
    let old = text(3, 20_000);
    let cuts = Signature::cuts(&old);
    let delta = Delta {
        refs: vec![(0, 1); 100],
        body: Body::Zstd(Vec::new()),
    };
    let err = fine::apply(
        &delta,
        &old,
        &cuts,
        10_000,
        &Hash::of(b""),
        &mut Decompressor::new(),
    );
    assert_eq!(err, Err(DeltaError::TooManyRefs { got: 100, max: 40 }));
}

#[test]
fn repeated_refs_cannot_grow_the_dictionary_past_its_bound() {
    let old = text(3, 2 << 20);
    let cuts = Signature::cuts(&old);
    let whole = (0, cuts.len() as u32);
    let delta = Delta {
        refs: vec![whole, whole, whole],
        body: Body::Zstd(Vec::new()),
    };
    let err = fine::apply(
        &delta,
        &old,
        &cuts,
        MAX_DECODED,
        &Hash::of(b""),
        &mut Decompressor::new(),
    );
    assert_eq!(
        err,
        Err(DeltaError::DictTooLarge {
            max: fine::MAX_DICT
        })
    );
}

#[test]
fn hostile_ops_are_refused() {
    let (old, new) = one_line_edit();
    let cuts = Signature::cuts(&old);
    let index = SigIndex::new(&Signature::of(&old)).unwrap();
    let delta = fine::encode(&new, &index, None, &mut Compressor::new()).unwrap();
    let Body::Ops { ops, literals } = delta.body else {
        panic!("compression off gives ops");
    };
    let apply = |ops: Vec<Op>, literals: Vec<u8>, declared: usize| {
        let body = Body::Ops { ops, literals };
        let delta = Delta {
            refs: delta.refs.clone(),
            body,
        };
        fine::apply(
            &delta,
            &old,
            &cuts,
            declared,
            &Hash::of(&new),
            &mut Decompressor::new(),
        )
    };
    assert_eq!(
        apply(ops.clone(), literals.clone(), new.len()).as_deref(),
        Ok(&new[..])
    );
    for bad in [
        Op::Copy {
            from: u32::MAX,
            len: 1,
        },
        Op::Copy {
            from: 0,
            len: u32::MAX,
        },
        Op::Literal {
            len: literals.len() as u32 + 1,
        },
    ] {
        let err = apply(vec![bad], literals.clone(), new.len());
        assert_eq!(err, Err(DeltaError::OpOutOfRange(bad)));
    }
    let short = new.len() - 1;
    assert!(matches!(
        apply(ops.clone(), literals.clone(), short),
        Err(DeltaError::SizeMismatch { declared, .. }) if declared == short
    ));
    let mut extra = literals.clone();
    extra.push(0);
    assert!(matches!(
        apply(ops, extra, new.len()),
        Err(DeltaError::SizeMismatch { .. })
    ));
    let max = new.len() / fine::PIECE_MIN + 1;
    let err = apply(vec![Op::Literal { len: 0 }; max + 1], literals, new.len());
    assert_eq!(err, Err(DeltaError::TooManyOps { got: max + 1, max }));
}

#[test]
fn wrong_result_is_a_hash_mismatch() {
    let (old, new) = one_line_edit();
    let index = SigIndex::new(&Signature::of(&old)).unwrap();
    let delta = fine::encode(&new, &index, Some(3), &mut Compressor::new()).unwrap();
    // The destination's old bytes differ from what it signed, but every
    // piece keeps its length: what a truncated-hash collision looks like.
    let mut changed = old.clone();
    changed[100] ^= 1;
    let cuts = Signature::cuts(&old);
    let err = fine::apply(
        &delta,
        &changed,
        &cuts,
        new.len(),
        &Hash::of(&new),
        &mut Decompressor::new(),
    );
    assert_eq!(err, Err(DeltaError::HashMismatch));
}

#[test]
fn signature_is_eight_bytes_a_piece_on_the_wire() {
    let old = text(5, 100_000);
    let sig = Signature::of(&old);
    let wire = postcard::to_allocvec(&sig).unwrap();
    assert!(
        wire.len() <= 8 * sig.len() + 3,
        "{} bytes for {} pieces",
        wire.len(),
        sig.len()
    );
    assert_eq!(postcard::from_bytes::<Signature>(&wire).unwrap(), sig);
}

#[test]
fn oversized_signature_is_refused() {
    let hashes = vec![[0u8; 8]; MAX_SIG_PIECES + 1];
    let sig: Signature = postcard::from_bytes(&postcard::to_allocvec(&hashes).unwrap()).unwrap();
    assert_eq!(
        SigIndex::new(&sig).unwrap_err(),
        DeltaError::SignatureTooLarge {
            got: MAX_SIG_PIECES + 1,
            max: MAX_SIG_PIECES
        }
    );
}

proptest! {
    #[test]
    fn garbage_zstd_deltas_never_panic(
        frame in prop::collection::vec(any::<u8>(), 0..300),
        refs in prop::collection::vec((0u32..40, 0u32..5), 0..5),
        declared in 0usize..5000,
    ) {
        let old = text(1, 5000);
        let cuts = Signature::cuts(&old);
        let delta = Delta { refs, body: Body::Zstd(frame) };
        let _ = fine::apply(&delta, &old, &cuts, declared, &Hash::of(b""), &mut Decompressor::new());
    }

    #[test]
    fn garbage_ops_never_panic(
        ops in prop::collection::vec((any::<bool>(), 0u32..3000, 0u32..3000), 0..20),
        literals in prop::collection::vec(any::<u8>(), 0..3000),
        refs in prop::collection::vec((0u32..40, 0u32..5), 0..5),
        declared in 0usize..10_000,
    ) {
        let ops = ops
            .into_iter()
            .map(|(copy, a, b)| if copy { Op::Copy { from: a, len: b } } else { Op::Literal { len: b } })
            .collect();
        let old = text(1, 20_000);
        let cuts = Signature::cuts(&old);
        let delta = Delta { refs, body: Body::Ops { ops, literals } };
        let _ = fine::apply(&delta, &old, &cuts, declared, &Hash::of(b""), &mut Decompressor::new());
    }

    #[test]
    fn fine_delta_rebuilds_the_new_version(
        seed: u64,
        len in 1usize..60_000,
        edits in edits(),
        compress: bool,
    ) {
        let old = text(seed, len);
        let new = edit(&old, &edits, seed);
        fine_roundtrip(&old, &new, compress.then_some(3));
    }

    #[test]
    fn fine_delta_survives_corrupt_payloads(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let (old, new) = one_line_edit();
        let index = SigIndex::new(&Signature::of(&old)).unwrap();
        let mut delta = fine::encode(&new, &index, Some(3), &mut Compressor::new()).unwrap();
        let Body::Zstd(frame) = &mut delta.body else { unreachable!() };
        for (at, x) in flips {
            let i = at.index(frame.len());
            frame[i] ^= x | 1;
        }
        let cuts = Signature::cuts(&old);
        let back = fine::apply(&delta, &old, &cuts, new.len(), &Hash::of(&new), &mut Decompressor::new());
        prop_assert!(back.is_err() || back.as_deref() == Ok(&new[..]));
    }
}
