//! The bond as the workers see it: an immutable snapshot that control replaces
//! by an atomic pointer swap and workers load once per batch.

use crate::hash::XmitHashPolicy;
use crate::lb::LbTables;
use crate::schedule::Divisor;
use crate::wire::vlan::VidSet;
use crate::wire::MacAddr;
use arc_swap::ArcSwap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A member's index in the bond's member table; stable for the member's life.
pub type MemberId = u16;

crate::named_enum!(
    /// The kernel's bonding modes (`mode`), numbered and named as the kernel
    /// does; the one mode enum of config, snapshot, hash and CLI.
    ///
    /// On the data path: balance-rr sends to members in turn,
    /// `packets_per_slave` frames each; active-backup sends everything out of
    /// the active member; balance-xor and 802.3ad hash modulo the usable
    /// (802.3ad: distributing) members, and 802.3ad receives only on
    /// collecting members; broadcast sends every frame out of every member
    /// that can transmit; balance-tlb sends IP traffic by the transmit table
    /// (`lb`) and receives on the active member only; balance-alb also
    /// balances the host's ARP replies by the client table and receives
    /// unicast on every member.
    BondMode { BalanceRr = ("balance-rr", 0), ActiveBackup = ("active-backup", 1), BalanceXor = ("balance-xor", 2),
        Broadcast = ("broadcast", 3), Ieee8023ad = ("802.3ad", 4), BalanceTlb = ("balance-tlb", 5),
        BalanceAlb = ("balance-alb", 6) } default BalanceRr);

impl BondMode {
    /// The long name `/proc/net/bonding` prints (`bond_mode_name()`).
    pub fn proc_name(self) -> &'static str {
        match self {
            BondMode::BalanceRr => "load balancing (round-robin)",
            BondMode::ActiveBackup => "fault-tolerance (active-backup)",
            BondMode::BalanceXor => "load balancing (xor)",
            BondMode::Broadcast => "fault-tolerance (broadcast)",
            BondMode::Ieee8023ad => "IEEE 802.3ad Dynamic link aggregation",
            BondMode::BalanceTlb => "transmit load balancing",
            BondMode::BalanceAlb => "adaptive load balancing",
        }
    }

    /// Modes that have a primary and an active member.
    pub fn uses_primary(self) -> bool {
        matches!(
            self,
            BondMode::ActiveBackup | BondMode::BalanceTlb | BondMode::BalanceAlb
        )
    }

    /// balance-tlb and balance-alb.
    pub fn is_lb(self) -> bool {
        matches!(self, BondMode::BalanceTlb | BondMode::BalanceAlb)
    }

    pub fn uses_xmit_hash(self) -> bool {
        matches!(
            self,
            BondMode::BalanceXor
                | BondMode::Ieee8023ad
                | BondMode::BalanceTlb
                | BondMode::BalanceAlb
        )
    }
}

/// A member in the bond's order, as the round-robin and broadcast paths
/// walk them (the kernel's slave list with `bond_slave_can_tx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxMember {
    pub id: MemberId,
    /// Link up: the member may transmit.
    pub can_tx: bool,
}

/// What the TX scheduler and the RX filter need, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BondSnapshot {
    /// Increases with every publish.
    pub generation: u64,
    pub mode: BondMode,
    /// The member that transmits (active-backup); in round-robin the one that
    /// carries IGMP, as the kernel's `curr_active_slave`.
    pub active: Option<MemberId>,
    /// Deliver frames received on inactive members too (`all_slaves_active=1`).
    pub all_slaves_active: bool,
    /// Every member, in the bond's order.
    pub members: Vec<TxMember>,
    /// The members balance-xor hashes over, in the bond's order (the kernel's
    /// `usable_slaves` array).
    pub usable: Vec<MemberId>,
    /// 802.3ad: the members whose received frames reach the host.
    pub collecting: Vec<MemberId>,
    pub hash_policy: XmitHashPolicy,
    /// balance-rr: frames per member before moving on; 0 = a random member.
    pub packets_per_slave: u32,
    /// The VLANs with a host port; tagged frames of any other VLAN are
    /// dropped (and counted).
    pub vlans: VidSet,
    /// Deliver frames with an 802.1ad (QinQ) outer tag to the bond's own
    /// interface unchanged; else drop them.
    pub qinq_pass: bool,
    /// ARP/NS link monitoring is on: copy every ARP, Neighbor Solicitation
    /// and Neighbor Advertisement a member receives to control (the frame
    /// itself goes on as any other).
    pub copy_probes: bool,
    /// balance-tlb/alb: the bond's MAC, which the host interfaces have.
    pub bond_mac: MacAddr,
    /// balance-tlb/alb: each member's MAC by member id (the active member
    /// has the bond's); empty in the other modes.
    pub macs: Vec<MacAddr>,
    /// balance-tlb/alb: the transmit and client tables.
    pub lb: Option<Box<LbTables>>,
    /// The three divisors of the scheduler, prepared once per publish so
    /// that no frame pays for a division instruction.
    pub(crate) divisors: Divisors,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Divisors {
    pub usable: Divisor,
    pub members: Divisor,
    pub packets_per_slave: Divisor,
}

impl BondSnapshot {
    /// Compute what the scheduler derives from the member lists; `publish`
    /// does this, so only a snapshot used without publishing needs it.
    pub fn prepare(&mut self) {
        self.divisors = Divisors {
            usable: Divisor::new(self.usable.len() as u32),
            members: Divisor::new(self.members.len() as u32),
            packets_per_slave: Divisor::new(self.packets_per_slave),
        };
    }
}

impl BondSnapshot {
    pub fn new(mode: BondMode) -> Self {
        BondSnapshot {
            generation: 0,
            mode,
            active: None,
            all_slaves_active: false,
            members: Vec::new(),
            usable: Vec::new(),
            collecting: Vec::new(),
            hash_policy: XmitHashPolicy::Layer2,
            packets_per_slave: 1,
            vlans: VidSet::default(),
            qinq_pass: false,
            copy_probes: false,
            bond_mac: MacAddr::ZERO,
            macs: Vec::new(),
            lb: None,
            divisors: Divisors::default(),
        }
    }
}

/// What control shares with its workers.
#[derive(Debug)]
pub struct Shared {
    pub snapshot: ArcSwap<BondSnapshot>,
    pub stop: AtomicBool,
}

impl Shared {
    pub fn new(mut initial: BondSnapshot) -> Arc<Self> {
        initial.prepare();
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(initial),
            stop: AtomicBool::new(false),
        })
    }

    /// Replace the snapshot; the generation is bumped here.
    pub fn publish(&self, mut next: BondSnapshot) {
        next.generation = self.snapshot.load().generation + 1;
        next.prepare();
        self.snapshot.store(Arc::new(next));
    }
}
