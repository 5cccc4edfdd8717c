//! AF_XDP sockets: one per (interface, queue), all of a worker's sockets on one
//! UMEM (`XDP_SHARED_UMEM`), each with its own fill and completion rings.

use super::abi::*;
use super::area::{Frame, FramePool};
use super::cvt;
use super::ring::{ConsumerRing, ProducerRing, RingLayout};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

/// How the socket binds: let the kernel pick, or force copy / zero-copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BindMode {
    #[default]
    Auto,
    Copy,
    ZeroCopy,
}

/// Socket settings, shared by every socket of a bond.
#[derive(Clone, Debug)]
pub struct XskConfig {
    /// Entries in each of the four rings (power of two).
    pub ring_size: u32,
    pub bind: BindMode,
    /// `SO_BUSY_POLL` microseconds; with it `SO_PREFER_BUSY_POLL` is set.
    pub busy_poll_usecs: Option<u32>,
    /// `SO_BUSY_POLL_BUDGET`.
    pub busy_poll_budget: Option<u32>,
    /// `XDP_MAX_TX_SKB_BUDGET` (kernel 6.17+): frames per copy-mode TX syscall.
    pub tx_skb_budget: Option<u32>,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            ring_size: 2048,
            bind: BindMode::Auto,
            busy_poll_usecs: None,
            busy_poll_budget: None,
            tx_skb_budget: None,
        }
    }
}

/// A mapping of one ring into our address space.
struct RingMap {
    ptr: *mut libc::c_void,
    len: usize,
}

impl RingMap {
    fn new(fd: RawFd, len: usize, pgoff: libc::off_t) -> io::Result<Self> {
        // SAFETY: a shared mapping of the socket's ring; the kernel validates
        // the offset and length; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RingMap { ptr, len })
    }

    /// # Safety
    /// `off` must be the kernel's offsets for this mapping and `size` the ring
    /// size it was created with; the layout is valid while `self` lives.
    unsafe fn layout<T>(&self, off: &XdpRingOffset, size: u32) -> RingLayout<T> {
        let base = self.ptr.cast::<u8>();
        // SAFETY: the kernel's offsets lie inside the mapping (caller contract).
        unsafe {
            RingLayout {
                producer: base.add(off.producer as usize).cast::<AtomicU32>(),
                consumer: base.add(off.consumer as usize).cast::<AtomicU32>(),
                flags: base.add(off.flags as usize).cast::<AtomicU32>(),
                slots: base.add(off.desc as usize).cast::<T>(),
                size,
            }
        }
    }
}

impl Drop for RingMap {
    fn drop(&mut self) {
        // SAFETY: exactly the range mapped in `new`; the rings pointing into it
        // are dropped before this (field order in `XskSocket`).
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// One AF_XDP socket bound to (ifindex, queue).
pub struct XskSocket {
    // Rings first: they point into the maps below and must go before them.
    rx: ConsumerRing<XdpDesc>,
    tx: ProducerRing<XdpDesc>,
    fill: ProducerRing<u64>,
    comp: ConsumerRing<u64>,
    _maps: [RingMap; 4],
    fd: OwnedFd,
    ifindex: u32,
    /// Frames the kernel holds in our fill ring (given minus received).
    in_fill: u32,
    /// Frames in the TX ring not yet completed.
    in_tx: u32,
    ring_size: u32,
    info: SocketInfo,
}

/// What a socket got from the kernel, for `xbond stats` and status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SocketInfo {
    /// Zero-copy bind (else copy mode).
    pub zero_copy: bool,
    /// `XDP_USE_SG`: frames larger than a chunk arrive as chains.
    pub multi_buffer: bool,
    /// TX metadata: the kernel finishes checksums.
    pub tx_metadata: bool,
}

// SAFETY: the rings and maps belong to this socket alone and move with it.
unsafe impl Send for XskSocket {}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` is a live value of the size passed.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

impl XskSocket {
    /// Create a socket on `ifindex`/`queue`. The first socket of a pool
    /// (`umem_owner == None`) registers the pool's area as the UMEM; later ones
    /// share it through the descriptor of a socket that already has it.
    pub fn new(
        pool: &FramePool,
        umem_owner: Option<BorrowedFd<'_>>,
        ifindex: u32,
        queue: u32,
        cfg: &XskConfig,
    ) -> io::Result<Self> {
        let size = cfg.ring_size;
        if !size.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ring_size must be a power of two",
            ));
        }
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let raw = cvt(unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();

        let tx_metadata = match umem_owner {
            None => register_umem(s, pool)?,
            Some(_) => false,
        };
        setsockopt(s, SOL_XDP, XDP_UMEM_FILL_RING, &size)?;
        setsockopt(s, SOL_XDP, XDP_UMEM_COMPLETION_RING, &size)?;
        setsockopt(s, SOL_XDP, XDP_RX_RING, &size)?;
        setsockopt(s, SOL_XDP, XDP_TX_RING, &size)?;
        let (maps, off) = map_rings(s, size)?;
        // SAFETY: each layout comes from the kernel's offsets for its own
        // mapping; the maps live in the same struct and outlive the rings.
        let (rx, tx, fill, comp) = unsafe {
            (
                ConsumerRing::new(maps[0].layout(&off.rx, size)),
                ProducerRing::new(maps[1].layout(&off.tx, size)),
                ProducerRing::new(maps[2].layout(&off.fr, size)),
                ConsumerRing::new(maps[3].layout(&off.cr, size)),
            )
        };
        set_busy_poll(s, cfg)?;
        let bound = bind(s, ifindex, queue, cfg.bind, umem_owner)?;
        let zero_copy = is_zero_copy(s);

        Ok(XskSocket {
            rx,
            tx,
            fill,
            comp,
            _maps: maps,
            fd,
            ifindex,
            in_fill: 0,
            in_tx: 0,
            ring_size: size,
            info: SocketInfo {
                zero_copy,
                multi_buffer: umem_owner.is_none() && bound & XDP_USE_SG != 0,
                tx_metadata,
            },
        })
    }

    /// What the bind got. A socket sharing a UMEM reports the owner's
    /// multi-buffer and metadata settings through [`XskSocket::inherit`].
    pub fn info(&self) -> SocketInfo {
        self.info
    }

    /// Take the UMEM-wide settings (multi-buffer, TX metadata) of the
    /// socket that registered the UMEM.
    pub fn inherit(&mut self, owner: SocketInfo) {
        self.info.multi_buffer = owner.multi_buffer;
        self.info.tx_metadata = owner.tx_metadata;
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The socket, for sharing its UMEM with a socket made later.
    pub fn borrow_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A duplicate of the descriptor, for reading statistics from another thread.
    pub fn stats_handle(&self) -> io::Result<StatsHandle> {
        Ok(StatsHandle(self.fd.try_clone()?))
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Received buffers, at most `max` (more when the last one's chain
    /// goes on: a chain is never split between calls), appended to `out`.
    /// A descriptor that does not describe a buffer inside the area is
    /// dropped with the rest of its chain; dropped buffers are counted in the
    /// return's second value.
    pub fn recv(&mut self, pool: &mut FramePool, out: &mut Vec<Frame>, max: u32) -> (u32, u32) {
        let ready = self.rx.available(self.ring_size);
        let mut n = ready.min(max);
        while n > 0 && n < ready && self.rx.get(n - 1).options & XDP_PKT_CONTD != 0 {
            n += 1;
        }
        let mut bad = 0;
        let mut chain_start = out.len();
        let mut broken = false;
        for i in 0..n {
            let d = self.rx.get(i);
            let more = d.options & XDP_PKT_CONTD != 0;
            match pool.token(d.addr, d.len) {
                Some(mut f) if !broken => {
                    f.set_more(more);
                    out.push(f)
                }
                Some(f) => {
                    bad += 1;
                    pool.free(f);
                }
                None => {
                    bad += 1;
                    if d.addr < pool.area().len() as u64 {
                        pool.recycle(d.addr);
                    }
                    // The chain's buffers taken so far go too.
                    for f in out.drain(chain_start..) {
                        bad += 1;
                        pool.free(f);
                    }
                    broken = more;
                }
            }
            if !more {
                broken = false;
                chain_start = out.len();
            }
        }
        // A chain the kernel has not finished publishing (it never does
        // that) is not handed on half.
        if out.last().is_some_and(Frame::more) {
            for f in out.drain(chain_start..) {
                bad += 1;
                pool.free(f);
            }
        }
        self.rx.release(n);
        self.in_fill = self.in_fill.saturating_sub(n);
        (n, bad)
    }

    /// Queue frames from the front of `frames` for transmission, whole
    /// chains only; returns how many packets and bytes were queued (their
    /// buffers are removed from `frames`).
    pub fn send(&mut self, frames: &mut Vec<Frame>) -> (u32, u64) {
        if frames.is_empty() {
            return (0, 0);
        }
        let mut r = self.tx.reserve(frames.len() as u32);
        let mut n = r.len() as usize;
        // Never a part of a chain: the kernel would send it as a frame.
        while n > 0 && frames[n - 1].more() {
            n -= 1;
        }
        let mut bytes = 0;
        let mut packets = 0;
        for f in frames.drain(..n) {
            bytes += u64::from(f.len());
            packets += u32::from(!f.more());
            r.push(FramePool::into_desc(f));
        }
        self.in_tx += r.commit();
        (packets, bytes)
    }

    /// Tell the kernel to process the TX ring, when it asks to be told.
    /// Copy-mode TX runs inside this syscall (AFXDP.md, gotcha 12).
    pub fn kick_tx(&self) -> io::Result<()> {
        if self.in_tx == 0 || !self.tx.needs_wakeup() {
            return Ok(());
        }
        // SAFETY: a zero-length sendto on our own socket.
        let r = unsafe {
            libc::sendto(
                self.fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            // Transient: ring busy, no skb memory, or the link is down (the
            // frames complete as dropped when it is).
            match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN | libc::ENXIO) => {
                    return Ok(())
                }
                _ => return Err(e),
            }
        }
        Ok(())
    }

    /// Free TX ring slots, up to `want` (the consumer index is read again
    /// only when fewer are known).
    pub fn tx_room(&mut self, want: u32) -> u32 {
        self.tx.free(want).min(want)
    }

    /// Frames waiting in this socket's rings: received and not yet read, or
    /// queued for TX and not yet taken by the kernel.
    pub fn waiting(&mut self) -> (u32, u32) {
        (self.rx.available(self.ring_size), self.tx.unconsumed())
    }

    /// Move completed TX frames back to the pool; returns how many.
    pub fn complete(&mut self, pool: &mut FramePool) -> u32 {
        let n = self.comp.available(self.ring_size);
        for i in 0..n {
            pool.recycle(self.comp.get(i));
        }
        self.comp.release(n);
        self.in_tx = self.in_tx.saturating_sub(n);
        n
    }

    /// Top the fill ring up to `target` frames from the pool, leaving at
    /// least `keep` frames free in it; returns how many were added.
    pub fn refill(&mut self, pool: &mut FramePool, target: u32, keep: u32) -> u32 {
        let want = target
            .saturating_sub(self.in_fill)
            .min((pool.free_count() as u32).saturating_sub(keep));
        if want == 0 {
            return 0;
        }
        let mut r = self.fill.reserve(want);
        for _ in 0..r.len() {
            match pool.take_chunk() {
                Some(addr) => {
                    r.push(addr);
                }
                None => break,
            }
        }
        let n = r.commit();
        self.in_fill += n;
        n
    }

    /// Give back to the pool every frame this socket still holds: received
    /// and unread, completed, and fill-ring entries the kernel has not taken.
    /// Call after no XDP program redirects to the socket any more and TX has
    /// been kicked, just before dropping it; returns the frames recovered.
    pub fn reclaim(&mut self, pool: &mut FramePool) -> u32 {
        let mut n = 0;
        loop {
            let got = self.rx.available(self.ring_size);
            if got == 0 {
                break;
            }
            for i in 0..got {
                let addr = self.rx.get(i).addr;
                if addr < pool.area().len() as u64 {
                    pool.recycle(addr);
                    n += 1;
                }
            }
            self.rx.release(got);
        }
        n += self.complete(pool);
        n += self.fill.take_back(|addr| pool.recycle(addr));
        self.in_fill = 0;
        n
    }
}

/// A duplicate descriptor of a socket, for `XDP_STATISTICS` from any thread.
#[derive(Debug)]
pub struct StatsHandle(OwnedFd);

impl StatsHandle {
    pub fn read(&self) -> io::Result<XdpStatistics> {
        let mut st = XdpStatistics::default();
        let mut len = size_of::<XdpStatistics>() as libc::socklen_t;
        // SAFETY: `st` is a writable buffer of `len` bytes.
        cvt(unsafe {
            libc::getsockopt(
                self.0.as_raw_fd(),
                SOL_XDP,
                XDP_STATISTICS,
                (&mut st as *mut XdpStatistics).cast(),
                &mut len,
            )
        })?;
        Ok(st)
    }
}

/// Register the pool's area as the socket's UMEM, with TX metadata
/// (checksum requests) where the kernel has it; a kernel without it
/// refuses the flag with EINVAL. Returns whether metadata is on.
fn register_umem(s: RawFd, pool: &FramePool) -> io::Result<bool> {
    let area = pool.area();
    let mut reg = XdpUmemReg {
        addr: area.as_ptr() as u64,
        len: area.len() as u64,
        chunk_size: area.frame_size(),
        headroom: 0,
        flags: XDP_UMEM_TX_METADATA_LEN,
        tx_metadata_len: TX_METADATA_LEN,
    };
    match setsockopt(s, SOL_XDP, XDP_UMEM_REG, &reg) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            reg.flags = 0;
            reg.tx_metadata_len = 0;
            setsockopt(s, SOL_XDP, XDP_UMEM_REG, &reg).map_err(|e| annotate(e, "XDP_UMEM_REG"))?;
            Ok(false)
        }
        Err(e) => Err(annotate(e, "XDP_UMEM_REG")),
    }
}

/// Map the four rings (RX, TX, fill, completion, in that order) at the
/// offsets the kernel reports.
fn map_rings(s: RawFd, size: u32) -> io::Result<([RingMap; 4], XdpMmapOffsets)> {
    let mut off = XdpMmapOffsets::default();
    let mut optlen = size_of::<XdpMmapOffsets>() as libc::socklen_t;
    // SAFETY: `off` is a writable buffer of `optlen` bytes.
    cvt(unsafe {
        libc::getsockopt(
            s,
            SOL_XDP,
            XDP_MMAP_OFFSETS,
            (&mut off as *mut XdpMmapOffsets).cast(),
            &mut optlen,
        )
    })?;
    let n = size as usize;
    let desc = size_of::<XdpDesc>();
    let maps = [
        RingMap::new(s, off.rx.desc as usize + n * desc, XDP_PGOFF_RX_RING)?,
        RingMap::new(s, off.tx.desc as usize + n * desc, XDP_PGOFF_TX_RING)?,
        RingMap::new(s, off.fr.desc as usize + n * 8, XDP_UMEM_PGOFF_FILL_RING)?,
        RingMap::new(
            s,
            off.cr.desc as usize + n * 8,
            XDP_UMEM_PGOFF_COMPLETION_RING,
        )?,
    ];
    Ok((maps, off))
}

/// The busy-poll and TX budget socket options the config asks for.
fn set_busy_poll(s: RawFd, cfg: &XskConfig) -> io::Result<()> {
    if let Some(usecs) = cfg.busy_poll_usecs {
        let one: libc::c_int = 1;
        setsockopt(s, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, &one)
            .map_err(|e| annotate(e, "SO_PREFER_BUSY_POLL"))?;
        setsockopt(s, libc::SOL_SOCKET, SO_BUSY_POLL, &(usecs as libc::c_int))
            .map_err(|e| annotate(e, "SO_BUSY_POLL"))?;
    }
    if let Some(budget) = cfg.busy_poll_budget {
        setsockopt(
            s,
            libc::SOL_SOCKET,
            SO_BUSY_POLL_BUDGET,
            &(budget as libc::c_int),
        )
        .map_err(|e| annotate(e, "SO_BUSY_POLL_BUDGET"))?;
    }
    if let Some(budget) = cfg.tx_skb_budget {
        setsockopt(s, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &(budget as libc::c_int))
            .map_err(|e| annotate(e, "XDP_MAX_TX_SKB_BUDGET (needs kernel 6.17+)"))?;
    }
    Ok(())
}

/// Bind to `ifindex`/`queue`; returns the flags the bind took.
fn bind(
    s: RawFd,
    ifindex: u32,
    queue: u32,
    mode: BindMode,
    umem_owner: Option<BorrowedFd<'_>>,
) -> io::Result<u16> {
    let mut flags = XDP_USE_NEED_WAKEUP | XDP_USE_SG;
    flags |= match mode {
        BindMode::Auto => 0,
        BindMode::Copy => XDP_COPY,
        BindMode::ZeroCopy => XDP_ZEROCOPY,
    };
    let mut shared_fd = 0;
    if let Some(owner) = umem_owner {
        // A socket sharing a UMEM inherits the owner's bind mode and
        // need_wakeup; the kernel refuses any other flag with EINVAL.
        flags = XDP_SHARED_UMEM;
        shared_fd = owner.as_raw_fd() as u32;
    }
    let mut sa = SockaddrXdp {
        sxdp_family: AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: shared_fd,
    };
    // A socket closed on the same queue a moment ago keeps it busy for a
    // few milliseconds (AFXDP.md, gotcha 10): retry EBUSY briefly.
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        // SAFETY: `sa` is a valid sockaddr_xdp of the size passed.
        let r = unsafe {
            libc::bind(
                s,
                (&sa as *const SockaddrXdp).cast(),
                size_of::<SockaddrXdp>() as libc::socklen_t,
            )
        };
        match cvt(r) {
            Ok(_) => return Ok(sa.sxdp_flags),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            // A driver (or kernel) without multi-buffer AF_XDP: bind
            // without it; frames then fit one chunk.
            Err(e)
                if sa.sxdp_flags & XDP_USE_SG != 0
                    && matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)) =>
            {
                sa.sxdp_flags &= !XDP_USE_SG;
            }
            Err(e) => {
                return Err(annotate(
                    e,
                    &format!("bind to ifindex {ifindex} queue {queue}"),
                ))
            }
        }
    }
}

/// Whether the bound socket got zero-copy (`XDP_OPTIONS`).
fn is_zero_copy(s: RawFd) -> bool {
    let mut opts: u32 = 0;
    let mut optlen = size_of::<u32>() as libc::socklen_t;
    // SAFETY: `opts` is a writable u32 of `optlen` bytes.
    cvt(unsafe {
        libc::getsockopt(
            s,
            SOL_XDP,
            XDP_OPTIONS,
            (&mut opts as *mut u32).cast(),
            &mut optlen,
        )
    })
    .is_ok()
        && opts & XDP_OPTIONS_ZEROCOPY != 0
}

fn annotate(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
