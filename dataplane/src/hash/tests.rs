use super::*;
use crate::wire::tests::hex;
use proptest::prelude::*;

/// The vectors written by testdata/gen_xmit_hash_vectors.py, each with the
/// kernel's arithmetic in its comments.
pub(crate) const VECTORS: &str = include_str!("../../testdata/xmit_hash_vectors.txt");

#[derive(Debug)]
struct Vector {
    name: String,
    policy: XmitHashPolicy,
    tci: Option<u16>,
    frame: Vec<u8>,
    hash: u32,
}

fn policy_by_name(s: &str) -> XmitHashPolicy {
    [
        XmitHashPolicy::Layer2,
        XmitHashPolicy::Layer34,
        XmitHashPolicy::Layer23,
        XmitHashPolicy::Encap23,
        XmitHashPolicy::Encap34,
        XmitHashPolicy::VlanSrcMac,
    ]
    .into_iter()
    .find(|p| p.name() == s)
    .unwrap_or_else(|| panic!("unknown policy {s}"))
}

fn vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    let mut cur: Option<Vector> = None;
    for line in VECTORS.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.extend(cur.take());
            cur = Some(Vector {
                name: name.to_string(),
                policy: XmitHashPolicy::Layer2,
                tci: None,
                frame: Vec::new(),
                hash: 0,
            });
            continue;
        }
        let (k, v) = line.split_once(" = ").expect("key = value");
        let c = cur.as_mut().expect("a section");
        match k {
            "policy" => c.policy = policy_by_name(v),
            "tci" => c.tci = Some(u16::from_str_radix(v.trim_start_matches("0x"), 16).unwrap()),
            "frame" => c.frame = hex(v),
            "hash" => c.hash = u32::from_str_radix(v.trim_start_matches("0x"), 16).unwrap(),
            other => panic!("unknown key {other}"),
        }
    }
    out.extend(cur);
    out
}

#[test]
fn every_vector_matches_the_kernel_arithmetic() {
    let vs = vectors();
    assert!(vs.len() >= 30, "only {} vectors", vs.len());
    let mut bad = Vec::new();
    for v in &vs {
        let t = trace(v.policy, &v.frame, v.tci);
        if t.hash != v.hash {
            bad.push(format!(
                "{}: want 0x{:08x}, got 0x{:08x}\n{t}",
                v.name, v.hash, t.hash
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_policy_and_case_is_covered() {
    let vs = vectors();
    for p in [
        "layer2",
        "layer2+3",
        "layer3+4",
        "encap2+3",
        "encap3+4",
        "vlan+srcmac",
    ] {
        assert!(vs.iter().any(|v| v.policy.name() == p), "no vector for {p}");
    }
    for case in [
        "ipv4-udp", "tcp", "ipv6", "icmp", "fragment", "vlan", "arp", "vxlan", "gre", "ipip",
        "qinq",
    ] {
        assert!(
            vs.iter().any(|v| v.name.contains(case)),
            "no vector for {case}"
        );
    }
}

#[test]
fn an_out_of_band_tag_hashes_like_the_same_tag_in_the_frame() {
    let v = vectors();
    let tagged = v
        .iter()
        .find(|v| v.name == "layer34-vlan87-ipv4-udp")
        .unwrap();
    let plain = v.iter().find(|v| v.name == "layer34-ipv4-udp").unwrap();
    for p in [
        XmitHashPolicy::Layer2,
        XmitHashPolicy::Layer23,
        XmitHashPolicy::Layer34,
        XmitHashPolicy::Encap34,
    ] {
        assert_eq!(
            xmit_hash(p, &tagged.frame, None),
            xmit_hash(p, &plain.frame, Some(0x2057)),
            "{}",
            p.name()
        );
    }
    assert_eq!(
        xmit_hash(XmitHashPolicy::VlanSrcMac, &plain.frame, Some(0x2057)),
        xmit_hash(XmitHashPolicy::VlanSrcMac, &tagged.frame, None)
    );
}

#[test]
fn the_trace_shows_the_arithmetic() {
    let v = vectors();
    let udp = v.iter().find(|v| v.name == "layer34-ipv4-udp").unwrap();
    let text = trace(XmitHashPolicy::Layer34, &udp.frame, None).to_string();
    assert!(text.contains("ipv4 198.18.0.1 > 198.18.0.2"), "{text}");
    assert!(text.contains("ports 1234 > 80: start 0x5000d204"), "{text}");
    assert!(text.contains("low bit dropped"), "{text}");
    let arp = v.iter().find(|v| v.name == "layer23-arp").unwrap();
    let text = trace(XmitHashPolicy::Layer23, &arp.frame, None).to_string();
    assert!(text.contains("not IP"), "{text}");
}

proptest! {
    /// Frames from the wire or the host are arbitrary bytes: every policy
    /// hashes them without panicking, and truncating a frame never reads
    /// past its end (the result is defined for every prefix).
    #[test]
    fn any_bytes_hash_without_panic(frame in proptest::collection::vec(any::<u8>(), 0..200), tci in any::<Option<u16>>()) {
        for p in [XmitHashPolicy::Layer2, XmitHashPolicy::Layer34, XmitHashPolicy::Layer23, XmitHashPolicy::Encap23, XmitHashPolicy::Encap34, XmitHashPolicy::VlanSrcMac] {
            for cut in [frame.len(), frame.len() / 2, 14.min(frame.len())] {
                let _ = xmit_hash(p, &frame[..cut], tci);
            }
        }
    }

    /// Structured frames: IPv4/UDP with random addresses and ports under
    /// layer3+4 equal the formula computed directly from the fields.
    #[test]
    fn layer34_ipv4_udp_equals_the_formula(src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), sport in any::<u16>(), dport in any::<u16>()) {
        let mut f = vec![0u8; 42];
        f[12] = 0x08;
        f[14] = 0x45;
        f[23] = 17;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        let ports = u32::from(sport.swap_bytes()) | (u32::from(dport.swap_bytes()) << 16);
        let mut h = ports ^ u32::from_le_bytes(src) ^ u32::from_le_bytes(dst);
        h ^= h >> 16;
        h ^= h >> 8;
        prop_assert_eq!(xmit_hash(XmitHashPolicy::Layer34, &f, None), h >> 1);
    }
}
