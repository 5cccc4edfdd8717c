//! The receive path: frames from members to the host ports (VLAN demux,
//! the RX filter of the mode, copies to control) and from host ports into
//! the transmit scheduler.

use super::*;

impl Worker {
    pub(super) fn receive(&mut self, i: usize, snap: &crate::snapshot::BondSnapshot) -> u32 {
        let Worker {
            slots,
            pool,
            rxbuf,
            member_slot,
            host_slot,
            to_control,
            cfg,
            tx,
            ..
        } = self;
        let (n, bad) = slots[i].port.recv(pool, rxbuf, BATCH);
        slots[i]
            .batch
            .drop(DropReason::InvalidDescriptor, u64::from(bad));
        let role = slots[i].role;
        for mut f in rxbuf.drain(..) {
            let data = pool.data(&f);
            slots[i].batch.rx(f.len());
            if let (Role::Member(_), true) = (role, snap.copy_probes) {
                if forward::is_probe(data) {
                    match to_control.try_send(ControlFrame::prefix(role, data)) {
                        Ok(()) => slots[i].batch.control(),
                        Err(_) => slots[i].batch.drop(DropReason::ControlQueueFull, 1),
                    }
                }
            }
            let mut verdict = match role {
                Role::Member(m) => forward::from_member(snap, m, data),
                Role::Host(vid) => forward::from_host(snap, tx, data, vid),
            };
            if snap.lb.is_some() {
                // balance-tlb/alb: members have MACs of their own.
                match verdict {
                    Verdict::ToMember(m) => {
                        lb::rewrite_for_member(snap, m, pool.data_mut(&mut f), false)
                    }
                    Verdict::ArpReplyVia(m) => {
                        lb::rewrite_for_member(snap, m, pool.data_mut(&mut f), true);
                        verdict = Verdict::ToMember(m);
                    }
                    Verdict::ToHost { .. } => lb::adopt_for_host(snap, pool.data_mut(&mut f)),
                    _ => {}
                }
            }
            match (role, verdict) {
                (Role::Host(vid), Verdict::ToMember(_) | Verdict::ToAllMembers) if vid != 0 => {
                    let tag = forward::egress_tag(pool.data(&f), vid);
                    if !tag_frame(pool, &mut f, tag) {
                        verdict = Verdict::Drop(DropReason::NoRoomForTag);
                    }
                }
                (_, Verdict::ToHost { untag: true, .. }) => untag_frame(pool, &mut f),
                _ => {}
            }
            let target = match verdict {
                Verdict::ToHost { vid, .. } => host_slot
                    .get(usize::from(vid))
                    .copied()
                    .flatten()
                    .ok_or(DropReason::NoTxQueue),
                Verdict::ToMember(m) | Verdict::ArpReplyVia(m) => member_slot
                    .get(m as usize)
                    .copied()
                    .flatten()
                    .ok_or(DropReason::NoTxQueue),
                Verdict::ToControl => {
                    match ControlFrame::new(role, pool.data(&f)) {
                        Some(cf) => match to_control.try_send(cf) {
                            Ok(()) => slots[i].batch.control(),
                            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                                slots[i].batch.drop(DropReason::ControlQueueFull, 1)
                            }
                        },
                        None => slots[i].batch.drop(DropReason::ControlFrameTooLong, 1),
                    }
                    pool.free(f);
                    continue;
                }
                Verdict::ToAllMembers => {
                    broadcast(snap, f, pool, slots, member_slot, i, cfg.txq_capacity);
                    continue;
                }
                Verdict::Drop(r) => Err(r),
            };
            match target {
                Ok(t) if slots[t].txq.len() < cfg.txq_capacity => slots[t].txq.push(f),
                Ok(t) => {
                    slots[t].batch.drop(DropReason::TxRingFull, 1);
                    pool.free(f);
                }
                Err(r) => {
                    slots[i].batch.drop(r, 1);
                    pool.free(f);
                }
            }
        }
        n
    }
}
