//! Receive coalescing: consecutive TCP segments of a flow, received from the
//! members, joined into one packet for the host, as the kernel's GRO does on
//! a NIC's receive path. The joined packet goes to the host interface through
//! AF_PACKET with a virtio-net header (segment size, partial checksum), so the
//! host's TCP takes one 64 KiB packet where it would take forty-five.
//!
//! Segments join when the kernel's GRO would join them (`tcp_gro_receive`):
//! the same flow, the next sequence number, every header byte the same but
//! the lengths, IPv4 ID, checksums, window and PSH; only ACK (and PSH) set;
//! no IPv4 options or fragments, no IPv6 extension headers; no segment
//! longer than the first. A shorter segment or PSH ends the packet. Each
//! segment's IPv4 header and TCP checksums are verified before it joins; a
//! segment that fails, or is not one that joins, goes to the host as it came
//! (its flow's open packet first, so nothing is reordered), and the kernel
//! checks it as it would any frame.
//!
//! Packets are kept in fixed regions, allocated once: each region holds
//! `[virtio_net_hdr][frame]`, ready to be written as one buffer.

use crate::wire::{checksum, ethernet, virtio_net};

/// Room per region: the virtio-net header and a frame of up to 64 KiB.
pub const REGION_LEN: usize = virtio_net::HEADER_LEN + 65536 + 256;
/// Packets (joined or not) held before the owner must [`Coalescer::clear`].
pub const REGIONS: usize = 64;
/// Flows with a packet open at once; the oldest is closed for a new one.
const OPEN: usize = 8;
const HDR: usize = virtio_net::HEADER_LEN;
const L3: usize = ethernet::HEADER_LEN;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;
/// The IP length fields cap a joined packet.
const MAX_IP_LEN: usize = 65535;

/// A parsed segment: where its headers are.
#[derive(Debug, Clone, Copy)]
struct Seg {
    v6: bool,
    /// Offset of the TCP header in the frame.
    l4: usize,
    /// Ethernet, IP and TCP headers' length.
    hl: usize,
    /// End of the IP packet in the frame (before any Ethernet padding).
    end: usize,
    seq: u32,
    flags: u8,
}

impl Seg {
    fn payload(&self) -> usize {
        self.end - self.hl
    }

    /// A segment that may join or start a joined packet.
    fn joins(&self) -> bool {
        self.payload() > 0 && self.flags & !TCP_PSH == TCP_ACK
    }
}

/// One packet held in a region.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// Frame length.
    len: usize,
    seg: Seg,
    /// Segments joined into it.
    segs: u16,
    /// Payload of the first segment: the segment size for the host's TCP.
    mss: usize,
    next_seq: u32,
    last_id: u16,
    /// Still takes segments.
    open: bool,
}

/// Packets for the host, in order, some joined.
pub struct Coalescer {
    buf: Box<[u8]>,
    held: Vec<Held>,
    /// Regions of `held` whose packet is open, oldest first.
    open: Vec<usize>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A TCP frame over IPv4 (no options, not a fragment) or IPv6 (TCP right
/// after the fixed header), untagged, whose IPv4 header and TCP checksums
/// verify.
fn parse(f: &[u8]) -> Option<Seg> {
    let (v6, l4, end, pseudo) = match be16(f.get(..L3)?, 12) {
        0x0800 => {
            let ip = f.get(L3..L3 + 20)?;
            if ip[0] != 0x45 || ip[9] != 6 || be16(ip, 6) & 0x3fff != 0 {
                return None;
            }
            if !checksum::verifies(0, ip) {
                return None;
            }
            let total = usize::from(be16(ip, 2));
            let l4_len = total.checked_sub(20)?;
            let src = [ip[12], ip[13], ip[14], ip[15]];
            let dst = [ip[16], ip[17], ip[18], ip[19]];
            let pseudo = checksum::pseudo_v4(src, dst, 6, l4_len as u16);
            (false, L3 + 20, L3 + total, pseudo)
        }
        0x86dd => {
            let ip = f.get(L3..L3 + 40)?;
            if ip[0] >> 4 != 6 || ip[6] != 6 {
                return None;
            }
            let l4_len = usize::from(be16(ip, 4));
            let src: [u8; 16] = ip[8..24].try_into().ok()?;
            let dst: [u8; 16] = ip[24..40].try_into().ok()?;
            let pseudo = checksum::pseudo_v6(&src, &dst, 6, l4_len as u32);
            (true, L3 + 40, L3 + 40 + l4_len, pseudo)
        }
        _ => return None,
    };
    let tcp = f.get(l4..end)?;
    let doff = usize::from(*tcp.get(12)? >> 4) * 4;
    if doff < 20 || doff > tcp.len() || !checksum::verifies(pseudo, tcp) {
        return None;
    }
    Some(Seg {
        v6,
        l4,
        hl: l4 + doff,
        end,
        seq: be32(tcp, 4),
        flags: tcp[13],
    })
}

/// The same flow: addresses and ports.
fn same_flow(a: &[u8], sa: &Seg, b: &[u8], sb: &Seg) -> bool {
    if sa.v6 != sb.v6 {
        return false;
    }
    let addrs = if sa.v6 {
        L3 + 8..L3 + 40
    } else {
        L3 + 12..L3 + 20
    };
    a[addrs.clone()] == b[addrs] && a[sa.l4..sa.l4 + 4] == b[sb.l4..sb.l4 + 4]
}

/// Every header byte is the same, but those that differ between the
/// segments of one TCP send: the IP lengths, IPv4 ID and header checksum,
/// the sequence number, the PSH flag, the window and the TCP checksum.
fn same_headers(a: &[u8], b: &[u8], s: &Seg) -> bool {
    let ip = if s.v6 {
        [L3 + 4..L3 + 6, L3 + 6..L3 + 6]
    } else {
        [L3 + 2..L3 + 6, L3 + 10..L3 + 12]
    };
    let tcp = [s.l4 + 4..s.l4 + 8, s.l4 + 13..s.l4 + 18];
    let mut at = 0;
    for r in ip.iter().chain(&tcp) {
        if a[at..r.start] != b[at..r.start] {
            return false;
        }
        at = r.end;
    }
    a[at..s.hl] == b[at..s.hl] && (a[s.l4 + 13] ^ b[s.l4 + 13]) & !TCP_PSH == 0
}

impl Default for Coalescer {
    fn default() -> Self {
        Self::new()
    }
}

impl Coalescer {
    pub fn new() -> Self {
        Coalescer {
            buf: vec![0u8; REGIONS * REGION_LEN].into_boxed_slice(),
            held: Vec::with_capacity(REGIONS),
            open: Vec::with_capacity(OPEN),
        }
    }

    /// No region is free: write out and [`Coalescer::clear`] before the next
    /// [`Coalescer::offer`].
    pub fn is_full(&self) -> bool {
        self.held.len() == REGIONS
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Take a frame given as its buffers (`parts`, in order). Returns the
    /// frame's length, or `None` (and nothing taken) when no region is
    /// free or the frame does not fit one.
    pub fn offer<'a>(&mut self, parts: impl IntoIterator<Item = &'a [u8]>) -> Option<usize> {
        if self.is_full() {
            return None;
        }
        let r = self.held.len();
        let region = &mut self.buf[r * REGION_LEN..(r + 1) * REGION_LEN];
        let mut len = 0;
        for p in parts {
            let to = region.get_mut(HDR + len..HDR + len + p.len())?;
            to.copy_from_slice(p);
            len += p.len();
        }
        let frame = &self.buf[r * REGION_LEN + HDR..r * REGION_LEN + HDR + len];
        let Some(seg) = parse(frame) else {
            // Whatever flow it belongs to, nothing after it may pass it.
            self.close_all();
            self.push(len, None);
            return Some(len);
        };
        let flow = self.open.iter().position(|&o| {
            let h = &self.held[o];
            same_flow(self.frame(o), &h.seg, frame, &seg)
        });
        if let Some(k) = flow {
            if self.join(self.open[k], r, &seg) {
                return Some(len);
            }
            let o = self.open.remove(k);
            self.held[o].open = false;
        }
        self.push(len, Some(seg).filter(Seg::joins));
        Some(len)
    }

    fn frame(&self, r: usize) -> &[u8] {
        let at = r * REGION_LEN + HDR;
        &self.buf[at..at + self.held.get(r).map_or(0, |h| h.len)]
    }

    /// Keep region `r`'s frame as a packet of its own: open for more when
    /// `seg` is given.
    fn push(&mut self, len: usize, seg: Option<Seg>) {
        let r = self.held.len();
        let mut h = Held {
            len,
            seg: seg.unwrap_or(Seg {
                v6: false,
                l4: 0,
                hl: 0,
                end: len,
                seq: 0,
                flags: 0,
            }),
            segs: 1,
            mss: 0,
            next_seq: 0,
            last_id: 0,
            open: false,
        };
        if let Some(s) = seg {
            // Padding after the IP packet is not part of what joins.
            h.len = s.end;
            h.mss = s.payload();
            h.next_seq = s.seq.wrapping_add(s.payload() as u32);
            h.last_id = if s.v6 {
                0
            } else {
                be16(&self.buf[r * REGION_LEN + HDR..], L3 + 4)
            };
            h.open = s.flags & TCP_PSH == 0;
            if h.open {
                if self.open.len() == OPEN {
                    let oldest = self.open.remove(0);
                    self.held[oldest].open = false;
                }
                self.open.push(r);
            }
        }
        self.held.push(h);
    }

    /// Append the payload of the segment in region `from` to the open
    /// packet in region `to`, if it joins; `false` leaves both as they are.
    fn join(&mut self, to: usize, from: usize, seg: &Seg) -> bool {
        let h = self.held[to];
        let (head, tail) = self.buf.split_at_mut(from * REGION_LEN);
        let dst = &mut head[to * REGION_LEN + HDR..(to + 1) * REGION_LEN];
        let src = &tail[HDR..];
        let pay = seg.payload();
        let ip_len = h.len - L3 + pay;
        let id = if seg.v6 { 0 } else { be16(src, L3 + 4) };
        let id_ok = seg.v6 || id == h.last_id.wrapping_add(1) || src[L3 + 6] & 0x40 != 0;
        if !seg.joins()
            || seg.seq != h.next_seq
            || pay > h.mss
            || ip_len > MAX_IP_LEN
            || !id_ok
            || seg.hl != h.seg.hl
            || !same_headers(dst, src, seg)
        {
            return false;
        }
        dst[h.len..h.len + pay].copy_from_slice(&src[seg.hl..seg.end]);
        // The latest window and PSH.
        let l4 = seg.l4;
        dst[l4 + 14..l4 + 16].copy_from_slice(&src[l4 + 14..l4 + 16]);
        dst[l4 + 13] |= src[l4 + 13] & TCP_PSH;
        let held = &mut self.held[to];
        held.len += pay;
        held.segs += 1;
        held.next_seq = seg.seq.wrapping_add(pay as u32);
        held.last_id = id;
        if pay < h.mss || seg.flags & TCP_PSH != 0 || ip_len + h.mss > MAX_IP_LEN {
            held.open = false;
            self.open.retain(|&o| o != to);
        }
        true
    }

    /// Packets held (joined or not).
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Packet `i`, as [`Coalescer::finish`] left it: `[virtio_net_hdr][frame]`.
    pub fn packet(&self, i: usize) -> &[u8] {
        &self.buf[i * REGION_LEN..i * REGION_LEN + HDR + self.held[i].len]
    }

    /// The segments packet `i` holds.
    pub fn segments(&self, i: usize) -> u16 {
        self.held[i].segs
    }

    /// Make every packet held ready to be written, and close them all: a
    /// joined one gets its IP lengths set, its IPv4 header checksum made
    /// again, its TCP checksum seeded with the pseudo-header sum, and a
    /// header that asks the kernel for TCP segmentation by the first
    /// segment's size; any other stays as it came, with an empty header.
    pub fn finish(&mut self) {
        self.close_all();
        for (r, h) in self.held.iter().enumerate() {
            let region = &mut self.buf[r * REGION_LEN..r * REGION_LEN + HDR + h.len];
            let (vh, frame) = region.split_at_mut(HDR);
            vh.fill(0);
            if h.segs < 2 {
                continue;
            }
            let s = h.seg;
            let l4_len = h.len - s.l4;
            if s.v6 {
                frame[L3 + 4..L3 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            } else {
                let ip = &mut frame[L3..L3 + 20];
                ip[2..4].copy_from_slice(&((h.len - L3) as u16).to_be_bytes());
                ip[10..12].fill(0);
                let sum = !checksum::fold(checksum::add(0, ip));
                ip[10..12].copy_from_slice(&sum.to_be_bytes());
            }
            let pseudo = if s.v6 {
                let src: [u8; 16] = frame[L3 + 8..L3 + 24].try_into().unwrap_or_default();
                let dst: [u8; 16] = frame[L3 + 24..L3 + 40].try_into().unwrap_or_default();
                checksum::pseudo_v6(&src, &dst, 6, l4_len as u32)
            } else {
                let b = &frame[L3 + 12..L3 + 20];
                checksum::pseudo_v4(
                    [b[0], b[1], b[2], b[3]],
                    [b[4], b[5], b[6], b[7]],
                    6,
                    l4_len as u16,
                )
            };
            frame[s.l4 + 16..s.l4 + 18].copy_from_slice(&pseudo.to_be_bytes());
            vh.copy_from_slice(&virtio_net::tcp_gso(
                s.v6,
                s.hl as u16,
                h.mss as u16,
                s.l4 as u16,
            ));
        }
    }

    fn close_all(&mut self) {
        for &o in &self.open {
            self.held[o].open = false;
        }
        self.open.clear();
    }

    /// Forget every packet held (after [`Coalescer::finish`] was written).
    pub fn clear(&mut self) {
        self.held.clear();
        self.open.clear();
    }
}

#[cfg(test)]
mod tests;
