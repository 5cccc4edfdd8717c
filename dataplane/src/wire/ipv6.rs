//! The IPv6 header (RFC 8200) and the extension headers the transmit
//! checksum walks past.

packet_view!(
    /// An IPv6 packet from its fixed header on.
    min_len = field::PAYLOAD
);

mod field {
    use std::ops::Range;
    pub const VERSION: usize = 0;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
    pub const PAYLOAD: usize = 40;
}

pub const HEADER_LEN: usize = field::PAYLOAD;
pub const HOP_BY_HOP: u8 = 0;
pub const ROUTING: u8 = 43;
pub const FRAGMENT: u8 = 44;
pub const DEST_OPTIONS: u8 = 60;

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] >> 4
    }

    pub fn payload_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::PAYLOAD_LEN];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    pub fn src(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }

    pub fn dst(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }

    /// The upper-layer header past hop-by-hop and destination options:
    /// its protocol and its offset from the start of the IPv6 header.
    /// `None` past a routing or fragment header (the pseudo-header's
    /// destination or the checksum's extent differ there), or when an
    /// extension header does not fit in the buffer.
    pub fn upper_layer(&self) -> Option<(u8, usize)> {
        let b = self.buffer.as_ref();
        let mut next = self.next_header();
        let mut at = HEADER_LEN;
        // At most a few options headers; a loop bound keeps a crafted chain cheap.
        for _ in 0..4 {
            match next {
                HOP_BY_HOP | DEST_OPTIONS => {
                    let h = b.get(at..at + 2)?;
                    next = h[0];
                    at += (usize::from(h[1]) + 1) * 8;
                }
                ROUTING | FRAGMENT => return None,
                proto => return Some((proto, at)),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(next: u8, payload: u16) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&payload.to_be_bytes());
        h.push(next);
        h.push(64);
        h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8].repeat(4));
        h.extend_from_slice(&[0xfe, 0x80, 0, 1].repeat(4));
        h
    }

    #[test]
    fn fields_of_a_built_header() {
        let h = header(6, 20);
        let p = Packet::new_checked(&h[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.payload_len(), 20);
        assert_eq!(p.next_header(), 6);
        assert_eq!(p.src()[..4], [0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(p.dst()[..4], [0xfe, 0x80, 0, 1]);
        assert_eq!(p.upper_layer(), Some((6, 40)));
        assert!(Packet::new_checked(&h[..39]).is_err());
    }

    #[test]
    fn options_headers_are_walked_routing_and_fragments_are_not() {
        let mut h = header(HOP_BY_HOP, 36);
        // Hop-by-hop, 8 bytes, then destination options, 16 bytes, then UDP.
        h.extend_from_slice(&[DEST_OPTIONS, 0, 1, 4, 0, 0, 0, 0]);
        h.extend_from_slice(&[17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Packet::new_unchecked(&h[..]).upper_layer(), Some((17, 64)));
        // Cut in the middle of the second header: not found.
        assert_eq!(Packet::new_unchecked(&h[..49]).upper_layer(), None);
        let h = header(FRAGMENT, 8);
        assert_eq!(Packet::new_unchecked(&h[..]).upper_layer(), None);
        let h = header(ROUTING, 8);
        assert_eq!(Packet::new_unchecked(&h[..]).upper_layer(), None);
    }
}
