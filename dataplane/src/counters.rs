//! Per-port counters. Each port's counters have one writer (the worker that
//! owns the port), which adds a whole batch at a time; readers (control, the
//! CLI) may run on any thread. Every drop has a reason, and the counter names
//! are the reason names.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal ),* $(,)?) => {
        /// Why a frame was dropped. The name is the counter's name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum DropReason { $( $(#[$doc])* $variant ),* }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant),*];
            pub const COUNT: usize = Self::ALL.len();

            pub fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name),* }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an Ethernet header.
    Runt => "runt",
    /// Arrived on a member that is not active (active-backup duplicate suppression).
    InactiveMember => "inactive_member",
    /// Nothing to send it on: no member is usable.
    NoActiveMember => "no_active_member",
    /// Nothing to send it on: no member of a load-sharing bond can transmit.
    NoUsableMember => "no_usable_member",
    /// The TX ring of the outgoing port stayed full.
    TxRingFull => "tx_ring_full",
    /// No free frame in the pool for a frame from control.
    NoFreeFrame => "no_free_frame",
    /// The kernel handed us a descriptor outside the frame area.
    InvalidDescriptor => "invalid_descriptor",
    /// The queue to the control thread was full: the frame for control (or
    /// the copy of a probe reply, whose frame went on) was lost.
    ControlQueueFull => "control_queue_full",
    /// The outgoing port has no queue served by this worker.
    NoTxQueue => "no_tx_queue",
    /// A frame for control longer than the control frame buffer.
    ControlFrameTooLong => "control_frame_too_long",
    /// The member is not in the bond (any more).
    UnknownMember => "unknown_member",
    /// Tagged with a VLAN that has no host port on this bond.
    UnknownVlan => "unknown_vlan",
    /// An 802.1ad (QinQ) outer tag, with `qinq = "drop"`.
    QinqRejected => "qinq_rejected",
    /// No room in the frame's chunk for a VLAN tag.
    NoRoomForTag => "no_room_for_tag",
    /// Larger than a 64 KiB GSO packet (AF_PACKET host port).
    Oversize => "oversize",
}

/// The counters of one port.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Frames handed to the control thread (slow protocols, probe replies).
    pub to_control: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
}

/// Single-writer add: a plain load and store, no locked instruction.
fn bump(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

impl PortCounters {
    pub fn drops(&self, r: DropReason) -> u64 {
        self.drops[r as usize].load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> CounterValues {
        CounterValues {
            rx_packets: self.rx_packets.load(Ordering::Relaxed),
            rx_bytes: self.rx_bytes.load(Ordering::Relaxed),
            tx_packets: self.tx_packets.load(Ordering::Relaxed),
            tx_bytes: self.tx_bytes.load(Ordering::Relaxed),
            to_control: self.to_control.load(Ordering::Relaxed),
            drops: DropReason::ALL
                .iter()
                .map(|&r| (r.name(), self.drops(r)))
                .collect(),
        }
    }
}

/// A reading of a port's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterValues {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub to_control: u64,
    pub drops: Vec<(&'static str, u64)>,
}

/// Counts gathered over one batch by the worker, then added to the shared
/// counters in one go.
#[derive(Debug, Default, Clone)]
pub struct BatchCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub to_control: u64,
    pub drops: [u64; DropReason::COUNT],
    dirty: bool,
}

impl BatchCounters {
    #[inline]
    pub fn rx(&mut self, bytes: u32) {
        self.rx_packets += 1;
        self.rx_bytes += u64::from(bytes);
        self.dirty = true;
    }

    #[inline]
    pub fn tx(&mut self, packets: u64, bytes: u64) {
        self.tx_packets += packets;
        self.tx_bytes += bytes;
        self.dirty = true;
    }

    #[inline]
    pub fn drop(&mut self, r: DropReason, n: u64) {
        self.drops[r as usize] += n;
        self.dirty = true;
    }

    #[inline]
    pub fn control(&mut self) {
        self.to_control += 1;
        self.dirty = true;
    }

    /// Add everything to `to` and start over.
    pub fn publish(&mut self, to: &PortCounters) {
        if !self.dirty {
            return;
        }
        bump(&to.rx_packets, self.rx_packets);
        bump(&to.rx_bytes, self.rx_bytes);
        bump(&to.tx_packets, self.tx_packets);
        bump(&to.tx_bytes, self.tx_bytes);
        bump(&to.to_control, self.to_control);
        for (i, n) in self.drops.iter().enumerate() {
            bump(&to.drops[i], *n);
        }
        *self = BatchCounters::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_batches_publish() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);

        let shared = PortCounters::default();
        let mut b = BatchCounters::default();
        b.rx(60);
        b.rx(1500);
        b.drop(DropReason::InactiveMember, 3);
        b.publish(&shared);
        b.rx(60);
        b.publish(&shared);
        let v = shared.snapshot();
        assert_eq!((v.rx_packets, v.rx_bytes), (3, 1620));
        assert_eq!(shared.drops(DropReason::InactiveMember), 3);
        assert_eq!(shared.drops(DropReason::Runt), 0);
    }
}
