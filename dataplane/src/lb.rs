//! balance-tlb and balance-alb on the data path (the kernel's bond_alb.c):
//! the transmit table control fills (a member per destination bucket), the
//! bytes each worker sent per bucket for control to balance by, the
//! ARP-reply fast path of receive load balancing, and the MAC rewrites
//! that let members keep their own addresses while the host sees one.
//!
//! Nothing here changes a table: a frame only reads the published snapshot
//! and adds to its worker's own counters.

use crate::counters::DropReason;
use crate::hash;
use crate::schedule::{self, TxPlan};
use crate::snapshot::{BondMode, BondSnapshot, MemberId};
use crate::wire::ethernet::ethertype;
use crate::wire::{arp, ethernet, MacAddr};
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries of the transmit and client tables (the kernel's hashes are a
/// byte wide).
pub const BUCKETS: usize = 256;
/// A transmit bucket no member has been given yet.
pub const UNASSIGNED: MemberId = MemberId::MAX;

const ETHERTYPE_IPV4: [u8; 2] = ethertype::IPV4.to_be_bytes();
const ETHERTYPE_IPV6: [u8; 2] = ethertype::IPV6.to_be_bytes();
const ETHERTYPE_ARP: [u8; 2] = ethertype::ARP.to_be_bytes();
const IPV6_ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const IPPROTO_IGMP: u8 = 2;

/// The kernel's `_simple_hash`: every byte XORed together.
#[inline]
pub fn fold(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |h, b| h ^ b)
}

/// A peer of receive load balancing, as the data path needs it to send
/// the host's ARP replies to that peer without asking control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The bond's address the host answers from.
    pub ip_src: [u8; 4],
    /// The peer's address.
    pub ip_dst: [u8; 4],
    /// The sender MAC the host's replies carry (before the rewrite).
    pub mac_src: MacAddr,
    /// The peer's MAC.
    pub mac_dst: MacAddr,
    /// The member whose MAC the peer is given.
    pub member: MemberId,
}

/// The tables of balance-tlb and balance-alb, as control last published
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbTables {
    /// `tlb_dynamic_lb=1`: the member is the bucket's entry in `tx`; else
    /// the transmit hash modulo the usable members.
    pub dynamic: bool,
    /// The member of each transmit bucket, or [`UNASSIGNED`] (the active
    /// member carries it until control assigns one).
    pub tx: [MemberId; BUCKETS],
    /// balance-alb: the client in each slot of the table (by the XOR of
    /// the peer's address bytes).
    pub clients: [Option<Client>; BUCKETS],
}

impl LbTables {
    pub fn new(dynamic: bool) -> Self {
        LbTables {
            dynamic,
            tx: [UNASSIGNED; BUCKETS],
            clients: [None; BUCKETS],
        }
    }
}

/// Bytes one worker sent per transmit bucket, bytes it sent unbalanced
/// (broadcast, ARP, non-IP), and the ARP replies it gave a member's MAC,
/// since it started. The worker is the only writer, so a relaxed load and
/// store is all a frame costs; control sums every worker's counts.
#[derive(Debug)]
pub struct TxLoad {
    bytes: [AtomicU64; BUCKETS],
    unbalanced: AtomicU64,
    arp_replies: AtomicU64,
}

impl Default for TxLoad {
    fn default() -> Self {
        TxLoad {
            bytes: std::array::from_fn(|_| AtomicU64::new(0)),
            unbalanced: AtomicU64::new(0),
            arp_replies: AtomicU64::new(0),
        }
    }
}

#[inline]
fn bump(c: &AtomicU64, n: usize) {
    c.store(c.load(Ordering::Relaxed) + n as u64, Ordering::Relaxed);
}

impl TxLoad {
    #[inline]
    fn add(&self, bucket: u8, len: usize) {
        bump(&self.bytes[usize::from(bucket)], len);
    }

    /// Add these counts to `totals`.
    pub fn add_to(&self, totals: &mut LoadTotals) {
        for (t, c) in totals.bytes.iter_mut().zip(&self.bytes) {
            *t += c.load(Ordering::Relaxed);
        }
        totals.unbalanced += self.unbalanced.load(Ordering::Relaxed);
        totals.arp_replies += self.arp_replies.load(Ordering::Relaxed);
    }
}

/// Every worker's [`TxLoad`] summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadTotals {
    pub bytes: [u64; BUCKETS],
    pub unbalanced: u64,
    pub arp_replies: u64,
}

impl Default for LoadTotals {
    fn default() -> Self {
        LoadTotals {
            bytes: [0; BUCKETS],
            unbalanced: 0,
            arp_replies: 0,
        }
    }
}

/// How a frame from the host is placed.
enum Kind {
    /// Balanced by destination, in this bucket (balance-alb's own hash;
    /// balance-tlb takes the transmit hash).
    Balanced(u8),
    /// An ARP packet (balance-alb).
    Arp,
    /// Out of the active member.
    Unbalanced,
}

/// `bond_xmit_tlb_slave_get`: unicast IPv4 and IPv6 are balanced.
#[inline]
fn tlb_kind(frame: &[u8]) -> Kind {
    let ethertype = [frame[12], frame[13]];
    if frame[0] & 1 == 0 && (ethertype == ETHERTYPE_IPV4 || ethertype == ETHERTYPE_IPV6) {
        Kind::Balanced(0)
    } else {
        Kind::Unbalanced
    }
}

/// `bond_xmit_alb_slave_get`: IPv4 except broadcast and IGMP, IPv6 except
/// all-nodes multicast and duplicate address detection (an unspecified
/// source), each by its destination address; ARP to receive balancing.
#[inline]
fn alb_kind(frame: &[u8]) -> Kind {
    let broadcast = frame[..6] == MacAddr::BROADCAST.0;
    match [frame[12], frame[13]] {
        ETHERTYPE_IPV4 => {
            if broadcast || frame.len() < 14 + 20 {
                return Kind::Unbalanced;
            }
            let daddr = &frame[30..34];
            if daddr == [255; 4] || frame[23] == IPPROTO_IGMP {
                return Kind::Unbalanced;
            }
            Kind::Balanced(fold(daddr))
        }
        ETHERTYPE_IPV6 => {
            if broadcast || frame[..6] == IPV6_ALL_NODES_MAC || frame.len() < 14 + 40 {
                return Kind::Unbalanced;
            }
            if frame[22..38].iter().all(|&b| b == 0) {
                return Kind::Unbalanced;
            }
            Kind::Balanced(fold(&frame[38..54]))
        }
        ETHERTYPE_ARP => Kind::Arp,
        _ => Kind::Unbalanced,
    }
}

#[inline]
fn via_active(snap: &BondSnapshot) -> TxPlan {
    match snap.active {
        Some(m) => TxPlan::Member(m),
        None => TxPlan::Drop(DropReason::NoActiveMember),
    }
}

/// The member a frame from the host leaves on in balance-tlb or
/// balance-alb (the frame is at least an Ethernet header long).
#[inline]
pub(crate) fn plan(snap: &BondSnapshot, load: &TxLoad, frame: &[u8], tci: Option<u16>) -> TxPlan {
    let Some(lb) = snap.lb.as_deref() else {
        return via_active(snap);
    };
    let alb = snap.mode == BondMode::BalanceAlb;
    let kind = if alb {
        alb_kind(frame)
    } else {
        tlb_kind(frame)
    };
    let bucket = match kind {
        Kind::Balanced(_) if !lb.dynamic => {
            // As balance-xor over the usable members.
            return match schedule::xor(snap, frame, tci) {
                TxPlan::Drop(_) => via_active(snap),
                p => p,
            };
        }
        Kind::Balanced(b) if alb => b,
        Kind::Balanced(_) => hash::xmit_hash(snap.hash_policy, frame, tci) as u8,
        Kind::Arp => {
            let p = arp_reply(snap, lb, frame);
            if let TxPlan::ArpReply(_) = p {
                bump(&load.arp_replies, 1);
            }
            return p;
        }
        Kind::Unbalanced => {
            if lb.dynamic {
                bump(&load.unbalanced, frame.len());
            }
            return via_active(snap);
        }
    };
    load.add(bucket, frame.len());
    match lb.tx[usize::from(bucket)] {
        UNASSIGNED => via_active(snap),
        m => TxPlan::Member(m),
    }
}

/// `rlb_arp_xmit`, the part that needs no change to the client table: a
/// reply the host sends to a peer the table already holds, exactly as it
/// holds it, leaves on the peer's member. Requests, and replies that would
/// change the table, go to control; ARP the bond did not originate (a
/// bridged host's) goes out of the active member unchanged.
#[inline]
fn arp_reply(snap: &BondSnapshot, lb: &LbTables, frame: &[u8]) -> TxPlan {
    let Some(r) = arp::Repr::in_frame(frame) else {
        return via_active(snap);
    };
    if r.sender_hw.is_zero() || !snap.macs.contains(&r.sender_hw) {
        return via_active(snap);
    }
    match r.operation {
        arp::Operation::Reply => {
            let (src, dst) = (r.sender_ip.octets(), r.target_ip.octets());
            match lb.clients[usize::from(fold(&dst))] {
                Some(c)
                    if c.ip_src == src
                        && c.ip_dst == dst
                        && c.mac_src == r.sender_hw
                        && (r.target_hw == c.mac_dst || r.target_hw == MacAddr::BROADCAST) =>
                {
                    TxPlan::ArpReply(c.member)
                }
                _ => TxPlan::Control,
            }
        }
        arp::Operation::Request => TxPlan::Control,
        arp::Operation::Unknown(_) => via_active(snap),
    }
}

/// The MAC a frame leaving `member` must carry as its source in tlb/alb
/// (`bond_do_alb_xmit`): the member's own, unless it is the active member,
/// which carries the bond's.
#[inline]
pub fn source_mac(snap: &BondSnapshot, member: MemberId) -> Option<MacAddr> {
    if snap.lb.is_none() || snap.active == Some(member) {
        return None;
    }
    snap.macs.get(usize::from(member)).copied()
}

/// Rewrite a frame from the host for `member`: the Ethernet source, and
/// for an ARP reply placed by the client table the sender MAC too, so
/// the peer learns the member's address.
#[inline]
pub fn rewrite_for_member(
    snap: &BondSnapshot,
    member: MemberId,
    frame: &mut [u8],
    arp_reply: bool,
) {
    if let (Some(mac), Ok(mut eth)) = (
        source_mac(snap, member),
        ethernet::Packet::new_checked(&mut *frame),
    ) {
        eth.set_src(mac);
    }
    if arp_reply {
        if let Some(&mac) = snap.macs.get(usize::from(member)) {
            arp::set_sender_hw_in_frame(frame, mac);
        }
    }
}

/// A unicast frame received for a member's own MAC is for the bond: its
/// destination becomes the bond's MAC, so the host interface accepts it
/// (a kernel slave receives it as addressed to itself). Frames for the
/// bond's MAC, multicast and foreign frames are left alone.
#[inline]
pub fn adopt_for_host(snap: &BondSnapshot, frame: &mut [u8]) {
    let Ok(mut eth) = ethernet::Packet::new_checked(frame) else {
        return;
    };
    let dst = eth.dst();
    if dst == snap.bond_mac || dst.is_multicast() {
        return;
    }
    if snap.macs.contains(&dst) {
        eth.set_dst(snap.bond_mac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::TxMember;
    use crate::wire::arp::{Operation, Repr};
    use std::net::Ipv4Addr;

    const BOND: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const M1: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

    fn snap(mode: BondMode, dynamic: bool) -> BondSnapshot {
        let mut s = BondSnapshot::new(mode);
        s.members = (0..2).map(|id| TxMember { id, can_tx: true }).collect();
        s.usable = vec![0, 1];
        s.active = Some(0);
        s.bond_mac = BOND;
        s.macs = vec![BOND, M1];
        s.lb = Some(Box::new(LbTables::new(dynamic)));
        s.prepare();
        s
    }

    fn ipv4(dst: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 9, 9]);
        f[6..12].copy_from_slice(&BOND.0);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4);
        f[14] = 0x45;
        f[23] = 17;
        f[26..30].copy_from_slice(&[198, 18, 0, 1]);
        f[30..34].copy_from_slice(&dst);
        f
    }

    fn reply(to: [u8; 4], to_mac: MacAddr) -> [u8; 60] {
        Repr {
            operation: Operation::Reply,
            sender_hw: BOND,
            sender_ip: Ipv4Addr::new(198, 18, 0, 1),
            target_hw: to_mac,
            target_ip: Ipv4Addr::from(to),
        }
        .frame(to_mac, BOND)
    }

    #[test]
    fn fold_is_the_kernels_simple_hash() {
        assert_eq!(fold(&[198, 18, 0, 12]), 198 ^ 18 ^ 12);
        assert_eq!(fold(&[]), 0);
    }

    #[test]
    fn alb_buckets_by_destination_and_counts_bytes_only_for_balanced_frames() {
        let mut s = snap(BondMode::BalanceAlb, true);
        let load = TxLoad::default();
        let f = ipv4([198, 18, 0, 12]);
        let b = fold(&[198, 18, 0, 12]);
        // Unassigned: out of the active member, bytes counted for control.
        assert_eq!(plan(&s, &load, &f, None), TxPlan::Member(0));
        s.lb.as_mut().unwrap().tx[usize::from(b)] = 1;
        assert_eq!(plan(&s, &load, &f, None), TxPlan::Member(1));
        let mut t = LoadTotals::default();
        load.add_to(&mut t);
        assert_eq!(t.bytes[usize::from(b)], 120);
        // Broadcast, IGMP and non-IP are unbalanced.
        let mut bcast = ipv4([255; 4]);
        assert_eq!(plan(&s, &load, &bcast, None), TxPlan::Member(0));
        bcast[30..34].copy_from_slice(&[198, 18, 0, 12]);
        bcast[23] = IPPROTO_IGMP;
        assert_eq!(plan(&s, &load, &bcast, None), TxPlan::Member(0));
        let mut t2 = LoadTotals::default();
        load.add_to(&mut t2);
        assert_eq!(t2.unbalanced, 120);
        assert_eq!(t2.bytes, t.bytes);
    }

    #[test]
    fn alb_ipv6_skips_all_nodes_and_duplicate_address_detection() {
        let s = snap(BondMode::BalanceAlb, true);
        let load = TxLoad::default();
        let mut f = vec![0u8; 80];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 9, 9]);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6);
        f[22] = 0x20; // source 2000::
        f[38..54].copy_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        assert!(matches!(alb_kind(&f), Kind::Balanced(b) if b == fold(&f[38..54])));
        let mut dad = f.clone();
        dad[22] = 0;
        assert!(matches!(alb_kind(&dad), Kind::Unbalanced));
        let mut all = f.clone();
        all[..6].copy_from_slice(&IPV6_ALL_NODES_MAC);
        assert!(matches!(alb_kind(&all), Kind::Unbalanced));
        assert!(matches!(alb_kind(&f[..53]), Kind::Unbalanced));
        assert_eq!(plan(&s, &load, &f, None), TxPlan::Member(0));
    }

    #[test]
    fn tlb_buckets_by_the_transmit_hash_and_static_tlb_hashes_over_usable() {
        let mut s = snap(BondMode::BalanceTlb, true);
        s.hash_policy = hash::XmitHashPolicy::Layer34;
        let load = TxLoad::default();
        let f = ipv4([198, 18, 0, 12]);
        let b = hash::xmit_hash(s.hash_policy, &f, None) as u8;
        s.lb.as_mut().unwrap().tx[usize::from(b)] = 1;
        assert_eq!(plan(&s, &load, &f, None), TxPlan::Member(1));
        // ARP is not IP: unbalanced in tlb.
        assert_eq!(
            plan(&s, &load, &reply([198, 18, 0, 12], M1), None),
            TxPlan::Member(0)
        );
        let mut st = snap(BondMode::BalanceTlb, false);
        st.hash_policy = hash::XmitHashPolicy::Layer34;
        let h = hash::xmit_hash(st.hash_policy, &f, None);
        assert_eq!(
            plan(&st, &load, &f, None),
            TxPlan::Member((h % 2) as MemberId)
        );
        st.active = None;
        let mut mcast = f.clone();
        mcast[0] = 1;
        assert_eq!(
            plan(&st, &load, &mcast, None),
            TxPlan::Drop(DropReason::NoActiveMember)
        );
    }

    #[test]
    fn arp_replies_the_table_holds_take_the_fast_path_and_the_rest_go_to_control() {
        let mut s = snap(BondMode::BalanceAlb, true);
        let load = TxLoad::default();
        let peer = [198, 18, 0, 12];
        let peer_mac = MacAddr([2, 0, 0, 0, 9, 9]);
        let r = reply(peer, peer_mac);
        assert_eq!(plan(&s, &load, &r, None), TxPlan::Control, "unknown peer");
        s.lb.as_mut().unwrap().clients[usize::from(fold(&peer))] = Some(Client {
            ip_src: [198, 18, 0, 1],
            ip_dst: peer,
            mac_src: BOND,
            mac_dst: peer_mac,
            member: 1,
        });
        assert_eq!(plan(&s, &load, &r, None), TxPlan::ArpReply(1));
        // A new MAC for the peer changes the table: control.
        let moved = reply(peer, MacAddr([2, 0, 0, 0, 9, 8]));
        assert_eq!(plan(&s, &load, &moved, None), TxPlan::Control);
        // Requests always change the table.
        let req = Repr::request_frame(BOND, Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::from(peer));
        assert_eq!(plan(&s, &load, &req, None), TxPlan::Control);
        // A bridged host's ARP is not ours to balance.
        let mut foreign = r;
        foreign[14 + 8..14 + 14].copy_from_slice(&[2, 0, 0, 0, 7, 7]);
        assert_eq!(plan(&s, &load, &foreign, None), TxPlan::Member(0));
        // Malformed ARP goes out as it came, from the active member.
        assert_eq!(plan(&s, &load, &r[..30], None), TxPlan::Member(0));
    }

    #[test]
    fn rewrites_give_the_member_its_mac_and_the_host_the_bonds() {
        let s = snap(BondMode::BalanceAlb, true);
        let mut r = reply([198, 18, 0, 12], MacAddr([2, 0, 0, 0, 9, 9]));
        rewrite_for_member(&s, 1, &mut r, true);
        assert_eq!(&r[6..12], &M1.0, "Ethernet source");
        assert_eq!(&r[22..28], &M1.0, "ARP sender MAC");
        // The active member keeps the bond's MAC.
        let mut f = ipv4([198, 18, 0, 12]);
        rewrite_for_member(&s, 0, &mut f, false);
        assert_eq!(&f[6..12], &BOND.0);
        // Received for member 1's MAC: handed to the host as the bond's.
        let mut rx = ipv4([198, 18, 0, 1]);
        rx[..6].copy_from_slice(&M1.0);
        adopt_for_host(&s, &mut rx);
        assert_eq!(&rx[..6], &BOND.0);
        let mut other = ipv4([198, 18, 0, 1]);
        adopt_for_host(&s, &mut other);
        assert_eq!(&other[..6], &[2, 0, 0, 0, 9, 9], "not ours: unchanged");
    }
}
