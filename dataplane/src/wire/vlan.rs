//! IEEE 802.1Q tags: reading the outer tag of a frame, and inserting or
//! removing one in place. Only the two MAC addresses move (12 bytes); the
//! payload stays where it is, so a tag costs no copy when the frame has
//! headroom (see `FramePool::grow_head`).

/// C-VLAN tag (802.1Q).
pub const TPID_8021Q: u16 = super::ethernet::ethertype::VLAN;
/// S-VLAN tag (802.1ad, the outer tag of QinQ).
pub const TPID_8021AD: u16 = super::ethernet::ethertype::QINQ;
/// Bytes a tag adds to a frame.
pub const TAG_LEN: usize = 4;
/// The highest VLAN id; 4095 is reserved.
pub const VID_MAX: u16 = 4094;

const MACS: usize = 12;

/// The Tag Control Information: priority (PCP), drop eligibility (DEI) and
/// VLAN id, as carried on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tci(pub u16);

impl Tci {
    pub fn new(pcp: u8, dei: bool, vid: u16) -> Tci {
        Tci((u16::from(pcp & 7) << 13) | (u16::from(dei) << 12) | (vid & 0x0fff))
    }

    pub fn vid(self) -> u16 {
        self.0 & 0x0fff
    }

    pub fn pcp(self) -> u8 {
        (self.0 >> 13) as u8
    }

    pub fn dei(self) -> bool {
        self.0 & 0x1000 != 0
    }

    /// The same priority and DEI with another VLAN id.
    pub fn with_vid(self, vid: u16) -> Tci {
        Tci((self.0 & 0xf000) | (vid & 0x0fff))
    }
}

/// The outer tag of a frame, if its EtherType is a VLAN TPID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OuterTag {
    pub tpid: u16,
    pub tci: Tci,
}

/// The outer tag of `frame` (802.1Q or 802.1ad); `None` for an untagged
/// frame or one too short to hold a whole tag.
#[inline]
pub fn outer_tag(frame: &[u8]) -> Option<OuterTag> {
    let tag = frame.get(MACS..MACS + TAG_LEN + 2)?;
    let tpid = u16::from_be_bytes([tag[0], tag[1]]);
    if tpid != TPID_8021Q && tpid != TPID_8021AD {
        return None;
    }
    Some(OuterTag {
        tpid,
        tci: Tci(u16::from_be_bytes([tag[2], tag[3]])),
    })
}

/// The EtherType and payload of a frame past its MACs and, if it has one,
/// a single 802.1Q tag; `None` for a frame too short to say.
#[inline]
pub fn inner_payload(frame: &[u8]) -> Option<(u16, &[u8])> {
    let ethertype = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|t| u16::from_be_bytes([t[0], t[1]]))
    };
    let mut at = MACS;
    let mut t = ethertype(at)?;
    if t == TPID_8021Q {
        at += TAG_LEN;
        t = ethertype(at)?;
    }
    Some((t, &frame[at + 2..]))
}

/// Write a tag into a frame whose first [`TAG_LEN`] bytes are room made in
/// front of an untagged frame: the MAC addresses move down into the room
/// and the tag goes between them and the EtherType. `buf` is the grown
/// frame (room + original bytes); it must hold at least the two MACs.
#[inline]
pub fn insert_tag(buf: &mut [u8], tpid: u16, tci: Tci) -> bool {
    if buf.len() < TAG_LEN + MACS {
        return false;
    }
    buf.copy_within(TAG_LEN..TAG_LEN + MACS, 0);
    buf[MACS..MACS + 2].copy_from_slice(&tpid.to_be_bytes());
    buf[MACS + 2..MACS + 4].copy_from_slice(&tci.0.to_be_bytes());
    true
}

/// Move the MAC addresses of a tagged frame up over its outer tag; the
/// frame then starts [`TAG_LEN`] bytes later (the caller drops them).
#[inline]
pub fn remove_tag(buf: &mut [u8]) -> bool {
    if buf.len() < MACS + TAG_LEN + 2 {
        return false;
    }
    buf.copy_within(0..MACS, TAG_LEN);
    true
}

/// Rewrite the outer tag's TCI in place.
#[inline]
pub fn set_tci(buf: &mut [u8], tci: Tci) {
    if let Some(b) = buf.get_mut(MACS + 2..MACS + 4) {
        b.copy_from_slice(&tci.0.to_be_bytes());
    }
}

/// A set of VLAN ids (0..=4095), one bit each: membership is a shift and a
/// mask, the same cost for one VLAN or four thousand.
#[derive(Clone, PartialEq, Eq)]
pub struct VidSet(Box<[u64; 64]>);

impl Default for VidSet {
    fn default() -> Self {
        VidSet(Box::new([0; 64]))
    }
}

impl VidSet {
    #[inline]
    pub fn contains(&self, vid: u16) -> bool {
        let v = usize::from(vid & 0x0fff);
        self.0[v / 64] & (1 << (v % 64)) != 0
    }

    pub fn insert(&mut self, vid: u16) {
        let v = usize::from(vid & 0x0fff);
        self.0[v / 64] |= 1 << (v % 64);
    }

    pub fn remove(&mut self, vid: u16) {
        let v = usize::from(vid & 0x0fff);
        self.0[v / 64] &= !(1 << (v % 64));
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..4096u16).filter(|v| self.contains(*v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

impl std::fmt::Debug for VidSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<u16> for VidSet {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut s = VidSet::default();
        for v in iter {
            s.insert(v);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::hex;

    const UNTAGGED: &str = "ffffffffffff 020000000101 0806 0001";
    const TAGGED_87: &str = "ffffffffffff 020000000101 8100 a057 0806 0001";

    #[test]
    fn tci_fields() {
        let t = Tci::new(5, false, 87);
        assert_eq!(t.0, 0xa057);
        assert_eq!((t.pcp(), t.dei(), t.vid()), (5, false, 87));
        assert_eq!(Tci(0xf001).with_vid(87), Tci(0xf057));
        assert!(Tci(0x1000).dei());
    }

    #[test]
    fn insert_then_remove_is_the_identity_on_the_bytes() {
        let orig = hex(UNTAGGED);
        let mut buf = vec![0u8; TAG_LEN];
        buf.extend_from_slice(&orig);
        assert!(insert_tag(&mut buf, TPID_8021Q, Tci::new(5, false, 87)));
        assert_eq!(buf, hex(TAGGED_87));
        assert_eq!(
            outer_tag(&buf),
            Some(OuterTag {
                tpid: TPID_8021Q,
                tci: Tci(0xa057)
            })
        );
        assert!(remove_tag(&mut buf));
        assert_eq!(&buf[TAG_LEN..], &orig[..]);
    }

    #[test]
    fn qinq_outer_tag_is_seen_and_the_inner_left_alone() {
        let f = hex("ffffffffffff 020000000101 88a8 0064 8100 0057 0800");
        let t = outer_tag(&f).unwrap();
        assert_eq!((t.tpid, t.tci.vid()), (TPID_8021AD, 100));
    }

    #[test]
    fn short_and_untagged_frames_have_no_tag() {
        assert_eq!(outer_tag(&hex(UNTAGGED)), None);
        assert_eq!(outer_tag(&hex("ffffffffffff 020000000101 8100 00")), None);
        let mut short = vec![0u8; 10];
        assert!(!insert_tag(&mut short, TPID_8021Q, Tci(1)));
        assert!(!remove_tag(&mut short));
    }

    #[test]
    fn vid_set_membership() {
        let mut s: VidSet = [1, 87, 4094].into_iter().collect();
        assert!(s.contains(87) && s.contains(1) && s.contains(4094));
        assert!(!s.contains(0) && !s.contains(86) && !s.contains(4095));
        s.remove(87);
        assert!(!s.contains(87));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![1, 4094]);
        assert!(VidSet::default().is_empty());
    }
}
