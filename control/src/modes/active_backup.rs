//! Which member is active, as the kernel chooses it (bond_main.c
//! `bond_find_best_slave`, `bond_choose_primary_or_current`,
//! `bond_option_active_slave_set`).

use crate::monitor::mii::LinkState;
use std::time::Duration;
use xbond_dataplane::named_enum;
use xbond_dataplane::snapshot::MemberId;

named_enum!(
    /// `primary_reselect`: when the primary takes over again from another
    /// active member.
    PrimaryReselect { Always = ("always", 0), Better = ("better", 1), Failure = ("failure", 2) } default Always);

/// What the selection needs to know about a member.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub link: LinkState,
    /// Mbit/s, `None` if unknown.
    pub speed: Option<u32>,
    pub full_duplex: Option<bool>,
    /// Time left of its updelay when going back.
    pub back_remaining: Option<Duration>,
    pub present: bool,
    /// The member's `prio`: with no primary up, the highest up member is
    /// chosen as a primary would be.
    pub prio: i32,
}

#[derive(Debug, Clone, Default)]
pub struct ActiveBackup {
    pub primary: Option<MemberId>,
    pub reselect: PrimaryReselect,
    pub active: Option<MemberId>,
    /// Set when `primary` is (re)configured: take it even over a healthy
    /// current member, once.
    pub force_primary: bool,
}

/// Result of a selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    pub new: Option<MemberId>,
    pub old: Option<MemberId>,
    /// The new member was still waiting out its updelay and must be brought
    /// up now (the kernel's "making interface X the new active one N ms earlier").
    pub promote: bool,
}

fn is_up(c: &Candidate) -> bool {
    c.present && c.link == LinkState::Up
}

/// Member `id` of the candidates, which are in member order.
fn at(m: &[Candidate], id: MemberId) -> Option<&Candidate> {
    m.get(usize::from(id))
}

impl ActiveBackup {
    fn primary_or_current(&mut self, m: &[Candidate]) -> Option<MemberId> {
        let prim = self.primary.filter(|&p| at(m, p).is_some_and(is_up));
        let curr = self.active.filter(|&c| at(m, c).is_some_and(is_up));
        let p = match prim {
            Some(p) => {
                if self.force_primary {
                    self.force_primary = false;
                    return Some(p);
                }
                p
            }
            None => {
                // The first up member of the highest prio stands in for
                // the primary when it outranks the active one. The kernel
                // reselects only when the member that came up is the
                // primary or outranks the active one (bond_miimon_commit),
                // so a member of the same prio coming back never takes over.
                let mut hprio: Option<MemberId> = None;
                for (i, c) in (0..).zip(m) {
                    if is_up(c) && hprio.is_none_or(|h| c.prio > m[usize::from(h)].prio) {
                        hprio = Some(i);
                    }
                }
                let outranks = |h: MemberId| {
                    curr.is_none_or(|c| m[usize::from(h)].prio > m[usize::from(c)].prio)
                };
                match hprio {
                    Some(h) if Some(h) != self.active && outranks(h) => h,
                    _ => return curr,
                }
            }
        };
        let Some(c) = curr else { return Some(p) };
        match self.reselect {
            PrimaryReselect::Always => Some(p),
            PrimaryReselect::Failure => Some(c),
            PrimaryReselect::Better => {
                let (mp, mc) = (&m[usize::from(p)], &m[usize::from(c)]);
                let (ps, cs) = (mp.speed.unwrap_or(0), mc.speed.unwrap_or(0));
                let (pd, cd) = (
                    mp.full_duplex.unwrap_or(false),
                    mc.full_duplex.unwrap_or(false),
                );
                if ps < cs || (ps == cs && pd <= cd) {
                    Some(c)
                } else {
                    Some(p)
                }
            }
        }
    }

    /// Pick the member that should be active; report a change if it differs.
    pub fn select(&mut self, m: &[Candidate]) -> Option<Selection> {
        let best = self.primary_or_current(m).or_else(|| {
            // The first member that is up, in member order; failing that, the
            // member going back with the least updelay left.
            let ids = (0..).zip(m);
            ids.clone()
                .find(|(_, c)| is_up(c))
                .map(|(i, _)| i)
                .or_else(|| {
                    ids.filter(|(_, c)| c.present && c.link == LinkState::Back)
                        .min_by_key(|(_, c)| c.back_remaining.unwrap_or(Duration::MAX))
                        .map(|(i, _)| i)
                })
        });
        if best == self.active {
            return None;
        }
        let old = self.active;
        self.active = best;
        let promote = best.is_some_and(|b| at(m, b).is_some_and(|c| c.link == LinkState::Back));
        Some(Selection {
            new: best,
            old,
            promote,
        })
    }

    /// `active_slave`: the member must be up.
    pub fn set_active(
        &mut self,
        idx: MemberId,
        m: &[Candidate],
    ) -> Result<Option<Selection>, String> {
        if self.active == Some(idx) {
            return Ok(None);
        }
        if !at(m, idx).is_some_and(is_up) {
            return Err("the member or its link is down".into());
        }
        let old = self.active;
        self.active = Some(idx);
        Ok(Some(Selection {
            new: Some(idx),
            old,
            promote: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(link: LinkState) -> Candidate {
        Candidate {
            link,
            speed: Some(10000),
            full_duplex: Some(true),
            back_remaining: None,
            present: true,
            prio: 0,
        }
    }

    #[test]
    fn first_up_member_in_order_without_primary() {
        let mut ab = ActiveBackup::default();
        let m = [c(LinkState::Down), c(LinkState::Up), c(LinkState::Up)];
        assert_eq!(
            ab.select(&m),
            Some(Selection {
                new: Some(1),
                old: None,
                promote: false
            })
        );
        assert_eq!(ab.select(&m), None, "stable while nothing changes");
        let m = [c(LinkState::Up), c(LinkState::Down), c(LinkState::Up)];
        assert_eq!(ab.select(&m).unwrap().new, Some(0));
    }

    #[test]
    fn current_is_kept_when_another_member_returns() {
        let mut ab = ActiveBackup {
            active: Some(1),
            ..Default::default()
        };
        let m = [c(LinkState::Up), c(LinkState::Up)];
        assert_eq!(ab.select(&m), None, "no primary: no preemption");
    }

    #[test]
    fn primary_reselect_policies() {
        let both = [c(LinkState::Up), c(LinkState::Up)];
        for (policy, expect) in [
            (PrimaryReselect::Always, Some(0)),
            (PrimaryReselect::Failure, None),
            (PrimaryReselect::Better, None),
        ] {
            let mut ab = ActiveBackup {
                primary: Some(0),
                reselect: policy,
                active: Some(1),
                ..Default::default()
            };
            assert_eq!(ab.select(&both).and_then(|s| s.new), expect, "{policy:?}");
        }
        let mut fast = both;
        fast[0].speed = Some(25000);
        let mut ab = ActiveBackup {
            primary: Some(0),
            reselect: PrimaryReselect::Better,
            active: Some(1),
            ..Default::default()
        };
        assert_eq!(
            ab.select(&fast).unwrap().new,
            Some(0),
            "better: a faster primary wins"
        );
        let mut ab = ActiveBackup {
            primary: Some(0),
            reselect: PrimaryReselect::Failure,
            active: Some(1),
            force_primary: true,
        };
        assert_eq!(
            ab.select(&both).unwrap().new,
            Some(0),
            "a newly set primary is taken once"
        );
        ab.active = Some(1);
        assert_eq!(ab.select(&both), None);
    }

    #[test]
    fn with_nothing_up_the_soonest_going_back_member_is_promoted() {
        let mut ab = ActiveBackup::default();
        let mut a = c(LinkState::Back);
        a.back_remaining = Some(Duration::from_millis(300));
        let mut b = c(LinkState::Back);
        b.back_remaining = Some(Duration::from_millis(100));
        let s = ab.select(&[a, b, c(LinkState::Down)]).unwrap();
        assert_eq!(
            s,
            Selection {
                new: Some(1),
                old: None,
                promote: true
            }
        );
        let s = ab
            .select(&[c(LinkState::Down), c(LinkState::Down)])
            .unwrap();
        assert_eq!(s.new, None);
    }

    #[test]
    fn set_active_needs_an_up_member() {
        let mut ab = ActiveBackup {
            active: Some(0),
            ..Default::default()
        };
        let m = [c(LinkState::Up), c(LinkState::Down), c(LinkState::Up)];
        assert!(ab.set_active(1, &m).is_err());
        assert_eq!(ab.set_active(2, &m).unwrap().unwrap().new, Some(2));
        assert_eq!(ab.set_active(2, &m).unwrap(), None);
    }
}
