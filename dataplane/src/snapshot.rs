//! The bond as the workers see it: an immutable snapshot that control replaces
//! by an atomic pointer swap and workers load once per batch.

use arc_swap::ArcSwap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A member's index in the bond's member table; stable for the member's life.
pub type MemberId = u16;

/// The bonding mode, as far as the data path cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Mode 1: one active member carries everything.
    ActiveBackup,
}

/// What the TX scheduler and the RX filter need, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BondSnapshot {
    /// Increases with every publish.
    pub generation: u64,
    pub mode: Mode,
    /// The member that transmits (active-backup).
    pub active: Option<MemberId>,
    /// Deliver frames received on inactive members too (`all_slaves_active=1`).
    pub all_slaves_active: bool,
}

impl BondSnapshot {
    pub fn new(mode: Mode) -> Self {
        BondSnapshot {
            generation: 0,
            mode,
            active: None,
            all_slaves_active: false,
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
    pub fn new(initial: BondSnapshot) -> Arc<Self> {
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(initial),
            stop: AtomicBool::new(false),
        })
    }

    /// Replace the snapshot; the generation is bumped here.
    pub fn publish(&self, mut next: BondSnapshot) {
        next.generation = self.snapshot.load().generation + 1;
        self.snapshot.store(Arc::new(next));
    }
}
