//! AF_PACKET sockets with virtio-net headers (`PACKET_VNET_HDR`): the
//! host port that keeps the host's TSO/GSO packets whole. A packet is read
//! with a 10-byte `virtio_net_hdr` in front (segment size, checksum start
//! and offset) and written to a member the same way, so a 64 KiB TCP packet
//! crosses the bond as one, and the member's NIC (or the kernel, for a
//! member without the offload) segments it and finishes its checksums.
//!
//! Packets are read from a ring (`packet_ring.rs`) and written in batches:
//! `sendmmsg` writes a list of [`TxItem`]s that point into the ring.

use super::cvt;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The virtio-net header in front of every packet (`struct virtio_net_hdr`).
pub const VNET_HDR_LEN: usize = 10;

const SOL_PACKET: libc::c_int = 263;
const PACKET_VNET_HDR: libc::c_int = 15;
/// Send buffer of a member's writer: several batches of 64 KiB packets.
const SNDBUF: libc::c_int = 16 << 20;

/// One packet to write: the frame of packet `buf` of the ring, with
/// `hdr` as its virtio-net header and `tag` (when set) inserted after the
/// MAC addresses.
#[derive(Debug, Clone, Copy)]
pub struct TxItem {
    pub buf: usize,
    pub hdr: [u8; VNET_HDR_LEN],
    pub tag: Option<[u8; 4]>,
}

/// An AF_PACKET socket bound to one interface, with virtio-net headers.
pub struct PacketSocket {
    fd: OwnedFd,
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<[libc::iovec; 4]>,
}

// SAFETY: `msgs` and `iovs` are scratch space whose pointers are written
// afresh before every call and not used after it; the socket is a plain
// descriptor.
unsafe impl Send for PacketSocket {}

fn setsockopt(fd: RawFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: `v` is a live c_int of the size passed.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Point message `m` at `len` iovecs from `iov`, with no address, control
/// data or flags.
pub(super) fn point(m: &mut libc::mmsghdr, iov: *mut libc::iovec, len: usize) {
    let h = &mut m.msg_hdr;
    h.msg_name = std::ptr::null_mut();
    h.msg_namelen = 0;
    h.msg_iov = iov;
    h.msg_iovlen = len;
    h.msg_control = std::ptr::null_mut();
    h.msg_controllen = 0;
    h.msg_flags = 0;
    m.msg_len = 0;
}

/// Bind AF_PACKET socket `fd` to interface `ifindex`, for `protocol`
/// (network order is done here; 0: receive nothing).
pub(super) fn bind(fd: RawFd, ifindex: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are
    // set below.
    let mut sa: libc::sockaddr_ll = unsafe { zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = protocol.to_be();
    sa.sll_ifindex = ifindex as i32;
    // SAFETY: `sa` is a valid sockaddr_ll of the size passed.
    cvt(unsafe {
        libc::bind(
            fd,
            (&sa as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(drop)
    .map_err(|e| annotate(e, &format!("bind AF_PACKET to ifindex {ifindex}")))
}

/// A socket's receive buffer: `SO_RCVBUFFORCE` (root), else `SO_RCVBUF`.
pub(super) fn set_rcvbuf(fd: RawFd, bytes: libc::c_int) -> io::Result<()> {
    if setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes).is_err() {
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes)
            .map_err(|e| annotate(e, "SO_RCVBUF"))?;
    }
    Ok(())
}

/// `e` with what was being done in front of its message.
pub(super) fn annotate(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl PacketSocket {
    /// A socket that only writes to `ifindex` (it receives nothing). It
    /// goes through the qdisc: `PACKET_QDISC_BYPASS` transmits with
    /// `__dev_direct_xmit`, which drops a GSO packet the device cannot
    /// take whole instead of segmenting it (a member without TSO).
    pub fn sender(ifindex: u32, batch: usize) -> io::Result<Self> {
        let s = Self::open(ifindex, 0, batch)?;
        // A batch of 64 KiB packets is charged to the socket until the
        // member's path has freed it (segmented, for a member without
        // TSO); the default send buffer refuses most of a batch.
        if setsockopt(s.fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, SNDBUF).is_err() {
            setsockopt(s.fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, SNDBUF)
                .map_err(|e| annotate(e, "SO_SNDBUF"))?;
        }
        Ok(s)
    }

    fn open(ifindex: u32, protocol: u16, batch: usize) -> io::Result<Self> {
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let raw = cvt(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(protocol.to_be()),
            )
        })
        .map_err(|e| annotate(e, "AF_PACKET socket"))?;
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        setsockopt(raw, SOL_PACKET, PACKET_VNET_HDR, 1)
            .map_err(|e| annotate(e, "PACKET_VNET_HDR"))?;
        bind(raw, ifindex, protocol)?;
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        Ok(PacketSocket {
            fd,
            // SAFETY: an all-zero mmsghdr is a valid (empty) message.
            msgs: (0..batch).map(|_| unsafe { zeroed() }).collect(),
            iovs: vec![[empty; 4]; batch],
        })
    }

    /// `sendmmsg` of the first `n` messages, without blocking: how many the
    /// kernel took (0 when the device or the send buffer is full).
    fn sendmmsg(&mut self, n: usize) -> io::Result<usize> {
        // SAFETY: the callers pointed `msgs[..n]` at iovecs of this socket,
        // which point at buffers borrowed for the caller's call; the kernel
        // only reads them, during this call.
        let r = unsafe {
            libc::sendmmsg(
                self.fd(),
                self.msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        match cvt(r) {
            Ok(sent) => Ok(sent as usize),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOBUFS)) => Ok(0),
            Err(e) => Err(e),
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Write `n` packets, packet `i` being `pkt(i)`, each already
    /// `[virtio_net_hdr][frame]` in one buffer, without blocking. Returns
    /// how many the kernel took, from the front (as [`PacketSocket::send`]).
    pub fn send_whole<'a>(
        &mut self,
        n: usize,
        pkt: impl Fn(usize) -> &'a [u8],
    ) -> io::Result<usize> {
        let n = n.min(self.msgs.len());
        if n == 0 {
            return Ok(0);
        }
        for i in 0..n {
            let p = pkt(i);
            self.iovs[i][0] = libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            };
            point(&mut self.msgs[i], self.iovs[i].as_mut_ptr(), 1);
        }
        self.sendmmsg(n)
    }

    /// Write `items` (packet `it.buf` being `pkt(it.buf)`, its virtio-net
    /// header first) without blocking. Returns how many the kernel took,
    /// from the front; the rest were refused because the device queue was
    /// full (`Ok` short), or the error of the first.
    pub fn send<'a>(
        &mut self,
        pkt: impl Fn(usize) -> &'a [u8],
        items: &[TxItem],
    ) -> io::Result<usize> {
        let n = items.len().min(self.msgs.len());
        if n == 0 {
            return Ok(0);
        }
        for (i, it) in items[..n].iter().enumerate() {
            let p = pkt(it.buf);
            let frame = &p[VNET_HDR_LEN.min(p.len())..];
            // Untagged, the header and frame are one buffer: fewer iovecs
            // for the kernel to import.
            if it.tag.is_none() && it.hdr[..] == p[..VNET_HDR_LEN.min(p.len())] {
                self.iovs[i][0] = libc::iovec {
                    iov_base: p.as_ptr() as *mut libc::c_void,
                    iov_len: p.len(),
                };
                point(&mut self.msgs[i], self.iovs[i].as_mut_ptr(), 1);
                continue;
            }
            let split = frame.len().min(12);
            let tag_len = if it.tag.is_some() { 4 } else { 0 };
            self.iovs[i] = [
                libc::iovec {
                    iov_base: it.hdr.as_ptr() as *mut libc::c_void,
                    iov_len: VNET_HDR_LEN,
                },
                libc::iovec {
                    iov_base: frame.as_ptr() as *mut libc::c_void,
                    iov_len: split,
                },
                libc::iovec {
                    iov_base: it.tag.as_ref().map_or(std::ptr::null(), |t| t.as_ptr())
                        as *mut libc::c_void,
                    iov_len: tag_len,
                },
                libc::iovec {
                    // SAFETY: `split <= frame.len()`.
                    iov_base: unsafe { frame.as_ptr().add(split) } as *mut libc::c_void,
                    iov_len: frame.len() - split,
                },
            ];
            point(&mut self.msgs[i], self.iovs[i].as_mut_ptr(), 4);
        }
        self.sendmmsg(n)
    }
}
