//! Why the engine could not start, or add or remove a port.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A system call failed while setting up `what`. The error is part of
    /// the message, not a source, so a chain printed with `{:#}` names it
    /// once.
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    #[error("cpus: core {core} does not exist (this machine has {cores} cores)")]
    NoSuchCore { core: usize, cores: usize },
    #[error("worker {0} did not take the job")]
    WorkerGone(usize),
    #[error("worker {0} did not answer")]
    WorkerTimeout(usize),
    #[error("host_port = \"af_packet\" needs the bond's own host interface")]
    NoHostPort,
}

/// Name what was being set up when an `io::Error` happened.
pub(super) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, EngineError>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, EngineError> {
        self.map_err(|err| EngineError::Io { what: what(), err })
    }
}
