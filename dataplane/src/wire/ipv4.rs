//! The IPv4 header (RFC 791): what the transmit checksum and the hash read.

packet_view!(
    /// An IPv4 packet from its header on.
    min_len = field::DST.end
);

mod field {
    use std::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn total_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::TOTAL_LEN];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// More fragments follow, or this is not the first fragment.
    pub fn is_fragment(&self) -> bool {
        let b = &self.buffer.as_ref()[field::FLAGS_FRAG];
        u16::from_be_bytes([b[0], b[1]]) & 0x3fff != 0
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn header_checksum(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn src(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::SRC];
        [b[0], b[1], b[2], b[3]]
    }

    pub fn dst(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::DST];
        [b[0], b[1], b[2], b[3]]
    }

    /// A header that is IPv4, at least 20 bytes, within the buffer, and no
    /// longer than the packet it heads.
    pub fn is_well_formed(&self) -> bool {
        let hl = self.header_len();
        self.version() == 4
            && hl >= field::DST.end
            && hl <= self.buffer.as_ref().len()
            && usize::from(self.total_len()) >= hl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn parse_a_captured_header() {
        let p = Packet::new_checked(&HEADER[..]).unwrap();
        assert!(p.is_well_formed());
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 0x73);
        assert_eq!(p.protocol(), PROTO_UDP);
        assert!(!p.is_fragment(), "DF only");
        assert_eq!(p.header_checksum(), 0xb861);
        assert_eq!(p.src(), [192, 168, 0, 1]);
        assert_eq!(p.dst(), [192, 168, 0, 199]);
    }

    #[test]
    fn fragments_and_bad_headers() {
        let mut h = HEADER;
        h[6] = 0x20; // MF
        assert!(Packet::new_unchecked(&h[..]).is_fragment());
        let mut h = HEADER;
        h[7] = 0x01; // offset 8
        assert!(Packet::new_unchecked(&h[..]).is_fragment());
        let mut h = HEADER;
        h[0] = 0x44; // IHL 16 bytes
        assert!(!Packet::new_unchecked(&h[..]).is_well_formed());
        let mut h = HEADER;
        h[0] = 0x46; // IHL 24 bytes, buffer 20
        assert!(!Packet::new_unchecked(&h[..]).is_well_formed());
        assert!(Packet::new_checked(&HEADER[..19]).is_err());
    }
}
