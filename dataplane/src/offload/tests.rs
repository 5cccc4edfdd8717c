//! Byte-vector tests: frames built with pnet (an independent checksum
//! implementation), their L4 checksum made partial, complete or garbage as
//! a host could hand them over, then seeded and finished here.

use super::*;
use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::packet::ipv4::MutableIpv4Packet;
use pnet::packet::ipv6::MutableIpv6Packet;
use pnet::packet::tcp::{self, MutableTcpPacket, TcpOption};
use pnet::packet::udp::{self, MutableUdpPacket};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const SRC4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const DST4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

#[derive(Clone, Copy, Debug)]
enum L4 {
    Tcp,
    Udp,
}

fn ethernet(tags: &[u16], ethertype: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 2, 0, 2, 0, 0, 0, 1, 0];
    for (i, vid) in tags.iter().enumerate() {
        let tpid = if i + 1 < tags.len() {
            0x88a8u16
        } else {
            0x8100
        };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An L4 segment with a correct checksum, computed by pnet.
fn l4_segment(l4: L4, payload: &[u8], v6: bool, tcp_options: bool) -> Vec<u8> {
    match l4 {
        L4::Tcp => {
            let opts = if tcp_options { 12 } else { 0 };
            let mut b = vec![0u8; 20 + opts + payload.len()];
            let mut t = MutableTcpPacket::new(&mut b).unwrap();
            t.set_source(40000);
            t.set_destination(5201);
            t.set_sequence(0x01020304);
            t.set_acknowledgement(0x0a0b0c0d);
            t.set_data_offset(((20 + opts) / 4) as u8);
            t.set_flags(0x18);
            t.set_window(502);
            if tcp_options {
                t.set_options(&[
                    TcpOption::nop(),
                    TcpOption::nop(),
                    TcpOption::timestamp(0x11223344, 0x55667788),
                ]);
            }
            t.set_payload(payload);
            let c = if v6 {
                tcp::ipv6_checksum(&t.to_immutable(), &SRC6, &DST6)
            } else {
                tcp::ipv4_checksum(&t.to_immutable(), &SRC4, &DST4)
            };
            t.set_checksum(c);
            b
        }
        L4::Udp => {
            let mut b = vec![0u8; 8 + payload.len()];
            let mut u = MutableUdpPacket::new(&mut b).unwrap();
            u.set_source(5353);
            u.set_destination(4789);
            u.set_length((8 + payload.len()) as u16);
            u.set_payload(payload);
            let c = if v6 {
                udp::ipv6_checksum(&u.to_immutable(), &SRC6, &DST6)
            } else {
                udp::ipv4_checksum(&u.to_immutable(), &SRC4, &DST4)
            };
            u.set_checksum(c);
            b
        }
    }
}

fn frame_v4(tags: &[u16], l4: L4, seg: &[u8], with_ip_options: bool) -> Vec<u8> {
    // Router alert (RFC 2113), 4 bytes.
    let opts: &[u8] = if with_ip_options {
        &[0x94, 0x04, 0, 0]
    } else {
        &[]
    };
    let hl = 20 + opts.len();
    let mut ip = vec![0u8; hl + seg.len()];
    let mut p = MutableIpv4Packet::new(&mut ip).unwrap();
    p.set_version(4);
    p.set_header_length((hl / 4) as u8);
    p.set_total_length((hl + seg.len()) as u16);
    p.set_ttl(64);
    p.set_flags(2);
    p.set_next_level_protocol(match l4 {
        L4::Tcp => IpNextHeaderProtocols::Tcp,
        L4::Udp => IpNextHeaderProtocols::Udp,
    });
    p.set_source(SRC4);
    p.set_destination(DST4);
    drop(p);
    ip[20..hl].copy_from_slice(opts);
    ip[hl..].copy_from_slice(seg);
    let mut f = ethernet(tags, 0x0800);
    f.extend_from_slice(&ip);
    f
}

fn frame_v6(tags: &[u16], l4: L4, seg: &[u8], hop_by_hop: bool) -> Vec<u8> {
    let nh = match l4 {
        L4::Tcp => 6,
        L4::Udp => 17,
    };
    let ext: Vec<u8> = if hop_by_hop {
        vec![nh, 0, 1, 4, 0, 0, 0, 0] // PadN
    } else {
        vec![]
    };
    let mut ip = vec![0u8; 40 + ext.len() + seg.len()];
    let mut p = MutableIpv6Packet::new(&mut ip).unwrap();
    p.set_version(6);
    p.set_payload_length((ext.len() + seg.len()) as u16);
    p.set_next_header(if hop_by_hop {
        IpNextHeaderProtocols::Hopopt
    } else if nh == 6 {
        IpNextHeaderProtocols::Tcp
    } else {
        IpNextHeaderProtocols::Udp
    });
    p.set_hop_limit(64);
    p.set_source(SRC6);
    p.set_destination(DST6);
    drop(p);
    ip[40..40 + ext.len()].copy_from_slice(&ext);
    ip[40 + ext.len()..].copy_from_slice(seg);
    let mut f = ethernet(tags, 0x86dd);
    f.extend_from_slice(&ip);
    f
}

/// How the host hands a frame over.
#[derive(Clone, Copy, Debug)]
enum HostSum {
    /// `CHECKSUM_PARTIAL`: the field holds the pseudo-header sum.
    Partial,
    /// Computed by the host.
    Complete,
    /// Anything at all in the field (it must not matter).
    Garbage(u16),
}

fn field_offset(l4: L4) -> usize {
    match l4 {
        L4::Tcp => 16,
        L4::Udp => 6,
    }
}

/// The pseudo-header sum of a v4 or v6 frame built here, from pnet's view
/// of the addresses (not from the code under test).
fn pseudo(frame: &[u8], l4_at: usize, l4: L4) -> u16 {
    let proto = match l4 {
        L4::Tcp => 6,
        L4::Udp => 17,
    };
    let len = frame.len() - l4_at;
    let mut sum: u64 = proto + len as u64;
    let words = |b: &[u8]| -> u64 {
        b.chunks(2)
            .map(|w| u64::from(u16::from_be_bytes([w[0], w[1]])))
            .sum()
    };
    let v6 = frame.windows(16).any(|w| w == SRC6.octets());
    if v6 {
        sum += words(&SRC6.octets()) + words(&DST6.octets());
    } else {
        sum += words(&SRC4.octets()) + words(&DST4.octets());
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Put `how` into the frame's field; return the correct value.
fn as_host_gives(frame: &mut [u8], l4_at: usize, l4: L4, how: HostSum) -> [u8; 2] {
    let at = l4_at + field_offset(l4);
    let correct = [frame[at], frame[at + 1]];
    let v = match how {
        HostSum::Complete => return correct,
        HostSum::Partial => pseudo(frame, l4_at, l4),
        HostSum::Garbage(v) => v,
    };
    frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
    correct
}

fn check(mut frame: Vec<u8>, l4_at: usize, l4: L4, how: HostSum) {
    let correct = as_host_gives(&mut frame, l4_at, l4, how);
    let req = seed_l4_checksum(&mut frame).expect("a TCP/UDP frame");
    assert_eq!(usize::from(req.start), l4_at);
    assert_eq!(usize::from(req.offset), field_offset(l4));
    assert!(req.covers_to_end(frame.len() as u32));
    let at = l4_at + field_offset(l4);
    assert_eq!(
        u16::from_be_bytes([frame[at], frame[at + 1]]),
        pseudo(&frame, l4_at, l4),
        "{l4:?} {how:?}: the seed is the pseudo-header sum"
    );
    finish_in_place(&mut frame, req);
    assert_eq!(
        [frame[at], frame[at + 1]],
        correct,
        "{l4:?} {how:?}: finished checksum"
    );
}

const HOWS: [HostSum; 4] = [
    HostSum::Partial,
    HostSum::Complete,
    HostSum::Garbage(0xbeef),
    HostSum::Garbage(0xffff),
];

#[test]
fn ipv4_tcp_and_udp_untagged_tagged_and_qinq_with_options() {
    for tags in [&[][..], &[87][..], &[100, 87][..]] {
        for how in HOWS {
            for opts in [false, true] {
                let eth = 14 + 4 * tags.len();
                let hl = if opts { 24 } else { 20 };
                let seg = l4_segment(L4::Tcp, b"hello, bond", false, opts);
                check(frame_v4(tags, L4::Tcp, &seg, opts), eth + hl, L4::Tcp, how);
                let seg = l4_segment(L4::Udp, b"odd length!", false, false);
                check(frame_v4(tags, L4::Udp, &seg, opts), eth + hl, L4::Udp, how);
            }
        }
    }
}

#[test]
fn ipv6_tcp_and_udp_with_and_without_a_hop_by_hop_header() {
    for tags in [&[][..], &[87][..]] {
        for how in HOWS {
            for hbh in [false, true] {
                let at = 14 + 4 * tags.len() + 40 + if hbh { 8 } else { 0 };
                let seg = l4_segment(L4::Tcp, &[7u8; 1400], true, true);
                check(frame_v6(tags, L4::Tcp, &seg, hbh), at, L4::Tcp, how);
                let seg = l4_segment(L4::Udp, &[9u8; 33], true, false);
                check(frame_v6(tags, L4::Udp, &seg, hbh), at, L4::Udp, how);
            }
        }
    }
}

#[test]
fn udp_over_ipv4_without_a_checksum_stays_without() {
    let mut seg = l4_segment(L4::Udp, b"no sum", false, false);
    seg[6] = 0;
    seg[7] = 0;
    let mut f = frame_v4(&[], L4::Udp, &seg, false);
    let before = f.clone();
    assert_eq!(seed_l4_checksum(&mut f), None);
    assert_eq!(f, before);
}

#[test]
fn frames_left_alone() {
    let seg = l4_segment(L4::Tcp, b"x", false, false);
    let mut frag = frame_v4(&[], L4::Tcp, &seg, false);
    frag[14 + 6] |= 0x20; // MF
    let mut icmp = frame_v4(&[], L4::Tcp, &seg, false);
    icmp[14 + 9] = 1;
    let mut arp = ethernet(&[], 0x0806);
    arp.extend_from_slice(&[0u8; 28]);
    let mut short = frame_v4(&[], L4::Tcp, &seg, false);
    short.truncate(14 + 20 + 10);
    let mut routed = frame_v6(&[], L4::Udp, &l4_segment(L4::Udp, b"r", true, false), false);
    routed[14 + 6] = ipv6::ROUTING;
    for (name, mut f) in [
        ("fragment", frag),
        ("icmp", icmp),
        ("arp", arp),
        ("short", short),
        ("routing header", routed),
        ("runt", vec![0u8; 13]),
    ] {
        let before = f.clone();
        assert_eq!(seed_l4_checksum(&mut f), None, "{name}");
        assert_eq!(f, before, "{name} unchanged");
    }
}

#[test]
fn ethernet_padding_is_outside_the_checksum() {
    // A 54-byte TCP ACK padded to 60 bytes: the kernel must not be asked
    // to sum the padding; finishing here sums only the L4 bytes.
    let seg = l4_segment(L4::Tcp, b"", false, false);
    let mut f = frame_v4(&[], L4::Tcp, &seg, false);
    let at = 34 + 16;
    let correct = [f[at], f[at + 1]];
    f.resize(60, 0xaa);
    let req = seed_l4_checksum(&mut f).unwrap();
    assert!(!req.covers_to_end(f.len() as u32));
    finish_in_place(&mut f, req);
    assert_eq!([f[at], f[at + 1]], correct);
}

proptest! {
    #[test]
    fn any_payload_any_host_state_gives_the_right_checksum(
        payload in proptest::collection::vec(any::<u8>(), 0..1500),
        v6 in any::<bool>(),
        tcp in any::<bool>(),
        tagged in any::<bool>(),
        garbage in any::<u16>(),
        how in 0..3u8,
    ) {
        let l4 = if tcp { L4::Tcp } else { L4::Udp };
        let tags: &[u16] = if tagged { &[87] } else { &[] };
        let seg = l4_segment(l4, &payload, v6, tcp);
        let (f, at) = if v6 {
            (frame_v6(tags, l4, &seg, false), 14 + 4 * tags.len() + 40)
        } else {
            (frame_v4(tags, l4, &seg, false), 14 + 4 * tags.len() + 20)
        };
        let how = match how {
            0 => HostSum::Partial,
            1 => HostSum::Complete,
            _ => HostSum::Garbage(garbage),
        };
        check(f, at, l4, how);
    }
}
