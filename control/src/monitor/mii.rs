//! Carrier (MII) monitoring with `updelay` and `downdelay`, in the kernel's
//! four link states (`BOND_LINK_UP/FAIL/DOWN/BACK`, bond_main.c
//! `bond_miimon_inspect` / `bond_miimon_commit`).
//!
//! Carrier readings come from netlink link events the moment the kernel sends
//! them, and from polling every `miimon` ms; both feed `handle_carrier`.
//! Delays are timed from the reading that started them, not rounded to the
//! next poll, so a link with no delay is committed at once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};
use xbond_dataplane::snapshot::MemberId;

/// The kernel's per-member link states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Up,
    /// Carrier lost, waiting out `downdelay`.
    Fail,
    Down,
    /// Carrier back, waiting out `updelay`.
    Back,
}

impl LinkState {
    /// As `/proc/net/bonding` prints it (`bond_slave_link_status`).
    pub fn proc_name(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Fail => "going down",
            LinkState::Down => "down",
            LinkState::Back => "going back",
        }
    }
}

/// A committed change of a member's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MiiEvent {
    Up(MemberId),
    Down(MemberId),
}

#[derive(Debug, Clone)]
struct Link {
    state: LinkState,
    carrier: bool,
    deadline: Option<Instant>,
    failures: u32,
    present: bool,
}

#[derive(Debug, Clone)]
pub struct MiiMonitor {
    links: Vec<Link>,
    updelay: Duration,
    downdelay: Duration,
    events: VecDeque<MiiEvent>,
}

impl MiiMonitor {
    pub fn new(updelay: Duration, downdelay: Duration) -> Self {
        MiiMonitor {
            links: Vec::new(),
            updelay,
            downdelay,
            events: VecDeque::new(),
        }
    }

    pub fn set_delays(&mut self, updelay: Duration, downdelay: Duration) {
        self.updelay = updelay;
        self.downdelay = downdelay;
    }

    /// Start watching a member. As at the kernel's enslave, a member with
    /// carrier starts up — or going back, when there is an updelay.
    pub fn add(&mut self, now: Instant, carrier: bool) -> MemberId {
        let (state, deadline) = match (carrier, self.updelay.is_zero()) {
            (true, true) => (LinkState::Up, None),
            (true, false) => (LinkState::Back, Some(now + self.updelay)),
            (false, _) => (LinkState::Down, None),
        };
        self.links.push(Link {
            state,
            carrier,
            deadline,
            failures: 0,
            present: true,
        });
        (self.links.len() - 1) as MemberId
    }

    /// Stop watching a member (its index stays reserved).
    pub fn remove(&mut self, idx: MemberId) {
        if let Some(l) = self.links.get_mut(usize::from(idx)) {
            l.present = false;
            l.deadline = None;
            l.state = LinkState::Down;
        }
    }

    pub fn state(&self, idx: MemberId) -> LinkState {
        self.links[usize::from(idx)].state
    }

    pub fn failures(&self, idx: MemberId) -> u32 {
        self.links[usize::from(idx)].failures
    }

    pub fn carrier(&self, idx: MemberId) -> bool {
        self.links[usize::from(idx)].carrier
    }

    /// Time left of a pending up/down delay.
    pub fn remaining(&self, idx: MemberId, now: Instant) -> Option<Duration> {
        self.links[usize::from(idx)]
            .deadline
            .map(|d| d.saturating_duration_since(now))
    }

    /// A carrier reading (event or poll).
    pub fn handle_carrier(&mut self, now: Instant, idx: MemberId, carrier: bool) {
        let (updelay, downdelay) = (self.updelay, self.downdelay);
        let Some(l) = self.links.get_mut(usize::from(idx)) else {
            return;
        };
        if !l.present {
            return;
        }
        l.carrier = carrier;
        match (l.state, carrier) {
            (LinkState::Up, false) => {
                if downdelay.is_zero() {
                    Self::commit_down(l, idx, &mut self.events);
                } else {
                    l.state = LinkState::Fail;
                    l.deadline = Some(now + downdelay);
                }
            }
            // Carrier back before downdelay ran out: the link never went down.
            (LinkState::Fail, true) => {
                l.state = LinkState::Up;
                l.deadline = None;
            }
            (LinkState::Down, true) => {
                if updelay.is_zero() {
                    Self::commit_up(l, idx, &mut self.events);
                } else {
                    l.state = LinkState::Back;
                    l.deadline = Some(now + updelay);
                }
            }
            // Lost again while waiting out updelay: still down.
            (LinkState::Back, false) => {
                l.state = LinkState::Down;
                l.deadline = None;
            }
            _ => {}
        }
    }

    fn commit_down(l: &mut Link, idx: MemberId, events: &mut VecDeque<MiiEvent>) {
        l.state = LinkState::Down;
        l.deadline = None;
        l.failures = l.failures.saturating_add(1);
        events.push_back(MiiEvent::Down(idx));
    }

    fn commit_up(l: &mut Link, idx: MemberId, events: &mut VecDeque<MiiEvent>) {
        l.state = LinkState::Up;
        l.deadline = None;
        events.push_back(MiiEvent::Up(idx));
    }

    /// Commit every delay that has run out.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (idx, l) in (0..).zip(self.links.iter_mut()) {
            match (l.state, l.deadline) {
                (LinkState::Fail, Some(d)) if d <= now => {
                    Self::commit_down(l, idx, &mut self.events)
                }
                (LinkState::Back, Some(d)) if d <= now => Self::commit_up(l, idx, &mut self.events),
                _ => {}
            }
        }
    }

    /// Record a carrier reading without acting on it: what the bond does
    /// while MII monitoring is off, so that the monitor knows the carrier
    /// when it is switched on.
    pub fn set_carrier(&mut self, idx: MemberId, carrier: bool) {
        if let Some(l) = self.links.get_mut(usize::from(idx)) {
            l.carrier = carrier;
        }
    }

    /// Take a member over from another monitor (the ARP monitor, switched
    /// off at runtime) in the state that monitor left it; no delay is
    /// pending. The next carrier reading moves it on from there, as the
    /// kernel's MII monitor does with the link the ARP monitor set.
    pub fn take_over(&mut self, idx: MemberId, up: bool) {
        if let Some(l) = self.links.get_mut(usize::from(idx)) {
            if l.present {
                l.state = if up { LinkState::Up } else { LinkState::Down };
                l.deadline = None;
            }
        }
    }

    /// Bring a member that is going back up now, skipping the rest of its
    /// updelay — what the kernel does when no member is up at all.
    pub fn force_up(&mut self, idx: MemberId) {
        if let Some(l) = self.links.get_mut(usize::from(idx)) {
            if l.state == LinkState::Back {
                l.state = LinkState::Up;
                l.deadline = None;
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.links.iter().filter_map(|l| l.deadline).min()
    }

    pub fn poll_event(&mut self) -> Option<MiiEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn no_delays_commit_at_once_and_count_failures() {
        let t0 = Instant::now();
        let mut m = MiiMonitor::new(Duration::ZERO, Duration::ZERO);
        let a = m.add(t0, true);
        m.handle_carrier(t0, a, false);
        assert_eq!(m.poll_event(), Some(MiiEvent::Down(a)));
        assert_eq!((m.state(a), m.failures(a)), (LinkState::Down, 1));
        m.handle_carrier(t0, a, true);
        assert_eq!(m.poll_event(), Some(MiiEvent::Up(a)));
        assert_eq!(m.next_deadline(), None);
    }

    #[test]
    fn downdelay_waits_and_a_flap_inside_it_is_forgiven() {
        let t0 = Instant::now();
        let mut m = MiiMonitor::new(Duration::ZERO, 200 * MS);
        let a = m.add(t0, true);
        m.handle_carrier(t0, a, false);
        assert_eq!((m.state(a), m.poll_event()), (LinkState::Fail, None));
        assert_eq!(m.next_deadline(), Some(t0 + 200 * MS));
        m.handle_timeout(t0 + 199 * MS);
        assert_eq!(m.poll_event(), None);
        m.handle_carrier(t0 + 150 * MS, a, true);
        assert_eq!((m.state(a), m.failures(a)), (LinkState::Up, 0));
        m.handle_carrier(t0 + 300 * MS, a, false);
        m.handle_timeout(t0 + 500 * MS);
        assert_eq!(m.poll_event(), Some(MiiEvent::Down(a)));
        assert_eq!(m.failures(a), 1);
    }

    #[test]
    fn updelay_waits_from_the_carrier_reading() {
        let t0 = Instant::now();
        let mut m = MiiMonitor::new(300 * MS, Duration::ZERO);
        let a = m.add(t0, false);
        m.handle_carrier(t0 + 10 * MS, a, true);
        assert_eq!(m.state(a), LinkState::Back);
        assert_eq!(m.remaining(a, t0 + 110 * MS), Some(200 * MS));
        m.handle_carrier(t0 + 20 * MS, a, false);
        assert_eq!(m.state(a), LinkState::Down, "lost again while going back");
        m.handle_carrier(t0 + 30 * MS, a, true);
        m.handle_timeout(t0 + 329 * MS);
        assert_eq!(m.poll_event(), None);
        m.handle_timeout(t0 + 330 * MS);
        assert_eq!(m.poll_event(), Some(MiiEvent::Up(a)));
    }

    #[test]
    fn members_with_carrier_start_going_back_when_there_is_an_updelay() {
        let t0 = Instant::now();
        let mut m = MiiMonitor::new(100 * MS, Duration::ZERO);
        let a = m.add(t0, true);
        assert_eq!(m.state(a), LinkState::Back);
        m.force_up(a);
        assert_eq!(m.state(a), LinkState::Up);
    }
}
