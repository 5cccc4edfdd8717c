//! The four AF_XDP rings (fill, completion, RX, TX) as single-producer /
//! single-consumer queues over memory shared with the kernel.
//!
//! Each ring keeps cached copies of both indices so the shared cache lines are
//! touched only when the cached view runs out. Indices are free-running `u32`s;
//! the slot is `index & mask`, and `producer - consumer` (wrapping) is the fill
//! level, exactly as the kernel computes it.
//!
//! Ordering: the producer writes descriptors, then stores the producer index
//! with `Release`; the consumer loads it with `Acquire` before reading them.
//! The consumer stores its index with `Release` after it has finished reading
//! the slots it gives back; the producer loads it with `Acquire` before
//! overwriting them.

use std::sync::atomic::{AtomicU32, Ordering};

/// Raw layout of one ring: where its indices, flags and slots live.
///
/// Built by the socket code from the kernel's mmap offsets, or by tests over
/// heap memory.
#[derive(Clone, Copy)]
pub(crate) struct RingLayout<T> {
    pub producer: *const AtomicU32,
    pub consumer: *const AtomicU32,
    pub flags: *const AtomicU32,
    pub slots: *mut T,
    pub size: u32,
}

/// `XDP_RING_NEED_WAKEUP` in the ring's flags word.
pub(crate) const RING_NEED_WAKEUP: u32 = 1;

struct RingCore<T> {
    layout: RingLayout<T>,
    mask: u32,
    cached_prod: u32,
    cached_cons: u32,
}

// SAFETY: a ring is owned by exactly one thread at a time (the worker that owns
// its socket); the memory it points into is kept alive by the owner of the
// mapping, which travels with it.
unsafe impl<T: Send> Send for RingCore<T> {}

impl<T: Copy> RingCore<T> {
    /// # Safety
    /// `layout` must point to a live ring of `layout.size` slots (a power of
    /// two) that outlives the returned value, and no other user-space party
    /// may act as the same side (producer or consumer) of this ring.
    unsafe fn new(layout: RingLayout<T>) -> Self {
        debug_assert!(layout.size.is_power_of_two());
        // SAFETY: the caller guarantees the index words are live.
        // Acquire on both: if the other side has already published entries
        // (or given slots back), their contents must be visible to us before
        // we trust these starting indices (miri caught the Relaxed version).
        let (prod, cons) = unsafe {
            (
                (*layout.producer).load(Ordering::Acquire),
                (*layout.consumer).load(Ordering::Acquire),
            )
        };
        RingCore {
            layout,
            mask: layout.size - 1,
            cached_prod: prod,
            cached_cons: cons,
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: live for as long as self (constructor contract).
        unsafe { &*self.layout.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: live for as long as self (constructor contract).
        unsafe { &*self.layout.consumer }
    }

    fn flags(&self) -> u32 {
        // SAFETY: live for as long as self (constructor contract). The kernel
        // sets and clears the flag; a relaxed read is what libxdp does too.
        unsafe { (*self.layout.flags).load(Ordering::Relaxed) }
    }
}

/// The user-space producer side: the fill ring and the TX ring.
pub(crate) struct ProducerRing<T>(RingCore<T>);

impl<T: Copy> ProducerRing<T> {
    /// # Safety
    /// As for [`RingCore::new`]: a live ring we are the only producer of.
    pub(crate) unsafe fn new(layout: RingLayout<T>) -> Self {
        // SAFETY: forwarded contract.
        ProducerRing(unsafe { RingCore::new(layout) })
    }

    /// Slots that can be written without waiting for the kernel, refreshing
    /// the view of the consumer index only when fewer than `want` are known.
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let r = &mut self.0;
        let mut free = r.layout.size - r.cached_prod.wrapping_sub(r.cached_cons);
        if free < want {
            // Acquire pairs with the kernel's release of the consumer index:
            // the slots it gave back are no longer being read.
            r.cached_cons = r.consumer().load(Ordering::Acquire);
            free = r.layout.size - r.cached_prod.wrapping_sub(r.cached_cons);
        }
        free
    }

    /// Reserve up to `want` slots. The reservation is published by
    /// [`Reservation::commit`]; dropped uncommitted, it vanishes and the ring
    /// is as before.
    pub(crate) fn reserve(&mut self, want: u32) -> Reservation<'_, T> {
        let n = self.free(want).min(want);
        Reservation {
            ring: &mut self.0,
            len: n,
            written: 0,
        }
    }

    /// Entries published that the consumer has not taken yet (read fresh).
    pub(crate) fn unconsumed(&mut self) -> u32 {
        let r = &mut self.0;
        // Acquire pairs with the kernel's release of the consumer index.
        r.cached_cons = r.consumer().load(Ordering::Acquire);
        r.cached_prod.wrapping_sub(r.cached_cons)
    }

    pub(crate) fn needs_wakeup(&self) -> bool {
        self.0.flags() & RING_NEED_WAKEUP != 0
    }

    /// Read back the entries the consumer has not taken yet, oldest first,
    /// and forget them. For a socket being closed: the caller makes sure the
    /// kernel consumes nothing more from this ring (no program redirects to
    /// the socket any longer), so these entries would otherwise be lost.
    pub(crate) fn take_back(&mut self, mut each: impl FnMut(T)) -> u32 {
        let r = &mut self.0;
        // Acquire pairs with the kernel's Release of the consumer index: the
        // slots before it are the kernel's, the ones after it still ours.
        let cons = r.consumer().load(Ordering::Acquire);
        let n = r.cached_prod.wrapping_sub(cons);
        for i in 0..n {
            let idx = cons.wrapping_add(i) & r.mask;
            // SAFETY: idx < size; the slot lies between the consumer index
            // and our producer index, so it holds a value we wrote and the
            // consumer only ever reads it.
            each(unsafe { r.layout.slots.add(idx as usize).read() });
        }
        r.cached_cons = cons;
        r.cached_prod = cons;
        n
    }
}

/// Slots reserved on a producer ring; see [`ProducerRing::reserve`].
pub(crate) struct Reservation<'a, T: Copy> {
    ring: &'a mut RingCore<T>,
    len: u32,
    written: u32,
}

impl<T: Copy> Reservation<'_, T> {
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    /// Write the next reserved slot. Returns false when the reservation is
    /// full (the value is not written).
    pub(crate) fn push(&mut self, value: T) -> bool {
        if self.written == self.len {
            return false;
        }
        let r = &mut *self.ring;
        let idx = r.cached_prod.wrapping_add(self.written) & r.mask;
        // SAFETY: idx < size; the slot lies between our producer index and the
        // consumer index we last read, so the kernel is not reading it.
        unsafe { r.layout.slots.add(idx as usize).write(value) };
        self.written += 1;
        true
    }

    /// Publish the slots written so far; returns how many.
    pub(crate) fn commit(self) -> u32 {
        let n = self.written;
        let r = &mut *self.ring;
        r.cached_prod = r.cached_prod.wrapping_add(n);
        // Release: the descriptor writes above happen-before the kernel's
        // Acquire load of the producer index.
        r.producer().store(r.cached_prod, Ordering::Release);
        n
    }
}

/// The user-space consumer side: the RX ring and the completion ring.
pub(crate) struct ConsumerRing<T>(RingCore<T>);

impl<T: Copy> ConsumerRing<T> {
    /// # Safety
    /// As for [`RingCore::new`]: a live ring we are the only consumer of.
    pub(crate) unsafe fn new(layout: RingLayout<T>) -> Self {
        // SAFETY: forwarded contract.
        ConsumerRing(unsafe { RingCore::new(layout) })
    }

    /// Entries ready to read, at most `max`.
    pub(crate) fn available(&mut self, max: u32) -> u32 {
        let r = &mut self.0;
        let mut ready = r.cached_prod.wrapping_sub(r.cached_cons);
        if ready < max {
            // Acquire pairs with the kernel's Release of the producer index:
            // the descriptors it published are visible.
            r.cached_prod = r.producer().load(Ordering::Acquire);
            ready = r.cached_prod.wrapping_sub(r.cached_cons);
        }
        ready.min(max)
    }

    /// Read entry `i` of those reported by [`available`](Self::available).
    pub(crate) fn get(&self, i: u32) -> T {
        let r = &self.0;
        debug_assert!(i < r.cached_prod.wrapping_sub(r.cached_cons));
        let idx = r.cached_cons.wrapping_add(i) & r.mask;
        // SAFETY: idx < size, and the slot was published by the producer
        // (checked against the producer index we loaded with Acquire).
        unsafe { r.layout.slots.add(idx as usize).read() }
    }

    /// Give `n` read entries back to the kernel.
    pub(crate) fn release(&mut self, n: u32) {
        let r = &mut self.0;
        debug_assert!(n <= r.cached_prod.wrapping_sub(r.cached_cons));
        r.cached_cons = r.cached_cons.wrapping_add(n);
        // Release: our reads of those slots happen-before the kernel reuses them.
        r.consumer().store(r.cached_cons, Ordering::Release);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Ring arithmetic on heap memory, with a test thread playing the kernel.
    //! These run under miri (`cargo +nightly miri test -p xbond-dataplane ring`).
    use super::*;
    use std::sync::Arc;

    /// A ring's shared words and slots on the heap.
    pub(crate) struct HeapRing<T> {
        words: Box<[AtomicU32; 3]>,
        // UnsafeCell: the producer writes slots through a pointer derived
        // from a shared borrow, as the kernel's mmap would allow.
        slots: Box<[std::cell::UnsafeCell<T>]>,
    }

    // SAFETY: the test threads use the slots only through the ring protocol,
    // which orders every slot access by the Acquire/Release index edges.
    unsafe impl<T: Send> Sync for HeapRing<T> {}

    impl<T: Copy + Default> HeapRing<T> {
        pub(crate) fn new(size: u32, start: u32) -> Arc<Self> {
            Arc::new(HeapRing {
                words: Box::new([
                    AtomicU32::new(start),
                    AtomicU32::new(start),
                    AtomicU32::new(0),
                ]),
                slots: (0..size)
                    .map(|_| std::cell::UnsafeCell::new(T::default()))
                    .collect(),
            })
        }

        pub(crate) fn layout(self: &Arc<Self>) -> RingLayout<T> {
            RingLayout {
                producer: &self.words[0],
                consumer: &self.words[1],
                flags: &self.words[2],
                slots: self.slots.as_ptr() as *mut T, // UnsafeCell<T> has T's layout
                size: self.slots.len() as u32,
            }
        }
    }

    #[test]
    fn take_back_returns_what_the_consumer_left() {
        let mem = HeapRing::<u64>::new(8, 6);
        // SAFETY: mem outlives the rings; one producer, one consumer.
        let (mut p, mut c) = unsafe {
            (
                ProducerRing::new(mem.layout()),
                ConsumerRing::new(mem.layout()),
            )
        };
        let mut r = p.reserve(5);
        for v in 10..15u64 {
            assert!(r.push(v));
        }
        assert_eq!(r.commit(), 5);
        // The consumer takes two, across the wrap of the slot index.
        assert_eq!(c.available(2), 2);
        assert_eq!((c.get(0), c.get(1)), (10, 11));
        c.release(2);
        let mut back = Vec::new();
        assert_eq!(p.take_back(|v| back.push(v)), 3);
        assert_eq!(back, vec![12, 13, 14]);
        assert_eq!(p.take_back(|_| panic!("nothing left")), 0);
    }

    #[test]
    fn reserve_is_bounded_by_free_space_and_rolls_back() {
        let mem = HeapRing::<u64>::new(8, 0);
        // SAFETY: mem outlives the rings; one producer, one consumer.
        let (mut p, mut c) = unsafe {
            (
                ProducerRing::new(mem.layout()),
                ConsumerRing::new(mem.layout()),
            )
        };
        {
            let mut r = p.reserve(5);
            assert_eq!(r.len(), 5);
            assert!(r.push(1));
            // dropped without commit: nothing published
        }
        assert_eq!(c.available(8), 0);
        let mut r = p.reserve(20);
        assert_eq!(r.len(), 8, "never more than the ring holds");
        for v in 0..8 {
            assert!(r.push(v));
        }
        assert!(!r.push(99), "a full reservation refuses more");
        assert_eq!(r.commit(), 8);
        assert_eq!(p.free(1), 0);
        assert_eq!(c.available(3), 3);
        assert_eq!((c.get(0), c.get(1), c.get(2)), (0, 1, 2));
        c.release(3);
        assert_eq!(p.free(3), 3, "released slots come back to the producer");
        assert_eq!(c.available(16), 5);
    }

    #[test]
    fn indices_wrap_around_u32() {
        let start = u32::MAX - 2;
        let mem = HeapRing::<u64>::new(4, start);
        // SAFETY: as above.
        let (mut p, mut c) = unsafe {
            (
                ProducerRing::new(mem.layout()),
                ConsumerRing::new(mem.layout()),
            )
        };
        for round in 0..10u64 {
            let mut r = p.reserve(3);
            for k in 0..3 {
                assert!(r.push(round * 10 + k));
            }
            r.commit();
            assert_eq!(c.available(4), 3);
            for k in 0..3 {
                assert_eq!(c.get(k as u32), round * 10 + k);
            }
            c.release(3);
        }
        assert!(
            mem.words[0].load(Ordering::Relaxed) < start,
            "producer index wrapped"
        );
    }

    #[test]
    fn producer_and_consumer_on_two_threads_lose_nothing() {
        let mem = HeapRing::<u64>::new(16, 7);
        let total: u64 = if cfg!(miri) { 300 } else { 100_000 };
        let m2 = Arc::clone(&mem);
        let consumer = std::thread::spawn(move || {
            // SAFETY: m2 keeps the memory alive; this thread is the only consumer.
            let mut c = unsafe { ConsumerRing::new(m2.layout()) };
            let mut next = 0u64;
            while next < total {
                let n = c.available(8);
                for i in 0..n {
                    assert_eq!(c.get(i), next);
                    next += 1;
                }
                c.release(n);
                std::thread::yield_now();
            }
            next
        });
        // SAFETY: mem outlives this ring; this thread is the only producer.
        let mut p = unsafe { ProducerRing::new(mem.layout()) };
        let mut sent = 0u64;
        while sent < total {
            let mut r = p.reserve(5);
            while sent < total && r.push(sent) {
                sent += 1;
            }
            r.commit();
            std::thread::yield_now();
        }
        assert_eq!(consumer.join().unwrap(), total);
    }
}
