//! Receive load balancing (balance-alb): the client table, the host's ARP
//! replies given a member's MAC, and the ARP updates that move peers.

use super::*;

impl Alb {
    // ---- receive load balancing ------------------------------------------

    /// The next member to give a peer, in turn and preferring the fastest
    /// (`__rlb_next_rx_slave`).
    pub(super) fn next_rx_member(&mut self) -> Option<MemberId> {
        let speed = |s: &Self, i: MemberId| s.member(i).map_or(0, |m| m.speed);
        let (mut before, mut after) = (None, None);
        let mut found = false;
        let ids: Vec<MemberId> = self.ids().filter(|&i| self.can_tx(i)).collect();
        for id in ids {
            if !found {
                if before.is_none_or(|b| speed(self, b) < speed(self, id)) {
                    before = Some(id);
                }
            } else if after.is_none_or(|r| speed(self, r) < speed(self, id)) {
                after = Some(id);
            }
            if Some(id) == self.rx_slave {
                found = true;
            }
        }
        let pick = match (after, before) {
            (Some(a), Some(b)) if speed(self, a) < speed(self, b) => Some(b),
            (None, b) => b,
            (a, _) => a,
        };
        if pick.is_some() {
            self.rx_slave = pick;
        }
        pick
    }

    pub(super) fn slot(ip: Ipv4Addr) -> usize {
        usize::from(lb::fold(&ip.octets()))
    }

    pub(super) fn mark(&mut self, slot: usize) {
        if let Some(c) = &mut self.clients[slot] {
            c.ntt = true;
            self.rx_ntt = true;
        }
    }

    /// Place an ARP packet the host sends to a peer (`rlb_choose_channel`):
    /// the peer keeps its member, or is given the next one; a different
    /// peer in its slot is moved to the active member first.
    pub(super) fn choose(&mut self, r: &Repr, vid: u16) -> Option<MemberId> {
        let slot = Self::slot(r.target_ip);
        if let Some(c) = self.clients[slot] {
            if c.ip_src == r.sender_ip && c.ip_dst == r.target_ip {
                let c = self.clients[slot].as_mut().expect("checked");
                if r.target_hw != MacAddr::BROADCAST {
                    c.mac_dst = r.target_hw;
                }
                c.mac_src = r.sender_hw;
                if c.member.is_some() {
                    return c.member;
                }
            } else if let Some(a) = self.active.filter(|&a| c.member != Some(a)) {
                if let Some(c) = &mut self.clients[slot] {
                    c.member = Some(a);
                }
                self.update_client(slot);
            }
        }
        let m = self.next_rx_member()?;
        let ntt = valid_unicast(r.target_hw);
        let was = self.clients[slot].is_some();
        self.clients[slot] = Some(ClientInfo {
            ip_src: r.sender_ip,
            ip_dst: r.target_ip,
            mac_src: r.sender_hw,
            mac_dst: r.target_hw,
            member: Some(m),
            vid,
            ntt,
        });
        self.rx_ntt |= ntt;
        if !was {
            self.used.insert(0, slot as u8);
        }
        Some(m)
    }

    /// An ARP packet the host sent on VLAN `vid` (0: the bond itself),
    /// which the data path could not place (`rlb_arp_xmit`). Returns the
    /// member it leaves on and the frame, rewritten: a reply carries the
    /// member's MAC as its sender; a request goes out as it is, and the
    /// peers it reaches are told their members again once it has done its
    /// harm. ARP the bond did not originate leaves unchanged on the active
    /// member.
    pub fn host_arp(&mut self, vid: u16, frame: &[u8]) -> Option<(MemberId, Vec<u8>)> {
        let mut out = frame.to_vec();
        let parsed = Repr::in_frame(frame);
        let mut via = None;
        if let Some(r) = parsed.filter(|r| {
            self.cfg.rlb && !r.sender_hw.is_zero() && self.has_mac(r.sender_hw).is_some()
        }) {
            match r.operation {
                Operation::Reply => {
                    via = self.choose(&r, vid);
                    if let Some(mac) = via.and_then(|m| self.mac(m)) {
                        if arp::set_sender_hw_in_frame(&mut out, mac) {
                            self.counters.arp_rewritten += 1;
                        }
                    }
                }
                Operation::Request => {
                    via = self.choose(&r, vid);
                    self.update_delay = UPDATE_DELAY_TICKS;
                    self.update_subnet_clients(r.sender_ip);
                }
                Operation::Unknown(_) => {}
            }
        }
        let member = via.filter(|&m| self.can_tx(m)).or(self.active)?;
        if self.active != Some(member) {
            if let (Some(mac), Ok(mut eth)) = (
                self.mac(member),
                ethernet::Packet::new_checked(&mut out[..]),
            ) {
                eth.set_src(mac);
            }
        }
        Some((member, out))
    }

    /// An ARP packet a member received (`rlb_arp_recv`): a peer that now
    /// claims one of the bond's addresses with another MAC ends the
    /// entries made for that address; a reply updates its sender's MAC.
    pub fn received_arp(&mut self, frame: &[u8]) {
        if !self.cfg.rlb {
            return;
        }
        let Some(r) = Repr::in_tagged_frame(frame) else {
            return;
        };
        self.purge_src(r.sender_ip, r.sender_hw);
        if r.operation == Operation::Reply {
            let slot = Self::slot(r.sender_ip);
            if let Some(c) = &mut self.clients[slot] {
                if c.ip_src == r.target_ip && c.ip_dst == r.sender_ip && c.mac_dst != r.sender_hw {
                    c.mac_dst = r.sender_hw;
                    self.mark(slot);
                }
            }
        }
    }

    pub(super) fn purge_src(&mut self, ip: Ipv4Addr, mac: MacAddr) {
        let stale: Vec<u8> = self
            .used
            .iter()
            .copied()
            .filter(|&s| {
                self.clients[usize::from(s)].is_some_and(|c| c.ip_src == ip && c.mac_src != mac)
            })
            .collect();
        for s in stale {
            self.clients[usize::from(s)] = None;
            self.used.retain(|&u| u != s);
        }
    }

    /// Peers of `ip_src` that are not on the active member and know their
    /// MAC are told again (`rlb_req_update_subnet_clients`): a broadcast
    /// request from the bond's MAC taught them all that MAC.
    pub(super) fn update_subnet_clients(&mut self, ip_src: Ipv4Addr) {
        for s in self.used.clone() {
            let Some(c) = self.clients[usize::from(s)] else {
                continue;
            };
            let on_bond_mac = c.member.and_then(|m| self.mac(m)) == Some(self.bond_mac);
            if c.ip_src == ip_src && !on_bond_mac && valid_unicast(c.mac_dst) {
                self.mark(usize::from(s));
            }
        }
    }

    /// Peers of `member` are told its (new) MAC, with retries
    /// (`rlb_req_update_slave_clients`).
    pub(super) fn update_clients_of(&mut self, member: MemberId) {
        let mut any = false;
        for s in self.used.clone() {
            if self.clients[usize::from(s)]
                .is_some_and(|c| c.member == Some(member) && valid_unicast(c.mac_dst))
            {
                self.mark(usize::from(s));
                any = true;
            }
        }
        if any {
            self.update_retry = UPDATE_RETRY;
        }
    }

    /// A member left or lost its link: each of its peers goes to the next
    /// member and is told (`rlb_clear_slave`); if it was not the active
    /// member, the active member takes frames for its MAC until then.
    pub(super) fn clear_clients_of(&mut self, member: MemberId) {
        for s in self.used.clone() {
            let slot = usize::from(s);
            if self.clients[slot].is_none_or(|c| c.member != Some(member)) {
                continue;
            }
            let next = self.next_rx_member();
            let c = self.clients[slot].as_mut().expect("checked");
            c.member = next;
            if next.is_some() && valid_unicast(c.mac_dst) {
                self.mark(slot);
                self.update_retry = UPDATE_RETRY;
                // Beyond the kernel, which may hold this first round back
                // by up to 2 s: peers of a dead member are told at once.
                self.update_delay = 0;
            }
        }
        if self.active != Some(member) {
            if let Some(mac) = self.mac(member) {
                self.teach_on_active(mac);
            }
        }
    }

    /// Every peer is given the next member in turn (`rlb_rebalance`).
    pub(super) fn rebalance_clients(&mut self) {
        for s in self.used.clone() {
            let slot = usize::from(s);
            let Some(m) = self.next_rx_member() else {
                continue;
            };
            let c = self.clients[slot]
                .as_mut()
                .expect("used slots hold clients");
            if c.member != Some(m) {
                c.member = Some(m);
                if !c.mac_dst.is_zero() {
                    self.mark(slot);
                }
            }
        }
        self.counters.rx_rebalances += 1;
    }

    /// Two ARP replies telling one peer its member's MAC
    /// (`rlb_update_client`).
    pub(super) fn update_client(&mut self, slot: usize) {
        let Some(c) = self.clients[slot] else { return };
        let Some(member) = c.member else { return };
        if !valid_unicast(c.mac_dst) {
            return;
        }
        let Some(mac) = self.mac(member) else { return };
        let frame = Repr {
            operation: Operation::Reply,
            sender_hw: mac,
            sender_ip: c.ip_src,
            target_hw: c.mac_dst,
            target_ip: c.ip_dst,
        }
        .frame(c.mac_dst, mac);
        for _ in 0..ARP_BURST {
            self.counters.arp_updates += 1;
            self.out.push_back(OutFrame {
                member,
                vid: c.vid,
                frame: frame.to_vec(),
            });
        }
    }

    /// Tell every peer that needs it (`rlb_update_rx_clients`); the flags
    /// stay while retries remain.
    pub(super) fn update_all_clients(&mut self) {
        for s in self.used.clone() {
            let slot = usize::from(s);
            if self.clients[slot].is_some_and(|c| c.ntt) {
                self.update_client(slot);
                if self.update_retry == 0 {
                    if let Some(c) = &mut self.clients[slot] {
                        c.ntt = false;
                    }
                }
            }
        }
        self.update_delay = UPDATE_DELAY_TICKS;
    }

    /// The client table, newest first.
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.used
            .iter()
            .filter_map(|&s| self.clients[usize::from(s)])
            .collect()
    }
}
