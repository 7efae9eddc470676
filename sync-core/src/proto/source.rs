//! Where the sender's payload bytes come from: the [`BlockSource`] trait.
//!
//! Owns the one seam between the sans-IO sender (and the tail codes it
//! encodes) and whatever holds the stream's bytes: files in the driver,
//! memory in tests and benchmarks. It never decides what to read; the
//! [`Sender`](super::Sender) and [`fec`](super::fec) ask for stream ranges.

use std::io;

/// Where block payloads come from: files in the driver, memory in tests.
pub trait BlockSource {
    /// Fills `buf` with the stream bytes starting at `stream_offset`.
    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// The `len` stream bytes at `stream_offset` as one slice, when the
    /// source holds them contiguously in memory; `None` makes the sender
    /// fall back to [`read`](Self::read). Lending the bytes lets the cipher
    /// read them where they are instead of from a copy.
    fn lend(&mut self, _stream_offset: u64, _len: usize) -> Option<&[u8]> {
        None
    }
}

/// An in-memory stream: `&mut &bytes[..]` is a source.
impl BlockSource for &[u8] {
    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(stream_offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn lend(&mut self, stream_offset: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(stream_offset).ok()?;
        self.get(start..start.checked_add(len)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_reads_and_lends_in_range_and_refuses_past_its_end() {
        let bytes: &[u8] = b"0123456789";
        let mut source = bytes;
        let mut buf = [0u8; 4];
        source.read(3, &mut buf).unwrap();
        assert_eq!(&buf, b"3456");
        assert_eq!(source.lend(6, 4), Some(&b"6789"[..]));
        assert_eq!(source.lend(7, 4), None);
        let err = source.read(8, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(source.lend(u64::MAX, 1), None);
    }
}
