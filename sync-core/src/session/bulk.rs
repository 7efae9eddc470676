//! Bulky runs of session messages (the manifest, the chunk lists) sent as
//! UDP datagrams instead of on the control connection.
//!
//! The control connection is TCP (ssh's, or the daemon's), and on a long
//! lossy path TCP crawls: by the Mathis bound about 1.2 segments per round
//! trip over the square root of the loss rate, 0.3 Mbit/s at 200 ms and
//! 5 % loss. Measured through wanem on a 300 Mbit/s link at 200 ms and 5 %
//! loss (2026-12-07, d038dd2), a push of 20,000 small files spent 56 s
//! sending the manifest and chunk lists and 32 s on the list of needed
//! chunks, against 22 s for the 674 MB of data. So the sender encodes such
//! a run of messages back to back, cuts it into pieces named by their
//! BLAKE3 hash, announces the pieces ([`Msg::Bulk`]), and ships them with
//! the same UDP machinery as file chunks; the receiver decodes them and
//! reads them as if they had come on the connection ([`Unbundle`]). Runs
//! below [`BULK_MIN`] bytes, `--transport tcp`, and receivers that cannot
//! or will not take UDP keep the control connection.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::msg::{BulkPiece, Msg, Need};
use super::transport::{self, MsgRead, MsgWrite, Transport, MAX_FRAME};
use super::udp;
use super::{DataOptions, Side, TransportChoice};
use crate::chunk::Hash;
use crate::error::{Error, ProtocolError, Result};

/// Runs smaller than this go on the control connection: a UDP phase costs
/// a round trip or two to set up.
pub const BULK_MIN: usize = 256 << 10;
/// Bytes per piece (each is verified by its hash as it completes).
pub const PIECE: usize = 64 << 10;
/// A longer run is cut into runs of about this many bytes, so that a
/// receiver holds at most one in memory.
pub const MAX_RUN: usize = 256 << 20;
/// Most pieces a receiver accepts for one run: [`MAX_RUN`] and the one
/// frame that crosses it.
pub const MAX_PIECES: usize = (MAX_RUN + 4 + MAX_FRAME).div_ceil(PIECE);

/// What decides whether a run may go as datagrams.
pub struct BulkPath<'a> {
    pub data: &'a DataOptions,
    pub side: &'a Side,
    /// The peer takes UDP at all.
    pub peer_udp: bool,
}

impl BulkPath<'_> {
    fn allowed(&self) -> bool {
        self.peer_udp
            && match self.data.transport {
                TransportChoice::Tcp => false,
                TransportChoice::Udp => true,
                // Both halves of a local sync share memory.
                TransportChoice::Auto => !self.side.udp.local,
            }
    }
}

/// Sends `msgs` in order: as datagrams when they are bulky and the
/// receiver takes them, else on the control connection. Returns the
/// datagram bytes sent.
pub fn send_run(t: &mut dyn Transport, msgs: &[Msg], path: &BulkPath) -> Result<u64> {
    let zipped;
    let msgs = match path.data.compress {
        Some(level) => {
            zipped = zip_run(msgs, level)?;
            &zipped[..]
        }
        None => msgs,
    };
    if !path.allowed() {
        return send_plain(t, msgs);
    }
    let mut sent = 0;
    let mut blob = Vec::new();
    let mut from = 0;
    for (i, m) in msgs.iter().enumerate() {
        blob.extend_from_slice(&transport::encode(m)?);
        if blob.len() >= MAX_RUN {
            sent += send_blob(t, &msgs[from..=i], &blob, path)?;
            blob.clear();
            from = i + 1;
        }
    }
    if blob.len() >= BULK_MIN {
        sent += send_blob(t, &msgs[from..], &blob, path)?;
    } else {
        send_plain(t, &msgs[from..])?;
    }
    Ok(sent)
}

/// Sends one run, `blob` being `msgs` encoded back to back.
fn send_blob(t: &mut dyn Transport, msgs: &[Msg], blob: &[u8], path: &BulkPath) -> Result<u64> {
    let needs: Vec<Need> = blob
        .chunks(PIECE)
        .enumerate()
        .map(|(i, piece)| Need {
            idx: i as u32,
            hash: Hash(*blake3::hash(piece).as_bytes()),
            length: piece.len() as u32,
        })
        .collect();
    let pieces = needs
        .iter()
        .map(|n| BulkPiece {
            length: n.length,
            hash: n.hash,
        })
        .collect();
    t.send(&Msg::Bulk(pieces))?;
    let offer = match t.recv()? {
        Msg::BulkReady(offer) => offer,
        Msg::Error(e) => return Err(Error::Peer(e)),
        other => return Err(ProtocolError::unexpected("BulkReady", other.name()).into()),
    };
    let Some(offer) = offer else {
        return send_plain(t, msgs);
    };
    let started = std::time::Instant::now();
    let mut sent = 0;
    match udp::send(t, &offer, &needs, path.data, path.side, &mut &blob[..], 0) {
        Ok(stats) => sent = stats.map_or(0, |s| s.bytes),
        // The receiver decides what follows (BulkDone says).
        Err(e) => tracing::warn!("UDP bulk phase failed: {e}"),
    }
    match t.recv()? {
        Msg::BulkDone { ok: true } => {
            tracing::debug!(
                bytes = blob.len(),
                ms = started.elapsed().as_millis() as u64,
                "bulk run sent as datagrams"
            );
            Ok(sent)
        }
        Msg::BulkDone { ok: false } => send_plain(t, msgs).map(|_| sent),
        Msg::Error(e) => Err(Error::Peer(e)),
        other => Err(ProtocolError::unexpected("BulkDone", other.name()).into()),
    }
}

/// Decoded bytes a run compressed as one [`Msg::Zipped`] may hold: a
/// zipped run of the tree's entries stays far below [`MAX_FRAME`] even
/// when its text barely compresses.
pub const ZIP_MAX: usize = 16 << 20;
/// Runs shorter than this are not worth a zstd frame.
const ZIP_MIN: usize = 4 << 10;

/// `msgs` with each stretch of up to [`ZIP_MAX`] encoded bytes compressed
/// into one [`Msg::Zipped`] (short stretches stay as they are).
fn zip_run(msgs: &[Msg], level: i32) -> Result<Vec<Msg>> {
    let mut out = Vec::new();
    let mut blob = Vec::new();
    let mut from = 0;
    let zip = |blob: &[u8], plain: &[Msg], out: &mut Vec<Msg>| -> Result<()> {
        if blob.len() < ZIP_MIN {
            out.extend_from_slice(plain);
            return Ok(());
        }
        let bytes = zstd::bulk::compress(blob, level).map_err(|e| Error::io("<zstd>", e))?;
        out.push(Msg::Zipped {
            length: blob.len() as u32,
            bytes,
        });
        Ok(())
    };
    for (i, m) in msgs.iter().enumerate() {
        let frame = transport::encode(m)?;
        if !blob.is_empty() && blob.len() + frame.len() > ZIP_MAX {
            zip(&blob, &msgs[from..i], &mut out)?;
            blob.clear();
            from = i;
        }
        blob.extend_from_slice(&frame);
    }
    zip(&blob, &msgs[from..], &mut out)?;
    Ok(out)
}

/// The messages of a [`Msg::Zipped`] run.
fn unzip_run(length: u32, bytes: &[u8]) -> Result<Vec<Msg>> {
    let length = length as usize;
    if length > ZIP_MAX + 4 + MAX_FRAME {
        return Err(ProtocolError::over_limit(
            "Zipped: decoded length",
            length,
            ZIP_MAX + 4 + MAX_FRAME,
        )
        .into());
    }
    // zstd writes into room for `length` bytes and no more.
    let blob = zstd::bulk::decompress(bytes, length)
        .map_err(|e| ProtocolError::undecodable("a zipped run", e))?;
    if blob.len() != length {
        return Err(ProtocolError::mismatch("Zipped: decoded length", length, blob.len()).into());
    }
    decode_run(&blob, true)
}

fn send_plain(t: &mut dyn Transport, msgs: &[Msg]) -> Result<u64> {
    for m in msgs {
        t.send(m)?;
    }
    Ok(0)
}

/// The receiver's view of the connection: messages of a bulk run, once it
/// has arrived as datagrams, come first, as if they had come on the
/// connection; everything else passes through.
pub struct Unbundle<'a> {
    inner: &'a mut dyn Transport,
    queue: VecDeque<Msg>,
    data: DataOptions,
    side: &'a Side,
    peer_udp: bool,
    /// A bulk run over UDP failed (`auto` heard no datagram): later runs,
    /// and the data phase, take the connection.
    udp_failed: Arc<AtomicBool>,
}

impl<'a> Unbundle<'a> {
    /// `udp_failed` is set when a bulk run gives up on UDP.
    pub fn new(
        inner: &'a mut dyn Transport,
        data: &DataOptions,
        side: &'a Side,
        peer_udp: bool,
        udp_failed: Arc<AtomicBool>,
    ) -> Self {
        Unbundle {
            inner,
            queue: VecDeque::new(),
            data: data.clone(),
            side,
            peer_udp,
            udp_failed,
        }
    }

    /// Takes the bulk run announced as `pieces`: over UDP if this side
    /// wants it, queueing its messages; otherwise (or when UDP fails) they
    /// follow on the connection.
    fn take(&mut self, pieces: Vec<BulkPiece>) -> Result<()> {
        if pieces.len() > MAX_PIECES
            || pieces
                .iter()
                .any(|p| p.length == 0 || p.length as usize > PIECE)
        {
            return Err(ProtocolError::invalid(
                "Bulk",
                format!(
                    "{} pieces (at most {MAX_PIECES}), or a piece of 0 or over {PIECE} bytes",
                    pieces.len()
                ),
            )
            .into());
        }
        let split = self.inner.split().is_some();
        let wanted = self.peer_udp
            && !self.udp_failed.load(Ordering::Relaxed)
            && udp::wanted(&self.data, self.side, split);
        if !wanted {
            return self.inner.send(&Msg::BulkReady(None));
        }
        let prepared = udp::prepare(&self.data, self.side)?;
        self.inner
            .send(&Msg::BulkReady(Some(prepared.offer().clone())))?;
        let needs: Vec<Need> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| Need {
                idx: i as u32,
                hash: p.hash,
                length: p.length,
            })
            .collect();
        let layout = udp::offer_layout(&needs, prepared.offer())?;
        let blob = udp::receive_into(self.inner, prepared, layout, &self.data, Vec::new())?;
        let Some(blob) = blob else {
            self.udp_failed.store(true, Ordering::Relaxed);
            return self.inner.send(&Msg::BulkDone { ok: false });
        };
        self.inner.send(&Msg::BulkDone { ok: true })?;
        self.queue.extend(decode_run(&blob, false)?);
        Ok(())
    }
}

/// The messages of a bulk run (`zipped`: of a [`Msg::Zipped`] one):
/// frames back to back.
fn decode_run(mut blob: &[u8], zipped: bool) -> Result<Vec<Msg>> {
    let mut out = Vec::new();
    while !blob.is_empty() {
        let (payload, rest) = transport::FRAMING
            .split_complete(blob)
            .map_err(|e| ProtocolError::undecodable("a bulk run", e))?;
        let msg = transport::decode(payload)?;
        // A bulk run may carry zipped runs; a zipped run only messages.
        let zipped_in_zipped = zipped && matches!(msg, Msg::Zipped { .. });
        if zipped_in_zipped
            || matches!(msg, Msg::Bulk(_) | Msg::BulkReady(_) | Msg::BulkDone { .. })
        {
            return Err(ProtocolError::invalid("Bulk", "a run holds another bulk message").into());
        }
        out.push(msg);
        blob = rest;
    }
    Ok(out)
}

impl Transport for Unbundle<'_> {
    fn send(&mut self, msg: &Msg) -> Result<()> {
        self.inner.send(msg)
    }

    fn recv(&mut self) -> Result<Msg> {
        loop {
            let m = match self.queue.pop_front() {
                Some(m) => m,
                None => self.inner.recv()?,
            };
            match m {
                Msg::Bulk(pieces) => self.take(pieces)?,
                // A zipped run came first: its messages come next.
                Msg::Zipped { length, bytes } => {
                    for m in unzip_run(length, &bytes)?.into_iter().rev() {
                        self.queue.push_front(m);
                    }
                }
                m => return Ok(m),
            }
        }
    }

    fn wire_bytes_sent(&self) -> u64 {
        self.inner.wire_bytes_sent()
    }

    fn split(&mut self) -> Option<(Box<dyn MsgRead + '_>, Box<dyn MsgWrite + '_>)> {
        // Only between runs: a data phase begins after the receiver's
        // NeedDone, when every queued message has been read.
        debug_assert!(self.queue.is_empty());
        self.inner.split()
    }

    fn pinger(&mut self) -> Option<transport::Pinger> {
        self.inner.pinger()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_decode_back_to_their_messages_and_reject_garbage() {
        let msgs = vec![
            Msg::WantDone,
            Msg::Error("x".repeat(1000)),
            Msg::RoundDone { round: 7 },
        ];
        let mut blob = Vec::new();
        for m in &msgs {
            blob.extend_from_slice(&transport::encode(m).unwrap());
        }
        assert_eq!(decode_run(&blob, false).unwrap(), msgs);
        assert!(decode_run_plain(&blob[..blob.len() - 1]).is_err());
        assert!(decode_run_plain(&blob[..2]).is_err());
        let nested = transport::encode(&Msg::BulkDone { ok: true }).unwrap();
        assert!(decode_run_plain(&nested).is_err());
        let huge = (u32::MAX).to_be_bytes();
        assert!(decode_run_plain(&huge).is_err());
    }

    fn decode_run_plain(blob: &[u8]) -> Result<Vec<Msg>> {
        decode_run(blob, false)
    }

    #[test]
    fn zipped_runs_decode_to_their_messages_and_refuse_bombs_and_nesting() {
        let msgs: Vec<Msg> = (0..500)
            .map(|i| Msg::Error(format!("drivers/net/ethernet/intel/e1000e/file{i}.c")))
            .collect();
        let zipped = zip_run(&msgs, 3).unwrap();
        assert_eq!(zipped.len(), 1);
        let Msg::Zipped { length, bytes } = &zipped[0] else {
            panic!("not zipped: {zipped:?}")
        };
        assert!(bytes.len() * 4 < *length as usize);
        assert_eq!(unzip_run(*length, bytes).unwrap(), msgs);
        // A frame that claims less than it holds, or more than allowed.
        assert!(unzip_run(length - 1, bytes).is_err());
        assert!(unzip_run(u32::MAX, bytes).is_err());
        // A zipped run inside a zipped run.
        let inner = transport::encode(&zipped[0]).unwrap();
        let outer = zstd::bulk::compress(&inner, 3).unwrap();
        assert!(unzip_run(inner.len() as u32, &outer).is_err());
        // A handful of messages is not worth a frame.
        assert_eq!(zip_run(&msgs[..2], 3).unwrap(), msgs[..2].to_vec());
    }
}
