//! Benchmarks for xbond: see `benches/datapath.rs` (criterion, per-frame
//! pieces) and `src/bin/e2e.rs` (packets per second through a real bond on the
//! veth testbed, next to a plain AF_XDP forwarder on the same veths).
#![forbid(unsafe_code)]

/// A UDP/IPv4 frame of `len` bytes (at least 60) from `src` to `dst`, with a
/// valid IPv4 header checksum and a zero (absent) UDP checksum.
pub fn udp_frame(len: usize, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let len = len.max(60);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[198, 18, 1, 1]);
    ip[16..20].copy_from_slice(&[198, 18, 0, 1]);
    let mut sum: u32 = 0;
    for c in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&4000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&9u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    #[test]
    fn ipv4_checksum_verifies() {
        let f = super::udp_frame(64, [2; 6], [4; 6]);
        let mut sum: u32 = 0;
        for c in f[14..34].chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
        assert_eq!(f.len(), 64);
    }
}
