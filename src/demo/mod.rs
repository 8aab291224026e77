//! `omtd demo`: the whole product in one process, on sim hosts.
//!
//! It provisions one sim host per Node of the runbook's cluster (packages installed,
//! nothing configured), starts the operator — its probes reading the sim world's Mesos
//! and Prometheus over HTTP — and one agent per host, applies the cluster and shows it
//! converge. Then it plays the runbook's classic failures one at a time and times omtd's
//! repair of each, judged by what the services would show (who leads Mesos, which agents
//! and frameworks are registered, what Prometheus scrapes), not by omtd's own records.

pub mod checks;
mod ctx;
pub mod hosts;
mod output;
pub mod records;
mod run;
mod scenarios;

use std::time::Duration;

pub use output::Out;
pub use run::run;

/// Why the demo could not run (a failure to converge is not an error: it is a result).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo's records: {0}")]
    Records(String),
    #[error("store: {0}")]
    Store(String),
    #[error("sim world")]
    Sim(#[from] crate::sim::SimError),
    #[error("sim probes")]
    Probes(#[from] crate::sim::probes::SimProbeError),
    #[error("the cluster has no {0} node")]
    Missing(&'static str),
}

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// How long each phase may take to converge.
    pub timeout: Duration,
    /// Stay up after the summary until interrupted.
    pub keep_running: bool,
    /// The store URL to tell the person for `--keep-running`.
    pub store_url: String,
}

/// One line of the summary.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub name: String,
    pub repaired: bool,
    pub took: Duration,
    /// What was checked, or what is still wrong.
    pub detail: String,
}

/// Every step, in order.
#[derive(Debug, Clone, Default)]
pub struct DemoRun {
    pub steps: Vec<StepResult>,
}

impl DemoRun {
    pub fn all_repaired(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.repaired)
    }
}
