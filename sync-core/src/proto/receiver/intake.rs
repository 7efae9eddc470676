//! A datagram's way into the receiver: header, session and replay checks
//! before any cryptography, decryption (in place or into the driver's
//! buffer), then the block booked in the bitmap and the chunk counts, and
//! fed to the tail codes, whose rebuilt blocks queue for the driver.
//!
//! It also takes each authentic datagram's counters, arrival rate and
//! one-way delay sample, which the feedback reports. Every dropped
//! datagram is counted by its reason. It never builds feedback and never
//! decides when a chunk is verified.

use std::time::Instant;

use super::{Delivery, Event, Placed, Receiver};
use crate::proto::control_datagram;
use crate::proto::fec::Recovered;
use crate::proto::replay::ReplayCheck;
use crate::proto::wire::{Body, DatagramError, Header, HEADER_LEN};

impl Receiver {
    /// Authenticates and absorbs one datagram, decrypting it in place.
    /// Returns the payload to write when the block is new; `Ok(None)` for a
    /// duplicate block or a parity datagram; an error (already counted in
    /// [`stats`](Self::stats)) for anything dropped.
    ///
    /// Write the delivery, then whatever [`poll_recovered`](Self::poll_recovered)
    /// returns, before polling events: a [`Event::ChunkComplete`] they
    /// trigger refers to the bytes just delivered.
    pub fn handle_datagram<'a>(
        &mut self,
        now: Instant,
        datagram: &'a mut [u8],
    ) -> Result<Option<Delivery<'a>>, DatagramError> {
        let total = datagram.len();
        let block = self.check(datagram).and_then(|(h, len)| {
            let (head, body) = datagram.split_at_mut(HEADER_LEN);
            self.key.open(h.packet_number, head, body)?;
            self.accept(now, &h, total, &body[..len])
        });
        Ok(self.count_drop(block)?.map(|b| Delivery {
            block: b,
            stream_offset: self.layout.block_range(b).start,
            data: &datagram[HEADER_LEN..][..self.layout.block_len(b)],
        }))
    }

    /// [`handle_datagram`](Self::handle_datagram) without touching the
    /// datagram: a new block's payload (or a control message) is decrypted
    /// straight into the start of `out` (where the driver collects blocks
    /// for its writer), saving the copy out of a decrypted datagram. `out`
    /// must hold a whole block ([`Layout::block_size`]); after `Ok(None)`
    /// or an error its contents are unspecified.
    ///
    /// [`Layout::block_size`]: crate::proto::layout::Layout::block_size
    pub fn handle_datagram_into(
        &mut self,
        now: Instant,
        datagram: &[u8],
        out: &mut [u8],
    ) -> Result<Option<Placed>, DatagramError> {
        let block = self.check(datagram).and_then(|(h, len)| {
            let got = out.len();
            let out = out
                .get_mut(..len)
                .ok_or(DatagramError::BadPayloadLength { got, want: len })?;
            let (head, body) = datagram.split_at(HEADER_LEN);
            self.key.open_to(h.packet_number, head, body, out)?;
            self.accept(now, &h, datagram.len(), out)
        });
        Ok(self.count_drop(block)?.map(|b| Placed {
            block: b,
            stream_offset: self.layout.block_range(b).start,
            len: self.layout.block_len(b),
        }))
    }

    /// Everything after authentication: the datagram's counters and
    /// delay sample, then its payload booked. Returns the block when it is
    /// new.
    fn accept(
        &mut self,
        now: Instant,
        h: &Header,
        datagram_len: usize,
        payload: &[u8],
    ) -> Result<Option<u64>, DatagramError> {
        self.replay.accept(h.packet_number);
        if let Body::Parity { code, index } = h.body {
            self.tail.add_parity(&self.layout, code, index, payload)?;
        }
        self.on_authentic(now, h, datagram_len);
        let b = match h.body {
            Body::Block(b) => b,
            Body::Parity { code, .. } => {
                self.stats.parity += 1;
                self.try_decode(code.first_block);
                return Ok(None);
            }
            Body::Control => {
                let msg = control_datagram::decode(payload)?;
                self.stats.control += 1;
                self.handle_control(now, msg);
                return Ok(None);
            }
        };
        if !self.absorb(b) {
            self.stats.duplicates += 1;
            return Ok(None);
        }
        if self.tail.keep(b, payload) {
            self.stats.kept += 1;
            if let Some(first) = self.tail.code_of(b) {
                self.try_decode(first);
            }
        }
        Ok(Some(b))
    }

    /// Counts a dropped datagram by its reason; passes the result on.
    fn count_drop<T>(&mut self, r: Result<T, DatagramError>) -> Result<T, DatagramError> {
        if let Err(e) = &r {
            match e {
                DatagramError::ForeignSession => self.stats.foreign += 1,
                DatagramError::AuthFailed => self.stats.auth_failed += 1,
                DatagramError::Replayed | DatagramError::TooOld => self.stats.replayed += 1,
                _ => self.stats.malformed += 1,
            }
        }
        r
    }

    /// The next block a tail code rebuilt, to be written like a
    /// [`Delivery`] (before polling events).
    pub fn poll_recovered(&mut self) -> Option<Recovered> {
        self.recovered.pop_front()
    }
    /// Books a new block: false if it was held already.
    fn absorb(&mut self, b: u64) -> bool {
        if !self.held.set(b) {
            return false;
        }
        self.stats.blocks += 1;
        while self.held.get(self.cum_ack) {
            self.cum_ack += 1;
        }
        self.highest_block = Some(self.highest_block.map_or(b, |h| h.max(b)));
        // Borrowed field by field: cloning the `Arc` here, once a block,
        // wrote its count, which shares a cache line with the layout fields
        // the sending thread reads for every datagram, and so pulled that
        // line back and forth between the cores (about 4 % of all CPU time
        // on loopback).
        let Receiver {
            layout,
            remaining,
            chunk_hint,
            events,
            ..
        } = self;
        for c in layout.block_chunks_near(b, chunk_hint) {
            let left = &mut remaining[c];
            *left = left.saturating_sub(1);
            if *left == 0 {
                events.push_back(Event::ChunkComplete(c));
            }
        }
        true
    }

    /// Rebuilds the missing blocks of the tail code starting at `first`
    /// once enough shards arrived.
    fn try_decode(&mut self, first: u64) {
        if !self.tail.ready(first) {
            return;
        }
        self.stats.decoded_bytes += self.tail.code_bytes(first);
        match self.tail.decode(&self.layout, first) {
            Ok(blocks) => {
                for r in blocks {
                    if self.absorb(r.block) {
                        self.stats.recovered += 1;
                        self.recovered.push_back(r);
                    }
                }
                self.dirty = true;
            }
            // Not expected with shards checked on arrival; the NAKs repair
            // what the code could not.
            Err(e) => tracing::warn!(error = %e, "tail code did not decode"),
        }
    }
    /// Header checks and replay check, before any cryptography: the header
    /// and the payload length the datagram must have. The caller then
    /// authenticates it and, if genuine, marks its packet number seen.
    fn check(&self, datagram: &[u8]) -> Result<(Header, usize), DatagramError> {
        let h = Header::decode(datagram)?;
        if h.session_id != self.session_id {
            return Err(DatagramError::ForeignSession);
        }
        match self.replay.check(h.packet_number) {
            ReplayCheck::Fresh => {}
            ReplayCheck::Replayed => return Err(DatagramError::Replayed),
            ReplayCheck::TooOld => return Err(DatagramError::TooOld),
        }
        let want = match h.body {
            Body::Block(b) if b >= self.layout.block_count() => {
                return Err(DatagramError::BlockOutOfRange(b))
            }
            Body::Block(b) => self.layout.block_len(b),
            Body::Parity { .. } => self.layout.block_size(),
            Body::Control => {
                let len = control_datagram::payload_len(
                    &self.key,
                    datagram.len(),
                    self.layout.block_size(),
                )?;
                return Ok((h, len));
            }
        };
        let got = datagram
            .len()
            .saturating_sub(HEADER_LEN + self.key.tag_len());
        if datagram.len() < HEADER_LEN + self.key.tag_len() || got != want {
            return Err(DatagramError::BadPayloadLength { got, want });
        }
        Ok((h, want))
    }

    fn on_authentic(&mut self, now: Instant, h: &Header, len: usize) {
        self.last_heard = now;
        self.stats.datagrams += 1;
        self.stats.bytes += len as u64;
        self.packets_received += 1;
        self.highest_pn = self.highest_pn.max(h.packet_number);
        self.dirty = true;
        if self.next_feedback.is_none() {
            self.next_feedback = Some(now + self.config.feedback_interval);
        }

        self.window_bytes += len as u64;
        let span = now.saturating_duration_since(self.window_start);
        if span >= self.rate_window {
            self.recv_rate = (self.window_bytes as f64 / span.as_secs_f64()) as u64;
            self.window_start = now;
            self.window_bytes = 0;
        }

        // One-way delay relative to the first datagram: the clocks differ by
        // an unknown offset, and only changes in delay matter.
        let recv_us = now.saturating_duration_since(self.epoch).as_micros() as u32;
        let raw = recv_us.wrapping_sub(h.send_time_us);
        let origin = *self.owd_origin.get_or_insert(raw);
        let owd = i64::from(raw.wrapping_sub(origin) as i32);
        self.owd_min = self.owd_min.min(owd);
        self.owd_sum = self.owd_sum.saturating_add(owd);
        self.owd_count += 1;

        if self
            .echo
            .is_none_or(|(ts, _)| (h.send_time_us.wrapping_sub(ts) as i32) > 0)
        {
            self.echo = Some((h.send_time_us, now));
        }
    }
}
