//! Marker PDUs (IEEE 802.1AX-2014 clause 6.5.3): a Marker Information PDU
//! asks the receiver to answer with a Marker Response carrying the same
//! requester port, system and transaction id. Slow Protocols subtype 2, 110
//! bytes after the Ethernet header.

use super::lacp::slow_protocols_frame;
use super::{MacAddr, Result, WireError};

pub const SUBTYPE_MARKER: u8 = 2;
pub const PDU_LEN: usize = 110;

mod field {
    use std::ops::Range;
    pub const SUBTYPE: usize = 0;
    pub const VERSION: usize = 1;
    pub const TLV: usize = 2;
    pub const TLV_LEN: usize = 3;
    pub const REQUESTER_PORT: Range<usize> = 4..6;
    pub const REQUESTER_SYSTEM: Range<usize> = 6..12;
    pub const TRANSACTION_ID: Range<usize> = 12..16;
    pub const TERMINATOR_TLV: usize = 18;
    pub const TERMINATOR_LEN: usize = 19;
}

const INFO_LEN: u8 = 16;

/// Which marker PDU this is (the TLV type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Information,
    Response,
    Unknown(u8),
}

impl From<u8> for Kind {
    fn from(v: u8) -> Self {
        match v {
            1 => Kind::Information,
            2 => Kind::Response,
            o => Kind::Unknown(o),
        }
    }
}

impl From<Kind> for u8 {
    fn from(k: Kind) -> u8 {
        match k {
            Kind::Information => 1,
            Kind::Response => 2,
            Kind::Unknown(o) => o,
        }
    }
}

packet_view! {
    /// A view of a marker PDU (the Ethernet payload).
    ///
    /// Up to the terminator TLV must be there.
    min_len = field::TERMINATOR_LEN + 1
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn subtype(&self) -> u8 {
        self.buffer.as_ref()[field::SUBTYPE]
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    pub fn kind(&self) -> Kind {
        Kind::from(self.buffer.as_ref()[field::TLV])
    }

    pub fn requester_port(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::REQUESTER_PORT];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn requester_system(&self) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::REQUESTER_SYSTEM]);
        MacAddr(m)
    }

    pub fn transaction_id(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::TRANSACTION_ID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_kind(&mut self, k: Kind) {
        self.buffer.as_mut()[field::TLV] = k.into();
    }
}

/// A marker PDU, for the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub kind: Kind,
    pub requester_port: u16,
    pub requester_system: MacAddr,
    pub transaction_id: u32,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        let b = p.buffer.as_ref();
        let kind = p.kind();
        if p.subtype() != SUBTYPE_MARKER
            || p.version() == 0
            || matches!(kind, Kind::Unknown(_))
            || b[field::TLV_LEN] != INFO_LEN
            || b[field::TERMINATOR_TLV] != 0
            || b[field::TERMINATOR_LEN] != 0
        {
            return Err(WireError::Malformed);
        }
        Ok(Repr {
            kind,
            requester_port: p.requester_port(),
            requester_system: p.requester_system(),
            transaction_id: p.transaction_id(),
        })
    }

    /// The Marker Response the marker responder sends back: the request's
    /// fields unchanged (802.1AX-2014 6.5.4.2).
    pub fn response(&self) -> Repr {
        Repr {
            kind: Kind::Response,
            ..*self
        }
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = &mut p.buffer.as_mut()[..PDU_LEN];
        b.fill(0);
        b[field::SUBTYPE] = SUBTYPE_MARKER;
        b[field::VERSION] = 1;
        b[field::TLV] = self.kind.into();
        b[field::TLV_LEN] = INFO_LEN;
        b[field::REQUESTER_PORT].copy_from_slice(&self.requester_port.to_be_bytes());
        b[field::REQUESTER_SYSTEM].copy_from_slice(&self.requester_system.0);
        b[field::TRANSACTION_ID].copy_from_slice(&self.transaction_id.to_be_bytes());
    }

    /// The whole Ethernet frame from `src`.
    pub fn frame(&self, src: MacAddr) -> Vec<u8> {
        slow_protocols_frame(src, |pdu| self.emit(&mut Packet::new_unchecked(pdu)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::hex;
    use proptest::prelude::*;

    /// A Marker Information PDU from port 3 of system 02:00:00:00:02:00,
    /// transaction 0x01020304, written out by hand.
    const REQUEST: &str = "
        02 01 01 10 0003 020000000200 01020304 0000 00 00
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn a_request_parses_and_its_response_differs_only_in_the_tlv_type() {
        let bytes = hex(REQUEST);
        assert_eq!(bytes.len(), PDU_LEN);
        let r = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(
            r,
            Repr {
                kind: Kind::Information,
                requester_port: 3,
                requester_system: MacAddr([2, 0, 0, 0, 2, 0]),
                transaction_id: 0x0102_0304,
            }
        );
        let answer = r.response().frame(MacAddr([2, 0, 0, 0, 1, 0]));
        let mut want = bytes.clone();
        want[2] = 2;
        assert_eq!(&answer[14..], &want[..]);
        assert_eq!(&answer[..14], &hex("0180c2000002 020000000100 8809")[..]);
    }

    #[test]
    fn refuses_what_is_not_a_marker_pdu() {
        let good = hex(REQUEST);
        assert_eq!(
            Packet::new_checked(&good[..10]).unwrap_err(),
            WireError::Truncated
        );
        for (at, v) in [(0, 1u8), (1, 0), (2, 7), (3, 20), (18, 1)] {
            let mut b = good.clone();
            b[at] = v;
            assert_eq!(
                Repr::parse(&Packet::new_unchecked(&b[..])),
                Err(WireError::Malformed),
                "byte {at} = {v}"
            );
        }
    }

    proptest! {
        #[test]
        fn emit_then_parse_is_identity(port in any::<u16>(), sys in any::<[u8; 6]>(), id in any::<u32>(), response in any::<bool>()) {
            let r = Repr {
                kind: if response { Kind::Response } else { Kind::Information },
                requester_port: port,
                requester_system: MacAddr(sys),
                transaction_id: id,
            };
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
