//! Forward error correction for the end of a stream: the *tail codes*.
//!
//! Owns the erasure codes that spare the last round trip of a transfer.
//! A block lost in the middle of a stream is repaired by a NAK well before
//! the stream ends, but one lost in the last round trip is only known lost
//! a round trip after the last new block left, and its repair needs half
//! another: at 200 ms that is most of the time a 1 GB transfer spends past
//! its last new block. So the sender covers the newest blocks — about one
//! round trip of them, the *window* — with Reed-Solomon codes (the
//! `reed-solomon-simd` crate: GF(2^16), any `originals` of `originals +
//! parity` shards rebuild the rest), as many parity shards as the measured
//! loss calls for. The receiver keeps a copy of the last blocks of every
//! stream and rebuilds what a code lacks as soon as it holds, counting
//! parity, as many shards as the code has blocks: about half a round trip
//! after the end, not one and a half. If more was lost than the parity
//! makes up for, the NAKs repair the rest as before.
//!
//! The window is cut into *groups* of at most [`MAX_GROUP_BLOCKS`], each
//! its own code, sent as soon as its last block has gone. Decoding costs
//! time in proportion to a code's size (about 2 ns per byte here), so
//! groups let the receiver decode the window piece by piece as it arrives:
//! only the last group's decoding is left when the stream ends.
//!
//! A code is named by its first block, its number of blocks and its number
//! of parity shards, which every parity datagram carries ([`TailCode`]).
//! All are bounded: codes lie within the last [`MAX_WINDOW_BYTES`] (and
//! [`MAX_WINDOW_BLOCKS`]) of the stream, which bounds what the receiver
//! keeps, do not overlap, and have at most as many parity shards as
//! blocks. Shards are a block long (block sizes are even, as the code
//! requires); the last block, which may be short, is coded padded with
//! zeros.
//!
//! Nothing here does I/O: the sender reads a group through the
//! [`BlockSource`] it already has, and the receiver hands rebuilt blocks
//! back to its driver like received ones.

use std::collections::BTreeMap;
use std::io;

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use super::bitmap::Bitmap;
use super::layout::Layout;
use super::source::BlockSource;
use super::wire::DatagramError;
// A code's name and its header limits are the datagram format's.
pub use super::wire::{TailCode, MAX_FIRST_BLOCK, MAX_GROUP_BLOCKS};

/// Most payload bytes the window covers (what the receiver keeps per stream).
pub const MAX_WINDOW_BYTES: u64 = 32 << 20;
/// Most blocks the window covers.
pub const MAX_WINDOW_BLOCKS: u64 = 1 << 15;

/// Most blocks the window may cover in `layout`'s stream.
pub fn window_limit(layout: &Layout) -> u64 {
    let by_bytes = MAX_WINDOW_BYTES / layout.block_size().max(1) as u64;
    by_bytes.min(MAX_WINDOW_BLOCKS).min(layout.block_count())
}

/// The first block the window may start at.
pub fn window_floor(layout: &Layout) -> u64 {
    layout.block_count() - window_limit(layout)
}

/// Cuts the window `first..layout.block_count()` into groups of at most
/// [`MAX_GROUP_BLOCKS`], as even as possible; returns their ends.
pub fn group_ends(layout: &Layout, first: u64) -> Vec<u64> {
    let n = layout.block_count();
    let k = n.saturating_sub(first);
    let groups = k.div_ceil(MAX_GROUP_BLOCKS);
    (1..=groups).map(|g| first + k * g / groups).collect()
}

/// The coding half of a [`TailCode`]: [`wire`](super::wire) owns its
/// fields and how a header carries them.
impl TailCode {
    /// Checks a code a peer named against the stream.
    pub fn check(&self, layout: &Layout) -> Result<(), DatagramError> {
        let blocks = self.blocks();
        let ok = blocks.start >= window_floor(layout)
            && blocks.end <= layout.block_count()
            && self.originals >= 1
            && u64::from(self.originals) <= MAX_GROUP_BLOCKS
            && self.parity >= 1
            && self.parity <= self.originals
            && ReedSolomonEncoder::supports(self.originals.into(), self.parity.into());
        if ok {
            Ok(())
        } else {
            Err(DatagramError::BadParity)
        }
    }

    /// The parity shards of this code over `source`'s bytes, end to end,
    /// each `layout.block_size()` long.
    pub fn encode(&self, layout: &Layout, source: &mut dyn BlockSource) -> io::Result<Vec<u8>> {
        let invalid = |e: reed_solomon_simd::Error| io::Error::new(io::ErrorKind::InvalidInput, e);
        self.check(layout).map_err(io::Error::other)?;
        let bs = layout.block_size();
        let mut enc = ReedSolomonEncoder::new(self.originals.into(), self.parity.into(), bs)
            .map_err(invalid)?;
        let mut shard = vec![0u8; bs];
        for b in self.blocks() {
            let range = layout.block_range(b);
            let len = (range.end - range.start) as usize;
            source.read(range.start, &mut shard[..len])?;
            shard[len..].fill(0);
            enc.add_original_shard(&shard).map_err(invalid)?;
        }
        let result = enc.encode().map_err(invalid)?;
        let mut out = Vec::with_capacity(usize::from(self.parity) * bs);
        for s in result.recovery_iter() {
            out.extend_from_slice(s);
        }
        Ok(out)
    }
}

/// A block a tail code rebuilt.
#[derive(Debug, PartialEq, Eq)]
pub struct Recovered {
    pub block: u64,
    pub stream_offset: u64,
    pub data: Vec<u8>,
}

/// One code the receiver accepted, and the parity shards it holds of it.
#[derive(Debug)]
struct Group {
    code: TailCode,
    shards: Vec<u8>,
    have: Bitmap,
    decoded: bool,
}

/// The receiver's half: copies of the stream's last blocks, the parity
/// shards of the codes it accepted, and the decoding.
#[derive(Debug)]
pub struct TailDecoder {
    /// First block kept: the earliest any code may start.
    start: u64,
    block_size: usize,
    /// Copies of blocks `start..`, padded to a block; allocated at the
    /// first block kept.
    kept: Vec<u8>,
    have: Bitmap,
    /// Accepted codes by first block; they never overlap.
    groups: BTreeMap<u64, Group>,
}

impl TailDecoder {
    pub fn new(layout: &Layout) -> Self {
        TailDecoder {
            start: window_floor(layout),
            block_size: layout.block_size(),
            kept: Vec::new(),
            have: Bitmap::new(window_limit(layout)),
            groups: BTreeMap::new(),
        }
    }

    /// Keeps a copy of a newly received block if a code may cover it;
    /// true if it did.
    pub fn keep(&mut self, block: u64, data: &[u8]) -> bool {
        if block < self.start || data.len() > self.block_size {
            return false;
        }
        let i = block - self.start;
        if self.kept.is_empty() {
            self.kept = vec![0; self.have.len() as usize * self.block_size];
        }
        let at = i as usize * self.block_size;
        self.kept[at..at + data.len()].copy_from_slice(data);
        self.have.set(i);
        true
    }

    /// The sender promised to code no block below `from`: drops the
    /// copies below it and keeps none from then on (none at all when
    /// `from` is the stream's end). Never lowers the start, so a stale or
    /// hostile promise can only cost decoding, never memory.
    pub fn raise_start(&mut self, from: u64) {
        let end = self.start + self.have.len();
        let from = from.min(end);
        if from <= self.start {
            return;
        }
        let dropped = from - self.start;
        let mut have = Bitmap::new(end - from);
        let mut kept = Vec::new();
        let bs = self.block_size;
        let mut i = dropped;
        while let Some(j) = self.have.next_set(i) {
            if kept.is_empty() {
                kept = vec![0; have.len() as usize * bs];
            }
            let (src, dst) = (j as usize * bs, (j - dropped) as usize * bs);
            kept[dst..dst + bs].copy_from_slice(&self.kept[src..src + bs]);
            have.set(j - dropped);
            i = j + 1;
        }
        self.start = from;
        self.have = have;
        self.kept = kept;
        self.groups.retain(|&first, _| first >= from);
    }

    /// A kept block turned out bad (its chunk failed verification).
    pub fn forget(&mut self, block: u64) {
        if block >= self.start {
            self.have.clear(block - self.start);
        }
    }

    /// Takes one parity shard of `code`. A code overlapping another one
    /// already accepted is refused.
    pub fn add_parity(
        &mut self,
        layout: &Layout,
        code: TailCode,
        index: u16,
        data: &[u8],
    ) -> Result<(), DatagramError> {
        code.check(layout)?;
        if index >= code.parity {
            return Err(DatagramError::BadParity);
        }
        if data.len() != self.block_size {
            return Err(DatagramError::BadPayloadLength {
                got: data.len(),
                want: self.block_size,
            });
        }
        let bs = self.block_size;
        let blocks = code.blocks();
        if blocks.start < self.start {
            // Below what the sender promised to code from.
            return Err(DatagramError::BadParity);
        }
        let before = self.groups.range(..=blocks.start).next_back();
        let after = self.groups.range(blocks.start + 1..).next();
        match before {
            Some((_, g)) if g.code == code => {}
            Some((_, g)) if g.code.blocks().end > blocks.start => {
                return Err(DatagramError::BadParity)
            }
            _ if after.is_some_and(|(&first, _)| first < blocks.end) => {
                return Err(DatagramError::BadParity)
            }
            _ => {
                self.groups.insert(
                    blocks.start,
                    Group {
                        code,
                        shards: vec![0; usize::from(code.parity) * bs],
                        have: Bitmap::new(code.parity.into()),
                        decoded: false,
                    },
                );
            }
        }
        if let Some(g) = self.groups.get_mut(&blocks.start) {
            if !g.decoded {
                let at = usize::from(index) * bs;
                g.shards[at..at + bs].copy_from_slice(data);
                g.have.set(index.into());
            }
        }
        Ok(())
    }

    /// The first block of the accepted code covering `block`, if any.
    pub fn code_of(&self, block: u64) -> Option<u64> {
        let (&first, g) = self.groups.range(..=block).next_back()?;
        g.code.blocks().contains(&block).then_some(first)
    }

    /// True when decoding the code starting at `first` would rebuild
    /// something: blocks are missing, and enough shards arrived.
    pub fn ready(&self, first: u64) -> bool {
        let Some(g) = self.groups.get(&first).filter(|g| !g.decoded) else {
            return false;
        };
        let from = first - self.start;
        let missing = u64::from(g.code.originals)
            - self
                .have
                .count_ones_in(from..from + u64::from(g.code.originals));
        missing > 0 && g.have.count_ones() >= missing
    }

    /// Payload bytes the code starting at `first` covers (what decoding
    /// it costs).
    pub fn code_bytes(&self, first: u64) -> u64 {
        self.groups
            .get(&first)
            .map_or(0, |g| u64::from(g.code.originals) * self.block_size as u64)
    }

    /// Rebuilds the missing blocks of the code starting at `first` (call
    /// when [`ready`](Self::ready)). Each code is decoded at most once.
    pub fn decode(
        &mut self,
        layout: &Layout,
        first: u64,
    ) -> Result<Vec<Recovered>, reed_solomon_simd::Error> {
        let Some(g) = self.groups.get_mut(&first).filter(|g| !g.decoded) else {
            return Ok(Vec::new());
        };
        g.decoded = true;
        let bs = self.block_size;
        let code = g.code;
        let from = (first - self.start) as usize;
        let mut dec = ReedSolomonDecoder::new(code.originals.into(), code.parity.into(), bs)?;
        for i in 0..usize::from(code.originals) {
            if self.have.get((from + i) as u64) {
                let at = (from + i) * bs;
                dec.add_original_shard(i, &self.kept[at..at + bs])?;
            }
        }
        for i in 0..usize::from(code.parity) {
            if g.have.get(i as u64) {
                dec.add_recovery_shard(i, &g.shards[i * bs..(i + 1) * bs])?;
            }
        }
        let result = dec.decode()?;
        let mut out: Vec<Recovered> = result
            .restored_original_iter()
            .map(|(i, shard)| {
                let block = first + i as u64;
                let range = layout.block_range(block);
                let len = (range.end - range.start) as usize;
                Recovered {
                    block,
                    stream_offset: range.start,
                    data: shard[..len].to_vec(),
                }
            })
            .collect();
        drop(result);
        g.shards = Vec::new();
        out.sort_by_key(|r| r.block);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::layout::{specs_every, ChunkSpec, LayoutConfig};

    fn stream(len: usize) -> (Vec<u8>, Layout) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 1000) as u8).collect();
        let layout = Layout::new(LayoutConfig::default(), specs_every(&data, 5000)).unwrap();
        (data, layout)
    }

    fn code(first_block: u64, originals: u16, parity: u16) -> TailCode {
        TailCode {
            first_block,
            originals,
            parity,
        }
    }

    #[test]
    fn any_lost_blocks_up_to_the_parity_count_are_rebuilt() {
        // 40 blocks, the last one short; a code over the last 25.
        let (data, layout) = stream(39 * 1408 + 100);
        let n = layout.block_count();
        let c = code(n - 25, 25, 5);
        let parity = c.encode(&layout, &mut &data[..]).unwrap();
        let bs = layout.block_size();
        let lost = [n - 25, n - 20, n - 9, n - 2, n - 1];
        let mut dec = TailDecoder::new(&layout);
        for b in 0..n {
            if !lost.contains(&b) {
                let r = layout.block_range(b);
                dec.keep(b, &data[r.start as usize..r.end as usize]);
            }
        }
        assert_eq!(dec.code_of(n - 1), None, "no code known yet");
        // Four shards do not rebuild five blocks; the fifth does.
        for i in 0..4u16 {
            let s = &parity[usize::from(i) * bs..][..bs];
            dec.add_parity(&layout, c, i, s).unwrap();
            assert!(!dec.ready(n - 25));
        }
        dec.add_parity(&layout, c, 4, &parity[4 * bs..5 * bs])
            .unwrap();
        assert_eq!(dec.code_of(n - 1), Some(n - 25));
        assert_eq!(dec.code_of(n - 26), None);
        assert!(dec.ready(n - 25));
        let got = dec.decode(&layout, n - 25).unwrap();
        assert_eq!(got.iter().map(|r| r.block).collect::<Vec<_>>(), lost);
        for r in &got {
            let range = layout.block_range(r.block);
            assert_eq!(r.stream_offset, range.start);
            assert_eq!(r.data, data[range.start as usize..range.end as usize]);
        }
        assert!(!dec.ready(n - 25), "decoding happens once");
        assert!(dec.decode(&layout, n - 25).unwrap().is_empty());
    }

    #[test]
    fn groups_decode_independently() {
        let (data, layout) = stream(100 * 1408);
        let bs = layout.block_size();
        let (a, b) = (code(60, 20, 2), code(80, 20, 2));
        let mut dec = TailDecoder::new(&layout);
        for blk in (0..100).filter(|&x| x != 65 && x != 90 && x != 91) {
            let r = layout.block_range(blk);
            dec.keep(blk, &data[r.start as usize..r.end as usize]);
        }
        for c in [a, b] {
            let parity = c.encode(&layout, &mut &data[..]).unwrap();
            dec.add_parity(&layout, c, 1, &parity[bs..2 * bs]).unwrap();
        }
        assert!(dec.ready(60), "one shard for one loss");
        assert!(!dec.ready(80), "one shard for two losses");
        let got = dec.decode(&layout, 60).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].block, 65);
    }

    #[test]
    fn a_raised_start_drops_the_copies_below_it_and_keeps_the_rest() {
        let (data, layout) = stream(100 * 1408);
        let bs = layout.block_size();
        let block = |b: u64| {
            let r = layout.block_range(b);
            &data[r.start as usize..r.end as usize]
        };
        let mut dec = TailDecoder::new(&layout);
        for b in (0..100).filter(|&b| b != 85) {
            assert!(dec.keep(b, block(b)));
        }
        // A code accepted below the new start goes with the copies.
        let low = code(40, 10, 1);
        let shard = vec![0u8; bs];
        dec.add_parity(&layout, low, 0, &shard).unwrap();
        dec.raise_start(70);
        dec.raise_start(30);
        assert_eq!(dec.code_of(45), None);
        assert!(!dec.keep(69, block(69)), "below the start");
        assert_eq!(
            dec.add_parity(&layout, code(60, 20, 2), 0, &shard),
            Err(DatagramError::BadParity),
            "a code below the promise"
        );
        // The copies from 70 on survived the move: they rebuild 85.
        let c = code(80, 20, 1);
        let parity = c.encode(&layout, &mut &data[..]).unwrap();
        dec.add_parity(&layout, c, 0, &parity).unwrap();
        assert!(dec.ready(80));
        let got = dec.decode(&layout, 80).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].block, &got[0].data[..]), (85, block(85)));
        // Promising nothing frees everything.
        dec.raise_start(u64::MAX);
        assert!(dec.kept.is_empty() && dec.have.is_empty());
        assert!(!dec.keep(99, block(99)));
    }

    #[test]
    fn codes_a_peer_names_are_checked() {
        let (_, layout) = stream(100 * 1408);
        let n = layout.block_count();
        assert_eq!(window_limit(&layout), n, "a short stream is kept whole");
        assert_eq!(code(90, 10, 10).check(&layout), Ok(()));
        for bad in [
            code(n, 1, 1),
            code(95, 10, 1),
            code(90, 10, 0),
            code(90, 10, 11),
            code(90, 0, 1),
        ] {
            assert_eq!(bad.check(&layout), Err(DatagramError::BadParity), "{bad:?}");
        }
        let mut dec = TailDecoder::new(&layout);
        let shard = vec![0u8; layout.block_size()];
        let ok = code(80, 10, 4);
        assert_eq!(
            dec.add_parity(&layout, ok, 4, &shard),
            Err(DatagramError::BadParity),
            "index past the parity count"
        );
        assert!(dec.add_parity(&layout, ok, 0, &shard[1..]).is_err());
        dec.add_parity(&layout, ok, 0, &shard).unwrap();
        dec.add_parity(&layout, ok, 1, &shard).unwrap();
        for overlapping in [code(80, 10, 3), code(75, 6, 1), code(89, 2, 1)] {
            assert_eq!(
                dec.add_parity(&layout, overlapping, 0, &shard),
                Err(DatagramError::BadParity),
                "{overlapping:?}"
            );
        }
        dec.add_parity(&layout, code(90, 10, 1), 0, &shard).unwrap();
        dec.add_parity(&layout, code(70, 10, 1), 0, &shard).unwrap();
    }

    #[test]
    fn windows_are_bounded_and_cut_into_even_groups() {
        let big = |packet_size| {
            let config = LayoutConfig {
                packet_size,
                ..LayoutConfig::default()
            };
            let specs = vec![
                ChunkSpec {
                    len: u32::MAX,
                    hash: [0; 32]
                };
                4
            ];
            Layout::new(config, specs).unwrap()
        };
        let small = big(1500);
        assert_eq!(window_limit(&small), MAX_WINDOW_BYTES / 1408);
        let jumbo = big(9000);
        assert_eq!(window_limit(&jumbo), MAX_WINDOW_BYTES / 8908);
        let dec = TailDecoder::new(&jumbo);
        assert_eq!(dec.start, jumbo.block_count() - MAX_WINDOW_BYTES / 8908);
        assert!(
            dec.kept.is_empty(),
            "nothing is allocated before a block is kept"
        );

        let n = small.block_count();
        let ends = group_ends(&small, n - 10_000);
        assert_eq!(ends.len(), 3);
        assert_eq!(*ends.last().unwrap(), n);
        let mut start = n - 10_000;
        for end in ends {
            assert!((3333..=3334).contains(&(end - start)));
            start = end;
        }
        assert_eq!(group_ends(&small, n - 5), [n]);
        assert!(group_ends(&small, n).is_empty());
    }
}
