use proptest::prelude::*;

use super::{noise, text};
use crate::delta::compress::{decode, encode, Compressor, Decompressor, Encoding};
use crate::delta::{DeltaError, MAX_DECODED};
use crate::error::Error;

fn roundtrip(data: &[u8], level: i32) -> Encoding {
    let mut c = Compressor::new();
    let mut d = Decompressor::new();
    let enc = encode(data, level, &mut c);
    let mut out = Vec::new();
    decode(enc.encoding, enc.bytes, data.len(), &mut out, &mut d).unwrap();
    assert_eq!(out, data);
    enc.encoding
}

#[test]
fn text_compresses_and_round_trips() {
    for len in [0, 1, 100, 4000, 20_000, 64 << 10, 256 << 10] {
        let data = text(len as u64, len);
        let enc = roundtrip(&data, 3);
        assert_eq!(enc == Encoding::Zstd, len >= 100, "{len} bytes");
    }
}

#[test]
fn random_data_goes_raw() {
    for len in [100, 3000, 64 << 10, 256 << 10] {
        let data = noise(7, len);
        let mut c = Compressor::new();
        let enc = encode(&data, 3, &mut c);
        assert_eq!(enc.encoding, Encoding::Raw, "{len} bytes");
        assert_eq!(enc.bytes.as_ptr(), data.as_ptr(), "raw borrows the input");
    }
}

#[test]
fn sample_test_tells_uniform_bytes_from_the_rest() {
    use crate::delta::compress::looks_compressible;
    for seed in 0..200 {
        assert!(!looks_compressible(&noise(seed, 64 << 10)), "seed {seed}");
    }
    assert!(looks_compressible(&text(1, 64 << 10)));
    assert!(looks_compressible(&[0u8; 64 << 10]));
    // Base64 and hex: uniform over 64 or 16 values, which entropy coding
    // shrinks by a quarter or a half.
    let b64: Vec<u8> = noise(2, 64 << 10)
        .iter()
        .map(|b| {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(b & 63) as usize]
        })
        .collect();
    assert!(looks_compressible(&b64));
    let hex: Vec<u8> = noise(3, 64 << 10)
        .iter()
        .map(|b| b"0123456789abcdef"[(b & 15) as usize])
        .collect();
    assert!(looks_compressible(&hex));
}

#[test]
fn chunk_above_max_decoded_goes_raw() {
    let data = vec![0u8; MAX_DECODED + 1];
    let mut c = Compressor::new();
    assert_eq!(encode(&data, 1, &mut c).encoding, Encoding::Raw);
}

#[test]
fn raw_of_wrong_length_is_refused() {
    let mut out = Vec::new();
    let err = decode(Encoding::Raw, b"abc", 4, &mut out, &mut Decompressor::new()).unwrap_err();
    assert_eq!(
        err,
        DeltaError::SizeMismatch {
            declared: 4,
            found: 3
        }
    );
}

/// A frame of 1 MiB of zeros: a few dozen bytes that expand 10 000 times.
fn bomb() -> Vec<u8> {
    zstd::bulk::compress(&vec![0u8; 1 << 20], 3).unwrap()
}

#[test]
fn frame_larger_than_declared_is_refused() {
    let mut out = Vec::new();
    let err = decode(
        Encoding::Zstd,
        &bomb(),
        1024,
        &mut out,
        &mut Decompressor::new(),
    );
    assert_eq!(
        err,
        Err(DeltaError::SizeMismatch {
            declared: 1024,
            found: 1 << 20
        })
    );
    assert!(
        out.capacity() < 4096,
        "nothing allocated for the claimed size"
    );
}

#[test]
fn frame_that_lies_about_its_size_is_refused_within_the_declared_room() {
    let mut frame = bomb();
    // Rewrite the frame header's content size (4 bytes after the magic and
    // descriptor byte, for a 1 MiB frame) to claim 1 KiB.
    let at = frame
        .windows(4)
        .position(|w| w == (1u32 << 20).to_le_bytes())
        .unwrap();
    frame[at..at + 4].copy_from_slice(&1024u32.to_le_bytes());
    assert_eq!(
        zstd::zstd_safe::get_frame_content_size(&frame).ok(),
        Some(Some(1024))
    );
    let mut out = Vec::new();
    let err = decode(
        Encoding::Zstd,
        &frame,
        1024,
        &mut out,
        &mut Decompressor::new(),
    );
    assert!(matches!(err, Err(DeltaError::Frame(_))), "{err:?}");
    assert!(out.is_empty() && out.capacity() < 4096);
}

#[test]
fn frame_without_content_size_is_refused() {
    let mut cctx = zstd::zstd_safe::CCtx::create();
    cctx.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(false))
        .unwrap();
    let mut frame = Vec::with_capacity(1024);
    cctx.compress2(&mut frame, &[7u8; 500]).unwrap();
    let mut out = Vec::new();
    let err = decode(
        Encoding::Zstd,
        &frame,
        500,
        &mut out,
        &mut Decompressor::new(),
    );
    assert_eq!(err, Err(DeltaError::Frame("content size not stated")));
}

#[test]
fn declared_length_above_the_cap_is_refused() {
    let frame = zstd::bulk::compress(&[1u8; 10], 1).unwrap();
    let err = decode(
        Encoding::Zstd,
        &frame,
        MAX_DECODED + 1,
        &mut Vec::new(),
        &mut Decompressor::new(),
    );
    assert_eq!(
        err,
        Err(DeltaError::TooLarge {
            declared: MAX_DECODED + 1,
            max: MAX_DECODED
        })
    );
}

#[test]
fn trailing_bytes_after_the_frame_are_refused() {
    let mut frame = zstd::bulk::compress(&[1u8; 10], 1).unwrap();
    frame.push(0);
    let err = decode(
        Encoding::Zstd,
        &frame,
        10,
        &mut Vec::new(),
        &mut Decompressor::new(),
    );
    assert!(matches!(err, Err(DeltaError::Frame(_))));
}

#[test]
fn delta_error_is_a_protocol_error() {
    let e: Error = DeltaError::HashMismatch.into();
    assert_eq!(
        e.to_string(),
        "protocol error: chunk rebuilt from a delta does not match its hash"
    );
    assert!(matches!(
        e,
        Error::Protocol(crate::error::ProtocolError::Delta(DeltaError::HashMismatch))
    ));
}

proptest! {
    #[test]
    fn compress_round_trips(seed: u64, len in 0usize..100_000, level in -3i32..6, random: bool) {
        let data = if random { noise(seed, len) } else { text(seed, len) };
        roundtrip(&data, level);
    }

    #[test]
    fn garbage_frames_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), declared in 0usize..5000, zstd_magic: bool) {
        let mut bytes = bytes;
        if zstd_magic && bytes.len() >= 4 {
            bytes[..4].copy_from_slice(&0xFD2F_B528u32.to_le_bytes());
        }
        let mut out = Vec::new();
        let mut d = Decompressor::new();
        if decode(Encoding::Zstd, &bytes, declared, &mut out, &mut d).is_ok() {
            prop_assert_eq!(out.len(), declared);
        } else {
            prop_assert!(out.is_empty());
        }
    }
}
