//! What control holds of a worker: the thread's handle, the commands it
//! sends, and the frames that come back from the data path.

use super::Handover;
use super::{Role, Worker, CONTROL_FRAME_MAX};
use crate::snapshot::MemberId;
use crate::sys::waker::Waker;
use crossbeam::channel::Sender;
use std::sync::Arc;

/// A frame for the control thread, copied out of the frame area so the frame
/// can go straight back to the pool. Fixed size: no allocation per frame.
#[derive(Clone)]
pub struct ControlFrame {
    /// The port it came from: a member, or a host port (balance-alb's ARP
    /// from the host, untagged as the host sent it).
    pub from: Role,
    /// Why the data path handed it over.
    pub why: Handover,
    len: u16,
    data: [u8; CONTROL_FRAME_MAX],
}

impl ControlFrame {
    pub fn new(from: Role, why: Handover, bytes: &[u8]) -> Option<Self> {
        (bytes.len() <= CONTROL_FRAME_MAX).then(|| Self::prefix(from, why, bytes))
    }

    /// The first [`CONTROL_FRAME_MAX`] bytes of a frame: enough of a probe
    /// reply for the headers the monitor reads.
    pub fn prefix(from: Role, why: Handover, bytes: &[u8]) -> Self {
        let n = bytes.len().min(CONTROL_FRAME_MAX);
        let mut data = [0u8; CONTROL_FRAME_MAX];
        data[..n].copy_from_slice(&bytes[..n]);
        ControlFrame {
            from,
            why,
            len: n as u16,
            data,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }
}

impl std::fmt::Debug for ControlFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ControlFrame({:?}, {:?}, {} bytes)",
            self.from, self.why, self.len
        )
    }
}

/// Work control hands to a worker thread: it runs between two rounds with
/// the worker to itself (adding or removing ports at runtime).
pub type WorkerJob = Box<dyn FnOnce(&mut Worker) + Send>;

/// What control asks of a worker.
pub enum WorkerCommand {
    /// Send this frame out of a member, ahead of queued data.
    Transmit { member: MemberId, frame: Vec<u8> },
    /// Run this on the worker's thread.
    Exec(WorkerJob),
}

impl std::fmt::Debug for WorkerCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerCommand::Transmit { member, frame } => {
                write!(f, "Transmit(member {member}, {} bytes)", frame.len())
            }
            WorkerCommand::Exec(_) => write!(f, "Exec"),
        }
    }
}

/// Control's handle on a running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    pub thread: Option<std::thread::JoinHandle<()>>,
    pub commands: Sender<WorkerCommand>,
    pub waker: Arc<Waker>,
}

impl WorkerHandle {
    /// Start `worker` on its own thread, pinned to `core` when given.
    pub fn spawn(
        worker: Worker,
        name: String,
        core: Option<core_affinity::CoreId>,
        commands: Sender<WorkerCommand>,
    ) -> std::io::Result<Self> {
        let waker = Arc::clone(&worker.waker);
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            if let Some(c) = core {
                if !core_affinity::set_for_current(c) {
                    tracing::warn!("could not pin worker to core {}", c.id);
                }
            }
            worker.run();
        })?;
        Ok(WorkerHandle {
            thread: Some(thread),
            commands,
            waker,
        })
    }

    /// Queue a command and wake the worker if it sleeps.
    pub fn send(&self, cmd: WorkerCommand) -> bool {
        let ok = self.commands.try_send(cmd).is_ok();
        self.waker.wake();
        ok
    }

    pub fn join(&mut self) {
        self.waker.wake();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}
