//! XDP tools for benchmarks and tests, on the same AF_XDP layer the engine
//! uses: a program with one fixed verdict on a set of interfaces (a sink, or
//! a stand-in for another tool's program), the live-frames generator, a
//! socket generator that can be paced, and the bare two-port forwarder that
//! is the ceiling the engine is measured against.

use crate::sys::bpf::{XdpLink, XdpProgram, XskMap};
use crate::sys::xsk::{XskConfig, XskSocket};
use crate::{Frame, FrameArea, FramePool};
use std::io;

pub use crate::sys::bpf::{AttachMode, XdpAction};

/// One program returning `action`, attached through BPF links to every
/// interface given; detached when dropped.
pub struct FixedVerdict {
    // Links before the program: detach first.
    links: Vec<XdpLink>,
    _prog: XdpProgram,
}

impl FixedVerdict {
    pub fn attach(action: XdpAction, ifindexes: &[u32], mode: AttachMode) -> io::Result<Self> {
        let prog = XdpProgram::constant(action)?;
        let links = ifindexes
            .iter()
            .map(|&i| XdpLink::attach(&prog, i, mode))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(FixedVerdict { links, _prog: prog })
    }
}

impl std::fmt::Debug for FixedVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FixedVerdict({} links)", self.links.len())
    }
}

/// The kernel's live-frames generator: an `XDP_TX` program run by
/// `BPF_PROG_TEST_RUN`, which puts frames on an interface's TX path far
/// faster than any socket.
pub struct LiveFrames(XdpProgram);

impl std::fmt::Debug for LiveFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveFrames")
    }
}

impl LiveFrames {
    pub fn new() -> io::Result<Self> {
        XdpProgram::constant(XdpAction::Tx).map(LiveFrames)
    }

    /// Send `frame` `repeat` times into `ifindex`, `batch` at a time.
    pub fn send(&self, ifindex: u32, frame: &[u8], repeat: u32, batch: u32) -> io::Result<()> {
        self.0.run_live_frames(ifindex, frame, repeat, batch)
    }
}

/// A generator on an AF_XDP socket (copy-mode TX): slower than
/// [`LiveFrames`] but sent in batches of at most [`BATCH`](Self::BATCH), so
/// it can be paced as finely as its caller sleeps.
pub struct SocketFrames {
    // The socket before the pool.
    socket: XskSocket,
    pool: FramePool,
    frame: Vec<u8>,
    queued: Vec<Frame>,
}

impl SocketFrames {
    /// Frames per [`send`](Self::send) call.
    pub const BATCH: u32 = 64;

    /// A generator of `frame` on queue 0 of `ifindex`.
    pub fn new(ifindex: u32, frame: &[u8]) -> io::Result<Self> {
        let pool = FramePool::new(FrameArea::mmap(4096, 4096)?);
        let socket = XskSocket::new(&pool, None, ifindex, 0, &XskConfig::default())?;
        Ok(SocketFrames {
            socket,
            pool,
            frame: frame.to_vec(),
            queued: Vec::with_capacity(Self::BATCH as usize),
        })
    }

    /// Put up to [`BATCH`](Self::BATCH) copies of the frame on the TX ring
    /// and make the kernel send them; returns how many were queued (fewer
    /// while the ring and completions are full).
    pub fn send(&mut self) -> io::Result<u32> {
        self.socket.complete(&mut self.pool);
        while self.queued.len() < Self::BATCH as usize {
            match self.pool.alloc_with(&self.frame) {
                Some(f) => self.queued.push(f),
                None => break,
            }
        }
        let (sent, _) = self.socket.send(&mut self.queued);
        self.socket.kick_tx()?;
        Ok(sent)
    }
}

impl std::fmt::Debug for SocketFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SocketFrames({})", self.socket.ifindex())
    }
}

/// Everything from interface `from` out of interface `to`, with nothing but
/// ring operations on one shared UMEM: the ceiling of any AF_XDP forwarder
/// on these links. Its fill strategy is the one that holds under overload:
/// the whole fill ring handed to the kernel and topped up every round, and
/// frames enough for a full fill ring and a full TX ring, so a burst lands
/// in up to `ring` frames and what the TX side cannot take is dropped by
/// the kernel at RX (counted there), not after it was read.
pub struct RawForwarder {
    // Links before programs and maps, sockets before the pool.
    _links: [XdpLink; 2],
    _progs: [XdpProgram; 2],
    _maps: [XskMap; 2],
    rx: XskSocket,
    tx: XskSocket,
    pool: FramePool,
    buf: Vec<Frame>,
    ring: u32,
}

impl RawForwarder {
    /// `ring`: entries of each ring (a power of two), and the fill level.
    pub fn new(from: u32, to: u32, mode: AttachMode, ring: u32) -> io::Result<Self> {
        let cfg = XskConfig {
            ring_size: ring,
            ..XskConfig::default()
        };
        let mut pool = FramePool::new(FrameArea::mmap(3 * ring, 4096)?);
        let mut rx = XskSocket::new(&pool, None, from, 0, &cfg)?;
        let tx = XskSocket::new(&pool, Some(rx.borrow_fd()), to, 0, &cfg)?;
        let maps = [XskMap::new(1)?, XskMap::new(1)?];
        maps[0].set(0, rx.fd())?;
        maps[1].set(0, tx.fd())?;
        let progs = [
            XdpProgram::redirect_to(&maps[0], XdpAction::Drop)?,
            XdpProgram::redirect_to(&maps[1], XdpAction::Drop)?,
        ];
        rx.refill(&mut pool, ring, 0);
        let links = [
            XdpLink::attach(&progs[0], from, mode)?,
            XdpLink::attach(&progs[1], to, mode)?,
        ];
        Ok(RawForwarder {
            _links: links,
            _progs: progs,
            _maps: maps,
            rx,
            tx,
            pool,
            buf: Vec::with_capacity(64),
            ring,
        })
    }

    /// One round: receive a batch, send it, reclaim and refill. Returns the
    /// frames put on the TX ring.
    pub fn round(&mut self) -> io::Result<u32> {
        // Only what the TX ring can take; the rest waits in the RX ring.
        let room = self.tx.tx_room(64);
        self.rx.recv(&mut self.pool, &mut self.buf, room);
        let (sent, _) = self.tx.send(&mut self.buf);
        for f in self.buf.drain(..) {
            self.pool.free(f);
        }
        self.tx.kick_tx()?;
        self.tx.complete(&mut self.pool);
        self.rx.refill(&mut self.pool, self.ring, 0);
        Ok(sent)
    }
}

impl std::fmt::Debug for RawForwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RawForwarder({} -> {})",
            self.rx.ifindex(),
            self.tx.ifindex()
        )
    }
}
