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

/// Queue `frame` on every member that can transmit: copies for all but the
/// last, which takes the frame itself.
pub(super) fn broadcast(
    snap: &crate::snapshot::BondSnapshot,
    frame: Frame,
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
    while let Some(t) = targets.next() {
        let copy = if targets.peek().is_some() {
            match frame.as_ref().and_then(|f| pool.duplicate(f)) {
                Some(c) => c,
                None => {
                    slots[t].batch.drop(DropReason::NoFreeFrame, 1);
                    continue;
                }
            }
        } else {
            match frame.take() {
                Some(f) => f,
                None => break,
            }
        };
        if slots[t].txq.len() < txq_capacity {
            slots[t].txq.push(copy);
        } else {
            slots[t].batch.drop(DropReason::TxRingFull, 1);
            pool.free(copy);
        }
    }
    if let Some(f) = frame {
        // No member of this worker could take it.
        slots[from].batch.drop(DropReason::NoTxQueue, 1);
        pool.free(f);
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
