//! The host port that keeps the host's TSO/GSO packets whole
//! (`host_port = "af_packet"`, the default): the bond's own interface is
//! read through an AF_PACKET ring with virtio-net headers
//! (`sys/packet_ring.rs`), and what it sends leaves the members through
//! AF_PACKET sockets the same way, a 64 KiB TCP packet as one write,
//! segmented by the member's NIC or, without the offload, by the member's
//! kernel driver path. The mode logic is the same as on the AF_XDP path:
//! `forward::from_host` on the frame, balance-alb's rewrites, tags.
//! Towards the host, TCP from the members is joined (`offload::coalesce`)
//! and written through AF_PACKET too; other frames for the host leave
//! through the host port's AF_XDP socket, and control's frames through the
//! members' AF_XDP sockets.

use super::rx::{hand_over, lb_rewrite};
use super::*;
use crate::offload::coalesce::{self, Coalescer};
use crate::sys::packet::{PacketSocket, TxItem, VNET_HDR_LEN};
use crate::sys::packet_ring::RxRing;
use crate::wire::ethernet;
use crate::wire::virtio_net;
use std::os::fd::RawFd;

/// Packets read from the host per round.
pub const GSO_BATCH: usize = 64;

/// The AF_PACKET side of a worker: the host interface's socket and one
/// writing socket per member.
pub struct HostGso {
    ring: RxRing,
    /// TCP from the members, joined (`offload::coalesce`), to the host.
    to_host: PacketSocket,
    coalesce: Coalescer,
    members: Vec<Option<PacketSocket>>,
    queues: Vec<Vec<TxItem>>,
    error_logged: bool,
}

impl HostGso {
    /// Read the host interface `ifindex` (the hidden end of its pair).
    pub fn new(ifindex: u32) -> std::io::Result<Self> {
        Ok(HostGso {
            ring: RxRing::new(ifindex, GSO_BATCH)?,
            to_host: PacketSocket::sender(ifindex, coalesce::REGIONS)?,
            coalesce: Coalescer::new(),
            members: Vec::new(),
            queues: Vec::new(),
            error_logged: false,
        })
    }

    /// Write to member `m` on `ifindex`.
    pub fn add_member(&mut self, m: MemberId, ifindex: u32) -> std::io::Result<()> {
        let s = PacketSocket::sender(ifindex, GSO_BATCH)?;
        let m = usize::from(m);
        if self.members.len() <= m {
            self.members.resize_with(m + 1, || None);
            self.queues.resize_with(m + 1, Vec::new);
        }
        self.members[m] = Some(s);
        self.queues[m].clear();
        // Room for a whole batch now, so that queueing never allocates.
        self.queues[m].reserve(GSO_BATCH);
        Ok(())
    }

    pub fn remove_member(&mut self, m: MemberId) {
        if let Some(s) = self.members.get_mut(usize::from(m)) {
            *s = None;
        }
    }

    pub fn poll_fd(&self) -> RawFd {
        self.ring.fd()
    }

    fn queue(&mut self, m: MemberId, item: TxItem) -> bool {
        match self.queues.get_mut(usize::from(m)) {
            Some(q) if self.members[usize::from(m)].is_some() => {
                q.push(item);
                true
            }
            _ => false,
        }
    }
}

/// A frame for the bond's own interface that goes through the coalescer:
/// TCP over IPv4 or IPv6, untagged. Everything else keeps the AF_XDP path
/// (a flow never takes both, so nothing is reordered).
#[inline]
pub(super) fn is_tcp(frame: &[u8]) -> bool {
    match frame.get(12..14) {
        Some([0x08, 0x00]) => frame.get(23) == Some(&6),
        Some([0x86, 0xdd]) => frame.get(20) == Some(&6),
        _ => false,
    }
}

impl HostGso {
    /// Take a TCP frame for the host (`parts`, its buffers in order) into
    /// the coalescer, writing out what it holds first when it is full.
    /// `false`: it could not be taken (longer than a region).
    pub(super) fn take_for_host<'a>(
        &mut self,
        counted: &mut BatchCounters,
        parts: impl IntoIterator<Item = &'a [u8]>,
    ) -> bool {
        if self.coalesce.is_full() {
            self.flush_to_host(counted);
        }
        self.coalesce.offer(parts).is_some()
    }

    /// Write what the coalescer holds to the host interface, counted on the
    /// host port (`counted`): a packet per write, its segments as packets;
    /// what the kernel refuses is counted as `tx_ring_full`.
    pub(super) fn flush_to_host(&mut self, counted: &mut BatchCounters) {
        if self.coalesce.is_empty() {
            return;
        }
        self.coalesce.finish();
        let c = &self.coalesce;
        let mut at = 0;
        while at < c.len() {
            let sent = match self.to_host.send_whole(c.len() - at, |i| c.packet(at + i)) {
                Ok(k) => k,
                Err(e) => {
                    if !self.error_logged {
                        tracing::warn!("host port write: {e}");
                        self.error_logged = true;
                    }
                    0
                }
            };
            for i in at..at + sent {
                let frame_len = c.packet(i).len() - VNET_HDR_LEN;
                counted.tx(u64::from(c.segments(i)), frame_len as u64);
            }
            at += sent;
            if sent == 0 {
                let lost: u64 = (at..c.len()).map(|i| u64::from(c.segments(i))).sum();
                counted.drop(DropReason::TxRingFull, lost);
                break;
            }
        }
        self.coalesce.clear();
    }
}

/// The virtio-net header and frame of packet `pkt`, if it has both.
fn split(pkt: &mut [u8]) -> Option<([u8; VNET_HDR_LEN], &mut [u8])> {
    if pkt.len() < VNET_HDR_LEN + ethernet::HEADER_LEN {
        return None;
    }
    let (h, frame) = pkt.split_at_mut(VNET_HDR_LEN);
    let mut hdr = [0u8; VNET_HDR_LEN];
    hdr.copy_from_slice(h);
    Some((hdr, frame))
}

impl Worker {
    /// Read the host interface through `gso` from now on.
    pub fn set_host_gso(&mut self, gso: HostGso) {
        self.gso = Some(gso);
    }

    pub fn host_gso_mut(&mut self) -> Option<&mut HostGso> {
        self.gso.as_mut()
    }

    /// One read of the host interface, each packet placed as the mode says
    /// and written to its members. Returns the packets read.
    pub(super) fn gso_round(&mut self, snap: &crate::snapshot::BondSnapshot) -> u32 {
        let Worker {
            slots,
            member_slot,
            host_slot,
            to_control,
            tx,
            gso,
            ..
        } = self;
        let Some(g) = gso.as_mut() else {
            return 0;
        };
        let Some(host) = host_slot.first().copied().flatten() else {
            return 0;
        };
        let n = g.ring.take(GSO_BATCH);
        for i in 0..n {
            if g.ring.truncated(i) {
                slots[host].batch.drop(DropReason::Oversize, 1);
                continue;
            }
            // A tag the kernel kept aside goes back in front of the
            // EtherType; the checksum start moves with it.
            let tag = g.ring.tag(i);
            let Some((hdr, frame)) = split(g.ring.packet_mut(i)) else {
                slots[host].batch.drop(DropReason::Runt, 1);
                continue;
            };
            let hdr = match tag {
                Some(_) => match virtio_net::shifted(hdr, 4) {
                    Some(h) => h,
                    None => {
                        slots[host].batch.drop(DropReason::NoRoomForTag, 1);
                        continue;
                    }
                },
                None => hdr,
            };
            slots[host].batch.rx(frame.len() as u32);
            let mut verdict = forward::from_host(snap, tx, frame, 0);
            if snap.lb.is_some() {
                verdict = lb_rewrite(snap, verdict, frame);
            }
            let item = TxItem { buf: i, hdr, tag };
            match verdict {
                Verdict::ToMember(m) | Verdict::ArpReplyVia(m) => {
                    if !g.queue(m, item) {
                        slots[host].batch.drop(DropReason::NoTxQueue, 1);
                    }
                }
                Verdict::ToAllMembers => {
                    let mut offered = false;
                    for m in snap.members.iter().filter(|m| m.can_tx) {
                        offered |= g.queue(m.id, item);
                    }
                    if !offered {
                        slots[host].batch.drop(DropReason::NoUsableMember, 1);
                    }
                }
                Verdict::ToControl(why) => {
                    let cf = ControlFrame::new(Role::Host(0), why, frame);
                    hand_over(to_control, &mut slots[host].batch, cf);
                }
                Verdict::Drop(r) => slots[host].batch.drop(r, 1),
                Verdict::ToHost { .. } => slots[host].batch.drop(DropReason::NoTxQueue, 1),
            }
        }
        for (m, q) in g.queues.iter_mut().enumerate() {
            if q.is_empty() {
                continue;
            }
            let Some(sock) = g.members[m].as_mut() else {
                q.clear();
                continue;
            };
            let counted = member_slot.get(m).copied().flatten().unwrap_or(host);
            let ring = &g.ring;
            let sent = match sock.send(|i| ring.packet(i), q) {
                Ok(k) => k,
                Err(e) => {
                    if !g.error_logged {
                        tracing::warn!("member {m} write: {e}");
                        g.error_logged = true;
                    }
                    0
                }
            };
            let bytes: u64 = q[..sent]
                .iter()
                .map(|it| {
                    let tag = if it.tag.is_some() { 4 } else { 0 };
                    (g.ring.packet(it.buf).len() - VNET_HDR_LEN + tag) as u64
                })
                .sum();
            slots[counted].batch.tx(sent as u64, bytes);
            let refused = (q.len() - sent) as u64;
            slots[counted].batch.drop(DropReason::TxRingFull, refused);
            q.clear();
        }
        g.ring.release();
        n as u32
    }
}
