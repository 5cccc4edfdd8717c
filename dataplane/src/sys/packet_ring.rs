//! The receive side of an AF_PACKET host port: a `TPACKET_V2` ring shared
//! with the kernel (`PACKET_RX_RING`), with virtio-net headers
//! (`PACKET_VNET_HDR`). The kernel writes each packet into the next free
//! frame of the ring and hands it over with `TP_STATUS_USER`; the worker
//! reads packets where they are, writes them to the members from there, and
//! gives the frames back. No system call and no copy per packet on this
//! side, where `recvmmsg` cost a fifth of the worker's time at 64 bytes.
//!
//! Frames are 2 KiB, so the ring is 4096 deep in 8 MiB. A packet that does
//! not fit (a 64 KiB TCP packet) is also queued whole on the socket
//! (`PACKET_COPY_THRESH`); its frame says so (`TP_STATUS_COPY`), and one
//! `recvmmsg` per batch reads those into buffers of their own, in order.
//!
//! Each frame: `tpacket2_hdr`, then (at `tp_mac - 10`) the virtio-net header
//! and the Ethernet frame, so a packet is one `[virtio_net_hdr][frame]`
//! slice, as the writes want it. A tag the kernel kept out of the bytes (a
//! VLAN device's hardware-accelerated tag) comes in the header.

use super::cvt;
use super::packet::{annotate, VNET_HDR_LEN};
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

const SOL_PACKET: libc::c_int = 263;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const TPACKET_V2: libc::c_int = 1;
const ETH_P_ALL: u16 = 0x0003;

const PACKET_COPY_THRESH: libc::c_int = 7;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_COPY: u32 = 1 << 1;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// One frame: the header and offsets, and an MTU-sized frame with its tag.
pub const FRAME_LEN: usize = 2048;
/// A block is a 128 KiB allocation of 64 frames.
const BLOCK_LEN: usize = 128 << 10;
const BLOCKS: usize = 64;
/// Frames in the ring: as deep as an AF_XDP ring (`ring_size`).
pub const FRAMES: usize = BLOCK_LEN / FRAME_LEN * BLOCKS;
/// A buffer for a packet read whole: a 64 KiB GSO packet, its Ethernet
/// header and tag, the virtio-net header, and slack.
const BIG_LEN: usize = 65536 + 256;
/// Queued whole packets wait within this (the socket's receive buffer).
const RCVBUF: libc::c_int = 32 << 20;

/// `struct tpacket_req`.
#[repr(C)]
struct TpacketReq {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
}

/// The fields of `struct tpacket2_hdr` read here.
mod hdr {
    pub const STATUS: usize = 0;
    pub const LEN: usize = 4;
    pub const SNAPLEN: usize = 8;
    pub const MAC: usize = 12;
    pub const VLAN_TCI: usize = 24;
    pub const VLAN_TPID: usize = 26;
}

/// Packets the kernel handed over, read in place.
pub struct RxRing {
    fd: OwnedFd,
    map: *mut u8,
    /// The next frame to read.
    head: usize,
    /// Frames from `head` taken by the last [`RxRing::take`].
    taken: usize,
    /// Whole packets for the frames that have them (`TP_STATUS_COPY`), one
    /// buffer of `BIG_LEN` per packet of a batch.
    big: Box<[u8]>,
    /// Per packet taken: the buffer of `big` holding it whole, with its
    /// length, or `None` when it is in its frame (or was lost: truncated).
    whole: Vec<Option<(usize, usize)>>,
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
}

// SAFETY: the mapping belongs to this ring alone; the kernel's side of it
// is synchronised through each frame's status word.
unsafe impl Send for RxRing {}

fn setsockopt<T>(fd: RawFd, name: libc::c_int, v: &T, what: &str) -> io::Result<()> {
    // SAFETY: `v` is a live T of the size passed.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            SOL_PACKET,
            name,
            (v as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
    .map_err(|e| annotate(e, what))
}

impl RxRing {
    /// A ring of every frame `ifindex` receives (not those it sends), read
    /// `batch` packets at a time at most.
    pub fn new(ifindex: u32, batch: usize) -> io::Result<Self> {
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let raw = cvt(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(ETH_P_ALL.to_be()),
            )
        })
        .map_err(|e| annotate(e, "AF_PACKET socket"))?;
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        setsockopt(raw, PACKET_VNET_HDR, &1i32, "PACKET_VNET_HDR")?;
        setsockopt(raw, PACKET_VERSION, &TPACKET_V2, "PACKET_VERSION")?;
        setsockopt(raw, PACKET_IGNORE_OUTGOING, &1i32, "PACKET_IGNORE_OUTGOING")?;
        setsockopt(raw, PACKET_COPY_THRESH, &1i32, "PACKET_COPY_THRESH")?;
        super::packet::set_rcvbuf(raw, RCVBUF)?;
        let req = TpacketReq {
            block_size: BLOCK_LEN as u32,
            block_nr: BLOCKS as u32,
            frame_size: FRAME_LEN as u32,
            frame_nr: FRAMES as u32,
        };
        setsockopt(raw, PACKET_RX_RING, &req, "PACKET_RX_RING")?;
        let len = FRAME_LEN * FRAMES;
        // SAFETY: maps the ring the kernel just made for this socket; the
        // mapping is unmapped in `drop`.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                raw,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(annotate(e, "mmap the RX ring"));
        }
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let ring = RxRing {
            fd,
            map: map.cast(),
            head: 0,
            taken: 0,
            big: vec![0u8; batch * BIG_LEN].into_boxed_slice(),
            whole: vec![None; batch],
            // SAFETY: an all-zero mmsghdr is a valid (empty) message.
            msgs: (0..batch).map(|_| unsafe { zeroed() }).collect(),
            iovs: vec![empty; batch],
        };
        super::packet::bind(raw, ifindex, ETH_P_ALL)?;
        Ok(ring)
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn frame(&self, i: usize) -> *mut u8 {
        // SAFETY: the offset of frame `i % FRAMES` lies inside the mapping.
        unsafe { self.map.add(((self.head + i) % FRAMES) * FRAME_LEN) }
    }

    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the status word is the first, 4-aligned field of a frame,
        // written by the kernel and by `release`, and read atomically.
        unsafe { &*(self.frame(i).add(hdr::STATUS) as *const AtomicU32) }
    }

    fn field<T: Copy>(&self, i: usize, at: usize) -> T {
        // SAFETY: `at` is a field of the frame's header, which the kernel
        // wrote before it set `TP_STATUS_USER` (read with Acquire in
        // `take`); unaligned reads are allowed.
        unsafe { (self.frame(i).add(at) as *const T).read_unaligned() }
    }

    /// Take the packets handed over from the head, up to `max`; they stay
    /// ours until [`RxRing::release`]. Returns how many.
    pub fn take(&mut self, max: usize) -> usize {
        let max = max.min(self.whole.len());
        let mut n = 0;
        let mut copies = 0;
        while n < max {
            let status = self.status(n).load(Ordering::Acquire);
            if status & TP_STATUS_USER == 0 {
                break;
            }
            self.whole[n] = None;
            if status & TP_STATUS_COPY != 0 {
                self.whole[n] = Some((copies, 0));
                copies += 1;
            }
            n += 1;
        }
        self.taken = n;
        if copies > 0 {
            let got = self.read_whole(copies);
            for w in self.whole[..n].iter_mut() {
                let Some((j, len)) = w else { continue };
                if *j >= got {
                    // Not there: the packet is lost, its frame cut.
                    *w = None;
                    continue;
                }
                let msg = &self.msgs[*j];
                *len = if msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    0
                } else {
                    msg.msg_len as usize
                };
            }
        }
        n
    }

    /// Read `k` whole packets into the first `k` buffers of `big`; returns
    /// how many were there (their lengths are in `msgs`).
    fn read_whole(&mut self, k: usize) -> usize {
        let base = self.big.as_mut_ptr();
        for j in 0..k {
            self.iovs[j] = libc::iovec {
                // SAFETY: buffer `j < batch` lies inside `big`.
                iov_base: unsafe { base.add(j * BIG_LEN) }.cast(),
                iov_len: BIG_LEN,
            };
            super::packet::point(&mut self.msgs[j], &mut self.iovs[j], 1);
        }
        // SAFETY: `msgs[..k]` point at iovecs of this ring, which point at
        // `k` distinct buffers of `big`; all outlive the call.
        let r = unsafe {
            libc::recvmmsg(
                self.fd(),
                self.msgs.as_mut_ptr(),
                k as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        usize::try_from(r).unwrap_or(0)
    }

    /// Packet `i` of those taken: `[virtio_net_hdr][frame]`.
    pub fn packet(&self, i: usize) -> &[u8] {
        if let Some((j, len)) = self.whole[i] {
            return &self.big[j * BIG_LEN..j * BIG_LEN + len];
        }
        let (at, len) = self.span(i);
        // SAFETY: `span` is inside frame `i`, which is ours until released.
        unsafe { std::slice::from_raw_parts(self.frame(i).add(at), len) }
    }

    pub fn packet_mut(&mut self, i: usize) -> &mut [u8] {
        if let Some((j, len)) = self.whole[i] {
            return &mut self.big[j * BIG_LEN..j * BIG_LEN + len];
        }
        let (at, len) = self.span(i);
        // SAFETY: as `packet`; `&mut self` keeps the slice unique.
        unsafe { std::slice::from_raw_parts_mut(self.frame(i).add(at), len) }
    }

    /// Where packet `i`'s header and frame are in its ring frame.
    fn span(&self, i: usize) -> (usize, usize) {
        let mac = usize::from(self.field::<u16>(i, hdr::MAC));
        let snap = self.field::<u32>(i, hdr::SNAPLEN) as usize;
        let at = mac.saturating_sub(VNET_HDR_LEN);
        let end = (mac + snap).min(FRAME_LEN);
        (at, end.saturating_sub(at))
    }

    /// Packet `i` is not there whole: cut to its frame with no whole copy
    /// (the socket's receive buffer was full), or longer than a buffer.
    pub fn truncated(&self, i: usize) -> bool {
        match self.whole[i] {
            Some((_, len)) => len == 0,
            None => self.field::<u32>(i, hdr::SNAPLEN) < self.field::<u32>(i, hdr::LEN),
        }
    }

    /// The 802.1Q/802.1ad tag of packet `i` that the kernel kept out of
    /// its bytes, as it goes on the wire (TPID, TCI).
    pub fn tag(&self, i: usize) -> Option<[u8; 4]> {
        let status = self.status(i).load(Ordering::Relaxed);
        if status & TP_STATUS_VLAN_VALID == 0 {
            return None;
        }
        let tci: u16 = self.field(i, hdr::VLAN_TCI);
        let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
            self.field::<u16>(i, hdr::VLAN_TPID)
        } else {
            0x8100
        };
        let (p, t) = (tpid.to_be_bytes(), tci.to_be_bytes());
        Some([p[0], p[1], t[0], t[1]])
    }

    /// Give the packets taken back to the kernel.
    pub fn release(&mut self) {
        for i in 0..self.taken {
            self.status(i).store(0, Ordering::Release);
        }
        self.head = (self.head + self.taken) % FRAMES;
        self.taken = 0;
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; nothing
        // borrowed from it outlives `self`.
        unsafe {
            libc::munmap(self.map.cast(), FRAME_LEN * FRAMES);
        }
    }
}
