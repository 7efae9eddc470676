//! The Linux system calls behind [`super`]: `UDP_SEGMENT` and `UDP_GRO`
//! socket options and control messages.
//!
//! All unsafe code of the offloads is here. The invariants, shared by every
//! call: message headers, iovecs and control buffers are locals or borrow
//! caller buffers that outlive the system call; control buffers are
//! [`Cmsg`], aligned for `cmsghdr` and at least `CMSG_SPACE` of the payload
//! long, and the length passed to the kernel never exceeds their size; the
//! kernel only reads send-side buffers and writes at most the lengths we
//! pass on the receive side.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::os::fd::AsRawFd;

use super::{gso_groups, split_message, MAX_SEND};
use crate::net::socket::sockaddr;

/// One control-message buffer: room for a `cmsghdr` and an `int`, aligned
/// like `cmsghdr` (8 bytes on 64-bit, which `u64` gives).
#[derive(Clone, Copy)]
#[repr(C)]
struct Cmsg([u64; 4]);

const CMSG_BYTES: usize = std::mem::size_of::<Cmsg>();

fn int_sockopt(socket: &UdpSocket, name: libc::c_int, value: Option<libc::c_int>) -> bool {
    let fd = socket.as_raw_fd();
    let mut v: libc::c_int = value.unwrap_or(0);
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: fd is a valid socket while `socket` lives; `v` and `len` are
    // valid for reads (set) or writes (get) of one c_int.
    let rc = unsafe {
        match value {
            Some(_) => libc::setsockopt(fd, libc::SOL_UDP, name, (&v as *const i32).cast(), len),
            None => libc::getsockopt(
                fd,
                libc::SOL_UDP,
                name,
                (&mut v as *mut i32).cast(),
                &mut len,
            ),
        }
    };
    rc == 0
}

/// The kernel knows `UDP_SEGMENT` (reading it fails with `ENOPROTOOPT`
/// before 4.18). Reading leaves the socket unchanged.
pub fn gso_supported(socket: &UdpSocket) -> bool {
    int_sockopt(socket, libc::UDP_SEGMENT, None)
}

/// Turns `UDP_GRO` on; false if the kernel does not have it.
pub fn enable_gro(socket: &UdpSocket) -> bool {
    int_sockopt(socket, libc::UDP_GRO, Some(1))
}

/// Errors after which GSO is given up for the socket's lifetime.
pub fn gso_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOPROTOOPT)
    )
}

/// Sends `datagrams` (up to [`MAX_SEND`]) as GSO groups in one `sendmmsg`;
/// returns the number of datagrams sent, 0 if the buffer is full.
pub fn send_gso(socket: &UdpSocket, dest: SocketAddr, datagrams: &[&[u8]]) -> io::Result<usize> {
    let datagrams = &datagrams[..datagrams.len().min(MAX_SEND)];
    if datagrams.is_empty() {
        return Ok(0);
    }
    let groups = gso_groups(datagrams.iter().map(|d| d.len()));
    let (addr, addr_len) = sockaddr(dest);
    // SAFETY: iovec is plain C data (a pointer and a length); all zeroes
    // is a null, empty buffer. Only entries filled below reach the kernel.
    let mut iov: [libc::iovec; MAX_SEND] = unsafe { std::mem::zeroed() };
    // SAFETY: mmsghdr is plain C data (integers and raw pointers); all
    // zeroes is a header with no name, iovecs or control data.
    let mut msgs: [libc::mmsghdr; MAX_SEND] = unsafe { std::mem::zeroed() };
    let mut cmsgs = [Cmsg([0; 4]); MAX_SEND];
    for (i, d) in datagrams.iter().enumerate() {
        iov[i] = libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        };
    }
    let mut first = 0;
    for (m, &count) in groups.iter().enumerate() {
        let hdr = &mut msgs[m].msg_hdr;
        hdr.msg_name = (&addr as *const libc::sockaddr_storage) as *mut libc::c_void;
        hdr.msg_namelen = addr_len;
        hdr.msg_iov = &mut iov[first];
        hdr.msg_iovlen = count as _;
        if count > 1 {
            // The kernel cuts the concatenated iovecs every `segment` bytes;
            // gso_groups made every datagram but the last exactly that long.
            let segment = datagrams[first].len() as u16;
            // SAFETY: CMSG_SPACE(2) is 24 <= CMSG_BYTES; the buffer is
            // aligned for cmsghdr; CMSG_FIRSTHDR is non-null because
            // msg_controllen covers one header; CMSG_DATA points inside it.
            unsafe {
                let space = libc::CMSG_SPACE(2) as usize;
                debug_assert!(space <= CMSG_BYTES);
                hdr.msg_control = cmsgs[m].0.as_mut_ptr().cast();
                hdr.msg_controllen = space as _;
                let c = libc::CMSG_FIRSTHDR(hdr);
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = libc::UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), segment);
            }
        }
        first += count;
    }
    loop {
        // SAFETY: see the module invariants; `groups.len()` messages are
        // filled, each pointing at `addr`, `iov` and `cmsgs` above. There
        // are at most MAX_SEND of them, and each group's iovecs
        // (`first..first + count`) lie within `iov`, because the groups
        // add up to `datagrams.len()` <= MAX_SEND.
        let rc = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                groups.len() as libc::c_uint,
                0,
            )
        };
        if rc >= 0 {
            return Ok(groups[..rc as usize].iter().sum());
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(e),
        }
    }
}

/// One `recvmmsg` into `buf`, cut into slots of `slot` bytes; appends each
/// datagram's range to `out` (nothing on timeout).
pub fn recv_gro(
    socket: &UdpSocket,
    buf: &mut [u8],
    slot: usize,
    out: &mut Vec<Range<usize>>,
) -> io::Result<()> {
    const MAX_SLOTS: usize = 16;
    let n = (buf.len() / slot).min(MAX_SLOTS);
    // SAFETY: iovec is plain C data (a pointer and a length); all zeroes
    // is a null, empty buffer. Only entries filled below reach the kernel.
    let mut iov: [libc::iovec; MAX_SLOTS] = unsafe { std::mem::zeroed() };
    // SAFETY: mmsghdr is plain C data (integers and raw pointers); all
    // zeroes is a header with no name, iovecs or control data.
    let mut msgs: [libc::mmsghdr; MAX_SLOTS] = unsafe { std::mem::zeroed() };
    let mut cmsgs = [Cmsg([0; 4]); MAX_SLOTS];
    for (i, chunk) in buf.chunks_mut(slot).take(n).enumerate() {
        iov[i] = libc::iovec {
            iov_base: chunk.as_mut_ptr().cast(),
            iov_len: chunk.len(),
        };
        let hdr = &mut msgs[i].msg_hdr;
        hdr.msg_iov = &mut iov[i];
        hdr.msg_iovlen = 1;
        hdr.msg_control = cmsgs[i].0.as_mut_ptr().cast();
        hdr.msg_controllen = CMSG_BYTES as _;
    }
    // SAFETY: see the module invariants; iovecs cover disjoint slots of
    // `buf` and control buffers of `cmsgs`, exclusively borrowed for the call.
    let got = unsafe { crate::net::socket::recv_mmsg(socket, &mut msgs[..n])? };
    for (i, m) in msgs[..got].iter().enumerate() {
        let len = (m.msg_len as usize).min(slot);
        // A truncated message cannot be ours (GRO never builds more than
        // 64 KiB); pass it on whole so the receiver counts it malformed.
        let segment = if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            0
        } else {
            gro_segment(&m.msg_hdr)
        };
        split_message(i * slot, len, segment, out);
    }
    Ok(())
}

/// The `UDP_GRO` control message's segment size, 0 if there is none (the
/// message is a single datagram).
fn gro_segment(hdr: &libc::msghdr) -> usize {
    // SAFETY: the kernel set msg_controllen to the bytes it wrote into our
    // Cmsg buffer (at most its size); CMSG_FIRSTHDR/NXTHDR stay within
    // that length and return null at its end; the data of a UDP_GRO
    // message is one int, read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return usize::try_from(size).unwrap_or(0);
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    0
}
