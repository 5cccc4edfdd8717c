//! Ethernet II header.

use super::MacAddr;

mod field {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: usize = 14;
}

pub const HEADER_LEN: usize = field::PAYLOAD;

/// EtherType numbers, declared once for the whole workspace.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const RARP: u16 = 0x8035;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
    pub const SLOW_PROTOCOLS: u16 = 0x8809;
    pub const PPP_SES: u16 = 0x8864;
    pub const MPLS_UC: u16 = 0x8847;
    pub const MPLS_MC: u16 = 0x8848;
    pub const TIPC: u16 = 0x88ca;
    pub const FCOE: u16 = 0x8906;
    pub const CFM: u16 = 0x8902;
    pub const BATMAN: u16 = 0x4305;
    /// Learning packets of balance-tlb/alb (`ETH_P_LOOPBACK`).
    pub const LOOPBACK: u16 = 0x9000;
    pub const TEB: u16 = 0x6558;
    pub const GRE_PPP: u16 = 0x880b;
}

/// EtherType values xbond looks at; others are kept as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtherType {
    Ipv4,
    Arp,
    Vlan,
    Ipv6,
    SlowProtocols,
    QinQ,
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            ethertype::IPV4 => EtherType::Ipv4,
            ethertype::ARP => EtherType::Arp,
            ethertype::VLAN => EtherType::Vlan,
            ethertype::IPV6 => EtherType::Ipv6,
            ethertype::SLOW_PROTOCOLS => EtherType::SlowProtocols,
            ethertype::QINQ => EtherType::QinQ,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> u16 {
        match v {
            EtherType::Ipv4 => ethertype::IPV4,
            EtherType::Arp => ethertype::ARP,
            EtherType::Vlan => ethertype::VLAN,
            EtherType::Ipv6 => ethertype::IPV6,
            EtherType::SlowProtocols => ethertype::SLOW_PROTOCOLS,
            EtherType::QinQ => ethertype::QINQ,
            EtherType::Unknown(v) => v,
        }
    }
}

/// Whether a frame carries a slow protocol (LACP, marker): the one test
/// the data path and control both make.
#[inline]
pub fn is_slow_protocol(frame: &[u8]) -> bool {
    frame.get(field::ETHERTYPE) == Some(&u16::from(EtherType::SlowProtocols).to_be_bytes()[..])
}

packet_view! {
    /// A view of an Ethernet frame.
    min_len = HEADER_LEN
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn dst(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        MacAddr(m)
    }

    pub fn src(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        MacAddr(m)
    }

    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_dst(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&m.0);
    }

    pub fn set_src(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&m.0);
    }

    pub fn set_ethertype(&mut self, t: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(t).to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::WireError;

    #[test]
    fn the_slow_protocol_test_reads_the_ethertype_and_never_panics() {
        let mut f = [0u8; 60];
        f[12..14].copy_from_slice(&[0x88, 0x09]);
        assert!(is_slow_protocol(&f));
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!is_slow_protocol(&f));
        assert!(
            !is_slow_protocol(&f[..13]),
            "a runt is no slow-protocol frame"
        );
    }

    // An LACPDU's first bytes as captured on a wire: slow-protocols multicast
    // destination, sender 52:54:00:12:34:56, EtherType 0x8809, subtype 1.
    const LACP_HEAD: [u8; 16] = [
        0x01, 0x80, 0xc2, 0x00, 0x00, 0x02, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x88, 0x09, 0x01,
        0x01,
    ];

    #[test]
    fn parse_captured_header() {
        let p = Packet::new_checked(&LACP_HEAD[..]).unwrap();
        assert_eq!(p.dst(), MacAddr([0x01, 0x80, 0xc2, 0, 0, 2]));
        assert_eq!(p.src().to_string(), "52:54:00:12:34:56");
        assert_eq!(p.ethertype(), EtherType::SlowProtocols);
        assert_eq!(p.payload(), &[1, 1]);
        assert_eq!(
            Packet::new_checked(&LACP_HEAD[..13]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn build_matches_bytes() {
        let mut buf = [0u8; 16];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_dst(MacAddr([0x01, 0x80, 0xc2, 0, 0, 2]));
        p.set_src(MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        p.set_ethertype(EtherType::SlowProtocols);
        p.payload_mut().copy_from_slice(&[1, 1]);
        assert_eq!(buf, LACP_HEAD);
        assert_eq!(u16::from(EtherType::from(0x1234)), 0x1234);
    }
}
