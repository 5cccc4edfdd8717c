use super::*;
use crate::offload::{finish_in_place, seed_l4_checksum};
use proptest::prelude::*;

const SRC4: [u8; 4] = [198, 18, 0, 2];
const DST4: [u8; 4] = [198, 18, 0, 1];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// A TCP segment as a peer's stack sends it, checksums complete.
#[derive(Clone)]
struct Tcp {
    v6: bool,
    sport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    id: u16,
    df: bool,
    window: u16,
    /// TCP options (a multiple of 4 bytes).
    options: Vec<u8>,
    payload: Vec<u8>,
    /// Ethernet padding after the IP packet.
    pad: usize,
}

impl Tcp {
    fn new(seq: u32, payload: Vec<u8>) -> Self {
        Tcp {
            v6: false,
            sport: 40000,
            seq,
            ack: 7777,
            flags: TCP_ACK,
            id: 100,
            df: true,
            window: 500,
            // NOP NOP timestamps 1, 2.
            options: vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
            payload,
            pad: 0,
        }
    }

    fn frame(&self) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        let tcp_len = 20 + self.options.len() + self.payload.len();
        let mut tcp = Vec::new();
        tcp.extend(self.sport.to_be_bytes());
        tcp.extend(5201u16.to_be_bytes());
        tcp.extend(self.seq.to_be_bytes());
        tcp.extend(self.ack.to_be_bytes());
        tcp.push((((20 + self.options.len()) / 4) as u8) << 4);
        tcp.push(self.flags);
        tcp.extend(self.window.to_be_bytes());
        tcp.extend([0, 0, 0, 0]);
        tcp.extend(&self.options);
        tcp.extend(&self.payload);
        let pseudo = if self.v6 {
            f.extend([0x86, 0xdd]);
            f.extend([0x60, 0, 0, 0]);
            f.extend((tcp_len as u16).to_be_bytes());
            f.extend([6, 64]);
            f.extend(SRC6);
            f.extend(DST6);
            checksum::pseudo_v6(&SRC6, &DST6, 6, tcp_len as u32)
        } else {
            f.extend([0x08, 0x00]);
            let mut ip = vec![0x45, 0];
            ip.extend(((20 + tcp_len) as u16).to_be_bytes());
            ip.extend(self.id.to_be_bytes());
            ip.extend(if self.df { [0x40, 0] } else { [0, 0] });
            ip.extend([64, 6, 0, 0]);
            ip.extend(SRC4);
            ip.extend(DST4);
            let sum = !checksum::fold(checksum::add(0, &ip));
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            f.extend(ip);
            checksum::pseudo_v4(SRC4, DST4, 6, tcp_len as u16)
        };
        let sum = !checksum::fold(checksum::add(u64::from(pseudo), &tcp));
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        f.extend(tcp);
        f.extend(std::iter::repeat_n(0, self.pad));
        f
    }
}

fn bytes(n: usize, from: u8) -> Vec<u8> {
    (0..n).map(|i| from.wrapping_add(i as u8)).collect()
}

/// A run of segments of one send: `sizes` bytes each, from `seq`.
fn run_of(sizes: &[usize], seq: u32) -> Vec<Tcp> {
    let mut at = seq;
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut t = Tcp::new(at, bytes(n, i as u8));
            t.id = 100 + i as u16;
            at = at.wrapping_add(n as u32);
            t
        })
        .collect()
}

type Out = Vec<([u8; HDR], Vec<u8>, u16)>;

/// Offer every frame, writing out whenever the coalescer is full, and
/// return everything that came out: (virtio header, frame, segments).
fn coalesce(frames: &[Vec<u8>]) -> Out {
    fn drain(c: &mut Coalescer, out: &mut Out) {
        c.finish();
        out.extend((0..c.len()).map(|i| {
            let p = c.packet(i);
            (
                p[..HDR].try_into().unwrap(),
                p[HDR..].to_vec(),
                c.segments(i),
            )
        }));
        c.clear();
        assert!(c.is_empty());
    }
    let mut c = Coalescer::new();
    let mut out = Vec::new();
    for f in frames {
        if c.is_full() {
            drain(&mut c, &mut out);
        }
        assert_eq!(c.offer([&f[..]]), Some(f.len()));
    }
    drain(&mut c, &mut out);
    out
}

/// A joined packet's TCP checksum, finished as the kernel finishes a
/// partial one, verifies; and its IPv4 header checksum does.
fn assert_checksums_complete(frame: &[u8], v6: bool) {
    let mut f = frame.to_vec();
    let seed = u16::from_be_bytes([
        f[L3 + if v6 { 40 } else { 20 } + 16],
        f[L3 + if v6 { 40 } else { 20 } + 17],
    ]);
    let req = seed_l4_checksum(&mut f).expect("a TCP frame");
    assert_eq!(
        u16::from_be_bytes([
            f[usize::from(req.start) + 16],
            f[usize::from(req.start) + 17]
        ]),
        seed,
        "the field holds the pseudo-header sum"
    );
    finish_in_place(&mut f, req);
    assert!(
        parse(&f).is_some(),
        "checksums of the finished packet verify"
    );
}

#[test]
fn three_segments_of_a_send_become_one_packet_with_a_gso_header() {
    let segs = run_of(&[1000, 1000, 1000], 5000);
    let frames: Vec<_> = segs.iter().map(Tcp::frame).collect();
    let out = coalesce(&frames);
    assert_eq!(out.len(), 1);
    let (vh, f, n) = &out[0];
    assert_eq!(*n, 3);
    // NEEDS_CSUM, TCPV4, hdr_len 66, gso_size 1000, csum_start 34, offset 16.
    assert_eq!(vh, &[0x01, 0x01, 66, 0, 0xe8, 0x03, 34, 0, 16, 0]);
    assert_eq!(f.len(), 66 + 3000);
    assert_eq!(be16(f, L3 + 2), 20 + 32 + 3000);
    assert!(
        checksum::verifies(0, &f[L3..L3 + 20]),
        "IPv4 header checksum"
    );
    assert_eq!(be32(f, 38), 5000, "the first segment's sequence number");
    let want: Vec<u8> = segs.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(&f[66..], &want[..]);
    assert_checksums_complete(f, false);
}

#[test]
fn ipv6_segments_join_too() {
    let mut segs = run_of(&[1200, 1200], 1);
    for s in &mut segs {
        s.v6 = true;
    }
    let out = coalesce(&segs.iter().map(Tcp::frame).collect::<Vec<_>>());
    assert_eq!(out.len(), 1);
    let (vh, f, _) = &out[0];
    // TCPV6; hdr_len 14 + 40 + 32 = 86; csum_start 54.
    assert_eq!(vh, &[0x01, 0x04, 86, 0, 0xb0, 0x04, 54, 0, 16, 0]);
    assert_eq!(be16(f, L3 + 4), 32 + 2400);
    assert_checksums_complete(f, true);
}

#[test]
fn a_packet_on_its_own_leaves_as_it_came_with_an_empty_header() {
    let t = Tcp::new(1, bytes(100, 0));
    let out = coalesce(&[t.frame()]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, [0u8; HDR]);
    assert_eq!(out[0].1, t.frame());
}

#[test]
fn what_must_not_join_does_not() {
    let base = run_of(&[800, 800], 10);
    type Change = Box<dyn Fn(&mut Tcp)>;
    let cases: Vec<(&str, Change)> = vec![
        ("a gap in the sequence", Box::new(|t| t.seq += 1)),
        ("another ACK", Box::new(|t| t.ack += 1)),
        ("another timestamp", Box::new(|t| t.options[11] = 3)),
        ("another port", Box::new(|t| t.sport += 1)),
        ("a SYN", Box::new(|t| t.flags |= 0x02)),
        ("a FIN", Box::new(|t| t.flags |= 0x01)),
        ("ECE", Box::new(|t| t.flags |= 0x40)),
        ("a longer segment", Box::new(|t| t.payload.push(9))),
        ("no payload", Box::new(|t| t.payload.clear())),
        (
            "an ID that does not follow, without DF",
            Box::new(|t| {
                t.df = false;
                t.id += 5;
            }),
        ),
    ];
    for (what, change) in cases {
        let mut first = base[0].clone();
        if what.contains("without DF") {
            first.df = false;
        }
        let mut second = base[1].clone();
        change(&mut second);
        let out = coalesce(&[first.frame(), second.frame()]);
        assert_eq!(out.len(), 2, "{what}");
        assert_eq!(out[0].1, first.frame(), "{what}");
        assert_eq!(out[1].1, second.frame(), "{what}");
        assert!(out.iter().all(|o| o.0 == [0u8; HDR]), "{what}");
    }
}

#[test]
fn a_segment_that_fails_its_checksum_passes_as_it_came_and_nothing_passes_it() {
    let segs = run_of(&[700, 700, 700], 1);
    let mut bad = segs[1].frame();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    let out = coalesce(&[segs[0].frame(), bad.clone(), segs[2].frame()]);
    assert_eq!(out.len(), 3);
    assert_eq!(out[1].1, bad);
    assert_eq!(out[2].1, segs[2].frame());
}

#[test]
fn psh_and_a_shorter_segment_end_a_packet() {
    let mut segs = run_of(&[900, 900, 900, 400, 900], 1);
    segs[1].flags |= TCP_PSH;
    let out = coalesce(&segs.iter().map(Tcp::frame).collect::<Vec<_>>());
    let counts: Vec<u16> = out.iter().map(|o| o.2).collect();
    assert_eq!(
        counts,
        [2, 2, 1],
        "PSH ends the first, the 400 bytes the second"
    );
    assert_eq!(
        out[0].1[L3 + 20 + 13] & TCP_PSH,
        TCP_PSH,
        "the joined packet keeps PSH"
    );
    assert_eq!(out[1].1.len(), 66 + 1300);
}

#[test]
fn interleaved_flows_join_each_on_its_own() {
    let a = run_of(&[500, 500, 500], 1);
    let mut b = run_of(&[600, 600, 600], 90);
    for t in &mut b {
        t.sport = 40001;
    }
    let frames: Vec<_> = (0..3).flat_map(|i| [a[i].frame(), b[i].frame()]).collect();
    let out = coalesce(&frames);
    assert_eq!(out.iter().map(|o| o.2).collect::<Vec<_>>(), [3, 3]);
    assert_eq!(out[0].1.len(), 66 + 1500);
    assert_eq!(out[1].1.len(), 66 + 1800);
}

#[test]
fn padding_after_the_ip_packet_is_not_joined() {
    let mut segs = run_of(&[4, 4], 1);
    for s in &mut segs {
        s.pad = 8;
    }
    let out = coalesce(&segs.iter().map(Tcp::frame).collect::<Vec<_>>());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.len(), 66 + 8);
    assert_eq!(&out[0].1[66..], &[0, 1, 2, 3, 1, 2, 3, 4]);
}

#[test]
fn a_packet_stays_within_the_ip_length_and_a_frame_in_parts_is_whole() {
    let segs = run_of(&[1448; 60], 1);
    let mut c = Coalescer::new();
    for s in &segs {
        let f = s.frame();
        let (a, b) = f.split_at(100);
        assert!(c.offer([a, b]).is_some());
    }
    c.finish();
    let out: Vec<(usize, u16)> = (0..c.len())
        .map(|i| (c.packet(i).len() - HDR, c.segments(i)))
        .collect();
    assert!(out.len() >= 2, "{out:?}");
    assert!(
        out.iter().all(|&(len, _)| len - L3 <= MAX_IP_LEN),
        "{out:?}"
    );
    assert_eq!(out.iter().map(|o| usize::from(o.1)).sum::<usize>(), 60);
}

#[test]
fn a_full_coalescer_takes_nothing_more() {
    let mut c = Coalescer::new();
    let f = Tcp::new(1, vec![]).frame();
    for _ in 0..REGIONS {
        assert!(c.offer([&f[..]]).is_some());
    }
    assert!(c.is_full());
    assert_eq!(c.offer([&f[..]]), None);
    c.clear();
    assert!(c.offer([&f[..]]).is_some());
}

#[test]
fn malformed_frames_pass_as_they_came() {
    let good = Tcp::new(1, bytes(50, 0)).frame();
    for cut in [0, 13, 14, 33, 34, 53, 60] {
        let out = coalesce(&[good[..cut].to_vec()]);
        assert_eq!(out[0].1, &good[..cut]);
        assert_eq!(out[0].0, [0u8; HDR]);
    }
}

type Segments = Vec<(u32, Vec<u8>)>;

/// Split a joined packet into its segments, as the kernel's GSO does: the
/// payloads, with each segment's sequence number.
fn segments_of(vh: &[u8; HDR], f: &[u8]) -> Segments {
    let hl = usize::from(u16::from_le_bytes([vh[2], vh[3]]));
    let mss = usize::from(u16::from_le_bytes([vh[4], vh[5]]));
    let seg = parse_any(f);
    let (hl, mss) = if vh[1] == 0 {
        (seg.1, usize::MAX)
    } else {
        (hl, mss)
    };
    f[hl..]
        .chunks(mss.min(f.len().max(1)))
        .scan(seg.0, |seq, c| {
            let s = *seq;
            *seq = seq.wrapping_add(c.len() as u32);
            Some((s, c.to_vec()))
        })
        .collect()
}

/// Sequence number and header length of a TCP frame, checksums or not.
fn parse_any(f: &[u8]) -> (u32, usize) {
    let l4 = if be16(f, 12) == 0x86dd {
        L3 + 40
    } else {
        L3 + 20
    };
    (be32(f, l4 + 4), l4 + usize::from(f[l4 + 12] >> 4) * 4)
}

proptest! {
    /// Whatever the segment sizes, the interleaving of two flows and the
    /// segments that must stay alone: segmenting what comes out gives back
    /// each flow's bytes in order, every joined packet's checksums complete
    /// as the kernel completes them, and no segment is lost or doubled.
    #[test]
    fn joining_then_segmenting_gives_back_each_flows_bytes(
        sizes in proptest::collection::vec(1usize..1500, 1..80),
        v6 in any::<bool>(),
        alone in proptest::collection::vec(any::<bool>(), 80),
        which in proptest::collection::vec(any::<bool>(), 80),
    ) {
        let mut flows = [Vec::new(), Vec::new()];
        let mut seq = [1000u32, 9_000_000];
        let mut frames = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let k = usize::from(which[i]);
            let mut t = Tcp::new(seq[k], bytes(n, i as u8));
            t.v6 = v6;
            t.sport = 40000 + k as u16;
            t.id = i as u16;
            if alone[i] {
                t.flags |= TCP_PSH;
            }
            seq[k] = seq[k].wrapping_add(n as u32);
            flows[k].extend(&t.payload);
            frames.push(t.frame());
        }
        let out = coalesce(&frames);
        prop_assert_eq!(out.iter().map(|o| usize::from(o.2)).sum::<usize>(), sizes.len());
        let mut got = [Vec::new(), Vec::new()];
        let mut next = [1000u32, 9_000_000];
        for (vh, f, segs) in &out {
            if *segs > 1 {
                assert_checksums_complete(f, v6);
            }
            let l4 = if v6 { L3 + 40 } else { L3 + 20 };
            let k = usize::from(be16(f, l4) == 40001);
            for (s, bytes) in segments_of(vh, f) {
                prop_assert_eq!(s, next[k], "in order, nothing missing");
                next[k] = s.wrapping_add(bytes.len() as u32);
                got[k].extend(bytes);
            }
        }
        prop_assert_eq!(&got[0], &flows[0]);
        prop_assert_eq!(&got[1], &flows[1]);
    }

    /// Any bytes at all: no panic, and a frame is either passed on
    /// untouched or joined.
    #[test]
    fn any_bytes_are_taken_without_panic(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..10),
    ) {
        let out = coalesce(&frames);
        for (vh, f, segs) in &out {
            if *segs == 1 {
                prop_assert_eq!(*vh, [0u8; HDR]);
                prop_assert!(frames.contains(f));
            }
        }
    }
}
