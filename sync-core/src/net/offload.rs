//! UDP segmentation offloads: many datagrams per system call and per trip
//! through the network stack.
//!
//! Owns [`Transmit`] and [`RecvBuffers`], the batch send and receive paths
//! the drivers use. On Linux, [`Transmit`] hands the kernel runs of
//! equal-sized datagrams as one message with a `UDP_SEGMENT` control message
//! (GSO, Linux 4.18+): the stack builds one large packet and cuts it into
//! datagrams only at the device (or never, on loopback to a GRO socket).
//! [`RecvBuffers`] turns on `UDP_GRO` (Linux 5.0+), reads coalesced buffers
//! of up to 64 KiB and splits them at the `UDP_GRO` control message's
//! segment size. Both probe the kernel at construction and fall back to
//! plain `sendmmsg`/`recvmmsg` ([`super::socket`]) when it refuses; the send
//! path also falls back for good if a GSO send fails with an error that
//! means "not here" (`EIO` from a device without checksum offload, `EINVAL`
//! or `EOPNOTSUPP` on odd stacks), as quinn-udp and quic-go do.
//!
//! Setting the environment variable `SLUICE_UDP_OFFLOAD=0` disables both,
//! for comparisons and for working around a broken driver. Datagram bytes
//! and the wire format are the same either way; only batching changes.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;

use super::socket::{recv_batch, send_batch, BATCH};
use crate::proto::layout::MAX_DATAGRAM;

/// Most datagrams the kernel accepts in one GSO send (`UDP_MAX_SEGMENTS`)
/// and coalesces in one GRO buffer (`UDP_GRO_CNT_MAX`).
pub const MAX_SEGMENTS: usize = 64;
/// Most payload bytes one GSO send may carry: an IP packet's 64 KiB minus
/// IPv6 and UDP headers (the stricter family), so either family fits.
pub const MAX_GSO_BYTES: usize = u16::MAX as usize - 48;
/// Most datagrams one [`Transmit::send`] call takes.
pub const MAX_SEND: usize = 128;
/// Receive buffer per message with GRO: the largest coalesced packet.
const GRO_SLOT: usize = 1 << 16;
/// Messages per `recvmmsg` with GRO (each up to [`MAX_SEGMENTS`] datagrams).
const GRO_SLOTS: usize = 8;

/// True unless `SLUICE_UDP_OFFLOAD=0` asks for the plain paths.
pub fn offload_allowed() -> bool {
    std::env::var_os("SLUICE_UDP_OFFLOAD").is_none_or(|v| v != "0")
}

/// Sends batches of datagrams to one peer, with GSO when the kernel has it.
#[derive(Debug)]
pub struct Transmit {
    gso: bool,
}

impl Transmit {
    /// Probes `socket` for GSO unless `allow_gso` is false.
    pub fn new(socket: &UdpSocket, allow_gso: bool) -> Self {
        Transmit {
            gso: allow_gso && sys::gso_supported(socket),
        }
    }

    /// Whether sends currently use GSO.
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Sends up to [`MAX_SEND`] of `datagrams` to `dest`; returns how many
    /// left. A short count means the socket buffer is full: retry the rest
    /// later. Datagrams are sent in order.
    pub fn send(
        &mut self,
        socket: &UdpSocket,
        dest: SocketAddr,
        datagrams: &[&[u8]],
    ) -> io::Result<usize> {
        if self.gso {
            match sys::send_gso(socket, dest, datagrams) {
                Err(e) if sys::gso_refused(&e) => {
                    tracing::warn!(error = %e, "UDP GSO refused; falling back to sendmmsg");
                    self.gso = false;
                }
                other => return other,
            }
        }
        send_batch(socket, dest, datagrams)
    }
}

/// Splits `lens` into GSO groups: runs of equal lengths, of which only the
/// last may be shorter, within [`MAX_SEGMENTS`] and [`MAX_GSO_BYTES`].
/// Returns the group sizes in order; they add up to `lens.len()`.
pub fn gso_groups(lens: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut groups = Vec::new();
    let (mut seg, mut count, mut bytes, mut closed) = (0, 0, 0, false);
    for len in lens {
        let fits = count > 0
            && !closed
            && len <= seg
            && count < MAX_SEGMENTS
            && bytes + len <= MAX_GSO_BYTES;
        if fits {
            count += 1;
            bytes += len;
            // A shorter datagram can only end a group.
            closed = len < seg;
        } else {
            if count > 0 {
                groups.push(count);
            }
            (seg, count, bytes, closed) = (len, 1, len, false);
        }
    }
    if count > 0 {
        groups.push(count);
    }
    groups
}

/// Receive buffers for one socket, with GRO when the kernel has it.
pub struct RecvBuffers {
    gro: bool,
    slot: usize,
    buf: Vec<u8>,
    /// Each received datagram's byte range in `buf`.
    datagrams: Vec<Range<usize>>,
}

impl RecvBuffers {
    /// Turns GRO on for `socket` unless `allow_gro` is false, and sizes the
    /// buffers for whichever mode it got.
    pub fn new(socket: &UdpSocket, allow_gro: bool) -> Self {
        let gro = allow_gro && sys::enable_gro(socket);
        let (slot, slots) = if gro {
            (GRO_SLOT, GRO_SLOTS)
        } else {
            (MAX_DATAGRAM, BATCH)
        };
        RecvBuffers {
            gro,
            slot,
            buf: vec![0; slot * slots],
            datagrams: Vec::with_capacity(slots * MAX_SEGMENTS),
        }
    }

    /// Whether the socket delivers coalesced buffers.
    pub fn gro(&self) -> bool {
        self.gro
    }

    /// Waits up to the socket's read timeout for datagrams; returns how many
    /// arrived (0 on timeout). Read them with [`datagram`](Self::datagram).
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.datagrams.clear();
        if self.gro {
            sys::recv_gro(socket, &mut self.buf, self.slot, &mut self.datagrams)?;
        } else {
            let mut slots: Vec<&mut [u8]> = self.buf.chunks_mut(self.slot).collect();
            let mut lens = [0usize; BATCH];
            let n = recv_batch(socket, &mut slots, &mut lens)?;
            for (i, &len) in lens[..n].iter().enumerate() {
                let start = i * self.slot;
                self.datagrams.push(start..start + len);
            }
        }
        Ok(self.datagrams.len())
    }

    /// The `i`th datagram of the last [`recv`](Self::recv), mutable so it
    /// can be decrypted in place.
    pub fn datagram(&mut self, i: usize) -> &mut [u8] {
        let r = self.datagrams[i].clone();
        &mut self.buf[r]
    }
}

/// Appends the datagrams of one received message of `len` bytes at `start`
/// in the buffer, cut every `segment` bytes (the last may be shorter).
/// `segment` 0 means the message is one datagram.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn split_message(start: usize, len: usize, segment: usize, out: &mut Vec<Range<usize>>) {
    if segment == 0 || segment >= len {
        out.push(start..start + len);
        return;
    }
    let mut o = 0;
    while o < len {
        let n = segment.min(len - o);
        out.push(start + o..start + o + n);
        o += n;
    }
}

#[cfg(target_os = "linux")]
#[path = "offload_linux.rs"]
mod sys;

/// Other systems: no offloads; the plain paths do all the work.
#[cfg(not(target_os = "linux"))]
mod sys {
    use super::*;

    pub fn gso_supported(_: &UdpSocket) -> bool {
        false
    }
    pub fn enable_gro(_: &UdpSocket) -> bool {
        false
    }
    pub fn gso_refused(_: &io::Error) -> bool {
        false
    }
    pub fn send_gso(s: &UdpSocket, d: SocketAddr, g: &[&[u8]]) -> io::Result<usize> {
        send_batch(s, d, g)
    }
    pub fn recv_gro(
        _: &UdpSocket,
        _: &mut [u8],
        _: usize,
        _: &mut Vec<Range<usize>>,
    ) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[cfg(test)]
#[path = "offload_tests.rs"]
mod tests;
