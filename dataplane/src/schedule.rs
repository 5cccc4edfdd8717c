//! The TX scheduler: the member (or members) a frame from the host leaves
//! on. It reads the published snapshot and, for balance-rr, a counter owned by
//! the worker (the kernel keeps one per CPU); nothing else. No lock, no
//! allocation, no syscall.

use crate::counters::DropReason;
use crate::hash;
use crate::lb::{self, TxLoad};
use crate::snapshot::{BondMode, BondSnapshot, MemberId};
use std::sync::Arc;

/// What the scheduler decided for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxPlan {
    Member(MemberId),
    /// A copy out of every member that can transmit (broadcast).
    AllMembers,
    /// balance-alb: an ARP reply to a peer of the client table, out of the
    /// peer's member with that member's MAC in it.
    ArpReply(MemberId),
    /// balance-alb: an ARP packet that changes the client table; control
    /// places and sends it.
    Control,
    Drop(DropReason),
}

/// `a % d` and `a / d` for a divisor fixed at publish time, by two
/// multiplications instead of a division (Lemire, Kaser and Kurz, "Faster
/// remainder by direct computation", 2019; exact for every `u32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Divisor {
    d: u32,
    m: u64,
}

impl Divisor {
    pub fn new(d: u32) -> Self {
        Divisor {
            d,
            m: (u64::MAX / u64::from(d.max(1))).wrapping_add(1),
        }
    }

    /// `a % n`; falls back to the instruction if `n` is not the prepared
    /// divisor (a snapshot changed without `prepare`).
    #[inline(always)]
    pub fn rem(self, a: u32, n: u32) -> u32 {
        if self.d == n && n != 0 {
            let low = self.m.wrapping_mul(u64::from(a));
            ((u128::from(low) * u128::from(n)) >> 64) as u32
        } else {
            a % n
        }
    }

    /// `a / n`, for `n >= 2`.
    #[inline(always)]
    pub fn div(self, a: u32, n: u32) -> u32 {
        if self.d == n && n >= 2 {
            ((u128::from(self.m) * u128::from(a)) >> 64) as u32
        } else {
            a / n
        }
    }
}

/// Per-worker scheduler state.
#[derive(Debug, Clone)]
pub struct TxState {
    rr_counter: u32,
    rng: u64,
    /// balance-tlb/alb: the bytes this worker sent per transmit bucket.
    load: Arc<TxLoad>,
}

impl TxState {
    pub fn new(seed: u64) -> Self {
        TxState {
            rr_counter: 0,
            // xorshift must not start at zero.
            rng: seed | 1,
            load: Arc::default(),
        }
    }

    /// The transmit load this worker counts, for control to read.
    pub fn load(&self) -> Arc<TxLoad> {
        Arc::clone(&self.load)
    }

    /// xorshift64*: `packets_per_slave=0` wants a random member per frame,
    /// not a cryptographic one.
    fn random(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

/// Decide where `frame` (from the host) goes; `tci` is the VLAN of the host
/// port it came from, which the kernel's hash sees out of band.
#[inline(always)]
pub fn plan(snap: &BondSnapshot, st: &mut TxState, frame: &[u8], tci: Option<u16>) -> TxPlan {
    match snap.mode {
        BondMode::ActiveBackup => match snap.active {
            Some(m) => TxPlan::Member(m),
            None => TxPlan::Drop(DropReason::NoActiveMember),
        },
        BondMode::BalanceRr => round_robin(snap, st, frame),
        BondMode::BalanceXor | BondMode::Ieee8023ad => xor(snap, frame, tci),
        BondMode::Broadcast => {
            if snap.members.iter().any(|m| m.can_tx) {
                TxPlan::AllMembers
            } else {
                TxPlan::Drop(DropReason::NoUsableMember)
            }
        }
        BondMode::BalanceTlb | BondMode::BalanceAlb => lb::plan(snap, &st.load, frame, tci),
    }
}

/// balance-xor: the kernel's hash modulo the usable members.
#[inline]
pub(crate) fn xor(snap: &BondSnapshot, frame: &[u8], tci: Option<u16>) -> TxPlan {
    let n = snap.usable.len() as u32;
    if n == 0 {
        return TxPlan::Drop(DropReason::NoUsableMember);
    }
    let h = hash::xmit_hash(snap.hash_policy, frame, tci);
    let i = snap.divisors.usable.rem(h, n) as usize;
    match snap.usable.get(i) {
        Some(&m) => TxPlan::Member(m),
        None => TxPlan::Drop(DropReason::NoUsableMember),
    }
}

/// IPv4 carrying IGMP (`bond_xmit_roundrobin_slave_get`).
#[inline]
fn is_igmp(frame: &[u8]) -> bool {
    frame.len() >= 14 + 20
        && frame[12..14] == crate::wire::ethernet::ethertype::IPV4.to_be_bytes()
        && frame[14 + 9] == 2
}

/// `bond_xmit_roundrobin_slave_get`: IGMP stays on the current active member
/// so joins and reports leave one port; everything else takes the next slot.
/// The slot counts every member, and a member that cannot transmit passes its
/// turn to the next one that can, as `bond_get_slave_by_id` does.
fn round_robin(snap: &BondSnapshot, st: &mut TxState, frame: &[u8]) -> TxPlan {
    if is_igmp(frame) {
        if let Some(a) = snap.active {
            return TxPlan::Member(a);
        }
        return by_slot(snap, 0);
    }
    let count = snap.members.len() as u32;
    if count == 0 {
        return TxPlan::Drop(DropReason::NoUsableMember);
    }
    let id = match snap.packets_per_slave {
        0 => st.random(),
        1 => {
            st.rr_counter = st.rr_counter.wrapping_add(1);
            st.rr_counter
        }
        n => {
            st.rr_counter = st.rr_counter.wrapping_add(1);
            snap.divisors.packets_per_slave.div(st.rr_counter, n)
        }
    };
    by_slot(snap, snap.divisors.members.rem(id, count) as usize)
}

/// The first member that can transmit at or after `slot`, wrapping round.
#[inline]
fn by_slot(snap: &BondSnapshot, slot: usize) -> TxPlan {
    if let Some(m) = snap.members.get(slot).filter(|m| m.can_tx) {
        return TxPlan::Member(m.id);
    }
    by_slot_search(snap, slot)
}

#[inline(never)]
fn by_slot_search(snap: &BondSnapshot, slot: usize) -> TxPlan {
    let (tail, head) = snap.members.split_at(slot.min(snap.members.len()));
    head.iter()
        .chain(tail)
        .find(|m| m.can_tx)
        .map_or(TxPlan::Drop(DropReason::NoUsableMember), |m| {
            TxPlan::Member(m.id)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::XmitHashPolicy;
    use crate::snapshot::TxMember;

    fn snap(mode: BondMode, up: &[bool]) -> BondSnapshot {
        let mut s = BondSnapshot::new(mode);
        s.members = up
            .iter()
            .enumerate()
            .map(|(i, &can_tx)| TxMember {
                id: i as MemberId,
                can_tx,
            })
            .collect();
        s.usable = s
            .members
            .iter()
            .filter(|m| m.can_tx)
            .map(|m| m.id)
            .collect();
        s.active = s.usable.first().copied();
        s.prepare();
        s
    }

    fn udp(sport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[12] = 0x08;
        f[14] = 0x45;
        f[23] = 17;
        f[26..30].copy_from_slice(&[198, 18, 0, 1]);
        f[30..34].copy_from_slice(&[198, 18, 0, 2]);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f
    }

    fn picks(s: &BondSnapshot, st: &mut TxState, n: usize, frame: &[u8]) -> Vec<MemberId> {
        (0..n)
            .map(|_| match plan(s, st, frame, None) {
                TxPlan::Member(m) => m,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn divisor_matches_the_instruction() {
        let samples = [
            0u32,
            1,
            2,
            3,
            7,
            1000,
            65535,
            1 << 31,
            u32::MAX - 1,
            u32::MAX,
        ];
        for d in 1..=70u32 {
            let dv = Divisor::new(d);
            for &a in &samples {
                assert_eq!(dv.rem(a, d), a % d, "{a} % {d}");
                if d >= 2 {
                    assert_eq!(dv.div(a, d), a / d, "{a} / {d}");
                }
            }
            // A divisor prepared for another count still gives the right answer.
            assert_eq!(Divisor::new(d + 1).rem(12345, d), 12345 % d);
        }
    }

    #[test]
    fn round_robin_starts_after_the_first_slot_like_the_per_cpu_counter() {
        let s = snap(BondMode::BalanceRr, &[true, true, true]);
        let mut st = TxState::new(1);
        // this_cpu_inc_return() makes the first frame's slot 1.
        assert_eq!(picks(&s, &mut st, 6, &udp(1)), vec![1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn packets_per_slave_sends_runs() {
        let mut s = snap(BondMode::BalanceRr, &[true, true]);
        s.packets_per_slave = 3;
        s.prepare();
        let mut st = TxState::new(1);
        // Counter 1..=8 divided by 3: 0 0 1 1 1 2 2 2 → members 0 0 1 1 1 0 0 0.
        assert_eq!(picks(&s, &mut st, 8, &udp(1)), vec![0, 0, 1, 1, 1, 0, 0, 0]);
    }

    #[test]
    fn packets_per_slave_zero_is_random_but_uses_every_member() {
        let mut s = snap(BondMode::BalanceRr, &[true, true, true]);
        s.packets_per_slave = 0;
        let mut st = TxState::new(42);
        let p = picks(&s, &mut st, 3000, &udp(1));
        for m in 0..3 {
            let n = p.iter().filter(|&&x| x == m).count();
            assert!((800..1200).contains(&n), "member {m}: {n} of 3000");
        }
    }

    #[test]
    fn a_member_that_cannot_transmit_passes_its_turn_on() {
        let s = snap(BondMode::BalanceRr, &[true, false, true]);
        let mut st = TxState::new(1);
        // Slots 1 2 0 1 2 0: slot 1 is down and goes to member 2.
        assert_eq!(picks(&s, &mut st, 6, &udp(1)), vec![2, 2, 0, 2, 2, 0]);
        let none = snap(BondMode::BalanceRr, &[false, false]);
        assert_eq!(
            plan(&none, &mut st, &udp(1), None),
            TxPlan::Drop(DropReason::NoUsableMember)
        );
    }

    #[test]
    fn igmp_stays_on_the_active_member() {
        let mut s = snap(BondMode::BalanceRr, &[true, true]);
        s.active = Some(1);
        let mut igmp = udp(1);
        igmp[23] = 2;
        let mut st = TxState::new(1);
        assert_eq!(picks(&s, &mut st, 4, &igmp), vec![1, 1, 1, 1]);
    }

    #[test]
    fn xor_is_the_kernel_hash_modulo_the_usable_members() {
        let mut s = snap(BondMode::BalanceXor, &[true, true, true]);
        s.hash_policy = XmitHashPolicy::Layer34;
        let mut st = TxState::new(1);
        for sport in 1000..1100 {
            let f = udp(sport);
            let h = hash::xmit_hash(XmitHashPolicy::Layer34, &f, None);
            assert_eq!(
                plan(&s, &mut st, &f, None),
                TxPlan::Member((h % 3) as MemberId)
            );
        }
        // Member 1 down: the hash is taken modulo 2 over members 0 and 2.
        let s2 = {
            let mut x = snap(BondMode::BalanceXor, &[true, false, true]);
            x.hash_policy = XmitHashPolicy::Layer34;
            x.prepare();
            x
        };
        for sport in 1000..1100 {
            let f = udp(sport);
            let h = hash::xmit_hash(XmitHashPolicy::Layer34, &f, None);
            let want = [0, 2][(h % 2) as usize];
            assert_eq!(plan(&s2, &mut st, &f, None), TxPlan::Member(want));
        }
    }

    #[test]
    fn broadcast_needs_one_member_that_can_transmit() {
        let mut st = TxState::new(1);
        assert_eq!(
            plan(
                &snap(BondMode::Broadcast, &[false, true]),
                &mut st,
                &udp(1),
                None
            ),
            TxPlan::AllMembers
        );
        assert_eq!(
            plan(
                &snap(BondMode::Broadcast, &[false, false]),
                &mut st,
                &udp(1),
                None
            ),
            TxPlan::Drop(DropReason::NoUsableMember)
        );
    }
}
