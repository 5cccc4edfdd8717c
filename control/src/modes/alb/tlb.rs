//! The transmit table: destinations placed on members by measured load and
//! rebalanced every interval (balance-tlb and balance-alb).

use super::*;

impl Alb {
    // ---- transmit load balancing -------------------------------------------

    /// Take a member's destinations off it (`tlb_clear_slave`); with
    /// `save_load` their load so far becomes their history.
    pub(super) fn clear_tx(&mut self, id: MemberId, save_load: bool) {
        for b in 0..BUCKETS {
            if self.tx[b] == id {
                self.tx[b] = UNASSIGNED;
                if save_load {
                    self.save_history(b);
                }
            }
        }
        if let Some(l) = self.member_load.get_mut(usize::from(id)) {
            *l = 0;
        }
    }

    pub(super) fn rebalance_secs(&self) -> u64 {
        self.cfg.rebalance_interval.as_secs().max(1)
    }

    pub(super) fn save_history(&mut self, b: usize) {
        self.history[b] = 1 + self.tx_bytes[b] / self.rebalance_secs();
        self.tx_bytes[b] = 0;
    }

    /// Spare capacity in bits per second (`compute_gap`).
    pub(super) fn gap(&self, id: MemberId) -> i128 {
        let speed = self.member(id).map_or(0, |m| m.speed);
        (i128::from(speed) << 20) - (i128::from(self.member_load[usize::from(id)]) << 3)
    }

    /// The member with the most spare capacity (`tlb_get_least_loaded_slave`).
    pub(super) fn least_loaded(&self) -> Option<MemberId> {
        let mut best: Option<(MemberId, i128)> = None;
        for id in self.ids().filter(|&i| self.can_tx(i)) {
            let g = self.gap(id);
            if best.is_none_or(|(_, bg)| g > bg) {
                best = Some((id, g));
            }
        }
        best.map(|b| b.0)
    }

    pub(super) fn assign(&mut self, b: usize, weight: u64) {
        if let Some(m) = self.least_loaded() {
            self.tx[b] = m;
            self.member_load[usize::from(m)] += weight;
        }
    }

    /// Balance the transmit table again: each destination's history is
    /// its rate over the interval, member loads start over (the active
    /// member's from the unbalanced traffic), and the destinations that
    /// sent are placed again, heaviest first.
    pub(super) fn rebalance_tx(&mut self) {
        let mut sent: Vec<usize> = Vec::new();
        for b in 0..BUCKETS {
            if self.tx[b] != UNASSIGNED {
                if self.tx_bytes[b] > 0 {
                    sent.push(b);
                }
                self.save_history(b);
                self.tx[b] = UNASSIGNED;
            }
        }
        self.member_load.iter_mut().for_each(|l| *l = 0);
        if let Some(a) = self.active {
            self.member_load[usize::from(a)] = self.unbalanced / self.rebalance_secs();
        }
        self.unbalanced = 0;
        sent.sort_by_key(|&b| std::cmp::Reverse(self.history[b]));
        for b in sent {
            self.assign(b, self.history[b]);
        }
        self.counters.tx_rebalances += 1;
    }

    /// What the workers sent since the last reading: destinations seen for
    /// the first time get a member.
    pub(super) fn take_load(&mut self, load: &LoadTotals) {
        let mut new = Vec::new();
        for b in 0..BUCKETS {
            let d = load.bytes[b].saturating_sub(self.seen.bytes[b]);
            if d == 0 {
                continue;
            }
            self.tx_bytes[b] += d;
            if self.cfg.dynamic && self.tx[b] == UNASSIGNED {
                if self.history[b] == 0 {
                    self.history[b] = 1 + d * TICKS_PER_SEC;
                }
                new.push(b);
            }
        }
        // Heaviest first, as at a rebalance.
        new.sort_by_key(|&b| std::cmp::Reverse(self.history[b]));
        for b in new {
            self.assign(b, self.history[b]);
        }
        self.unbalanced += load.unbalanced.saturating_sub(self.seen.unbalanced);
        self.seen = load.clone();
    }

    /// The transmit table for status, destinations that have a member or
    /// sent since the last rebalance.
    pub fn tx_buckets(&self) -> Vec<TxBucket> {
        (0..BUCKETS)
            .filter(|&b| self.tx[b] != UNASSIGNED || self.tx_bytes[b] > 0)
            .map(|b| TxBucket {
                bucket: b as u8,
                member: (self.tx[b] != UNASSIGNED).then_some(self.tx[b]),
                load: self.history[b],
                bytes: self.tx_bytes[b],
            })
            .collect()
    }

    /// Each member's assigned load (bytes per second).
    pub fn member_load(&self, id: MemberId) -> u64 {
        self.member_load.get(usize::from(id)).copied().unwrap_or(0)
    }
}
