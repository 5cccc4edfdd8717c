//! The XSKMAP, the redirect program and its BPF link, via bpf(2).
//!
//! The program is five instructions long (AFXDP.md): redirect every frame to
//! the socket registered for its RX queue, or apply a fallback action when the
//! queue has none. It is attached through a BPF link, so the kernel detaches
//! it when the last descriptor of the link closes — on a clean exit, on a crash
//! and on `kill -9` alike.

use super::abi::*;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// XDP program return codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum XdpAction {
    Aborted = 0,
    Drop = 1,
    Pass = 2,
    Tx = 3,
}

/// Where the program runs: in the driver (native) or in the generic skb path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    #[default]
    Native,
    Generic,
}

fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<RawFd> {
    // SAFETY: `attr` is a live, zero-padded attribute struct for `cmd` of the
    // size passed; the kernel reads at most that many bytes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            size_of::<T>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as RawFd)
    }
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by bpf(2) and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A `BPF_MAP_TYPE_XSKMAP`: queue id -> AF_XDP socket.
pub struct XskMap {
    fd: OwnedFd,
}

impl XskMap {
    pub fn new(entries: u32) -> io::Result<Self> {
        let mut attr = BpfMapCreateAttr {
            map_type: BPF_MAP_TYPE_XSKMAP,
            key_size: 4,
            value_size: 4,
            max_entries: entries,
            ..Default::default()
        };
        attr.map_name[..9].copy_from_slice(b"xbond_xsk");
        let fd = bpf(BPF_MAP_CREATE, &mut attr)
            .map_err(|e| io::Error::new(e.kind(), format!("create XSKMAP: {e}")))?;
        Ok(XskMap { fd: owned(fd) })
    }

    /// Route frames of RX queue `queue` to socket `xsk_fd`.
    pub fn set(&self, queue: u32, xsk_fd: RawFd) -> io::Result<()> {
        let key = queue;
        let value = xsk_fd as u32;
        let mut attr = BpfMapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: &key as *const u32 as u64,
            value: &value as *const u32 as u64,
            ..Default::default()
        };
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

// Opcodes used below (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const LD_IMM64: u8 = 0x18; // BPF_LD | BPF_IMM | BPF_DW
const MOV64_IMM: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT
const PSEUDO_MAP_FD: u8 = 1;
const HELPER_REDIRECT_MAP: i32 = 51;
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

/// A loaded XDP program.
pub struct XdpProgram {
    fd: OwnedFd,
}

impl XdpProgram {
    /// `bpf_redirect_map(&map, ctx->rx_queue_index, fallback)`.
    pub fn redirect_to(map: &XskMap, fallback: XdpAction) -> io::Result<Self> {
        let insns = [
            insn(LDX_MEM_W, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
            insn(LD_IMM64, 1, PSEUDO_MAP_FD, 0, map.fd.as_raw_fd()),
            insn(0, 0, 0, 0, 0),
            insn(MOV64_IMM, 3, 0, 0, fallback as i32),
            insn(CALL, 0, 0, 0, HELPER_REDIRECT_MAP),
            insn(EXIT, 0, 0, 0, 0),
        ];
        // Frags-aware, so that jumbo frames (and chains) reach the socket
        // and a veth takes the program at any MTU (AFXDP.md gotcha 3); the
        // program reads no packet bytes, so it is safe with frags. Kernels
        // before 5.18 refuse the flag.
        Self::load(&insns, b"xbond_redirect", BPF_F_XDP_HAS_FRAGS)
            .or_else(|_| Self::load(&insns, b"xbond_redirect", 0))
    }

    /// `return action;` — used by the benchmark generator (`XDP_TX`) and sinks.
    pub fn constant(action: XdpAction) -> io::Result<Self> {
        let insns = [
            insn(MOV64_IMM, 0, 0, 0, action as i32),
            insn(EXIT, 0, 0, 0, 0),
        ];
        Self::load(&insns, b"xbond_const", 0)
    }

    fn load(insns: &[BpfInsn], name: &[u8], prog_flags: u32) -> io::Result<Self> {
        let license = b"Dual MIT/GPL\0";
        let mut log = vec![0u8; 4096];
        let mut attr = BpfProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: 1,
            log_size: log.len() as u32,
            log_buf: log.as_mut_ptr() as u64,
            expected_attach_type: BPF_XDP,
            prog_flags,
            ..Default::default()
        };
        let n = name.len().min(15);
        attr.prog_name[..n].copy_from_slice(&name[..n]);
        match bpf(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => Ok(XdpProgram { fd: owned(fd) }),
            Err(e) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(0);
                let text = String::from_utf8_lossy(&log[..end]);
                Err(io::Error::new(
                    e.kind(),
                    format!("load XDP program: {e}; verifier: {}", text.trim()),
                ))
            }
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Run the program on `frame` `repeat` times in live-frames mode
    /// (`BPF_F_TEST_XDP_LIVE_FRAMES`): with `XDP_TX` each run transmits the
    /// frame out of `ifindex`. This is the benchmark's traffic generator.
    pub fn run_live_frames(
        &self,
        ifindex: u32,
        frame: &[u8],
        repeat: u32,
        batch: u32,
    ) -> io::Result<()> {
        let ctx = XdpMd {
            data: 0,
            data_end: frame.len() as u32,
            ingress_ifindex: ifindex,
            ..Default::default()
        };
        let mut attr = BpfTestRunAttr {
            prog_fd: self.fd.as_raw_fd() as u32,
            data_size_in: frame.len() as u32,
            data_in: frame.as_ptr() as u64,
            repeat,
            ctx_size_in: size_of::<XdpMd>() as u32,
            ctx_in: &ctx as *const XdpMd as u64,
            flags: BPF_F_TEST_XDP_LIVE_FRAMES,
            batch_size: batch,
            ..Default::default()
        };
        bpf(BPF_PROG_TEST_RUN, &mut attr).map(drop)
    }
}

/// An XDP program attached to an interface through a BPF link. Dropping it
/// (or the process dying) detaches the program.
pub struct XdpLink {
    _fd: OwnedFd,
}

impl XdpLink {
    pub fn attach(prog: &XdpProgram, ifindex: u32, mode: AttachMode) -> io::Result<Self> {
        let mut attr = BpfLinkCreateAttr {
            prog_fd: prog.fd() as u32,
            target_ifindex: ifindex,
            attach_type: BPF_XDP,
            flags: match mode {
                AttachMode::Native => XDP_FLAGS_DRV_MODE,
                AttachMode::Generic => XDP_FLAGS_SKB_MODE,
            },
            ..Default::default()
        };
        let fd = bpf(BPF_LINK_CREATE, &mut attr).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::EBUSY) | Some(libc::EEXIST) => {
                    " (another XDP program is attached to this interface)"
                }
                Some(libc::ERANGE) => {
                    " (MTU too large for single-buffer native XDP on this device)"
                }
                Some(libc::EOPNOTSUPP) => " (driver has no native XDP; try xdp_mode = \"generic\")",
                _ => "",
            };
            io::Error::new(
                e.kind(),
                format!("attach XDP program to ifindex {ifindex} ({mode:?}): {e}{hint}"),
            )
        })?;
        Ok(XdpLink { _fd: owned(fd) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_program_encodes_as_documented() {
        let i = insn(LDX_MEM_W, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0);
        assert_eq!((i.code, i.regs, i.off), (0x61, 0x12, 16));
        let i = insn(LD_IMM64, 1, PSEUDO_MAP_FD, 0, 7);
        assert_eq!((i.code, i.regs, i.imm), (0x18, 0x11, 7));
    }
}
