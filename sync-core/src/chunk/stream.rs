//! Chunking and hashing a reader in one pass, in bounded memory.
//!
//! [`chunk_stream`] reads through a caller-provided buffer (so a scanner
//! thread reuses one allocation across thousands of files), cuts chunks with
//! a [`Chunker`], hashes each chunk and the whole stream with BLAKE3, and
//! hands every chunk's bytes to a callback while they are still in cache.

use std::io::{self, Read};

use super::{ChunkRef, Chunker, Hash};

/// Bytes read per `read` call beyond the carried-over tail.
pub const READ_SIZE: usize = 1 << 20;

/// What one pass over a stream found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    /// Total bytes read.
    pub size: u64,
    /// BLAKE3 of all the bytes.
    pub hash: Hash,
    /// The chunks, in order, covering every byte once.
    pub chunks: Vec<ChunkRef>,
}

/// Reads `reader` to its end and chunks it. `buf` is scratch space that is
/// grown to `READ_SIZE + max chunk` once and reused.
pub fn chunk_stream<R: Read>(
    chunker: &Chunker,
    mut reader: R,
    buf: &mut Vec<u8>,
    mut on_chunk: impl FnMut(&ChunkRef, &[u8]),
) -> io::Result<Digest> {
    let cap = READ_SIZE + chunker.params().max as usize;
    if buf.len() < cap {
        buf.resize(cap, 0);
    }
    let mut whole = blake3::Hasher::new();
    let mut chunks = Vec::new();
    let mut offset = 0u64; // stream offset of buf[start]
    let mut start = 0; // first unconsumed byte in buf
    let mut filled = 0; // end of valid data in buf
    let mut eof = false;
    loop {
        // Refill: keep reading until the window holds a full max chunk or EOF.
        while !eof && filled - start < chunker.params().max as usize {
            if filled == buf.len() {
                buf.copy_within(start..filled, 0);
                filled -= start;
                start = 0;
            }
            match reader.read(&mut buf[filled..]) {
                Ok(0) => eof = true,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Cut as many chunks as the window allows.
        while let Some(len) = chunker.next_cut(&buf[start..filled], eof) {
            let data = &buf[start..start + len];
            let only_chunk = chunks.is_empty() && eof && start + len == filled;
            if !only_chunk {
                whole.update(data);
            }
            let chunk = ChunkRef {
                offset,
                length: len as u32,
                hash: Hash::of(data),
            };
            on_chunk(&chunk, data);
            chunks.push(chunk);
            offset += len as u64;
            start += len;
        }
        if eof && start == filled {
            break;
        }
    }
    let hash = if chunks.len() == 1 {
        // One chunk: the whole-stream hash is the chunk's hash, so small
        // files are hashed once, not twice.
        chunks[0].hash
    } else {
        whole.finalize().into()
    };
    Ok(Digest {
        size: offset,
        hash,
        chunks,
    })
}
