//! Why a bench could not run (a cluster that does not converge in time is a result, not an
//! error: `Figures::timed_out`).

use crate::demo::DemoError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The records, the store or the sim world (shared with the demo).
    #[error(transparent)]
    Setup(#[from] DemoError),
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the operator ({bin}): {source}")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the operator's {url} did not answer; its log {log}")]
    OperatorNotUp { url: String, log: String },
    #[error("only {up} of {nodes} sim agents held their heartbeat lease after {waited:?}: the store is too slow for this many agents (a bigger --timeout, or fewer --nodes)")]
    AgentsNotUp {
        up: usize,
        nodes: usize,
        waited: std::time::Duration,
    },
    #[error("the operator exited ({status}) during the bench; its log {log}")]
    OperatorExited { status: String, log: String },
}

impl From<crate::sim::SimError> for BenchError {
    fn from(e: crate::sim::SimError) -> Self {
        BenchError::Setup(DemoError::Sim(e))
    }
}
