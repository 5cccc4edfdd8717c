//! The frame memory area (the UMEM) and the pool of frames carved from it.
//!
//! Frames are fixed-size chunks. User space owns a chunk only while it holds a
//! [`Frame`] token for it (or its address sits in the pool's free list); while a
//! chunk's address is in a fill or TX ring the kernel owns it. Tokens are made
//! only here and in the socket code, are not `Clone`, and are checked against the
//! area's bounds when made, so the safe accessors below cannot touch memory the
//! kernel may be writing.

use super::abi::{TX_METADATA_LEN, XDP_PKT_CONTD, XDP_TXMD_FLAGS_CHECKSUM, XDP_TX_METADATA};
use std::io;
use std::ptr::NonNull;

/// Headroom left in front of frames that user space builds, so a VLAN tag can
/// be pushed without moving the payload. Copy-mode RX leaves
/// `XDP_PACKET_HEADROOM` (256) in front of received frames as well.
pub const TX_HEADROOM: u32 = 256;

enum Backing {
    Mmap,
    /// Memory from `Box::into_raw`, given back in `Drop`.
    Heap,
}

/// A contiguous, page-aligned memory area split into `frame_size` chunks.
pub struct FrameArea {
    ptr: NonNull<u8>,
    len: usize,
    frame_size: u32,
    backing: Backing,
}

// SAFETY: the area is plain memory; access to each chunk is serialised by the
// token discipline above, and the area moves between threads only with its pool.
unsafe impl Send for FrameArea {}

impl FrameArea {
    /// Map `frames * frame_size` bytes of anonymous, pre-faulted memory.
    pub fn mmap(frames: u32, frame_size: u32) -> io::Result<Self> {
        check_geometry(frames, frame_size)?;
        let len = frames as usize * frame_size as usize;
        // SAFETY: an anonymous private mapping with no address hint; the result
        // is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(FrameArea {
            ptr,
            len,
            frame_size,
            backing: Backing::Mmap,
        })
    }

    /// Heap memory with the same geometry, for in-memory ports in unit tests.
    pub fn heap(frames: u32, frame_size: u32) -> io::Result<Self> {
        check_geometry(frames, frame_size)?;
        let len = frames as usize * frame_size as usize;
        // Owned through a raw pointer, so moving the area never invalidates
        // the pointers frames are read through.
        let raw = Box::into_raw(vec![0u8; len].into_boxed_slice());
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or_else(|| io::Error::other("empty area"))?;
        Ok(FrameArea {
            ptr,
            len,
            frame_size,
            backing: Backing::Heap,
        })
    }

    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    pub fn frames(&self) -> u32 {
        (self.len / self.frame_size as usize) as u32
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The chunk base of any address inside it.
    pub(crate) fn chunk_of(&self, addr: u64) -> u64 {
        addr & !(u64::from(self.frame_size) - 1)
    }

    /// A token for `len` bytes at `addr`, if they lie inside one chunk.
    pub(crate) fn token(&self, addr: u64, len: u32) -> Option<Frame> {
        let end = addr.checked_add(u64::from(len))?;
        let chunk_end = self.chunk_of(addr) + u64::from(self.frame_size);
        (end <= chunk_end && end <= self.len as u64).then_some(Frame { addr, len, opts: 0 })
    }
}

impl Drop for FrameArea {
    fn drop(&mut self) {
        match self.backing {
            // SAFETY: we mapped exactly this range in `mmap` and nothing
            // borrows from it any more (tokens borrow nothing; the kernel keeps
            // its own page references for as long as a socket uses them).
            Backing::Mmap => unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), self.len);
            },
            // SAFETY: `ptr`/`len` came from `Box::into_raw` of a boxed slice of
            // exactly this length in `heap`, and are given back once.
            Backing::Heap => unsafe {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    self.ptr.as_ptr(),
                    self.len,
                )));
            },
        }
    }
}

fn check_geometry(frames: u32, frame_size: u32) -> io::Result<()> {
    if !frame_size.is_power_of_two() || !(2048..=4096).contains(&frame_size) || frames == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame area: frame_size must be 2048 or 4096 and frames > 0 (got {frame_size} x {frames})"),
        ));
    }
    Ok(())
}

/// Ownership of one buffer: `len` bytes of packet at `addr` in the area. A
/// packet larger than a chunk is a chain of buffers, each but the last
/// marked [`Frame::more`] (`XDP_PKT_CONTD`), kept in order wherever it goes.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    addr: u64,
    len: u32,
    /// Descriptor options: `XDP_PKT_CONTD`, `XDP_TX_METADATA`.
    opts: u32,
}

impl Frame {
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// More buffers of the same packet follow this one.
    pub fn more(&self) -> bool {
        self.opts & XDP_PKT_CONTD != 0
    }

    pub(crate) fn set_more(&mut self, more: bool) {
        if more {
            self.opts |= XDP_PKT_CONTD;
        } else {
            self.opts &= !XDP_PKT_CONTD;
        }
    }

    /// The frame carries a checksum request for the kernel (TX metadata).
    pub fn has_tx_checksum(&self) -> bool {
        self.opts & XDP_TX_METADATA != 0
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The frames of one area that user space currently owns, plus access to the
/// bytes of frames held as tokens. One pool per worker; never grows.
pub struct FramePool {
    area: FrameArea,
    free: Vec<u64>,
    /// The area is registered with room for TX metadata in front of frames
    /// (`XDP_UMEM_TX_METADATA_LEN`): the kernel finishes checksums for us.
    tx_metadata: bool,
}

impl FramePool {
    pub fn new(area: FrameArea) -> Self {
        let frames = area.frames();
        let fs = u64::from(area.frame_size());
        let free = (0..u64::from(frames)).rev().map(|i| i * fs).collect();
        FramePool {
            area,
            free,
            tx_metadata: false,
        }
    }

    /// Whether frames can carry a checksum request to the kernel.
    pub fn tx_metadata(&self) -> bool {
        self.tx_metadata
    }

    pub(crate) fn set_tx_metadata(&mut self, on: bool) {
        self.tx_metadata = on;
    }

    /// Ask the kernel to finish the L4 checksum of `frame` on transmit:
    /// the ones' complement sum from `start` to the end goes at `start +
    /// offset` (the field must hold the pseudo-header sum). In copy mode the
    /// frame becomes a `CHECKSUM_PARTIAL` skb, which the member's checksum
    /// offload, or the kernel in software when it has none, completes.
    /// False when the area has no metadata room or the frame no headroom
    /// for it; the caller then computes the checksum itself.
    pub fn request_tx_checksum(&mut self, frame: &mut Frame, start: u16, offset: u16) -> bool {
        let chunk = self.area.chunk_of(frame.addr);
        let meta_len = u64::from(TX_METADATA_LEN);
        if !self.tx_metadata || frame.addr - chunk < meta_len {
            return false;
        }
        let mut meta = [0u8; TX_METADATA_LEN as usize];
        meta[..8].copy_from_slice(&XDP_TXMD_FLAGS_CHECKSUM.to_ne_bytes());
        meta[8..10].copy_from_slice(&start.to_ne_bytes());
        meta[10..12].copy_from_slice(&offset.to_ne_bytes());
        // SAFETY: the metadata lies in the frame's own chunk (checked above:
        // `chunk <= addr - meta_len`), which the `&mut Frame` token owns; no
        // ring holds it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                meta.as_ptr(),
                self.area.as_ptr().add((frame.addr - meta_len) as usize),
                meta.len(),
            );
        }
        frame.opts |= XDP_TX_METADATA;
        true
    }

    pub fn area(&self) -> &FrameArea {
        &self.area
    }

    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// A fresh frame with [`TX_HEADROOM`] in front of its (empty) data.
    pub fn alloc(&mut self) -> Option<Frame> {
        let base = self.free.pop()?;
        Some(Frame {
            addr: base + u64::from(TX_HEADROOM),
            len: 0,
            opts: 0,
        })
    }

    /// Give a frame back.
    pub fn free(&mut self, frame: Frame) {
        self.recycle(frame.addr);
    }

    /// Return a chunk, by any address inside it, to the free list.
    pub(crate) fn recycle(&mut self, addr: u64) {
        debug_assert!(
            self.free.len() < self.area.frames() as usize,
            "a frame returned twice"
        );
        self.free.push(self.area.chunk_of(addr));
    }

    /// A chunk base address for the fill ring (ownership passes to the kernel).
    pub(crate) fn take_chunk(&mut self) -> Option<u64> {
        self.free.pop()
    }

    pub fn data(&self, frame: &Frame) -> &[u8] {
        // SAFETY: tokens are bounds-checked when made (`FrameArea::token`,
        // `alloc`), and while a token exists no ring holds its chunk, so the
        // kernel does not write it.
        unsafe {
            std::slice::from_raw_parts(
                self.area.as_ptr().add(frame.addr as usize),
                frame.len as usize,
            )
        }
    }

    pub fn data_mut(&mut self, frame: &mut Frame) -> &mut [u8] {
        // SAFETY: as in `data`; `&mut Frame` is the only token for this chunk.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.area.as_ptr().add(frame.addr as usize),
                frame.len as usize,
            )
        }
    }

    /// Room from the frame's start to the end of its chunk.
    pub fn capacity(&self, frame: &Frame) -> u32 {
        let end = self.area.chunk_of(frame.addr) + u64::from(self.area.frame_size());
        (end - frame.addr) as u32
    }

    /// Set the frame's length and return its bytes; `None` if it does not fit.
    pub fn resize<'a>(&'a mut self, frame: &'a mut Frame, len: u32) -> Option<&'a mut [u8]> {
        if len > self.capacity(frame) {
            return None;
        }
        frame.len = len;
        Some(self.data_mut(frame))
    }

    /// Copy `bytes` into a new frame.
    pub fn alloc_with(&mut self, bytes: &[u8]) -> Option<Frame> {
        let mut f = self.alloc()?;
        let len = u32::try_from(bytes.len()).ok()?;
        match self.resize(&mut f, len) {
            Some(buf) => {
                buf.copy_from_slice(bytes);
                Some(f)
            }
            None => {
                self.free(f);
                None
            }
        }
    }

    /// A copy of `frame` in a new frame (broadcast sends one per member), at
    /// the same place in its chunk, so whatever fitted fits.
    pub fn duplicate(&mut self, frame: &Frame) -> Option<Frame> {
        let base = self.free.pop()?;
        let at = frame.addr - self.area.chunk_of(frame.addr);
        let copy = Frame {
            addr: base + at,
            len: frame.len,
            opts: frame.opts,
        };
        // With TX metadata, its bytes in front of the frame go along (the
        // source has them in its chunk: it carries the option).
        let meta = if frame.has_tx_checksum() {
            u64::from(TX_METADATA_LEN)
        } else {
            0
        };
        // SAFETY: `frame` was bounds-checked when made and `copy` lies at
        // the same offset in another chunk (`base` came off the free list
        // while `frame` is held), so both ranges are inside the area, do not
        // overlap, and no ring owns either; `meta` bytes in front of each lie
        // inside its chunk (`request_tx_checksum` checked the source's
        // headroom, the copy's is the same).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.area.as_ptr().add((frame.addr - meta) as usize),
                self.area.as_ptr().add((copy.addr - meta) as usize),
                (u64::from(frame.len) + meta) as usize,
            );
        }
        Some(copy)
    }

    /// Move the start of the frame by `delta` bytes (negative: grow into
    /// headroom), keeping it within its chunk.
    pub fn adjust_head(&mut self, frame: &mut Frame, delta: i32) -> bool {
        let chunk = self.area.chunk_of(frame.addr);
        let new_addr = frame.addr as i64 + i64::from(delta);
        let new_len = i64::from(frame.len) - i64::from(delta);
        if new_addr < chunk as i64 || new_len < 0 || self.area.chunk_of(new_addr as u64) != chunk {
            return false;
        }
        frame.addr = new_addr as u64;
        frame.len = new_len as u32;
        true
    }

    /// Make `n` bytes of room in front of the frame's data: out of its
    /// headroom when it has that much (nothing moves), else by moving the
    /// frame `n` bytes further into its chunk when its tailroom allows.
    /// The room's bytes are unspecified. False, and the frame unchanged,
    /// when neither fits.
    pub fn grow_head(&mut self, frame: &mut Frame, n: u32) -> bool {
        if self.adjust_head(frame, -(n as i32)) {
            return true;
        }
        let len = frame.len;
        match self.resize(frame, len + n) {
            Some(buf) => {
                buf.copy_within(..len as usize, n as usize);
                true
            }
            None => false,
        }
    }

    pub(crate) fn token(&self, addr: u64, len: u32) -> Option<Frame> {
        self.area.token(addr, len)
    }

    /// The frame as a ring descriptor; ownership passes to the kernel.
    pub(crate) fn into_desc(frame: Frame) -> super::abi::XdpDesc {
        super::abi::XdpDesc {
            addr: frame.addr,
            len: frame.len,
            options: frame.opts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_and_bounds() {
        let mut pool = FramePool::new(FrameArea::heap(4, 2048).unwrap());
        assert_eq!(pool.free_count(), 4);
        let mut f = pool.alloc().unwrap();
        assert_eq!(f.addr(), u64::from(TX_HEADROOM));
        assert_eq!(pool.capacity(&f), 2048 - TX_HEADROOM);
        assert!(
            pool.resize(&mut f, 2048).is_none(),
            "cannot grow past the chunk"
        );
        pool.resize(&mut f, 4)
            .unwrap()
            .copy_from_slice(&[1, 2, 3, 4]);
        assert!(pool.adjust_head(&mut f, -4));
        assert_eq!(f.len(), 8);
        assert!(
            !pool.adjust_head(&mut f, -300),
            "cannot move before the chunk"
        );
        assert!(pool.adjust_head(&mut f, 4));
        assert_eq!(pool.data(&f), &[1, 2, 3, 4]);
        pool.free(f);
        assert_eq!(pool.free_count(), 4);
    }

    #[test]
    fn duplicate_copies_into_a_new_chunk() {
        let mut pool = FramePool::new(FrameArea::heap(3, 2048).unwrap());
        let f = pool.alloc_with(&[9, 8, 7]).unwrap();
        let g = pool.duplicate(&f).unwrap();
        assert_ne!(pool.area().chunk_of(f.addr), pool.area().chunk_of(g.addr));
        assert_eq!(pool.data(&g), &[9, 8, 7]);
        let h = pool.duplicate(&g).unwrap();
        assert!(pool.duplicate(&h).is_none(), "the pool is empty");
        for x in [f, g, h] {
            pool.free(x);
        }
        assert_eq!(pool.free_count(), 3);
    }

    #[test]
    fn tokens_never_cross_a_chunk_or_the_area() {
        let area = FrameArea::heap(2, 2048).unwrap();
        assert!(area.token(256, 1500).is_some());
        assert!(area.token(1000, 1500).is_none());
        assert!(area.token(2048 + 256, 1792).is_some());
        assert!(area.token(4096, 1).is_none());
        assert!(area.token(u64::MAX - 1, 10).is_none());
    }

    #[test]
    fn grow_head_uses_headroom_without_moving_the_payload() {
        let mut pool = FramePool::new(FrameArea::heap(1, 2048).unwrap());
        let mut f = pool.alloc_with(&[1, 2, 3, 4, 5]).unwrap();
        let payload_at = f.addr() + 2;
        assert!(pool.grow_head(&mut f, 4));
        assert_eq!(f.addr(), u64::from(TX_HEADROOM) - 4);
        assert_eq!(&pool.data(&f)[4..], &[1, 2, 3, 4, 5]);
        assert_eq!(f.addr() + 6, payload_at, "the bytes stayed where they were");
        pool.free(f);
    }

    #[test]
    fn grow_head_without_headroom_moves_the_frame_into_its_tailroom() {
        let mut pool = FramePool::new(FrameArea::heap(2, 2048).unwrap());
        let base = pool.take_chunk().unwrap();
        let mut f = pool.token(base, 3).unwrap();
        pool.data_mut(&mut f).copy_from_slice(&[7, 8, 9]);
        assert!(pool.grow_head(&mut f, 4));
        assert_eq!(f.addr(), base, "no headroom to use");
        assert_eq!(&pool.data(&f)[4..], &[7, 8, 9]);
        // A frame that fills its chunk has no room at all: unchanged.
        let other = pool.take_chunk().unwrap();
        let mut full = pool.token(other, 2048).unwrap();
        assert!(!pool.grow_head(&mut full, 4));
        assert_eq!((full.addr(), full.len()), (other, 2048));
        pool.free(full);
        pool.free(f);
        assert_eq!(pool.free_count(), 2);
    }
}
