//! The transmit path: queued frames onto the TX rings, frames completed back
//! to the pool, and the 802.1Q tag pushed or popped in the frame headroom.

use super::*;

/// Give a frame from a VLAN port its tag: pushed into the headroom (only
/// the MAC addresses move), or the VLAN id set in the priority tag the host
/// gave it. False if the chunk has no room for a tag.
#[inline]
pub(super) fn tag_frame(pool: &mut FramePool, f: &mut Frame, tag: forward::EgressTag) -> bool {
    match tag {
        forward::EgressTag::Push(tci) => {
            pool.grow_head(f, vlan::TAG_LEN as u32)
                && vlan::insert_tag(pool.data_mut(f), vlan::TPID_8021Q, tci)
        }
        forward::EgressTag::Rewrite(tci) => {
            vlan::set_tci(pool.data_mut(f), tci);
            true
        }
    }
}

/// Take the outer tag off a received frame: the MAC addresses move up over
/// it and the frame starts four bytes later.
#[inline]
pub(super) fn untag_frame(pool: &mut FramePool, f: &mut Frame) {
    if vlan::remove_tag(pool.data_mut(f)) {
        pool.adjust_head(f, vlan::TAG_LEN as i32);
    }
}

/// Queue a packet (`frame` and its chain's `tail`) on every member that can
/// transmit: copies for all but the last, which takes the packet itself.
#[allow(clippy::too_many_arguments)]
pub(super) fn broadcast(
    snap: &crate::snapshot::BondSnapshot,
    frame: Frame,
    tail: &mut Vec<Frame>,
    pool: &mut FramePool,
    slots: &mut [Slot],
    member_slot: &[Option<usize>],
    from: usize,
    txq_capacity: usize,
) {
    let mut targets = snap
        .members
        .iter()
        .filter(|m| m.can_tx)
        .filter_map(|m| member_slot.get(m.id as usize).copied().flatten())
        .peekable();
    let mut frame = Some(frame);
    let mut offered = false;
    while let Some(t) = targets.next() {
        offered = true;
        if slots[t].txq.len() + tail.len() >= txq_capacity {
            slots[t].batch.drop(DropReason::TxRingFull, 1);
            continue;
        }
        if targets.peek().is_some() {
            let Some(head) = frame.as_ref() else { break };
            // A copy of every buffer, in order; all or nothing.
            let start = slots[t].txq.len();
            let copied =
                std::iter::once(head)
                    .chain(tail.iter())
                    .all(|b| match pool.duplicate(b) {
                        Some(c) => {
                            slots[t].txq.push(c);
                            true
                        }
                        None => false,
                    });
            if !copied {
                for c in slots[t].txq.drain(start..) {
                    pool.free(c);
                }
                slots[t].batch.drop(DropReason::NoFreeFrame, 1);
            }
        } else if let Some(f) = frame.take() {
            slots[t].txq.push(f);
            slots[t].txq.append(tail);
        }
    }
    if let Some(f) = frame {
        // The last member's queue was full (counted there), or no member
        // of this worker could take it.
        pool.free(f);
        tail.drain(..).for_each(|b| pool.free(b));
        if !offered {
            slots[from].batch.drop(DropReason::NoTxQueue, 1);
        }
    }
}

impl Worker {
    pub(super) fn flush(&mut self) -> u32 {
        let mut work = 0;
        let mut kick_error = None;
        for s in &mut self.slots {
            if !s.txq.is_empty() {
                let (sent, bytes) = s.port.send(&mut self.pool, &mut s.txq);
                s.batch.tx(u64::from(sent), bytes);
                work += sent;
            }
            // Kick even with nothing new: a previous kick may have left frames.
            if let Err(e) = s.port.flush() {
                kick_error = Some(e);
            }
        }
        if let Some(e) = kick_error {
            if !self.kick_error_logged {
                self.kick_error_logged = true;
                tracing::warn!("TX kick failed: {e} (reported once per worker)");
            }
        }
        work
    }
}
