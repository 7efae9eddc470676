//! UDP socket plumbing: port selection, buffer sizes, batched send/receive.
//!
//! Owns the system calls: `setsockopt` for large socket buffers (reporting
//! what the kernel actually granted, since Linux silently caps them at
//! `net.core.{r,w}mem_max`), and `sendmmsg`/`recvmmsg` so one system call
//! moves up to [`BATCH`] datagrams. On other systems the batch functions
//! fall back to one call per datagram. It knows nothing about the protocol.
//!
//! Why our own and not `quinn-udp` (0.6.3): measured on loopback with
//! `bench/transport/socket-compare.sh` (2026-12-07, on 3aba80e, 2 cores;
//! 2000 MB a run, 5 runs interleaved, 1472-byte datagrams), our GSO/GRO
//! path moved 40.2 Gbit/s [24.7..46.7] at 0.280 CPU s/GB against
//! quinn-udp's 38.9 [30.8..51.3] at 0.297; without GSO, our `sendmmsg`
//! batches moved 3.65 Gbit/s at 3.12 CPU s/GB against its one `sendmsg`
//! per datagram, 2.84 at 4.26. With nothing to gain, adopting it would cost
//! a contiguous buffer per GSO group, a non-blocking socket and a
//! readiness wait in our blocking driver threads, and our fallback that
//! resends a batch through `sendmmsg` when the kernel refuses GSO. What it
//! adds (ECN, source and destination addresses, don't-fragment, receive
//! timestamps, ICMP errors, fast paths on other systems) sluice does not
//! use yet; revisit when it wants ECN or a non-Linux fast path.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;

/// Most datagrams per batched system call (matches the pacer's burst).
pub const BATCH: usize = 32;
/// Socket buffer size we ask for: room for ~20 ms at 10 Gbit/s.
pub const SOCKET_BUFFER: usize = 32 << 20;

/// Binds a UDP socket to the first free port of `ports` on `ip`.
pub fn bind_in_range(ip: IpAddr, ports: RangeInclusive<u16>) -> io::Result<UdpSocket> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "empty port range");
    for port in ports {
        match UdpSocket::bind(SocketAddr::new(ip, port)) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// What the kernel granted for the socket buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferSizes {
    pub requested: usize,
    pub send: usize,
    pub recv: usize,
}

impl BufferSizes {
    /// True when the kernel gave less than asked (Linux reports double the
    /// usable size, so "less" means less than the request).
    pub fn capped(&self) -> bool {
        self.send < self.requested || self.recv < self.requested
    }
}

/// Asks for `bytes` of send and receive buffer and reports what was granted.
#[cfg(unix)]
pub fn set_buffers(socket: &UdpSocket, bytes: usize) -> io::Result<BufferSizes> {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let want = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let set = |opt| {
        // SAFETY: fd is a valid socket for the lifetime of `socket`; the
        // option value is a c_int and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&want as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    let get = |opt| -> io::Result<usize> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: as above; `v` and `len` are valid out-pointers.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            Ok(usize::try_from(v).unwrap_or(0))
        } else {
            Err(io::Error::last_os_error())
        }
    };
    set(libc::SO_SNDBUF)?;
    set(libc::SO_RCVBUF)?;
    let sizes = BufferSizes {
        requested: bytes,
        send: get(libc::SO_SNDBUF)?,
        recv: get(libc::SO_RCVBUF)?,
    };
    // Once per process: a tree's windows each open a data phase.
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if sizes.capped() && !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            requested = bytes,
            send = sizes.send,
            recv = sizes.recv,
            "kernel capped UDP socket buffers (raise net.core.rmem_max / wmem_max)"
        );
    }
    Ok(sizes)
}

/// Sends `datagrams` to `dest`; returns how many left (a short count means
/// the socket buffer is full: retry the rest later).
#[cfg(target_os = "linux")]
pub fn send_batch(socket: &UdpSocket, dest: SocketAddr, datagrams: &[&[u8]]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    if datagrams.is_empty() {
        return Ok(0);
    }
    let (addr, addr_len) = sockaddr(dest);
    let n = datagrams.len().min(BATCH);
    // SAFETY: iovec is plain C data (a pointer and a length); all zeroes
    // is a null, empty buffer. Only entries filled below reach the kernel.
    let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: mmsghdr is plain C data (integers and raw pointers); all
    // zeroes is a header with no name, iovecs or control data.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        iov[i] = libc::iovec {
            iov_base: datagrams[i].as_ptr() as *mut libc::c_void,
            iov_len: datagrams[i].len(),
        };
        msgs[i].msg_hdr.msg_name = (&addr as *const libc::sockaddr_storage) as *mut libc::c_void;
        msgs[i].msg_hdr.msg_namelen = addr_len;
        msgs[i].msg_hdr.msg_iov = &mut iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    loop {
        // SAFETY: the first `n` (<= BATCH) headers are filled, each with
        // one iovec; every pointer in them refers to locals (or
        // `datagrams`) that outlive the call, and the kernel only reads them.
        let rc =
            unsafe { libc::sendmmsg(socket.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, 0) };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(e),
        }
    }
}

/// Receives up to `bufs.len()` datagrams (at least one, waiting up to the
/// socket's read timeout); their lengths go to `lens`. Returns the count,
/// 0 on timeout.
#[cfg(target_os = "linux")]
pub fn recv_batch<B: AsMut<[u8]>>(
    socket: &UdpSocket,
    bufs: &mut [B],
    lens: &mut [usize],
) -> io::Result<usize> {
    let n = bufs.len().min(lens.len()).min(BATCH);
    // SAFETY: iovec is plain C data (a pointer and a length); all zeroes
    // is a null, empty buffer. Only entries filled below reach the kernel.
    let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: mmsghdr is plain C data (integers and raw pointers); all
    // zeroes is a header with no name, iovecs or control data.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        let buf = bufs[i].as_mut();
        iov[i] = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        msgs[i].msg_hdr.msg_iov = &mut iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: iovecs point into `bufs`, which outlive the call and are
    // exclusively borrowed.
    let got = unsafe { recv_mmsg(socket, &mut msgs[..n])? };
    for i in 0..got {
        // A truncated datagram (longer than our buffer) cannot be one of
        // ours; report it as received so it is dropped.
        lens[i] = (msgs[i].msg_len as usize).min(iov[i].iov_len);
    }
    Ok(got)
}

/// One `recvmmsg` with `MSG_WAITFORONE` (returns once a datagram arrived
/// and more would block), retried on EINTR; 0 on timeout.
///
/// # Safety
/// Every header's iovecs (and control buffer, if any) must point to
/// writable memory that stays exclusively borrowed for the call.
#[cfg(target_os = "linux")]
pub(crate) unsafe fn recv_mmsg(
    socket: &UdpSocket,
    msgs: &mut [libc::mmsghdr],
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: the caller's promise about the headers.
        let rc = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                msgs.len() as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => return Ok(0),
            _ => return Err(e),
        }
    }
}

#[cfg(target_os = "linux")]
pub(crate) fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; we fill the variant
    // matching the address family and report its size.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Portable fallback: one `send_to` per datagram.
#[cfg(not(target_os = "linux"))]
pub fn send_batch(socket: &UdpSocket, dest: SocketAddr, datagrams: &[&[u8]]) -> io::Result<usize> {
    let mut sent = 0;
    for d in datagrams {
        match socket.send_to(d, dest) {
            Ok(_) => sent += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// Portable fallback: one `recv_from`.
#[cfg(not(target_os = "linux"))]
pub fn recv_batch<B: AsMut<[u8]>>(
    socket: &UdpSocket,
    bufs: &mut [B],
    lens: &mut [usize],
) -> io::Result<usize> {
    match socket.recv_from(bufs[0].as_mut()) {
        Ok((n, _)) => {
            lens[0] = n;
            Ok(1)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    #[test]
    fn batches_round_trip_on_loopback() {
        let a = bind_in_range(Ipv4Addr::LOCALHOST.into(), 0..=0).unwrap();
        let b = bind_in_range(Ipv4Addr::LOCALHOST.into(), 0..=0).unwrap();
        b.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let sizes = set_buffers(&b, 1 << 20).unwrap();
        assert!(sizes.recv > 0);
        let msgs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 100 + i as usize]).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
        assert_eq!(send_batch(&a, b.local_addr().unwrap(), &refs).unwrap(), 5);
        let mut bufs = vec![vec![0u8; 2000]; BATCH];
        let mut lens = vec![0; BATCH];
        let mut got = Vec::new();
        while got.len() < 5 {
            let n = recv_batch(&b, &mut bufs, &mut lens).unwrap();
            assert!(n > 0, "timed out");
            got.extend((0..n).map(|i| bufs[i][..lens[i]].to_vec()));
        }
        assert_eq!(got, msgs);
    }

    #[test]
    fn bind_in_range_skips_taken_ports() {
        let first = bind_in_range(Ipv4Addr::LOCALHOST.into(), 0..=0).unwrap();
        let port = first.local_addr().unwrap().port();
        let next =
            bind_in_range(Ipv4Addr::LOCALHOST.into(), port..=port.saturating_add(20)).unwrap();
        assert_ne!(next.local_addr().unwrap().port(), port);
        assert!(bind_in_range(Ipv4Addr::LOCALHOST.into(), port..=port).is_err());
    }
}
