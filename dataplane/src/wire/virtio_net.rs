//! The virtio-net header (`struct virtio_net_hdr`, virtio 1.x, little
//! endian) that AF_PACKET puts in front of a packet with `PACKET_VNET_HDR`:
//! whether the checksum is left for the device, where it starts and where
//! it goes, and for a GSO packet its type, segment size and header length.

mod field {
    use std::ops::Range;
    pub const FLAGS: usize = 0;
    pub const GSO_TYPE: usize = 1;
    pub const HDR_LEN: Range<usize> = 2..4;
    pub const GSO_SIZE: Range<usize> = 4..6;
    pub const CSUM_START: Range<usize> = 6..8;
    pub const CSUM_OFFSET: Range<usize> = 8..10;
}

pub const HEADER_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the L4 checksum is partial, to be
/// finished from `csum_start`, stored at `csum_start + csum_offset`.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was verified.
pub const F_DATA_VALID: u8 = 2;

/// `VIRTIO_NET_HDR_GSO_*`.
pub mod gso {
    pub const NONE: u8 = 0;
    pub const TCPV4: u8 = 1;
    pub const UDP: u8 = 3;
    pub const TCPV6: u8 = 4;
    pub const UDP_L4: u8 = 5;
    pub const ECN: u8 = 0x80;
}

packet_view! {
    /// A view of a virtio-net header.
    min_len = HEADER_LEN
}

impl<T: AsRef<[u8]>> Packet<T> {
    fn u16_at(&self, r: std::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_le_bytes([b[0], b[1]])
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn gso_type(&self) -> u8 {
        self.buffer.as_ref()[field::GSO_TYPE]
    }

    /// Bytes of headers in front of each segment's payload (a hint).
    pub fn hdr_len(&self) -> u16 {
        self.u16_at(field::HDR_LEN)
    }

    pub fn gso_size(&self) -> u16 {
        self.u16_at(field::GSO_SIZE)
    }

    pub fn csum_start(&self) -> u16 {
        self.u16_at(field::CSUM_START)
    }

    pub fn csum_offset(&self) -> u16 {
        self.u16_at(field::CSUM_OFFSET)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, r: std::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_le_bytes());
    }

    pub fn set_hdr_len(&mut self, v: u16) {
        self.set_u16_at(field::HDR_LEN, v);
    }

    pub fn set_csum_start(&mut self, v: u16) {
        self.set_u16_at(field::CSUM_START, v);
    }

    pub fn set_csum_offset(&mut self, v: u16) {
        self.set_u16_at(field::CSUM_OFFSET, v);
    }

    pub fn set_gso_size(&mut self, v: u16) {
        self.set_u16_at(field::GSO_SIZE, v);
    }

    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    pub fn set_gso_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::GSO_TYPE] = v;
    }
}

/// The header of a TCP packet the kernel is to treat as `mss`-byte
/// segments, with `hdr_len` bytes of headers and the TCP header at
/// `l4` (its checksum partial, seeded with the pseudo-header sum).
pub fn tcp_gso(v6: bool, hdr_len: u16, mss: u16, l4: u16) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    let mut p = Packet::new_unchecked(&mut out[..]);
    p.set_flags(F_NEEDS_CSUM);
    p.set_gso_type(if v6 { gso::TCPV6 } else { gso::TCPV4 });
    p.set_hdr_len(hdr_len);
    p.set_gso_size(mss);
    p.set_csum_start(l4);
    p.set_csum_offset(16);
    out
}

/// The header of the same packet with `n` bytes inserted in front of its
/// network header (an 802.1Q tag): the checksum start and the header
/// length move with it. `None` when a field would overflow.
pub fn shifted(hdr: [u8; HEADER_LEN], n: u16) -> Option<[u8; HEADER_LEN]> {
    let mut out = hdr;
    let mut p = Packet::new_unchecked(&mut out[..]);
    if p.flags() & F_NEEDS_CSUM != 0 {
        let start = p.csum_start().checked_add(n)?;
        p.set_csum_start(start);
    }
    if p.gso_type() & !gso::ECN != gso::NONE && p.hdr_len() != 0 {
        let len = p.hdr_len().checked_add(n)?;
        p.set_hdr_len(len);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // What AF_PACKET gave for a 64 KiB TCP/IPv4 packet from a veth with TSO
    // on: NEEDS_CSUM, TCPV4, hdr_len 66, gso_size 1448, csum_start 34,
    // csum_offset 16.
    const TSO4: [u8; HEADER_LEN] = [0x01, 0x01, 66, 0, 0xa8, 0x05, 34, 0, 16, 0];

    #[test]
    fn fields_of_a_tso_packet() {
        let p = Packet::new_checked(&TSO4[..]).unwrap();
        assert_eq!(p.flags(), F_NEEDS_CSUM);
        assert_eq!(p.gso_type(), gso::TCPV4);
        assert_eq!(p.hdr_len(), 66);
        assert_eq!(p.gso_size(), 1448);
        assert_eq!(p.csum_start(), 34);
        assert_eq!(p.csum_offset(), 16);
        assert!(Packet::new_checked(&TSO4[..9]).is_err());
    }

    #[test]
    fn a_tag_moves_the_checksum_start_and_header_length() {
        let s = shifted(TSO4, 4).unwrap();
        let p = Packet::new_checked(&s[..]).unwrap();
        assert_eq!((p.csum_start(), p.hdr_len()), (38, 70));
        assert_eq!(
            (p.flags(), p.gso_type(), p.gso_size(), p.csum_offset()),
            (F_NEEDS_CSUM, gso::TCPV4, 1448, 16)
        );
        assert_eq!(s[4..6], TSO4[4..6]);
        assert_eq!(s[8..], TSO4[8..]);
    }

    #[test]
    fn a_header_without_offloads_is_left_alone() {
        let plain = [0u8; HEADER_LEN];
        assert_eq!(shifted(plain, 4), Some(plain));
        let valid = [F_DATA_VALID, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(shifted(valid, 4), Some(valid));
        let mut far = TSO4;
        far[6..8].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(shifted(far, 4), None);
    }
}
