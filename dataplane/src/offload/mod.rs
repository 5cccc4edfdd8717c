//! Transmit checksums of frames from the host ports.
//!
//! `bond0` keeps TX checksum offload on, as a kernel bond does, so the host
//! stack hands it TCP and UDP frames whose checksum field holds only the
//! pseudo-header sum (`CHECKSUM_PARTIAL`; AFXDP.md gotchas 14 and 15).
//! AF_XDP receives the bytes without that state, so a partial checksum cannot
//! be told from a complete one. Every TCP/UDP frame from a host port
//! therefore gets its field rewritten to the pseudo-header sum, and the
//! kernel is asked to finish it through TX metadata (the member's offload,
//! or software in the kernel when the member has none); where metadata is
//! not available, the worker finishes it itself. Both give the right
//! checksum whether the host's was partial or complete.

pub mod coalesce;

use crate::wire::{checksum, ethernet, ipv4, ipv6, vlan};

/// Where the checksum of a frame's L4 header is and what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsumRequest {
    /// Offset of the L4 header from the frame's start.
    pub start: u16,
    /// Offset of the checksum field from `start` (16 for TCP, 6 for UDP).
    pub offset: u16,
    /// Bytes the checksum covers from `start` (the L4 length the IP header
    /// gives).
    pub len: u32,
    pub udp: bool,
}

impl CsumRequest {
    /// The frame's bytes end where the IP packet ends (no Ethernet padding
    /// or trailer the kernel would sum as well).
    pub fn covers_to_end(&self, frame_len: u32) -> bool {
        u32::from(self.start) + self.len == frame_len
    }
}

/// The L4 header of an Ethernet frame (untagged, 802.1Q or QinQ) carrying
/// TCP or UDP over IPv4 or IPv6, with the field rewritten to the
/// pseudo-header sum. `None`, and the frame unchanged, for anything else:
/// other protocols, IPv4 fragments, IPv6 routing or fragment headers, UDP
/// over IPv4 without a checksum (zero), headers that do not fit.
pub fn seed_l4_checksum(frame: &mut [u8]) -> Option<CsumRequest> {
    let mut at = ethernet::HEADER_LEN - 2;
    let mut ethertype = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
    for _ in 0..2 {
        if ethertype != vlan::TPID_8021Q && ethertype != vlan::TPID_8021AD {
            break;
        }
        at += vlan::TAG_LEN;
        ethertype = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
    }
    let l3 = at + 2;
    let (proto, start, len, pseudo) = match ethernet::EtherType::from(ethertype) {
        ethernet::EtherType::Ipv4 => {
            let ip = ipv4::Packet::new_checked(frame.get(l3..)?).ok()?;
            if !ip.is_well_formed() || ip.is_fragment() {
                return None;
            }
            let hl = ip.header_len();
            let len = u16::try_from(usize::from(ip.total_len()) - hl).ok()?;
            let pseudo = checksum::pseudo_v4(ip.src(), ip.dst(), ip.protocol(), len);
            (ip.protocol(), l3 + hl, u32::from(len), pseudo)
        }
        ethernet::EtherType::Ipv6 => {
            let ip = ipv6::Packet::new_checked(frame.get(l3..)?).ok()?;
            if ip.version() != 6 {
                return None;
            }
            let (proto, off) = ip.upper_layer()?;
            let len =
                (u32::from(ip.payload_len()) + ipv6::HEADER_LEN as u32).checked_sub(off as u32)?;
            let pseudo = checksum::pseudo_v6(&ip.src(), &ip.dst(), proto, len);
            (proto, l3 + off, len, pseudo)
        }
        _ => return None,
    };
    let (offset, udp) = match proto {
        ipv4::PROTO_TCP => (16u16, false),
        ipv4::PROTO_UDP => (6u16, true),
        _ => return None,
    };
    let field = start + usize::from(offset);
    let min_header = if udp { 8 } else { 20 };
    if len < min_header || frame.len() < start + min_header as usize {
        return None;
    }
    if udp && ethertype == u16::from(ethernet::EtherType::Ipv4) && frame[field..field + 2] == [0, 0]
    {
        // The sender chose no checksum (RFC 768); keep it that way.
        return None;
    }
    frame[field..field + 2].copy_from_slice(&pseudo.to_be_bytes());
    Some(CsumRequest {
        start: u16::try_from(start).ok()?,
        offset,
        len,
        udp,
    })
}

/// Finish a seeded checksum over the frame's own bytes (the frame holds the
/// whole L4 packet).
pub fn finish_in_place(frame: &mut [u8], req: CsumRequest) {
    let start = usize::from(req.start);
    let end = (start + req.len as usize).min(frame.len());
    let field = start + usize::from(req.offset);
    let sum = checksum::fold(checksum::add(0, &frame[start..end]));
    frame[field..field + 2].copy_from_slice(&checksum::finish(sum, req.udp).to_be_bytes());
}

#[cfg(test)]
mod tests;
