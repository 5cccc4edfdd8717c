//! LACPDU (IEEE 802.1AX-2014 clause 6.4.2): the Slow Protocols payload that
//! carries the actor's and the partner's view of a link. The whole PDU is 110
//! bytes after the Ethernet header, sent to 01:80:c2:00:00:02 with EtherType
//! 0x8809 and subtype 1.

use super::{MacAddr, Result, WireError};

/// The Slow Protocols multicast address every LACPDU and marker PDU goes to.
pub const SLOW_PROTOCOLS_MAC: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, 0x02]);
/// The Slow Protocols EtherType.
pub const ETHERTYPE: u16 = super::ethernet::ethertype::SLOW_PROTOCOLS;
/// Slow Protocols subtype of a LACPDU.
pub const SUBTYPE_LACP: u8 = 1;
/// Length of the PDU after the Ethernet header.
pub const PDU_LEN: usize = 110;

mod field {
    use std::ops::Range;
    pub const SUBTYPE: usize = 0;
    pub const VERSION: usize = 1;
    pub const ACTOR_TLV: usize = 2;
    pub const ACTOR_LEN: usize = 3;
    pub const ACTOR: Range<usize> = 4..19;
    pub const PARTNER_TLV: usize = 22;
    pub const PARTNER_LEN: usize = 23;
    pub const PARTNER: Range<usize> = 24..39;
    pub const COLLECTOR_TLV: usize = 42;
    pub const COLLECTOR_LEN: usize = 43;
    pub const COLLECTOR_MAX_DELAY: Range<usize> = 44..46;
    pub const TERMINATOR_TLV: usize = 58;
    pub const TERMINATOR_LEN: usize = 59;

    /// Offsets inside an actor or partner information block.
    pub mod info {
        use std::ops::Range;
        pub const SYSTEM_PRIORITY: Range<usize> = 0..2;
        pub const SYSTEM: Range<usize> = 2..8;
        pub const KEY: Range<usize> = 8..10;
        pub const PORT_PRIORITY: Range<usize> = 10..12;
        pub const PORT: Range<usize> = 12..14;
        pub const STATE: usize = 14;
    }
}

const TLV_ACTOR: u8 = 1;
const TLV_PARTNER: u8 = 2;
const TLV_COLLECTOR: u8 = 3;
const INFO_LEN: u8 = 20;
const COLLECTOR_LEN: u8 = 16;

bitflags::bitflags! {
    /// The actor/partner state byte (802.1AX-2014 6.4.2.3, items m and t).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct State: u8 {
        /// Active LACP (1) or passive (0).
        const ACTIVITY = 0x01;
        /// Short timeout (fast, 1 s) when set, long (slow, 30 s) when clear.
        const TIMEOUT = 0x02;
        /// The link may be aggregated (not an individual link).
        const AGGREGATION = 0x04;
        /// The link is in the right aggregation (in sync).
        const SYNCHRONIZATION = 0x08;
        const COLLECTING = 0x10;
        const DISTRIBUTING = 0x20;
        /// The partner information is the administrative default.
        const DEFAULTED = 0x40;
        /// The receive machine is in EXPIRED.
        const EXPIRED = 0x80;
    }
}

impl State {
    /// The flag names as `/proc/net/bonding` and `ovs-appctl lacp/show`
    /// readers know them, in bit order.
    pub fn names(self) -> Vec<&'static str> {
        const NAMES: [(State, &str); 8] = [
            (State::ACTIVITY, "activity"),
            (State::TIMEOUT, "timeout"),
            (State::AGGREGATION, "aggregation"),
            (State::SYNCHRONIZATION, "synchronization"),
            (State::COLLECTING, "collecting"),
            (State::DISTRIBUTING, "distributing"),
            (State::DEFAULTED, "defaulted"),
            (State::EXPIRED, "expired"),
        ];
        NAMES
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// One side's information in a LACPDU (actor or partner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortInfo {
    pub system_priority: u16,
    pub system: MacAddr,
    pub key: u16,
    pub port_priority: u16,
    pub port: u16,
    pub state: State,
}

impl PortInfo {
    fn read(b: &[u8]) -> PortInfo {
        use field::info::*;
        let be = |r: std::ops::Range<usize>| u16::from_be_bytes([b[r.start], b[r.start + 1]]);
        let mut system = [0u8; 6];
        system.copy_from_slice(&b[SYSTEM]);
        PortInfo {
            system_priority: be(SYSTEM_PRIORITY),
            system: MacAddr(system),
            key: be(KEY),
            port_priority: be(PORT_PRIORITY),
            port: be(PORT),
            state: State::from_bits_retain(b[STATE]),
        }
    }

    fn write(&self, b: &mut [u8]) {
        use field::info::*;
        b[SYSTEM_PRIORITY].copy_from_slice(&self.system_priority.to_be_bytes());
        b[SYSTEM].copy_from_slice(&self.system.0);
        b[KEY].copy_from_slice(&self.key.to_be_bytes());
        b[PORT_PRIORITY].copy_from_slice(&self.port_priority.to_be_bytes());
        b[PORT].copy_from_slice(&self.port.to_be_bytes());
        b[STATE] = self.state.bits();
    }
}

packet_view! {
    /// A view of a LACPDU (the Ethernet payload).
    ///
    /// The accessors read up to the terminator TLV; a shorter buffer is
    /// refused. (The standard's 50 reserved bytes after it are not required
    /// of a received PDU.)
    min_len = field::TERMINATOR_LEN + 1
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn subtype(&self) -> u8 {
        self.buffer.as_ref()[field::SUBTYPE]
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    pub fn actor(&self) -> PortInfo {
        PortInfo::read(&self.buffer.as_ref()[field::ACTOR])
    }

    pub fn partner(&self) -> PortInfo {
        PortInfo::read(&self.buffer.as_ref()[field::PARTNER])
    }

    pub fn collector_max_delay(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::COLLECTOR_MAX_DELAY];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The TLV types and lengths are those of a LACPDU.
    fn tlvs_valid(&self) -> bool {
        let b = self.buffer.as_ref();
        b[field::ACTOR_TLV] == TLV_ACTOR
            && b[field::ACTOR_LEN] == INFO_LEN
            && b[field::PARTNER_TLV] == TLV_PARTNER
            && b[field::PARTNER_LEN] == INFO_LEN
            && b[field::COLLECTOR_TLV] == TLV_COLLECTOR
            && b[field::COLLECTOR_LEN] == COLLECTOR_LEN
            && b[field::TERMINATOR_TLV] == 0
            && b[field::TERMINATOR_LEN] == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_actor(&mut self, info: &PortInfo) {
        info.write(&mut self.buffer.as_mut()[field::ACTOR]);
    }

    pub fn set_partner(&mut self, info: &PortInfo) {
        info.write(&mut self.buffer.as_mut()[field::PARTNER]);
    }
}

/// A whole LACPDU, for the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repr {
    pub actor: PortInfo,
    pub partner: PortInfo,
    /// In tens of microseconds (802.1AX-2014 6.4.2.3 item v).
    pub collector_max_delay: u16,
}

impl Repr {
    /// Parse a received LACPDU. Versions above 1 are accepted, as
    /// 802.1AX-2014 asks of a version 1 receiver; anything that is not a
    /// LACPDU (subtype, TLV types or lengths) is `Malformed`.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.subtype() != SUBTYPE_LACP || p.version() == 0 || !p.tlvs_valid() {
            return Err(WireError::Malformed);
        }
        Ok(Repr {
            actor: p.actor(),
            partner: p.partner(),
            collector_max_delay: p.collector_max_delay(),
        })
    }

    /// Write the PDU into a buffer of at least [`PDU_LEN`] bytes; reserved
    /// bytes are zeroed.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = &mut p.buffer.as_mut()[..PDU_LEN];
        b.fill(0);
        b[field::SUBTYPE] = SUBTYPE_LACP;
        b[field::VERSION] = 1;
        b[field::ACTOR_TLV] = TLV_ACTOR;
        b[field::ACTOR_LEN] = INFO_LEN;
        b[field::PARTNER_TLV] = TLV_PARTNER;
        b[field::PARTNER_LEN] = INFO_LEN;
        b[field::COLLECTOR_TLV] = TLV_COLLECTOR;
        b[field::COLLECTOR_LEN] = COLLECTOR_LEN;
        b[field::COLLECTOR_MAX_DELAY].copy_from_slice(&self.collector_max_delay.to_be_bytes());
        p.set_actor(&self.actor);
        p.set_partner(&self.partner);
    }

    /// The whole Ethernet frame from `src` (the member's address).
    pub fn frame(&self, src: MacAddr) -> Vec<u8> {
        slow_protocols_frame(src, |pdu| self.emit(&mut Packet::new_unchecked(pdu)))
    }
}

/// An Ethernet frame from `src` to the Slow Protocols address, whose
/// 110-byte PDU (LACPDU or marker PDU) `emit` writes.
pub(crate) fn slow_protocols_frame(src: MacAddr, emit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut f = vec![0u8; 14 + PDU_LEN];
    f[0..6].copy_from_slice(&SLOW_PROTOCOLS_MAC.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    emit(&mut f[14..]);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::hex;
    use proptest::prelude::*;

    /// A LACPDU written out by hand: actor system 0x8000/02:00:00:00:02:00,
    /// key 17, port priority 0x80, port 3, state 0x3d (activity,
    /// aggregation, synchronization, collecting, distributing); partner all
    /// zero but the timeout bit (0x02); collector max delay 5.
    const PDU: &str = "
        01 01
        01 14 8000 020000000200 0011 0080 0003 3d 000000
        02 14 0000 000000000000 0000 0000 0000 02 000000
        03 10 0005 000000000000000000000000
        00 00
        0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

    fn sample() -> Repr {
        Repr {
            actor: PortInfo {
                system_priority: 0x8000,
                system: MacAddr([2, 0, 0, 0, 2, 0]),
                key: 17,
                port_priority: 0x80,
                port: 3,
                state: State::ACTIVITY
                    | State::AGGREGATION
                    | State::SYNCHRONIZATION
                    | State::COLLECTING
                    | State::DISTRIBUTING,
            },
            partner: PortInfo {
                state: State::TIMEOUT,
                ..Default::default()
            },
            collector_max_delay: 5,
        }
    }

    #[test]
    fn parses_the_byte_vector() {
        let bytes = hex(PDU);
        assert_eq!(bytes.len(), PDU_LEN);
        let r = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(r, sample());
        assert_eq!(
            r.actor.state.names(),
            vec![
                "activity",
                "aggregation",
                "synchronization",
                "collecting",
                "distributing"
            ]
        );
    }

    #[test]
    fn emits_the_same_bytes() {
        let mut buf = vec![0xffu8; PDU_LEN];
        sample().emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, hex(PDU));
        let f = sample().frame(MacAddr([2, 0, 0, 0, 1, 0]));
        assert_eq!(f.len(), 124);
        assert_eq!(&f[..14], &hex("0180c2000002 020000000100 8809")[..]);
        assert_eq!(&f[14..], &hex(PDU)[..]);
    }

    #[test]
    fn refuses_what_is_not_a_lacpdu() {
        let good = hex(PDU);
        assert_eq!(
            Packet::new_checked(&good[..40]).unwrap_err(),
            WireError::Truncated
        );
        for (at, v) in [
            (0, 2u8),
            (1, 0),
            (2, 9),
            (3, 19),
            (23, 21),
            (42, 4),
            (58, 1),
        ] {
            let mut b = good.clone();
            b[at] = v;
            assert_eq!(
                Repr::parse(&Packet::new_unchecked(&b[..])),
                Err(WireError::Malformed),
                "byte {at} = {v}"
            );
        }
        let mut v2 = good.clone();
        v2[1] = 2;
        assert!(
            Repr::parse(&Packet::new_unchecked(&v2[..])).is_ok(),
            "later versions are read"
        );
        // Only the bytes up to the terminator are needed.
        assert!(Repr::parse(&Packet::new_checked(&good[..60]).unwrap()).is_ok());
    }

    proptest! {
        #[test]
        fn emit_then_parse_is_identity(
            a in any::<(u16, [u8; 6], u16, u16, u16, u8)>(),
            p in any::<(u16, [u8; 6], u16, u16, u16, u8)>(),
            delay in any::<u16>(),
        ) {
            let info = |t: (u16, [u8; 6], u16, u16, u16, u8)| PortInfo {
                system_priority: t.0,
                system: MacAddr(t.1),
                key: t.2,
                port_priority: t.3,
                port: t.4,
                state: State::from_bits_retain(t.5),
            };
            let r = Repr { actor: info(a), partner: info(p), collector_max_delay: delay };
            let f = r.frame(MacAddr::ZERO);
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&f[14..]).unwrap()).unwrap(), r);
        }

        #[test]
        fn any_bytes_parse_or_fail_without_panic(b in proptest::collection::vec(any::<u8>(), 0..130)) {
            if let Ok(p) = Packet::new_checked(&b[..]) {
                let _ = Repr::parse(&p);
            }
        }
    }
}
