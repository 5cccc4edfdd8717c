//! The one trait every port implements: receive a batch, queue a batch for
//! transmission, reclaim sent frames, keep the kernel supplied with RX frames.
//! The AF_XDP socket is the real implementation; [`MemPort`] is the in-memory
//! one that unit tests drive without root.

use crate::sys::area::{Frame, FramePool};
use crate::sys::xsk::XskSocket;
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

pub trait Port: Send {
    /// Append up to `max` received frames to `out`; returns (received, bad
    /// descriptors dropped).
    fn recv(&mut self, pool: &mut FramePool, out: &mut Vec<Frame>, max: u32) -> (u32, u32);
    /// Queue frames from the front of `frames`, whole chains only; returns
    /// how many packets and bytes were taken.
    fn send(&mut self, pool: &mut FramePool, frames: &mut Vec<Frame>) -> (u32, u64);
    /// Make the kernel transmit what was queued.
    fn flush(&mut self) -> io::Result<()>;
    /// Return transmitted frames to the pool.
    fn complete(&mut self, pool: &mut FramePool) -> u32;
    /// Keep `target` frames available for RX, leaving at least `keep`
    /// frames free in the pool.
    fn refill(&mut self, pool: &mut FramePool, target: u32, keep: u32) -> u32;
    /// A descriptor that becomes readable when frames arrive.
    fn poll_fd(&self) -> Option<RawFd>;
    /// Frames waiting in the port's rings: (received and unread, queued for
    /// TX and not yet taken by the kernel).
    fn waiting(&mut self) -> (u32, u32) {
        (0, 0)
    }
    /// Before the port is dropped: give back every frame it still holds.
    fn close(&mut self, _pool: &mut FramePool) -> u32 {
        0
    }
}

impl Port for XskSocket {
    fn recv(&mut self, pool: &mut FramePool, out: &mut Vec<Frame>, max: u32) -> (u32, u32) {
        XskSocket::recv(self, pool, out, max)
    }

    fn send(&mut self, _pool: &mut FramePool, frames: &mut Vec<Frame>) -> (u32, u64) {
        XskSocket::send(self, frames)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.kick_tx()
    }

    fn complete(&mut self, pool: &mut FramePool) -> u32 {
        XskSocket::complete(self, pool)
    }

    fn refill(&mut self, pool: &mut FramePool, target: u32, keep: u32) -> u32 {
        XskSocket::refill(self, pool, target, keep)
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.fd())
    }

    fn waiting(&mut self) -> (u32, u32) {
        XskSocket::waiting(self)
    }

    fn close(&mut self, pool: &mut FramePool) -> u32 {
        self.reclaim(pool)
    }
}

/// The wire side of a [`MemPort`]: what tests inject and what they read back.
#[derive(Debug, Default)]
pub struct MemWire {
    pub inbound: VecDeque<Vec<u8>>,
    pub outbound: Vec<Vec<u8>>,
}

/// An in-memory port: frames injected into `wire.inbound` are received,
/// frames sent appear in `wire.outbound`. Only for tests of the logic above
/// the ports; never evidence that the AF_XDP path works.
#[derive(Debug, Clone, Default)]
pub struct MemPort {
    pub wire: Arc<Mutex<MemWire>>,
    /// Refuse to send more than this many frames per call (to test backpressure).
    pub tx_limit: Option<u32>,
}

impl MemPort {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn inject(&self, frame: &[u8]) {
        self.wire.lock().unwrap().inbound.push_back(frame.to_vec());
    }

    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.wire.lock().unwrap().outbound)
    }
}

impl Port for MemPort {
    fn recv(&mut self, pool: &mut FramePool, out: &mut Vec<Frame>, max: u32) -> (u32, u32) {
        let mut wire = self.wire.lock().unwrap();
        let mut n = 0;
        // As multi-buffer AF_XDP delivers them: a frame larger than a chunk
        // (less the headroom) is a chain of buffers.
        let piece = (pool.area().frame_size() - crate::sys::area::TX_HEADROOM) as usize;
        while n < max {
            let Some(bytes) = wire.inbound.front() else {
                break;
            };
            let pieces = bytes.len().div_ceil(piece).max(1);
            if pool.free_count() < pieces {
                break;
            }
            let mut chunks = bytes.chunks(piece).peekable();
            if bytes.is_empty() {
                out.extend(pool.alloc_with(&[]));
            }
            while let Some(c) = chunks.next() {
                let Some(mut f) = pool.alloc_with(c) else {
                    break;
                };
                f.set_more(chunks.peek().is_some());
                out.push(f);
                n += 1;
            }
            wire.inbound.pop_front();
        }
        (n, 0)
    }

    fn send(&mut self, pool: &mut FramePool, frames: &mut Vec<Frame>) -> (u32, u64) {
        let mut take = self
            .tx_limit
            .map_or(frames.len(), |l| (l as usize).min(frames.len()));
        while take > 0 && frames[take - 1].more() {
            take -= 1;
        }
        let mut wire = self.wire.lock().unwrap();
        let mut bytes = 0;
        let mut packets = 0;
        let mut packet = Vec::new();
        for f in frames.drain(..take) {
            bytes += u64::from(f.len());
            packet.extend_from_slice(pool.data(&f));
            if !f.more() {
                wire.outbound.push(std::mem::take(&mut packet));
                packets += 1;
            }
            pool.free(f);
        }
        (packets, bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn complete(&mut self, _pool: &mut FramePool) -> u32 {
        0
    }

    fn refill(&mut self, _pool: &mut FramePool, _target: u32, _keep: u32) -> u32 {
        0
    }

    fn poll_fd(&self) -> Option<RawFd> {
        None
    }

    fn waiting(&mut self) -> (u32, u32) {
        (self.wire.lock().unwrap().inbound.len() as u32, 0)
    }
}
