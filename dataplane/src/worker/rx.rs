//! The receive path: frames from members to the host ports (VLAN demux,
//! the RX filter of the mode, copies to control) and from host ports into
//! the transmit scheduler.

use super::*;

impl Worker {
    /// Receive up to `max` frames from port `i` and send each where the
    /// snapshot says; returns how many were received.
    pub(super) fn receive(
        &mut self,
        i: usize,
        snap: &crate::snapshot::BondSnapshot,
        max: u32,
    ) -> u32 {
        let Worker {
            slots,
            pool,
            rxbuf,
            member_slot,
            host_slot,
            to_control,
            cfg,
            tx,
            tail,
            gso,
            ..
        } = self;
        let (n, bad) = slots[i].port.recv(pool, rxbuf, max);
        slots[i]
            .batch
            .drop(DropReason::InvalidDescriptor, u64::from(bad));
        let role = slots[i].role;
        let mut frames = rxbuf.drain(..);
        while let Some(mut f) = frames.next() {
            // A packet larger than a chunk: its first buffer decides, the
            // rest (`tail`) follows it (`recv` never splits a chain).
            tail.clear();
            let mut more = f.more();
            while more {
                match frames.next() {
                    Some(b) => {
                        more = b.more();
                        tail.push(b);
                    }
                    None => break,
                }
            }
            let data = pool.data(&f);
            slots[i]
                .batch
                .rx(f.len() + tail.iter().map(Frame::len).sum::<u32>());
            if let (Role::Member(_), true) = (role, snap.copy_probes) {
                if forward::is_probe(data) {
                    match to_control.try_send(ControlFrame::prefix(role, Handover::ProbeCopy, data))
                    {
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
                verdict = lb_rewrite(snap, verdict, pool.data_mut(&mut f));
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
            if let (Role::Member(_), Verdict::ToHost { vid: 0, .. }, Some(g), Some(Some(h))) =
                (role, verdict, gso.as_mut(), host_slot.first().copied())
            {
                // TCP for the bond's own interface is joined into larger
                // packets and written through AF_PACKET (`HostGso`).
                if gso::is_tcp(pool.data(&f)) {
                    let parts = std::iter::once(&f).chain(tail.iter()).map(|b| pool.data(b));
                    if g.take_for_host(&mut slots[h].batch, parts) {
                        pool.free(f);
                        tail.drain(..).for_each(|b| pool.free(b));
                        continue;
                    }
                }
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
                Verdict::ToControl(why) => {
                    let cf =
                        ControlFrame::new(role, why, pool.data(&f)).filter(|_| tail.is_empty());
                    hand_over(to_control, &mut slots[i].batch, cf);
                    pool.free(f);
                    tail.drain(..).for_each(|b| pool.free(b));
                    continue;
                }
                Verdict::ToAllMembers => {
                    if let Role::Host(_) = role {
                        tx_checksum(pool, &mut f, tail);
                    }
                    broadcast(snap, f, tail, pool, slots, member_slot, i, cfg.txq_capacity);
                    continue;
                }
                Verdict::Drop(r) => Err(r),
            };
            if let (Role::Host(_), Ok(_)) = (role, target) {
                tx_checksum(pool, &mut f, tail);
            }
            enqueue(slots, i, target, pool, f, tail, cfg.txq_capacity);
        }
        if let (Some(g), Some(Some(h))) = (gso.as_mut(), host_slot.first().copied()) {
            g.flush_to_host(&mut slots[h].batch);
        }
        n
    }
}

/// balance-tlb/alb, where members have MACs of their own: a frame for a
/// member leaves with its MAC (an ARP reply placed by the client table
/// also as the ARP sender), and one for the host is addressed to the bond.
#[inline]
pub(super) fn lb_rewrite(
    snap: &crate::snapshot::BondSnapshot,
    verdict: Verdict,
    frame: &mut [u8],
) -> Verdict {
    match verdict {
        Verdict::ToMember(m) => lb::rewrite_for_member(snap, m, frame, false),
        Verdict::ArpReplyVia(m) => {
            lb::rewrite_for_member(snap, m, frame, true);
            return Verdict::ToMember(m);
        }
        Verdict::ToHost { .. } => lb::adopt_for_host(snap, frame),
        _ => {}
    }
    verdict
}

/// A frame for control, copied (`None`: too long for a control frame),
/// counted on the port it came from.
#[inline]
pub(super) fn hand_over(
    to_control: &Sender<ControlFrame>,
    batch: &mut BatchCounters,
    cf: Option<ControlFrame>,
) {
    match cf {
        Some(cf) => match to_control.try_send(cf) {
            Ok(()) => batch.control(),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                batch.drop(DropReason::ControlQueueFull, 1)
            }
        },
        None => batch.drop(DropReason::ControlFrameTooLong, 1),
    }
}

/// A packet (`head` and its `tail` buffers) onto the transmit queue of
/// slot `target`, or dropped whole: counted on the target when its queue
/// is full, on the receiving slot `from` when it has no target.
#[inline]
fn enqueue(
    slots: &mut [Slot],
    from: usize,
    target: Result<usize, DropReason>,
    pool: &mut FramePool,
    head: Frame,
    tail: &mut Vec<Frame>,
    capacity: usize,
) {
    let reason = match target {
        Ok(t) if slots[t].txq.len() + tail.len() < capacity => {
            slots[t].txq.push(head);
            slots[t].txq.append(tail);
            return;
        }
        Ok(t) => {
            slots[t].batch.drop(DropReason::TxRingFull, 1);
            None
        }
        Err(r) => Some(r),
    };
    if let Some(r) = reason {
        slots[from].batch.drop(r, 1);
    }
    pool.free(head);
    tail.drain(..).for_each(|b| pool.free(b));
}

/// The L4 checksum of a frame from the host, made right for the wire: the
/// field seeded with the pseudo-header sum, and the kernel asked to finish it
/// (TX metadata), or finished here when it cannot be (no metadata, no
/// headroom, or Ethernet padding the kernel would sum too). See `offload`.
#[inline]
fn tx_checksum(pool: &mut FramePool, head: &mut Frame, tail: &[Frame]) {
    let Some(req) = offload::seed_l4_checksum(pool.data_mut(head)) else {
        return;
    };
    let total = head.len() + tail.iter().map(Frame::len).sum::<u32>();
    if req.covers_to_end(total) && pool.request_tx_checksum(head, req.start, req.offset) {
        return;
    }
    if tail.is_empty() {
        offload::finish_in_place(pool.data_mut(head), req);
        return;
    }
    // A chain: sum the L4 bytes across its buffers.
    let mut left = req.len as usize;
    let mut sum = checksum::Running::new(0);
    for (k, b) in std::iter::once(&*head).chain(tail).enumerate() {
        let bytes = pool.data(b);
        let bytes = if k == 0 {
            &bytes[usize::from(req.start)..]
        } else {
            bytes
        };
        let take = bytes.len().min(left);
        sum.add(&bytes[..take]);
        left -= take;
    }
    let field = usize::from(req.start + req.offset);
    let value = checksum::finish(sum.fold(), req.udp);
    pool.data_mut(head)[field..field + 2].copy_from_slice(&value.to_be_bytes());
}
