//! The stream layout: chunks laid end to end, cut into numbered blocks.
//!
//! Owns the arithmetic between three coordinates — stream byte offsets,
//! block numbers and chunk indices — and nothing else: it never reads data.
//! Blocks are fixed-size (the last one may be short) and span chunk
//! boundaries, so a million 1 KiB chunks fill datagrams exactly as well as
//! one 1 GiB chunk does. Only the chunk table is kept (offsets and hashes);
//! block numbers are computed, never stored.

use std::ops::Range;

use super::wire::{HEADER_LEN, TAG_LEN};
// The largest datagram is the datagram format's; the packet sizes below
// must agree with it.
pub use super::wire::MAX_DATAGRAM;

/// IPv6 (40) + UDP (8) header bytes: the default budget, safe on either family.
pub const IPV6_UDP_OVERHEAD: usize = 48;
/// IPv4 (20) + UDP (8) header bytes.
pub const IPV4_UDP_OVERHEAD: usize = 28;
/// Default IP packet size: a plain Ethernet MTU.
pub const DEFAULT_PACKET_SIZE: usize = 1500;
/// Largest IP packet size we accept (jumbo frames).
pub const MAX_PACKET_SIZE: usize = 9000;
/// Smallest IP packet size we accept (IPv6's minimum MTU).
pub const MIN_PACKET_SIZE: usize = 1280;
// The largest packet's datagram is the largest the wire accepts.
const _: () = assert!(MAX_PACKET_SIZE - IPV4_UDP_OVERHEAD == MAX_DATAGRAM);
/// Most chunks one layout may describe (bounds the receiver's per-chunk state).
pub const MAX_CHUNKS: usize = 1 << 28;

/// One chunk as the planner describes it: its length and BLAKE3 hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkSpec {
    pub len: u32,
    pub hash: [u8; 32],
}

/// Errors building a layout from caller-supplied parameters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("packet size {0} is outside {MIN_PACKET_SIZE}..={MAX_PACKET_SIZE}")]
    PacketSize(usize),
    #[error("IP/UDP overhead {0} is neither {IPV4_UDP_OVERHEAD} nor {IPV6_UDP_OVERHEAD}")]
    Overhead(usize),
    #[error("{0} chunks exceed the limit of {MAX_CHUNKS}")]
    TooManyChunks(usize),
}

/// How big the datagrams are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutConfig {
    /// Largest IP packet (path MTU), including IP and UDP headers.
    pub packet_size: usize,
    /// IP + UDP header bytes: [`IPV6_UDP_OVERHEAD`] unless both ends are IPv4.
    pub ip_overhead: usize,
}

impl Default for LayoutConfig {
    fn default() -> Self {
        LayoutConfig {
            packet_size: DEFAULT_PACKET_SIZE,
            ip_overhead: IPV6_UDP_OVERHEAD,
        }
    }
}

impl LayoutConfig {
    /// Payload bytes per block: what is left of the packet after the IP/UDP
    /// headers, our header and the AEAD tag, rounded down to even. The tag
    /// is budgeted even with `Cipher::None` so both modes agree on the
    /// layout.
    pub fn block_size(&self) -> Result<usize, LayoutError> {
        if !(MIN_PACKET_SIZE..=MAX_PACKET_SIZE).contains(&self.packet_size) {
            return Err(LayoutError::PacketSize(self.packet_size));
        }
        if self.ip_overhead != IPV4_UDP_OVERHEAD && self.ip_overhead != IPV6_UDP_OVERHEAD {
            return Err(LayoutError::Overhead(self.ip_overhead));
        }
        // Even, as the tail code's shards must be (an odd packet size
        // leaves one byte unused).
        Ok((self.packet_size - self.ip_overhead - HEADER_LEN - TAG_LEN) & !1)
    }
}

/// The stream to ship: chunk table plus block size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    block_size: u32,
    chunks: Vec<ChunkSpec>,
    /// `starts[i]` is chunk i's stream offset; one extra entry holds the total.
    starts: Vec<u64>,
}

impl Layout {
    /// Lays `chunks` end to end and cuts the stream into blocks.
    pub fn new(config: LayoutConfig, chunks: Vec<ChunkSpec>) -> Result<Self, LayoutError> {
        let block_size = config.block_size()? as u32;
        if chunks.len() > MAX_CHUNKS {
            return Err(LayoutError::TooManyChunks(chunks.len()));
        }
        let mut starts = Vec::with_capacity(chunks.len() + 1);
        let mut offset = 0u64;
        for c in &chunks {
            starts.push(offset);
            offset += u64::from(c.len);
        }
        starts.push(offset);
        Ok(Layout {
            block_size,
            chunks,
            starts,
        })
    }

    /// Payload bytes per block (all but the last block are this long).
    pub fn block_size(&self) -> usize {
        self.block_size as usize
    }

    /// Total stream length in bytes.
    pub fn stream_len(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Number of blocks in the stream.
    pub fn block_count(&self) -> u64 {
        self.stream_len().div_ceil(u64::from(self.block_size))
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The chunk table.
    pub fn chunks(&self) -> &[ChunkSpec] {
        &self.chunks
    }

    /// Stream byte range of `block` (empty past the end).
    pub fn block_range(&self, block: u64) -> Range<u64> {
        let len = self.stream_len();
        let start = block.saturating_mul(u64::from(self.block_size)).min(len);
        let end = start.saturating_add(u64::from(self.block_size)).min(len);
        start..end
    }

    /// Payload length of `block` (0 past the end).
    pub fn block_len(&self, block: u64) -> usize {
        let r = self.block_range(block);
        (r.end - r.start) as usize
    }

    /// Stream byte range of chunk `idx` (empty if out of range).
    pub fn chunk_range(&self, idx: usize) -> Range<u64> {
        match (self.starts.get(idx), self.starts.get(idx + 1)) {
            (Some(&s), Some(&e)) => s..e,
            _ => 0..0,
        }
    }

    /// Blocks that carry bytes of chunk `idx` (empty for an empty chunk).
    pub fn chunk_blocks(&self, idx: usize) -> Range<u64> {
        let r = self.chunk_range(idx);
        if r.start == r.end {
            return 0..0;
        }
        let bs = u64::from(self.block_size);
        r.start / bs..r.end.div_ceil(bs)
    }

    /// Chunks with at least one byte in `block` (empty chunks never count).
    pub fn block_chunks(&self, block: u64) -> impl Iterator<Item = usize> + '_ {
        let mut hint = 0;
        self.block_chunks_near(block, &mut hint)
    }

    /// [`block_chunks`](Self::block_chunks), looking first at chunk
    /// `*hint` and the one after it, and leaving in `*hint` the chunk it
    /// started from: blocks mostly arrive in order, and a caller that
    /// keeps the hint between blocks skips the binary search over all
    /// chunks (which was three quarters of the receiver's per-block
    /// bookkeeping on loopback).
    pub fn block_chunks_near(
        &self,
        block: u64,
        hint: &mut usize,
    ) -> impl Iterator<Item = usize> + '_ {
        self.range_chunks_near(self.block_range(block), hint)
    }

    /// Chunks with at least one byte in the stream bytes `r`, found as
    /// [`block_chunks_near`](Self::block_chunks_near) finds a block's.
    pub fn range_chunks_near(
        &self,
        r: Range<u64>,
        hint: &mut usize,
    ) -> impl Iterator<Item = usize> + '_ {
        // First chunk ending past r.start; then on while chunks start
        // before r.end (a block spans one or two chunks, rarely more, so
        // walking beats a second search). Chunks before one that starts
        // at or before r.start all end by then, so that one is the first
        // if it also ends past r.start.
        let n = self.chunks.len();
        let holds = |c: usize| c < n && self.starts[c] <= r.start && self.starts[c + 1] > r.start;
        let first = if r.start >= r.end {
            n
        } else if holds(*hint) {
            *hint
        } else if holds(*hint + 1) {
            *hint + 1
        } else {
            self.starts[1..].partition_point(|&end| end <= r.start)
        };
        if first < n {
            *hint = first;
        }
        (first..n)
            .take_while(move |&c| self.starts[c] < r.end)
            .filter(|&c| self.chunks[c].len > 0)
    }
}

/// Specs for `data` cut every `every` bytes (tests).
#[cfg(test)]
pub(crate) fn specs_every(data: &[u8], every: usize) -> Vec<ChunkSpec> {
    data.chunks(every)
        .map(|c| ChunkSpec {
            len: c.len() as u32,
            hash: *blake3::hash(c).as_bytes(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layout(lens: &[u32]) -> Layout {
        let chunks = lens
            .iter()
            .map(|&len| ChunkSpec { len, hash: [0; 32] })
            .collect();
        Layout::new(LayoutConfig::default(), chunks).unwrap()
    }

    #[test]
    fn default_block_fits_a_1500_byte_ipv6_packet() {
        let bs = LayoutConfig::default().block_size().unwrap();
        assert_eq!(bs + TAG_LEN + HEADER_LEN + IPV6_UDP_OVERHEAD, 1500);
        let jumbo = LayoutConfig {
            packet_size: 9000,
            ip_overhead: IPV4_UDP_OVERHEAD,
        };
        assert_eq!(
            jumbo.block_size().unwrap() + TAG_LEN + HEADER_LEN + 28,
            9000
        );
        let too_big = LayoutConfig {
            packet_size: 9001,
            ..LayoutConfig::default()
        };
        assert_eq!(too_big.block_size(), Err(LayoutError::PacketSize(9001)));
    }

    #[test]
    fn blocks_span_chunk_boundaries() {
        let bs = LayoutConfig::default().block_size().unwrap() as u32;
        let l = layout(&[10, 0, bs, 5, 3 * bs]);
        assert_eq!(l.stream_len(), 15 + 4 * u64::from(bs));
        assert_eq!(l.block_count(), 5);
        assert_eq!(l.chunk_blocks(0), 0..1);
        assert_eq!(l.chunk_blocks(1), 0..0, "empty chunk has no blocks");
        assert_eq!(l.chunk_blocks(2), 0..2);
        assert_eq!(l.chunk_blocks(3), 1..2);
        assert_eq!(l.chunk_blocks(4), 1..5);
        let chunks = |b| l.block_chunks(b).collect::<Vec<_>>();
        assert_eq!(chunks(0), [0, 2]);
        assert_eq!(chunks(1), [2, 3, 4]);
        assert_eq!(chunks(4), [4]);
        assert_eq!(l.block_len(4), 15);
        assert!(chunks(5).is_empty());
        assert_eq!(l.block_len(99), 0);
    }

    #[test]
    fn every_chunk_byte_is_in_exactly_the_blocks_listed() {
        let l = layout(&[1, 2000, 3, 0, 7000, 1405, 1]);
        for c in 0..l.chunk_count() {
            let r = l.chunk_range(c);
            let blocks = l.chunk_blocks(c);
            for b in 0..l.block_count() {
                let br = l.block_range(b);
                let overlaps = r.start < r.end && br.start < r.end && r.start < br.end;
                assert_eq!(blocks.contains(&b), overlaps, "chunk {c} block {b}");
                assert_eq!(
                    l.block_chunks(b).any(|x| x == c),
                    overlaps,
                    "chunk {c} block {b}"
                );
            }
        }
    }

    proptest! {
        /// Whatever the hint (kept from the block before, stale, out of
        /// range), the chunks listed are those that overlap the block.
        #[test]
        fn a_hint_never_changes_the_chunks_listed(
            lens in proptest::collection::vec(
                prop_oneof![Just(0u32), 1u32..100, 1000u32..5000],
                1..40,
            ),
            hints in proptest::collection::vec(0usize..50, 0..20),
        ) {
            let l = layout(&lens);
            // The chunks sharing at least one byte with `r`, one by one.
            let overlapping = |r: Range<u64>| -> Vec<usize> {
                (0..l.chunk_count())
                    .filter(|&c| {
                        let cr = l.chunk_range(c);
                        r.start.max(cr.start) < r.end.min(cr.end)
                    })
                    .collect()
            };
            let mut kept = 0;
            for b in 0..l.block_count() + 1 {
                let want = overlapping(l.block_range(b));
                prop_assert_eq!(&l.block_chunks(b).collect::<Vec<_>>(), &want);
                prop_assert_eq!(
                    &l.block_chunks_near(b, &mut kept).collect::<Vec<_>>(),
                    &want
                );
                for &h in &hints {
                    let mut h = h;
                    prop_assert_eq!(
                        &l.block_chunks_near(b, &mut h).collect::<Vec<_>>(),
                        &want
                    );
                }
            }
            // Byte ranges of any length and place (as the session's sink
            // writes), with one hint kept from range to range.
            let total = l.chunk_range(l.chunk_count().saturating_sub(1)).end;
            let mut kept = 0;
            for (i, &cut) in hints.iter().enumerate() {
                let start = (i as u64 * 997) % (total + 2);
                let r = start..start + cut as u64 * 37;
                let want = overlapping(r.clone());
                prop_assert_eq!(
                    &l.range_chunks_near(r.clone(), &mut kept).collect::<Vec<_>>(),
                    &want
                );
            }
        }
    }
}
