//! The host agent: `omtd agent --node NAME`.
//!
//! It follows `plans/NAME/` in the store, merges the controllers' slices ([`merge`]),
//! brings the host in line through its drivers ([`apply`], [`drivers`]), writes
//! `reports/NAME` only when something changed ([`report`]), and keeps `leases/agents/NAME`
//! alive as its heartbeat ([`heartbeat`]).
//!
//! A pass runs when the plan changes or at the periodic resync (full passes, LVM included),
//! and when a managed file drifts (inotify, [`drift`]), a sim host signals a fault, a
//! service check is due, systemd signals that a managed unit changed ([`unit_watch`], where
//! systemd runs; the periodic check stays as the safety net), or a backed-off repair may be
//! tried again (light passes). Passes run one at a time on a blocking thread; events
//! arriving meanwhile are looked at after. A long step inside a pass (pvmove) reports its
//! progress while it runs ([`progress`]).
//!
//! While the store is unreachable the agent keeps the host as it is: it still repairs drift
//! toward the last plan it had, but takes no destructive step (no PV removal, no unmount).

pub mod apply;
pub mod drift;
pub mod drivers;
pub mod heartbeat;
pub mod memory;
pub mod merge;
pub mod plans;
pub mod progress;
pub mod repair_limit;
pub mod report;
mod session;
pub mod unit_watch;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::resources::Keys;
use crate::store::{Store, StoreError};
use drivers::Host;
use repair_limit::RepairPolicy;
use session::Session;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node: String,
    pub keys: Keys,
    /// Full pass period, the safety net behind the events.
    pub resync: Duration,
    /// How often services (and containers and mounts) are looked at: SysV and docker send
    /// no events the agent could wait for.
    pub service_check: Duration,
    /// TTL of the heartbeat lease.
    pub lease_ttl: Duration,
    pub repair: RepairPolicy,
    /// Watch managed files with inotify.
    pub watch_files: bool,
    /// Listen to systemd's unit signals on this bus (`None`: poll services only).
    pub systemd_bus: Option<unit_watch::Bus>,
    /// At most one progress write (pvmove percent) per this period.
    pub progress_interval: Duration,
}

impl AgentConfig {
    pub fn new(node: &str, keys: Keys) -> Self {
        AgentConfig {
            node: node.to_owned(),
            keys,
            resync: Duration::from_secs(30),
            service_check: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(10),
            repair: RepairPolicy::default(),
            watch_files: true,
            systemd_bus: None,
            progress_interval: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    // The three below share the prefix of the one message they once were.
    #[error("an apply pass crashed: the plan follower stopped")]
    FollowerStopped,
    #[error("an apply pass crashed: the host was lost")]
    HostLost,
    #[error("an apply pass crashed: {0}")]
    Pass(#[from] tokio::task::JoinError),
}

/// One agent over one host.
pub struct Agent {
    store: Arc<dyn Store>,
    host: Host,
    config: AgentConfig,
    signal: Option<Arc<Notify>>,
}

/// Counters for tests and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    pub passes: std::sync::atomic::AtomicU64,
    pub report_writes: std::sync::atomic::AtomicU64,
}

impl Agent {
    pub fn new(store: Arc<dyn Store>, host: Host, config: AgentConfig) -> Self {
        Agent {
            store,
            host,
            config,
            signal: None,
        }
    }

    /// Also wake on this signal (a sim host's faults).
    pub fn with_signal(mut self, signal: Arc<Notify>) -> Self {
        self.signal = Some(signal);
        self
    }

    /// Run until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
        self.run_with_stats(Arc::default(), shutdown).await
    }

    pub async fn run_with_stats(
        self,
        stats: Arc<Stats>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), AgentError> {
        // `instrument`, not `span.enter()`: an entered guard held across awaits would tag
        // other tasks' log lines with this node (several agents share a process in the demo).
        let span = tracing::info_span!("agent", node = %self.config.node);
        tracing::Instrument::instrument(self.run_in_span(stats, shutdown), span).await
    }

    async fn run_in_span(
        self,
        stats: Arc<Stats>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), AgentError> {
        let mut session = Session::start(self, stats).await;
        tokio::pin!(shutdown);
        let result = session.run(shutdown).await;
        session.stop().await;
        result
    }
}

/// The cluster named by the keys (`/omtd/<cluster>/`), or the whole prefix when the keys
/// are laid out otherwise.
fn cluster_name(keys: &Keys) -> &str {
    let p = keys.prefix();
    p.strip_prefix("/omtd/")
        .and_then(|c| c.strip_suffix('/'))
        .unwrap_or(p)
}
