//! Seeded inputs for the delta tests and the codec bench: random bytes
//! and source-like text. Included by both with `#[path]`.

/// SplitMix64 bytes: deterministic and incompressible.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&splitmix(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Lines that read like C: compressible, but not one line repeated.
pub fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "if",
        "return",
        "struct",
        "int",
        "unsigned",
        "long",
        "static",
        "const",
        "for",
        "while",
        "NULL",
        "err",
        "ret",
        "size",
        "buf",
        "len",
        "page",
        "node",
        "dev",
        "lock",
        "->",
        "=",
        "==",
        "+",
        "&",
        "(",
        ")",
        ";",
        "0",
        "1",
        "goto",
        "out",
        "kfree",
        "mutex_lock",
    ];
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 128);
    while out.len() < len {
        let r = splitmix(&mut state);
        out.resize(out.len() + (r % 4) as usize, b'\t');
        for k in 0..3 + (r >> 8) % 8 {
            out.extend_from_slice(
                WORDS[((r >> (12 + 4 * k)) as usize ^ k as usize) % WORDS.len()].as_bytes(),
            );
            out.push(b' ');
        }
        // A number per line keeps lines distinct, as identifiers do.
        out.extend_from_slice(format!("{};\n", (r >> 40) % 5000).as_bytes());
    }
    out.truncate(len);
    out
}
