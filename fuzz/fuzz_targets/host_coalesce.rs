//! Any frames the members hand the host, joined by the coalescer: no panic;
//! every segment comes out once; a packet left alone is the frame as it
//! came (at most its Ethernet padding cut); a joined one has an IPv4 header
//! checksum that verifies and a TCP checksum that, finished from its seed as
//! the kernel finishes a partial one, verifies too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xbond_dataplane::offload::coalesce::Coalescer;
use xbond_dataplane::offload::{finish_in_place, seed_l4_checksum};
use xbond_dataplane::wire::checksum;

const HDR: usize = 10;

/// A TCP segment with correct checksums, of flow `flow`, from `seq`.
fn segment(v6: bool, flow: u8, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    let tcp_len = 20 + payload.len();
    let mut tcp = vec![0x9c, 0x40 + flow, 0x14, 0x51];
    tcp.extend(seq.to_be_bytes());
    tcp.extend(77u32.to_be_bytes());
    tcp.extend([0x50, flags, 1, 0, 0, 0, 0, 0]);
    tcp.extend(payload);
    let (src4, dst4) = ([198, 18, 0, 2], [198, 18, 0, 1]);
    let (mut src6, mut dst6) = ([0u8; 16], [0u8; 16]);
    src6[15] = 2;
    dst6[15] = 1;
    let pseudo = if v6 {
        f.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend((tcp_len as u16).to_be_bytes());
        f.extend([6, 64]);
        f.extend(src6);
        f.extend(dst6);
        checksum::pseudo_v6(&src6, &dst6, 6, tcp_len as u32)
    } else {
        f.extend([0x08, 0x00]);
        let mut ip = vec![0x45, 0];
        ip.extend(((20 + tcp_len) as u16).to_be_bytes());
        ip.extend([0, 1, 0x40, 0, 64, 6, 0, 0]);
        ip.extend(src4);
        ip.extend(dst4);
        let sum = !checksum::fold(checksum::add(0, &ip));
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend(ip);
        checksum::pseudo_v4(src4, dst4, 6, tcp_len as u16)
    };
    let sum = !checksum::fold(checksum::add(u64::from(pseudo), &tcp));
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    f.extend(tcp);
    f
}

fuzz_target!(|data: &[u8]| {
    // Each frame: a control byte, a length byte (times 8, so frames reach
    // past an MTU), then that many bytes. The control byte chooses raw bytes
    // or a valid segment (IPv4 or IPv6, one of two flows, a gap in the
    // sequence, TCP flags, one byte flipped), so that joins are reachable.
    let mut frames = Vec::new();
    let mut seq = [1000u32, 5000];
    let mut rest = data;
    while let [ctl, n, tail @ ..] = rest {
        let ctl = *ctl;
        let n = (usize::from(*n) * 8).min(tail.len());
        let bytes = &tail[..n];
        rest = &tail[n..];
        if ctl & 1 == 0 {
            frames.push(bytes.to_vec());
            continue;
        }
        let k = usize::from(ctl >> 1 & 1);
        if ctl & 4 != 0 {
            seq[k] = seq[k].wrapping_add(1);
        }
        let flags = [0x10, 0x18, 0x11, 0x12][usize::from(ctl >> 3 & 3)];
        let mut f = segment(ctl & 0x20 != 0, k as u8, seq[k], flags, bytes);
        seq[k] = seq[k].wrapping_add(n as u32);
        if ctl & 0x40 != 0 && !f.is_empty() {
            let at = usize::from(ctl) % f.len();
            f[at] ^= 0x01;
        }
        frames.push(f);
    }
    // One coalescer for every run (its regions are 4 MiB); each run starts
    // it empty.
    thread_local! {
        static C: std::cell::RefCell<Coalescer> = std::cell::RefCell::new(Coalescer::new());
    }
    C.with_borrow_mut(|c| {
        c.clear();
        check(c, &frames)
    });
});

fn check(c: &mut Coalescer, frames: &[Vec<u8>]) {
    let mut out: Vec<(Vec<u8>, u16)> = Vec::new();
    let drain = |c: &mut Coalescer, out: &mut Vec<(Vec<u8>, u16)>| {
        c.finish();
        out.extend((0..c.len()).map(|i| (c.packet(i).to_vec(), c.segments(i))));
        c.clear();
    };
    for f in frames {
        if c.is_full() {
            drain(c, &mut out);
        }
        // A frame is taken whole or (longer than a region) not at all.
        let (a, b) = f.split_at(f.len() / 2);
        if c.offer([a, b]).is_none() {
            assert!(f.len() > 65536);
        }
    }
    drain(c, &mut out);
    let segments: usize = out.iter().map(|o| usize::from(o.1)).sum();
    assert!(segments <= frames.len());
    for (p, segs) in &out {
        let (vh, frame) = p.split_at(HDR);
        if *segs == 1 {
            assert_eq!(vh, [0u8; HDR], "a packet alone has an empty header");
            assert!(frames.iter().any(|f| f.starts_with(frame)));
            continue;
        }
        assert_eq!(vh[0], 1, "a joined packet's checksum is left partial");
        let v6 = frame[12..14] == [0x86, 0xdd];
        if !v6 {
            assert!(checksum::verifies(0, &frame[14..34]));
        }
        let mut f = frame.to_vec();
        let req = seed_l4_checksum(&mut f).expect("a joined packet is TCP");
        finish_in_place(&mut f, req);
        let start = usize::from(req.start);
        let seed = if v6 {
            let s: [u8; 16] = f[22..38].try_into().unwrap();
            let d: [u8; 16] = f[38..54].try_into().unwrap();
            checksum::pseudo_v6(&s, &d, 6, req.len)
        } else {
            checksum::pseudo_v4(
                f[26..30].try_into().unwrap(),
                f[30..34].try_into().unwrap(),
                6,
                req.len as u16,
            )
        };
        assert!(checksum::verifies(seed, &f[start..start + req.len as usize]));
    }
}

