//! The one place `unsafe` lives: AF_XDP sockets, the UMEM memory area, the four
//! rings, the XSKMAP redirect program and its BPF link, and the few ioctls the
//! dataplane needs (ethtool checksum offload, link speed). Everything above this
//! module is safe code that works with [`Frame`] tokens and port handles.

pub(crate) mod abi;
pub mod area;
pub mod bpf;
pub mod ethtool;
pub mod packet;
pub mod packet_ring;
pub(crate) mod ring;
pub mod waker;
pub mod xsk;

use std::io;

/// Turn a `-1` return into the thread's `errno`.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
