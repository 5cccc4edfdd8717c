//! Kernel ABI for AF_XDP (`linux/if_xdp.h`) and the slice of `linux/bpf.h` the
//! redirect program needs. These structs are overlaid on kernel memory or
//! passed to syscalls, so they are `repr(C)` and match the headers field for
//! field.

pub const AF_XDP: libc::c_int = 44;
pub const SOL_XDP: libc::c_int = 283;

pub const XDP_MMAP_OFFSETS: libc::c_int = 1;
pub const XDP_RX_RING: libc::c_int = 2;
pub const XDP_TX_RING: libc::c_int = 3;
pub const XDP_UMEM_REG: libc::c_int = 4;
pub const XDP_UMEM_FILL_RING: libc::c_int = 5;
pub const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
pub const XDP_STATISTICS: libc::c_int = 7;
pub const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

pub const XDP_SHARED_UMEM: u16 = 1 << 0;
pub const XDP_COPY: u16 = 1 << 1;
pub const XDP_ZEROCOPY: u16 = 1 << 2;
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
/// Multi-buffer: frames larger than a chunk arrive and leave as chains.
pub const XDP_USE_SG: u16 = 1 << 4;

/// `XDP_OPTIONS` (getsockopt): what the bind got.
pub const XDP_OPTIONS: libc::c_int = 8;
pub const XDP_OPTIONS_ZEROCOPY: u32 = 1 << 0;

/// UMEM registration flag: `tx_metadata_len` is meant (kernel 6.11+; 6.8-6.10
/// take the length without the flag).
pub const XDP_UMEM_TX_METADATA_LEN: u32 = 1 << 2;

/// Descriptor options: more buffers of this frame follow.
pub const XDP_PKT_CONTD: u32 = 1 << 0;
/// Descriptor options: an `XskTxMetadata` sits right before the frame.
pub const XDP_TX_METADATA: u32 = 1 << 1;

/// `xsk_tx_metadata.flags`: finish the L4 checksum (skb-style start/offset).
pub const XDP_TXMD_FLAGS_CHECKSUM: u64 = 1 << 1;
/// `sizeof(union xsk_tx_metadata)` on 6.14+ (flags, then the request:
/// csum_start, csum_offset, launch_time); older kernels read the first 16
/// bytes and take the rest as padding.
pub const TX_METADATA_LEN: u32 = 24;

pub const XDP_PGOFF_RX_RING: libc::off_t = 0;
pub const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
pub const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
pub const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

pub const SO_BUSY_POLL: libc::c_int = 46;
pub const SO_PREFER_BUSY_POLL: libc::c_int = 69;
pub const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct XdpRingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct XdpMmapOffsets {
    pub rx: XdpRingOffset,
    pub tx: XdpRingOffset,
    pub fr: XdpRingOffset,
    pub cr: XdpRingOffset,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct XdpUmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct SockaddrXdp {
    pub sxdp_family: u16,
    pub sxdp_flags: u16,
    pub sxdp_ifindex: u32,
    pub sxdp_queue_id: u32,
    pub sxdp_shared_umem_fd: u32,
}

/// One RX/TX descriptor: where the frame is in the UMEM and how long it is.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

/// `struct xdp_statistics`, all six counters of kernel 5.9+.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct XdpStatistics {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

// --- bpf(2) ---------------------------------------------------------------

pub const BPF_MAP_CREATE: libc::c_int = 0;
pub const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
pub const BPF_PROG_LOAD: libc::c_int = 5;
pub const BPF_PROG_TEST_RUN: libc::c_int = 10;
pub const BPF_LINK_CREATE: libc::c_int = 28;

pub const BPF_MAP_TYPE_XSKMAP: u32 = 17;
pub const BPF_PROG_TYPE_XDP: u32 = 6;
pub const BPF_XDP: u32 = 37;
pub const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
/// `prog_flags`: the XDP program handles multi-buffer frames.
pub const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `BPF_MAP_CREATE` attributes (prefix of `union bpf_attr`).
#[repr(C)]
#[derive(Default)]
pub struct BpfMapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; 16],
}

/// `BPF_MAP_*_ELEM` attributes.
#[repr(C)]
#[derive(Default)]
pub struct BpfMapElemAttr {
    pub map_fd: u32,
    pub _pad: u32,
    pub key: u64,
    pub value: u64,
    pub flags: u64,
}

/// `BPF_PROG_LOAD` attributes.
#[repr(C)]
#[derive(Default)]
pub struct BpfProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; 16],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
}

/// `BPF_LINK_CREATE` attributes.
#[repr(C)]
#[derive(Default)]
pub struct BpfLinkCreateAttr {
    pub prog_fd: u32,
    pub target_ifindex: u32,
    pub attach_type: u32,
    pub flags: u32,
    pub _reserved: [u64; 4],
}

/// `BPF_PROG_TEST_RUN` attributes.
#[repr(C)]
#[derive(Default)]
pub struct BpfTestRunAttr {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
    pub _pad: u32,
}

/// `struct xdp_md`, the context of an XDP program.
#[repr(C)]
#[derive(Default)]
pub struct XdpMd {
    pub data: u32,
    pub data_end: u32,
    pub data_meta: u32,
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
    pub egress_ifindex: u32,
}

/// One eBPF instruction.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BpfInsn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn abi_sizes_match_the_kernel_headers() {
        assert_eq!(size_of::<XdpRingOffset>(), 32);
        assert_eq!(size_of::<XdpMmapOffsets>(), 128);
        assert_eq!(size_of::<XdpUmemReg>(), 32);
        assert_eq!(size_of::<SockaddrXdp>(), 16);
        assert_eq!(size_of::<XdpDesc>(), 16);
        assert_eq!(size_of::<XdpStatistics>(), 48);
        assert_eq!(size_of::<BpfInsn>(), 8);
        assert_eq!(size_of::<XdpMd>(), 24);
        assert_eq!(size_of::<BpfTestRunAttr>(), 80);
    }
}
