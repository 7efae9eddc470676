//! Journals of partly received files, so a killed run resumes.
//!
//! While a large file is assembled, every chunk the sender shipped into its
//! temporary file is recorded in a journal beside it (`<temp>.journal`,
//! fixed 48-byte records: offset, length, BLAKE3). If the run dies, the next
//! run reads the journals of the temporary files it finds and offers those
//! chunks to the planner as local sources, so what arrived is not sent
//! again. Nothing in a journal is trusted: each chunk is verified against its
//! hash when it is copied, like any local chunk. A torn last record is
//! ignored.

use std::io::Read;

use super::tree::Tree;
use crate::chunk::Hash;
use crate::manifest::ChunkLocation;
use crate::path::RelPath;

/// Suffix of a journal's name (after the temp file's name).
pub const SUFFIX: &[u8] = b".journal";
/// Bytes per record.
pub const RECORD: usize = 48;
/// Files with fewer shipped chunks than this are not journaled (they
/// complete in moments, and a journal costs a write per chunk).
pub const MIN_CHUNKS: u32 = 4;
/// Largest journal read back (about 5 million chunks).
pub const MAX_JOURNAL: u64 = 256 << 20;

/// One record.
pub fn record(offset: u64, length: u32, hash: &Hash) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[..8].copy_from_slice(&offset.to_le_bytes());
    r[8..12].copy_from_slice(&length.to_le_bytes());
    r[16..].copy_from_slice(&hash.0);
    r
}

/// The records of a journal's bytes (a torn tail is dropped).
pub fn parse(bytes: &[u8]) -> Vec<(u64, u32, Hash)> {
    bytes
        .chunks_exact(RECORD)
        .map(|r| {
            let offset = u64::from_le_bytes(r[..8].try_into().expect("8 bytes"));
            let length = u32::from_le_bytes(r[8..12].try_into().expect("4 bytes"));
            (offset, length, Hash(r[16..].try_into().expect("32 bytes")))
        })
        .filter(|&(_, len, _)| len > 0)
        .collect()
}

/// The journal name for a temp file name.
pub fn name_for(temp: &[u8]) -> Vec<u8> {
    let mut n = temp.to_vec();
    n.extend_from_slice(SUFFIX);
    n
}

/// Chunks recorded in the journals among `temps` (temp files a scan found),
/// as locations in their temp files.
pub fn leftover_sources(tree: &mut Tree, temps: &[RelPath]) -> Vec<(Hash, ChunkLocation)> {
    let mut out = Vec::new();
    for j in temps {
        let Some(data_name) = j.file_name().strip_suffix(SUFFIX) else {
            continue;
        };
        let mut data = j.parent().as_bytes().to_vec();
        if !data.is_empty() {
            data.push(b'/');
        }
        data.extend_from_slice(data_name);
        let Ok(data) = RelPath::new(data) else {
            continue;
        };
        if !temps.contains(&data) {
            continue;
        }
        let Ok(f) = tree.open_read(j) else { continue };
        let mut bytes = Vec::new();
        if f.take(MAX_JOURNAL).read_to_end(&mut bytes).is_err() {
            continue;
        }
        for (offset, length, hash) in parse(&bytes) {
            out.push((
                hash,
                ChunkLocation {
                    path: data.clone(),
                    offset,
                    length,
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_tails_are_dropped() {
        let mut bytes = Vec::new();
        bytes.extend(record(0, 10, &Hash::of(b"a")));
        bytes.extend(record(1 << 40, 65536, &Hash::of(b"b")));
        bytes.extend(&record(7, 7, &Hash::of(b"c"))[..20]);
        assert_eq!(
            parse(&bytes),
            vec![(0, 10, Hash::of(b"a")), (1 << 40, 65536, Hash::of(b"b"))]
        );
    }
}
