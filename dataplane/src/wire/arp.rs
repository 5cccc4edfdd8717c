//! ARP for IPv4 over Ethernet: gratuitous ARP after failover, and (later) the
//! ARP link monitor's probes and replies.

use super::{MacAddr, Result, WireError};
use std::net::Ipv4Addr;

mod field {
    use std::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

pub const PACKET_LEN: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Self {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            o => Operation::Unknown(o),
        }
    }
}

impl From<Operation> for u16 {
    fn from(v: Operation) -> u16 {
        match v {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(o) => o,
        }
    }
}

packet_view! {
    /// A view of an ARP packet (the Ethernet payload).
    min_len = PACKET_LEN
}

impl<T: AsRef<[u8]>> Packet<T> {
    fn u16_at(&self, r: std::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn mac_at(&self, r: std::ops::Range<usize>) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[r]);
        MacAddr(m)
    }

    fn ip_at(&self, r: std::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[r];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    pub fn hardware_type(&self) -> u16 {
        self.u16_at(field::HTYPE)
    }
    pub fn protocol_type(&self) -> u16 {
        self.u16_at(field::PTYPE)
    }
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    pub fn operation(&self) -> Operation {
        Operation::from(self.u16_at(field::OPER))
    }
    pub fn sender_hw(&self) -> MacAddr {
        self.mac_at(field::SHA)
    }
    pub fn sender_ip(&self) -> Ipv4Addr {
        self.ip_at(field::SPA)
    }
    pub fn target_hw(&self) -> MacAddr {
        self.mac_at(field::THA)
    }
    pub fn target_ip(&self) -> Ipv4Addr {
        self.ip_at(field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16(&mut self, r: std::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_hardware_type(&mut self, v: u16) {
        self.set_u16(field::HTYPE, v)
    }
    pub fn set_protocol_type(&mut self, v: u16) {
        self.set_u16(field::PTYPE, v)
    }
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }
    pub fn set_operation(&mut self, v: Operation) {
        self.set_u16(field::OPER, v.into())
    }
    pub fn set_sender_hw(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&m.0);
    }
    pub fn set_sender_ip(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&a.octets());
    }
    pub fn set_target_hw(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&m.0);
    }
    pub fn set_target_ip(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&a.octets());
    }
}

/// An Ethernet/IPv4 ARP packet as plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub operation: Operation,
    pub sender_hw: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_hw: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.hardware_type() != 1
            || p.protocol_type() != super::ethernet::ethertype::IPV4
            || p.hardware_len() != 6
            || p.protocol_len() != 4
        {
            return Err(WireError::Malformed);
        }
        Ok(Repr {
            operation: p.operation(),
            sender_hw: p.sender_hw(),
            sender_ip: p.sender_ip(),
            target_hw: p.target_hw(),
            target_ip: p.target_ip(),
        })
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_hardware_type(1);
        p.set_protocol_type(super::ethernet::ethertype::IPV4);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(self.operation);
        p.set_sender_hw(self.sender_hw);
        p.set_sender_ip(self.sender_ip);
        p.set_target_hw(self.target_hw);
        p.set_target_ip(self.target_ip);
    }

    /// The gratuitous ARP the kernel sends for an address after a failover
    /// (`NETDEV_NOTIFY_PEERS` -> `arp_send(ARPOP_REQUEST, ...)` with sender and
    /// target IP both the address and a zero target MAC), in a broadcast
    /// Ethernet frame, padded to the 60-byte minimum.
    pub fn gratuitous_frame(mac: MacAddr, ip: Ipv4Addr) -> [u8; 60] {
        Self::request_frame(mac, ip, ip)
    }

    /// A broadcast ARP request for `target` from `sender` (0.0.0.0 when the
    /// bond has no address), with a zero target MAC, padded to 60 bytes: the
    /// probe of the ARP monitor, as the kernel's `arp_create` builds it.
    pub fn request_frame(mac: MacAddr, sender: Ipv4Addr, target: Ipv4Addr) -> [u8; 60] {
        Repr {
            operation: Operation::Request,
            sender_hw: mac,
            sender_ip: sender,
            target_hw: MacAddr::ZERO,
            target_ip: target,
        }
        .frame(MacAddr::BROADCAST, mac)
    }

    /// This packet in an Ethernet frame from `src` to `dst`, padded to the
    /// 60-byte minimum.
    pub fn frame(&self, dst: MacAddr, src: MacAddr) -> [u8; 60] {
        let mut frame = [0u8; 60];
        let mut eth = super::ethernet::Packet::new_unchecked(&mut frame[..]);
        eth.set_dst(dst);
        eth.set_src(src);
        eth.set_ethertype(super::ethernet::EtherType::Arp);
        self.emit(&mut Packet::new_unchecked(
            &mut eth.payload_mut()[..PACKET_LEN],
        ));
        frame
    }

    /// The ARP packet an untagged Ethernet frame carries, if it is ARP for
    /// IPv4 over Ethernet and long enough.
    pub fn in_frame(frame: &[u8]) -> Option<Repr> {
        let eth = super::ethernet::Packet::new_checked(frame).ok()?;
        if eth.ethertype() != super::ethernet::EtherType::Arp {
            return None;
        }
        Repr::parse(&Packet::new_checked(eth.payload()).ok()?).ok()
    }

    /// The same for a frame that may carry one 802.1Q tag, as members
    /// receive them.
    pub fn in_tagged_frame(frame: &[u8]) -> Option<Repr> {
        match super::vlan::inner_payload(frame)? {
            (super::ethernet::ethertype::ARP, payload) => {
                Repr::parse(&Packet::new_checked(payload).ok()?).ok()
            }
            _ => None,
        }
    }
}

/// Set the sender MAC of the ARP packet in an untagged frame (the ALB
/// rewrite of a reply); false, and nothing written, when there is none.
pub fn set_sender_hw_in_frame(frame: &mut [u8], mac: MacAddr) -> bool {
    let Ok(mut eth) = super::ethernet::Packet::new_checked(&mut *frame) else {
        return false;
    };
    if eth.ethertype() != super::ethernet::EtherType::Arp {
        return false;
    }
    match Packet::new_checked(eth.payload_mut()) {
        Ok(mut p) => {
            p.set_sender_hw(mac);
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Gratuitous ARP for 198.18.0.1 from 02:00:00:00:00:01 as tcpdump -xx shows
    // the kernel's: broadcast, EtherType 0806, request, sha/spa set, tha zero,
    // tpa = spa, zero padding to 60 bytes.
    const GARP: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 198, 18, 0, 1, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 198, 18, 0, 1, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn gratuitous_arp_bytes() {
        let f = Repr::gratuitous_frame(MacAddr([2, 0, 0, 0, 0, 1]), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(f, GARP);
    }

    #[test]
    fn probe_request_bytes() {
        let f = Repr::request_frame(
            MacAddr([2, 0, 0, 0, 0, 1]),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(198, 18, 0, 2),
        );
        assert_eq!(f[..22], GARP[..22], "same Ethernet and ARP header");
        assert_eq!(f[28..32], [0, 0, 0, 0], "sender 0.0.0.0");
        assert_eq!(f[32..42], [0, 0, 0, 0, 0, 0, 198, 18, 0, 2]);
    }

    #[test]
    fn parse_round_trip_and_rejects() {
        let p = Packet::new_checked(&GARP[14..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.operation, Operation::Request);
        assert_eq!(r.sender_ip, Ipv4Addr::new(198, 18, 0, 1));
        let mut buf = [0u8; PACKET_LEN];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &GARP[14..14 + PACKET_LEN]);
        assert_eq!(
            Packet::new_checked(&GARP[14..40]).unwrap_err(),
            WireError::Truncated
        );
        let mut bad = buf;
        bad[1] = 6; // hardware type 6 (IEEE 802) is not ours
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bad[..])).unwrap_err(),
            WireError::Malformed
        );
    }

    #[test]
    fn the_arp_of_a_frame_tagged_or_not() {
        let want = Repr::parse(&Packet::new_checked(&GARP[14..]).unwrap()).unwrap();
        assert_eq!(Repr::in_frame(&GARP), Some(want));
        assert_eq!(Repr::in_tagged_frame(&GARP), Some(want));
        let mut tagged = GARP.to_vec();
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
        assert_eq!(Repr::in_tagged_frame(&tagged), Some(want));
        assert_eq!(Repr::in_frame(&tagged), None, "in_frame takes no tag");
        let mut ipv4 = GARP;
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(Repr::in_frame(&ipv4), None);
        assert_eq!(Repr::in_tagged_frame(&ipv4), None);
        assert_eq!(Repr::in_frame(&GARP[..14 + 27]), None, "one byte short");
    }

    #[test]
    fn the_sender_mac_is_rewritten_in_place() {
        let mut f = GARP;
        let m = MacAddr([2, 0, 0, 0, 7, 7]);
        assert!(set_sender_hw_in_frame(&mut f, m));
        assert_eq!(f[22..28], m.0);
        assert_eq!(f[..22], GARP[..22]);
        assert_eq!(f[28..], GARP[28..]);
        let mut short = GARP[..30].to_vec();
        assert!(!set_sender_hw_in_frame(&mut short, m));
        assert_eq!(short[..], GARP[..30]);
        let mut ipv4 = GARP;
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert!(!set_sender_hw_in_frame(&mut ipv4, m));
        assert_eq!(ipv4[22..28], GARP[22..28]);
    }
}
