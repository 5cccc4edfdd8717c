//! The Internet checksum (RFC 1071): ones' complement sums over bytes, the
//! TCP/UDP pseudo-headers, and finishing a checksum in place. A sum is kept
//! unfolded in a `u64` and folded once at the end.

/// Add `bytes` (big-endian 16-bit words, an odd last byte padded with zero)
/// to `sum`.
#[inline]
pub fn add(mut sum: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        // Sum the four 16-bit words of `v` without carrying out of 64 bits.
        sum += (v >> 48) + ((v >> 32) & 0xffff) + ((v >> 16) & 0xffff) + (v & 0xffff);
    }
    let mut rest = words.remainder().chunks_exact(2);
    for w in &mut rest {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = rest.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Fold a sum into 16 bits (not complemented).
#[inline]
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// A sum over data that continues across buffers of any length: an odd
/// byte at the end of one buffer pairs with the first byte of the next.
#[derive(Debug, Clone, Copy, Default)]
pub struct Running {
    sum: u64,
    odd: bool,
}

impl Running {
    pub fn new(seed: u16) -> Self {
        Running {
            sum: u64::from(seed),
            odd: false,
        }
    }

    pub fn add(&mut self, mut bytes: &[u8]) {
        if self.odd {
            if let Some((first, rest)) = bytes.split_first() {
                self.sum += u64::from(*first);
                bytes = rest;
                self.odd = false;
            }
        }
        self.sum = add(self.sum, bytes);
        if bytes.len() % 2 == 1 {
            self.odd = true;
        }
    }

    pub fn fold(&self) -> u16 {
        fold(self.sum)
    }
}

/// The IPv4 pseudo-header sum: addresses, protocol and L4 length.
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, l4_len: u16) -> u16 {
    let s = add(add(0, &src), &dst) + u64::from(protocol) + u64::from(l4_len);
    fold(s)
}

/// The IPv6 pseudo-header sum (RFC 8200 8.1).
#[inline]
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, l4_len: u32) -> u16 {
    let s = add(add(0, src), dst)
        + u64::from(next_header)
        + u64::from(l4_len >> 16)
        + u64::from(l4_len & 0xffff);
    fold(s)
}

/// The checksum field's value for `sum` (the ones' complement). UDP sends
/// a computed zero as 0xffff, zero meaning "no checksum" (RFC 768).
#[inline]
pub fn finish(sum: u16, udp: bool) -> u16 {
    match !sum {
        0 if udp => 0xffff,
        c => c,
    }
}

/// Whether `bytes`, checksum field included, sum to all ones: the check a
/// receiver makes.
pub fn verifies(seed: u16, bytes: &[u8]) -> bool {
    fold(add(u64::from(seed), bytes)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
    #[test]
    fn the_rfc_1071_example() {
        let b = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add(0, &b)), 0xddf2);
        assert_eq!(finish(fold(add(0, &b)), false), 0x220d);
    }

    /// A captured IPv4 header (20 bytes, checksum b861) verifies, and
    /// computing it over the zeroed field gives the same value.
    #[test]
    fn a_captured_ipv4_header() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(verifies(0, &h));
        h[10] = 0;
        h[11] = 0;
        assert_eq!(finish(fold(add(0, &h)), false), 0xb861);
    }

    #[test]
    fn running_sums_match_one_pass_for_any_split() {
        let data: Vec<u8> = (0..301u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = fold(add(0x1234, &data));
        for a in 0..data.len() {
            for b in [a, (a + 1).min(data.len()), (a + 17).min(data.len())] {
                let mut r = Running::new(0x1234);
                r.add(&data[..a]);
                r.add(&data[a..b]);
                r.add(&data[b..]);
                assert_eq!(r.fold(), whole, "split at {a}, {b}");
            }
        }
    }

    #[test]
    fn a_computed_zero_goes_out_as_all_ones_for_udp_only() {
        assert_eq!(finish(0xffff, true), 0xffff);
        assert_eq!(finish(0xffff, false), 0);
    }
}
