//! Enslaving and releasing members, and finding them by id, name or ifindex.

use super::BondCore;
use super::MemberInfo;
use crate::lacp::port::DEFAULT_PORT_PRIORITY;
use crate::monitor::mii::LinkState;
use std::time::Instant;
use xbond_dataplane::snapshot::MemberId;
use xbond_dataplane::wire::MacAddr;

impl BondCore {
    pub fn note_missing(&mut self, name: &str) {
        self.missing.push(name.to_string());
    }

    /// balance-tlb/alb: whether a member with this permanent MAC can join
    /// (it needs a MAC of its own).
    pub fn can_add_member(&self, perm: MacAddr) -> Result<(), String> {
        self.alb
            .as_ref()
            .map_or(Ok(()), |a| a.check_member(perm).map(drop))
    }

    /// 802.3ad port priorities by member name, for members added later.
    pub fn set_port_priorities(&mut self, prio: Vec<(String, u16)>) {
        self.port_priorities = prio;
    }

    /// Per-member `prio` by name (members not listed: 0), then choose the
    /// active member again, as the kernel does when a slave's prio is set.
    pub fn set_member_priorities(&mut self, now: Instant, prio: Vec<(String, i32)>) {
        self.member_prios = prio;
        self.reselect(now);
    }

    pub fn member_prio(&self, name: &str) -> i32 {
        self.member_prios
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, p)| *p)
    }

    /// The members' sockets and programs are attached: the ARP monitor
    /// judges them from now on, not from when they were added.
    pub fn dataplane_up(&mut self, now: Instant) {
        if let Some(a) = &mut self.arp {
            a.start_clock(now);
        }
    }

    /// Add a member with its current carrier; returns its id.
    pub fn add_member(&mut self, now: Instant, info: MemberInfo, carrier: bool) -> MemberId {
        let id = self.mii.add(now, carrier);
        let idx = usize::from(id);
        debug_assert_eq!(idx, self.members.len());
        if let Some(a) = &mut self.arp {
            a.add(now, carrier);
        }
        self.links.push(LinkState::Down);
        self.failures.push(0);
        self.links[idx] = self.combined(id);
        if self.opts.mode.uses_primary() && self.opts.primary.as_deref() == Some(info.name.as_str())
        {
            self.ab.primary = Some(id);
        }
        tracing::info!(bond = %self.name, "enslaving {} as a backup interface with {} link", info.name,
            if carrier { "an up" } else { "a down" });
        self.missing.retain(|m| *m != info.name);
        if let Some(l) = &mut self.lacp {
            let prio = self
                .port_priorities
                .iter()
                .find(|(n, _)| *n == info.name)
                .map_or(DEFAULT_PORT_PRIORITY, |(_, p)| *p);
            let up = self.mii.state(id) == LinkState::Up;
            l.add_port(
                now,
                id,
                info.perm_mac,
                prio,
                up,
                info.speed,
                info.full_duplex,
            );
        }
        if let Some(a) = &mut self.alb {
            let up = self.links[idx] == LinkState::Up;
            if let Err(e) = a.add_member(now, id, info.perm_mac, info.speed.unwrap_or(0), up) {
                tracing::error!(bond = %self.name, "{}: {e}", info.name);
            }
        }
        self.members.push(Some(info));
        self.reselect(now);
        self.after_alb();
        self.after_lacp();
        self.publish_if_changed();
        id
    }

    /// The id the next member added will get (ids are never reused).
    pub fn next_member_id(&self) -> MemberId {
        self.members.len() as MemberId
    }

    /// Release a member, as `echo -IF > .../bonding/slaves` does: it leaves
    /// the snapshot at once and a new active member is chosen if it was the
    /// active one. Returns what the bond knew of it.
    pub fn remove_member(&mut self, now: Instant, id: MemberId) -> Option<MemberInfo> {
        let info = self.members.get_mut(usize::from(id))?.take()?;
        let was_active = self.ab.active == Some(id);
        self.mii.remove(id);
        if let Some(a) = &mut self.arp {
            a.remove(id);
        }
        self.links[usize::from(id)] = LinkState::Down;
        if self.ab.primary == Some(id) {
            // The name stays in `primary`: the member is primary again if
            // it comes back, as in the kernel.
            self.ab.primary = None;
        }
        tracing::info!(bond = %self.name, "releasing {} interface {}",
            if was_active { "active" } else { "backup" }, info.name);
        if let Some(l) = &mut self.lacp {
            l.remove_port(now, id);
        }
        if let Some(a) = &mut self.alb {
            a.remove_member(id);
        }
        self.after_lacp();
        self.reselect(now);
        self.after_alb();
        self.publish_if_changed();
        Some(info)
    }

    pub fn member(&self, id: MemberId) -> Option<&MemberInfo> {
        self.members.get(id as usize).and_then(|m| m.as_ref())
    }

    pub fn member_by_ifindex(&self, ifindex: u32) -> Option<MemberId> {
        self.members
            .iter()
            .position(|m| m.as_ref().is_some_and(|m| m.ifindex == ifindex))
            .map(|i| i as MemberId)
    }

    pub fn member_by_name(&self, name: &str) -> Option<MemberId> {
        self.members
            .iter()
            .position(|m| m.as_ref().is_some_and(|m| m.name == name))
            .map(|i| i as MemberId)
    }

    pub fn members(&self) -> impl Iterator<Item = (MemberId, &MemberInfo)> {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.as_ref().map(|m| (i as MemberId, m)))
    }
}
