//! xbond's dataplane: AF_XDP ports on one shared frame area per worker, the
//! per-frame forwarding decision read from an immutable bond snapshot, and the
//! busy-poll worker loop.
//!
//! All `unsafe` code is in [`sys`]; everything else is safe Rust.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub(crate) mod sys;

pub mod counters;
pub mod engine;
pub mod forward;
pub mod hash;
pub mod lb;
#[macro_use]
pub mod named;
pub mod nic;
pub mod offload;
pub mod port;
pub mod schedule;
pub mod snapshot;
pub mod tools;
pub mod wire;
pub mod worker;

pub use counters::{DropReason, PortCounters};
pub use port::{MemPort, Port};
pub use snapshot::{BondMode, BondSnapshot, MemberId, Shared};
pub use sys::area::{Frame, FrameArea, FramePool};
pub use worker::{ControlFrame, PollPolicy, Worker, WorkerCommand, WorkerHandle};
